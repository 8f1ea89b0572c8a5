"""Map layers of a season: what the map can colour parcels by, read from the declarations and
the processors' products, and each parcel's product values and dated events.

A layer is categorical (values with labels and colours) or numeric (a range and a colour
ramp); a dated layer (the bare-soil status) has one value per parcel and period. Values are
held as codes aligned on the rows of a :class:`~capmon.service.parcel_index.ParcelIndex`
(``-1``: the parcel has no value), so a vector tile takes its parcels' values by indexing.

Which product feeds a layer: the newest product of each type whose acquisition period ends
inside the season (L4C: the newest per practice; multi-annual: the newest whose years include
the season's year), as the processors themselves choose their inputs. Products are read from
their folders (the files the processors write, see each processor's ``outputs``/``products``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio

from capmon.errors import InputError, StorageError
from capmon.parcels.codes import crop_keys
from capmon.processors.baresoil.detect import BARE, COMPLIANT, NO_DATA, NOT_COMPLIANT, VEG
from capmon.processors.l4a.classify import CLASSIF_VALUES, CONFORM, NOT_CONFORM
from capmon.processors.l4b.compliance import (
    COMPLIANT as MOWING_COMPLIANT,
)
from capmon.processors.l4b.compliance import (
    NOT_ASSESSED,
    NOT_LISTED,
    OUTSIDE_TOO,
)
from capmon.processors.l4b.compliance import (
    NOT_COMPLIANT as MOWING_NOT_COMPLIANT,
)
from capmon.processors.l4b.fusion import MAX_EVENTS
from capmon.processors.l4c.efa import C_INDEX_VALUES
from capmon.processors.multiannual.history import (
    ARABLE,
    FALLOW,
    FLAGS,
    PERMANENT_CROP,
    PERMANENT_GRASSLAND,
    TEMPORARY_GRASSLAND,
    UNKNOWN,
)
from capmon.service.mvt import PropertyValue
from capmon.service.parcel_index import ParcelIndex, json_value

PRODUCT_SOURCES = {
    "s4c_l4a": "l4a",
    "s4c_l4b": "l4b",
    "s4c_l4c": "l4c",
    "s4c_baresoil": "baresoil",
    "s4c_heterogeneity": "heterogeneity",
    "s4c_multiannual": "multiannual",
}
"""Catalogue product type -> the processor (layer source) that writes it."""

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
)
"""Qualitative colours (matplotlib's tab20) for crop codes and crop types."""
VIRIDIS = (
    (0.0, "#440154"),
    (0.25, "#3b528b"),
    (0.5, "#21918c"),
    (0.75, "#5ec962"),
    (1.0, "#fde725"),
)
"""Colour ramp of numeric layers: (fraction of the range, colour)."""
NO_VALUE_COLOUR = "#bdbdbd"

LayerKind = Literal["categorical", "numeric"]


@dataclass(frozen=True)
class ProductRef:
    """A processor product of the catalogue that feeds layers."""

    id: int
    name: str
    product_type: str
    path: Path
    practice: str | None = None

    @property
    def source(self) -> str:
        return PRODUCT_SOURCES[self.product_type]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.product_type}


@dataclass(frozen=True)
class Category:
    value: PropertyValue
    label: str
    colour: str


@dataclass(frozen=True)
class LayerInfo:
    """What the map needs to draw a layer and its legend."""

    id: str
    title: str
    kind: LayerKind
    source: str
    description: str
    products: tuple[ProductRef, ...] = ()
    categories: tuple[Category, ...] = ()
    value_range: tuple[float, float] | None = None
    ramp: tuple[tuple[float, str], ...] = ()
    unit: str | None = None
    dates: tuple[date, ...] = ()
    """Dated layers: the first day of each period."""
    period_ends: tuple[date, ...] = ()
    """Dated layers: the last day of each period."""

    @property
    def dated(self) -> bool:
        return bool(self.dates)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "source": self.source,
            "description": self.description,
            "products": [p.to_json() for p in self.products],
            "dated": self.dated,
            "no_value_colour": NO_VALUE_COLOUR,
        }
        if self.kind == "categorical":
            out["categories"] = [
                {"value": c.value, "label": c.label, "colour": c.colour} for c in self.categories
            ]
        else:
            out["range"] = list(self.value_range) if self.value_range else None
            out["ramp"] = [[stop, colour] for stop, colour in self.ramp]
            out["unit"] = self.unit
        if self.dated:
            out["dates"] = [
                {"start": a.isoformat(), "end": b.isoformat()}
                for a, b in zip(self.dates, self.period_ends, strict=True)
            ]
        return out


