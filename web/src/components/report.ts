// Import reports (declarations, LUT, configs, practices): counts as a table with readable
// labels, problems by row, crop-code checks, and the remaining fields as a definition list.

import { formatValue, h, isRecord, str } from "../dom";

const COUNT_LABELS: Record<string, string> = {
  read: "features read",
  imported: "parcels imported from the file",
  dropped_non_polygon: "non-polygon features dropped",
  invalid: "invalid geometries (GeomValid false)",
  repaired: "geometries repaired",
  unrepairable: "geometries that could not be repaired",
  duplicates: "duplicate geometries (Duplic)",
  overlaps: "overlapping parcels (Overlap > 10 %)",
  zero_s2_pixels: "parcels without a 10 m pixel (S2Pix = 0)",
  zero_s1_pixels: "parcels without a 20 m pixel (S1Pix = 0)",
  missing_crop_code: "parcels without a crop code",
  missing_holding_id: "parcels without a holding id",
  suffixed_ids: "duplicate parcel ids given -A/-B suffixes",
  inserted: "new parcels",
  updated: "updated parcels",
  unchanged: "unchanged parcels",
  deleted: "parcels deleted (missing from the file)",
  kept: "parcels kept from the previous version",
  parcels: "rows in the parcels table",
  active_parcels: "parcels not deleted",
};

const WARN_COUNTS = new Set([
  "dropped_non_polygon",
  "invalid",
  "unrepairable",
  "duplicates",
  "overlaps",
  "zero_s2_pixels",
  "missing_crop_code",
  "missing_holding_id",
  "suffixed_ids",
]);

function humanKey(key: string): string {
  return key.replace(/_/g, " ");
}

function countsTable(counts: Record<string, unknown>): HTMLElement {
  return h(
    "table",
    { class: "report-counts" },
    h("caption", null, "Counts"),
    h("thead", null, h("tr", null, h("th", { scope: "col" }, "what"), h("th", { scope: "col", class: "num" }, "count"))),
    h(
      "tbody",
      null,
      Object.entries(counts).map(([key, value]) =>
        h(
          "tr",
          { class: WARN_COUNTS.has(key) && typeof value === "number" && value > 0 ? "warn" : undefined },
          h("th", { scope: "row" }, COUNT_LABELS[key] ?? humanKey(key)),
          h("td", { class: "num" }, formatValue(value)),
        ),
      ),
    ),
  );
}

function problemsTable(problems: Record<string, unknown>, idHeader = "parcel id"): HTMLElement | null {
  const rows: HTMLElement[] = [];
  for (const [kind, listing] of Object.entries(problems)) {
    if (!isRecord(listing)) continue;
    const listed = Array.isArray(listing.rows) ? listing.rows.filter(isRecord) : [];
    for (const row of listed) {
      rows.push(
        h(
          "tr",
          null,
          h("td", null, humanKey(kind)),
          h("td", { class: "num" }, str(row.row)),
          h("td", null, str(row.ori_id ?? row.id)),
          h("td", null, str(row.detail ?? row.message)),
        ),
      );
    }
    const hidden = Number(listing.count ?? 0) - listed.length;
    if (hidden > 0) {
      rows.push(h("tr", null, h("td", null, humanKey(kind)), h("td"), h("td"), h("td", null, `… and ${hidden} more`)));
    }
  }
  if (!rows.length) return null;
  return h(
    "table",
    { class: "report-problems" },
    h("caption", null, "Problems by row (first rows of each kind)"),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", { scope: "col" }, "problem"),
        h("th", { scope: "col", class: "num" }, "row"),
        h("th", { scope: "col" }, idHeader),
        h("th", { scope: "col" }, "detail"),
      ),
    ),
    h("tbody", null, rows),
  );
}

function definitionList(entries: [string, unknown][]): HTMLElement | null {
  const items = entries.filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0));
  if (!items.length) return null;
  return h(
    "dl",
    { class: "report-facts" },
    items.map(([key, value]) => [
      h("dt", null, humanKey(key)),
      h("dd", null, Array.isArray(value) ? value.map((v) => formatValue(v)).join(", ") : formatValue(value)),
    ]),
  );
}

/** The report of an upload; `title` names what was imported. */
export function renderReport(report: unknown, title = "Import report"): HTMLElement {
  const section = h("section", { class: "report", "aria-label": title }, h("h3", null, title));
  if (!isRecord(report)) {
    section.append(h("pre", null, formatValue(report)));
    return section;
  }
  // Some answers wrap the report: {"report": {...}, "version": 3, ...}
  const inner = isRecord(report.report) ? { ...report, ...report.report } : report;
  // A crop LUT's rows are crop codes, not parcels.
  const idHeader = inner.kind === "sen4cap" || inner.kind === "hcat" || inner.kind === "lut" || "crop_codes" in inner ? "crop code" : "parcel id";
  const facts: [string, unknown][] = [];
  const blocks: HTMLElement[] = [];
  for (const [key, value] of Object.entries(inner)) {
    if (key === "report" || key === "links") continue;
    if (key === "counts" && isRecord(value)) blocks.push(countsTable(value));
    else if (key === "problems" && isRecord(value)) {
      const table = problemsTable(value, idHeader);
      if (table) blocks.push(table);
    } else if ((key === "skipped" || key === "unknown_ids") && isRecord(value) && Array.isArray(value.rows)) {
      const table = problemsTable({ [key]: value }, idHeader);
      if (table) blocks.push(table);
      facts.push([key, value.count]);
    } else if (isRecord(value) && key !== "timings") {
      const nested = definitionList(Object.entries(value));
      if (nested) blocks.push(h("div", { class: "report-block" }, h("h4", null, humanKey(key)), nested));
    } else if (key !== "timings") facts.push([key, value]);
  }
  const dl = definitionList(facts);
  if (dl) section.append(dl);
  section.append(...blocks);
  return section;
}
