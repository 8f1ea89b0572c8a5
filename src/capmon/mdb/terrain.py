"""Terrain attributes of parcels from a DEM: mean elevation and mean slope per parcel.

L4A takes per-parcel numbers as features (``--attributes-file``, docs/l4a.md): where a parcel
lies says which crops can grow there. This computes the two a DEM gives (any single-band
elevation raster in metres: Copernicus DEM, SRTM, a national LiDAR DTM) with capmon's own
pixel assignment (:func:`capmon.mdb.labels.parcel_pixels`, pixel centres in the parcel):

* ``elevation``: the mean of the parcel's DEM pixels (m);
* ``slope``: the mean of the parcel's pixel slopes (degrees), each from the elevation
  gradient by central differences over the neighbouring pixels (``numpy.gradient``); pixel
  sizes in metres, or for a DEM in degrees the metres of a degree at the pixel's latitude.

A parcel smaller than a DEM pixel (no pixel centre inside) takes the pixel under its
representative point. A parcel outside the DEM, or over its nodata only, has no value (empty
in the file; L4A then gives it the median) and is counted in the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from affine import Affine
from pyproj import CRS

from capmon.errors import CRSError, InputError
from capmon.grid import PixelGrid

# metres per degree of latitude, and of longitude at the equator (WGS84, rounded)
_METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class TerrainAttributes:
    """Per parcel ``NewID``, ``ori_id``, ``elevation`` (m) and ``slope`` (degrees)."""

    table: pd.DataFrame
    outside: int
    """Parcels without a value (outside the DEM or over its nodata)."""
    dem: Path


def _read_dem(path: Path, parcels: gpd.GeoDataFrame) -> tuple[npt.NDArray[np.float64], PixelGrid]:
    """The DEM window around the parcels (nodata as NaN, one pixel of margin) and its grid."""
    import rasterio
    from rasterio import windows
    from rasterio.errors import RasterioIOError

    if not path.is_file():
        raise InputError(f"{path}: DEM not found")
    try:
        source = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"{path}: not a readable raster: {exc}") from exc
    with source:
        if source.crs is None:
            raise CRSError(f"{path}: the DEM has no CRS; capmon never guesses one")
        if source.count < 1:
            raise InputError(f"{path}: the DEM has no band")
        crs = CRS(source.crs.to_wkt())
        local = parcels.to_crs(crs)
        west, south, east, north = local.total_bounds
        whole = windows.Window(0, 0, source.width, source.height)
        wanted = windows.from_bounds(west, south, east, north, transform=source.transform)
        wanted = windows.Window(
            math.floor(wanted.col_off) - 1,
            math.floor(wanted.row_off) - 1,
            math.ceil(wanted.width) + 3,
            math.ceil(wanted.height) + 3,
        )
        try:
            window = wanted.intersection(whole)
        except rasterio.errors.WindowError:
            window = windows.Window(0, 0, 1, 1)  # no overlap: every parcel is outside
        try:
            band = source.read(1, window=window, masked=True)
        except RasterioIOError as exc:
            raise InputError(f"{path}: cannot decode the DEM (corrupt, truncated): {exc}") from exc
        transform = source.transform @ Affine.translation(int(window.col_off), int(window.row_off))
    values = np.ma.filled(band.astype(np.float64), np.nan)
    grid = PixelGrid(crs, transform, int(values.shape[1]), int(values.shape[0]))
    return values, grid


def _slope_degrees(elevation: npt.NDArray[np.float64], grid: PixelGrid) -> npt.NDArray[np.float64]:
    """Slope of every pixel (degrees) by central differences; NaN next to nodata."""
    if min(elevation.shape) < 2:
        return np.full(elevation.shape, np.nan)
    x_size, y_size = grid.resolution
    if grid.crs.is_geographic:
        rows = np.arange(elevation.shape[0]) + 0.5
        latitudes = grid.transform.f + rows * grid.transform.e
        dx = (x_size * _METRES_PER_DEGREE * np.cos(np.radians(latitudes)))[:, None]
        dy = y_size * _METRES_PER_DEGREE
    else:
        factor = grid.crs.axis_info[0].unit_conversion_factor if grid.crs.axis_info else 1.0
        dx, dy = x_size * factor, y_size * factor
    d_row, d_col = np.gradient(elevation)
    rise = np.hypot(d_col / dx, d_row / dy)
    return np.asarray(np.degrees(np.arctan(rise)), dtype=np.float64)


def terrain_attributes(parcels: gpd.GeoDataFrame, dem: str | Path) -> TerrainAttributes:
    """Mean elevation and slope of each parcel (``NewID``) from the DEM at ``dem``."""
    from capmon.mdb.labels import parcel_pixels
    from capmon.mdb.stats import parcel_statistics

    path = Path(dem)
    if parcels.crs is None:
        raise CRSError("the parcels have no CRS; capmon never guesses one")
    if "is_deleted" in parcels.columns:
        parcels = parcels[~parcels["is_deleted"].astype(bool)]
    parcels = parcels.sort_values("NewID", kind="stable").reset_index(drop=True)
    ids = parcels["NewID"].astype("int64").to_numpy()
    if len(ids) == 0:
        raise InputError("no parcel to compute terrain attributes for")
    elevation, grid = _read_dem(path, parcels)
    slope = _slope_degrees(elevation, grid)
    pixels = parcel_pixels(parcels.assign(NewID=ids), grid)
    means = {
        "elevation": parcel_statistics(pixels, elevation).mean,
        "slope": parcel_statistics(pixels, slope).mean,
    }
    # parcels without a pixel centre inside: the pixel under their representative point
    small = np.flatnonzero(pixels.pixels == 0)
    if len(small):
        local = parcels.iloc[small].to_crs(grid.crs)
        points = shapely.point_on_surface(local.geometry.to_numpy())
        x, y = shapely.get_x(points), shapely.get_y(points)
        inverse = ~grid.transform
        cols = np.floor(inverse.a * x + inverse.b * y + inverse.c).astype(np.int64)
        rows = np.floor(inverse.d * x + inverse.e * y + inverse.f).astype(np.int64)
        inside = (rows >= 0) & (rows < grid.height) & (cols >= 0) & (cols < grid.width)
        for name, raster in (("elevation", elevation), ("slope", slope)):
            column = means[name]
            column[small[inside]] = raster[rows[inside], cols[inside]]
    table = pd.DataFrame(
        {
            "NewID": ids,
            "ori_id": (
                parcels["ori_id"].astype("string").to_numpy()
                if "ori_id" in parcels.columns
                else pd.array([None] * len(ids), dtype="string")
            ),
            "elevation": np.round(means["elevation"], 2),
            "slope": np.round(means["slope"], 3),
        }
    )
    outside = int(table["elevation"].isna().sum())
    return TerrainAttributes(table, outside, path)


def write_attributes(table: pd.DataFrame, out: str | Path) -> Path:
    """Write an attributes table as CSV (``;``-separated) or Parquet, by suffix, atomically."""
    from capmon.workspace import atomic_path

    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError(f"{path}: write the attributes as .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            table.to_csv(tmp, sep=";", index=False)
        else:
            table.to_parquet(tmp, index=False)
    return path