@dataclass(frozen=True)
class LayerValues:
    """A layer's value for each parcel row (and period): ``values[codes[...]]``."""

    info: LayerInfo
    values: tuple[PropertyValue, ...]
    codes: npt.NDArray[np.int32]
    """``(rows,)``, or ``(periods, rows)`` for a dated layer; -1: no value."""
    labels: dict[PropertyValue, str] = field(default_factory=dict)

    def period(self, day: date | None) -> int | None:
        """The period holding ``day`` (dated layers; the last one when ``day`` is None)."""
        if not self.info.dated:
            return None
        if day is None:
            return len(self.info.dates) - 1
        for i, (first, last) in enumerate(zip(self.info.dates, self.info.period_ends, strict=True)):
            if first <= day <= last:
                return i
        raise InputError(
            f"date {day} is outside layer {self.info.id!r}'s periods "
            f"({self.info.dates[0]} to {self.info.period_ends[-1]})"
        )

    def codes_at(self, period: int | None) -> npt.NDArray[np.int32]:
        return self.codes if period is None else self.codes[period]

    def value(self, row: int, period: int | None = None) -> PropertyValue | None:
        code = int(self.codes_at(period)[row])
        return None if code < 0 else self.values[code]

    def describe(self, row: int) -> dict[str, Any]:
        """The parcel's value (or its value per period), with labels, for the parcel route."""
        if not self.info.dated:
            value = self.value(row)
            return {"value": value, "label": self.labels.get(value) if value is not None else None}
        values = [self.value(row, p) for p in range(len(self.info.dates))]
        return {
            "dates": [d.isoformat() for d in self.info.dates],
            "values": values,
            "labels": [self.labels.get(v) if v is not None else None for v in values],
        }


# --- reading products --------------------------------------------------------------------------


ProductTables = dict[str, pd.DataFrame]


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise StorageError(f"product folder {folder} has no {pattern}")
    return found[-1]


def _csv(path: Path, **options: Any) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = pd.read_csv(path, **options)
        return frame
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc


