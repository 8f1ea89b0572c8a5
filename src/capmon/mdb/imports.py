"""Statistics computed elsewhere, written as a normal MDB (``capmon mdb import``).

Per-parcel, per-date statistics exported by other tools are read, mapped to capmon's signals
and units, validated and stored with :class:`~capmon.mdb.store.MdbStore`, so that
``capmon.open_mdb``, ``capmon mdb info/export`` and the processors read them like extracted
rows. Layouts (docs/mdb.md, "Importing statistics"):

``long``     one row per parcel, date and signal, with statistic columns (count, mean, ...)
``wide``     one row per parcel and date, one column per signal (e.g. Google Earth Engine
             exports); the columns and their units are described by an :class:`ImportSpec`
``sen4cap``  Sen4CAP's MDB1 wide layout (``capmon mdb export --format sen4cap`` writes it):
             one row per ``NewID``, columns ``<YYYYMMDD>_<stat>_<fileType>[_<pol>][_<orbit>]...``
``cbm``      the JRC CbM signature tables (``pid, obsid|obstime|date_part, band, count, mean,
             std, min, max, p25, p50, p75``) of one kind: ``s2``, ``bs`` or ``c6``
``openeo``   openEO ``aggregate_spatial`` output: ``date, feature_index, <reducer>(<band>)...``

Conventions: a value that is missing (empty, NaN, a ``nodata`` value) or a row whose validity
column says so is no observation, never a value; statistics the source does not give stay null;
``count`` and ``pixels`` are 0 when the source does not give them (:data:`UNKNOWN_COUNT`: an
extraction never stores a row with no valid pixel). Parcel ids that are not integers are
numbered and the numbering is kept in ``parcel_ids.csv`` next to ``mdb.json``
(:func:`parcel_id_map`, :func:`to_parcel_ids`). One MDB product per source file (named after
it): importing a file again replaces its rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import os
import re
import shutil
import tomllib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from capmon.errors import ColumnError, ConflictError, InputError
from capmon.mdb.store import (
    MANIFEST,
    OBSERVATIONS,
    STATISTIC_COLUMNS,
    MdbManifest,
    MdbStore,
    ProductPart,
    conform,
    parquet_files,
    read_compaction,
    read_manifest,
)
from capmon.workspace import atomic_path

F64 = npt.NDArray[np.float64]
Objects = npt.NDArray[np.object_]
LAYOUTS = ("long", "wide", "sen4cap", "cbm", "openeo")
CBM_KINDS = ("s2", "bs", "c6")
SAR_UNITS = ("db", "amp-db", "linear")
"""How S1 backscatter values are given: true dB (10 log10 of sigma0/gamma0), Sen4CAP's
"AMP dB" (half of it, capmon's ``AMP_*``), or linear power."""
VALUE_STATISTICS = ("count", "pixels", *STATISTIC_COLUMNS)
UNKNOWN_COUNT = 0
"""``count`` / ``pixels`` of an imported row whose source does not give them."""
PARCEL_ID_MAP = "parcel_ids.csv"
ENGINE_VERSION = "import-1"
MAX_ID_LENGTH = 254
_LOCATION_STATISTICS = ("mean", "min", "max", "median", "p25", "p75")
_INTEGRAL = re.compile(r"^[+-]?\d{1,18}(\.0*)?$")
_SIGNAL_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_MISSING_TEXT = {"", "na", "nan", "null", "none"}
_TOLERANCE = 1e-4
_DEFAULT_PAIR_PATTERN = r"(?P<first>\d{8})\D+(?P<date>\d{8})"
_SEN4CAP_COLUMN = re.compile(r"^(\d{8})_(mean|stdev|min|max|median|p25|p75)_(.+)$")
_OPENEO_COLUMN = re.compile(r"^(avg|mean|median|min|max|sd|std|stdev|count)\((.+)\)$")
_DIRECTIONS = {"ASCENDING": "ASC", "ASC": "ASC", "DESCENDING": "DESC", "DESC": "DESC"}
_OPENEO_STATISTIC = {"avg": "mean", "sd": "stdev", "std": "stdev"}
_CBM_BANDS = {
    **{f"B{n:02d}": f"B{n:02d}" for n in range(1, 13)},
    **{f"B{n}": f"B{n:02d}" for n in range(1, 10)},
    "B8A": "B8A",
}


@dataclass(frozen=True)
class Extract:
    """A per-row value read from ``column``, through the first group of ``pattern`` if given."""

    column: str
    pattern: str | None = None


@dataclass(frozen=True)
class ValueSource:
    """How one source column (wide layouts) or one signal name (long layouts) becomes rows of
    an MDB signal: ``value = log10_factor * log10(raw)`` (if set), then ``* scale + offset``,
    then S1 backscatter ``sar_unit`` -> the signal's unit (``AMP_*`` is half the dB value)."""

    source: str
    signal: str
    statistic: str = "mean"
    scale: float = 1.0
    offset: float = 0.0
    log10_factor: float | None = None
    sar_unit: str | None = None
    sensor: str | None = None
    backscatter: str | None = None
    optional: bool = field(default=False, repr=False)  # the rows do not depend on it
    """Wide layouts: a file without this column gives no such signal (a note says so) instead
    of an error; a file with none of a spec's columns is still an error."""


@dataclass(frozen=True)
class ImportSpec:
    """How to read one kind of statistics table (a TOML file or CLI options; docs/mdb.md)."""

    layout: str = "long"
    id_column: str | None = None
    date_column: str | None = None
    date_format: str | None = None
    """A ``strftime`` format, ``epoch`` (seconds since 1970), or None (ISO-like dates)."""
    signal_column: str | None = None
    values: tuple[ValueSource, ...] = ()
    statistic_columns: tuple[tuple[str, str], ...] = ()
    """Long layouts: (statistic, column) pairs; default: the columns named like the statistic."""
    ignore: tuple[str, ...] = ()
    """Long layouts: signal names that are skipped (e.g. CbM's ``SC`` scene classification)."""
    sensor: str | None = None
    sensor_from: Extract | None = None
    tile: str | None = None
    tile_from: Extract | None = None
    orbit: int | None = None
    orbit_from: Extract | None = None
    orbit_direction: str | None = None
    orbit_direction_from: Extract | None = None
    date_first_from: Extract | None = None
    date_pair_from: Extract | None = None
    """Coherence pairs: a column holding both dates; ``pattern`` has the groups ``first`` and
    ``date`` (default: two ``YYYYMMDD`` separated by non-digits). It takes precedence over
    ``date_column``."""
    valid_column: str | None = None
    valid_values: tuple[str, ...] = ()
    nodata: tuple[float, ...] = ()
    backscatter: str | None = None
    sar_unit: str | None = None
    cbm_kind: str | None = None
    out_of_range: str = "error"
    """A value outside its signal's physical range: ``error`` when it is far outside (more
    than the range's width: a wrong unit or scale), else the observation is dropped (a cloud
    the source's mask missed, as extraction drops such pixels); ``drop``: always dropped."""
    custom_signals: bool = False
    """Accept signal names capmon does not know (upper case, digits, '_'), without range checks."""


@dataclass(frozen=True)
class SourceImport:
    """What one source file gave."""

    source: Path
    product_id: str
    already_imported: bool
    rows_read: int
    rows_not_valid: int
    missing_values: int
    unknown_parcel_rows: int
    observations: int
    parcels: int
    signals: tuple[str, ...]
    first: dt.date | None
    last: dt.date | None


@dataclass(frozen=True)
class ImportReport:
    """What :func:`import_statistics` wrote."""

    mdb: Path
    sources: tuple[SourceImport, ...]
    id_map: bool
    notes: tuple[str, ...] = ()

    @property
    def observations(self) -> int:
        return sum(s.observations for s in self.sources)

    def to_json(self) -> dict[str, Any]:
        return {
            "mdb": str(self.mdb),
            "observations": self.observations,
            "id_map": str(self.mdb / PARCEL_ID_MAP) if self.id_map else None,
            "notes": list(self.notes),
            "sources": [
                {
                    "source": str(s.source),
                    "product_id": s.product_id,
                    "already_imported": s.already_imported,
                    "rows_read": s.rows_read,
                    "rows_not_valid": s.rows_not_valid,
                    "missing_values": s.missing_values,
                    "unknown_parcel_rows": s.unknown_parcel_rows,
                    "observations": s.observations,
                    "parcels": s.parcels,
                    "signals": list(s.signals),
                    "first": s.first.isoformat() if s.first else None,
                    "last": s.last.isoformat() if s.last else None,
                }
                for s in self.sources
            ],
        }


# --- specs ------------------------------------------------------------------------------------


def builtin_specs() -> list[str]:
    """The names of the import specs shipped with capmon (``capmon/data/import_specs``)."""
    folder = resources.files("capmon.data.import_specs")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_spec(name_or_path: str | Path) -> ImportSpec:
    """An import spec from a TOML file, or one shipped with capmon by name (``gmd-s2``...)."""
    path = Path(name_or_path)
    if path.suffix.lower() == ".toml" or path.exists():
        if not path.is_file():
            raise InputError(f"{path}: import spec not found")
        text = path.read_text(encoding="utf-8")
        label = str(path)
    else:
        name = str(name_or_path)
        if name not in builtin_specs():
            raise InputError(
                f"{name!r} is neither a spec file nor a shipped spec ({', '.join(builtin_specs())})"
            )
        text = (
            resources.files("capmon.data.import_specs")
            .joinpath(f"{name}.toml")
            .read_text(encoding="utf-8")
        )
        label = f"shipped spec {name}"
    try:
        payload = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{label}: not valid TOML: {exc}") from exc
    return spec_from_mapping(payload, label)


def spec_from_mapping(payload: Mapping[str, Any], label: str = "import spec") -> ImportSpec:
    """An :class:`ImportSpec` from the keys of a TOML spec (see docs/mdb.md)."""
    simple = {
        "layout": str,
        "id_column": str,
        "date_column": str,
        "date_format": str,
        "signal_column": str,
        "sensor": str,
        "tile": str,
        "orbit": int,
        "orbit_direction": str,
        "valid_column": str,
        "backscatter": str,
        "sar_unit": str,
        "cbm_kind": str,
        "out_of_range": str,
        "custom_signals": bool,
    }
    extracts = (
        "sensor_from",
        "tile_from",
        "orbit_from",
        "orbit_direction_from",
        "date_first_from",
        "date_pair_from",
    )
    known = (
        set(simple)
        | set(extracts)
        | {
            "columns",
            "signals",
            "statistics",
            "ignore",
            "valid_values",
            "nodata",
            "description",
        }
    )
    unknown = sorted(set(payload) - known)
    if unknown:
        raise InputError(f"{label}: unknown keys {unknown}; known: {sorted(known)}")
    arguments: dict[str, Any] = {}
    for key, kind in simple.items():
        if key in payload:
            value = payload[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise InputError(f"{label}: {key} must be a {kind.__name__}, not {value!r}")
            arguments[key] = value
    for key in extracts:
        if key in payload:
            arguments[key] = _extract_from(payload[key], f"{label}: {key}")
    for key in ("ignore", "valid_values"):
        if key in payload:
            arguments[key] = tuple(str(v) for v in _as_list(payload[key], f"{label}: {key}"))
    if "nodata" in payload:
        arguments["nodata"] = tuple(
            _as_float(v, f"{label}: nodata") for v in _as_list(payload["nodata"], label)
        )
    if "statistics" in payload:
        table = payload["statistics"]
        if not isinstance(table, Mapping):
            raise InputError(f"{label}: [statistics] must be a table of statistic = column")
        arguments["statistic_columns"] = tuple((str(k), str(v)) for k, v in table.items())
    values: list[ValueSource] = []
    for key in ("columns", "signals"):
        table = payload.get(key, {})
        if not isinstance(table, Mapping):
            raise InputError(f"{label}: [{key}] must be a table of source = signal")
        for source, target in table.items():
            values.append(_value_source(str(source), target, f"{label}: [{key}] {source}"))
    arguments["values"] = tuple(values)
    return check_spec(ImportSpec(**arguments), label)


def _value_source(source: str, target: object, label: str) -> ValueSource:
    if isinstance(target, str):
        return ValueSource(source=source, signal=target)
    if not isinstance(target, Mapping):
        raise InputError(f"{label}: give a signal name or a table with signal = ...")
    allowed = {
        "signal",
        "statistic",
        "scale",
        "offset",
        "log10_factor",
        "sar_unit",
        "sensor",
        "backscatter",
        "optional",
    }
    unknown = sorted(set(target) - allowed)
    if unknown or "signal" not in target:
        raise InputError(f"{label}: needs signal = ...; allowed keys {sorted(allowed)}")
    return ValueSource(
        source=source,
        signal=str(target["signal"]),
        statistic=str(target.get("statistic", "mean")),
        scale=_as_float(target.get("scale", 1.0), f"{label}: scale"),
        offset=_as_float(target.get("offset", 0.0), f"{label}: offset"),
        log10_factor=(
            _as_float(target["log10_factor"], f"{label}: log10_factor")
            if "log10_factor" in target
            else None
        ),
        sar_unit=str(target["sar_unit"]) if "sar_unit" in target else None,
        sensor=str(target["sensor"]) if "sensor" in target else None,
        backscatter=str(target["backscatter"]) if "backscatter" in target else None,
        optional=_as_bool(target.get("optional", False), f"{label}: optional"),
    )


def _extract_from(value: object, label: str) -> Extract:
    if isinstance(value, str):
        return Extract(column=value)
    if isinstance(value, Mapping) and "column" in value and set(value) <= {"column", "pattern"}:
        pattern = value.get("pattern")
        return Extract(
            column=str(value["column"]), pattern=None if pattern is None else str(pattern)
        )
    raise InputError(f"{label}: give a column name or {{ column = ..., pattern = ... }}")


def _as_list(value: object, label: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, (str, int, float)):
        return [value]
    raise InputError(f"{label}: give a list")


def _as_bool(value: object, label: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{label}: {value!r} is not true or false")
    return value


def _as_float(value: object, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{label}: {value!r} is not a number")
    return float(value)


def check_spec(spec: ImportSpec, label: str = "import spec") -> ImportSpec:
    """``spec`` when it is coherent, else an :class:`InputError` saying what is wrong."""
    if spec.layout not in LAYOUTS:
        raise InputError(f"{label}: layout {spec.layout!r}: use one of {', '.join(LAYOUTS)}")
    if spec.layout == "cbm" and spec.cbm_kind not in CBM_KINDS:
        raise InputError(
            f"{label}: the cbm layout needs the kind of signature table: {', '.join(CBM_KINDS)} "
            "(S2 bands, backscatter, 6-day coherence)"
        )
    if spec.layout == "wide" and not spec.values:
        raise InputError(f"{label}: a wide layout needs its columns (e.g. ndvi=NDVI)")
    if spec.out_of_range not in ("error", "drop"):
        raise InputError(f"{label}: out_of_range {spec.out_of_range!r}: use error or drop")
    if spec.sar_unit is not None and spec.sar_unit not in SAR_UNITS:
        raise InputError(f"{label}: sar_unit {spec.sar_unit!r}: use {', '.join(SAR_UNITS)}")
    if spec.backscatter not in (None, "sigma0", "gamma0"):
        raise InputError(f"{label}: backscatter {spec.backscatter!r}: use sigma0 or gamma0")
    seen: dict[tuple[str, str, str | None], str] = {}
    for value in spec.values:
        where = f"{label}: {value.source}"
        if value.statistic not in VALUE_STATISTICS:
            raise InputError(
                f"{where}: statistic {value.statistic!r}: use {', '.join(VALUE_STATISTICS)}"
            )
        if value.sar_unit is not None and value.sar_unit not in SAR_UNITS:
            raise InputError(f"{where}: sar_unit {value.sar_unit!r}: use {', '.join(SAR_UNITS)}")
        if value.backscatter not in (None, "sigma0", "gamma0"):
            raise InputError(f"{where}: backscatter {value.backscatter!r}: use sigma0 or gamma0")
        if not (math.isfinite(value.scale) and value.scale > 0 and math.isfinite(value.offset)):
            raise InputError(f"{where}: scale must be > 0 and offset finite")
        key = (value.signal, value.statistic, value.sensor)
        if spec.layout in ("wide", "openeo") and key in seen:
            raise InputError(
                f"{label}: columns {seen[key]!r} and {value.source!r} both give the "
                f"{value.statistic} of {value.signal}"
            )
        seen[key] = value.source
    for statistic, _column in spec.statistic_columns:
        if statistic not in VALUE_STATISTICS:
            raise InputError(f"{label}: statistic {statistic!r}: use {', '.join(VALUE_STATISTICS)}")
    for extract in (
        spec.sensor_from,
        spec.tile_from,
        spec.orbit_from,
        spec.orbit_direction_from,
        spec.date_first_from,
        spec.date_pair_from,
    ):
        if extract is not None and extract.pattern is not None:
            try:
                re.compile(extract.pattern)
            except re.error as exc:
                raise InputError(f"{label}: pattern {extract.pattern!r}: {exc}") from exc
    return spec


def with_layout_defaults(spec: ImportSpec) -> ImportSpec:
    """``spec`` with the column names and conversions its layout implies filled in."""
    if spec.layout == "sen4cap":
        return replace(spec, id_column=spec.id_column or "NewID")
    if spec.layout == "openeo":
        return replace(
            spec,
            id_column=spec.id_column or "feature_index",
            date_column=spec.date_column or "date",
        )
    if spec.layout != "cbm":
        return spec
    statistics = spec.statistic_columns or (
        ("count", "count"),
        ("mean", "mean"),
        ("stdev", "std"),
        ("min", "min"),
        ("max", "max"),
        ("p25", "p25"),
        ("median", "p50"),
        ("p75", "p75"),
    )
    given = {v.source for v in spec.values}
    values = list(spec.values)
    if spec.cbm_kind == "s2":
        sensor = spec.sensor or "S2"
        values += [
            ValueSource(band, signal, scale=1e-4)
            for band, signal in _CBM_BANDS.items()
            if band not in given
        ]
        ignore = spec.ignore or ("SC", "SCL")
    else:
        sensor = spec.sensor or "S1"
        ignore = spec.ignore
        for pol in ("VV", "VH"):
            for band in (pol, f"{pol}b", f"{pol}c"):
                if band in given:
                    continue
                if spec.cbm_kind == "c6" or band.endswith("c"):
                    values.append(ValueSource(band, f"COHE_{pol}"))
                else:
                    values.append(ValueSource(band, f"AMP_{pol}", sar_unit="linear"))
    return replace(
        spec,
        id_column=spec.id_column or "pid",
        signal_column=spec.signal_column or "band",
        statistic_columns=statistics,
        values=tuple(values),
        ignore=ignore,
        sensor=sensor if spec.sensor_from is None else spec.sensor,
        backscatter=spec.backscatter or ("gamma0" if spec.cbm_kind == "bs" else None),
    )


# --- parcel ids -------------------------------------------------------------------------------


def parcel_id_map(mdb_root: str | Path) -> dict[str, int] | None:
    """The original parcel id -> MDB ``parcel_id`` numbering of an imported MDB, or None when
    the MDB uses the parcels' integer ids directly (extracted MDBs, imports of integer ids)."""
    path = Path(mdb_root) / PARCEL_ID_MAP
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path, dtype={"original_id": "str", "parcel_id": "int64"})
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: not a parcel id map: {exc}") from exc
    if list(frame.columns) != ["original_id", "parcel_id"]:
        raise InputError(f"{path}: expected the columns original_id, parcel_id")
    return dict(zip(frame["original_id"].astype(str), frame["parcel_id"].astype(int), strict=True))


def to_parcel_ids(mdb_root: str | Path, ids: Iterable[object]) -> list[int | None]:
    """The MDB ``parcel_id`` of each of ``ids`` (a parcels file's id column), None where the
    MDB has no such parcel. Ids go through ``parcel_ids.csv`` when the MDB has one, else they
    must be integers (``17``, ``"17"``, ``17.0``)."""
    mapping = parcel_id_map(mdb_root)
    result: list[int | None] = []
    for raw in ids:
        text = _id_text(raw)
        if mapping is not None:
            result.append(mapping.get(text) if text is not None else None)
        elif text is not None and _INTEGRAL.match(text):
            result.append(int(float(text)) if "." in text else int(text))
        else:
            result.append(None)
    return result


def read_parcel_ids(path: str | Path, id_column: str) -> tuple[str, ...]:
    """The distinct ids of ``id_column`` in a parcels file (any vector format, or CSV)."""
    file = Path(path)
    if file.suffix.lower() in (".csv", ".txt"):
        if not file.is_file():
            raise InputError(f"{file}: file not found")
        frame = pd.read_csv(file, dtype=str)
    else:
        from capmon.vector import read_vector

        frame = read_vector(file, require_crs=False).frame
    if id_column not in frame.columns:
        raise ColumnError(
            f"{file}: no column {id_column!r}; columns: {', '.join(map(str, frame.columns))}"
        )
    ids: list[str] = []
    for row, raw in enumerate(frame[id_column].tolist()):
        text = _id_text(raw)
        if text is None:
            raise InputError(f"{file}: row {row + 1}, column {id_column!r}: empty parcel id")
        ids.append(text)
    return tuple(dict.fromkeys(ids))


def _id_text(raw: object) -> str | None:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or raw is pd.NA:
        return None
    if isinstance(raw, (bool, np.bool_)):
        return str(raw)
    if isinstance(raw, (int, np.integer)):
        return str(int(raw))
    if isinstance(raw, (float, np.floating)):
        value = float(raw)
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    text = str(raw).strip()
    return text or None


def _natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", text)
        if part
    )


def _as_int(text: str) -> int:
    return int(float(text)) if "." in text else int(text)


# --- reading ----------------------------------------------------------------------------------


@dataclass
class _Source:
    """A source file read into memory, and how to name its rows in messages."""

    path: Path
    frame: pd.DataFrame
    first_line: int  # CSV: 2 (the header is line 1); other formats: row 1
    unit: str

    def where(self, row: int, column: str | None = None) -> str:
        text = f"{self.path}: {self.unit} {row + self.first_line}"
        return f"{text}, column {column!r}" if column else text


def _read_source(path: Path, layout: str) -> _Source:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            return _Source(path, frame, 2, "line")
        if suffix in (".parquet", ".geoparquet", ".pq"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif suffix in (".ipc", ".arrow", ".feather"):
            import pyarrow.ipc as ipc

            with pa.memory_map(str(path)) as source:
                table = ipc.open_file(source).read_all()
        elif suffix == ".json" and layout == "openeo":
            return _Source(path, _openeo_json(path), 1, "entry")
        else:
            raise InputError(
                f"{path}: unknown format {suffix!r}; use CSV, Parquet/GeoParquet, Arrow IPC "
                "(or openEO JSON)"
            )
    except (OSError, pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from exc
    keep = [
        name
        for name, kind in zip(table.column_names, table.schema.types, strict=True)
        if not pa.types.is_binary(kind) and not pa.types.is_large_binary(kind)
    ]
    return _Source(path, table.select(keep).to_pandas(), 1, "row")


def _openeo_json(path: Path) -> pd.DataFrame:
    """openEO's synchronous ``aggregate_spatial`` JSON: ``{date: [[band values] per feature]}``."""
    import json

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InputError(f"{path}: expected an object of date -> per-feature band values")
    records: list[dict[str, object]] = []
    for date, features in payload.items():
        if not isinstance(features, list):
            raise InputError(f"{path}: date {date!r}: expected a list of features")
        for index, bands in enumerate(features):
            values = bands if isinstance(bands, list) else []
            record: dict[str, object] = {"date": date, "feature_index": str(index)}
            for band, value in enumerate(values):
                record[f"band_{band}"] = value
            records.append(record)
    return pd.DataFrame.from_records(records)


def _column(source: _Source, name: str, what: str) -> pd.Series:
    if name not in source.frame.columns:
        raise ColumnError(
            f"{source.path}: no {what} column {name!r}; columns: "
            f"{', '.join(map(str, source.frame.columns))}"
        )
    return source.frame[name]


def _numbers(source: _Source, name: str) -> F64:
    """A column as float64 (NaN = missing); a text that is not a number is an error."""
    series = _column(source, name, "value")
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    text = series.astype(object)
    missing = np.array(
        [
            v is None
            or (isinstance(v, float) and math.isnan(v))
            or str(v).strip().lower() in _MISSING_TEXT
            for v in text
        ],
        dtype=bool,
    )
    values = pd.to_numeric(series.where(~missing), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(values) & ~missing)
    if len(bad):
        row = int(bad[0])
        raise InputError(f"{source.where(row, name)}: {text.iloc[row]!r} is not a number")
    return np.asarray(values, dtype=np.float64)


def _texts(source: _Source, extract: Extract, what: str) -> Objects:
    """Per-row text from ``extract`` (None where the column is empty or the pattern fails)."""
    series = _column(source, extract.column, what)
    texts = [_id_text(v) for v in series.tolist()]
    if extract.pattern is None:
        return np.array(texts, dtype=object)
    pattern = re.compile(extract.pattern)
    out: list[str | None] = []
    for text in texts:
        match = pattern.search(text) if text is not None else None
        out.append(None if match is None else match.group(1 if match.groups() else 0))
    return np.array(out, dtype=object)


def _dates(
    source: _Source, raw: Sequence[object], column: str, date_format: str | None
) -> np.ndarray:
    """Dates (datetime64[D]) of ``raw``; an empty or unparseable value is an error."""
    series = pd.Series(list(raw), dtype=object)
    if date_format == "epoch":
        numbers = pd.to_numeric(series, errors="coerce")
        parsed = pd.to_datetime(numbers, unit="s", errors="coerce", utc=True)
    elif pd.api.types.is_datetime64_any_dtype(series.infer_objects().dtype):
        parsed = pd.to_datetime(series.infer_objects(), errors="coerce", utc=True)
    else:
        texts = series.map(lambda v: None if v is None else str(v).strip() or None)
        if date_format:
            parsed = pd.to_datetime(texts, format=date_format, errors="coerce", utc=True)
        else:
            compact = texts.map(lambda v: v is not None and bool(re.fullmatch(r"\d{8}", v)))
            parsed = pd.to_datetime(
                texts.where(~compact), format="ISO8601", errors="coerce", utc=True
            )
            if compact.any():
                parsed = parsed.where(
                    ~compact,
                    pd.to_datetime(
                        texts.where(compact), format="%Y%m%d", errors="coerce", utc=True
                    ),
                )
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        value = series.iloc[row]
        raise InputError(
            f"{source.where(row, column)}: {value!r} is not a date"
            + (f" ({date_format})" if date_format else " (YYYY-MM-DD, ISO 8601 or YYYYMMDD)")
        )
    return np.asarray(parsed.dt.tz_convert(None).to_numpy().astype("datetime64[D]"))


# --- rows of one source -----------------------------------------------------------------------


@dataclass
class _Rows:
    """Per-row attributes of one source (arrays of the source's length)."""

    parcel: np.ndarray
    date: np.ndarray
    date_first: np.ndarray
    sensor: np.ndarray
    orbit: np.ndarray
    orbit_direction: np.ndarray
    tile: np.ndarray
    valid: np.ndarray


@dataclass
class _Cells:
    """One value per (row, signal, statistic), with where it came from and how to convert it."""

    parts: list[pd.DataFrame] = field(default_factory=list)

    def add(
        self, rows: np.ndarray, values: np.ndarray, value: ValueSource, column: str, **over: Any
    ) -> None:
        if not len(rows):
            return
        frame = pd.DataFrame(
            {
                "row": rows.astype(np.int64),
                "raw": values.astype(np.float64),
                "signal": value.signal,
                "statistic": value.statistic,
                "column": column,
                "scale": value.scale,
                "offset": value.offset,
                "log10_factor": np.nan if value.log10_factor is None else value.log10_factor,
                "sar_unit": value.sar_unit,
                "sensor_over": value.sensor,
                "backscatter_over": value.backscatter,
            }
        )
        for key, array in over.items():
            frame[key] = array
        self.parts.append(frame)

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame(columns=["row", "raw", "signal", "statistic", "column"])
        return pd.concat(self.parts, ignore_index=True)


def _row_attributes(source: _Source, spec: ImportSpec, needs_date: bool) -> _Rows:
    n = len(source.frame)
    if spec.id_column is None:
        raise InputError(f"{source.path}: say which column holds the parcel ids (id_column)")
    ids = _column(source, spec.id_column, "parcel id")
    parcel = np.array([_id_text(v) for v in ids.tolist()], dtype=object)
    for row in range(n):
        text = parcel[row]
        if text is None:
            raise InputError(f"{source.where(row, spec.id_column)}: empty parcel id")
        if len(text) > MAX_ID_LENGTH:
            raise InputError(
                f"{source.where(row, spec.id_column)}: parcel id of {len(text)} characters "
                f"(at most {MAX_ID_LENGTH})"
            )
    nat = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    date, date_first = nat.copy(), nat.copy()
    if spec.date_pair_from is not None:
        extract = spec.date_pair_from
        pattern = re.compile(extract.pattern or _DEFAULT_PAIR_PATTERN)
        if not {"first", "date"} <= set(pattern.groupindex):
            raise InputError(
                f"date pair pattern {pattern.pattern!r} needs the groups (?P<first>...) and "
                "(?P<date>...)"
            )
        texts = [_id_text(v) for v in _column(source, extract.column, "date pair").tolist()]
        firsts: list[str | None] = []
        lasts: list[str | None] = []
        for row, text in enumerate(texts):
            match = pattern.search(text) if text is not None else None
            if match is None:
                raise InputError(
                    f"{source.where(row, extract.column)}: {text!r} holds no date pair "
                    f"matching {pattern.pattern!r}"
                )
            firsts.append(match.group("first"))
            lasts.append(match.group("date"))
        date = _dates(source, lasts, extract.column, None)
        date_first = _dates(source, firsts, extract.column, None)
        later = np.flatnonzero(date_first >= date)
        if len(later):
            raise InputError(
                f"{source.where(int(later[0]), extract.column)}: the pair's first date is not "
                "before its second"
            )
    elif spec.date_column is not None:
        date = _dates(
            source,
            _column(source, spec.date_column, "date").tolist(),
            spec.date_column,
            spec.date_format,
        )
    elif needs_date:
        raise InputError(f"{source.path}: say which column holds the dates (date_column)")
    if spec.date_first_from is not None and spec.date_pair_from is None:
        firsts_text = _texts(source, spec.date_first_from, "first date")
        present = np.array([t is not None for t in firsts_text], dtype=bool)
        if present.any():
            date_first[present] = _dates(
                source, list(firsts_text[present]), spec.date_first_from.column, spec.date_format
            )
    sensor = _constant_or(source, spec.sensor, spec.sensor_from, n, "sensor")
    tile = _constant_or(source, spec.tile, spec.tile_from, n, "tile")
    direction = np.array(
        [
            _DIRECTIONS.get(str(d).upper(), str(d)) if d is not None else None
            for d in _constant_or(
                source, spec.orbit_direction, spec.orbit_direction_from, n, "orbit direction"
            )
        ],
        dtype=object,
    )
    orbit = np.full(n, np.nan)
    if spec.orbit is not None:
        orbit[:] = spec.orbit
    elif spec.orbit_from is not None:
        if spec.orbit_from.pattern is None:
            orbit = _numbers(source, spec.orbit_from.column)
        else:
            orbit_text = _texts(source, spec.orbit_from, "orbit")
            for row, text in enumerate(orbit_text):
                if text is not None and not _is_number(text):
                    raise InputError(
                        f"{source.where(row, spec.orbit_from.column)}: orbit {text!r} is not a "
                        "number"
                    )
            orbit = np.array([np.nan if t is None else float(t) for t in orbit_text])
    valid = np.ones(n, dtype=bool)
    if spec.valid_column is not None:
        valid = _valid_rows(source, spec)
    return _Rows(parcel, date, date_first, sensor, orbit, direction, tile, valid)


def _constant_or(
    source: _Source, constant: str | None, extract: Extract | None, n: int, what: str
) -> np.ndarray:
    if extract is not None:
        return _texts(source, extract, what)
    return np.full(n, constant, dtype=object)


def _valid_rows(source: _Source, spec: ImportSpec) -> np.ndarray:
    assert spec.valid_column is not None
    if not spec.valid_values:
        raise InputError(f"valid_column {spec.valid_column!r} needs valid_values (e.g. 1)")
    series = _column(source, spec.valid_column, "validity")
    wanted_numbers = {float(v) for v in spec.valid_values if _is_number(v)}
    wanted_texts = {v.strip() for v in spec.valid_values}
    out = np.zeros(len(series), dtype=bool)
    for row, raw in enumerate(series.tolist()):
        text = _id_text(raw)
        if text is None:
            continue
        out[row] = text in wanted_texts or (_is_number(text) and float(text) in wanted_numbers)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _present_values(source: _Source, spec: ImportSpec, notes: list[str]) -> ImportSpec:
    """``spec`` without its optional columns that ``source`` lacks (a note names them); an
    error when the source has none of the spec's value columns."""
    columns = set(map(str, source.frame.columns))
    absent = [v for v in spec.values if v.optional and v.source not in columns]
    if not absent:
        return spec
    if len(absent) == len(spec.values):
        raise ColumnError(
            f"{source.path}: none of the value columns "
            f"{', '.join(v.source for v in spec.values)}; columns: {', '.join(sorted(columns))}"
        )
    notes.append(
        f"{source.path}: no column {', '.join(v.source for v in absent)}: no "
        f"{', '.join(v.signal for v in absent)} from this file"
    )
    return replace(spec, values=tuple(v for v in spec.values if v not in absent))


def _cells_wide(source: _Source, spec: ImportSpec) -> _Cells:
    cells = _Cells()
    everything = np.arange(len(source.frame))
    for value in spec.values:
        cells.add(everything, _numbers(source, value.source), value, value.source)
    return cells


def _cells_openeo(source: _Source, spec: ImportSpec) -> _Cells:
    by_source = {v.source: v for v in spec.values}
    cells = _Cells()
    everything = np.arange(len(source.frame))
    seen: dict[tuple[str, str], str] = {}
    skip = {spec.id_column, spec.date_column, "geometry"}
    for name in map(str, source.frame.columns):
        if name in skip:
            continue
        match = _OPENEO_COLUMN.match(name)
        reducer, band = (match.group(1), match.group(2)) if match else ("mean", name)
        statistic = _OPENEO_STATISTIC.get(reducer, reducer)
        if name in by_source:
            value = by_source[name]
        elif band in by_source:
            value = replace(by_source[band], statistic=statistic)
        elif _known_signal(band):
            value = ValueSource(band, band, statistic=statistic)
        else:
            continue  # not a band column (e.g. feature attributes); listed in the notes
        key = (value.signal, value.statistic)
        if key in seen:
            raise InputError(
                f"{source.path}: columns {seen[key]!r} and {name!r} both give the "
                f"{value.statistic} of {value.signal}"
            )
        seen[key] = name
        cells.add(everything, _numbers(source, name), value, name)
    if not cells.parts:
        raise InputError(
            f"{source.path}: no column maps to a signal; map the band columns, e.g. "
            "--signal-map band_0=B04,band_1=B08 (columns: "
            f"{', '.join(map(str, source.frame.columns))})"
        )
    return cells


def _cells_long(source: _Source, spec: ImportSpec) -> _Cells:
    if spec.signal_column is None:
        raise InputError(f"{source.path}: say which column holds the signal names (signal_column)")
    names = [_id_text(v) for v in _column(source, spec.signal_column, "signal").tolist()]
    by_source = {v.source: v for v in spec.values}
    ignore = set(spec.ignore)
    rows_of: dict[str, list[int]] = {}
    for row, name in enumerate(names):
        if name is None:
            raise InputError(f"{source.where(row, spec.signal_column)}: empty signal name")
        if name in ignore:
            continue
        rows_of.setdefault(name, []).append(row)
    statistics = spec.statistic_columns or tuple(
        (s, s) for s in VALUE_STATISTICS if s in source.frame.columns
    )
    if not statistics:
        raise InputError(
            f"{source.path}: no statistic column ({', '.join(VALUE_STATISTICS)}); map them, "
            "e.g. --stat-map stdev=std,median=p50"
        )
    numbers = {column: _numbers(source, column) for _s, column in statistics}
    cells = _Cells()
    for name, rows in rows_of.items():
        value = by_source.get(name) or ValueSource(name, name)
        if value.signal == name and name not in by_source:
            _check_signal(name, spec, f"{source.where(rows[0], spec.signal_column)}")
        index = np.asarray(rows, dtype=np.int64)
        for statistic, column in statistics:
            cells.add(index, numbers[column][index], replace(value, statistic=statistic), column)
    return cells


def _cells_sen4cap(source: _Source) -> tuple[_Cells, list[str]]:
    cells = _Cells()
    skipped: list[str] = []
    everything = np.arange(len(source.frame))
    for name in map(str, source.frame.columns):
        match = _SEN4CAP_COLUMN.match(name)
        if match is None:
            continue
        day, statistic, rest = match.groups()
        parsed = _sen4cap_signal(rest)
        if parsed is None:
            skipped.append(name)
            continue
        signal, orbit, tile, sensor = parsed
        value = ValueSource(
            name,
            signal,
            statistic=statistic,
            sar_unit="amp-db" if signal.startswith("AMP_") else None,
            sensor=sensor,
        )
        n = len(everything)
        cells.add(
            everything,
            _numbers(source, name),
            value,
            name,
            date_over=np.full(n, np.datetime64(dt.datetime.strptime(day, "%Y%m%d").date(), "D")),
            orbit_over=np.full(n, np.nan if orbit is None else float(orbit)),
            tile_over=np.full(n, tile, dtype=object),
        )
    if not cells.parts:
        raise InputError(
            f"{source.path}: no column named like Sen4CAP's <YYYYMMDD>_<stat>_<type>... "
            "(e.g. 20240503_mean_NDVI)"
        )
    return cells, skipped


def _sen4cap_signal(rest: str) -> tuple[str, int | None, str | None, str] | None:
    """(signal, orbit, tile, sensor) of a Sen4CAP column's ``<fileType>[_<pol>][_<orbit>]...``."""
    parts = rest.split("_")
    kind = parts[0]
    if kind in ("AMP", "COHE"):
        if len(parts) < 2 or parts[1] not in ("VV", "VH"):
            return None  # MDB2's AMP_VVVH (derived: VV dB - VH dB) and unknown polarisations
        orbit = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        tile = parts[3].removeprefix("T") if len(parts) > 3 else None
        return f"{kind}_{parts[1]}", orbit, tile, "S1"
    if kind == "L2A" and len(parts) >= 2:
        band = parts[-1]
        digits = band[1:]
        if band.startswith("B") and digits.isdigit():
            return f"B{int(digits):02d}", None, None, "S2"
        if band == "B8A":
            return "B8A", None, None, "S2"
        return None
    if kind in ("NDVI", "LAI", "FAPAR", "FCOVER", "NDWI", "BRIGHTNESS"):
        tile = parts[1].removeprefix("T") if len(parts) > 1 else None
        return kind, None, tile, "S2"
    return None


# --- signals, units and ranges ----------------------------------------------------------------


def _known_signal(name: str) -> bool:
    from capmon.signals.catalogue import get_signal

    try:
        get_signal(name)
    except InputError:
        return False
    return True


def _check_signal(name: str, spec: ImportSpec, where: str) -> None:
    from capmon.signals.catalogue import get_signal

    try:
        get_signal(name)
    except InputError as exc:
        if spec.custom_signals and _SIGNAL_NAME.match(name):
            return
        hint = " (or allow custom signals)" if _SIGNAL_NAME.match(name) else ""
        raise InputError(f"{where}: {exc}{hint}") from exc


def physical_range(signal: str) -> tuple[float, float] | None:
    """The values a signal can take (the catalogue's ``valid_range``; None: not checked)."""
    from capmon.signals.catalogue import get_signal

    try:
        known = get_signal(signal)
    except InputError:
        return None
    declared = getattr(known, "valid_range", None)
    if declared is None:
        return None
    low, high = declared
    return float(low), float(high)


def _convert(
    cells: pd.DataFrame, source: _Source, notes: list[str], out_of_range: str
) -> pd.DataFrame:
    """Apply each cell's conversion; S1 backscatter to the signal's unit; check the values."""
    raw = cells["raw"].to_numpy(np.float64)
    statistic = cells["statistic"].to_numpy(object)
    rows = cells["row"].to_numpy(np.int64)
    columns = cells["column"].to_numpy(object)
    is_count = np.isin(statistic, ["count", "pixels"])
    is_stdev = statistic == "stdev"

    def fail(index: int, message: str) -> InputError:
        return InputError(f"{source.where(int(rows[index]), str(columns[index]))}: {message}")

    infinite = np.flatnonzero(np.isinf(raw))
    if len(infinite):
        i = int(infinite[0])
        raise fail(i, f"{raw[i]} is not a value (infinite)")
    counts = np.flatnonzero(is_count & ((raw < 0) | (raw != np.round(raw)) | (raw > 2**31 - 1)))
    if len(counts):
        i = int(counts[0])
        raise fail(i, f"{statistic[i]} {raw[i]} is not a number of pixels (an integer >= 0)")
    values = raw.copy()
    log10_factor = cells["log10_factor"].to_numpy(np.float64)
    logged = ~np.isnan(log10_factor) & ~is_count
    if logged.any():
        bad = np.flatnonzero(logged & (values <= 0))
        if len(bad):
            i = int(bad[0])
            raise fail(i, f"{raw[i]} cannot go through log10 (it must be > 0)")
        if (logged & is_stdev).any():
            notes.append(f"{source.path}: stdev values dropped (a stdev cannot go through log10)")
            values[logged & is_stdev] = np.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            values[logged] = log10_factor[logged] * np.log10(values[logged])
    scale = cells["scale"].to_numpy(np.float64)
    offset = cells["offset"].to_numpy(np.float64)
    linear = ~is_count
    values[linear] = values[linear] * scale[linear] + np.where(is_stdev, 0.0, offset)[linear]
    values = _sar_units(cells, values, is_stdev, source, notes, fail)
    ranges = {s: physical_range(s) for s in cells["signal"].unique()}
    signal = cells["signal"].to_numpy(object)
    location = np.isin(statistic, _LOCATION_STATISTICS)
    outside = np.zeros(len(values), dtype=bool)
    for name, bounds in ranges.items():
        if bounds is None:
            continue
        low, high = bounds
        span = high - low
        slack = _TOLERANCE * max(1.0, abs(span))
        mine = (signal == name) & location & ~np.isnan(values)
        far = np.flatnonzero(mine & ((values < low - span) | (values > high + span)))
        if len(far) and out_of_range == "error":
            i = int(far[0])
            hint = ""
            if high <= 2 and abs(values[i]) > 100:
                hint = "; reflectances x 10000? give scale = 0.0001"
            raise fail(
                i,
                f"{name} {statistic[i]} {values[i]:.6g} is far outside its physical range "
                f"[{low:g}, {high:g}] (wrong unit or scale?){hint}",
            )
        outside |= mine & ((values < low - slack) | (values > high + slack))
    if outside.any():
        # as in extraction, a value outside the physical range is no observation (a cloud or
        # snow that the source's mask missed): the whole observation (row, signal) is dropped
        i = int(np.flatnonzero(outside)[0])
        dropped = pd.MultiIndex.from_arrays([rows[outside], signal[outside]])
        drop = pd.MultiIndex.from_arrays([rows, signal]).isin(dropped)
        notes.append(
            f"{source.path}: {int(dropped.nunique())} observations outside their signal's "
            f"physical range dropped (first: {source.where(int(rows[i]), str(columns[i]))}: "
            f"{signal[i]} {statistic[i]} {values[i]:.6g})"
        )
        values[drop] = np.nan
    negative = np.flatnonzero(is_stdev & (values < 0))
    if len(negative):
        i = int(negative[0])
        raise fail(i, f"stdev {raw[i]} is negative")
    out = cells.copy()
    out["value"] = values
    return out


def _sar_units(
    cells: pd.DataFrame,
    values: np.ndarray,
    is_stdev: np.ndarray,
    source: _Source,
    notes: list[str],
    fail: Any,
) -> np.ndarray:
    signal = cells["signal"].to_numpy(object)
    unit = cells["sar_unit"].to_numpy(object)
    statistic = cells["statistic"].to_numpy(object)
    amplitude = np.array([str(s).startswith("AMP_") for s in signal], dtype=bool)
    true_db = np.array([str(s).startswith("BCK_") for s in signal], dtype=bool)
    backscatter = (amplitude | true_db) & ~np.isin(statistic, ["count", "pixels"])
    if not backscatter.any():
        return values
    missing = np.flatnonzero(backscatter & np.array([u is None for u in unit], dtype=bool))
    if len(missing):
        i = int(missing[0])
        raise fail(
            i,
            f"{signal[i]} needs the unit of its values: sar_unit = db (10 log10 sigma0), "
            "amp-db (Sen4CAP AMP, half of it) or linear",
        )
    out = values.copy()
    in_db = backscatter & (unit == "db")
    out[in_db & amplitude] = values[in_db & amplitude] / 2.0
    in_amp = backscatter & (unit == "amp-db")
    out[in_amp & true_db] = values[in_amp & true_db] * 2.0
    in_linear = backscatter & (unit == "linear")
    if in_linear.any():
        bad = np.flatnonzero(in_linear & ~is_stdev & (values <= 0))
        if len(bad):
            i = int(bad[0])
            raise fail(i, f"linear backscatter {values[i]} must be > 0")
        if (in_linear & is_stdev & ~np.isnan(values)).any():
            notes.append(
                f"{source.path}: stdev of linear backscatter dropped (not convertible to dB)"
            )
        factor = np.where(amplitude, 5.0, 10.0)
        convert = in_linear & ~is_stdev
        with np.errstate(divide="ignore", invalid="ignore"):
            out[convert] = factor[convert] * np.log10(values[convert])
        out[in_linear & is_stdev] = np.nan
        if (in_linear & (statistic == "mean")).any():
            notes.append(
                f"{source.path}: the dB mean of linear backscatter is the dB of the linear "
                "mean (order statistics are exact)"
            )
    return out


# --- one source into observations -------------------------------------------------------------


_KEY = ("parcel", "signal", "date", "date_first", "sensor", "orbit")


@dataclass
class _Observations:
    source: _Source
    frame: pd.DataFrame  # one row per observation: row, parcel, signal, key columns, statistics
    rows_not_valid: int
    missing_values: int
    notes: list[str]


def _observations(source: _Source, spec: ImportSpec) -> _Observations:
    notes: list[str] = []
    skipped: list[str] = []
    if spec.layout == "sen4cap":
        cells_builder, skipped = _cells_sen4cap(source)
        rows = _row_attributes(source, spec, needs_date=False)
    else:
        if spec.layout == "cbm" and spec.date_column is None:
            # the signature table joined with the image catalogue has obstime; the CbM
            # time-series files have date_part (seconds since 1970)
            found = "obstime" if "obstime" in source.frame.columns else "date_part"
            spec = replace(
                spec,
                date_column=found,
                date_format=spec.date_format or ("epoch" if found == "date_part" else None),
            )
        rows = _row_attributes(source, spec, needs_date=True)
        if spec.layout == "wide":
            spec = _present_values(source, spec, notes)
        if spec.layout in ("long", "cbm"):
            cells_builder = _cells_long(source, spec)
        elif spec.layout == "openeo":
            cells_builder = _cells_openeo(source, spec)
        else:
            cells_builder = _cells_wide(source, spec)
    if skipped:
        notes.append(
            f"{source.path}: {len(skipped)} derived or unknown columns skipped (e.g. {skipped[0]})"
        )
    for value in spec.values:
        if spec.layout in ("wide",):
            _check_signal(value.signal, spec, f"{source.path}: column {value.source!r}")
    cells = cells_builder.frame()
    if spec.sar_unit is not None and "sar_unit" in cells.columns:
        cells["sar_unit"] = cells["sar_unit"].where(cells["sar_unit"].notna(), spec.sar_unit)
    for name in cells["signal"].unique() if len(cells) else []:
        _check_signal(str(name), spec, f"{source.path}")
    valid_rows = rows.valid
    rows_not_valid = int((~valid_rows).sum())
    cells = cells[valid_rows[cells["row"].to_numpy(np.int64)]] if len(cells) else cells
    raw = cells["raw"].to_numpy(np.float64) if len(cells) else np.zeros(0)
    missing = np.isnan(raw)
    for nodata in spec.nodata:
        missing |= raw == nodata
    missing_values = int(missing.sum())
    cells = cells[~missing]
    if not len(cells):
        return _Observations(source, _empty_observations(), rows_not_valid, missing_values, notes)
    cells = _convert(cells.reset_index(drop=True), source, notes, spec.out_of_range)
    row = cells["row"].to_numpy(np.int64)

    def per_cell(name: str, base: np.ndarray) -> np.ndarray:
        values: np.ndarray = base[row].copy()
        over = f"{name}_over"
        if over in cells.columns:
            override = cells[over]
            present = override.notna().to_numpy()
            values[present] = override.to_numpy()[present]
        return values

    keyed = pd.DataFrame(
        {
            "row": row,
            "parcel": rows.parcel[row],
            "signal": cells["signal"].to_numpy(object),
            "date": per_cell("date", rows.date),
            "date_first": rows.date_first[row],
            "sensor": per_cell("sensor", rows.sensor),
            "orbit": per_cell("orbit", rows.orbit),
            "orbit_direction": rows.orbit_direction[row],
            "tile": per_cell("tile", rows.tile),
            "backscatter": per_cell(
                "backscatter", np.full(len(rows.parcel), spec.backscatter, dtype=object)
            ),
            "column": cells["column"].to_numpy(object),
            "statistic": cells["statistic"].to_numpy(object),
            "value": cells["value"].to_numpy(np.float64),
        }
    )
    _check_row_keys(keyed, source)
    group_keys = ["row", "signal", "date", "sensor", "orbit", "tile", "backscatter"]
    keyed["observation"] = keyed.groupby(group_keys, dropna=False, sort=False).ngroup()
    statistics = keyed.pivot(index="observation", columns="statistic", values="value")
    firsts = keyed.drop_duplicates("observation").set_index("observation").sort_index()
    observed = firsts[list(_OBSERVATION_COLUMNS)].join(statistics)
    for name in VALUE_STATISTICS:
        if name not in observed.columns:
            observed[name] = np.nan
    values_present = observed[list(STATISTIC_COLUMNS)].notna().any(axis=1)
    observed = observed[values_present].reset_index(drop=True)
    _check_statistics(observed, source)
    _check_duplicates(observed, source)
    return _Observations(source, observed, rows_not_valid, missing_values, notes)


_OBSERVATION_COLUMNS = (
    "row",
    "parcel",
    "signal",
    "date",
    "date_first",
    "sensor",
    "orbit",
    "orbit_direction",
    "tile",
    "backscatter",
)
"""What identifies an imported observation (its source row, parcel, signal, acquisition)."""


def _row_at(frame: pd.DataFrame, position: int) -> int:
    """The source row of the ``position``-th observation of ``frame``."""
    return int(frame["row"].to_numpy(np.int64)[position])


def _empty_observations() -> pd.DataFrame:
    columns = [*_OBSERVATION_COLUMNS, *VALUE_STATISTICS]
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _check_row_keys(keyed: pd.DataFrame, source: _Source) -> None:
    """Sensors, orbits and directions that capmon can store, and signals fit for the sensor."""
    from capmon.signals.bands import sensor_family
    from capmon.signals.catalogue import get_signal

    sensors = keyed["sensor"].to_numpy(object)
    missing = np.flatnonzero(np.array([s is None for s in sensors], dtype=bool))
    if len(missing):
        i = int(missing[0])
        raise InputError(
            f"{source.where(_row_at(keyed, i))}: no sensor (give sensor = S2, or "
            "sensor_from a column)"
        )
    for (sensor, signal), group in keyed.groupby(["sensor", "signal"], sort=False):
        where = source.where(_row_at(group, 0))
        try:
            family = sensor_family(str(sensor))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from exc
        try:
            known = get_signal(str(signal))
        except InputError:
            continue  # custom signal, allowed by the spec
        if family not in known.sensors:
            raise InputError(
                f"{where}: signal {signal} is not a {sensor} signal "
                f"(it is for {', '.join(sorted(known.sensors))})"
            )
    orbit = keyed["orbit"].to_numpy(np.float64)
    bad = np.flatnonzero(
        ~np.isnan(orbit) & ((orbit != np.round(orbit)) | (orbit < 1) | (orbit > 999))
    )
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{source.where(_row_at(keyed, i))}: orbit {orbit[i]} is not a relative orbit"
        )
    directions = {d for d in keyed["orbit_direction"].tolist() if d is not None}
    if directions - {"ASC", "DESC"}:
        raise InputError(
            f"{source.path}: orbit directions {sorted(directions - {'ASC', 'DESC'})}: "
            "use ASC or DESC"
        )
    for name in keyed.loc[keyed["backscatter"].notna(), "signal"].unique():
        if not (str(name).startswith(("AMP_", "BCK_"))):
            keyed.loc[keyed["signal"] == name, "backscatter"] = None


def _check_statistics(observed: pd.DataFrame, source: _Source) -> None:
    """Statistics of one observation that contradict each other (min > max, count > pixels)."""
    pairs = [
        ("min", "max"),
        ("min", "mean"),
        ("mean", "max"),
        ("p25", "median"),
        ("median", "p75"),
        ("min", "p25"),
        ("p75", "max"),
    ]
    for low_name, high_name in pairs:
        low = observed[low_name].to_numpy(np.float64)
        high = observed[high_name].to_numpy(np.float64)
        slack = _TOLERANCE * np.maximum(1.0, np.abs(high))
        bad = np.flatnonzero(low > high + slack)
        if len(bad):
            i = int(bad[0])
            raise InputError(
                f"{source.where(_row_at(observed, i))}: {observed['signal'].iat[i]} "
                f"{low_name} {low[i]:.6g} > {high_name} {high[i]:.6g}"
            )
    count = observed["count"].to_numpy(np.float64)
    pixels = observed["pixels"].to_numpy(np.float64)
    bad = np.flatnonzero((count > pixels) & (pixels > 0))
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{source.where(_row_at(observed, i))}: count {count[i]:.0f} > pixels {pixels[i]:.0f}"
        )


def _check_duplicates(observed: pd.DataFrame, source: _Source) -> None:
    keys = list(_KEY)
    duplicated = observed.duplicated(keys, keep=False)
    if not duplicated.any():
        return
    first = observed[duplicated].iloc[0]
    mask = np.ones(len(observed), dtype=bool)
    for key in keys:
        column = observed[key]
        value = first[key]
        same = column.isna().to_numpy() if pd.isna(value) else (column == value).to_numpy()
        mask &= same
    rows = observed.loc[mask, "row"].astype(int).tolist()[:2]
    raise InputError(
        f"{source.path}: {source.unit}s {rows[0] + source.first_line} and "
        f"{rows[1] + source.first_line} are the same observation (parcel {first['parcel']}, "
        f"{first['signal']}, {pd.Timestamp(first['date']).date()}, sensor {first['sensor']}"
        + ("" if pd.isna(first["orbit"]) else f", orbit {int(first['orbit'])}")
        + ")"
    )


# --- the import -------------------------------------------------------------------------------


def import_statistics(
    sources: Sequence[str | Path],
    mdb_root: str | Path,
    spec: ImportSpec,
    *,
    parcels: Sequence[str] | None = None,
    skip_unknown_parcels: bool = False,
    site: str = "imported",
    parcel_set: str = "imported",
) -> ImportReport:
    """Read ``sources`` with ``spec`` and write their rows into the MDB at ``mdb_root``.

    Everything is read and validated before anything is written. Each source is one MDB
    product ``IMPORT_<file stem>@<digest of the file and the spec>``: importing the same file
    again changes nothing; a changed file (or spec) replaces the rows of its earlier import.
    ``parcels`` (the ids of a parcels file, see :func:`read_parcel_ids`) makes an id outside
    it an error, or with ``skip_unknown_parcels`` a skipped row. The MDB folder must be new
    or an import made with the same ``site`` and ``parcel_set``.
    """
    root = Path(mdb_root)
    paths = [Path(s) for s in sources]
    if not paths:
        raise InputError("no source file to import")
    spec = check_spec(with_layout_defaults(check_spec(spec)))
    if (root / MANIFEST).exists():
        stored = read_manifest(root)
        if stored.engine_version != ENGINE_VERSION:
            raise ConflictError(
                f"{root} holds an MDB made by extraction ({stored.engine_version}, parcel set "
                f"{stored.parcel_set!r}); import into another folder"
            )
        if (stored.site, stored.parcel_set) != (site, parcel_set):
            raise ConflictError(
                f"{root} holds imported statistics of site {stored.site!r}, parcel set "
                f"{stored.parcel_set!r}, not {site!r}, {parcel_set!r}; give the same --site-name "
                "and --parcel-set (or --parcels), or another folder"
            )
    sources_of = [f"IMPORT_{p.stem}" for p in paths]
    twice = sorted({n for n in sources_of if sources_of.count(n) > 1})
    if twice:
        raise InputError(
            f"two source files have the same name ({', '.join(twice)}); import them into "
            "different MDB folders or rename one"
        )
    store = MdbStore(root)
    parts = list(store.parts().values()) if root.exists() else []
    retired = store.retired() if root.exists() else set()
    names: list[str] = []
    replaces: list[tuple[str, ...]] = []
    current: list[bool] = []
    for path, base in zip(paths, sources_of, strict=True):
        digest = _digest(path, spec)
        earlier = sorted(
            {part.product_id for part in parts if part.product_id.rsplit("@", 1)[0] == base}
        )
        name = f"{base}@{digest}"
        generation = 1
        while name in retired:  # this very file was imported, then replaced: import it anew
            generation += 1
            name = f"{base}@{digest}.{generation}"
        names.append(name)
        replaces.append(tuple(e for e in earlier if e != name and e not in retired))
        current.append(name in earlier)
    notes: list[str] = []
    observed: list[_Observations] = []
    for path in paths:
        source = _read_source(path, spec.layout)
        result = _observations(source, spec)
        notes.extend(result.notes)
        observed.append(result)
    allowed = set(parcels) if parcels is not None else None
    unknown_rows: list[int] = []
    for result in observed:
        frame = result.frame
        count = 0
        if allowed is not None and len(frame):
            unknown = ~frame["parcel"].isin(allowed).to_numpy()
            if unknown.any():
                if not skip_unknown_parcels:
                    i = int(np.flatnonzero(unknown)[0])
                    raise InputError(
                        f"{result.source.where(_row_at(frame, i))}: parcel "
                        f"{frame['parcel'].iat[i]!r} is not in the parcels file "
                        f"({int(unknown.sum())} observations of parcels not in it)"
                    )
                count = int(frame.loc[unknown, "row"].nunique())
                result.frame = frame[~unknown].reset_index(drop=True)
        unknown_rows.append(count)
    mapping, map_changed = _number_parcels(root, observed, parcels)
    tables = [_mdb_table(r.frame, mapping, name) for r, name in zip(observed, names, strict=True)]
    replaced = {old for olds in replaces for old in olds} | set(
        n for n, c in zip(names, current, strict=True) if c
    )
    _check_across(root, tables, names, replaced)
    signals = tuple(sorted({s for t in tables for s in t.column("signal").unique().to_pylist()}))
    manifest = MdbManifest(
        site=site,
        parcel_set=parcel_set,
        declaration_set_id=None,
        optical_buffer_m=0.0,
        sar_buffer_m=0.0,
        min_count=0,
        min_valid_fraction=0.0,
        engine_version=ENGINE_VERSION,
        signals=signals,
    )
    created = not root.exists()
    written: list[Path] = []
    try:
        with _restorable(root, [PARCEL_ID_MAP, MANIFEST]):
            try:
                store.initialise(manifest)
                if map_changed and mapping is not None:
                    _write_id_map(root, mapping)
                for name, table, olds, done in zip(names, tables, replaces, current, strict=True):
                    if done:
                        continue  # the same file with the same spec: its rows are stored
                    part = ProductPart(
                        name,
                        tuple(sorted(str(s) for s in table.column("signal").unique().to_pylist())),
                        replaces=olds,
                    )
                    written.append(store.write_product(name, [table], part))
            except BaseException:
                for path in written:
                    path.unlink(missing_ok=True)
                raise
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    reports = tuple(
        _source_report(r, name, unknown, done)
        for r, name, unknown, done in zip(observed, names, unknown_rows, current, strict=True)
    )
    return ImportReport(root, reports, mapping is not None, tuple(dict.fromkeys(notes)))


def _digest(path: Path, spec: ImportSpec) -> str:
    """What identifies one import of a file: its bytes and the spec it was read with."""
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    sha.update(repr(spec).encode())
    return sha.hexdigest()[:12]


def _source_report(result: _Observations, name: str, unknown: int, already: bool) -> SourceImport:
    frame = result.frame
    dates = pd.to_datetime(frame["date"]) if len(frame) else pd.Series(dtype="datetime64[ns]")
    return SourceImport(
        source=result.source.path,
        product_id=name,
        already_imported=already,
        rows_read=len(result.source.frame),
        rows_not_valid=result.rows_not_valid,
        missing_values=result.missing_values,
        unknown_parcel_rows=unknown,
        observations=len(frame),
        parcels=int(frame["parcel"].nunique()) if len(frame) else 0,
        signals=tuple(sorted(frame["signal"].unique())) if len(frame) else (),
        first=dates.min().date() if len(frame) else None,
        last=dates.max().date() if len(frame) else None,
    )


def _number_parcels(
    root: Path, observed: Sequence[_Observations], parcels: Sequence[str] | None
) -> tuple[dict[str, int] | None, bool]:
    """The id numbering to use, and whether it differs from the one stored."""
    existing = parcel_id_map(root)
    ids: dict[str, None] = {}
    for result in observed:
        ids.update(dict.fromkeys(result.frame["parcel"].tolist()))
    if existing is not None:
        wanted = list(parcels or ()) + list(ids)
        return _extend(existing, wanted)
    has_rows = bool(parquet_files(root / OBSERVATIONS)) or bool(read_compaction(root).files)
    integral = all(_INTEGRAL.match(i) for i in ids) and all(
        _INTEGRAL.match(p) for p in parcels or ()
    )
    if integral:
        return None, False
    if has_rows:
        example = next((i for i in ids if not _INTEGRAL.match(i)), None)
        raise ConflictError(
            f"{root} holds rows with integer parcel ids; parcel id {example!r} is not an integer"
        )
    return _extend({}, list(parcels or ()) + list(ids))


def _extend(existing: dict[str, int], wanted: Sequence[str]) -> tuple[dict[str, int], bool]:
    new = sorted({w for w in wanted if w not in existing}, key=_natural_key)
    if not new:
        return existing, False
    start = max(existing.values(), default=0) + 1
    mapping = dict(existing)
    mapping.update({text: start + i for i, text in enumerate(new)})
    return mapping, True


def _write_id_map(root: Path, mapping: Mapping[str, int]) -> None:
    frame = pd.DataFrame(
        {"original_id": list(mapping), "parcel_id": list(mapping.values())}
    ).sort_values("parcel_id")
    with atomic_path(root / PARCEL_ID_MAP) as tmp:
        frame.to_csv(tmp, index=False)


def _mdb_table(frame: pd.DataFrame, mapping: Mapping[str, int] | None, product: str) -> pa.Table:
    n = len(frame)
    if mapping is None:
        parcel_ids = [_as_int(p) for p in frame["parcel"].tolist()]
    else:
        parcel_ids = [mapping[p] for p in frame["parcel"].tolist()]

    def optional_text(name: str) -> pa.Array:
        return pa.array(
            [None if v is None or v is pd.NA else str(v) for v in frame[name].tolist()],
            type=pa.string(),
        )

    def counts(name: str) -> pa.Array:
        values = frame[name].to_numpy(np.float64) if n else np.zeros(0)
        return pa.array(np.where(np.isnan(values), UNKNOWN_COUNT, values).astype(np.int32))

    orbit = frame["orbit"].to_numpy(np.float64) if n else np.zeros(0)
    columns: dict[str, pa.Array] = {
        "parcel_id": pa.array(parcel_ids, type=pa.int64()),
        "signal": pa.array(frame["signal"].astype(str).tolist(), type=pa.string()),
        "sensor": pa.array(frame["sensor"].astype(str).tolist(), type=pa.string()),
        "date": pa.array(
            np.asarray(frame["date"].to_numpy(), dtype="datetime64[D]"), type=pa.date32()
        ),
        "date_first": pa.array(
            np.asarray(frame["date_first"].to_numpy(), dtype="datetime64[D]"),
            type=pa.date32(),
            from_pandas=True,
        ),
        "orbit": pa.array([None if math.isnan(o) else int(o) for o in orbit], type=pa.int16()),
        "orbit_direction": optional_text("orbit_direction"),
        "tile": optional_text("tile"),
        "backscatter": optional_text("backscatter"),
        "product_id": pa.array([product] * n, type=pa.string()),
        "count": counts("count"),
        "pixels": counts("pixels"),
    }
    for name in STATISTIC_COLUMNS:
        values = frame[name].to_numpy(np.float64) if n else np.zeros(0)
        columns[name] = pa.array(values.astype(np.float32), type=pa.float32(), from_pandas=True)
    return conform(pa.Table.from_pydict(columns))


def _check_across(
    root: Path, tables: Sequence[pa.Table], names: Sequence[str], replaced: set[str]
) -> None:
    """No observation twice: among the sources of this import, and against the rows the MDB
    shows (less those of the products this import replaces)."""
    import duckdb

    keys = ["parcel_id", "signal", "date", "date_first", "sensor", "orbit"]
    connection = duckdb.connect()
    try:
        for i, table in enumerate(tables):
            connection.register(f"new_{i}", table.select(keys))
        for i in range(len(tables)):
            for j in range(i + 1, len(tables)):
                row = _overlap(connection, f"new_{i}", f"new_{j}")
                if row is not None:
                    raise InputError(
                        f"{names[i]} and {names[j]} both hold parcel {row[0]}, {row[1]}, "
                        f"{row[2]}; an observation is imported once"
                    )
        if not (root / MANIFEST).exists():
            return
        from capmon.mdb.query import open_mdb

        visible = open_mdb(root).duckdb(connection)
        if replaced:
            visible = visible.filter(
                "product_id NOT IN ("
                + ", ".join("'" + n.replace("'", "''") + "'" for n in sorted(replaced))
                + ")"
            )
        connection.register("stored", visible)
        for i, name in enumerate(names):
            row = _overlap(connection, "stored", f"new_{i}")
            if row is not None:
                raise ConflictError(
                    f"{name}: parcel {row[0]}, {row[1]}, {row[2]} is already in {root} "
                    f"(product {row[3]}); an observation is imported once"
                )
    finally:
        connection.close()


def _overlap(connection: Any, a: str, b: str) -> tuple[Any, ...] | None:
    """One observation key that relations ``a`` and ``b`` share (nulls compare equal)."""
    product = "x.product_id" if a == "stored" else "NULL"
    rows = connection.sql(
        f"SELECT x.parcel_id, x.signal, x.date, {product} FROM {a} x JOIN {b} y "
        "ON x.parcel_id = y.parcel_id AND x.signal = y.signal AND x.date = y.date "
        "AND x.sensor = y.sensor AND x.orbit IS NOT DISTINCT FROM y.orbit "
        "AND x.date_first IS NOT DISTINCT FROM y.date_first LIMIT 1"
    ).fetchall()
    return tuple(rows[0]) if rows else None


@contextlib.contextmanager
def _restorable(root: Path, names: Sequence[str]) -> Iterator[None]:
    """Put the files ``names`` (relative to ``root``) back as they were if the block fails."""
    backups: dict[Path, Path | None] = {}
    for name in names:
        original = root / name
        if original.exists():
            copy = original.with_name(f".{original.name}.{uuid.uuid4().hex}.bak")
            os.link(original, copy)
            backups[original] = copy
        else:
            backups[original] = None
    try:
        yield
    except BaseException:
        for original, saved in backups.items():
            if saved is None:
                original.unlink(missing_ok=True)
            else:
                os.replace(saved, original)
        raise
    for saved in backups.values():
        if saved is not None:
            saved.unlink(missing_ok=True)


__all__ = [
    "CBM_KINDS",
    "LAYOUTS",
    "PARCEL_ID_MAP",
    "SAR_UNITS",
    "UNKNOWN_COUNT",
    "Extract",
    "ImportReport",
    "ImportSpec",
    "SourceImport",
    "ValueSource",
    "builtin_specs",
    "check_spec",
    "import_statistics",
    "load_spec",
    "parcel_id_map",
    "physical_range",
    "read_parcel_ids",
    "spec_from_mapping",
    "to_parcel_ids",
    "with_layout_defaults",
]
