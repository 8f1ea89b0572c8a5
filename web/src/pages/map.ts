// The map: the season's parcels as vector tiles coloured by a chosen layer (declared crop,
// product verdicts...), its legend, a date slider for dated layers, an optional signal raster
// (e.g. NDVI of one acquisition), and a side panel with the clicked parcel's attributes and a
// chart of its signals with the detected events. Everything comes from the capmon service;
// the style has no remote glyphs or sprites, and a basemap only when the workspace's
// settings.toml names one ([map] basemap, none by default).

import * as maplibregl from "maplibre-gl";
import type { MapGeoJSONFeature, StyleSpecification } from "maplibre-gl";
import "maplibre-gl/dist/maplibre-gl.css";
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?url";
import { ApiError, api, authHeaders, path, query } from "../api";
import { loadSite, loadSites, select, selection, type SiteInfo } from "../context";
import { CHART_SIGNALS, eventsList, parcelChart, parseEvents, parseTimeseries, type ParcelChart } from "../components/chart";
import { colorOf, fillColor, layerOf, legend, type MapLayer } from "../components/legend";
import { field, formatValue, h, isRecord, listOf, message, replace, str } from "../dom";
import { setParams } from "../nav";
import type { Page } from "../page";

maplibregl.setWorkerUrl(workerUrl);

/** The raster tiles' default range and colour map per signal (as the service's
 * ``raster_tiles.default_style``), for the raster's legend. */
const RASTER_RAMPS: Record<string, string[]> = {
  RdYlGn: ["#a50026", "#f46d43", "#fee08b", "#d9ef8b", "#66bd63", "#006837"],
  YlGn: ["#ffffe5", "#d9f0a3", "#78c679", "#238443", "#004529"],
  viridis: ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"],
  magma: ["#000004", "#51127c", "#b73779", "#fc8961", "#fcfdbf"],
  gray: ["#000000", "#ffffff"],
};

function rasterStyle(signal: string): [number, number, string] {
  if (signal === "NDVI") return [0, 1, "RdYlGn"];
  if (signal === "LAI") return [0, 7, "YlGn"];
  if (signal === "FAPAR" || signal === "FCOVER") return [0, 1, "YlGn"];
  if (signal.startsWith("COHE_")) return [0, 1, "viridis"];
  if (signal === "AMP_VVVH" || signal === "BCK_VVVH") return [0, signal === "BCK_VVVH" ? 12 : 6, "magma"];
  if (signal.startsWith("AMP_")) return [-15, 0, "gray"];
  if (signal.startsWith("BCK_")) return [-25, 0, "gray"];
  if (signal === "BRIGHTNESS") return [0, 0.6, "gray"];
  if (/^B\d/.test(signal)) return [0, 0.4, "gray"];
  return [-1, 1, "RdYlGn"];
}

function rasterLegend(signal: string, date: string): HTMLElement {
  const [min, max, ramp] = rasterStyle(signal);
  const colours = RASTER_RAMPS[ramp] ?? RASTER_RAMPS.gray!;
  return h(
    "div",
    { class: "legend raster-legend", role: "group", "aria-label": `Raster legend: ${signal}` },
    h("h3", null, `${signal}${date ? ` on ${date}` : ""}`),
    h("div", { class: "ramp", style: { background: `linear-gradient(to right, ${colours.join(", ")})` }, role: "img", "aria-label": `from ${min} to ${max}` }),
    h("div", { class: "ramp-labels" }, h("span", null, String(min)), h("span", null, String(max))),
  );
}

const SOURCE = "parcels";
const BASEMAP = "basemap";
const NO_VALUE_PATTERN = "no-value-hatch";
/** Parcels drawn as points (smaller than 3 screen pixels in the tiles) get this radius, so
 * that a few parcels across a country are still seen at the zoom that shows them all. */
const POINT_RADIUS = 4;

interface Basemap {
  tiles: string;
  attribution: string;
  maxZoom: number;
}

function basemapOf(listing: unknown): Basemap | null {
  if (!isRecord(listing) || !isRecord(listing.basemap) || typeof listing.basemap.tiles !== "string") return null;
  const max = listing.basemap.max_zoom;
  return { tiles: listing.basemap.tiles, attribution: str(listing.basemap.attribution), maxZoom: typeof max === "number" ? max : 19 };
}

/** Diagonal hatching: parcels the chosen layer has no value for (not a grey that could be
 * taken for "NR", "no data" or "not classified"). */
function hatchImage(): { width: number; height: number; data: Uint8Array } {
  const size = 8;
  const data = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const line = (x + y) % size < 2;
      data.set(line ? [87, 96, 106, 255] : [255, 255, 255, 255], (y * size + x) * 4);
    }
  }
  return { width: size, height: size, data };
}
const SOURCE_LAYER_CANDIDATES = ["parcels", "parcel", "layer"];
const RASTER = "signal-raster";
const PARCEL_LAYERS = ["parcels-selected", "parcels-line", "parcels-points", "parcels-novalue", "parcels-fill"];
const CLICKABLE_LAYERS = ["parcels-fill", "parcels-novalue", "parcels-points"];

