"""Markers of a season's parcels: time series of signals, a parcel's attributes, product values
and events, the signals of the MDB and the map layers (docs/api.md, "markers").

Every route reads the season's newest declaration set (the season's year) and its MDB; see
:mod:`capmon.service.map_data` for what is cached and :mod:`capmon.service.layers` for the
layers and events.
"""

from __future__ import annotations

import datetime as dt
import json
from datetime import date
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import shapely
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from capmon.catalog.models import Product
from capmon.errors import InputError
from capmon.mdb.store import DERIVED, STATISTIC_COLUMNS
from capmon.service.auth import ReadableSite
from capmon.service.basemap import read_basemap
from capmon.service.layers import parcel_events, parcel_products
from capmon.service.links import base_url
from capmon.service.map_data import MapData, MdbPool, SeasonView, map_data, mdb_version
from capmon.service.params import SIGNAL_LIST
from capmon.service.raster_tiles import INPUT_PRODUCT_TYPES, raster_signals
from capmon.signals.catalogue import get_signal

ParcelId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=256,
        description="The parcel's NewID, or its declared id (ori_id) when no NewID matches.",
    ),
]

router = APIRouter(tags=["Markers"])

SERIES_COLUMNS = ("date", "date_first", "sensor", "orbit", "count", *STATISTIC_COLUMNS)
"""Columns of each signal's series in the JSON answer (``date_first``: coherence pairs)."""
RATIOS = {"AMP_VVVH": ("AMP_VV", "AMP_VH"), "BCK_VVVH": ("BCK_VV", "BCK_VH")}
"""Ratio signals computed from their two polarisations when the MDB does not store them."""


def season_view(request: Request, site: ReadableSite, season: str) -> tuple[MapData, SeasonView]:
    data = map_data(request)
    return data, data.season(site, season)


# --- signals -----------------------------------------------------------------------------------


class SignalInfo(BaseModel):
    signal: str
    unit: str | None
    description: str | None
    first_date: date | None
    last_date: date | None
    dates: int = Field(description="Distinct acquisition dates with at least one parcel")
    derived: bool = Field(description="Derived from other signals' statistics, not from pixels")
    computed: bool = Field(
        description="Not stored: the time-series route computes it from two stored signals"
    )


class SignalList(BaseModel):
    site: str
    season: str
    signals: list[SignalInfo]


def _catalogue_entry(name: str) -> tuple[str | None, str | None]:
    try:
        signal = get_signal(name)
    except InputError:
        return None, None
    return signal.unit, signal.description


def _summarise(pool: MdbPool) -> list[dict[str, Any]]:
    with pool.reader() as database:
        rows = (
            database.duckdb()
            .aggregate(
                "signal, min(date) AS first_date, max(date) AS last_date, "
                "count(DISTINCT date) AS dates",
                "signal",
            )
            .order("signal")
            .fetchall()
        )
    out = []
    stored = {str(r[0]) for r in rows}
    for name, first, last, dates in rows:
        unit, description = _catalogue_entry(str(name))
        out.append(
            {
                "signal": str(name),
                "unit": unit,
                "description": description,
                "first_date": first,
                "last_date": last,
                "dates": int(dates),
                "derived": (pool.folder / DERIVED / f"{name}.parquet").exists(),
                "computed": False,
            }
        )
    for ratio, (a, b) in RATIOS.items():
        if ratio not in stored and a in stored and b in stored:
            first_a = next(e for e in out if e["signal"] == a)
            unit, description = _catalogue_entry(ratio)
            out.append(
                {
                    **first_a,
                    "signal": ratio,
                    "unit": unit,
                    "description": description,
                    "derived": True,
                    "computed": True,
                }
            )
    return sorted(out, key=lambda e: str(e["signal"]))


def signal_summary(data: MapData, view: SeasonView) -> list[dict[str, Any]]:
    """The signals of the season's MDB (cached per MDB version)."""
    pool = data.mdb(view)
    key = (str(pool.folder), mdb_version(pool.folder))
    return data.signals.get_or_build(key, lambda: _summarise(pool))


