// A parcel's signals as time series (uPlot), in up to three synchronised panels: optical
// (NDVI, LAI), backscatter (S1 VV, VH, VV/VH ratio) and coherence (VV, VH), with the detected
// events drawn on every panel: intervals (bare-soil periods, catch-crop window, mowing windows)
// as shaded bands, dates (mowing, harvest) as vertical lines. A table of the values and a
// list of the events give the same content to keyboard and screen-reader users.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatValue, h, isRecord, str } from "../dom";

export interface SeriesPoint {
  t: number; // unix seconds
  value: number;
}

export type SignalSeries = Map<string, SeriesPoint[]>;

export interface ParcelEvent {
  kind: string;
  label: string;
  start: number; // unix seconds
  end: number | null; // null: a date, not an interval
  detail: string;
}

interface PanelSpec {
  id: string;
  title: string;
  signals: { name: string; label: string; color: string; scale: "y" | "y2"; dash?: number[] }[];
  y: { label: string; range?: [number, number] };
  y2?: { label: string; range?: [number, number] };
}

export const PANELS: PanelSpec[] = [
  {
    id: "optical",
    title: "Optical",
    signals: [
      { name: "NDVI", label: "NDVI", color: "#1a7f37", scale: "y" },
      { name: "LAI", label: "LAI", color: "#8250df", scale: "y2", dash: [6, 3] },
    ],
    y: { label: "NDVI", range: [-0.2, 1] },
    y2: { label: "LAI (m²/m²)" },
  },
  {
    id: "backscatter",
    title: "Sentinel-1 backscatter",
    signals: [
      { name: "AMP_VV", label: "VV", color: "#0969da", scale: "y" },
      { name: "AMP_VH", label: "VH", color: "#bc4c00", scale: "y" },
      { name: "AMP_VVVH", label: "VV/VH", color: "#6e7781", scale: "y2", dash: [4, 3] },
    ],
    y: { label: "dB (AMP)" },
    y2: { label: "VV/VH (dB)" },
  },
  {
    id: "coherence",
    title: "Sentinel-1 coherence",
    signals: [
      { name: "COHE_VV", label: "coherence VV", color: "#0550ae", scale: "y" },
      { name: "COHE_VH", label: "coherence VH", color: "#953800", scale: "y", dash: [5, 3] },
    ],
    y: { label: "coherence", range: [0, 1] },
  },
];

export const CHART_SIGNALS = PANELS.flatMap((p) => p.signals.map((s) => s.name));

/** Colours and names of capmon's event kinds (the same on the chart and in its legend). */
const EVENT_KINDS: Record<string, [string, string]> = {
  mowing: ["#b8860b", "mowing"],
  harvest: ["#cf222e", "harvest (confirmed)"],
  harvest_estimate: ["#fa4549", "harvest estimate"],
  harvest_window: ["#ffb3b8", "declared harvest window"],
  catch_crop_window: ["#2da44e", "catch-crop window"],
  practice_window: ["#8250df", "practice window"],
  tillage: ["#6f4e37", "tillage"],
  bare_soil: ["#c69026", "bare soil"],
  flag: ["#0969da", "multi-annual flag"],
};

export function eventKindName(kind: string): string {
  return EVENT_KINDS[kind]?.[1] ?? kind.replace(/_/g, " ");
}

const EVENT_COLORS: [RegExp, string][] = [
  [/mow|cut|graz/i, "#d4a72c"],
  [/harvest/i, "#cf222e"],
  [/bare|soil|till/i, "#8c6d46"],
  [/catch|cover|window|efa/i, "#2da44e"],
  [/fallow/i, "#a475f9"],
];

export function eventColor(kind: string): string {
  const known = EVENT_KINDS[kind];
  if (known) return known[0];
  for (const [pattern, color] of EVENT_COLORS) if (pattern.test(kind)) return color;
  return "#57606a";
}

function toSeconds(value: unknown): number | null {
  if (typeof value === "number") return value > 1e11 ? value / 1000 : value;
  if (typeof value !== "string" || !value) return null;
  const ms = Date.parse(value.length === 10 ? `${value}T00:00:00Z` : value);
  return Number.isNaN(ms) ? null : ms / 1000;
}

