"""Which pixels of a raster grid belong to which parcel (Sen4CAP's pixel-centre rule).

The parcels are reprojected to the grid (never the raster to the parcels), buffered inward
(-5 m for 10 m grids, -10 m for 20 m grids in Sen4CAP; configurable, 0 allowed) and rasterised
with GDAL's pixel-centre rule (``all_touched=False``). The result, a :class:`ParcelPixels`,
depends only on the grid and the parcel set, so it is computed once and reused for every date
and signal. Parcels that overlap each other are rasterised one by one, so that each parcel gets
all of its pixels exactly as if it were alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from pyproj import CRS
from rasterio import features, windows
from shapely.geometry.base import BaseGeometry

from capmon.errors import CRSError, GeometryError, InputError
from capmon.grid import PixelGrid
from capmon.mdb.stats import ParcelPixels

_MAX_LISTED = 10
_STRIP_PIXELS = 1 << 24  # rows rasterised at once: 32 MB of uint16 labels


def parcel_pixels(
    parcels: gpd.GeoDataFrame,
    grid: PixelGrid,
    *,
    id_column: str = "NewID",
    buffer_m: float = 0.0,
) -> ParcelPixels:
    """The pixels of each parcel on ``grid``, after an inward buffer of ``buffer_m`` metres.

    Every parcel of ``parcels`` is in the result (sorted by id), with zero pixels when it is
    outside the grid or vanishes in the buffer.
    """
    if parcels.crs is None:
        raise CRSError("the parcels have no CRS; capmon never guesses one")
    if grid.crs is None:
        raise CRSError("the raster grid has no CRS")
    if id_column not in parcels.columns:
        raise InputError(f"the parcels have no {id_column!r} column")
    if buffer_m < 0:
        raise InputError(f"buffer_m is the inward buffer in metres and must be >= 0: {buffer_m}")
    if buffer_m > 0 and not grid.crs.is_projected:
        raise CRSError(f"an inward buffer needs a projected grid CRS, not {grid.crs.name}")
    ids = parcels[id_column].to_numpy()
    if not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"parcel ids ({id_column}) must be integers, not {ids.dtype}")
    if len(np.unique(ids)) != len(ids):
        raise InputError(f"parcel ids ({id_column}) must be unique")

    local = parcels if CRS(parcels.crs).equals(grid.crs) else parcels.to_crs(grid.crs)
    geometries = local.geometry.to_numpy()
    invalid = ~shapely.is_valid(geometries) & ~shapely.is_missing(geometries)
    if invalid.any():
        shown = ", ".join(
            f"{ids[i]} ({shapely.is_valid_reason(geometries[i])})"
            for i in np.flatnonzero(invalid)[:_MAX_LISTED]
        )
        raise GeometryError(f"{int(invalid.sum())} invalid parcel geometries: {shown}")
    if buffer_m > 0:
        geometries = shapely.buffer(geometries, -buffer_m)

    order = np.argsort(ids, kind="stable")
    ids = ids[order].astype(np.int64)
    geometries = geometries[order]
    usable = ~(shapely.is_missing(geometries) | shapely.is_empty(geometries))
    overlapping = _overlapping(geometries, usable)

    ranks: list[npt.NDArray[np.int64]] = []
    pixels: list[npt.NDArray[np.int64]] = []
    single = np.flatnonzero(usable & ~overlapping)
    if len(single):
        for strip_ranks, strip_pixels in _rasterised_in_strips(
            geometries[single], single, len(ids), grid
        ):
            ranks.append(strip_ranks)
            pixels.append(strip_pixels)
    for rank in np.flatnonzero(overlapping):
        own = _own_pixels(geometries[rank], grid)
        ranks.append(np.full(len(own), rank, dtype=np.int64))
        pixels.append(own)

    all_ranks = np.concatenate(ranks) if ranks else np.empty(0, np.int64)
    all_pixels = np.concatenate(pixels) if pixels else np.empty(0, np.int64)
    counts = np.bincount(all_ranks, minlength=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return ParcelPixels(ids, offsets, _by_rank_then_pixel(all_ranks, all_pixels, grid), grid.shape)


def _by_rank_then_pixel(
    ranks: npt.NDArray[np.int64], pixels: npt.NDArray[np.int64], grid: PixelGrid
) -> npt.NDArray[np.int64]:
    """``pixels`` ordered by (rank, pixel): one sort of packed 64-bit keys when they fit."""
    pixel_bits = max(grid.width * grid.height - 1, 1).bit_length()
    rank_bits = max(int(ranks.max()) if len(ranks) else 0, 1).bit_length()
    if rank_bits + pixel_bits > 63:
        return pixels[np.lexsort((pixels, ranks))]
    keys = ranks << pixel_bits
    keys |= pixels
    keys.sort()
    keys &= (1 << pixel_bits) - 1
    return keys


def _rasterised_in_strips(
    geometries: npt.NDArray[np.object_],
    ranks: npt.NDArray[np.intp],
    parcels: int,
    grid: PixelGrid,
) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """(ranks, flat pixel indices) of non-overlapping parcels, rasterised by strips of rows.

    One reused strip buffer instead of a whole-grid label image: less memory, no page faults.
    """
    shapes = [geometry.__geo_interface__ for geometry in geometries]  # converted once
    inverse = ~grid.transform
    west, south, east, north = shapely.bounds(geometries).T
    rows = np.stack(
        [inverse.d * x + inverse.e * y + inverse.f for x in (west, east) for y in (south, north)]
    )
    first_row = np.floor(rows.min(axis=0)) - 1
    last_row = np.ceil(rows.max(axis=0)) + 1
    dtype = np.uint16 if parcels < np.iinfo(np.uint16).max else np.int32
    strip_rows = max(1, min(grid.height, _STRIP_PIXELS // grid.width))
    buffer = np.empty((strip_rows, grid.width), dtype=dtype)
    for row0 in range(0, grid.height, strip_rows):
        height = min(strip_rows, grid.height - row0)
        chosen = np.flatnonzero((last_row >= row0) & (first_row < row0 + height))
        if not len(chosen):
            continue
        out = buffer[:height]
        out.fill(0)
        features.rasterize(
            zip([shapes[i] for i in chosen], (ranks[chosen] + 1).tolist(), strict=True),
            out=out,
            transform=grid.transform @ Affine.translation(0, row0),
            all_touched=False,
        )
        flat = np.flatnonzero(out)
        if len(flat):
            yield out.ravel()[flat].astype(np.int64) - 1, flat + row0 * grid.width


def _overlapping(
    geometries: npt.NDArray[np.object_], usable: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Parcels whose (buffered) area overlaps another parcel's area."""
    result = np.zeros(len(geometries), dtype=bool)
    index = np.flatnonzero(usable)
    if len(index) < 2:
        return result
    tree = shapely.STRtree(geometries[index])
    left, right = tree.query(geometries[index], predicate="intersects")
    pairs = left < right
    left, right = index[left[pairs]], index[right[pairs]]
    if len(left) == 0:
        return result
    shared = shapely.area(shapely.intersection(geometries[left], geometries[right])) > 0
    result[left[shared]] = True
    result[right[shared]] = True
    return result


def _own_pixels(geometry: BaseGeometry, grid: PixelGrid) -> npt.NDArray[np.int64]:
    """Flat indices of the pixels whose centre is in ``geometry``, rasterised on its own."""
    west, south, east, north = geometry.bounds
    window = (
        windows.from_bounds(west, south, east, north, grid.transform)
        .round_offsets(op="floor")
        .round_lengths(op="ceil")
    )
    row0, col0 = int(window.row_off) - 1, int(window.col_off) - 1
    rows, cols = int(window.height) + 2, int(window.width) + 2
    r0, c0 = max(row0, 0), max(col0, 0)
    r1, c1 = min(row0 + rows, grid.height), min(col0 + cols, grid.width)
    if r1 <= r0 or c1 <= c0:
        return np.empty(0, dtype=np.int64)
    mask = features.rasterize(
        [(geometry, 1)],
        out_shape=(r1 - r0, c1 - c0),
        transform=grid.transform @ Affine.translation(c0, r0),
        fill=0,
        all_touched=False,
        dtype="uint8",
    )
    local_rows, local_cols = np.nonzero(mask)
    return ((local_rows + r0) * grid.width + (local_cols + c0)).astype(np.int64)
