// The application shell: header and navigation, the hash router, the sign-in guard.

import "./style.css";
import { currentLogin, setUnauthorizedHandler, signOut, token } from "./api";
import { forgetMe, loadMe } from "./context";
import { h, replace } from "./dom";
import { navigate } from "./nav";
import { jobsPage } from "./pages/jobs";
import { loginPage } from "./pages/login";
import { productsPage } from "./pages/products";
import { sitesPage } from "./pages/sites";
import type { Page } from "./page";

const PAGES: Record<string, Page> = {
  login: loginPage,
  sites: sitesPage,
  jobs: jobsPage,
  map: lazyPage("Map", () => import("./pages/map").then((m) => m.mapPage)),
  products: productsPage,
};
/** A page whose code (MapLibre, uPlot) loads when first shown. */
function lazyPage(title: string, load: () => Promise<Page>): Page {
  let loaded: Page | null = null;
  return {
    title,
    keepOnParams: true,
    async mount(root, params) {
      loaded ??= await load();
      return loaded.mount(root, params);
    },
    update(params) {
      loaded?.update?.(params);
    },
  };
}

const NAV: [string, string][] = [
  ["sites", "Sites and seasons"],
  ["jobs", "Jobs"],
  ["map", "Map"],
  ["products", "Products"],
];

const app = document.getElementById("app")!;
let cleanup: (() => void) | void = undefined;
let mountedKey = "";
let routing = 0;

function parseHash(): { name: string; params: URLSearchParams } {
  const raw = location.hash.replace(/^#\/?/, "");
  const at = raw.indexOf("?");
  const name = at < 0 ? raw : raw.slice(0, at);
  const search = at < 0 ? "" : raw.slice(at + 1);
  return { name: name || "sites", params: new URLSearchParams(search) };
}

function header(active: string): HTMLElement {
  const login = currentLogin();
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/sites", "aria-label": "capmon home" }, "capmon"),
    h(
      "nav",
      { "aria-label": "Main" },
      h(
        "ul",
        null,
        NAV.map(([name, label]) =>
          h(
            "li",
            null,
            h(
              "a",
              { href: `#/${name}`, "aria-current": name === active ? "page" : undefined },
              label,
            ),
          ),
        ),
      ),
    ),
    h(
      "div",
      { class: "user" },
      login ? h("span", { class: "login", title: "signed in as" }, login) : null,
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => {
            signOut();
            forgetMe();
            navigate("login");
          },
        },
        "Sign out",
      ),
    ),
  );
}

async function route(): Promise<void> {
  const { name, params } = parseHash();
  const page = PAGES[name] ?? sitesPage;
  const pageName = PAGES[name] ? name : "sites";
  if (pageName !== "login" && !token()) {
    navigate("login", { next: location.hash.slice(1) });
    return;
  }
  const key = `${pageName}?${params.toString()}`;
  if (page.keepOnParams && pageName === mountedKey.split("?")[0] && cleanup) {
    // The page follows its own parameters (the map's selected parcel) without a remount.
    page.update?.(params);
    mountedKey = key;
    return;
  }
  if (typeof cleanup === "function") cleanup();
  cleanup = undefined;
  mountedKey = key;
  const mine = ++routing;
  document.title = `${page.title} – capmon`;
  const main = h("main", { id: "main", tabindex: "-1", class: `page page-${pageName}` });
  if (pageName === "login") replace(app, main);
  else replace(app, header(pageName), main);
  try {
    if (pageName !== "login") await loadMe();
    const stop = await page.mount(main, params);
    if (mine !== routing) {
      // Another page was asked for while this one was loading: stop this one's timers.
      if (typeof stop === "function") stop();
      return;
    }
    cleanup = stop;
  } catch (err) {
    if (mine === routing) replace(main, h("div", { class: "message error", role: "alert" }, String(err)));
  }
  if (pageName !== "login" && pageName !== "map") main.focus({ preventScroll: true });
}

setUnauthorizedHandler(() => {
  forgetMe();
  const next = location.hash.slice(1);
  if (!next.startsWith("/login")) navigate("login", { next, expired: "1" });
});
window.addEventListener("hashchange", () => void route());
void route();