function pointValue(row: Record<string, unknown>): number | null {
  for (const key of ["mean", "value", "median"]) {
    const v = row[key];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  return null;
}

/** The series of a timeseries answer, whatever its JSON layout: a long table of rows
 * (`signal, date, mean`), `{signals: {NAME: rows | {dates, mean}}}`, or `{series: [...]}`. */
export function parseTimeseries(answer: unknown): SignalSeries {
  const out: SignalSeries = new Map();
  const add = (signal: string, t: number | null, v: number | null): void => {
    if (t === null || v === null || !signal) return;
    let list = out.get(signal);
    if (!list) out.set(signal, (list = []));
    list.push({ t, value: v });
  };
  const addRows = (rows: unknown[], signal?: string): void => {
    for (const row of rows) {
      if (!isRecord(row)) continue;
      add(signal ?? str(row.signal), toSeconds(row.date ?? row.time ?? row.datetime ?? row.acquisition), pointValue(row));
    }
  };
  const addColumns = (cols: Record<string, unknown>, signal: string): void => {
    const dates = (cols.dates ?? cols.date ?? cols.time) as unknown;
    const values = (cols.mean ?? cols.values ?? cols.value) as unknown;
    if (Array.isArray(dates) && Array.isArray(values)) {
      dates.forEach((d, i) => add(signal, toSeconds(d), typeof values[i] === "number" ? (values[i] as number) : null));
    }
  };
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      // capmon: [{signal, date: [...], mean: [...]}] (one object of column arrays per signal)
      if (node.some((r) => isRecord(r) && Array.isArray(r.date))) {
        for (const item of node) if (isRecord(item)) addColumns(item, str(item.signal ?? item.name));
      } else if (node.some((r) => isRecord(r) && "signal" in r)) addRows(node);
      else for (const item of node) if (isRecord(item) && (item.signal || item.name)) walkSignal(str(item.signal ?? item.name), item);
      return;
    }
    if (!isRecord(node)) return;
    for (const key of ["rows", "observations", "data", "timeseries", "series", "signals", "features"]) {
      if (key in node) {
        const value = node[key];
        if (isRecord(value) && !Array.isArray(value)) {
          for (const [signal, content] of Object.entries(value)) walkSignal(signal, content);
        } else walk(value);
        return;
      }
    }
  };
  const walkSignal = (signal: string, content: unknown): void => {
    if (Array.isArray(content)) addRows(content, signal);
    else if (isRecord(content)) {
      if (Array.isArray(content.observations ?? content.points ?? content.rows))
        addRows((content.observations ?? content.points ?? content.rows) as unknown[], signal);
      else addColumns(content, signal);
    }
  };
  walk(answer);
  // Several orbits or sensors may give the same signal on the same date: keep their mean.
  for (const [signal, points] of out) {
    const byTime = new Map<number, number[]>();
    for (const p of points) {
      const list = byTime.get(p.t);
      if (list) list.push(p.value);
      else byTime.set(p.t, [p.value]);
    }
    out.set(
      signal,
      [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([t, vs]) => ({ t, value: vs.reduce((a, b) => a + b, 0) / vs.length })),
    );
  }
  return out;
}

const EVENT_LABELS: Record<string, string> = {
  mowing: "mowing",
  harvest: "harvest",
  bare_soil: "bare soil",
  baresoil: "bare soil",
  catch_crop: "catch-crop window",
  catchcrop: "catch-crop window",
  tillage: "tillage",
};

/** Events of a parcel document (`events: [{kind|type, start|date, end, ...}]`). */
export function parseEvents(parcel: unknown): ParcelEvent[] {
  if (!isRecord(parcel)) return [];
  const raw = Array.isArray(parcel.events)
    ? parcel.events
    : isRecord(parcel.events)
      ? Object.entries(parcel.events).flatMap(([kind, list]) =>
          Array.isArray(list) ? list.map((e) => (isRecord(e) ? { kind, ...e } : { kind, date: e })) : [],
        )
      : [];
  const events: ParcelEvent[] = [];
  for (const item of raw) {
    if (!isRecord(item)) continue;
    const kind = str(item.kind ?? item.type ?? item.event ?? item.name, "event");
    const start = toSeconds(item.start ?? item.date ?? item.from ?? item.begin);
    if (start === null) continue;
    let end = toSeconds(item.end ?? item.to ?? item.until);
    if (end !== null && end <= start) end = null;
    const skip = new Set(["kind", "type", "event", "name", "start", "end", "date", "from", "to", "until", "begin", "label", "title"]);
    const flat: Record<string, unknown> = { ...item, ...(isRecord(item.properties) ? item.properties : {}) };
    delete flat.properties;
    delete flat.product_id;
    const detail = Object.entries(flat)
      .filter(([k, v]) => !skip.has(k) && v !== null && v !== undefined && v !== "" && typeof v !== "object")
      .map(([k, v]) => `${k.replace(/_/g, " ")}: ${formatValue(v)}`)
      .join(", ");
    events.push({
      kind,
      label: str(item.label ?? item.title, EVENT_LABELS[kind.toLowerCase()] ?? kind.replace(/_/g, " ")),
      start,
      end,
      detail,
    });
  }
  return events.sort((a, b) => a.start - b.start);
}

