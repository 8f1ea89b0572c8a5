// Products: the STAC catalogue of processor products with filters (collection, site, dates,
// text) and downloads of each asset (fetched with the token, then saved).

import { ApiError, api, download, query } from "../api";
import { loadSites } from "../context";
import { field, formatDate, formatValue, h, isRecord, listOf, message, replace, str } from "../dom";
import type { Page } from "../page";

const PAGE_SIZE = 50;

function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.describe();
  return err instanceof Error ? err.message : String(err);
}

function itemSite(item: Record<string, unknown>): string {
  const props = isRecord(item.properties) ? item.properties : {};
  return str(props["capmon:site"] ?? props.site ?? props["sen4cap:site"]);
}

function assetName(href: string, key: string): string {
  const tail = href.split("?")[0]!.split("/").filter(Boolean).at(-1);
  return tail ? decodeURIComponent(tail) : key;
}

function sameOriginPath(href: string): string {
  try {
    const url = new URL(href, location.origin);
    return url.origin === location.origin ? url.pathname + url.search : href;
  } catch {
    return href;
  }
}

function assetsCell(item: Record<string, unknown>, status: HTMLElement): HTMLElement {
  const assets = isRecord(item.assets) ? item.assets : {};
  const entries = Object.entries(assets).filter(([, a]) => isRecord(a));
  if (!entries.length) return h("span", null, "—");
  const buttons = entries.map(([key, value]) => {
    const asset = value as Record<string, unknown>;
    const href = str(asset.href);
    const title = str(asset.title, key);
    return h(
      "li",
      null,
      h(
        "button",
        {
          type: "button",
          class: "link-button",
          title: str(asset.type),
          "aria-label": `Download ${title} of ${str(item.id)}`,
          onclick: async () => {
            try {
              replace(status, message("info", `Downloading ${title}…`));
              await download(sameOriginPath(href), assetName(href, key));
              replace(status, message("success", `Downloaded ${title}.`));
            } catch (err) {
              replace(status, message("error", `Download failed: ${errorText(err)}`));
            }
          },
        },
        title,
      ),
    );
  });
  if (entries.length <= 3) return h("ul", { class: "assets" }, buttons);
  return h("details", { class: "assets" }, h("summary", null, `${entries.length} files`), h("ul", null, buttons));
}

function propertiesCell(item: Record<string, unknown>): HTMLElement {
  const props = isRecord(item.properties) ? item.properties : {};
  const shown = Object.entries(props).filter(
    ([k, v]) => !["datetime", "created", "updated", "capmon:site"].includes(k) && (typeof v !== "object" || v === null),
  );
  if (!shown.length) return h("span");
  return h(
    "details",
    null,
    h("summary", null, "properties"),
    h("dl", { class: "facts small" }, shown.map(([k, v]) => [h("dt", null, k), h("dd", null, formatValue(v))])),
  );
}