@router.get(
    "/sites/{site}/seasons/{season}/signals",
    response_model=SignalList,
    summary="Signals of the season's markers database",
)
def signals(request: Request, site: ReadableSite, season: str) -> dict[str, Any]:
    """Every signal stored in the season's MDB with its unit, first and last date and number
    of dates. ``AMP_VVVH``/``BCK_VVVH`` are listed (``computed``) when the MDB does not store
    them but both polarisations: the time-series route computes them."""
    data, view = season_view(request, site, season)
    return {"site": site.name, "season": view.season_name, "signals": signal_summary(data, view)}


# --- time series -------------------------------------------------------------------------------


class SignalSeries(BaseModel):
    signal: str
    unit: str | None
    derived: bool
    date: list[dt.date]
    date_first: list[dt.date | None] | None = Field(
        None, description="Coherence: the first date of each pair (absent for other signals)"
    )
    sensor: list[str]
    orbit: list[int | None]
    count: list[int]
    mean: list[float | None]
    stdev: list[float | None]
    min: list[float | None]
    max: list[float | None]
    median: list[float | None]
    p25: list[float | None]
    p75: list[float | None]


class TimeSeries(BaseModel):
    site: str
    season: str
    parcel_id: int
    start: date | None
    end: date | None
    signals: list[SignalSeries]


def _requested_signals(text: str | None, known: list[dict[str, Any]]) -> list[str]:
    names = [e["signal"] for e in known]
    if text is None or not text.strip():
        return [n for n in names]
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in names]
    if unknown:
        raise InputError(
            f"unknown signal(s) {', '.join(unknown)} in signals: this season's MDB holds "
            f"{', '.join(names) or 'no signal'}"
        )
    return list(dict.fromkeys(wanted))


def _with_ratios(frame: pd.DataFrame, wanted: list[str], stored: set[str]) -> pd.DataFrame:
    """Rows of ratio signals (mean only) computed from their two polarisations' means."""
    extra = []
    for ratio, (a, b) in RATIOS.items():
        if ratio not in wanted or ratio in stored:
            continue
        keys = ["parcel_id", "sensor", "date", "orbit", "orbit_direction", "tile"]
        left = frame[frame["signal"] == a]
        right = frame[frame["signal"] == b][[*keys, "mean", "count", "pixels", "product_id"]]
        pairs = left.merge(right, on=keys, suffixes=("", "_b"))
        if pairs.empty:
            continue
        rows = pairs[[c for c in frame.columns if c in pairs.columns]].copy()
        rows["signal"] = ratio
        rows["mean"] = (pairs["mean"] - pairs["mean_b"]).astype(np.float32)
        rows["count"] = np.minimum(pairs["count"], pairs["count_b"]).astype(np.int32)
        rows["pixels"] = np.minimum(pairs["pixels"], pairs["pixels_b"]).astype(np.int32)
        rows["product_id"] = pairs["product_id"] + "+" + pairs["product_id_b"]
        for stat in STATISTIC_COLUMNS:
            if stat != "mean":
                rows[stat] = np.float32(np.nan)
        extra.append(rows)
    if not extra:
        return frame
    merged = pd.concat([frame, *extra], ignore_index=True)
    return merged.sort_values(["parcel_id", "signal", "date", "sensor", "orbit"], kind="stable")


def _json_values(column: pd.Series) -> list[str]:
    """JSON texts of a column's values (dates as ISO text, missing as null). Numbers go
    through pandas' C writer, ~10 times faster than json.dumps on lists of floats."""
    if column.dtype == object:
        present = column.notna().to_numpy()
        if not present.any():
            return ["null"] * len(column)
        if isinstance(column.iloc[int(present.argmax())], date):  # few distinct dates
            codes, days = pd.factorize(column)
            texts = np.asarray([*(f'"{d.isoformat()}"' for d in days), "null"], dtype=object)
            return list(texts[codes])  # code -1 (missing) takes the last text
    text = column.to_json(orient="records", double_precision=15)
    inner = text[1:-1]
    return inner.split(",") if inner else []


