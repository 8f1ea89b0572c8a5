"""Pixel-level NDVI of chosen acquisitions, for the distribution and clustering methods.

Dates are chosen from the MDB: optical acquisitions inside ``months`` where the parcels are
clearest (mean valid fraction), at least ``min_gap_days`` apart, up to ``max_dates``. Each
chosen product is opened with :func:`capmon.sources.open_product`; NDVI is computed at 10 m
with :func:`capmon.signals.compute_signals`, invalid pixels (mask) are NaN, and the parcels'
pixels come from :func:`capmon.mdb.labels.parcel_pixels` (pixel-centre rule, inward buffer),
the same rule as the MDB's, computed once per grid.

With coherence as a clustering feature, the S1 coherence VV of a product close in time is put
on the optical 10 m grid (:func:`coherence_on_grid`): by integer-factor pixel replication of
the 20 m product when its grid is aligned with the optical one (same CRS, pixel edges on the
10 m lattice), else by bilinear reprojection (``rasterio.warp.reproject``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
from rasterio.warp import Resampling, reproject

from capmon.errors import InputError
from capmon.grid import PixelGrid
from capmon.mdb.labels import parcel_pixels
from capmon.mdb.stats import ParcelPixels
from capmon.processors.heterogeneity.methods import DateImage
from capmon.signals.compute import compute_signals
from capmon.sources import open_product

RESOLUTION = 10.0


def choose_dates(
    rows: pd.DataFrame,
    *,
    months: Sequence[int] = (4, 5, 6, 7, 8),
    max_dates: int = 6,
    min_gap_days: int = 15,
) -> list[date]:
    """The clearest optical acquisition dates (see the module docstring)."""
    ndvi = rows[rows["signal"] == "NDVI"]
    if ndvi.empty:
        return []
    dates = pd.to_datetime(ndvi["date"])
    clear = (ndvi["count"] / ndvi["pixels"].clip(lower=1)).groupby(dates).mean()
    in_months = pd.DatetimeIndex(clear.index).month.isin(list(months))
    clear = clear[in_months].sort_values(ascending=False)
    chosen: list[pd.Timestamp] = []
    for stamp, share in clear.items():
        day = pd.Timestamp(str(stamp))
        if share < 0.5:
            break
        if all(abs((day - other).days) >= min_gap_days for other in chosen):
            chosen.append(day)
        if len(chosen) >= max_dates:
            break
    return sorted(d.date() for d in chosen)


def product_images(
    products: Sequence[tuple[date, Path]],
    parcels: gpd.GeoDataFrame,
    *,
    buffer_m: float = 5.0,
) -> list[DateImage]:
    """NDVI and parcel pixels of each product (one per date)."""
    images = []
    cache: dict[tuple[str, tuple[float, ...], int, int], ParcelPixels] = {}
    for day, path in products:
        reader = open_product(path)
        if not reader.info.product_type.is_optical:
            raise InputError(f"{path} is not an optical product")
        grid: PixelGrid = reader.grid(RESOLUTION)
        key = (grid.crs.to_string(), tuple(grid.transform)[:6], grid.width, grid.height)
        if key not in cache:
            cache[key] = parcel_pixels(parcels, grid, buffer_m=buffer_m)
        pixels = cache[key]
        bands = {band: reader.read(band, RESOLUTION) for band in ("B04", "B08")}
        sensor = reader.info.sensor or "S2A"
        ndvi = compute_signals(["NDVI"], bands, sensor=sensor)["NDVI"]
        ndvi = np.where(reader.valid_mask(RESOLUTION), ndvi, np.nan).astype(np.float32)
        by_parcel = {
            int(pid): pixels.pixel_index[pixels.offsets[i] : pixels.offsets[i + 1]]
            for i, pid in enumerate(pixels.parcel_ids)
        }
        images.append(DateImage(day, ndvi, by_parcel))
    return images


def image_grid(path: Path) -> PixelGrid:
    """The 10 m grid of a product (for vectorising clusters)."""
    grid: PixelGrid = open_product(path).grid(RESOLUTION)
    return grid


def _aligned(source: PixelGrid, target: PixelGrid) -> bool:
    """Same CRS, north-up, source pixels an integer multiple of the target's, edges aligned."""
    if source.crs != target.crs:
        return False
    s, t = source.transform, target.transform
    if s.b or s.d or t.b or t.d or t.e >= 0 or s.e >= 0:
        return False
    factor = s.a / t.a
    if abs(factor - round(factor)) > 1e-6 or round(factor) < 1 or abs(s.e / t.e - factor) > 1e-6:
        return False
    columns, rows = (s.c - t.c) / t.a, (s.f - t.f) / t.e
    return abs(columns - round(columns)) < 1e-6 and abs(rows - round(rows)) < 1e-6


def coherence_on_grid(path: Path, grid: PixelGrid) -> npt.NDArray[np.float32]:
    """The coherence of an S1 COHE product on ``grid`` (NaN where it has no data)."""
    reader = open_product(path)
    if reader.info.product_type != "s1_cohe":
        raise InputError(f"{path} is not an S1 coherence product")
    band = reader.bands[0]
    native: PixelGrid = reader.grid()
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    if _aligned(native, grid):
        fine: PixelGrid = reader.grid(grid.resolution[0])
        values = reader.read(band, grid.resolution[0])
        col0 = round((fine.transform.c - grid.transform.c) / grid.transform.a)
        row0 = round((fine.transform.f - grid.transform.f) / grid.transform.e)
        r_lo, c_lo = max(row0, 0), max(col0, 0)
        r_hi = min(row0 + fine.height, grid.height)
        c_hi = min(col0 + fine.width, grid.width)
        if r_hi > r_lo and c_hi > c_lo:
            out[r_lo:r_hi, c_lo:c_hi] = values[r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0]
        return out
    reproject(
        source=reader.read(band),
        destination=out,
        src_transform=native.transform,
        src_crs=native.crs,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        src_nodata=np.nan,
        dst_nodata=np.nan,
        resampling=Resampling.bilinear,
    )
    return out
