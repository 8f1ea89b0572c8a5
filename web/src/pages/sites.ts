// Sites and seasons: the sites the user may see, creating a site from its AOI file, a site's
// seasons (create, enable/disable, delete), and the uploads of a site with their import reports:
// declarations (with a column-mapping form fed by the file's own columns), crop LUT, L4B and
// L4C configurations and L4C practice tables.

import { ApiError, api, path, request } from "../api";
import { canWrite, loadMe, loadSite, loadSites, select, type Me, type SiteInfo } from "../context";
import { fileColumns, guessColumn } from "../components/columns";
import { renderReport } from "../components/report";
import { field, formatDate, formatValue, h, isRecord, listOf, message, replace, str, uid } from "../dom";
import { navigate } from "../nav";
import type { Page } from "../page";

function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.describe();
  return err instanceof Error ? err.message : String(err);
}

/** Submits a multipart form and shows the answer's report (or the error) in `out`. */
async function submitUpload(
  url: string,
  form: FormData,
  out: HTMLElement,
  title: string,
  button: HTMLButtonElement,
  controls: Record<string, string> = {},
): Promise<unknown> {
  button.disabled = true;
  out.setAttribute("aria-busy", "true");
  replace(out, message("info", "Uploading and checking…"));
  try {
    const answer = await request(url, { method: "POST", form });
    replace(out, message("success", `${title}: imported.`), renderReport(answer.body, `${title} – report`));
    return answer.body;
  } catch (err) {
    const parts: HTMLElement[] = [message("error", `${title} was not imported: ${inFormTerms(errorText(err), controls)}`)];
    if (err instanceof ApiError && isRecord(err.body) && isRecord(err.body.report)) {
      parts.push(renderReport(err.body.report, `${title} – report`));
    }
    replace(out, parts);
    return null;
  } finally {
    button.disabled = false;
    out.removeAttribute("aria-busy");
  }
}

/** The service's messages share the import code with the CLI and may cite its options: the
 * form names its own controls instead. */
const DECLARATION_CONTROLS: Record<string, string> = {
  "--on-duplicate-id suffix": "“Duplicate parcel ids: keep them with -A/-B suffixes” below",
  "--on-duplicate-id": "“Duplicate parcel ids”",
  "--parcel-id-col": "“Parcel id column(s)”",
  "--holding-id-col": "“Holding id column(s)”",
  "--crop-code-col": "“Crop code column”",
  "--skip-non-polygons": "“Drop non-polygon features”",
  "--repair": "“Repair invalid geometries”",
  "--mode": "“Mode”",
};

function inFormTerms(text: string, controls: Record<string, string>): string {
  let out = text;
  // Longest first: "--on-duplicate-id suffix" before "--on-duplicate-id".
  for (const flag of Object.keys(controls).sort((a, b) => b.length - a.length)) out = out.split(flag).join(controls[flag]!);
  return out;
}

const DECLARATION_SUFFIXES = [".zip", ".gpkg", ".gml", ".geojson", ".json", ".parquet", ".geoparquet", ".shp"];

/** Why the server would refuse this declarations file, said before its columns are listed. */
function refusedDeclarations(fileName: string): string | null {
  const lower = fileName.toLowerCase();
  if (DECLARATION_SUFFIXES.some((suffix) => lower.endsWith(suffix))) return null;
  const what = lower.endsWith(".csv") || lower.endsWith(".txt") ? "A CSV file has no parcel geometries" : "This format is not read";
  return `${fileName}: ${what}; declarations are a zipped shapefile, GeoPackage, GML, GeoJSON or GeoParquet file.`;
}

function fileInput(name: string, accept: string, required = true): HTMLInputElement {
  return h("input", { type: "file", name, accept, required });
}

function yearInput(defaultYear: string): HTMLInputElement {
  return h("input", { type: "number", name: "year", min: 2000, max: 2100, step: 1, value: defaultYear, required: true });
}

// ---- the site list and the new-site form ---------------------------------------------------