def series_json(
    frame: pd.DataFrame, wanted: list[str], units: dict[str, tuple[str | None, bool]]
) -> list[str]:
    """One JSON object text per wanted signal: its rows as column arrays."""
    signal = frame["signal"].astype(str).to_numpy()
    columns = {c: _json_values(frame[c].reset_index(drop=True)) for c in SERIES_COLUMNS}
    has_first = frame["date_first"].notna().to_numpy()
    out = []
    for name in wanted:
        rows = np.flatnonzero(signal == name)
        first, last = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)
        unit, derived = units.get(name, (None, False))
        parts = [
            f'"signal": {json.dumps(name)}',
            f'"unit": {json.dumps(unit)}',
            f'"derived": {json.dumps(derived)}',
        ]
        for column in SERIES_COLUMNS:
            if column == "date_first" and not has_first[first:last].any():
                continue
            parts.append(f'"{column}": [{",".join(columns[column][first:last])}]')
        out.append("{" + ", ".join(parts) + "}")
    return out


@router.get(
    "/sites/{site}/seasons/{season}/parcels/{parcel_id}/timeseries",
    summary="A parcel's time series of signals",
    response_model=TimeSeries,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON (per signal, column arrays) or CSV (the MDB's long table)",
        }
    },
)
def timeseries(
    request: Request,
    site: ReadableSite,
    season: str,
    parcel_id: ParcelId,
    signals: Annotated[
        str | None,
        Query(
            pattern=SIGNAL_LIST,
            description="Comma-separated signals (default: every signal of the MDB)",
        ),
    ] = None,
    start: Annotated[date | None, Query(description="First date (inclusive)")] = None,
    end: Annotated[date | None, Query(description="Last date (inclusive)")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="Answer format")] = "json",
) -> Response:
    """The parcel's statistics per signal and acquisition, as the MDB stores them
    (``capmon.open_mdb(...).timeseries``). 404 for a parcel the season's declarations do not
    hold, 400 for a signal the MDB does not store."""
    data, view = season_view(request, site, season)
    if start is not None and end is not None and end < start:
        raise InputError(f"end {end} is before start {start}")
    index = data.parcel_index(view)
    new_id = int(index.ids[index.find(parcel_id)])
    known = signal_summary(data, view)
    wanted = _requested_signals(signals, known)
    stored = {e["signal"] for e in known if not e["computed"]}
    query = sorted(
        {s for s in wanted if s in stored}
        | {part for s in wanted if s not in stored for part in RATIOS.get(s, ())}
    )
    with data.mdb(view).reader() as database:
        frame = database.timeseries([new_id], query, start, end)
    frame = _with_ratios(frame, wanted, stored)
    if format == "csv":
        frame = frame[frame["signal"].isin(wanted)]
        return Response(
            frame.to_csv(index=False),
            media_type="text/csv",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="{view.site_short_name}-{view.season_name}-'
                    f'parcel-{new_id}.csv"'
                )
            },
        )
    units = {e["signal"]: (e["unit"], bool(e["derived"])) for e in known}
    head = json.dumps(
        {
            "site": site.name,
            "season": view.season_name,
            "parcel_id": new_id,
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
        }
    )[:-1]
    body = head + ', "signals": [' + ", ".join(series_json(frame, wanted, units)) + "]}"
    return Response(body, media_type="application/json")


# --- one parcel --------------------------------------------------------------------------------


class ParcelEvent(BaseModel):
    kind: str = Field(
        description="mowing, harvest, harvest_estimate, harvest_window, practice_window, "
        "catch_crop_window, tillage, bare_soil, flag"
    )
    start: str
    end: str
    label: str
    source: str
    product_id: int
    properties: dict[str, Any]


class ParcelReport(BaseModel):
    site: str
    season: str
    year: int
    parcel_id: int
    attributes: dict[str, Any]
    geometry: dict[str, Any]
    bbox: list[float]
    layers: dict[str, dict[str, Any]]
    products: dict[str, Any]
    events: list[ParcelEvent]
    links: dict[str, str]