def _sorted_by(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    frame = frame[frame[column].notna()].sort_values(column, kind="stable")
    frame[column] = frame[column].astype(np.int64)
    return frame.reset_index(drop=True)


def read_product_tables(product: ProductRef) -> ProductTables:
    """The tables of a product that layers, parcel details and events use."""
    folder = product.path
    if not folder.is_dir():
        raise StorageError(f"the folder of product {product.name} is missing: {folder}")
    source = product.source
    if source == "l4a":
        parcels = _csv(_one(folder, "Parcels_all_with_predictions_*.csv"), dtype={"ori_id": str})
        return {"parcels": _sorted_by(parcels, "NewID")}
    if source == "l4b":
        package = _one(folder, "SEN4CAP_L4B_*_MowingDetection.gpkg")
        try:
            layer = pyogrio.read_dataframe(package, read_geometry=False)
        except Exception as exc:
            raise StorageError(f"cannot read {package}: {exc}") from exc
        events = _csv(folder / "mowing_events.csv", dtype={"Ori_id": str})
        return {
            "parcels": _sorted_by(pd.DataFrame(layer), "NewID"),
            "events": _sorted_by(events, "NewID"),
        }
    if source == "l4c":
        rows = _csv(
            _one(folder, "Sen4CAP_L4C_*_CSV.csv"), sep=";", dtype=str, keep_default_na=False
        )
        tables = {"parcels": _sorted_by(rows, "FIELD_ID")}
        estimates = sorted(folder.glob("Capmon_L4C_*_HarvestEstimate.csv"))
        if estimates:
            table = _csv(estimates[-1], sep=";", dtype=str, keep_default_na=False)
            tables["estimates"] = _sorted_by(table, "FIELD_ID")
        return tables
    if source == "baresoil":
        try:
            status = pd.read_parquet(
                folder / "status.parquet", columns=["parcel_id", "dekad", "dekad_end", "status"]
            )
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot read {folder / 'status.parquet'}: {exc}") from exc
        return {
            "status": status,
            "periods": _sorted_by(_csv(folder / "periods.csv", dtype={"ori_id": str}), "parcel_id"),
            "compliance": _sorted_by(
                _csv(folder / "compliance.csv", dtype={"ori_id": str}), "parcel_id"
            ),
        }
    if source == "heterogeneity":
        table = _csv(folder / "heterogeneity.csv", dtype={"ori_id": str})
        return {"parcels": _sorted_by(table, "parcel_id")}
    if source == "multiannual":
        history = _csv(folder / "history.csv", dtype={"ori_id": str, "lineage": str})
        flags = _csv(folder / "flags.csv", dtype={"ori_id": str})
        return {"history": history, "flags": flags}
    raise InputError(f"product type {product.product_type} has no map layers")


def year_rows(tables: ProductTables, year: int) -> ProductTables:
    """A multi-annual product's tables cut to one declaration year, sorted by parcel."""
    history = tables["history"]
    flags = tables["flags"]
    return {
        "history": _sorted_by(history[history["year"] == year], "parcel_id"),
        "flags": _sorted_by(flags[flags["year"] == year], "parcel_id"),
    }


# --- building layers -------------------------------------------------------------------------


@dataclass(frozen=True)
class SeasonProducts:
    """What the layers of a season are built from."""

    index: ParcelIndex
    lut: pd.DataFrame | None
    year: int
    products: tuple[tuple[ProductRef, ProductTables], ...]

    def of(self, source: str) -> list[tuple[ProductRef, ProductTables]]:
        return [(ref, tables) for ref, tables in self.products if ref.source == source]


def _aligned(index: ParcelIndex, ids: Iterable[Any], values: Iterable[Any]) -> pd.Series:
    """``values`` moved onto the index's rows (object dtype; None where a parcel has none)."""
    out = pd.Series([None] * len(index), dtype=object)
    ids_array = np.asarray(list(ids), dtype=np.int64)
    rows = index.positions(ids_array)
    known = rows >= 0
    values_array = np.asarray(list(values), dtype=object)
    out.iloc[rows[known]] = values_array[known]
    return out


def _coded(
    series: pd.Series, order: Sequence[PropertyValue] = ()
) -> tuple[tuple[PropertyValue, ...], npt.NDArray[np.int32]]:
    """Codes of ``series`` against ``order`` (values not in it appended in sorted order)."""
    present = [v for v in pd.unique(series.dropna()) if v is not None]
    values: list[PropertyValue] = list(order)
    extra = sorted((v for v in present if v not in set(values)), key=lambda v: (str(type(v)), v))
    values += extra
    lookup = {v: i for i, v in enumerate(values)}
    codes = np.fromiter(
        (lookup.get(v, -1) if v is not None else -1 for v in series.tolist()),
        dtype=np.int32,
        count=len(series),
    )
    return tuple(_plain(v) for v in values), codes


def _plain(value: Any) -> PropertyValue:
    plain = json_value(value)
    if isinstance(plain, bool | int | float | str):
        return plain
    return str(plain)


def _categorical(
    info: LayerInfo,
    series: pd.Series,
    known: Sequence[tuple[PropertyValue, str, str]],
    label: Callable[[PropertyValue], str] = str,
    colour: Callable[[int, PropertyValue], str] = lambda i, _v: PALETTE[i % len(PALETTE)],
) -> LayerValues:
    """A categorical layer: ``known`` (value, label, colour) first, then the other values."""
    values, codes = _coded(series, [v for v, _, _ in known])
    given = {v: (text, c) for v, text, c in known}
    categories = []
    for i, value in enumerate(values):
        text, c = given.get(value, (label(value), colour(i, value)))
        categories.append(Category(value, text, c))
    used = set(np.unique(codes).tolist())
    shown = tuple(c for i, c in enumerate(categories) if i in used or c.value in given)
    return LayerValues(
        replace(info, categories=shown),
        values,
        codes,
        {c.value: c.label for c in categories},
    )


def _numeric(info: LayerInfo, series: pd.Series) -> LayerValues:
    numbers = pd.to_numeric(series, errors="coerce")
    values, codes = _coded(numbers.astype(object).where(numbers.notna(), None))
    if info.value_range is None and numbers.notna().any():
        info = replace(info, value_range=(float(numbers.min()), float(numbers.max())))
    return LayerValues(info, values, codes, {v: f"{v:g}" for v in values if isinstance(v, float)})


def _lut_lookup(lut: pd.DataFrame | None, crops: pd.Series, column: str) -> pd.Series:
    if lut is None or column not in lut.columns:
        return pd.Series([None] * len(crops), dtype=object)
    table = lut.assign(_key=crop_keys(lut["ori_crop"])).drop_duplicates("_key").set_index("_key")
    keys = crop_keys(crops)
    found = table[column].reindex(keys.fillna("").to_numpy())
    out = pd.Series(found.to_numpy(dtype=object), dtype=object)
    return out.where(pd.notna(out), None)


def _class_colour(number: PropertyValue) -> str:
    if isinstance(number, int) and not isinstance(number, bool):
        return PALETTE[(number - 1) % len(PALETTE)]
    return NO_VALUE_COLOUR


def declaration_layers(season: SeasonProducts) -> list[LayerValues]:
    """Declared crop (``ori_crop``) and, with a LUT, the declared L4A crop type."""
    index = season.index
    if "ori_crop" not in index.attributes:
        return []
    crops = index.attributes["ori_crop"]
    names = _lut_lookup(season.lut, crops, "ct")
    # An HCAT LUT names each class in English (ct) and keeps the national name (ori_name):
    # the legend shows both, the national name first, as the farmer declared it.
    national = _lut_lookup(season.lut, crops, "ori_name")
    names = pd.Series(
        [
            f"{n} ({c})" if n and c and str(n).strip().lower() != str(c).lower() else (c or n)
            for c, n in zip(names.tolist(), national.tolist(), strict=True)
        ],
        dtype=object,
    )
    crop_values = pd.Series(
        [_plain(v) if pd.notna(v) else None for v in crops.tolist()], dtype=object
    )
    crop_names = dict(zip(crop_values.tolist(), names.tolist(), strict=True))
    layers = [
        _categorical(
            LayerInfo(
                "crop",
                "Declared crop",
                "categorical",
                "declarations",
                "The crop code declared by the farmer (ori_crop), named after the crop LUT.",
            ),
            crop_values,
            (),
            label=lambda v: f"{v} {crop_names.get(v) or ''}".strip(),
        )
    ]
    if season.lut is not None and "ctnuml4a" in season.lut.columns:
        classes = _lut_lookup(season.lut, crops, "ctnuml4a")
        class_names = _lut_lookup(season.lut, crops, "ctl4a")
        numbers = pd.Series([_plain(v) if v is not None else None for v in classes], dtype=object)
        labels = dict(zip(numbers.tolist(), class_names.tolist(), strict=True))
        layers.append(
            _categorical(
                LayerInfo(
                    "crop_type",
                    "Declared crop type (L4A class)",
                    "categorical",
                    "declarations",
                    "The L4A crop type class (CTnumL4A) of the declared crop, from the crop LUT.",
                ),
                numbers,
                (),
                label=lambda v: f"{v} {labels.get(v) or ''}".strip(),
                colour=lambda _i, v: _class_colour(v),
            )
        )
    return layers


def l4a_layers(season: SeasonProducts) -> list[LayerValues]:
    found = season.of("l4a")
    if not found:
        return []
    ref, tables = found[0]
    rows = tables["parcels"]
    ids = rows["NewID"]
    known: list[tuple[PropertyValue, str, str]] = [
        (CONFORM, "conform", "#1a9641"),
        (NOT_CONFORM, "not conform", "#d7191c"),
    ]
    known += [
        (v, v.replace("Not_classified_", "not classified: ").replace("_", " "), "#969696")
        for v in CLASSIF_VALUES
        if v not in (CONFORM, NOT_CONFORM)
    ]
    layers = [
        _categorical(
            LayerInfo(
                "l4a_conformity",
                "L4A conformity",
                "categorical",
                "l4a",
                "Whether the predicted crop type agrees with the declaration (Classif_r).",
                (ref,),
            ),
            _aligned(season.index, ids, rows["Classif_r"]),
            known,
        )
    ]
    if "CTnumL4A" in rows.columns:
        declared = rows[["CTnumL4A", "CTL4A"]].dropna().drop_duplicates("CTnumL4A")
        labels = dict(
            zip(declared["CTnumL4A"].astype(int), declared["CTL4A"].astype(str), strict=True)
        )
        predicted = pd.to_numeric(rows.get("CT_pred_1", rows["CTnumL4A"]), errors="coerce")
        layers.append(
            _categorical(
                LayerInfo(
                    "l4a_crop_type",
                    "L4A predicted crop type",
                    "categorical",
                    "l4a",
                    "The crop type class predicted by L4A (CT_pred_1 / CTnumL4A).",
                    (ref,),
                ),
                _aligned(season.index, ids, [int(v) if pd.notna(v) else None for v in predicted]),
                (),
                label=lambda v: f"{v} {labels.get(int(v), '')}".strip(),
                colour=lambda _i, v: _class_colour(v),
            )
        )
    if "CT_conf_1" in rows.columns:
        layers.append(
            _numeric(
                LayerInfo(
                    "l4a_confidence",
                    "L4A confidence",
                    "numeric",
                    "l4a",
                    "Probability of the predicted crop type (CT_conf_1).",
                    (ref,),
                    value_range=(0.0, 1.0),
                    ramp=VIRIDIS,
                    unit="1",
                ),
                _aligned(season.index, ids, rows["CT_conf_1"]),
            )
        )
    return layers


_MOWING_LABELS = (
    (NOT_LISTED, "crop without a mowing rule", "#969696"),
    (NOT_ASSESSED, "not assessed (no observation)", "#d9d9d9"),
    (MOWING_COMPLIANT, "compliant", "#1a9641"),
    (MOWING_NOT_COMPLIANT, "not compliant", "#d7191c"),
    (OUTSIDE_TOO, "mowing inside and outside the window", "#fdae61"),
)
_MOWING_COUNT_COLOURS = ("#ffffcc", "#c2e699", "#78c679", "#31a354", "#006837")


def l4b_layers(season: SeasonProducts) -> list[LayerValues]:
    found = season.of("l4b")
    if not found:
        return []
    ref, tables = found[0]
    rows = tables["parcels"]
    counts = [
        (n, f"{n} mowing{'s' if n != 1 else ''}", _MOWING_COUNT_COLOURS[min(n, 4)])
        for n in range(MAX_EVENTS + 1)
    ]
    return [
        _categorical(
            LayerInfo(
                "l4b_mowing_count",
                "L4B mowing events",
                "categorical",
                "l4b",
                "Number of mowing events detected on the grassland parcel (mow_n).",
                (ref,),
            ),
            _aligned(season.index, rows["NewID"], [int(v) for v in rows["mow_n"]]),
            counts,
        ),
        _categorical(
            LayerInfo(
                "l4b_compliance",
                "L4B mowing compliance",
                "categorical",
                "l4b",
                "Sen4CAP's compliance code (compl): -1 no rule, 0 not assessed, 1 compliant, "
                "2 not compliant, 3 mowing inside and outside the window.",
                (ref,),
            ),
            _aligned(season.index, rows["NewID"], [int(v) for v in rows["compl"]]),
            _MOWING_LABELS,
        ),
    ]


_C_INDEX_COLOURS = {
    "STRONG": "#1a9641",
    "MODERATE": "#a6d96a",
    "WEAK": "#fdae61",
    "POOR": "#d7191c",
    "NR": "#bdbdbd",
}


def _l4c_rows(season: SeasonProducts) -> tuple[pd.DataFrame, tuple[ProductRef, ...]]:
    found = season.of("l4c")
    frames = [tables["parcels"] for _ref, tables in found]
    if not frames:
        return pd.DataFrame(), ()
    merged = pd.concat(frames, ignore_index=True).drop_duplicates("FIELD_ID", keep="first")
    return merged, tuple(ref for ref, _ in found)


def l4c_layers(season: SeasonProducts) -> list[LayerValues]:
    rows, refs = _l4c_rows(season)
    if rows.empty:
        return []
    ids = rows["FIELD_ID"]
    weeks = pd.to_numeric(rows["H_WEEK"], errors="coerce")
    harvest = np.where(
        weeks.notna(), "HARVEST", rows["H_WEEK"].where(rows["H_WEEK"] != "", "NR").to_numpy()
    )
    return [
        _categorical(
            LayerInfo(
                "l4c_c_index",
                "L4C compliance index",
                "categorical",
                "l4c",
                "C_INDEX of the parcel's declared practice (catch crop, fallow, nitrogen-fixing "
                "crop): STRONG to POOR, NR not relevant or not assessable.",
                refs,
            ),
            _aligned(season.index, ids, rows["C_INDEX"]),
            [(v, v, _C_INDEX_COLOURS.get(v, NO_VALUE_COLOUR)) for v in C_INDEX_VALUES],
        ),
        _categorical(
            LayerInfo(
                "l4c_practice",
                "L4C declared practice",
                "categorical",
                "l4c",
                "The practice the parcel was analysed for (PRACTICE; NA: no practice).",
                refs,
            ),
            _aligned(season.index, ids, rows["PRACTICE"]),
            (),
        ),
        _categorical(
            LayerInfo(
                "l4c_harvest",
                "L4C harvest",
                "categorical",
                "l4c",
                "Whether L4C confirmed a harvest (H_WEEK): HARVEST, NO-HARVEST, or NR.",
                refs,
            ),
            _aligned(season.index, ids, harvest),
            [
                ("HARVEST", "harvest detected", "#e6ab02"),
                ("NO-HARVEST", "no harvest", "#1b9e77"),
                ("NR", "not relevant / no data", "#bdbdbd"),
            ],
        ),
        _numeric(
            LayerInfo(
                "l4c_harvest_week",
                "L4C harvest week",
                "numeric",
                "l4c",
                "ISO week of the confirmed harvest (H_WEEK).",
                refs,
                ramp=VIRIDIS,
                unit="ISO week",
            ),
            _aligned(season.index, ids, weeks.astype(object).where(weeks.notna(), None)),
        ),
    ]


_STATUS = (
    (BARE, "bare soil", "#a6611a"),
    (VEG, "vegetation", "#1a9641"),
    (NO_DATA, "no data", "#d9d9d9"),
)


def baresoil_layers(season: SeasonProducts) -> list[LayerValues]:
    found = season.of("baresoil")
    if not found:
        return []
    ref, tables = found[0]
    status = tables["status"]
    dekads = pd.to_datetime(status["dekad"]).dt.date
    ends = pd.to_datetime(status["dekad_end"]).dt.date
    periods = sorted(set(zip(dekads.tolist(), ends.tolist(), strict=True)))
    period_of = {start: i for i, (start, _end) in enumerate(periods)}
    values = tuple(v for v, _, _ in _STATUS)
    value_code = {v: i for i, v in enumerate(values)}
    codes = np.full((len(periods), len(season.index)), -1, np.int32)
    rows = season.index.positions(status["parcel_id"].to_numpy(np.int64))
    period_rows = np.fromiter((period_of[d] for d in dekads.tolist()), np.int64, len(dekads))
    status_codes = np.fromiter(
        (value_code.get(s, -1) for s in status["status"].astype(str).tolist()), np.int32
    )
    known = rows >= 0
    codes[period_rows[known], rows[known]] = status_codes[known]
    status_info = LayerInfo(
        "baresoil_status",
        "Bare soil status",
        "categorical",
        "baresoil",
        "Bare soil, vegetation or no data in each 10-day period (dekad) of the season.",
        (ref,),
        categories=tuple(Category(v, label, c) for v, label, c in _STATUS),
        dates=tuple(p[0] for p in periods),
        period_ends=tuple(p[1] for p in periods),
    )
    layers = [LayerValues(status_info, values, codes, {v: label for v, label, _ in _STATUS})]
    compliance = tables["compliance"]
    if not compliance.empty:
        worst = (
            compliance.assign(
                _rank=compliance["compliance"].map({NOT_COMPLIANT: 0, COMPLIANT: 1}).fillna(2)
            )
            .sort_values(["parcel_id", "_rank"], kind="stable")
            .drop_duplicates("parcel_id")
        )
        layers.append(
            _categorical(
                LayerInfo(
                    "baresoil_compliance",
                    "Soil cover compliance",
                    "categorical",
                    "baresoil",
                    "Compliance with the soil-cover window (NOT_COMPLIANT when the parcel was "
                    "bare in any window of the season).",
                    (ref,),
                ),
                _aligned(season.index, worst["parcel_id"], worst["compliance"]),
                [
                    (COMPLIANT, "compliant", "#1a9641"),
                    (NOT_COMPLIANT, "not compliant", "#d7191c"),
                    (NO_DATA, "no data", "#d9d9d9"),
                ],
            )
        )
    return layers


def heterogeneity_layers(season: SeasonProducts) -> list[LayerValues]:
    found = season.of("heterogeneity")
    if not found:
        return []
    ref, tables = found[0]
    rows = tables["parcels"]
    flags = rows["heterogeneous"].astype(str).str.lower().map({"true": True, "false": False})
    return [
        _categorical(
            LayerInfo(
                "heterogeneity",
                "Heterogeneity",
                "categorical",
                "heterogeneity",
                "Parcels whose pixels show more than one crop or behaviour (heterogeneous).",
                (ref,),
            ),
            _aligned(season.index, rows["parcel_id"], flags.where(flags.notna(), None)),
            [(True, "heterogeneous", "#d95f02"), (False, "homogeneous", "#7570b3")],
        )
    ]


_FLAG_LABELS = {
    "tg_5_years": ("temporary grassland 5 years (becomes permanent)", "#e7298a"),
    "pg_ploughed": ("permanent grassland ploughed", "#d95f02"),
    "class_contradiction": ("declared and observed classes disagree", "#7570b3"),
}
_COVER = (
    (PERMANENT_GRASSLAND, "permanent grassland", "#1b7837"),
    (TEMPORARY_GRASSLAND, "temporary grassland", "#7fbf7b"),
    (ARABLE, "arable land", "#e6ab02"),
    (PERMANENT_CROP, "permanent crop", "#762a83"),
    (FALLOW, "fallow", "#c2a5cf"),
    (UNKNOWN, "unknown", "#bdbdbd"),
)


def multiannual_layers(season: SeasonProducts) -> list[LayerValues]:
    found = season.of("multiannual")
    if not found:
        return []
    ref, tables = found[0]
    history = tables["history"]
    if history.empty:
        return []
    set_flags = np.stack(
        [history[f].astype(str).str.lower().eq("true").to_numpy() for f in FLAGS], axis=1
    )
    counts = set_flags.sum(axis=1)
    first = np.asarray(FLAGS, dtype=object)[set_flags.argmax(axis=1)]
    combined = np.where(counts == 0, "none", np.where(counts == 1, first, "several"))
    known = [
        ("none", "no flag", "#d9d9d9"),
        *((f, *_FLAG_LABELS.get(f, (f, "#666666"))) for f in FLAGS),
        ("several", "several flags", "#000000"),
    ]
    return [
        _categorical(
            LayerInfo(
                "multiannual_flags",
                "Multi-annual flags",
                "categorical",
                "multiannual",
                "CAP flags of the parcel's history: grassland 5 years, ploughed permanent "
                "grassland, declared/observed class contradiction.",
                (ref,),
            ),
            _aligned(season.index, history["parcel_id"], combined),
            known,
        ),
        _categorical(
            LayerInfo(
                "multiannual_cover",
                "Multi-annual cover class",
                "categorical",
                "multiannual",
                "The parcel's cover class this year from its declared and observed history.",
                (ref,),
            ),
            _aligned(season.index, history["parcel_id"], history["cover_class"]),
            _COVER,
        ),
    ]


LAYER_BUILDERS: tuple[Callable[[SeasonProducts], list[LayerValues]], ...] = (
    declaration_layers,
    l4a_layers,
    l4b_layers,
    l4c_layers,
    baresoil_layers,
    heterogeneity_layers,
    multiannual_layers,
)


def build_layers(season: SeasonProducts) -> dict[str, LayerValues]:
    """Every layer the season's declarations and products give, by id."""
    layers: dict[str, LayerValues] = {}
    for builder in LAYER_BUILDERS:
        for layer in builder(season):
            layers[layer.info.id] = layer
    return layers


# --- one parcel ------------------------------------------------------------------------------


def _records(frame: pd.DataFrame, column: str, parcel_id: int) -> list[dict[str, Any]]:
    """Rows of ``frame`` (sorted by ``column``) for one parcel, JSON-ready."""
    if frame.empty:
        return []
    ids = frame[column].to_numpy(np.int64)
    first, last = np.searchsorted(ids, parcel_id, "left"), np.searchsorted(ids, parcel_id, "right")
    return [
        {str(k): json_value(v) for k, v in row.items()}
        for row in frame.iloc[first:last].to_dict("records")
    ]


def _day(value: Any) -> str | None:
    """An ISO date or date-time from a product's date text; None for NR/NA/empty."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text in ("0", "NR", "NA", "NO-HARVEST", "nan", "NaT", "None"):
        return None
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        return None
    if stamp.hour == 0 and stamp.minute == 0 and stamp.second == 0:
        return stamp.date().isoformat()
    return stamp.isoformat()


def _event(
    kind: str, start: Any, end: Any, label: str, product: ProductRef, **properties: Any
) -> dict[str, Any] | None:
    first, last = _day(start), _day(end)
    if first is None or last is None:
        return None
    return {
        "kind": kind,
        "start": first,
        "end": last,
        "label": label,
        "source": product.source,
        "product_id": product.id,
        "properties": {k: json_value(v) for k, v in properties.items()},
    }


def parcel_products(season: SeasonProducts, parcel_id: int) -> dict[str, Any]:
    """Each product's rows of the parcel, by source (L4C: by practice)."""
    out: dict[str, Any] = {}
    for ref, tables in season.products:
        if ref.source == "l4a":
            out["l4a"] = _product_entry(ref, _records(tables["parcels"], "NewID", parcel_id))
        elif ref.source == "l4b":
            out["l4b"] = _product_entry(ref, _records(tables["parcels"], "NewID", parcel_id))
        elif ref.source == "l4c":
            rows = _records(tables["parcels"], "FIELD_ID", parcel_id)
            if "estimates" in tables and rows:
                estimate = _records(tables["estimates"], "FIELD_ID", parcel_id)
                if estimate:
                    rows[0]["harvest_estimate"] = estimate[0]
            if rows:
                out.setdefault("l4c", {})[ref.practice or ref.name] = _product_entry(ref, rows)
        elif ref.source == "baresoil":
            out["baresoil"] = _product_entry(
                ref, _records(tables["compliance"], "parcel_id", parcel_id)
            )
        elif ref.source == "heterogeneity":
            out["heterogeneity"] = _product_entry(
                ref, _records(tables["parcels"], "parcel_id", parcel_id)
            )
        elif ref.source == "multiannual":
            rows = _records(tables["history"], "parcel_id", parcel_id)
            for row in rows:
                row["flags"] = _records(tables["flags"], "parcel_id", parcel_id)
            out["multiannual"] = _product_entry(ref, rows)
    return out


def _product_entry(ref: ProductRef, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"product": ref.to_json(), "rows": rows}


def parcel_events(season: SeasonProducts, parcel_id: int) -> list[dict[str, Any]]:
    """The parcel's dated events for the time-series chart, by start date."""
    events: list[dict[str, Any] | None] = []
    for ref, tables in season.products:
        if ref.source == "l4b":
            for row in _records(tables["events"], "NewID", parcel_id):
                events.append(
                    _event(
                        "mowing",
                        row.get("start"),
                        row.get("end"),
                        f"mowing {row.get('event', '')} ({row.get('sensors', '')}, confidence "
                        f"{row.get('confidence', '')})".replace("  ", " "),
                        ref,
                        confidence=row.get("confidence"),
                        sensors=row.get("sensors"),
                        detected_on=row.get("detected_on"),
                    )
                )
        elif ref.source == "l4c":
            events.extend(_l4c_events(ref, tables, parcel_id))
        elif ref.source == "baresoil":
            for row in _records(tables["periods"], "parcel_id", parcel_id):
                events.append(
                    _event(
                        "bare_soil",
                        row.get("start"),
                        row.get("end"),
                        f"bare soil, {row.get('days')} days",
                        ref,
                        confidence=row.get("confidence"),
                        bare_dekads=row.get("bare_dekads"),
                    )
                )
        elif ref.source == "multiannual":
            for row in _records(tables["flags"], "parcel_id", parcel_id):
                events.append(
                    _event(
                        "flag",
                        row.get("date"),
                        row.get("date"),
                        str(row.get("flag")),
                        ref,
                        evidence=row.get("evidence"),
                    )
                )
    kept = [e for e in events if e is not None]
    return sorted(kept, key=lambda e: (e["start"], e["kind"]))


def _l4c_events(ref: ProductRef, tables: ProductTables, parcel_id: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any] | None] = []
    for row in _records(tables["parcels"], "FIELD_ID", parcel_id):
        practice = str(row.get("PRACTICE") or "")
        window = "catch_crop_window" if practice == "CatchCrop" else "practice_window"
        out.append(
            _event(
                window,
                row.get("P_START"),
                row.get("P_END"),
                f"{practice} {row.get('P_TYPE', '')} window".strip(),
                ref,
                practice=practice,
                c_index=row.get("C_INDEX"),
            )
        )
        out.append(
            _event(
                "harvest_window",
                row.get("H_START"),
                row.get("H_END"),
                "declared harvest window",
                ref,
                practice=practice,
            )
        )
        out.append(
            _event(
                "harvest",
                row.get("H_W_START"),
                row.get("H_W_END"),
                f"harvest confirmed in week {row.get('H_WEEK')}",
                ref,
                practice=practice,
                quality=row.get("H_QUALITY"),
            )
        )
        if row.get("TL_W_START") is not None:
            out.append(
                _event(
                    "tillage",
                    row.get("TL_W_START"),
                    row.get("TL_W_END"),
                    f"tillage in week {row.get('TL_WEEK')}",
                    ref,
                    practice=practice,
                )
            )
    if "estimates" in tables:
        for row in _records(tables["estimates"], "FIELD_ID", parcel_id):
            out.append(
                _event(
                    "harvest_estimate",
                    row.get("HARVEST_EST_FROM"),
                    row.get("HARVEST_EST_TO"),
                    f"harvest estimate {row.get('HARVEST_DATE_EST')} "
                    f"({row.get('HARVEST_EST_SOURCE')}, {row.get('HARVEST_EST_CONF')})",
                    ref,
                    date=row.get("HARVEST_DATE_EST"),
                    confidence=row.get("HARVEST_EST_CONF"),
                )
            )
    return [e for e in out if e is not None]