function sitesTable(sites: SiteInfo[], current: string | undefined): HTMLElement {
  if (!sites.length) return message("info", "No site yet.");
  return h(
    "table",
    { class: "data sites-table" },
    h("caption", { class: "sr-only" }, "Sites"),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", { scope: "col" }, "site"),
        h("th", { scope: "col" }, "tiles"),
        h("th", { scope: "col", class: "num" }, "seasons"),
        h("th", { scope: "col" }, "state"),
      ),
    ),
    h(
      "tbody",
      null,
      sites.map((site) =>
        h(
          "tr",
          { class: site.name === current ? "selected" : undefined, "aria-selected": site.name === current ? "true" : undefined },
          h("th", { scope: "row" }, h("a", { href: `#/sites?site=${encodeURIComponent(site.name)}` }, site.name)),
          h("td", null, site.tiles.join(", ")),
          h("td", { class: "num" }, site.seasons.length ? String(site.seasons.length) : ""),
          h("td", null, site.enabled ? "enabled" : "disabled"),
        ),
      ),
    ),
  );
}

function newSiteForm(onCreated: (name: string) => void): HTMLElement {
  const out = h("div", { class: "upload-result", "aria-live": "polite" });
  // The server's rule (capmon.sites.check_site_name). Browsers compile `pattern` with the
  // `v` flag, where a bare "-" in a class is a syntax error: it is escaped.
  const name = h("input", {
    name: "name",
    required: true,
    maxlength: 128,
    pattern: "[A-Za-z0-9]([A-Za-z0-9 _.\\-]{0,126}[A-Za-z0-9 _\\-])?",
    autocomplete: "off",
  });
  const aoi = fileInput("file", ".zip,.gpkg,.geojson,.json,.gml,.kml,.parquet");
  const button = h("button", { type: "submit" }, "Create site");
  const form = h(
    "form",
    { class: "card form-grid" },
    field("Name", name, "1 to 128 letters, digits, spaces, '_', '-' or '.'; starts with a letter or digit, does not end with '.'"),
    field("Area of interest", aoi, "zipped shapefile, GeoPackage or GeoJSON polygon(s)"),
    h("div", { class: "actions" }, button),
    out,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = new FormData();
    body.set("name", name.value.trim());
    const file = aoi.files?.[0];
    if (file) body.set("file", file, file.name);
    void submitUpload("/sites", body, out, `Site ${name.value.trim()}`, button).then((answer) => {
      if (answer) onCreated(name.value.trim());
    });
  });
  return h("details", { class: "create-site" }, h("summary", null, "Create a site from its AOI file"), form);
}

// ---- seasons --------------------------------------------------------------------------------

