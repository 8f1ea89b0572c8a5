// Calls to the capmon service: the bearer token (kept in sessionStorage, never in URLs),
// JSON and multipart requests, and the service's error documents as ApiError.

import { isRecord, str } from "./dom";

const TOKEN_KEY = "capmon.token";
const LOGIN_KEY = "capmon.login";

export interface FieldError {
  field: string;
  message: string;
}

/** An error answer of the service: its JSON exception document, flattened. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly fieldErrors: FieldError[];
  readonly body: unknown;

  constructor(status: number, body: unknown, fallback: string) {
    const doc = isRecord(body) ? body : {};
    const title = str(doc.title, fallback);
    const detail = str(doc.detail ?? doc.error_description); // OGC/RFC 7807, or RFC 6749 (tokens)
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.body = body;
    this.fieldErrors = Array.isArray(doc.errors)
      ? doc.errors.filter(isRecord).map((e) => ({ field: str(e.field), message: str(e.message) }))
      : [];
  }

  /** One line for a message box: detail and field errors. */
  describe(): string {
    const fields = this.fieldErrors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message));
    return [this.detail || this.title, ...fields].filter(Boolean).join("; ");
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function currentLogin(): string | null {
  return sessionStorage.getItem(LOGIN_KEY);
}

export function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(LOGIN_KEY);
}

let onUnauthorized: () => void = () => undefined;

/** What to do when the service answers 401 (the token expired or was revoked). */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

/** Asks for a token with the OAuth2 password flow; keeps it for this browser tab. */
export async function signIn(login: string, password: string): Promise<void> {
  const body = new URLSearchParams({ username: login, password });
  const answer = await fetch("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body,
  });
  const doc = await readBody(answer);
  if (!answer.ok) throw new ApiError(answer.status, doc, "login failed");
  if (!isRecord(doc) || typeof doc.access_token !== "string") {
    throw new ApiError(answer.status, doc, "the service answered without a token");
  }
  sessionStorage.setItem(TOKEN_KEY, doc.access_token);
  sessionStorage.setItem(LOGIN_KEY, login);
}

/** The Authorization header of the current token (for MapLibre's tile requests). */
export function authHeaders(): Record<string, string> {
  const current = token();
  return current ? { Authorization: `Bearer ${current}` } : {};
}

async function readBody(answer: Response): Promise<unknown> {
  const type = answer.headers.get("content-type") ?? "";
  if (answer.status === 204) return null;
  if (type.includes("json")) {
    try {
      return await answer.json();
    } catch {
      return null;
    }
  }
  return await answer.text();
}

export interface RequestOptions {
  method?: string;
  json?: unknown;
  form?: FormData;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** The full answer of a request (for headers such as Location). */
export async function request(
  path: string,
  options: RequestOptions = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const headers: Record<string, string> = {
    Accept: "application/json",
    ...authHeaders(),
    ...(options.headers ?? {}),
  };
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form;
  }
  const init: RequestInit = { method: options.method ?? (body ? "POST" : "GET"), headers };
  if (body !== undefined) init.body = body;
  if (options.signal) init.signal = options.signal;
  const answer = await fetch(path, init);
  const doc = await readBody(answer);
  if (answer.status === 401) {
    signOut();
    onUnauthorized();
    throw new ApiError(401, doc, "please sign in again");
  }
  if (!answer.ok) throw new ApiError(answer.status, doc, `${answer.status} ${answer.statusText}`);
  return { status: answer.status, headers: answer.headers, body: doc };
}

/** GET (or another method) answering JSON. */
export async function api<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
  return (await request(path, options)).body as T;
}

/** Downloads a protected file: fetched with the token, then saved through a blob link. */
export async function download(path: string, filename: string): Promise<void> {
  const answer = await fetch(path, { headers: authHeaders() });
  if (answer.status === 401) {
    signOut();
    onUnauthorized();
    return;
  }
  if (!answer.ok) throw new ApiError(answer.status, await readBody(answer), "download failed");
  const blob = await answer.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A query string from the non-empty values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Path segments, encoded. */
export function path(...segments: (string | number)[]): string {
  return "/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}