function dateText(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(0, 10);
}

/** The map's date on the chart (a dated layer's period), shared by the panels. */
interface DateMarker {
  start: number | null;
  end: number | null;
}

function eventsPlugin(events: ParcelEvent[], marker: DateMarker): uPlot.Plugin {
  return {
    hooks: {
      drawClear: [
        (u: uPlot) => {
          const { ctx } = u;
          const { top, height, left, width } = u.bbox;
          ctx.save();
          let drawn = 0;
          for (const event of events.filter((e) => e.end !== null)) {
            const x0 = Math.max(left, u.valToPos(event.start, "x", true));
            const x1 = Math.min(left + width, u.valToPos(event.end!, "x", true));
            if (x1 <= x0) continue;
            drawn += 1;
            ctx.fillStyle = eventColor(event.kind);
            ctx.globalAlpha = 0.18;
            ctx.fillRect(x0, top, x1 - x0, height);
          }
          ctx.restore();
          // How many event intervals this panel shades (read by the browser tests).
          u.root.dataset.shadedEvents = String(drawn);
        },
      ],
      draw: [
        (u: uPlot) => {
          const { ctx } = u;
          const { top, height, left, width } = u.bbox;
          ctx.save();
          ctx.lineWidth = 2 * uPlot.pxRatio;
          for (const event of events.filter((e) => e.end === null)) {
            const x = u.valToPos(event.start, "x", true);
            if (x < left || x > left + width) continue;
            ctx.strokeStyle = eventColor(event.kind);
            ctx.setLineDash([4 * uPlot.pxRatio, 3 * uPlot.pxRatio]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            ctx.setLineDash([]);
            ctx.fillStyle = eventColor(event.kind);
            ctx.beginPath();
            ctx.moveTo(x - 5 * uPlot.pxRatio, top);
            ctx.lineTo(x + 5 * uPlot.pxRatio, top);
            ctx.lineTo(x, top + 8 * uPlot.pxRatio);
            ctx.closePath();
            ctx.fill();
          }
          if (marker.start !== null) {
            // The map's period: a dark outline so it reads over the event shading.
            const x0 = u.valToPos(marker.start, "x", true);
            const x1 = u.valToPos(marker.end ?? marker.start, "x", true);
            if (x1 >= left && x0 <= left + width) {
              ctx.strokeStyle = "#24292f";
              ctx.lineWidth = 1.5 * uPlot.pxRatio;
              ctx.setLineDash([]);
              ctx.strokeRect(Math.max(left, x0), top, Math.max(1, Math.min(left + width, x1) - Math.max(left, x0)), height);
            }
          }
          ctx.restore();
        },
      ],
    },
  };
}

export interface ParcelChart {
  element: HTMLElement;
  resize(width: number): void;
  /** Outlines the map's period (YYYY-MM-DD days), or nothing with empty strings. */
  setPeriod(start: string, end: string): void;
  destroy(): void;
}

/** The chart panels of `series` with `events`, `width` CSS pixels wide. */
export function parcelChart(series: SignalSeries, events: ParcelEvent[], width: number, range?: [number, number]): ParcelChart {
  const plots: uPlot[] = [];
  const element = h("div", { class: "parcel-chart" });
  const times = new Set<number>();
  for (const points of series.values()) for (const p of points) times.add(p.t);
  const xs = [...times].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  let xMin = range?.[0] ?? xs[0] ?? 0;
  let xMax = range?.[1] ?? xs.at(-1) ?? 1;
  for (const e of events) {
    xMin = Math.min(xMin, e.start);
    xMax = Math.max(xMax, e.end ?? e.start);
  }
  const syncKey = `parcel-${Math.random().toString(36).slice(2)}`;
  const marker: DateMarker = { start: null, end: null };
  for (const panel of PANELS) {
    const present = panel.signals.filter((s) => (series.get(s.name)?.length ?? 0) > 0);
    if (!present.length) continue;
    const data: (number | null)[][] = [xs];
    for (const signal of present) {
      const column: (number | null)[] = new Array<number | null>(xs.length).fill(null);
      for (const p of series.get(signal.name)!) column[index.get(p.t)!] = p.value;
      data.push(column);
    }
    const usesY2 = present.some((s) => s.scale === "y2");
    const scales: uPlot.Scales = {
      x: { time: true, range: () => [xMin, xMax] },
      y: panel.y.range ? { range: panel.y.range } : { auto: true },
    };
    if (usesY2) scales.y2 = panel.y2?.range ? { range: panel.y2.range } : { auto: true };
    const axes: uPlot.Axis[] = [
      { stroke: "#24292f", grid: { stroke: "#eaeef2" } },
      { label: panel.y.label, stroke: "#24292f", grid: { stroke: "#eaeef2" }, size: 52 },
    ];
    if (usesY2) axes.push({ scale: "y2", side: 1, label: panel.y2?.label ?? "", stroke: "#24292f", grid: { show: false }, size: 52 });
    // An empty right axis keeps the panels' time axes aligned when one has no second scale.
    else axes.push({ scale: "y", side: 1, size: 52, label: "", labelSize: 30, grid: { show: false }, ticks: { show: false }, values: (_u, ticks) => ticks.map(() => "") });
    const opts: uPlot.Options = {
      title: panel.title,
      width,
      height: panel.id === "optical" ? 200 : 160,
      scales,
      axes,
      cursor: { sync: { key: syncKey }, drag: { x: true, y: false } },
      legend: { live: true },
      series: [
        { label: "date", value: (_u, v) => (v === null ? "—" : dateText(v)) },
        ...present.map(
          (s): uPlot.Series => ({
            label: s.label,
            stroke: s.color,
            width: 1.6,
            scale: s.scale,
            dash: s.dash,
            spanGaps: true,
            points: { show: true, size: 4, fill: s.color },
            value: (_u, v) => (v === null ? "—" : v.toFixed(3)),
          }),
        ),
      ],
      plugins: [eventsPlugin(events, marker)],
    };
    const holder = h("div", { class: "chart-panel", dataset: { panel: panel.id }, role: "img", "aria-label": `${panel.title}: ${present.map((s) => s.label).join(", ")} over the season` });
    element.append(holder);
    plots.push(new uPlot(opts, data as uPlot.AlignedData, holder));
  }
  if (!plots.length) element.append(h("p", { class: "message info" }, "No observation of this parcel in the season."));

  if (events.length) {
    const kinds = [...new Set(events.map((e) => e.kind))];
    element.append(
      h(
        "ul",
        { class: "event-legend", "aria-label": "Event colours" },
        kinds.map((kind) =>
          h(
            "li",
            { dataset: { kind } },
            h("span", { class: `swatch${events.some((e) => e.kind === kind && e.end !== null) ? "" : " line"}`, style: { background: eventColor(kind) } }),
            eventKindName(kind),
          ),
        ),
      ),
    );
  }
  element.append(valuesTable(series));
  return {
    element,
    resize(newWidth: number) {
      for (const plot of plots) plot.setSize({ width: newWidth, height: plot.height });
    },
    setPeriod(start: string, end: string) {
      marker.start = start ? toSeconds(start) : null;
      marker.end = end ? (toSeconds(end) ?? 0) + 86_400 : marker.start;
      for (const plot of plots) plot.redraw(false);
    },
    destroy() {
      for (const plot of plots) plot.destroy();
    },
  };
}

/** The events as a list (dates, kinds, details). */
export function eventsList(events: ParcelEvent[]): HTMLElement {
  if (!events.length) return h("p", { class: "muted" }, "No event detected.");
  return h(
    "ul",
    { class: "events" },
    events.map((e) =>
      h(
        "li",
        { dataset: { kind: e.kind } },
        h("span", { class: "swatch", style: { background: eventColor(e.kind) }, "aria-hidden": "true" }),
        h("strong", null, e.label),
        " ",
        e.end === null ? dateText(e.start) : `${dateText(e.start)} – ${dateText(e.end)}`,
        e.detail ? h("span", { class: "muted" }, ` (${e.detail})`) : null,
      ),
    ),
  );
}

function valuesTable(series: SignalSeries): HTMLElement {
  const signals = [...series.keys()];
  const times = [...new Set(signals.flatMap((s) => series.get(s)!.map((p) => p.t)))].sort((a, b) => a - b);
  const lookup = new Map(signals.map((s) => [s, new Map(series.get(s)!.map((p) => [p.t, p.value]))]));
  return h(
    "details",
    { class: "values-table" },
    h("summary", null, `Values as a table (${times.length} dates)`),
    h(
      "div",
      { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Signal values" },
      h(
        "table",
        { class: "data compact" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "date"), signals.map((s) => h("th", { scope: "col", class: "num" }, s)))),
        h(
          "tbody",
          null,
          times.map((t) =>
            h(
              "tr",
              null,
              h("th", { scope: "row" }, dateText(t)),
              signals.map((s) => {
                const v = lookup.get(s)!.get(t);
                return h("td", { class: "num" }, v === undefined ? "" : v.toFixed(3));
              }),
            ),
          ),
        ),
      ),
    ),
  );
}