function seasonsSection(site: SiteInfo, writable: boolean, reload: () => void): HTMLElement {
  const status = h("div", { class: "status-region", "aria-live": "polite" });
  const rows = site.seasons.map((season) => {
    const actions: HTMLElement[] = [
      h(
        "a",
        {
          class: "button small",
          href: `#/map?site=${encodeURIComponent(site.name)}&season=${encodeURIComponent(season.name)}`,
          onclick: () => select({ site: site.name, season: season.name }),
        },
        "Map",
      ),
    ];
    if (writable) {
      actions.push(
        h(
          "button",
          {
            type: "button",
            class: "small secondary",
            "aria-label": `${season.enabled ? "Disable" : "Enable"} season ${season.name}`,
            onclick: async () => {
              try {
                await api(path("sites", site.name, "seasons", season.name), {
                  method: "PATCH",
                  json: { enabled: !season.enabled },
                });
                reload();
              } catch (err) {
                replace(status, message("error", errorText(err)));
              }
            },
          },
          season.enabled ? "Disable" : "Enable",
        ),
        h(
          "button",
          {
            type: "button",
            class: "small danger",
            "aria-label": `Delete season ${season.name}`,
            onclick: async () => {
              if (!confirm(`Delete season ${season.name} of ${site.name}?`)) return;
              try {
                await api(path("sites", site.name, "seasons", season.name), { method: "DELETE" });
                reload();
              } catch (err) {
                replace(status, message("error", errorText(err)));
              }
            },
          },
          "Delete",
        ),
      );
    }
    return h(
      "tr",
      null,
      h("th", { scope: "row" }, season.name),
      h("td", null, formatDate(season.start)),
      h("td", null, formatDate(season.mid)),
      h("td", null, formatDate(season.end)),
      h("td", null, season.enabled ? "enabled" : "disabled"),
      h("td", { class: "row-actions" }, actions),
    );
  });
  const table = site.seasons.length
    ? h(
        "table",
        { class: "data" },
        h("caption", { class: "sr-only" }, `Seasons of ${site.name}`),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["season", "start", "mid", "end", "state", ""].map((label) => h("th", { scope: "col" }, label)),
          ),
        ),
        h("tbody", null, rows),
      )
    : message("info", "No season yet.");

  let form: HTMLElement | null = null;
  if (writable) {
    const out = h("div", { "aria-live": "polite" });
    const year = new Date().getFullYear();
    const name = h("input", { name: "name", required: true, value: String(year), autocomplete: "off" });
    const start = h("input", { type: "date", name: "start", required: true, value: `${year}-02-01` });
    const mid = h("input", { type: "date", name: "mid", required: true, value: `${year}-06-15` });
    const end = h("input", { type: "date", name: "end", required: true, value: `${year}-11-30` });
    const enabled = h("input", { type: "checkbox", name: "enabled", checked: true, id: uid("enabled") });
    const button = h("button", { type: "submit" }, "Create season");
    const seasonForm = h(
      "form",
      { class: "card form-grid season-form", "aria-label": "New season" },
      field("Name", name),
      field("Start", start),
      field("Mid", mid, "the date the early-season products look at"),
      field("End", end),
      h("div", { class: "field field-check" }, enabled, h("label", { for: enabled.id }, "Enabled")),
      h("div", { class: "actions" }, button),
      out,
    );
    form = h("details", { class: "add-season", open: site.seasons.length === 0 }, h("summary", null, "Add a season"), seasonForm);
    seasonForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      try {
        await api(path("sites", site.name, "seasons"), {
          method: "POST",
          json: { name: name.value.trim(), start: start.value, mid: mid.value, end: end.value, enabled: enabled.checked },
        });
        reload();
      } catch (err) {
        replace(out, message("error", `The season was not created: ${errorText(err)}`));
      } finally {
        button.disabled = false;
      }
    });
  }
  return h("section", { class: "seasons", "aria-labelledby": "seasons-h" }, h("h3", { id: "seasons-h" }, "Seasons"), status, table, form);
}

// ---- uploads --------------------------------------------------------------------------------

interface UploadTab {
  id: string;
  label: string;
  build(site: SiteInfo, year: string): HTMLElement;
}

