"""Geometry checks and measures of declared parcels (Sen4CAP ``data-preparation`` semantics).

* ``GeomValid``: OGC validity of the geometry as declared (never silently repaired).
* repair: shapely ``make_valid`` with the ``structure`` method, keeping only the polygonal part;
  a geometry whose polygonal part is empty (e.g. a polygon collapsed to a line) cannot be
  repaired and stays invalid.
* ``Area_meters`` and ``ShapeInd`` are measured in a Lambert azimuthal equal-area projection
  centred on the data, on the ``make_valid`` geometry of invalid parcels, so that areas are
  true areas in any source CRS (projected or geographic).
* ``Duplic``: another valid parcel has the same geometry (same vertices after normalisation,
  whatever the starting vertex or ring orientation).
* ``Overlap``: more than 10 % of the parcel's area is covered by other valid parcels (sum of
  the pairwise intersection areas), found with one STRtree bulk query. Sen4CAP only compares
  parcels of the same Sentinel-2 tile; capmon compares all parcels, which differs only for
  parcels cut by a tile edge.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely

OVERLAP_THRESHOLD = 0.1
POLYGONAL_TYPE_IDS = (3, 6)  # Polygon, MultiPolygon

GeometryArray = npt.NDArray[np.object_]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


def geometry_type_names(geometries: GeometryArray) -> npt.NDArray[np.str_]:
    """The geometry type of each row; ``"null"`` for a missing and ``"empty"`` for an empty one."""
    names = np.array(
        [g.geom_type if g is not None else "null" for g in geometries], dtype=np.str_
    ).astype(object)
    present = ~shapely.is_missing(geometries)
    empty = np.zeros(len(geometries), dtype=bool)
    empty[present] = shapely.is_empty(geometries[present])
    names[empty] = "empty"
    return names.astype(np.str_)


def polygonal_mask(geometries: GeometryArray) -> BoolArray:
    """True for non-empty Polygon and MultiPolygon geometries."""
    type_ids = shapely.get_type_id(geometries)
    mask: BoolArray = np.isin(type_ids, POLYGONAL_TYPE_IDS) & ~shapely.is_empty(geometries)
    return mask


def as_multipolygons(geometries: GeometryArray) -> GeometryArray:
    """2D MultiPolygons from (Multi)Polygons of any dimension; other rows become empty."""
    flat = shapely.force_2d(geometries)
    parts, owner = shapely.get_parts(flat, return_index=True)
    while np.isin(shapely.get_type_id(parts), (6, 7)).any():  # nested multi-parts/collections
        nested, inner = shapely.get_parts(parts, return_index=True)
        parts, owner = nested, owner[inner]
    polygons = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, owner = parts[polygons], owner[polygons]
    result = np.array([shapely.MultiPolygon()] * len(geometries), dtype=object)
    if len(parts):
        owners = np.unique(owner)
        result[owners] = shapely.multipolygons(parts, indices=np.searchsorted(owners, owner))
    return result


def repair(geometries: GeometryArray) -> tuple[GeometryArray, BoolArray]:
    """``make_valid`` (structure method), polygonal part only; and whether that part is usable."""
    fixed = shapely.make_valid(geometries, method="structure", keep_collapsed=False)
    polygonal = as_multipolygons(fixed)
    usable: BoolArray = ~shapely.is_empty(polygonal) & shapely.is_valid(polygonal)
    return polygonal, usable


def validity_reasons(geometries: GeometryArray) -> npt.NDArray[np.object_]:
    """``shapely.is_valid_reason`` of each geometry."""
    reasons: npt.NDArray[np.object_] = shapely.is_valid_reason(geometries)
    return reasons


def equal_area_crs(geometries_wgs84: GeometryArray) -> pyproj.CRS:
    """A Lambert azimuthal equal-area CRS centred on the bounding box of the parcels."""
    west, south, east, north = shapely.total_bounds(geometries_wgs84)
    lon = float((west + east) / 2) if np.isfinite(west) else 0.0
    lat = float((south + north) / 2) if np.isfinite(south) else 0.0
    return pyproj.CRS.from_proj4(
        f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +x_0=0 +y_0=0 +ellps=GRS80 +units=m +no_defs"
    )


def measurable(geometries: GeometryArray, valid: BoolArray) -> GeometryArray:
    """The geometries to measure: valid ones as they are, invalid ones through ``make_valid``."""
    result = geometries.copy()
    if (~valid).any():
        result[~valid] = as_multipolygons(
            shapely.make_valid(geometries[~valid], method="structure", keep_collapsed=False)
        )
    return result


def area_and_shape_index(geometries_equal_area: GeometryArray) -> tuple[FloatArray, FloatArray]:
    """Area in m² and Sen4CAP's shape index ``perimeter / (2 sqrt(pi area))`` (1 for a disc)."""
    area = shapely.area(geometries_equal_area).astype(np.float64)
    perimeter = shapely.length(geometries_equal_area).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = np.where(area > 0, perimeter / (2.0 * np.sqrt(np.pi * area)), np.nan)
    return area, shape


def duplicate_mask(geometries: GeometryArray, eligible: BoolArray) -> BoolArray:
    """True for eligible parcels whose geometry equals another eligible parcel's geometry."""
    result = np.zeros(len(geometries), dtype=bool)
    index = np.flatnonzero(eligible)
    if len(index) < 2:
        return result
    keys = pd.Series(shapely.to_wkb(shapely.normalize(geometries[index])))
    result[index] = keys.duplicated(keep=False).to_numpy()
    return result


def overlap_fractions(
    geometries_equal_area: GeometryArray, areas: FloatArray, eligible: BoolArray
) -> FloatArray:
    """Fraction of each eligible parcel's area covered by the other eligible parcels.

    Candidate pairs come from one STRtree bulk ``intersects`` query; pairs that only touch
    (interiors disjoint, DE-9IM ``F********``) are dropped before intersecting.
    """
    fraction = np.zeros(len(geometries_equal_area), dtype=np.float64)
    index = np.flatnonzero(eligible & (areas > 0))
    if len(index) < 2:
        return fraction
    geoms = geometries_equal_area[index]
    tree = shapely.STRtree(geoms)
    pairs = tree.query(geoms, predicate="intersects")
    pairs = pairs[:, pairs[0] != pairs[1]]
    if pairs.shape[1]:
        pairs = pairs[:, shapely.relate_pattern(geoms[pairs[0]], geoms[pairs[1]], "T********")]
    if pairs.shape[1] == 0:
        return fraction
    covered = shapely.area(shapely.intersection(geoms[pairs[0]], geoms[pairs[1]]))
    per_parcel = np.bincount(pairs[0], weights=covered, minlength=len(index))
    fraction[index] = per_parcel / areas[index]
    return fraction


def overlap_mask(
    geometries_equal_area: GeometryArray, areas: FloatArray, eligible: BoolArray
) -> tuple[BoolArray, FloatArray]:
    """Sen4CAP's ``Overlap`` flag (covered fraction > 10 %) and the covered fraction."""
    fraction = overlap_fractions(geometries_equal_area, areas, eligible)
    return fraction > OVERLAP_THRESHOLD, fraction
