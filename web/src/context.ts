// What the pages share: the signed-in user, the sites they may see, and the chosen site and
// season (kept in sessionStorage so that going from the sites page to the map keeps them).

import { api, path } from "./api";
import { isRecord, listOf, str } from "./dom";

export interface Me {
  login: string;
  role: string;
  sites: string[];
}

export interface SeasonInfo {
  name: string;
  start: string;
  mid: string;
  end: string;
  enabled: boolean;
  raw: Record<string, unknown>;
}

export interface SiteInfo {
  name: string;
  shortName: string;
  enabled: boolean;
  tiles: string[];
  bbox: [number, number, number, number] | null;
  seasons: SeasonInfo[];
  raw: Record<string, unknown>;
}

let me: Me | null = null;

export async function loadMe(force = false): Promise<Me> {
  if (me && !force) return me;
  const doc = await api<Record<string, unknown>>("/auth/me");
  me = {
    login: str(doc.login),
    role: str(doc.role),
    sites: Array.isArray(doc.sites) ? doc.sites.map((s) => str(s)) : [],
  };
  return me;
}

export function forgetMe(): void {
  me = null;
}

export function canWrite(user: Me, site?: string): boolean {
  if (user.role === "admin") return true;
  return user.role === "operator" && (site === undefined || user.sites.includes(site));
}

function bboxOf(raw: Record<string, unknown>): SiteInfo["bbox"] {
  const candidates = [raw.bbox, isRecord(raw.extent) ? raw.extent.bbox : undefined];
  for (const candidate of candidates) {
    let box: unknown = candidate;
    if (Array.isArray(box) && Array.isArray(box[0])) box = box[0];
    if (Array.isArray(box) && box.length >= 4 && box.every((v) => typeof v === "number")) {
      const [w, s, e, n] = box as number[];
      return [w!, s!, e!, n!];
    }
  }
  return null;
}

export function seasonOf(raw: Record<string, unknown>): SeasonInfo {
  return {
    name: str(raw.name ?? raw.season ?? raw.id),
    start: str(raw.start ?? raw.start_date),
    mid: str(raw.mid ?? raw.mid_date),
    end: str(raw.end ?? raw.end_date),
    enabled: raw.enabled !== false,
    raw,
  };
}

export function siteOf(raw: Record<string, unknown>): SiteInfo {
  const seasons = listOf(raw.seasons, "seasons").map(seasonOf);
  return {
    name: str(raw.name ?? raw.id),
    shortName: str(raw.short_name ?? raw.shortName ?? raw.name),
    enabled: raw.enabled !== false,
    tiles: Array.isArray(raw.tiles) ? raw.tiles.map((t) => str(t)) : [],
    bbox: bboxOf(raw),
    seasons,
    raw,
  };
}

export async function loadSites(): Promise<SiteInfo[]> {
  const answer = await api<unknown>("/sites");
  return listOf(answer, "sites").map(siteOf);
}

/** A site with its seasons (from the site document, or its seasons listing). */
export async function loadSite(name: string): Promise<SiteInfo> {
  const site = siteOf(await api<Record<string, unknown>>(path("sites", name)));
  if (site.seasons.length === 0) {
    const answer = await api<unknown>(path("sites", name, "seasons"));
    site.seasons = listOf(answer, "seasons").map(seasonOf);
  }
  return site;
}

const SELECTION_KEY = "capmon.selection";

export interface Selection {
  site?: string;
  season?: string;
}

export function selection(): Selection {
  try {
    const raw = JSON.parse(sessionStorage.getItem(SELECTION_KEY) ?? "{}") as unknown;
    return isRecord(raw) ? { site: str(raw.site) || undefined, season: str(raw.season) || undefined } : {};
  } catch {
    return {};
  }
}

export function select(update: Selection): void {
  sessionStorage.setItem(SELECTION_KEY, JSON.stringify({ ...selection(), ...update }));
}