function declarationsForm(site: SiteInfo, year: string): HTMLElement {
  const out = h("div", { class: "upload-result", "aria-live": "polite" });
  const file = fileInput("file", ".zip,.gpkg,.gml,.geojson,.json,.parquet,.shp");
  const listId = uid("columns");
  const columns = h("datalist", { id: listId });
  const columnsNote = h("small", { class: "hint", "aria-live": "polite" });
  const parcelId = h("input", { name: "parcel_id_col", required: true, list: listId, autocomplete: "off", placeholder: "e.g. PARCEL_ID" });
  const holdingId = h("input", { name: "holding_id_col", list: listId, autocomplete: "off", placeholder: "e.g. HOLDING_ID" });
  const cropCode = h("input", { name: "crop_code_col", required: true, list: listId, autocomplete: "off", placeholder: "e.g. CROP_CODE" });
  const yearField = yearInput(year);
  const mode = h(
    "select",
    { name: "mode" },
    h("option", { value: "update", selected: true }, "update: merge with the previous version"),
    h("option", { value: "replace" }, "replace: the file is the whole declaration set"),
    h("option", { value: "incremental" }, "incremental: add and change, delete nothing"),
  );
  const duplicates = h(
    "select",
    { name: "on_duplicate_id" },
    h("option", { value: "error", selected: true }, "reject the file"),
    h("option", { value: "suffix" }, "keep them with -A/-B suffixes"),
  );
  const repair = h("input", { type: "checkbox", name: "repair", id: uid("repair") });
  const skip = h("input", { type: "checkbox", name: "skip_non_polygons", id: uid("skip") });
  file.addEventListener("change", async () => {
    const chosen = file.files?.[0];
    replace(columns);
    columnsNote.textContent = "";
    replace(out);
    if (!chosen) return;
    const refused = refusedDeclarations(chosen.name);
    if (refused) {
      replace(out, message("error", refused));
      return;
    }
    const names = await fileColumns(chosen);
    if (!names) {
      columnsNote.textContent = "Type the column names (the browser cannot read this format's columns).";
      return;
    }
    replace(columns, names.map((n) => h("option", { value: n })));
    columnsNote.textContent = `Columns in the file: ${names.join(", ")}`;
    if (!parcelId.value) parcelId.value = guessColumn(names, "parcel");
    if (!holdingId.value) holdingId.value = guessColumn(names, "holding");
    if (!cropCode.value) cropCode.value = guessColumn(names, "crop");
  });
  const button = h("button", { type: "submit" }, "Upload declarations");
  const form = h(
    "form",
    { class: "form-grid", "aria-label": "Upload declarations" },
    field("Declarations file", file, "zipped shapefile, GeoPackage, GML, GeoJSON or GeoParquet"),
    field("Year", yearField),
    h(
      "fieldset",
      { class: "mapping" },
      h("legend", null, "Column mapping"),
      columnsNote,
      columns,
      field("Parcel id column(s)", parcelId, "comma-separated when the id is made of several columns"),
      field("Holding id column(s)", holdingId, "optional; comma-separated"),
      field("Crop code column", cropCode, "the code looked up in the crop LUT"),
    ),
    field("Mode", mode),
    field("Duplicate parcel ids", duplicates),
    h("div", { class: "field field-check" }, repair, h("label", { for: repair.id }, "Repair invalid geometries")),
    h("div", { class: "field field-check" }, skip, h("label", { for: skip.id }, "Drop non-polygon features")),
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = new FormData();
    const chosen = file.files?.[0];
    if (chosen) body.set("file", chosen, chosen.name);
    body.set("year", yearField.value);
    body.set("parcel_id_col", parcelId.value.trim());
    if (holdingId.value.trim()) body.set("holding_id_col", holdingId.value.trim());
    body.set("crop_code_col", cropCode.value.trim());
    body.set("mode", mode.value);
    body.set("on_duplicate_id", duplicates.value);
    body.set("repair", String(repair.checked));
    body.set("skip_non_polygons", String(skip.checked));
    void submitUpload(path("sites", site.name, "declarations"), body, out, "Declarations", button, DECLARATION_CONTROLS).then((answer) => {
      void refreshStored(site);
      if (answer) document.dispatchEvent(new CustomEvent("capmon:declarations", { detail: site.name }));
    });
  });
  return h("div", null, form, out);
}

function simpleUpload(
  site: SiteInfo,
  year: string,
  route: string,
  title: string,
  accept: string,
  extra: { label: string; control: HTMLInputElement | HTMLSelectElement; hint?: string }[] = [],
): HTMLElement {
  const out = h("div", { class: "upload-result", "aria-live": "polite" });
  const file = fileInput("file", accept);
  const yearField = yearInput(year);
  const button = h("button", { type: "submit" }, `Upload ${title}`);
  const form = h(
    "form",
    { class: "form-grid", "aria-label": `Upload ${title}` },
    field(`${title} file`, file),
    field("Year", yearField),
    extra.map((e) => field(e.label, e.control, e.hint)),
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = new FormData();
    const chosen = file.files?.[0];
    if (chosen) body.set("file", chosen, chosen.name);
    body.set("year", yearField.value);
    for (const e of extra) if (e.control.value.trim()) body.set(e.control.name, e.control.value.trim());
    void submitUpload(path("sites", site.name, route), body, out, title, button).then(() => refreshStored(site));
  });
  return h("div", null, form, out);
}

const UPLOADS: UploadTab[] = [
  { id: "declarations", label: "Declarations", build: declarationsForm },
  {
    id: "lut",
    label: "Crop LUT",
    build: (site, year) =>
      simpleUpload(site, year, "luts", "Crop LUT", ".csv,.txt", [
        {
          label: "Format",
          control: h(
            "select",
            { name: "format" },
            h("option", { value: "sen4cap", selected: true }, "Sen4CAP LUT CSV"),
            h("option", { value: "hcat" }, "EuroCrops HCAT CSV"),
          ),
        },
      ]),
  },
  {
    id: "l4b",
    label: "L4B config",
    build: (site, year) => simpleUpload(site, year, path("configs", "l4b").slice(1), "L4B configuration", ".cfg,.txt,.ini"),
  },
  {
    id: "l4c",
    label: "L4C config",
    build: (site, year) =>
      simpleUpload(site, year, path("configs", "l4c").slice(1), "L4C configuration", ".cfg,.txt,.ini", [
        {
          label: "Country",
          control: h("input", { name: "country", required: true, pattern: "[A-Za-z]{2,3}", placeholder: "e.g. NLD" }),
          hint: "2- or 3-letter code of the country's rules",
        },
      ]),
  },
  {
    id: "practices",
    label: "Practices",
    build: (site, year) =>
      simpleUpload(site, year, "practices", "Practices", ".csv,.txt", [
        {
          label: "Practice",
          control: h(
            "select",
            { name: "practice" },
            h("option", { value: "" }, "from the file"),
            h("option", { value: "catchcrop" }, "catch crop"),
            h("option", { value: "fallow" }, "fallow land"),
            h("option", { value: "nfc" }, "nitrogen-fixing crop"),
            h("option", { value: "na" }, "no practice (harvest only)"),
          ),
        },
      ]),
  },
];

