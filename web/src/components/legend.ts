// Map layers: the listing of /layers turned into MapLibre fill colours and a legend.
// A categorical layer colours each class (its own colours, or a palette); a numeric layer a
// colour ramp between its bounds.

import type { ExpressionSpecification } from "maplibre-gl";
import { h, isRecord, str } from "../dom";

export interface LayerClass {
  value: string | number | boolean;
  label: string;
  color: string;
}

export interface MapLayer {
  id: string;
  title: string;
  description: string;
  kind: "categorical" | "numeric";
  property: string;
  classes: LayerClass[];
  min: number;
  max: number;
  stops: [number, string][];
  /** Dated layers: the first day of each period (what the tiles' `date` asks for)... */
  dates: string[];
  /** ...and its last day. */
  periodEnds: string[];
  noValue: string;
  unit: string;
  product: string;
  raw: Record<string, unknown>;
}

/** Okabe-Ito and Tableau-like colours that stay apart for colour-blind readers. */
const PALETTE = [
  "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#7f7f7f",
  "#8c564b", "#bcbd22", "#17becf", "#9467bd", "#2ca02c", "#ff9896", "#c5b0d5", "#393b79",
];
const RAMP = ["#f7fcb9", "#addd8e", "#41ab5d", "#006837", "#00441b"];
const NO_VALUE = "#bdbdbd";
/** The swatch of "no value" (a CSS background): hatched as the map draws those parcels. */
export const NO_VALUE_SWATCH = "repeating-linear-gradient(135deg, #57606a 0 2px, #fff 2px 5.5px)";

/** Known meanings: good/bad answers get green/red whatever their order. */
function semanticColor(value: string): string | null {
  const v = value.toLowerCase();
  if (/^(true|yes|compliant|conform|ok|pass|1_?conform)/.test(v) || v === "c") return "#1a7f37";
  if (/non[-_ ]?(compliant|conform)|^(false|no|fail)/.test(v)) return "#cf222e";
  if (/(weak|doubt|uncertain|insufficient|partial)/.test(v)) return "#d4a72c";
  if (/(no[-_ ]?data|not[-_ ]?(analysed|analyzed|checked)|unknown|none|n\/a)/.test(v)) return NO_VALUE;
  if (/bare/.test(v)) return "#8c6d46";
  if (/(covered|vegetat|green)/.test(v)) return "#2da44e";
  return null;
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

function classesOf(raw: Record<string, unknown>): LayerClass[] {
  const source = raw.classes ?? raw.categories ?? raw.values ?? (isRecord(raw.legend) ? raw.legend.classes : raw.legend);
  const list: LayerClass[] = [];
  if (Array.isArray(source)) {
    source.forEach((entry, i) => {
      if (isRecord(entry)) {
        const value = (entry.value ?? entry.code ?? entry.id ?? entry.name) as LayerClass["value"];
        const label = str(entry.label ?? entry.title ?? entry.name, str(value));
        list.push({ value, label, color: str(entry.color ?? entry.colour) || semanticColor(label) || PALETTE[i % PALETTE.length]! });
      } else if (typeof entry === "string" || typeof entry === "number" || typeof entry === "boolean") {
        list.push({ value: entry, label: String(entry), color: semanticColor(String(entry)) ?? PALETTE[i % PALETTE.length]! });
      }
    });
  } else if (isRecord(source)) {
    Object.entries(source).forEach(([value, entry], i) => {
      const label = isRecord(entry) ? str(entry.label ?? entry.title, value) : str(entry, value);
      const color = isRecord(entry) ? str(entry.color) : "";
      list.push({ value, label, color: color || semanticColor(label) || PALETTE[i % PALETTE.length]! });
    });
  }
  return list;
}

function stopsOf(raw: Record<string, unknown>, min: number, max: number): [number, string][] {
  const source = raw.stops ?? raw.ramp ?? (isRecord(raw.legend) ? raw.legend.stops : undefined);
  if (Array.isArray(raw.ramp)) {
    // capmon's ramp: [fraction of the range, colour] pairs.
    const span = max - min;
    const stops = raw.ramp
      .filter((s): s is [number, string] => Array.isArray(s) && typeof s[0] === "number" && typeof s[1] === "string")
      .map(([f, c]): [number, string] => [min + f * span, c]);
    if (span > 0 && stops.length >= 2) return stops;
    if (stops.length) return [[min, stops[Math.floor(stops.length / 2)]![1]], [min + 1, stops[Math.floor(stops.length / 2)]![1]]];
  }
  if (Array.isArray(source)) {
    const stops = source
      .map((s): [number, string] | null => {
        if (Array.isArray(s) && typeof s[0] === "number") return [s[0], str(s[1])];
        if (isRecord(s) && typeof s.value === "number") return [s.value, str(s.color)];
        return null;
      })
      .filter((s): s is [number, string] => s !== null && Boolean(s[1]));
    if (stops.length >= 2) return stops.sort((a, b) => a[0] - b[0]);
  }
  const span = max - min || 1;
  return RAMP.map((color, i) => [min + (span * i) / (RAMP.length - 1), color]);
}

/** A layer of the /layers listing, normalised. */
export function layerOf(raw: Record<string, unknown>): MapLayer {
  const id = str(raw.id ?? raw.name ?? raw.layer);
  const type = str(raw.kind ?? raw.type ?? raw.scale, "").toLowerCase();
  const classes = classesOf(raw);
  const range = Array.isArray(raw.range) ? raw.range : [];
  const min = numberOr(raw.min ?? raw.minimum ?? range[0], 0);
  const max = numberOr(raw.max ?? raw.maximum ?? range[1], 1);
  const numeric = /num|contin|float|int|ratio|count|quant|sequential/.test(type) || (!classes.length && /index|count/.test(id));
  const datesRaw = raw.dates ?? raw.times;
  const periods = Array.isArray(datesRaw)
    ? datesRaw.map((d) => (isRecord(d) ? [str(d.start), str(d.end ?? d.start)] : [str(d), str(d)])).filter(([a]) => a)
    : [];
  periods.sort((a, b) => a[0]!.localeCompare(b[0]!));
  return {
    id,
    title: str(raw.title ?? raw.label, id),
    description: str(raw.description),
    kind: numeric && !classes.length ? "numeric" : "categorical",
    property: str(raw.property ?? raw.field ?? raw.attribute, "value"),
    classes,
    min,
    max,
    stops: stopsOf(raw, min, max),
    dates: periods.map((p) => p[0]!),
    periodEnds: periods.map((p) => p[1]!),
    noValue: str(raw.no_value_colour ?? raw.no_value_color, NO_VALUE),
    unit: str(raw.unit),
    product: str(raw.product ?? raw.product_id),
    raw,
  };
}

/** The fill-color expression of `layer` on the tiles' `property`. */
export function fillColor(layer: MapLayer, seen: (string | number | boolean)[] = []): ExpressionSpecification | string {
  const get: ExpressionSpecification = ["get", layer.property];
  if (layer.kind === "numeric") {
    const stops = layer.stops.flatMap(([v, c]) => [v, c]);
    return [
      "case",
      ["==", ["typeof", get], "number"],
      ["interpolate", ["linear"], get, ...stops] as unknown as ExpressionSpecification,
      layer.noValue,
    ] as ExpressionSpecification;
  }
  const classes = layer.classes.length ? layer.classes : seen.map((v, i) => ({ value: v, label: String(v), color: semanticColor(String(v)) ?? PALETTE[i % PALETTE.length]! }));
  if (!classes.length) return "#6e7781";
  const pairs: unknown[] = [];
  const used = new Set<string>();
  for (const c of classes) {
    const key = `${typeof c.value}:${String(c.value)}`;
    if (used.has(key)) continue;
    used.add(key);
    pairs.push(c.value, c.color);
  }
  // Values may come as numbers or strings in the tiles: match both spellings.
  return ["match", ["to-string", get], ...pairs.map((p, i) => (i % 2 === 0 ? String(p) : p)), layer.noValue] as unknown as ExpressionSpecification;
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) < 10 ? 2 : 1);
}

