"""Pixel-level NDVI of chosen acquisitions, for the distribution and clustering methods.

Dates are chosen from the MDB: optical acquisitions inside ``months`` where the parcels are
clearest (mean valid fraction), at least ``min_gap_days`` apart, up to ``max_dates``. Each
chosen product is opened with :func:`capmon.sources.open_product`; NDVI is computed at 10 m
with :func:`capmon.signals.compute_signals`, invalid pixels (mask) are NaN, and the parcels'
pixels come from :func:`capmon.mdb.labels.parcel_pixels` (pixel-centre rule, inward buffer),
the same rule as the MDB's, computed once per grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.mdb.labels import PixelGrid, parcel_pixels
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