/** Accessible tabs (arrow keys move between tabs, as the ARIA authoring practices describe). */
function uploadTabs(site: SiteInfo, year: string): HTMLElement {
  const tabs: HTMLButtonElement[] = [];
  const panels: HTMLElement[] = [];
  const built = new Set<number>();
  const show = (index: number, focus = false): void => {
    tabs.forEach((tab, i) => {
      const active = i === index;
      tab.setAttribute("aria-selected", String(active));
      tab.tabIndex = active ? 0 : -1;
      panels[i]!.hidden = !active;
    });
    if (!built.has(index)) {
      panels[index]!.append(UPLOADS[index]!.build(site, year));
      built.add(index);
    }
    if (focus) tabs[index]!.focus();
  };
  UPLOADS.forEach((upload, i) => {
    const tabId = `tab-${upload.id}`;
    const panelId = `panel-${upload.id}`;
    tabs.push(
      h(
        "button",
        {
          type: "button",
          role: "tab",
          id: tabId,
          "aria-controls": panelId,
          onclick: () => show(i),
          onkeydown: (event: KeyboardEvent) => {
            const last = UPLOADS.length - 1;
            if (event.key === "ArrowRight") show(i === last ? 0 : i + 1, true);
            else if (event.key === "ArrowLeft") show(i === 0 ? last : i - 1, true);
            else if (event.key === "Home") show(0, true);
            else if (event.key === "End") show(last, true);
            else return;
            event.preventDefault();
          },
        },
        upload.label,
      ),
    );
    panels.push(h("div", { role: "tabpanel", id: panelId, "aria-labelledby": tabId, class: "tabpanel", tabindex: "0" }));
  });
  const element = h(
    "div",
    { class: "tabs" },
    h("div", { role: "tablist", "aria-label": "Uploads" }, tabs),
    panels,
  );
  show(0);
  return element;
}

// ---- what the site holds: declaration versions, LUTs, configs, practice tables ------------------

let storedBox: HTMLElement | null = null;

interface StoredKind {
  title: string;
  route: string;
  columns: [string, (row: Record<string, unknown>) => string][];
}

const STORED: StoredKind[] = [
  {
    title: "Declarations",
    route: "declarations",
    columns: [
      ["year", (r) => str(r.year)],
      ["version", (r) => str(r.version)],
      ["mode", (r) => str(r.mode)],
      ["parcels", (r) => str(r.parcels ?? r.parcel_count)],
      ["file", (r) => str(r.source_file).split("/").at(-1) ?? ""],
      ["imported", (r) => formatDate(r.created_at ?? r.created)],
    ],
  },
  {
    title: "Crop LUTs",
    route: "luts",
    columns: [
      ["year", (r) => str(r.year)],
      ["version", (r) => str(r.version)],
      ["kind", (r) => str(r.kind)],
      ["entries", (r) => str(r.entries)],
      ["file", (r) => str(r.source_file).split("/").at(-1) ?? ""],
      ["imported", (r) => formatDate(r.created_at)],
    ],
  },
  {
    title: "L4B and L4C configs",
    route: "configs",
    columns: [
      ["year", (r) => str(r.year)],
      ["version", (r) => str(r.version)],
      ["kind", (r) => str(r.kind).toUpperCase()],
      ["stored", (r) => str(r.stored ?? r.path)], // workspace-relative, not a server path
    ],
  },
  {
    title: "Practice tables",
    route: "practices",
    columns: [
      ["year", (r) => str(r.year)],
      ["version", (r) => str(r.version)],
      ["practice", (r) => str(r.practice)],
      ["stored", (r) => str(r.stored)],
    ],
  },
];

