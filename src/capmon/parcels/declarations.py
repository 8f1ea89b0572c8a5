"""Importing a paying agency's declarations (GSAA/LPIS parcels) as a versioned parcels table.

This follows Sen4CAP's ``data-preparation.py`` (sen4cap-system.md 2.2) with capmon's choices:

* Input: any layer :func:`capmon.vector.read_vector` reads (zipped shapefile, GeoPackage, GML,
  GeoParquet incl. fiboa, ...), in any CRS (a missing CRS is an error) and any attribute
  encoding. Without explicit columns, fiboa's ``id`` and ``crop:code`` are used.
* Geometry: stored as 2D MultiPolygons in **EPSG:4326** (lon/lat), for every site and version,
  so that versions imported from files in different CRSs compare directly and the parcels sit in
  the same CRS as the site's AOI. Areas, overlaps and pixel counts are computed in projected
  CRSs (see :mod:`capmon.parcels.validation` and :mod:`capmon.parcels.pixels`). Invalid
  geometries are stored as declared (``GeomValid`` false) unless ``repair`` is asked for, in
  which case the repaired geometry is stored and ``repaired`` is true.
* Features that are not polygons (points, lines, collections, empty or missing geometries) are
  an error naming their rows; with ``skip_non_polygons`` they are dropped and counted by type.
* Duplicate parcel ids are an error naming them and their rows; with
  ``on_duplicate_id="suffix"`` they get Sen4CAP's ``-A``/``-B`` suffixes.
* Ids are text, at most 254 characters; a real-number id column is read value by value (``12.0``
  -> ``'12'``, ``12.5`` -> ``'12.5'``), and whole reals beyond 2**53 (no longer exact) are refused
  naming the row (:mod:`capmon.parcels.identity`).
* Modes: ``update`` keeps parcels missing from the new file with ``is_deleted`` true;
  ``incremental`` keeps them as they are; ``replace`` starts from scratch (NewIDs restart).
  ``NewID``/``HoldID`` stay stable across versions (:mod:`capmon.parcels.identity`).

The parcels table (GeoParquet, one row per parcel ever declared in the kept history):

========================  ==============================  ======================================
column                    dtype                           meaning
========================  ==============================  ======================================
``NewID``                 int32                           stable parcel id (Sen4CAP's key)
``HoldID``                Int32 (nullable)                stable holding id
``ori_id``                string                          declared parcel id(s), joined by '-'
``ori_hold``              string (nullable)               declared holding id(s)
``ori_crop``              Int64 or string (nullable)      declared crop code (numeric -> int)
``GeomValid``             bool                            geometry valid as stored
``repaired``              bool                            geometry repaired by ``make_valid``
``Duplic``                bool                            same geometry as another valid parcel
``Overlap``               bool                            > 10 % covered by other valid parcels
``Area_meters``           float64                         area in m² (equal-area projection)
``ShapeInd``              float64                         perimeter / (2 sqrt(pi area))
``S2Pix`` / ``S1Pix``     int32                           10 m / 20 m pixels after -5 / -10 m
``is_deleted``            bool                            missing from the latest file (update)
``change``                string                          inserted/updated/unchanged/deleted/kept
``geom_change_ratio``     float64 (NaN when not updated)  area(symdiff) / area(union) vs previous
``inserted_at``           datetime64[us, UTC]             when the parcel first appeared
``updated_at``            datetime64[us, UTC] (NaT)       when it last changed
``source_row``            Int64 (nullable)                1-based feature number in this file
``geometry``              MultiPolygon, EPSG:4326
========================  ==============================  ======================================

``Duplic``, ``Overlap`` consider only valid parcels that are not deleted (false otherwise).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely
from sqlalchemy import select

from capmon.catalog.models import CropLut, DeclarationSet, ImportMode, Site
from capmon.errors import ColumnError, ConflictError, CRSError, GeometryError, InputError
from capmon.grid import s2_tile
from capmon.parcels import store
from capmon.parcels.codes import CropCodeCheck, check_crop_codes, crop_code_column, crop_key
from capmon.parcels.identity import (
    add_duplicate_suffixes,
    assign_stable_ids,
    check_id_lengths,
    join_id_columns,
)
from capmon.parcels.pixels import sentinel_pixel_counts, transform_geometries
from capmon.parcels.report import (
    MAX_PROBLEM_ROWS,
    DeclarationCounts,
    DeclarationReport,
    ProblemList,
    ProblemRow,
)
from capmon.parcels.validation import (
    area_and_shape_index,
    as_multipolygons,
    duplicate_mask,
    equal_area_crs,
    geometry_type_names,
    measurable,
    overlap_mask,
    polygonal_mask,
    repair,
    validity_reasons,
)
from capmon.sites import get_site
from capmon.vector import VectorFile, read_vector
from capmon.workspace import Workspace

FIBOA_ID_COLUMN = "id"
FIBOA_CROP_COLUMN = "crop:code"
STORAGE_CRS = "EPSG:4326"
GEOMETRY_TOLERANCE_DEG = 1e-9  # about 0.1 mm: below it two stored geometries are the same
PARCEL_COLUMNS = (
    "NewID",
    "HoldID",
    "ori_id",
    "ori_hold",
    "ori_crop",
    "GeomValid",
    "repaired",
    "Duplic",
    "Overlap",
    "Area_meters",
    "ShapeInd",
    "S2Pix",
    "S1Pix",
    "is_deleted",
    "change",
    "geom_change_ratio",
    "inserted_at",
    "updated_at",
    "source_row",
    "geometry",
)


class DuplicateIdPolicy(StrEnum):
    """What to do when several features share a parcel id."""

    ERROR = "error"
    SUFFIX = "suffix"


class ParcelChange(StrEnum):
    """How a parcel changed in an import (the ``change`` column)."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    KEPT = "kept"