/** The legend of `layer`. */
export function legend(layer: MapLayer | null): HTMLElement {
  if (!layer) return h("div", { class: "legend" });
  const body: HTMLElement[] = [];
  if (layer.kind === "numeric") {
    const gradient = `linear-gradient(to right, ${layer.stops.map(([v, c]) => `${c} ${(((v - layer.stops[0]![0]) / ((layer.stops.at(-1)![0] - layer.stops[0]![0]) || 1)) * 100).toFixed(1)}%`).join(", ")})`;
    body.push(
      h("div", { class: "ramp", style: { background: gradient }, role: "img", "aria-label": `from ${layer.stops[0]![0]} to ${layer.stops.at(-1)![0]}` }),
      h(
        "div",
        { class: "ramp-labels" },
        h("span", null, formatNumber(layer.stops[0]![0])),
        h("span", null, layer.unit && layer.unit !== "1" ? layer.unit : ""),
        h("span", null, formatNumber(layer.stops.at(-1)![0])),
      ),
    );
  } else {
    body.push(
      h(
        "ul",
        null,
        layer.classes.map((c) => h("li", null, h("span", { class: "swatch", style: { background: c.color }, "aria-hidden": "true" }), c.label)),
      ),
    );
  }
  // Hatched as on the map: "no value" (the layer has nothing for the parcel) must not look
  // like a grey class such as "NR", "no data" or "not classified".
  body.push(h("div", { class: "no-value" }, h("span", { class: "swatch no-value-swatch", "aria-hidden": "true" }), "no value (not in the product)"));
  return h(
    "div",
    { class: "legend", role: "group", "aria-label": `Legend: ${layer.title}` },
    h("h3", null, layer.title),
    layer.description ? h("p", { class: "hint" }, layer.description) : null,
    body,
  );
}

function mix(a: string, b: string, t: number): string {
  const parse = (c: string): number[] => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
  if (!/^#[0-9a-f]{6}$/i.test(a) || !/^#[0-9a-f]{6}$/i.test(b)) return t < 0.5 ? a : b;
  const [x, y] = [parse(a), parse(b)];
  return `#${x.map((v, i) => Math.round(v + (y[i]! - v) * t).toString(16).padStart(2, "0")).join("")}`;
}

/** The colour the map gives `value` in `layer` (for swatches next to a parcel's values). */
export function colorOf(layer: MapLayer, value: unknown): string {
  if (value === null || value === undefined) return NO_VALUE_SWATCH;
  if (layer.kind === "numeric") {
    if (typeof value !== "number") return NO_VALUE_SWATCH;
    const stops = layer.stops;
    if (!stops.length) return layer.noValue;
    if (value <= stops[0]![0]) return stops[0]![1];
    for (let i = 1; i < stops.length; i++) {
      const [v1, c1] = stops[i]!;
      const [v0, c0] = stops[i - 1]!;
      if (value <= v1) return mix(c0, c1, (value - v0) / (v1 - v0 || 1));
    }
    return stops.at(-1)![1];
  }
  return layer.classes.find((c) => String(c.value) === String(value))?.color ?? NO_VALUE_SWATCH;
}