@router.get(
    "/sites/{site}/seasons/{season}/parcels/{parcel_id}",
    response_model=ParcelReport,
    summary="A parcel: declared attributes, product values and events",
)
def parcel(
    request: Request, site: ReadableSite, season: str, parcel_id: ParcelId
) -> dict[str, Any]:
    """The parcel's declared attributes and geometry (EPSG:4326), its value in every map
    layer (dated layers: one value per period), each product's rows for it, and its dated
    events (mowing, harvest, practice windows, bare-soil periods...) for the chart."""
    data, view = season_view(request, site, season)
    index = data.parcel_index(view)
    row = index.find(parcel_id)
    new_id = int(index.ids[row])
    layers = data.season_layers(view)
    products = data.season_products(view)

    geometry = index.geographic[row]
    base = base_url(request)
    return {
        "site": site.name,
        "season": view.season_name,
        "year": view.year,
        "parcel_id": new_id,
        "attributes": index.attributes_of(row),
        "geometry": json.loads(shapely.to_geojson(geometry)),
        "bbox": [float(v) for v in shapely.bounds(geometry)],
        "layers": {layer_id: layer.describe(row) for layer_id, layer in layers.items()},
        "products": parcel_products(products, new_id),
        "events": parcel_events(products, new_id),
        "links": {
            "timeseries": (
                f"{base}/sites/{site.name}/seasons/{view.season_name}/parcels/{new_id}/timeseries"
            )
        },
    }


# --- layers ------------------------------------------------------------------------------------


class LayerList(BaseModel):
    site: str
    season: str
    bounds: list[float] | None = Field(description="EPSG:4326 bounds of the season's parcels")
    parcels: int
    tiles: str = Field(description="URL template of the parcels' vector tiles")
    geojson: str = Field(description="URL of the parcels' GeoJSON (add bbox=)")
    layers: list[dict[str, Any]]
    rasters: dict[str, Any]
    basemap: dict[str, Any] | None = Field(
        default=None,
        description="Raster tiles drawn under the parcels ([map] basemap of the workspace's "
        "settings.toml): tiles (URL template), attribution, max_zoom; null: none",
    )


def _raster_products(data: MapData, view: SeasonView, base: str) -> dict[str, Any]:
    with data.workspace.session() as session:
        rows = session.scalars(
            select(Product)
            .where(
                Product.site_id == view.site_id,
                Product.product_type.in_(INPUT_PRODUCT_TYPES),
            )
            .order_by(Product.acquired_at, Product.id)
        ).all()
        products = []
        for product in rows:
            if product.acquired_at is None:
                continue
            day = product.acquired_at.date()
            if not view.start <= day <= view.end:
                continue
            properties = product.properties or {}
            products.append(
                {
                    "product_id": product.id,
                    "name": product.name,
                    "type": product.product_type,
                    "date": day.isoformat(),
                    "sensor": product.sensor,
                    "tile": product.tile,
                    "cloud_cover": properties.get("cloud_cover"),
                    "signals": raster_signals(product.product_type, properties),
                }
            )
    return {
        "tiles": f"{base}/tiles/signals/{{product_id}}/{{signal}}/{{z}}/{{x}}/{{y}}.png",
        "products": products,
    }


@router.get(
    "/sites/{site}/seasons/{season}/layers",
    response_model=LayerList,
    summary="Map layers of the season",
)
def layers(request: Request, site: ReadableSite, season: str) -> dict[str, Any]:
    """The layers the map can colour parcels by (declared crop and the products' values):
    id, title, kind (categorical: categories with labels and colours; numeric: range and
    colour ramp), the products they come from and, for dated layers, their periods. Also the
    input products that raster tiles can show (e.g. NDVI of a date)."""
    data, view = season_view(request, site, season)
    index = data.parcel_index(view)
    found = data.season_layers(view)
    base = base_url(request)
    bounds = [float(v) for v in shapely.total_bounds(index.geographic)] if len(index) else None
    query = f"site={site.name}&season={view.season_name}"
    return {
        "site": site.name,
        "season": view.season_name,
        "bounds": bounds,
        "parcels": len(index),
        "tiles": f"{base}/tiles/parcels/{{z}}/{{x}}/{{y}}.mvt?{query}",
        "geojson": f"{base}/sites/{site.name}/seasons/{view.season_name}/parcels.geojson",
        "layers": [layer.info.to_json() for layer in found.values()],
        "rasters": _raster_products(data, view, base),
        "basemap": basemap.to_json() if (basemap := read_basemap(data.workspace.home)) else None,
    }