function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.describe();
  return err instanceof Error ? err.message : String(err);
}

interface RasterProduct {
  id: string;
  date: string;
  signals: string[];
  label: string;
  cloud: number | null;
}

/** Acquisitions a signal raster can show: the `rasters` of the season's /layers listing. */
function rasterProducts(listing: unknown): RasterProduct[] {
  const products: RasterProduct[] = [];
  const rasters = isRecord(listing) && isRecord(listing.rasters) ? listing.rasters : listing;
  const candidates = isRecord(rasters) && Array.isArray(rasters.products) ? rasters.products : listOf(rasters, "products", "acquisitions");
  for (const p of candidates) {
    if (!isRecord(p)) continue;
    const id = str(p.id ?? p.product_id ?? p.product);
    if (!id) continue;
    products.push({
      id,
      date: str(p.date ?? p.datetime ?? p.acquired).slice(0, 10),
      signals: Array.isArray(p.signals) ? p.signals.map((s) => str(s)) : [],
      label: [str(p.type), str(p.sensor), typeof p.cloud_cover === "number" ? `${Math.round(p.cloud_cover)} % cloud` : ""].filter(Boolean).join(", "),
      cloud: typeof p.cloud_cover === "number" ? p.cloud_cover : null,
    });
  }
  return products.sort((a, b) => a.date.localeCompare(b.date));
}

function signalNames(listing: unknown): string[] {
  if (isRecord(listing) && Array.isArray(listing.signals)) {
    return listing.signals.map((s) => (isRecord(s) ? str(s.name ?? s.id ?? s.signal) : str(s))).filter(Boolean);
  }
  if (Array.isArray(listing)) return listing.map((s) => (isRecord(s) ? str(s.name ?? s.id ?? s.signal) : str(s))).filter(Boolean);
  return [];
}

const HIDDEN_ATTRIBUTES = new Set(["events", "links", "geometry", "bbox", "timeseries", "layers", "products", "attributes"]);

function factsList(entries: [string, unknown][], small = false): HTMLElement {
  return h(
    "dl",
    { class: `facts${small ? " small" : ""}` },
    entries.map(([k, v]) => [h("dt", null, k), h("dd", null, Array.isArray(v) ? v.map((x) => formatValue(x)).join(", ") : formatValue(v))]),
  );
}

/** The parcel's value in every map layer: the products' verdicts at a glance (dated layers
 * at the map's date, with every period in a disclosure). */
function verdictsTable(parcel: Record<string, unknown>, layers: MapLayer[], date: string): HTMLElement | null {
  const values = isRecord(parcel.layers) ? parcel.layers : null;
  if (!values) return null;
  const rows: HTMLElement[] = [];
  const ordered = [...layers.filter((l) => l.id in values), ...Object.keys(values).filter((id) => !layers.some((l) => l.id === id)).map((id) => layerOf({ id }))];
  for (const layer of ordered) {
    const entry = values[layer.id];
    if (!isRecord(entry)) continue;
    let value: unknown;
    let label: string;
    let periods: HTMLElement | null = null;
    if (Array.isArray(entry.values)) {
      const dates = Array.isArray(entry.dates) ? entry.dates.map((d) => str(d)) : [];
      const labels = Array.isArray(entry.labels) ? entry.labels : [];
      let index = dates.length - 1;
      if (date) for (let i = 0; i < dates.length; i++) if (dates[i]! <= date) index = i;
      value = entry.values[index];
      label = str(labels[index] ?? value, "—");
      periods = h(
        "details",
        { class: "periods" },
        h("summary", null, `${dates.length} periods`),
        h(
          "ul",
          { class: "plain" },
          dates.map((d, i) =>
            h(
              "li",
              null,
              h("span", { class: "swatch", style: { background: colorOf(layer, entry.values && (entry.values as unknown[])[i]) }, "aria-hidden": "true" }),
              ` ${d}: ${str(labels[i] ?? (entry.values as unknown[])[i], "—")}`,
            ),
          ),
        ),
      );
      if (dates[index]) label += ` (${dates[index]})`;
    } else {
      value = entry.value;
      label = str(entry.label ?? entry.value, "—");
    }
    rows.push(
      h(
        "tr",
        null,
        h("th", { scope: "row" }, layer.title),
        h("td", null, h("span", { class: "swatch", style: { background: colorOf(layer, value) }, "aria-hidden": "true" }), " ", label, periods),
      ),
    );
  }
  if (!rows.length) return null;
  return h("table", { class: "data compact verdicts" }, h("caption", { class: "sr-only" }, "Values of the parcel in each map layer"), h("tbody", null, rows));
}