function storedTable(kind: StoredKind, rows: Record<string, unknown>[]): HTMLElement {
  const id = `stored-${kind.route}`;
  const width = kind.columns.length + 1;
  // A row's report opens in a full-width row below it (never inside a narrow cell, where it
  // widened the table over its neighbour).
  const bodyRows = rows.flatMap((row) => {
    const cells = kind.columns.map(([label, value]) => h("td", { class: label === "file" || label === "stored" ? "path" : undefined }, value(row)));
    if (!isRecord(row.report)) return [h("tr", null, cells, h("td"))];
    const name = `${kind.title} ${str(row.year)} v${str(row.version)}`;
    const reportRow = h("tr", { class: "report-row", hidden: true }, h("td", { colspan: width }, renderReport(row.report, name)));
    const toggle = h(
      "button",
      { type: "button", class: "small secondary", "aria-expanded": "false", "aria-label": `Show the report of ${name}` },
      "show",
    );
    toggle.addEventListener("click", () => {
      const open = reportRow.hidden;
      reportRow.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      toggle.setAttribute("aria-label", `${open ? "Hide" : "Show"} the report of ${name}`);
      toggle.textContent = open ? "hide" : "show";
    });
    return [h("tr", null, cells, h("td", null, toggle)), reportRow];
  });
  return h(
    "section",
    { class: "stored", "aria-labelledby": id },
    h("h4", { id }, `${kind.title} (${rows.length})`),
    rows.length
      ? h(
          "div",
          { class: "table-scroll" },
          h(
            "table",
            { class: "data compact stored-table", dataset: { kind: kind.route } },
            h("caption", { class: "sr-only" }, kind.title),
            h("thead", null, h("tr", null, [...kind.columns.map(([label]) => h("th", { scope: "col" }, label)), h("th", { scope: "col" }, "report")])),
            h("tbody", null, bodyRows),
          ),
        )
      : h("p", { class: "muted" }, "None yet."),
  );
}

async function refreshStored(site: SiteInfo): Promise<void> {
  const box = storedBox;
  if (!box) return;
  const sections = await Promise.all(
    STORED.map(async (kind) => {
      try {
        const answer = await api<unknown>(path("sites", site.name, kind.route));
        // Newest first: the version an upload just made is on top.
        return storedTable(kind, listOf(answer, kind.route).reverse());
      } catch (err) {
        return h("section", { class: "stored" }, h("h4", null, kind.title), message("error", errorText(err)));
      }
    }),
  );
  replace(box, sections);
}

// ---- parcel figures ------------------------------------------------------------------------

async function parcelStats(site: SiteInfo): Promise<HTMLElement> {
  const box = h("section", { class: "parcel-stats", "aria-labelledby": "stats-h" });
  try {
    const stats = await api<Record<string, unknown>>(path("sites", site.name, "parcels", "stats"));
    const crops = Array.isArray(stats.crops) ? stats.crops.filter(isRecord) : [];
    replace(
      box,
      h("h2", { id: "stats-h" }, `Parcels ${str(stats.year)} (v${str(stats.version)})`),
      h(
        "dl",
        { class: "facts" },
        [
          ["parcels", stats.parcels],
          ["area (ha)", stats.area_ha],
          ["invalid geometries", stats.invalid],
          ["duplicates", stats.duplicates],
          ["overlaps", stats.overlaps],
          ["without a 10 m pixel", stats.zero_s2_pixels],
          ["deleted (history)", stats.deleted],
          ["crop LUT version", stats.lut_version ?? "none"],
        ].map(([k, v]) => [h("dt", null, String(k)), h("dd", null, formatValue(v))]),
      ),
      crops.length
        ? h(
            "table",
            { class: "data compact" },
            h("caption", { class: "sr-only" }, "Parcels by declared crop"),
            h("thead", null, h("tr", null, ["crop code", "crop", "parcels", "ha"].map((l, i) => h("th", { scope: "col", class: i >= 2 ? "num" : undefined }, l)))),
            h(
              "tbody",
              null,
              crops.slice(0, 15).map((c) =>
                h(
                  "tr",
                  null,
                  h("td", null, str(c.ori_crop, "—")),
                  h("td", null, str(c.ct)),
                  h("td", { class: "num" }, formatValue(c.parcels)),
                  h("td", { class: "num" }, formatValue(c.area_ha)),
                ),
              ),
            ),
          )
        : null,
      crops.length > 15 ? h("p", { class: "hint" }, `… and ${crops.length - 15} more crop codes`) : null,
    );
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) box.append(h("h2", { id: "stats-h" }, "Parcels"), message("info", "No declarations imported yet."));
    else box.append(h("h2", { id: "stats-h" }, "Parcels"), message("error", errorText(err)));
  }
  return box;
}

