"""Processors on files: an MDB folder, a parcels file in any vector format and an output folder,
with no site, season or catalogue (``capmon run <id> --mdb DIR --parcels FILE --out DIR`` and
:func:`run_processor`).

What a run on a site takes from the catalogue comes from options here:

* the parcels: a capmon parcels table as is, or any vector file whose id column
  (``parcel_id_col``) holds the MDB's ``parcel_id`` (integer ids) or the original ids of an
  imported MDB's id map (:func:`capmon.mdb.imports.parcel_id_map`); crop codes from
  ``crop_code_col`` for the processors that need them;
* the season: ``start``/``end`` or ``year``, else the MDB's first and last dates;
* the product: written to ``out`` atomically (built under a temporary name, then renamed); an
  existing non-empty ``out`` is refused unless ``overwrite``, and is then replaced only when the
  new product is complete. No catalogue row is written.
"""

from __future__ import annotations

import re
import shutil
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capmon.errors import ColumnError, ConflictError, InputError
from capmon.processors.registry import (
    FilesMode,
    Processor,
    RunContext,
    RunResult,
    get_processor,
)

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd
    from pydantic import BaseModel

    from capmon.mdb.query import MarkersDatabase
    from capmon.parcels import ColumnMapping

_INTEGER = re.compile(r"^[+-]?\d{1,19}(\.0*)?$")
_INT64_MAX = 2**63 - 1
_NO_CROP = "capmon_no_crop_code"
_REPLACED = "replaced"


@dataclass(frozen=True)
class SeasonPeriod:
    """The dates a run covers: a catalogue season's, or those of a run on files."""

    name: str
    start_date: date
    end_date: date
    mid_date: date

    @property
    def year(self) -> int:
        """The declaration year (:func:`capmon.catalog.models.season_year`)."""
        from capmon.catalog.models import season_year

        return season_year(self.name, self.start_date, self.end_date)