/** Each product's rows for the parcel, one disclosure per product. */
function productBlocks(parcel: Record<string, unknown>): HTMLElement[] {
  const products = isRecord(parcel.products) ? parcel.products : {};
  const blocks: HTMLElement[] = [];
  const entryBlock = (title: string, entry: Record<string, unknown>): HTMLElement => {
    const product = isRecord(entry.product) ? entry.product : {};
    const rows = Array.isArray(entry.rows) ? entry.rows.filter(isRecord) : [];
    return h(
      "details",
      { class: "product-rows" },
      h("summary", null, `${title}${rows.length > 1 ? ` (${rows.length} rows)` : ""}`),
      product.name ? h("p", { class: "hint" }, str(product.name)) : null,
      rows.length
        ? rows.map((row) => factsList(Object.entries(row).filter(([, v]) => !isRecord(v) && !Array.isArray(v)), true))
        : h("p", { class: "muted" }, "No row for this parcel."),
    );
  };
  for (const [source, entry] of Object.entries(products)) {
    if (!isRecord(entry)) continue;
    if (isRecord(entry.product) || Array.isArray(entry.rows)) blocks.push(entryBlock(source.toUpperCase(), entry));
    else for (const [practice, sub] of Object.entries(entry)) if (isRecord(sub)) blocks.push(entryBlock(`${source.toUpperCase()} ${practice}`, sub));
  }
  return blocks;
}

function declaredFacts(parcel: Record<string, unknown>): HTMLElement {
  const attributes = isRecord(parcel.attributes) ? parcel.attributes : isRecord(parcel.properties) ? parcel.properties : {};
  const top = Object.entries(parcel).filter(([k, v]) => !HIDDEN_ATTRIBUTES.has(k) && !isRecord(v) && !Array.isArray(v));
  return factsList([...Object.entries(attributes).filter(([, v]) => !isRecord(v)), ...top]);
}

class MapView {
  readonly element: HTMLElement;
  private map: maplibregl.Map | null = null;
  private site: SiteInfo | null = null;
  private season = "";
  private layers: MapLayer[] = [];
  private layer: MapLayer | null = null;
  private date = "";
  private sourceLayer = "parcels";
  private signals: string[] = [];
  private products: RasterProduct[] = [];
  private bounds: [number, number, number, number] | null = null;
  private basemap: Basemap | null = null;
  private readonly attribution = h("div", { class: "map-attribution", hidden: true });
  private chart: ParcelChart | null = null;
  private selected = "";
  private lastFocus: HTMLElement | null = null;
  private resizeObserver: ResizeObserver | null = null;
  private panelToken = 0;

  private readonly siteSelect = h("select", { name: "site" });
  private readonly seasonSelect = h("select", { name: "season" });
  private readonly layerSelect = h("select", { name: "layer" });
  private readonly dateSlider = h("input", { type: "range", name: "date", min: 0, max: 0, step: 1, value: 0 });
  private readonly dateOutput = h("output", { class: "date-output", "aria-live": "polite" });
  private readonly dateField: HTMLElement;
  private readonly rasterToggle = h("input", { type: "checkbox", name: "raster", id: "raster-toggle" });
  private readonly rasterSignal = h("select", { name: "raster-signal" });
  private readonly rasterProduct = h("select", { name: "raster-product" });
  private readonly rasterOpacity = h("input", { type: "range", name: "raster-opacity", min: 0, max: 100, value: 80 });
  private readonly fillOpacity = h("input", { type: "range", name: "fill-opacity", min: 0, max: 100, value: 75 });
  private readonly parcelSearch = h("input", { type: "search", name: "parcel", placeholder: "parcel id", autocomplete: "off" });
  private readonly legendBox = h("div", { class: "legend-box" });
  private readonly rasterLegendBox = h("div", { class: "legend-box" });
  private readonly statusBox = h("div", { class: "map-status", role: "status", "aria-live": "polite" });
  private readonly mapBox = h("div", { class: "map", id: "map", role: "region", "aria-label": "Map of the parcels. Arrow keys pan, plus and minus zoom, Enter opens the parcel at the centre." });
  private readonly crosshair = h("div", { class: "crosshair", "aria-hidden": "true" });
  private readonly panel = h("aside", { class: "parcel-panel", "aria-labelledby": "parcel-h", hidden: true, tabindex: "-1" });
  private readonly rasterFields: HTMLElement;