export const productsPage: Page = {
  title: "Products",
  async mount(root, params) {
    const status = h("div", { "aria-live": "polite" });
    const resultBox = h("div", { "aria-live": "polite", "aria-busy": "true" }, message("info", "Loading products…"));
    const collection = h("select", { name: "collection" });
    let groups: Record<string, string[]> = { outputs: [], inputs: [] };
    let siteBoxes = new Map<string, [number, number, number, number]>();
    const site = h("select", { name: "site" }, h("option", { value: "" }, "all"));
    const from = h("input", { type: "date", name: "from" });
    const to = h("input", { type: "date", name: "to" });
    const text = h("input", { type: "search", name: "q", placeholder: "id contains…" });
    const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
    let items: Record<string, unknown>[] = [];
    let nextHref = "";

    const render = (): void => {
      const needle = text.value.trim().toLowerCase();
      const shown = items.filter(
        (item) =>
          (!site.value || itemSite(item) === site.value) &&
          (!needle || str(item.id).toLowerCase().includes(needle)),
      );
      resultBox.removeAttribute("aria-busy");
      if (!shown.length) {
        replace(resultBox, message("info", "No product matches."));
        return;
      }
      replace(
        resultBox,
        h("p", { class: "count" }, `${shown.length} product${shown.length === 1 ? "" : "s"}${nextHref ? " (more available)" : ""}`),
        h(
          "table",
          { class: "data products-table" },
          h("caption", { class: "sr-only" }, "Products"),
          h(
            "thead",
            null,
            h("tr", null, ["product", "collection", "site / season", "date", "created", "files", ""].map((l) => h("th", { scope: "col" }, l))),
          ),
          h(
            "tbody",
            null,
            shown.map((item) => {
              const props = isRecord(item.properties) ? item.properties : {};
              return h(
                "tr",
                null,
                h("th", { scope: "row", class: "product-id" }, str(item.id)),
                h("td", null, str(item.collection)),
                h("td", null, [itemSite(item), str(props["capmon:season"])].filter(Boolean).join(" / ")),
                h(
                  "td",
                  null,
                  props.datetime
                    ? formatDate(props.datetime)
                    : [formatDate(props.start_datetime), formatDate(props.end_datetime)].filter(Boolean).join(" – "),
                ),
                h("td", null, formatDate(props.created)),
                h("td", null, assetsCell(item, status)),
                h("td", null, propertiesCell(item)),
              );
            }),
          ),
        ),
      );
    };

    const search = async (append = false): Promise<void> => {
      resultBox.setAttribute("aria-busy", "true");
      try {
        let answer: unknown;
        if (append && nextHref) {
          answer = await api<unknown>(sameOriginPath(nextHref));
        } else {
          const datetime = from.value || to.value ? `${from.value ? `${from.value}T00:00:00Z` : ".."}/${to.value ? `${to.value}T23:59:59Z` : ".."}` : undefined;
          const chosen = collection.value.startsWith("group:")
            ? (groups[collection.value.slice(6)] ?? []).join(",")
            : collection.value;
          const box = siteBoxes.get(site.value);
          answer = await api<unknown>(
            `/stac/search${query({ collections: chosen, datetime, bbox: box?.join(","), limit: PAGE_SIZE })}`,
          );
        }
        const found = listOf(answer, "features");
        items = append ? items.concat(found) : found;
        const links = isRecord(answer) && Array.isArray(answer.links) ? answer.links.filter(isRecord) : [];
        const next = links.find((l) => l.rel === "next");
        nextHref = next && (!next.method || next.method === "GET") ? str(next.href) : "";
        more.hidden = !nextHref;
        render();
      } catch (err) {
        resultBox.removeAttribute("aria-busy");
        replace(resultBox, message("error", `Could not search the products: ${errorText(err)}`));
      }
    };

    const form = h(
      "form",
      { class: "filters card", role: "search", "aria-label": "Product filters" },
      field("Collection", collection),
      field("Site", site),
      field("From", from),
      field("To", to),
      field("Product id", text),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Search")),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void search();
    });
    text.addEventListener("input", render);
    site.addEventListener("change", () => void search());
    collection.addEventListener("change", () => void search());
    more.addEventListener("click", () => void search(true));

    replace(root, h("h1", null, "Products"), form, status, resultBox, more);

    try {
      const [collections, sites, processes] = await Promise.all([
        api<unknown>("/stac/collections"),
        loadSites(),
        api<unknown>("/processes").catch(() => null),
      ]);
      // A collection named after a processor (or the MDB) holds products capmon made; the
      // others hold input products (Sentinel-1/2, Landsat).
      const made = new Set(["mdb", ...listOf(processes, "processes").map((p) => str(p.id))]);
      const all = listOf(collections, "collections");
      const outputs = all.filter((c) => made.has(str(c.id)));
      const inputs = all.filter((c) => !made.has(str(c.id)));
      groups = { outputs: outputs.map((c) => str(c.id)), inputs: inputs.map((c) => str(c.id)) };
      const option = (c: Record<string, unknown>): HTMLOptionElement =>
        h("option", { value: str(c.id) }, `${str(c.title, str(c.id))} (${str(c.id)})`);
      collection.append(
        h("option", { value: "group:outputs", selected: true }, "every processor product"),
        h("optgroup", { label: "Processor products" }, outputs.map(option)),
        h("option", { value: "group:inputs" }, "every input product"),
        h("optgroup", { label: "Input products" }, inputs.map(option)),
        h("option", { value: "" }, "everything"),
      );
      siteBoxes = new Map(sites.filter((s) => s.bbox).map((s) => [s.name, s.bbox!]));
      for (const s of sites) site.append(h("option", { value: s.name }, s.name));
    } catch (err) {
      replace(status, message("error", `Could not list the collections: ${errorText(err)}`));
    }
    // Links from other pages (a job's results) name a collection, a site or an item id.
    const wanted = params.get("collection");
    if (wanted && [...collection.options].some((o) => o.value === wanted)) collection.value = wanted;
    const wantedSite = params.get("site");
    if (wantedSite && [...site.options].some((o) => o.value === wantedSite)) site.value = wantedSite;
    text.value = params.get("q") ?? "";
    await search();
  },
};