@dataclass(frozen=True)
class ColumnMapping:
    """Which source columns hold the parcel id(s), the holding id(s) and the crop code.

    Empty ``parcel_id`` / None ``crop_code`` mean fiboa's ``id`` / ``crop:code``; an empty
    ``holding_id`` means the declarations have no holdings (``HoldID`` is then missing).
    """

    parcel_id: tuple[str, ...] = ()
    holding_id: tuple[str, ...] = ()
    crop_code: str | None = None

    def resolve(self, columns: Sequence[str], source: str) -> ColumnMapping:
        """The mapping with the actual column names of the file (exact or case-insensitive)."""
        available = [c for c in columns if c != "geometry"]
        parcel = self.parcel_id or (FIBOA_ID_COLUMN,)
        crop = self.crop_code or FIBOA_CROP_COLUMN
        wanted = {
            "parcel id": list(parcel),
            "holding id": list(self.holding_id),
            "crop code": [crop],
        }
        resolved: dict[str, list[str]] = {}
        problems: list[str] = []
        for role, names in wanted.items():
            resolved[role] = []
            for name in names:
                actual = _find_column(name, available)
                if actual is None:
                    hint = ""
                    if role == "parcel id" and not self.parcel_id:
                        hint = " (fiboa default; give --parcel-id-col)"
                    if role == "crop code" and not self.crop_code:
                        hint = " (fiboa default; give --crop-code-col)"
                    problems.append(f"{role} column {name!r}{hint}")
                else:
                    resolved[role].append(actual)
        if problems:
            raise ColumnError(
                f"{source}: no {'; no '.join(problems)}. Available columns: " + ", ".join(available)
            )
        return ColumnMapping(
            tuple(resolved["parcel id"]),
            tuple(resolved["holding id"]),
            resolved["crop code"][0],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "parcel_id": list(self.parcel_id),
            "holding_id": list(self.holding_id),
            "crop_code": self.crop_code,
        }