  constructor(private readonly params: URLSearchParams) {
    this.dateField = h(
      "div",
      { class: "field date-field", hidden: true },
      h("label", { for: "date-slider" }, "Date"),
      this.dateSlider,
      this.dateOutput,
    );
    this.dateSlider.id = "date-slider";
    this.rasterFields = h(
      "div",
      { class: "raster-fields", hidden: true },
      field("Signal", this.rasterSignal),
      field("Acquisition", this.rasterProduct),
      field("Raster opacity", this.rasterOpacity),
    );
    const searchForm = h(
      "form",
      { class: "parcel-search", role: "search", "aria-label": "Find a parcel" },
      field("Find a parcel", this.parcelSearch, "its NewID or declared id"),
      h("button", { type: "submit", class: "small" }, "Open"),
    );
    searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const id = this.parcelSearch.value.trim();
      if (id) void this.openParcel(id, true);
    });
    const controls = h(
      "section",
      { class: "map-controls", "aria-label": "Map controls" },
      h("h1", { class: "map-title" }, "Map"),
      field("Site", this.siteSelect),
      field("Season", this.seasonSelect),
      field("Colour parcels by", this.layerSelect),
      this.dateField,
      field("Parcel opacity", this.fillOpacity),
      h("div", { class: "field field-check" }, this.rasterToggle, h("label", { for: "raster-toggle" }, "Show a signal raster")),
      this.rasterFields,
      searchForm,
      this.legendBox,
      this.rasterLegendBox,
      this.statusBox,
    );
    this.element = h("div", { class: "map-layout" }, controls, h("div", { class: "map-wrap" }, this.mapBox, this.crosshair, this.attribution), this.panel);

    this.siteSelect.addEventListener("change", () => void this.chooseSite(this.siteSelect.value));
    // Another season may hold other parcels: the map zooms to them.
    this.seasonSelect.addEventListener("change", () => void this.chooseSeason(this.seasonSelect.value).then(() => this.fitSite()));
    this.layerSelect.addEventListener("change", () => this.chooseLayer(this.layerSelect.value));
    this.dateSlider.addEventListener("input", () => this.chooseDate(this.layer?.dates[Number(this.dateSlider.value)] ?? ""));
    this.fillOpacity.addEventListener("input", () => {
      const opacity = Number(this.fillOpacity.value) / 100;
      this.map?.setPaintProperty("parcels-fill", "fill-opacity", opacity);
      this.map?.setPaintProperty("parcels-novalue", "fill-opacity", opacity);
      this.map?.setPaintProperty("parcels-points", "circle-opacity", opacity);
    });
    this.rasterToggle.addEventListener("change", () => this.updateRaster());
    this.rasterSignal.addEventListener("change", () => {
      this.fillRasterProducts();
      this.updateRaster();
    });
    this.rasterProduct.addEventListener("change", () => this.updateRaster());
    this.rasterOpacity.addEventListener("input", () => {
      if (this.map?.getLayer(RASTER)) this.map.setPaintProperty(RASTER, "raster-opacity", Number(this.rasterOpacity.value) / 100);
    });
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.closePanel();
      }
    });
  }

  private status(text: string, kind: "info" | "error" = "info"): void {
    replace(this.statusBox, text ? h("span", { class: kind === "error" ? "error-text" : "" }, text) : null);
  }

  async start(): Promise<void> {
    const sites = await loadSites();
    if (!sites.length) {
      this.status("You have no site.", "error");
      return;
    }
    const wanted = this.params.get("site") ?? selection().site ?? sites[0]!.name;
    replace(this.siteSelect, sites.map((s) => h("option", { value: s.name, selected: s.name === wanted }, s.name)));
    this.createMap();
    await this.chooseSite(this.siteSelect.value, this.params.get("season") ?? undefined);
  }

  private createMap(): void {
    const style: StyleSpecification = {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#f4f2ec" } }],
    };
    const map = new maplibregl.Map({
      container: this.mapBox,
      style,
      center: [4.5, 50.5],
      zoom: 7,
      attributionControl: false,
      maxPitch: 0,
      dragRotate: false,
      pitchWithRotate: false,
      touchPitch: false,
      fadeDuration: 0,
      canvasContextAttributes: { preserveDrawingBuffer: true },
      transformRequest: (url) => {
        // The token goes in a header to the service's own routes, never in the URL.
        if (url.startsWith(location.origin)) return { url, headers: authHeaders() };
        return { url };
      },
    });
    map.touchZoomRotate.disableRotation();
    map.once("load", () => {
      this.styleLoaded = true;
    });
    // For scripts driving the page (the browser tests): the map object on its container.
    Object.defineProperty(this.mapBox, "maplibreMap", { value: map, configurable: true });
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
    map.on("click", (event) => {
      const features = map.queryRenderedFeatures(event.point, { layers: CLICKABLE_LAYERS });
      const feature = features[0];
      if (feature) void this.openParcel(this.featureId(feature), false);
    });
    map.on("mousemove", (event) => {
      const hit = map.queryRenderedFeatures(event.point, { layers: CLICKABLE_LAYERS }).length > 0;
      map.getCanvas().style.cursor = hit ? "pointer" : "";
    });
    map.on("error", (event) => {
      const err = event.error as (Error & { status?: number }) | undefined;
      if (err?.status === 401) location.hash = "#/login?expired=1";
      else if (err) this.status(`Map: ${err.message}`, "error");
    });
    map.on("idle", () => {
      // Idle with the parcels' tiles loaded (not the empty style before the season is read).
      if (!map.getSource(SOURCE)) return;
      if (this.statusBox.textContent === "Loading tiles…") this.status("");
      this.mapBox.dataset.idle = "true";
    });
    map.on("dataloading", () => {
      this.mapBox.dataset.idle = "false";
    });
    map.getCanvas().addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        const center = map.project(map.getCenter());
        const feature = map.queryRenderedFeatures(center, { layers: CLICKABLE_LAYERS })[0];
        if (feature) void this.openParcel(this.featureId(feature), false);
        else this.status("No parcel at the centre of the map.");
      }
    });
    this.resizeObserver = new ResizeObserver(() => {
      map.resize();
      if (this.chart && !this.panel.hidden) this.chart.resize(this.chartWidth());
    });
    this.resizeObserver.observe(this.mapBox);
    this.map = map;
  }

  private featureId(feature: MapGeoJSONFeature): string {
    const props = feature.properties ?? {};
    for (const key of ["NewID", "parcel_id", "id", "newid"]) {
      if (props[key] !== undefined && props[key] !== null) return String(props[key]);
    }
    return feature.id !== undefined ? String(feature.id) : "";
  }

  private async chooseSite(name: string, season?: string): Promise<void> {
    this.closePanel();
    try {
      this.site = await loadSite(name);
    } catch (err) {
      this.status(`Could not open site ${name}: ${errorText(err)}`, "error");
      return;
    }
    select({ site: name });
    const seasons = this.site.seasons;
    const wanted = season ?? selection().season;
    const chosen = seasons.find((s) => s.name === wanted)?.name ?? seasons.at(-1)?.name ?? "";
    replace(this.seasonSelect, seasons.map((s) => h("option", { value: s.name, selected: s.name === chosen }, s.name)));
    if (!chosen) {
      this.status("This site has no season yet.", "error");
      return;
    }
    await this.chooseSeason(chosen);
    this.fitSite();
  }

  private fitSite(): void {
    const bbox = this.bounds ?? this.site?.bbox;
    if (bbox && this.map) this.map.fitBounds([[bbox[0], bbox[1]], [bbox[2], bbox[3]]], { padding: 24, duration: 0 });
  }

  private async chooseSeason(season: string): Promise<void> {
    if (!this.site) return;
    this.season = season;
    select({ season });
    this.closePanel();
    const base = path("sites", this.site.name, "seasons", season);
    this.status("Loading layers…");
    try {
      const [layersAnswer, signalsAnswer] = await Promise.all([
        api<unknown>(`${base}/layers`),
        api<unknown>(`${base}/signals`).catch(() => null),
      ]);
      const layerList = listOf(layersAnswer, "layers");
      this.layers = layerList.map(layerOf).filter((l) => l.id);
      this.signals = signalNames(signalsAnswer);
      this.products = rasterProducts(layersAnswer);
      this.basemap = basemapOf(layersAnswer);
      this.bounds = null;
      if (isRecord(layersAnswer) && Array.isArray(layersAnswer.bounds) && layersAnswer.bounds.length === 4) {
        this.bounds = layersAnswer.bounds as [number, number, number, number];
      }
      if (isRecord(layersAnswer)) {
        const sl = str(layersAnswer.source_layer ?? layersAnswer.sourceLayer ?? layersAnswer["vector_layer"]);
        if (sl) this.sourceLayer = sl;
      }
    } catch (err) {
      this.status(`Could not list the map layers: ${errorText(err)}`, "error");
      this.layers = [];
    }
    replace(this.layerSelect, this.layers.map((l) => h("option", { value: l.id }, l.title)));
    const wanted = this.params.get("layer");
    const initial = this.layers.find((l) => l.id === wanted) ?? this.layers[0] ?? null;
    if (initial) this.layerSelect.value = initial.id;
    this.fillRasterChoices();
    this.layer = initial;
    this.setDates(initial, this.params.get("date") ?? "");
    this.updateBasemap();
    this.rebuildParcels();
    this.updateRaster();
    const parcel = this.params.get("parcel");
    if (parcel) {
      this.params.delete("parcel");
      void this.openParcel(parcel, false);
    }
  }

  /** Signals first (NDVI by default), then the acquisitions that have the chosen signal. */
  private fillRasterChoices(): void {
    const rasterSignals = [...new Set(this.products.flatMap((p) => p.signals))].sort();
    const preferred = rasterSignals.includes("NDVI") ? "NDVI" : rasterSignals[0] ?? "";
    replace(this.rasterSignal, rasterSignals.map((s) => h("option", { value: s, selected: s === preferred }, s)));
    this.fillRasterProducts();
    this.rasterToggle.disabled = !this.products.length;
    this.rasterToggle.title = this.products.length ? "" : "no acquisition of this season can be shown as a raster";
  }

  private fillRasterProducts(): void {
    const signal = this.rasterSignal.value;
    const previous = this.rasterProduct.value;
    const usable = this.products.filter((p) => !p.signals.length || p.signals.includes(signal));
    replace(
      this.rasterProduct,
      usable.map((p) => h("option", { value: p.id }, `${p.date || "?"}${p.label ? ` (${p.label})` : ""}`)),
    );
    if (usable.some((p) => p.id === previous)) this.rasterProduct.value = previous;
    else if (usable.length) {
      // A first picture: the clearest acquisition of the middle half of the season.
      const middle = usable.slice(Math.floor(usable.length / 4), Math.ceil((3 * usable.length) / 4));
      const clearest = [...middle].sort((a, b) => (a.cloud ?? 50) - (b.cloud ?? 50))[0];
      if (clearest) this.rasterProduct.value = clearest.id;
    }
  }

  private setDates(layer: MapLayer | null, wanted: string): void {
    const dates = layer?.dates ?? [];
    this.dateField.hidden = dates.length === 0;
    if (!dates.length) {
      this.date = "";
      return;
    }
    this.dateSlider.max = String(dates.length - 1);
    let index = dates.indexOf(wanted);
    if (index < 0) {
      const fallback = str(layer?.raw.default_date ?? layer?.raw.date);
      index = fallback && dates.includes(fallback) ? dates.indexOf(fallback) : dates.length - 1;
    }
    this.dateSlider.value = String(index);
    this.date = dates[index]!;
    this.showDate(index);
  }

  private chooseLayer(id: string): void {
    this.layer = this.layers.find((l) => l.id === id) ?? null;
    this.setDates(this.layer, this.date);
    this.chartPeriod();
    this.rebuildParcels();
  }

  private showDate(index: number): void {
    const start = this.layer?.dates[index] ?? "";
    const end = this.layer?.periodEnds[index] ?? start;
    const text = end && end !== start ? `${start} – ${end}` : start;
    this.dateOutput.textContent = text;
    this.dateSlider.setAttribute("aria-valuetext", text);
    this.chart?.setPeriod(start, end);
  }

  /** The period the map shows, outlined on the parcel's chart (dated layers only). */
  private chartPeriod(): void {
    if (!this.chart) return;
    const index = this.layer?.dates.length ? Number(this.dateSlider.value) : -1;
    this.chart.setPeriod(this.layer?.dates[index] ?? "", this.layer?.periodEnds[index] ?? "");
  }

  private chooseDate(date: string): void {
    if (!date || date === this.date) return;
    this.date = date;
    this.showDate(Number(this.dateSlider.value));
    // Debounce: sliding across many dates asks for the tiles of the last one only.
    window.clearTimeout(this.dateTimer);
    this.dateTimer = window.setTimeout(() => this.rebuildParcels(), 150);
  }
  private dateTimer = 0;

  private tileUrl(): string {
    return `${location.origin}/tiles/parcels/{z}/{x}/{y}.mvt${query({
      site: this.site?.name,
      season: this.season,
      layer: this.layer?.id,
      date: this.date || undefined,
    })}`;
  }

  private rebuildParcels(): void {
    const map = this.map;
    if (!map || !this.site) return;
    const apply = (): void => {
      for (const id of PARCEL_LAYERS) if (map.getLayer(id)) map.removeLayer(id);
      if (map.getSource(SOURCE)) map.removeSource(SOURCE);
      map.addSource(SOURCE, { type: "vector", tiles: [this.tileUrl()], minzoom: 0, maxzoom: 16 });
      const color = this.layer ? fillColor(this.layer) : "#6e7781";
      const opacity = Number(this.fillOpacity.value) / 100;
      if (!map.hasImage(NO_VALUE_PATTERN)) map.addImage(NO_VALUE_PATTERN, hatchImage());
      // Without a layer every parcel is drawn plainly; with one, parcels it has no value for
      // are hatched (a layer of their own, clickable as the others).
      const valued: maplibregl.ExpressionSpecification = this.layer ? ["has", "value"] : ["literal", true];
      map.addLayer({
        id: "parcels-fill",
        type: "fill",
        source: SOURCE,
        "source-layer": this.sourceLayer,
        filter: ["all", ["==", ["geometry-type"], "Polygon"], valued],
        paint: { "fill-color": color as never, "fill-opacity": opacity },
      });
      map.addLayer({
        id: "parcels-novalue",
        type: "fill",
        source: SOURCE,
        "source-layer": this.sourceLayer,
        filter: ["all", ["==", ["geometry-type"], "Polygon"], ["!", valued]],
        paint: { "fill-pattern": NO_VALUE_PATTERN, "fill-opacity": opacity },
      });
      // At low zooms the tiles carry parcels smaller than a few pixels as points: drawn as
      // discs of POINT_RADIUS with an outline (white inside when there is no value).
      map.addLayer({
        id: "parcels-points",
        type: "circle",
        source: SOURCE,
        "source-layer": this.sourceLayer,
        filter: ["==", ["geometry-type"], "Point"],
        paint: {
          "circle-color": (this.layer ? ["case", valued, color, "#ffffff"] : color) as never,
          "circle-radius": POINT_RADIUS,
          "circle-opacity": opacity,
          "circle-stroke-color": "#24292f",
          "circle-stroke-width": 1,
          "circle-stroke-opacity": 0.8,
        },
      });
      map.addLayer({
        id: "parcels-line",
        type: "line",
        source: SOURCE,
        "source-layer": this.sourceLayer,
        filter: ["==", ["geometry-type"], "Polygon"],
        minzoom: 9,
        paint: { "line-color": "#24292f", "line-width": ["interpolate", ["linear"], ["zoom"], 9, 0.3, 16, 1], "line-opacity": 0.6 },
      });
      map.addLayer({
        id: "parcels-selected",
        type: "line",
        source: SOURCE,
        "source-layer": this.sourceLayer,
        filter: this.selectedFilter(),
        paint: { "line-color": "#0969da", "line-width": 3 },
      });
      replace(this.legendBox, legend(this.layer));
      this.status("Loading tiles…");
      this.updateUrl();
      this.detectSourceLayer();
    };
    this.whenLoaded(apply);
  }

  /** The tiles' layer name, when the listing did not say it: the first one that has features. */
  private detectSourceLayer(): void {
    const map = this.map!;
    const check = (): void => {
      if (map.querySourceFeatures(SOURCE, { sourceLayer: this.sourceLayer }).length > 0) return;
      for (const candidate of SOURCE_LAYER_CANDIDATES) {
        if (candidate !== this.sourceLayer && map.querySourceFeatures(SOURCE, { sourceLayer: candidate }).length > 0) {
          this.sourceLayer = candidate;
          this.rebuildParcels();
          return;
        }
      }
    };
    map.once("idle", check);
  }

  private selectedFilter(): maplibregl.FilterSpecification {
    // The tiles' features carry the parcel's NewID as `parcel_id` (and as feature id).
    const id = Number(this.selected);
    return ["==", ["get", "parcel_id"], this.selected && Number.isFinite(id) ? id : -1];
  }

  /** Runs `apply` once the map's style has loaded (at once after that). Not
   * `isStyleLoaded()`: it is false again while a newly added source loads, and "load" fires
   * only once, so a change made then would never be applied. */
  private whenLoaded(apply: () => void): void {
    const map = this.map;
    if (!map) return;
    if (this.styleLoaded) apply();
    else map.once("load", apply);
  }
  private styleLoaded = false;

  /** The workspace's basemap (raster tiles from its own server) under everything else. */
  private updateBasemap(): void {
    const map = this.map;
    if (!map) return;
    const apply = (): void => {
      if (map.getLayer(BASEMAP)) map.removeLayer(BASEMAP);
      if (map.getSource(BASEMAP)) map.removeSource(BASEMAP);
      this.attribution.hidden = !this.basemap;
      this.attribution.textContent = this.basemap ? this.basemap.attribution || "Basemap" : "";
      if (!this.basemap) return;
      map.addSource(BASEMAP, { type: "raster", tiles: [this.basemap.tiles], tileSize: 256, maxzoom: this.basemap.maxZoom });
      const above = map.getLayer(RASTER) ? RASTER : map.getLayer("parcels-fill") ? "parcels-fill" : undefined;
      map.addLayer({ id: BASEMAP, type: "raster", source: BASEMAP }, above);
    };
    this.whenLoaded(apply);
  }

  private updateRaster(): void {
    const map = this.map;
    if (!map) return;
    this.rasterFields.hidden = !this.rasterToggle.checked;
    const apply = (): void => {
      if (map.getLayer(RASTER)) map.removeLayer(RASTER);
      if (map.getSource(RASTER)) map.removeSource(RASTER);
      replace(this.rasterLegendBox);
      if (!this.rasterToggle.checked || !this.rasterProduct.value || !this.rasterSignal.value) return;
      const product = this.products.find((p) => p.id === this.rasterProduct.value);
      replace(this.rasterLegendBox, rasterLegend(this.rasterSignal.value, product?.date ?? ""));
      const url = `${location.origin}${path("tiles", "signals", this.rasterProduct.value, this.rasterSignal.value)}/{z}/{x}/{y}.png`;
      map.addSource(RASTER, { type: "raster", tiles: [url], tileSize: 256, minzoom: 8, maxzoom: 16 });
      map.addLayer(
        { id: RASTER, type: "raster", source: RASTER, paint: { "raster-opacity": Number(this.rasterOpacity.value) / 100 } },
        map.getLayer("parcels-fill") ? "parcels-fill" : undefined,
      );
    };
    this.whenLoaded(apply);
  }

  private updateUrl(): void {
    if (!this.site) return;
    const params: Record<string, string> = { site: this.site.name, season: this.season };
    if (this.layer) params.layer = this.layer.id;
    if (this.date) params.date = this.date;
    if (this.selected) params.parcel = this.selected;
    setParams("map", params);
  }

  private chartWidth(): number {
    return Math.max(260, this.panel.clientWidth - 40);
  }

  async openParcel(id: string, fly: boolean): Promise<void> {
    if (!this.site || !id) return;
    const token = ++this.panelToken;
    if (this.panel.hidden && document.activeElement instanceof HTMLElement) this.lastFocus = document.activeElement;
    this.selected = id;
    if (this.map?.getLayer("parcels-selected")) this.map.setFilter("parcels-selected", this.selectedFilter());
    this.updateUrl();
    const base = path("sites", this.site.name, "seasons", this.season, "parcels", id);
    const heading = h("h2", { id: "parcel-h", tabindex: "-1" }, `Parcel ${id}`);
    const closeButton = h("button", { type: "button", class: "close", "aria-label": "Close the parcel panel", onclick: () => this.closePanel() }, "×");
    const body = h("div", { class: "panel-body", "aria-busy": "true" }, message("info", "Loading the parcel…"));
    replace(this.panel, h("div", { class: "panel-head" }, heading, closeButton), body);
    this.panel.hidden = false;
    this.element.classList.add("with-panel");
    heading.focus();
    this.chart?.destroy();
    this.chart = null;
    try {
      const wanted = CHART_SIGNALS.filter((s) => !this.signals.length || this.signals.includes(s));
      const [parcel, series] = await Promise.all([
        api<Record<string, unknown>>(base),
        api<unknown>(`${base}/timeseries${query({ signals: wanted.join(","), format: "json" })}`).catch((err: unknown) => {
          if (err instanceof ApiError && err.status === 401) throw err;
          return { error: errorText(err) };
        }),
      ]);
      if (token !== this.panelToken) return;
      const events = parseEvents(parcel);
      const parsed = parseTimeseries(series);
      const season = this.site.seasons.find((s) => s.name === this.season);
      const range: [number, number] | undefined =
        season?.start && season.end ? [Date.parse(`${season.start.slice(0, 10)}T00:00:00Z`) / 1000, Date.parse(`${season.end.slice(0, 10)}T00:00:00Z`) / 1000] : undefined;
      this.chart = parcelChart(parsed, events, this.chartWidth(), range);
      this.chartPeriod();
      const seriesError = isRecord(series) && typeof series.error === "string" ? message("error", `Signals: ${series.error}`) : null;
      const attributes = isRecord(parcel.attributes) ? parcel.attributes : isRecord(parcel.properties) ? parcel.properties : {};
      // The service finds a parcel by its NewID or its declared id; the map selects by NewID.
      const newId = str(parcel.parcel_id ?? attributes.NewID, id);
      if (newId !== id) {
        this.selected = newId;
        if (this.map?.getLayer("parcels-selected")) this.map.setFilter("parcels-selected", this.selectedFilter());
        this.updateUrl();
      }
      const label = str(parcel.ori_id ?? attributes.ori_id);
      heading.textContent = label && label !== newId ? `Parcel ${newId} (${label})` : `Parcel ${newId}`;
      if (fly) this.flyTo(parcel);
      body.removeAttribute("aria-busy");
      replace(
        body,
        h("section", { class: "panel-section", "aria-labelledby": "chart-h" }, h("h3", { id: "chart-h" }, "Signals and events"), seriesError, this.chart.element),
        h("section", { class: "panel-section", "aria-labelledby": "events-h" }, h("h3", { id: "events-h" }, `Events (${events.length})`), eventsList(events)),
        h("section", { class: "panel-section", "aria-labelledby": "verdicts-h" }, h("h3", { id: "verdicts-h" }, "Verdicts"), verdictsTable(parcel, this.layers, this.date) ?? h("p", { class: "muted" }, "No product value.")),
        h("section", { class: "panel-section", "aria-labelledby": "attr-h" }, h("h3", { id: "attr-h" }, "Declaration"), declaredFacts(parcel)),
        h("section", { class: "panel-section", "aria-labelledby": "products-h" }, h("h3", { id: "products-h" }, "Product rows"), productBlocks(parcel)),
      );
    } catch (err) {
      if (token !== this.panelToken) return;
      body.removeAttribute("aria-busy");
      replace(body, message("error", `Could not open parcel ${id}: ${errorText(err)}`));
    }
  }

  private flyTo(parcel: Record<string, unknown>): void {
    const bbox = parcel.bbox;
    if (Array.isArray(bbox) && bbox.length >= 4 && this.map) {
      const [w, s, e, n] = bbox as number[];
      this.map.fitBounds([[w!, s!], [e!, n!]], { padding: 80, maxZoom: 17, duration: 400 });
    }
  }

  closePanel(): void {
    if (this.panel.hidden) return;
    this.panelToken++;
    this.panel.hidden = true;
    this.element.classList.remove("with-panel");
    this.chart?.destroy();
    this.chart = null;
    this.selected = "";
    if (this.map?.getLayer("parcels-selected")) this.map.setFilter("parcels-selected", this.selectedFilter());
    this.updateUrl();
    (this.lastFocus ?? this.map?.getCanvas())?.focus();
  }

  update(params: URLSearchParams): void {
    const parcel = params.get("parcel");
    if (parcel && parcel !== this.selected) void this.openParcel(parcel, true);
    else if (!parcel && this.selected) this.closePanel();
  }

  destroy(): void {
    this.chart?.destroy();
    this.resizeObserver?.disconnect();
    window.clearTimeout(this.dateTimer);
    this.map?.remove();
    this.map = null;
  }
}

let current: MapView | null = null;

export const mapPage: Page = {
  title: "Map",
  keepOnParams: true,
  async mount(root, params) {
    const view = new MapView(params);
    current = view;
    replace(root, view.element);
    await view.start();
    return () => {
      view.destroy();
      if (current === view) current = null;
    };
  },
  update(params) {
    current?.update(params);
  },
};
