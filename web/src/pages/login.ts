// Sign-in: the OAuth2 password form of /auth/token; the token stays in this tab's sessionStorage.

import { ApiError, signIn } from "../api";
import { forgetMe } from "../context";
import { field, h, isRecord, message, replace } from "../dom";
import type { Page } from "../page";

export const loginPage: Page = {
  title: "Sign in",
  mount(root, params) {
    const status = h("div", { class: "status-region", "aria-live": "polite" });
    if (params.get("expired")) {
      replace(status, message("info", "Your session has ended: please sign in again."));
    }
    const login = h("input", {
      name: "username",
      autocomplete: "username",
      required: true,
      autofocus: true,
    });
    const password = h("input", {
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
    });
    const submit = h("button", { type: "submit" }, "Sign in");
    const form = h(
      "form",
      { class: "login-form", "aria-labelledby": "login-title" },
      h("h1", { id: "login-title" }, "capmon"),
      h("p", { class: "tagline" }, "CAP monitoring from Sentinel-1, Sentinel-2 and Landsat"),
      field("Login", login),
      field("Password", password),
      status,
      submit,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit.disabled = true;
      replace(status, message("info", "Signing in…"));
      signIn(login.value.trim(), password.value)
        .then(() => {
          forgetMe();
          const next = params.get("next");
          location.hash = next && !next.startsWith("/login") ? `#${next}` : "#/sites";
        })
        .catch((err: unknown) => {
          const text =
            // RFC 6749: a wrong password is 400 invalid_grant (older services answered 401).
            err instanceof ApiError && (err.status === 401 || (err.status === 400 && isRecord(err.body) && err.body.error === "invalid_grant"))
              ? "Wrong login or password."
              : `Sign-in failed: ${err instanceof Error ? err.message : String(err)}`;
          replace(status, message("error", text));
          password.value = "";
          password.focus();
        })
        .finally(() => {
          submit.disabled = false;
        });
    });
    replace(root, h("div", { class: "login-wrap" }, form));
    login.focus();
  },
};