// ---- the page ---------------------------------------------------------------------------------

function siteDetail(site: SiteInfo, user: Me, reload: () => void): HTMLElement {
  const writable = canWrite(user, site.name);
  const year = site.seasons.map((s) => s.start.slice(0, 4)).filter(Boolean).at(-1) ?? String(new Date().getFullYear());
  storedBox = h("div", { class: "stored-grid" }, message("info", "Loading…"));
  void refreshStored(site);
  return h(
    "section",
    { class: "site-detail", "aria-labelledby": "site-h" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { id: "site-h" }, `Site ${site.name}`),
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            select({ site: site.name, season: site.seasons.at(-1)?.name });
            navigate("map", { site: site.name, ...(site.seasons.at(-1) ? { season: site.seasons.at(-1)!.name } : {}) });
          },
        },
        "Open on the map",
      ),
    ),
    h(
      "dl",
      { class: "facts" },
      h("dt", null, "tiles"),
      h("dd", null, site.tiles.join(", ") || "—"),
      h("dt", null, "state"),
      h("dd", null, site.enabled ? "enabled" : "disabled"),
      site.bbox ? [h("dt", null, "extent"), h("dd", null, site.bbox.map((v) => v.toFixed(4)).join(", "))] : null,
    ),
    seasonsSection(site, writable, reload),
    writable
      ? h("section", { class: "uploads", "aria-labelledby": "uploads-h" }, h("h3", { id: "uploads-h" }, "Uploads"), uploadTabs(site, year))
      : message("info", "Your role can read this site but not upload to it."),
    h("section", { "aria-labelledby": "stored-h" }, h("h3", { id: "stored-h" }, "Imported files"), storedBox),
  );
}

export const sitesPage: Page = {
  title: "Sites and seasons",
  async mount(root, params) {
    const user = await loadMe();
    const listBox = h("div", { "aria-live": "polite" }, message("info", "Loading sites…"));
    const detailBox = h("div", { class: "detail-box" });
    const statsBox = h("div", { "aria-live": "polite" });
    replace(
      root,
      h("h1", null, "Sites and seasons"),
      h(
        "div",
        { class: "columns" },
        h(
          "section",
          { class: "site-list", "aria-labelledby": "sites-h" },
          h("h2", { id: "sites-h" }, "Sites"),
          listBox,
          user.role === "admin" ? newSiteForm((name) => navigate("sites", { site: name })) : null,
          statsBox,
        ),
        detailBox,
      ),
    );
    const sites = await loadSites();
    const current = params.get("site") ?? sites[0]?.name;
    replace(listBox, sitesTable(sites, current));
    if (!current) {
      replace(detailBox, message("info", user.role === "admin" ? "Create a site to begin." : "You have no site."));
      return;
    }
    const show = async (refreshList = false): Promise<void> => {
      try {
        if (refreshList) replace(listBox, sitesTable(await loadSites(), current));
        const site = await loadSite(current);
        select({ site: site.name });
        replace(detailBox, siteDetail(site, user, () => void show(true)));
        replace(statsBox, await parcelStats(site));
      } catch (err) {
        replace(detailBox, message("error", `Could not open site ${current}: ${errorText(err)}`));
      }
    };
    await show();
    // A declarations upload changes the parcel figures: show the new version's.
    const onDeclarations = (event: Event): void => {
      const name = (event as CustomEvent<string>).detail;
      if (name !== current) return;
      void loadSite(name).then(async (site) => replace(statsBox, await parcelStats(site)));
    };
    document.addEventListener("capmon:declarations", onDeclarations);
    return () => {
      storedBox = null;
      document.removeEventListener("capmon:declarations", onDeclarations);
    };
  },
};