def run_period(context: RunContext, mdb: MarkersDatabase | None, label: str) -> SeasonPeriod:
    """The season of the run: the catalogue season on a site; on files ``--start``/``--end``,
    else the MDB's first and last dates (of ``--year`` only when given; that whole year when
    the MDB has none) (``label`` names the processor)."""
    if context.season is not None:
        s = context.season
        return SeasonPeriod(s.name, s.start_date, s.end_date, s.mid_date)
    files = context.files
    if files is None:
        raise InputError(f"{label} needs a season")
    start, end = files.start, files.end
    if (start is None or end is None) and mdb is not None:
        first, last = mdb_dates(mdb, files.year)  # of that year only with --year
        start = start or first
        end = end or last
    if files.year is not None:
        start = start or date(files.year, 1, 1)
        end = end or date(files.year, 12, 31)
    if start is None or end is None:
        where = f" (MDB {mdb.root} has no rows)" if mdb is not None else ""
        raise InputError(f"{label} on files needs the season's dates: pass --start and --end, "
                         f"or --year{where}")  # fmt: skip
    if end < start:
        raise InputError(f"--end {end} is before --start {start}")
    name = str(files.year) if files.year is not None else f"{start:%Y%m%d}-{end:%Y%m%d}"
    return SeasonPeriod(name, start, end, start + timedelta(days=(end - start).days // 2))


def mdb_dates(mdb: MarkersDatabase, year: int | None = None) -> tuple[date | None, date | None]:
    """The first and last acquisition dates of the MDB's rows (of ``year`` only if given)."""
    relation = mdb.duckdb()
    if year is not None:
        relation = relation.filter(f"year(date) = {int(year)}")
    rows = relation.aggregate("min(date), max(date)").fetchall()
    if not rows or rows[0][0] is None:
        return None, None
    return rows[0][0], rows[0][1]


def run_mdb(
    context: RunContext, given: Path | None, season_name: str, year: int
) -> MarkersDatabase:
    """The ``--mdb`` folder, else (on a site) the season's MDB."""
    from capmon.mdb.query import open_mdb
    from capmon.processors.common import season_mdb_folder

    if given is not None:
        return open_mdb(given)
    if context.on_files:
        raise InputError("a run on files needs --mdb DIR (an MDB folder)")
    return open_mdb(season_mdb_folder(context.workspace, context.site, season_name, year))


def run_parcels(
    context: RunContext,
    given: Path | None,
    year: int,
    mdb: MarkersDatabase | None,
    *,
    crop_codes: str | None = None,
) -> gpd.GeoDataFrame:
    """The parcels of the run: ``--parcels`` (a capmon parcels table, or any vector file on
    files), else the site's newest declarations of ``year``.

    ``crop_codes`` says why the processor needs declared crop codes (on files, a vector file
    without ``--crop-code-col`` is then refused); without it the crop codes are left empty.
    """
    from capmon.processors.common import declared_parcels, season_parcels

    if not context.on_files:
        return season_parcels(context.workspace, context.site, year, given)
    files = context.files
    assert files is not None
    if given is None:
        raise InputError("a run on files needs --parcels FILE (parcels in any vector format)")
    if _is_capmon_table(given, files):
        return declared_parcels(given)
    return files_parcels(given, files, mdb.root if mdb is not None else None, crop_codes=crop_codes)


def run_lut(
    context: RunContext, given: Path | None, year: int, *, required: str | None = None
) -> pd.DataFrame | None:
    """``--lut``, else (on a site) the stored LUT of ``year``. On files without ``--lut``: None,
    or an error saying why the LUT is needed when ``required`` says so."""
    from capmon.parcels import prepare_lut
    from capmon.processors.common import season_lut

    if given is not None:
        return prepare_lut(given).table
    if not context.on_files:
        return season_lut(context.workspace, context.site, year)
    if required is not None:
        raise InputError(f"{required}: pass --lut FILE (a Sen4CAP LUT CSV or EuroCrops HCAT CSV)")
    return None


def _is_capmon_table(path: Path, files: FilesMode) -> bool:
    """A capmon parcels table (GeoParquet of an import) given without an id column mapping."""
    suffix = Path(path).suffix.lower()
    if files.parcel_id_col is not None or suffix not in (".parquet", ".geoparquet"):
        return False
    import pyarrow.parquet as pq

    from capmon.parcels import PARCEL_COLUMNS

    try:
        names = set(pq.read_schema(path).names)
    except (OSError, ValueError):
        return False
    return set(PARCEL_COLUMNS) <= names


def files_parcels(
    path: str | Path,
    files: FilesMode,
    mdb_root: Path | None = None,
    *,
    crop_codes: str | None = None,
) -> gpd.GeoDataFrame:
    """The parcels of a vector file as a capmon parcels table whose ``NewID`` is the MDB's
    ``parcel_id``: validated and measured as a declarations import (areas, pixel counts)."""
    from capmon.parcels import ColumnMapping, prepare_declarations
    from capmon.vector import read_vector

    vector = read_vector(path)
    frame = vector.frame
    if files.crop_code_col is None:
        if crop_codes is not None:
            raise ColumnError(f"{crop_codes}: pass --crop-code-col COLUMN (the declared crop "
                              f"codes of {vector.source})")  # fmt: skip
        frame = frame.assign(**{_NO_CROP: None})
    id_column = files.parcel_id_col
    mapping = ColumnMapping(
        parcel_id=(id_column,) if id_column else (),
        crop_code=files.crop_code_col or _NO_CROP,
    )
    kinds = set(frame.geom_type.dropna())
    if kinds and kinds <= {"Point", "MultiPoint"}:
        return _point_parcels(frame, mapping, vector.source, mdb_root)
    try:
        prepared = prepare_declarations(
            type(vector)(frame, vector.path, vector.layer, vector.member, vector.several_layers),
            mapping,
        )
    except ColumnError as exc:
        raise ColumnError(f"{exc} (give the parcels' id column with --parcel-id-col)") from exc
    parcels = prepared.parcels
    parcels = parcels[~parcels["is_deleted"].astype(bool)].reset_index(drop=True)
    parcels["NewID"] = mdb_parcel_ids(
        parcels["ori_id"], parcels["source_row"], mdb_root, f"{vector.source}, column "
        f"{mapping.resolve(list(frame.columns), vector.source).parcel_id[0]!r}",
    )  # fmt: skip
    parcels["HoldID"] = parcels["HoldID"].astype("Int64")
    return parcels.sort_values("NewID", kind="stable").reset_index(drop=True)


def _point_parcels(
    frame: gpd.GeoDataFrame, mapping: ColumnMapping, label: str, mdb_root: Path | None
) -> gpd.GeoDataFrame:
    """Parcels given as points (plots of field surveys): ids and crop codes, no area and no
    pixel counts (``Area_meters`` NaN, ``S2Pix``/``S1Pix`` 0): the processors that select on
    them (L4A's minimum pixels, L4C's S1Pix) exclude such parcels."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd

    from capmon.parcels import PARCEL_COLUMNS

    resolved = mapping.resolve(list(frame.columns), label)
    column = resolved.parcel_id[0]
    rows = pd.Series(np.arange(1, len(frame) + 1), dtype="Int64")
    ids = pd.Series([_id_text(v) for v in frame[column].tolist()], dtype="object")
    for i, text in enumerate(ids.tolist()):
        if text is None:
            raise InputError(f"{label}: row {i + 1}, column {column!r}: empty parcel id")
    duplicated = ids.duplicated(keep="first")
    if duplicated.any():
        i = int(np.flatnonzero(duplicated.to_numpy())[0])
        first = int(np.flatnonzero((ids == ids.iloc[i]).to_numpy())[0])
        raise InputError(f"{label}: row {i + 1}, column {column!r}: parcel id {ids.iloc[i]!r} "
                         f"is also the id of row {first + 1} (one point per parcel)")  # fmt: skip
    crops = frame[resolved.crop_code] if resolved.crop_code else None
    n = len(frame)
    table = pd.DataFrame(
        {
            "NewID": mdb_parcel_ids(ids, rows, mdb_root, f"{label}, column {column!r}"),
            "HoldID": pd.array([None] * n, dtype="Int64"),
            "ori_id": ids.astype("string"),
            "ori_hold": pd.array([None] * n, dtype="string"),
            "ori_crop": (
                pd.Series([_id_text(v) for v in crops.tolist()], dtype="string")
                if crops is not None
                else pd.array([None] * n, dtype="string")
            ),
            "GeomValid": True, "repaired": False, "Duplic": False, "Overlap": False,
            "Area_meters": np.nan, "ShapeInd": np.nan, "S2Pix": 0, "S1Pix": 0,
            "is_deleted": False, "change": "inserted", "geom_change_ratio": np.nan,
            "inserted_at": pd.NaT, "updated_at": pd.NaT, "source_row": rows,
        }
    )  # fmt: skip
    points = gpd.GeoDataFrame(table, geometry=frame.geometry.to_crs(4326).to_numpy(), crs=4326)
    return points[list(PARCEL_COLUMNS)].sort_values("NewID", kind="stable").reset_index(drop=True)


def _id_text(value: Any) -> str | None:
    """An id cell as text: integral floats without their ``.0``; None when missing."""
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    text = str(value).strip()
    return text or None


def mdb_parcel_ids(
    ori_id: pd.Series, source_row: pd.Series, mdb_root: Path | None, label: str
) -> Any:
    """The MDB ``parcel_id`` of each original id: through the MDB's id map when it has one
    (ids it lacks get new ids above every known one: parcels without observations), else the
    id itself, which must then be an integer."""
    import numpy as np

    id_map = _id_map(mdb_root) if mdb_root is not None else None
    texts = [str(v).strip() for v in ori_id.tolist()]
    out = np.zeros(len(texts), dtype=np.int64)
    if id_map is not None:
        unknown = sorted({t for t in texts if t not in id_map})
        highest = max(id_map.values(), default=0)
        extra = {t: highest + 1 + i for i, t in enumerate(unknown)}
        for i, text in enumerate(texts):
            out[i] = id_map.get(text, extra.get(text, 0))
        return out
    for i, text in enumerate(texts):
        if not _INTEGER.match(text) or abs(int(text.split(".")[0])) > _INT64_MAX:
            where = f" of MDB {mdb_root}" if mdb_root is not None else ""
            raise InputError(
                f"{label}: row {source_row.iloc[i]}: parcel id {text[:60]!r} is not an integer "
                f"and there is no id map{where} (MDB parcel ids are integers; an MDB made by "
                "`capmon mdb import` from text ids maps them)"
            )
        out[i] = int(text.split(".")[0])
    return out


def _id_map(mdb_root: Path) -> Mapping[str, int] | None:
    """The MDB's map original id -> parcel_id (``parcel_ids.csv`` of ``capmon mdb import``)."""
    from capmon.mdb.imports import parcel_id_map

    found = parcel_id_map(mdb_root)
    return None if found is None else {str(k).strip(): int(v) for k, v in found.items()}


def product_folder(context: RunContext, processor_id: str, prefix: str, first: date | None,
                   last: date | None) -> Path:  # fmt: skip
    """Where the product is written (a path that does not exist yet; writers create it
    atomically): a new folder under ``<home>/products/<site>/<processor>/`` on a site, ``--out``
    on files (an existing product there is set aside and removed by :func:`record_product`)."""
    from capmon.processors.common import new_product_folder, product_name

    files = context.files
    if not context.on_files:
        return new_product_folder(
            context.workspace, context.site, processor_id,
            product_name(prefix, context.site, first, last),
        )  # fmt: skip
    assert files is not None
    out = files.out
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    elif out.exists():
        if not files.overwrite:
            raise ConflictError(f"{out} exists and is not empty; pass --overwrite to replace it")
        aside = out.with_name(f".{out.name}.{uuid.uuid4().hex}.{_REPLACED}")
        out.rename(aside)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def record_product(
    context: RunContext,
    folder: Path,
    product_type: str,
    first: date | None,
    last: date | None,
    properties: Mapping[str, Any],
) -> None:
    """The product's catalogue row on a site; on files, none (the previous product set aside
    by :func:`product_folder` is removed now that the new one is complete)."""
    from capmon.processors.common import register_product

    if not context.on_files:
        register_product(context.workspace, context.site, folder, product_type, first, last,
                         properties)  # fmt: skip
        return
    for aside in folder.parent.glob(f".{folder.name}.*.{_REPLACED}"):
        shutil.rmtree(aside, ignore_errors=True)


def _restore(out: Path) -> None:
    """After a failed run on files: the product that ``--overwrite`` set aside goes back."""
    asides = sorted(out.parent.glob(f".{out.name}.*.{_REPLACED}"))
    if not asides:
        return
    if out.exists():  # written before the run failed: the previous product wins
        shutil.rmtree(out)
    asides[-1].rename(out)


def run_processor(
    processor_id: str,
    *,
    mdb: str | Path | Sequence[str] | Mapping[int, str | Path] | None = None,
    parcels: str | Path | Sequence[str] | Mapping[int, str | Path],
    out: str | Path,
    overwrite: bool = False,
    parcel_id_col: str | None = None,
    crop_code_col: str | None = None,
    start: date | str | None = None,
    end: date | str | None = None,
    year: int | None = None,
    progress: Callable[[float, str], None] | None = None,
    **parameters: Any,
) -> RunResult:
    """Run processor ``processor_id`` on files and return its result (``outputs["product"]`` is
    ``out``). ``parameters`` are the processor's (as ``capmon run <id> --help`` lists them,
    with underscores), e.g. ``lut=``, ``method=``, ``practices=``. The multi-annual processor
    takes ``parcels`` (and ``mdb``) per year: ``{2023: "p23.gpkg", 2024: "p24.gpkg"}``."""
    processor = get_processor(processor_id)
    if not processor.runs_on_files:
        raise InputError(f"the {processor_id} processor runs on a site only: "
                         f"capmon run {processor_id} SITE SEASON")  # fmt: skip
    fields = processor.parameters.model_fields
    given: dict[str, Any] = {k: v for k, v in parameters.items() if v is not None}
    for name, value in (("mdb", mdb), ("parcels", parcels)):
        if value is None:
            continue
        if name not in fields:
            raise InputError(f"the {processor_id} processor takes no --{name}")
        if typing.get_origin(fields[name].annotation) is list:  # YEAR=PATH entries
            value = (
                [f"{k}={v}" for k, v in value.items()]
                if isinstance(value, Mapping)
                else [str(value)]
                if isinstance(value, str | Path)
                else [str(v) for v in value]
            )
        given[name] = value
    for name, day in (("start", start), ("end", end)):
        if name in fields and day is not None:
            given.setdefault(name, day)
    mode = FilesMode(
        out=Path(out).expanduser().absolute(),
        overwrite=overwrite,
        parcel_id_col=parcel_id_col,
        crop_code_col=crop_code_col,
        start=_day(start, "start"),
        end=_day(end, "end"),
        year=year,
    )
    return run_on_files(processor_id, parse_parameters(processor, given), mode, progress)


def parse_parameters(processor: Processor, values: Mapping[str, Any]) -> BaseModel:
    """A processor's validated parameters; an :class:`InputError` names each bad option."""
    from pydantic import ValidationError

    try:
        return processor.parse_parameters(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        raise InputError(f"invalid parameters for {processor.id}: {problems}") from exc


def run_on_files(
    processor_id: str,
    parameters: Any,
    files: FilesMode,
    progress: Callable[[float, str], None] | None = None,
) -> RunResult:
    """Run a processor with validated ``parameters`` on files (see the module docstring)."""
    processor = get_processor(processor_id)
    out = files.out
    if out.exists() and not out.is_dir():
        raise ConflictError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not files.overwrite:
        raise ConflictError(f"{out} exists and is not empty; pass --overwrite to replace it")
    context = RunContext(None, None, None, progress, files)
    try:
        return processor.run(context, parameters)
    except BaseException:
        _restore(out)
        raise


def _day(value: date | str | None, name: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"{name} must be a date YYYY-MM-DD, not {value!r}") from exc


def run_season_and_mdb(
    context: RunContext, given: Path | None, label: str
) -> tuple[SeasonPeriod, MarkersDatabase]:
    """The run's season and MDB: on a site the season's (``--mdb`` replaces its MDB); on files
    the ``--mdb`` folder and the season of the options or of its dates."""
    if context.on_files:
        mdb = run_mdb(context, given, "", 0)
        return run_period(context, mdb, label), mdb
    season = run_period(context, None, label)
    return season, run_mdb(context, given, season.name, season.year)


__all__ = [
    "SeasonPeriod",
    "files_parcels",
    "mdb_dates",
    "parse_parameters",
    "product_folder",
    "record_product",
    "run_lut",
    "run_mdb",
    "run_on_files",
    "run_parcels",
    "run_period",
    "run_processor",
    "run_season_and_mdb",
]
