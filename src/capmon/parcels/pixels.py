"""Counting the Sentinel pixels of parcels (Sen4CAP's ``S2Pix`` and ``S1Pix``) without rasters.

Sen4CAP rasterises each parcel after an inward buffer of half a pixel (-5 m at 10 m, -10 m at
20 m) and counts the pixels whose centre falls inside (sen4cap-system.md 2.2). Every Sentinel-2
tile of one UTM zone shares the same 10 m and 20 m grids (pixel edges at multiples of the
resolution), so the count only depends on the parcel, the zone and the resolution: pixel centres
are at ``((i + 0.5) * res, (j + 0.5) * res)`` in the zone's UTM coordinates.

The count is an exact scanline computation, vectorised over all parcels with numpy: for every
pixel row, the crossings of the row's centre line with the polygon edges are sorted and paired
(even-odd rule, which also handles holes and multipolygon parts), and the pixel centres between
each pair are counted arithmetically. Edges follow the half-open rule ``ymin <= y < ymax`` and
intervals ``xa <= x < xb``, as GDAL's rasteriser does; a centre lying exactly on a boundary is
therefore counted on left and bottom edges only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyproj
import shapely

from capmon.grid import utm_epsg

S2_RESOLUTION = 10
S1_RESOLUTION = 20
_CHUNK = 50_000

GeometryArray = npt.NDArray[np.object_]


def count_pixel_centres(geometries: GeometryArray, resolution: float) -> npt.NDArray[np.int64]:
    """Number of grid pixel centres ``(k + 0.5) * resolution`` inside each (multi)polygon.

    ``geometries`` must be in a projected CRS whose grid has edges at multiples of
    ``resolution``; null, empty and non-polygonal geometries count 0.
    """
    counts = np.zeros(len(geometries), dtype=np.int64)
    for start in range(0, len(geometries), _CHUNK):
        chunk = geometries[start : start + _CHUNK]
        counts[start : start + len(chunk)] = _count_chunk(chunk, float(resolution))
    return counts


def _count_chunk(geometries: GeometryArray, res: float) -> npt.NDArray[np.int64]:
    n = len(geometries)
    polygons, polygon_owner = shapely.get_parts(geometries, return_index=True)
    keep = shapely.get_type_id(polygons) == 3  # Polygon
    polygons, polygon_owner = polygons[keep], polygon_owner[keep]
    if len(polygons) == 0:
        return np.zeros(n, dtype=np.int64)
    rings, ring_polygon = shapely.get_rings(polygons, return_index=True)
    coords, vertex_ring = shapely.get_coordinates(rings, return_index=True)
    same_ring = vertex_ring[:-1] == vertex_ring[1:]
    x0, y0 = coords[:-1, 0][same_ring], coords[:-1, 1][same_ring]
    x1, y1 = coords[1:, 0][same_ring], coords[1:, 1][same_ring]
    edge_owner = polygon_owner[ring_polygon[vertex_ring[:-1][same_ring]]]
    # Pixel rows whose centre line y = (j + 0.5) * res satisfies ymin <= y < ymax.
    ymin, ymax = np.minimum(y0, y1), np.maximum(y0, y1)
    first_row = np.ceil(ymin / res - 0.5).astype(np.int64)
    end_row = np.ceil(ymax / res - 0.5).astype(np.int64)
    rows_per_edge = np.maximum(end_row - first_row, 0)
    total = int(rows_per_edge.sum())
    if total == 0:
        return np.zeros(n, dtype=np.int64)
    edge = np.repeat(np.arange(len(x0)), rows_per_edge)
    offsets = np.arange(total) - np.repeat(np.cumsum(rows_per_edge) - rows_per_edge, rows_per_edge)
    row = first_row[edge] + offsets
    y_centre = (row + 0.5) * res
    ex0, ey0, ex1, ey1 = x0[edge], y0[edge], x1[edge], y1[edge]
    x_cross = ex0 + (y_centre - ey0) * (ex1 - ex0) / (ey1 - ey0)
    owner = edge_owner[edge]
    order = np.lexsort((x_cross, row, owner))
    x_sorted = x_cross[order]
    # Each (parcel, row) group has an even number of crossings; pair them in order.
    start_x, end_x = x_sorted[0::2], x_sorted[1::2]
    inside = np.ceil(end_x / res - 0.5) - np.ceil(start_x / res - 0.5)
    pair_owner = owner[order][0::2]
    counts: npt.NDArray[np.int64] = (
        np.bincount(pair_owner, weights=inside, minlength=n).round().astype(np.int64)
    )
    return counts


def nearest_utm_epsg(
    longitudes: npt.NDArray[np.float64],
    latitudes: npt.NDArray[np.float64],
    candidates: Sequence[int] = (),
) -> npt.NDArray[np.int64]:
    """The UTM EPSG code to count each parcel's pixels in.

    With ``candidates`` (the UTM zones of a site's Sentinel-2 tiles) each parcel takes the
    candidate whose central meridian is nearest to it; without, its own standard UTM zone.
    """
    if candidates:
        epsgs = np.array(sorted(set(candidates)), dtype=np.int64)
        meridians = -183.0 + 6.0 * (epsgs % 100)
        distance = np.abs(((longitudes[:, None] - meridians[None, :]) + 180.0) % 360.0 - 180.0)
        same_hemisphere = (epsgs[None, :] < 32700) == (latitudes[:, None] >= 0)
        distance = np.where(same_hemisphere, distance, distance + 360.0)
        chosen: npt.NDArray[np.int64] = epsgs[np.argmin(distance, axis=1)]
        return chosen
    zones = (np.floor((longitudes + 180.0) / 6.0).astype(np.int64) % 60) + 1
    return np.where(latitudes >= 0, utm_epsg(0, True) + zones, utm_epsg(0, False) + zones)


def sentinel_pixel_counts(
    geometries_wgs84: GeometryArray, utm_epsgs: Sequence[int] = ()
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``(S2Pix, S1Pix)`` of each parcel given in EPSG:4326.

    Each parcel is projected to its UTM zone (see :func:`nearest_utm_epsg`), buffered inward by
    half a pixel (-5 m, -10 m) and its pixel centres on the 10 m and 20 m grids are counted.
    Geometries must be valid; invalid ones should be passed through ``shapely.make_valid`` first.
    """
    n = len(geometries_wgs84)
    s2 = np.zeros(n, dtype=np.int64)
    s1 = np.zeros(n, dtype=np.int64)
    present = ~(shapely.is_missing(geometries_wgs84) | shapely.is_empty(geometries_wgs84))
    if not present.any():
        return s2, s1
    centres = shapely.centroid(geometries_wgs84[present])
    target = nearest_utm_epsg(shapely.get_x(centres), shapely.get_y(centres), utm_epsgs)
    indices = np.flatnonzero(present)
    for epsg in np.unique(target):
        chosen = indices[target == epsg]
        projected = transform_geometries(geometries_wgs84[chosen], 4326, int(epsg))
        s2[chosen] = count_pixel_centres(
            shapely.buffer(projected, -S2_RESOLUTION / 2), S2_RESOLUTION
        )
        s1[chosen] = count_pixel_centres(
            shapely.buffer(projected, -S1_RESOLUTION / 2), S1_RESOLUTION
        )
    return s2, s1


def transform_geometries(
    geometries: GeometryArray, source: pyproj.CRS | int | str, target: pyproj.CRS | int | str
) -> GeometryArray:
    """Reproject a shapely array between two CRSs (lon/lat axis order for geographic CRSs)."""
    transformer = pyproj.Transformer.from_crs(source, target, always_xy=True)

    def _apply(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack((x, y))

    result: GeometryArray = shapely.transform(geometries, _apply)
    return result