def _find_column(name: str, columns: Sequence[str]) -> str | None:
    if name in columns:
        return name
    folded = [c for c in columns if c.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


@dataclass(frozen=True)
class PreparedDeclarations:
    """A validated parcels table (see the module docstring) and its import report."""

    parcels: gpd.GeoDataFrame
    report: DeclarationReport


@dataclass(frozen=True)
class DeclarationImport:
    """The result of :func:`import_declarations`: the stored version and its report."""

    site: str
    year: int
    version: int
    parcels_path: Path
    report: DeclarationReport
    parcels: gpd.GeoDataFrame = field(repr=False, compare=False)


def prepare_declarations(
    source: str | Path | VectorFile,
    columns: ColumnMapping | None = None,
    *,
    layer: str | None = None,
    encoding: str | None = None,
    repair_geometries: bool = False,
    on_duplicate_id: DuplicateIdPolicy | str = DuplicateIdPolicy.ERROR,
    skip_non_polygons: bool = False,
    previous: gpd.GeoDataFrame | None = None,
    mode: ImportMode | str = ImportMode.UPDATE,
    utm_epsgs: Sequence[int] = (),
    lut_keys: Collection[str] | None = None,
    now: datetime | None = None,
) -> PreparedDeclarations:
    """Read and validate a declarations file into a parcels table; works without a workspace.

    ``previous`` is the parcels table of the previous version (for stable ids and the modes);
    ``utm_epsgs`` the UTM zones to count pixels in (default: each parcel's own zone);
    ``lut_keys`` the normalised codes of a crop LUT, to list declared codes it lacks.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    mode = ImportMode(mode)
    policy = DuplicateIdPolicy(on_duplicate_id)
    now = now or datetime.now(UTC)
    vector = (
        source if isinstance(source, VectorFile) else read_vector(source, layer, encoding=encoding)
    )
    label = vector.source
    frame = vector.frame.reset_index(drop=True)
    if frame.crs is None:  # read_vector checks this too; a VectorFile may come from elsewhere
        raise CRSError(f"{label}: has no coordinate reference system")
    source_crs = pyproj.CRS.from_user_input(frame.crs)
    timings["read"] = time.perf_counter() - clock
    clock = time.perf_counter()

    mapping = (columns or ColumnMapping()).resolve(list(frame.columns), label)
    incoming = _incoming_parcels(
        frame, mapping, label, policy, skip_non_polygons, repair_geometries
    )
    stored = (
        incoming.geometries
        if source_crs.equals(pyproj.CRS.from_epsg(4326))
        else transform_geometries(incoming.geometries, source_crs, 4326)
    )
    timings["validate"] = time.perf_counter() - clock
    clock = time.perf_counter()

    table, prior_geometry = _merge_with_previous(
        incoming.table, stored, None if mode is ImportMode.REPLACE else previous, mode, now
    )
    timings["merge"] = time.perf_counter() - clock
    clock = time.perf_counter()
    fraction = _measure(table, prior_geometry, utm_epsgs)
    timings["measure"] = time.perf_counter() - clock

    parcels = gpd.GeoDataFrame(table, geometry="geometry", crs=STORAGE_CRS)
    parcels = _with_dtypes(parcels.sort_values("NewID", kind="stable").reset_index(drop=True))
    active = ~parcels["is_deleted"].to_numpy()
    crop_check = (
        check_crop_codes(parcels.loc[active, "ori_crop"].tolist(), lut_keys)
        if lut_keys is not None
        else None
    )
    report = DeclarationReport(
        source=label,
        layer=vector.layer or vector.member,
        source_crs=source_crs.to_string(),
        mode=mode.value,
        repair=repair_geometries,
        column_mapping=mapping.to_dict(),
        counts=_counts(incoming, parcels, has_holdings=bool(mapping.holding_id)),
        dropped_geometry_types=incoming.dropped_types,
        problems=_problems(incoming, parcels, fraction),
        crop_codes=crop_check,
        timings={k: round(v, 3) for k, v in timings.items()},
        previous_version=None,
    )
    return PreparedDeclarations(parcels, report)


@dataclass(frozen=True)
class _IncomingParcels:
    """The parcels of the file being imported, before the merge with the previous version."""

    table: pd.DataFrame  # ori_id, ori_hold, ori_crop, GeomValid, repaired, source_row
    geometries: npt.NDArray[np.object_]  # MultiPolygons in the source CRS (repaired if asked)
    read: int
    invalid_index: npt.NDArray[np.int64]  # rows (of ``table``) invalid as declared
    reasons: npt.NDArray[np.object_]  # their ``is_valid_reason``
    unrepairable: int
    suffixed: npt.NDArray[np.bool_]
    suffix_problems: ProblemList
    dropped_types: dict[str, int]
    dropped_problems: ProblemList


def _incoming_parcels(
    frame: gpd.GeoDataFrame,
    mapping: ColumnMapping,
    label: str,
    policy: DuplicateIdPolicy,
    skip_non_polygons: bool,
    repair_geometries: bool,
) -> _IncomingParcels:
    """Geometry types, ids, crop codes and validity of the file's features."""
    n_read = len(frame)
    source_row = np.arange(1, n_read + 1)
    raw_geometries = frame.geometry.to_numpy()
    polygonal = polygonal_mask(raw_geometries)
    dropped_types: dict[str, int] = {}
    dropped_problems = ProblemList(0, ())
    if not polygonal.all():
        types = geometry_type_names(raw_geometries)
        wrong = np.flatnonzero(~polygonal)
        ids = join_id_columns(frame.iloc[wrong], mapping.parcel_id, strict=False)
        rows = [
            ProblemRow(int(source_row[i]), _text(ids.iloc[k]), str(types[i]))
            for k, i in enumerate(wrong)
        ]
        if not skip_non_polygons:
            shown = ", ".join(f"row {r.row} ({r.detail})" for r in rows[:MAX_PROBLEM_ROWS])
            more = (
                f" and {len(rows) - MAX_PROBLEM_ROWS} more" if len(rows) > MAX_PROBLEM_ROWS else ""
            )
            raise GeometryError(
                f"{label}: {len(rows)} features are not polygons: {shown}{more}. "
                "Parcels must be polygons; drop these features with --skip-non-polygons"
            )
        dropped_problems = ProblemList.of(rows)
        for kind in types[wrong]:
            dropped_types[str(kind)] = dropped_types.get(str(kind), 0) + 1
        frame = frame.iloc[np.flatnonzero(polygonal)].reset_index(drop=True)
        source_row = source_row[polygonal]
        if len(frame) == 0:
            raise GeometryError(f"{label}: no feature is a polygon")

    ori_id = join_id_columns(frame, mapping.parcel_id, label=label, rows=source_row).reset_index(
        drop=True
    )
    missing_id = np.flatnonzero(ori_id.isna().to_numpy())
    if len(missing_id):
        shown = ", ".join(str(source_row[i]) for i in missing_id[:MAX_PROBLEM_ROWS])
        raise InputError(
            f"{label}: {len(missing_id)} features have no parcel id in "
            f"{', '.join(mapping.parcel_id)} (rows {shown})"
        )
    suffixed = np.zeros(len(frame), dtype=bool)
    suffix_problems = ProblemList(0, ())
    if ori_id.duplicated().any():
        if policy is DuplicateIdPolicy.ERROR:
            raise InputError(f"{label}: {_duplicate_id_message(ori_id, source_row)}")
        original = ori_id
        ori_id, suffixed = add_duplicate_suffixes(ori_id)
        suffix_problems = ProblemList.of(
            ProblemRow(int(source_row[i]), str(ori_id.iloc[i]), f"duplicate id {original.iloc[i]}")
            for i in np.flatnonzero(suffixed)
        )
        check_id_lengths(ori_id, source_row, label, "with their duplicate suffixes")
    if mapping.holding_id:
        ori_hold = join_id_columns(
            frame, mapping.holding_id, label=label, rows=source_row
        ).reset_index(drop=True)
    else:
        ori_hold = pd.Series([None] * len(frame), dtype="string")
    crop_column = frame[mapping.crop_code or FIBOA_CROP_COLUMN]
    ori_crop = crop_code_column(crop_column).reset_index(drop=True)

    geometries = as_multipolygons(frame.geometry.to_numpy())
    valid = shapely.is_valid(geometries)
    invalid_index = np.flatnonzero(~valid)
    reasons = validity_reasons(geometries[invalid_index])
    repaired = np.zeros(len(frame), dtype=bool)
    unrepairable = 0
    if repair_geometries and len(invalid_index):
        fixed, usable = repair(geometries[invalid_index])
        fixed_index = invalid_index[usable]
        geometries[fixed_index] = fixed[usable]
        repaired[fixed_index] = True
        valid[fixed_index] = True
        unrepairable = int((~usable).sum())
    table = pd.DataFrame(
        {
            "ori_id": ori_id,
            "ori_hold": ori_hold,
            "ori_crop": ori_crop,
            "GeomValid": valid,
            "repaired": repaired,
            "source_row": pd.array(source_row, dtype="Int64"),
        }
    )
    return _IncomingParcels(
        table,
        geometries,
        n_read,
        invalid_index,
        reasons,
        unrepairable,
        suffixed,
        suffix_problems,
        dropped_types,
        dropped_problems,
    )


def _problems(
    incoming: _IncomingParcels, parcels: gpd.GeoDataFrame, fraction: npt.NDArray[np.float64]
) -> dict[str, ProblemList]:
    """Problems by row (first rows and counts) for the report."""
    table = incoming.table
    source_row = table["source_row"].to_numpy(dtype=np.int64)
    ori_id = table["ori_id"]
    repaired = table["repaired"].to_numpy()
    active = ~parcels["is_deleted"].to_numpy()
    return {
        "invalid": ProblemList.of(
            ProblemRow(int(source_row[i]), str(ori_id.iloc[i]), str(incoming.reasons[k]))
            for k, i in enumerate(incoming.invalid_index)
            if not repaired[i]
        ),
        "repaired": ProblemList.of(
            ProblemRow(int(source_row[i]), str(ori_id.iloc[i]), f"repaired: {incoming.reasons[k]}")
            for k, i in enumerate(incoming.invalid_index)
            if repaired[i]
        ),
        "duplicates": _flag_problems(parcels, "Duplic", "same geometry as another parcel"),
        "overlaps": ProblemList.of(
            ProblemRow(
                _row(parcels, int(i)),
                str(parcels["ori_id"].iat[i]),
                f"{fraction[i]:.0%} covered by other parcels",
            )
            for i in np.flatnonzero(parcels["Overlap"].to_numpy())
        ),
        "zero_s2_pixels": ProblemList.of(
            ProblemRow(
                _row(parcels, int(i)),
                str(parcels["ori_id"].iat[i]),
                f"area {parcels['Area_meters'].iat[i]:.0f} m²",
            )
            for i in np.flatnonzero(active & (parcels["S2Pix"].to_numpy() == 0))
        ),
        "missing_crop_code": ProblemList.of(
            ProblemRow(int(source_row[i]), str(ori_id.iloc[i]), "no crop code")
            for i in np.flatnonzero(table["ori_crop"].isna().to_numpy())
        ),
        "suffixed_ids": incoming.suffix_problems,
        "dropped_non_polygon": incoming.dropped_problems,
    }


def _counts(
    incoming: _IncomingParcels, parcels: gpd.GeoDataFrame, *, has_holdings: bool
) -> DeclarationCounts:
    active = ~parcels["is_deleted"].to_numpy()
    change = parcels["change"].to_numpy()
    table = incoming.table
    return DeclarationCounts(
        read=incoming.read,
        imported=int(parcels["source_row"].notna().sum()),
        dropped_non_polygon=int(sum(incoming.dropped_types.values())),
        invalid=len(incoming.invalid_index),
        repaired=int(table["repaired"].sum()),
        unrepairable=incoming.unrepairable,
        duplicates=int(parcels["Duplic"].sum()),
        overlaps=int(parcels["Overlap"].sum()),
        zero_s2_pixels=int((active & (parcels["S2Pix"].to_numpy() == 0)).sum()),
        zero_s1_pixels=int((active & (parcels["S1Pix"].to_numpy() == 0)).sum()),
        missing_crop_code=int(table["ori_crop"].isna().sum()),
        missing_holding_id=int(table["ori_hold"].isna().sum()) if has_holdings else 0,
        suffixed_ids=int(incoming.suffixed.sum()),
        inserted=int((change == ParcelChange.INSERTED).sum()),
        updated=int((change == ParcelChange.UPDATED).sum()),
        unchanged=int((change == ParcelChange.UNCHANGED).sum()),
        deleted=int((change == ParcelChange.DELETED).sum()),
        kept=int((change == ParcelChange.KEPT).sum()),
        parcels=len(parcels),
        active_parcels=int(active.sum()),
    )


def _text(value: Any) -> str | None:
    return None if value is None or value is pd.NA else str(value)


def _row(parcels: pd.DataFrame, i: int) -> int | None:
    value = cast(Any, parcels["source_row"].iat[i])
    return None if pd.isna(value) else int(value)


def _flag_problems(parcels: gpd.GeoDataFrame, column: str, detail: str) -> ProblemList:
    flagged = np.flatnonzero(parcels[column].to_numpy())
    if column == "Duplic" and len(flagged):
        keys = shapely.to_wkb(shapely.normalize(parcels.geometry.to_numpy()[flagged]))
        groups: dict[bytes, list[str]] = {}
        for key, ori in zip(keys, parcels["ori_id"].to_numpy()[flagged], strict=True):
            groups.setdefault(bytes(key), []).append(str(ori))
        others = [
            [o for o in groups[bytes(k)] if o != str(ori)][:3]
            for k, ori in zip(keys, parcels["ori_id"].to_numpy()[flagged], strict=True)
        ]
        return ProblemList.of(
            ProblemRow(
                _row(parcels, int(i)),
                str(parcels["ori_id"].iat[int(i)]),
                f"{detail}: {', '.join(o)}",
            )
            for i, o in zip(flagged, others, strict=True)
        )
    return ProblemList.of(
        ProblemRow(_row(parcels, int(i)), str(parcels["ori_id"].iat[int(i)]), detail)
        for i in flagged
    )


def _duplicate_id_message(ori_id: pd.Series, source_row: npt.NDArray[np.int64]) -> str:
    shared = ori_id[ori_id.duplicated(keep=False)]
    groups = shared.groupby(shared, sort=False).groups
    shown = [
        f"{key!r} on rows {', '.join(str(source_row[i]) for i in list(index)[:5])}"
        for key, index in list(groups.items())[:MAX_PROBLEM_ROWS]
    ]
    more = f" and {len(groups) - MAX_PROBLEM_ROWS} more" if len(groups) > MAX_PROBLEM_ROWS else ""
    return (
        f"{len(groups)} parcel ids are used by several features: {'; '.join(shown)}{more}. "
        "Choose other id columns, or use --on-duplicate-id suffix for Sen4CAP's -A/-B suffixes"
    )


def _merge_with_previous(
    incoming: pd.DataFrame,
    stored: npt.NDArray[np.object_],
    previous: gpd.GeoDataFrame | None,
    mode: ImportMode,
    now: datetime,
) -> tuple[pd.DataFrame, npt.NDArray[np.object_]]:
    """The parcels table before measures, and each row's previous geometry (None if none)."""
    n = len(incoming)
    table = incoming.copy()
    table["geometry"] = stored
    prior_geometry = np.full(n, None, dtype=object)
    moment = pd.Timestamp(now)
    stamp = moment.tz_convert("UTC") if moment.tzinfo else moment.tz_localize("UTC")
    if previous is None or len(previous) == 0:
        table["NewID"] = assign_stable_ids(table["ori_id"], None, dense=False)
        table["HoldID"] = assign_stable_ids(table["ori_hold"], None, dense=True)
        table["is_deleted"] = False
        table["change"] = ParcelChange.INSERTED.value
        table["inserted_at"] = stamp
        table["updated_at"] = pd.NaT
        return table, prior_geometry

    prev = pd.DataFrame(previous.drop(columns="geometry")).reset_index(drop=True)
    prev_geometry = previous.geometry.to_crs(STORAGE_CRS).to_numpy()
    prev_ids = pd.Series(prev["NewID"].to_numpy(), index=prev["ori_id"].astype(str).to_numpy())
    holds = prev.dropna(subset=["ori_hold"]).drop_duplicates("ori_hold")
    prev_holds = pd.Series(holds["HoldID"].to_numpy(), index=holds["ori_hold"].astype(str))
    table["NewID"] = assign_stable_ids(table["ori_id"], prev_ids, dense=False)
    table["HoldID"] = assign_stable_ids(table["ori_hold"], prev_holds, dense=True)
    position = pd.Series(np.arange(len(prev)), index=prev["ori_id"].astype(str).to_numpy())
    matched_pos = table["ori_id"].astype(str).map(position)
    matched = matched_pos.notna().to_numpy()
    mi = np.flatnonzero(matched)
    pi = matched_pos.to_numpy()[matched].astype(np.int64)

    table["ori_crop"], prev_crop = _harmonised_crop(table["ori_crop"], prev["ori_crop"])
    same_geometry = shapely.equals_exact(
        shapely.normalize(stored[mi]),
        shapely.normalize(prev_geometry[pi]),
        tolerance=GEOMETRY_TOLERANCE_DEG,
    )
    same_crop = _same(table["ori_crop"].iloc[mi], prev_crop.iloc[pi])
    same_hold = _same(table["ori_hold"].iloc[mi], prev["ori_hold"].iloc[pi])
    was_deleted = prev["is_deleted"].to_numpy()[pi].astype(bool)
    changed = ~(same_geometry & same_crop & same_hold) | was_deleted

    change = np.full(n, ParcelChange.INSERTED.value, dtype=object)
    change[mi] = np.where(changed, ParcelChange.UPDATED.value, ParcelChange.UNCHANGED.value)
    prev_inserted = _utc(prev["inserted_at"])
    prev_updated = _utc(prev["updated_at"])
    now_value = np.datetime64(stamp.tz_localize(None), "us")
    inserted_at = np.full(n, now_value, dtype="datetime64[us]")
    inserted_at[mi] = prev_inserted[pi]
    updated_at = np.full(n, np.datetime64("NaT", "us"), dtype="datetime64[us]")
    updated_at[mi] = np.where(changed, now_value, prev_updated[pi])
    moved = changed & ~same_geometry
    prior_geometry[mi[moved]] = prev_geometry[pi[moved]]
    table["is_deleted"] = False
    table["change"] = change
    table["inserted_at"] = pd.to_datetime(inserted_at, utc=True)
    table["updated_at"] = pd.to_datetime(updated_at, utc=True)

    rest = np.ones(len(prev), dtype=bool)
    rest[pi] = False
    carried = prev.iloc[np.flatnonzero(rest)].reset_index(drop=True)
    carried["ori_crop"] = prev_crop.iloc[np.flatnonzero(rest)].reset_index(drop=True)
    carried["geometry"] = prev_geometry[rest]
    carried["source_row"] = pd.array([None] * len(carried), dtype="Int64")
    carried["inserted_at"] = pd.to_datetime(prev_inserted[rest], utc=True)
    carried_updated = prev_updated[rest]
    was_deleted_before = carried["is_deleted"].to_numpy().astype(bool)
    if mode is ImportMode.UPDATE:
        carried["change"] = np.where(
            was_deleted_before, ParcelChange.KEPT.value, ParcelChange.DELETED.value
        )
        carried["is_deleted"] = True
        carried_updated = np.where(was_deleted_before, carried_updated, now_value)
    else:
        carried["change"] = ParcelChange.KEPT.value
    carried["updated_at"] = pd.to_datetime(carried_updated, utc=True)
    combined = pd.concat([table, carried[list(table.columns)]], ignore_index=True)
    prior = np.concatenate([prior_geometry, np.full(len(carried), None, dtype=object)])
    return combined, prior


def _utc(values: pd.Series) -> npt.NDArray[np.datetime64]:
    """Timestamps as naive UTC ``datetime64[us]`` (NaT where missing)."""
    stamps = pd.to_datetime(values, utc=True).dt.tz_localize(None)
    return stamps.to_numpy(dtype="datetime64[us]")


def _harmonised_crop(new: pd.Series, old: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Both crop code columns in one dtype: Int64 if both are numeric, else string."""
    if pd.api.types.is_integer_dtype(new.dtype) and pd.api.types.is_integer_dtype(old.dtype):
        return new.astype("Int64"), old.astype("Int64").reset_index(drop=True)

    def as_text(s: pd.Series) -> pd.Series:
        return pd.Series(
            [
                None
                if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                else str(v)
                for v in s.tolist()
            ],
            dtype="string",
        )

    return as_text(new), as_text(old)


def _same(a: pd.Series, b: pd.Series) -> npt.NDArray[np.bool_]:
    left = [crop_key(v) for v in a.tolist()]
    right = [crop_key(v) for v in b.tolist()]
    return np.array([x == y for x, y in zip(left, right, strict=True)], dtype=bool)


def _measure(
    table: pd.DataFrame, prior_geometry: npt.NDArray[np.object_], utm_epsgs: Sequence[int]
) -> npt.NDArray[np.float64]:
    """Fill the measured columns in place; returns each parcel's covered fraction."""
    geometries = table["geometry"].to_numpy()
    valid = table["GeomValid"].to_numpy().astype(bool)
    active = ~table["is_deleted"].to_numpy().astype(bool)
    usable = measurable(geometries, valid)
    laea = equal_area_crs(usable)
    usable_ea = transform_geometries(usable, 4326, laea)
    area, shape_index = area_and_shape_index(usable_ea)
    eligible = valid & active
    table["Area_meters"] = area
    table["ShapeInd"] = shape_index
    table["Duplic"] = duplicate_mask(geometries, eligible)
    overlap, fraction = overlap_mask(usable_ea, area, eligible)
    table["Overlap"] = overlap
    s2, s1 = sentinel_pixel_counts(usable, utm_epsgs)
    table["S2Pix"] = s2
    table["S1Pix"] = s1
    ratio = np.full(len(table), np.nan)
    changed = np.flatnonzero(np.array([g is not None for g in prior_geometry], dtype=bool))
    updated = np.flatnonzero(table["change"].to_numpy() == ParcelChange.UPDATED.value)
    ratio[updated] = 0.0
    if len(changed):
        before = transform_geometries(
            measurable(prior_geometry[changed], shapely.is_valid(prior_geometry[changed])),
            4326,
            laea,
        )
        after = usable_ea[changed]
        union = shapely.area(shapely.union(before, after))
        difference = shapely.area(shapely.symmetric_difference(before, after))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio[changed] = np.where(union > 0, difference / union, 0.0)
    table["geom_change_ratio"] = ratio
    return fraction


def _with_dtypes(parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    result = parcels.copy()
    result["NewID"] = result["NewID"].astype("int32")
    result["HoldID"] = result["HoldID"].astype("Int32")
    result["ori_id"] = result["ori_id"].astype("string")
    result["ori_hold"] = result["ori_hold"].astype("string")
    for column in ("GeomValid", "repaired", "Duplic", "Overlap", "is_deleted"):
        result[column] = result[column].astype(bool)
    for column in ("Area_meters", "ShapeInd", "geom_change_ratio"):
        result[column] = result[column].astype("float64")
    result["S2Pix"] = result["S2Pix"].astype("int32")
    result["S1Pix"] = result["S1Pix"].astype("int32")
    result["change"] = result["change"].astype("string")
    result["inserted_at"] = pd.to_datetime(result["inserted_at"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    result["updated_at"] = pd.to_datetime(result["updated_at"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    result["source_row"] = result["source_row"].astype("Int64")
    ordered = gpd.GeoDataFrame(result[list(PARCEL_COLUMNS)], geometry="geometry", crs=STORAGE_CRS)
    return ordered


def site_utm_epsgs(site: Site) -> tuple[int, ...]:
    """The UTM EPSG codes of a site's Sentinel-2 tiles (where its pixels are counted)."""
    return tuple(sorted({s2_tile(name).epsg for name in site.tiles or []}))


def import_declarations(
    workspace: Workspace,
    site: str,
    year: int,
    path: str | Path,
    *,
    parcel_id_cols: Sequence[str] = (),
    holding_id_cols: Sequence[str] = (),
    crop_code_col: str | None = None,
    mode: ImportMode | str = ImportMode.UPDATE,
    layer: str | None = None,
    encoding: str | None = None,
    repair: bool = False,
    on_duplicate_id: DuplicateIdPolicy | str = DuplicateIdPolicy.ERROR,
    skip_non_polygons: bool = False,
) -> DeclarationImport:
    """Import a declarations file as the next version of ``site``'s parcels for ``year``.

    Nothing stored changes unless the whole import succeeds (see :mod:`capmon.parcels.store`).
    """
    store.check_year(year)
    mode = ImportMode(mode)
    with workspace.session() as session:
        site_row = get_site(session, site)
        site_name, short, epsgs = site_row.name, site_row.short_name, site_utm_epsgs(site_row)
        site_id = site_row.id
        previous_set = store.latest_row(session, DeclarationSet, site_row, year)
        previous_info = (
            (previous_set.version, previous_set.parcels_path) if previous_set is not None else None
        )
        lut_row = store.latest_row(session, CropLut, site_row, year)
        lut_info = (lut_row.version, lut_row.lut_path) if lut_row is not None else None
    previous = None
    if previous_info is not None and mode is not ImportMode.REPLACE:
        previous = load_parcels_file(workspace.path(previous_info[1]))
    lut_keys: list[str] | None = None
    if lut_info is not None:
        lut_keys = store.read_table(workspace, lut_info[1])["crop_key"].dropna().tolist()
    prepared = prepare_declarations(
        path,
        ColumnMapping(tuple(parcel_id_cols), tuple(holding_id_cols), crop_code_col),
        layer=layer,
        encoding=encoding,
        repair_geometries=repair,
        on_duplicate_id=on_duplicate_id,
        skip_non_polygons=skip_non_polygons,
        previous=previous,
        mode=mode,
        utm_epsgs=epsgs,
        lut_keys=lut_keys,
    )
    with workspace.session() as session:
        version = store.next_version(session, DeclarationSet, get_site(session, site), year)
    if version != (previous_info[0] if previous_info else 0) + 1:
        raise ConflictError(
            f"another import of {site_name} {year} (version {version - 1}) finished while this "
            "one ran; nothing was stored, import again"
        )
    folder = workspace.path(f"parcels/{short}/{year}/v{version}")
    relative = f"parcels/{short}/{year}/v{version}/{store.PARCELS_FILE}"
    check = prepared.report.crop_codes
    if check is not None and lut_info is not None:
        check = CropCodeCheck(
            lut_info[0],
            version,
            check.distinct_codes,
            check.missing_code_count,
            check.parcels_without_lut_entry,
            check.missing_codes,
        )
    report = prepared.report.with_storage(version, relative, check)
    report = dataclasses.replace(
        report, previous_version=previous_info[0] if previous_info else None
    )
    payload = report.to_dict()

    def write(tmp: Path) -> None:
        prepared.parcels.to_parquet(tmp / store.PARCELS_FILE, index=False)
        store.write_json(tmp / store.REPORT_FILE, payload)

    store.write_version_folder(workspace, DeclarationSet, site_id, year, version, folder, write)
    with store.removed_on_failure(folder), workspace.session() as session:
        session.add(
            DeclarationSet(
                site_id=site_id,
                year=year,
                version=version,
                import_mode=mode,
                source_file=str(Path(path).resolve()),
                source_layer=report.layer,
                column_mapping=dict(report.column_mapping),
                parcels_path=relative,
                parcel_count=report.counts.active_parcels,
                report=payload,
            )
        )
        session.flush()
    return DeclarationImport(
        site_name, year, version, workspace.path(relative), report, prepared.parcels
    )


def load_parcels_file(path: str | Path) -> gpd.GeoDataFrame:
    """Read a stored parcels table (GeoParquet written by an import)."""
    try:
        frame = gpd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a capmon parcels table ({exc})") from exc
    missing = [c for c in PARCEL_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: not a capmon parcels table (no {', '.join(missing)})")
    return frame


def load_parcels(
    workspace: Workspace,
    site: str,
    year: int,
    version: int | None = None,
    *,
    include_deleted: bool = False,
) -> gpd.GeoDataFrame:
    """The parcels of a declaration set (the newest version by default), deleted ones left out."""
    with workspace.session() as session:
        row = store.version_row(session, DeclarationSet, get_site(session, site), year, version)
        relative = row.parcels_path
    frame = load_parcels_file(workspace.path(relative))
    if not include_deleted:
        frame = frame[~frame["is_deleted"]].reset_index(drop=True)
    return frame


@dataclass(frozen=True)
class DeclarationSetInfo:
    """A stored declaration set as listed by ``capmon declarations list``."""

    year: int
    version: int
    mode: str
    parcels: int
    source_file: str
    parcels_path: str
    created_at: datetime | None


def list_declaration_sets(workspace: Workspace, site: str) -> list[DeclarationSetInfo]:
    """Every declaration set of ``site``, by year then version."""
    with workspace.session() as session:
        site_row = get_site(session, site)
        rows = session.scalars(
            select(DeclarationSet)
            .where(DeclarationSet.site_id == site_row.id)
            .order_by(DeclarationSet.year, DeclarationSet.version)
        ).all()
        return [
            DeclarationSetInfo(
                r.year,
                r.version,
                ImportMode(r.import_mode).value,
                r.parcel_count,
                r.source_file,
                r.parcels_path,
                r.created_at,
            )
            for r in rows
        ]


def declaration_report(
    workspace: Workspace, site: str, year: int, version: int | None = None
) -> dict[str, Any]:
    """The stored report of a declaration set (the newest version by default)."""
    with workspace.session() as session:
        row = store.version_row(session, DeclarationSet, get_site(session, site), year, version)
        return dict(row.report)
