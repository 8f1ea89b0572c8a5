"""The parcels of one declaration set as the map needs them: reprojected to EPSG:3857 once,
with a spatial index, cut into vector tiles and selected by bounding box.

Built once per (site, season, declaration set) and kept by :mod:`capmon.service.map_data`.
A tile takes the parcels whose envelope meets it (``STRtree``), clips them to the tile plus a
small buffer, moves them to tile units and simplifies them to a quarter of a screen pixel.
Parcels smaller than :data:`MIN_POLYGON_PIXELS` screen pixels become points (their
centroid, kept only in the tile that holds it), at most one per screen pixel, so that small
zooms over 100k+ parcels stay small and fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import Transformer

from capmon.errors import InputError, NotFoundError
from capmon.service.mvt import (
    EMPTY_GEOMETRIES,
    EXTENT,
    TileGeometries,
    encode_geometries,
    tile_bounds,
)

TILE_PIXELS = 256
"""Screen pixels per tile side (what map clients draw a tile on)."""
BUFFER_UNITS = 64
"""Tile units kept around a tile so that outlines do not show seams."""
MIN_POLYGON_PIXELS = 3.0
"""Parcels whose envelope is smaller than this many screen pixels are drawn as points."""
SIMPLIFY_PIXELS = 0.25
"""Simplification tolerance, in screen pixels."""
ATTRIBUTE_COLUMNS = (
    "ori_id",
    "ori_hold",
    "ori_crop",
    "HoldID",
    "Area_meters",
    "ShapeInd",
    "S2Pix",
    "S1Pix",
    "GeomValid",
    "repaired",
    "Duplic",
    "Overlap",
    "change",
)
"""Declared attributes served for a parcel (Sen4CAP names)."""

_TO_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)


@dataclass(frozen=True)
class ParcelIndex:
    """The parcels of a declaration set: ids, attributes, geometries in EPSG:4326 and 3857."""

    key: tuple[Any, ...]
    ids: npt.NDArray[np.int64]
    attributes: pd.DataFrame
    geographic: npt.NDArray[np.object_]
    mercator: npt.NDArray[np.object_]
    envelopes: npt.NDArray[np.float64]
    centroids: npt.NDArray[np.float64]
    tree: shapely.STRtree
    _order: npt.NDArray[np.int64]

    @classmethod
    def build(cls, key: tuple[Any, ...], parcels: gpd.GeoDataFrame) -> ParcelIndex:
        """Index ``parcels`` (a capmon parcels table, deleted parcels left out)."""
        if parcels.crs is None:
            raise InputError("the parcels table has no CRS")
        geographic = parcels.to_crs(4326) if not parcels.crs.equals("EPSG:4326") else parcels
        mercator = geographic.geometry.to_crs(3857).to_numpy()
        ids = parcels["NewID"].to_numpy(np.int64)
        columns = [c for c in ATTRIBUTE_COLUMNS if c in parcels.columns]
        attributes = pd.DataFrame(parcels[columns]).reset_index(drop=True)
        envelopes = shapely.bounds(mercator)
        centroids = shapely.get_coordinates(shapely.centroid(mercator))
        return cls(
            key=key,
            ids=ids,
            attributes=attributes,
            geographic=geographic.geometry.to_numpy(),
            mercator=mercator,
            envelopes=envelopes,
            centroids=centroids,
            tree=shapely.STRtree(mercator),
            _order=np.argsort(ids, kind="stable"),
        )

    @classmethod
    def from_file(cls, key: tuple[Any, ...], path: Path) -> ParcelIndex:
        from capmon.parcels import load_parcels_file

        parcels = load_parcels_file(path)
        return cls.build(key, parcels[~parcels["is_deleted"].astype(bool)].reset_index(drop=True))

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, parcel_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The row of each parcel id in this index, -1 for ids it does not hold."""
        wanted = np.asarray(parcel_ids, dtype=np.int64)
        if not len(self.ids):
            return np.full(wanted.shape, -1, np.int64)
        sorted_ids = self.ids[self._order]
        at = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
        found = sorted_ids[at] == wanted
        return np.where(found, self._order[at], -1)

    def position(self, parcel_id: int) -> int:
        """The row of one parcel; NotFoundError naming it when the set does not hold it."""
        row = int(self.positions([parcel_id])[0])
        if row < 0:
            raise NotFoundError(f"no parcel {parcel_id} in this season's declarations")
        return row

    def find(self, parcel: str) -> int:
        """The row of a parcel given by its NewID or, when no NewID matches, by its declared
        id (``ori_id``, as the declarations file wrote it); NotFoundError naming it."""
        text = parcel.strip()
        if text.isdigit() and int(text) < 2**63:
            row = int(self.positions([int(text)])[0])
            if row >= 0:
                return row
        if text and "ori_id" in self.attributes.columns:
            declared = self.attributes["ori_id"].astype("string").to_numpy(dtype=object)
            hits = np.flatnonzero(declared == text)
            if hits.size:
                return int(hits[0])  # declared ids are unique in a declaration set
        raise NotFoundError(
            f"no parcel {text!r} in this season's declarations (neither a NewID nor a declared id)"
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """EPSG:3857 bounds of every parcel."""
        if not len(self.ids):
            return (0.0, 0.0, 0.0, 0.0)
        e = self.envelopes
        return (
            float(e[:, 0].min()),
            float(e[:, 1].min()),
            float(e[:, 2].max()),
            float(e[:, 3].max()),
        )

    # --- tiles -------------------------------------------------------------------------------

    def tile(self, z: int, x: int, y: int) -> TileGeometries:
        """The parcels of tile ``z/x/y``, encoded (see the module docstring)."""
        minx, miny, maxx, maxy = tile_bounds(z, x, y)
        unit = (maxx - minx) / EXTENT
        pad = BUFFER_UNITS * unit
        rows = self.tree.query(shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad))
        if not rows.size:
            return EMPTY_GEOMETRIES
        rows = np.sort(rows)
        pixel = (maxx - minx) / TILE_PIXELS
        envelopes = self.envelopes[rows]
        extent = np.maximum(envelopes[:, 2] - envelopes[:, 0], envelopes[:, 3] - envelopes[:, 1])
        small = extent < MIN_POLYGON_PIXELS * pixel
        point_rows, points = self._points(rows[small], (minx, miny, maxx, maxy))
        polygon_rows = rows[~small]
        polygons = np.zeros(0, object)
        if polygon_rows.size:
            clipped = shapely.clip_by_rect(
                self.mercator[polygon_rows], minx - pad, miny - pad, maxx + pad, maxy + pad
            )
            polygons = shapely.simplify(clipped, SIMPLIFY_PIXELS * pixel, preserve_topology=False)
        return encode_geometries(
            (minx, miny, maxx, maxy), polygon_rows, polygons, point_rows, points
        )

    def _points(
        self, rows: npt.NDArray[np.int64], bounds: tuple[float, float, float, float]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Centroids (EPSG:3857) inside the tile, one per screen pixel."""
        if not rows.size:
            return rows, np.zeros((0, 2))
        minx, miny, maxx, maxy = bounds
        xy = self.centroids[rows]
        inside = (xy[:, 0] >= minx) & (xy[:, 0] < maxx) & (xy[:, 1] > miny) & (xy[:, 1] <= maxy)
        rows, xy = rows[inside], xy[inside]
        pixel = (maxx - minx) / TILE_PIXELS
        column = ((xy[:, 0] - minx) // pixel).astype(np.int64)
        row = ((maxy - xy[:, 1]) // pixel).astype(np.int64)
        _, first = np.unique(row * TILE_PIXELS + column, return_index=True)
        first = np.sort(first)
        return rows[first], xy[first]

    # --- bounding boxes ------------------------------------------------------------------------

    def in_bbox(self, bbox: tuple[float, float, float, float]) -> npt.NDArray[np.int64]:
        """Rows of the parcels that meet ``bbox`` (EPSG:4326 ``minx, miny, maxx, maxy``)."""
        minx, miny, maxx, maxy = bbox
        xs, ys = _TO_MERCATOR.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
        envelope = shapely.box(min(xs), min(ys), max(xs), max(ys))
        rows = self.tree.query(envelope)
        if not rows.size:
            return rows.astype(np.int64)
        area = shapely.box(minx, miny, maxx, maxy)
        hit = shapely.intersects(self.geographic[rows], area)
        return np.sort(rows[hit]).astype(np.int64)

    def geojson_geometries(self, rows: npt.NDArray[np.int64]) -> list[str]:
        """GeoJSON geometry texts (EPSG:4326) of ``rows``."""
        if not rows.size:
            return []
        return [str(t) for t in shapely.to_geojson(self.geographic[rows])]

    def attributes_of(self, row: int) -> dict[str, Any]:
        """The declared attributes of one parcel, JSON-ready."""
        record = self.attributes.iloc[row].to_dict()
        return {"NewID": int(self.ids[row]), **{str(k): json_value(v) for k, v in record.items()}}


def json_value(value: Any) -> Any:
    """A pandas/numpy cell as a JSON value (missing -> None)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``minx,miny,maxx,maxy`` in degrees (EPSG:4326), checked."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        raise InputError(
            f"bbox {text!r} must be four numbers minx,miny,maxx,maxy (longitude, latitude)"
        )
    minx, miny, maxx, maxy = values
    if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
        raise InputError(
            f"bbox {text!r} must have -180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90 "
            "(EPSG:4326 longitude, latitude)"
        )
    return (minx, miny, maxx, maxy)


def feature_collection(features: list[str], extra: dict[str, Any]) -> str:
    """A GeoJSON FeatureCollection text from feature texts (no re-parsing)."""
    head = json.dumps({"type": "FeatureCollection", **extra})[:-1]
    return head + ', "features": [' + ", ".join(features) + "]}"
