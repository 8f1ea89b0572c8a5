"""A synthetic Sentinel-2-sized tile for the benchmark: fields, band files and an MDB.

Fields are a rotated tessellation of strips cut into 0.5-5 ha fields, each shrunk by a random
field margin (2-8 m per side, irregular corners and edges), so parcels never overlap. A random
subset of the fields becomes the parcel set. Band files hold per-field reflectances (uint16
digital numbers) plus pixel noise on a blocky background, like a red band of an L2A product.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio import features

from capmon.errors import InputError
from capmon.grid import s2_tile
from capmon.mdb.stats import ParcelStatistics
from capmon.mdb.store import Acquisition, MdbManifest, MdbStore, statistics_table

MIN_FIELD_HA = 0.5
MAX_FIELD_HA = 5.0
_ROW_HEIGHT_M = (70.0, 250.0)
_MARGIN_M = (2.0, 8.0)
_MIN_WIDTH_M = 30.0
_ANGLE_DEG = 17.0
MDB_SIGNALS = (
    "NDVI",
    "NDWI",
    "BRIGHTNESS",
    "BSI",
    "NDTILL",
    "LAI",
    "FAPAR",
    "FCOVER",
    "B04",
    "B08",
)
Advance = Callable[[int], None]


@dataclass(frozen=True)
class TileGrid:
    """The benchmark's raster grid: the upper-left ``size`` x ``size`` pixels of a real tile."""

    tile: str
    size: int
    crs: CRS
    transform: Affine

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        west, north = self.transform.c, self.transform.f
        extent = self.size * self.transform.a
        return (west, north - extent, west + extent, north)


def tile_grid(tile: str, size: int) -> TileGrid:
    """The 10 m grid of ``tile`` cut to ``size`` pixels (10980 is a whole tile)."""
    if not 100 <= size <= 10980:
        raise InputError(f"--size must be between 100 and 10980 pixels, not {size}")
    s2 = s2_tile(tile)
    return TileGrid(s2.name, size, CRS.from_epsg(s2.epsg), s2.transform(10))


def make_parcels(grid: TileGrid, count: int, seed: int) -> gpd.GeoDataFrame:
    """``count`` non-overlapping fields of 0.5-5 ha inside ``grid`` (column ``NewID``)."""
    if count < 1:
        raise InputError(f"--parcels must be at least 1, not {count}")
    rng = np.random.default_rng(seed)
    west, south, east, north = grid.bounds
    centre = np.array([(west + east) / 2, (south + north) / 2])
    half = (east - west) / 2 * math.sqrt(2) + _ROW_HEIGHT_M[1]
    cells = _strip_cells(rng, half)  # (x0, y0, x1, y1) around the centre, unrotated frame
    angle = math.radians(_ANGLE_DEG)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    corners = np.stack(
        [cells[:, [0, 1]], cells[:, [2, 1]], cells[:, [2, 3]], cells[:, [0, 3]]], axis=1
    )
    world = corners @ rotation.T + centre
    inside = (
        (world[..., 0] > west).all(axis=1)
        & (world[..., 0] < east).all(axis=1)
        & (world[..., 1] > south).all(axis=1)
        & (world[..., 1] < north).all(axis=1)
    )
    available = np.flatnonzero(inside)
    rings = _field_rings(rng, cells[available]) @ rotation.T + centre
    polygons = shapely.polygons(rings)
    hectares = shapely.area(polygons) / 1e4
    sized = (hectares >= MIN_FIELD_HA) & (hectares <= MAX_FIELD_HA)
    polygons, available = polygons[sized], available[sized]
    if len(available) < count:
        raise InputError(
            f"a {grid.size} px tile holds only {len(available)} fields of "
            f"{MIN_FIELD_HA}-{MAX_FIELD_HA} ha; ask for fewer parcels or a larger --size"
        )
    chosen = np.sort(rng.choice(len(available), size=count, replace=False))
    polygons = polygons[chosen]
    ids = rng.permutation(count).astype(np.int64) + 1
    return gpd.GeoDataFrame({"NewID": ids}, geometry=polygons, crs=grid.crs)


def _strip_cells(rng: np.random.Generator, half: float) -> npt.NDArray[np.float64]:
    """Rows of strips over [-half, half]^2, each cut into cells of one field plus margins."""
    rows: list[npt.NDArray[np.float64]] = []
    y = -half
    margin = sum(_MARGIN_M)  # mean margin on both sides of a field
    while y < half:
        height = float(rng.uniform(*_ROW_HEIGHT_M))
        inner = height - margin
        mean_width = 2.75e4 / inner + margin
        n = int(2 * half / mean_width * 2) + 16
        area = rng.uniform(MIN_FIELD_HA, MAX_FIELD_HA, n) * 1e4
        widths = np.maximum(area / inner, _MIN_WIDTH_M) + margin
        edges = -half + np.concatenate([[0.0], np.cumsum(widths)])
        edges = edges[edges <= half]
        row = np.empty((len(edges) - 1, 4))
        row[:, 0], row[:, 2] = edges[:-1], edges[1:]
        row[:, 1], row[:, 3] = y, y + height
        rows.append(row)
        y += height
    return np.concatenate(rows)


def _field_rings(
    rng: np.random.Generator, cells: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Closed 9-point rings: corners pulled in by the margin, edge midpoints jittered."""
    n = len(cells)
    x0, y0, x1, y1 = cells.T
    pull = rng.uniform(*_MARGIN_M, size=(n, 4, 2))
    corners = np.stack(
        [
            np.stack([x0 + pull[:, 0, 0], y0 + pull[:, 0, 1]], axis=1),
            np.stack([x1 - pull[:, 1, 0], y0 + pull[:, 1, 1]], axis=1),
            np.stack([x1 - pull[:, 2, 0], y1 - pull[:, 2, 1]], axis=1),
            np.stack([x0 + pull[:, 3, 0], y1 - pull[:, 3, 1]], axis=1),
        ],
        axis=1,
    )
    mids = (corners + np.roll(corners, -1, axis=1)) / 2
    inward = np.array([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]])  # per edge
    shift = rng.uniform(-1.5, 1.5, size=(n, 4, 1)) * inward
    mids = mids + shift
    ring = np.empty((n, 9, 2))
    ring[:, 0:8:2] = corners
    ring[:, 1:8:2] = mids
    ring[:, 8] = corners[:, 0]
    return ring


def write_parcels(parcels: gpd.GeoDataFrame, path: Path) -> None:
    """The parcel set as GeoParquet."""
    parcels.to_parquet(path)


def band_files(
    grid: TileGrid,
    parcels: gpd.GeoDataFrame,
    folder: Path,
    dates: int,
    *,
    seed: int,
    jp2: bool,
    advance: Advance | None = None,
) -> tuple[list[Path], Path | None]:
    """One deflate GeoTIFF per date (and the first date as lossless JPEG2000 when ``jp2``)."""
    rng = np.random.default_rng(seed + 1)
    shape = (grid.size, grid.size)
    labels = features.rasterize(
        zip(parcels.geometry.to_numpy(), np.arange(1, len(parcels) + 1).tolist(), strict=True),
        out_shape=shape,
        transform=grid.transform,
        fill=0,
        all_touched=False,
        dtype="int32",
    )
    block = 16
    coarse = -(-grid.size // block)
    profile = {
        "driver": "GTiff",
        "width": grid.size,
        "height": grid.size,
        "count": 1,
        "dtype": "uint16",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "num_threads": "ALL_CPUS",
    }
    paths: list[Path] = []
    jp2_path: Path | None = None
    for date in range(dates):
        background = rng.integers(400, 2600, size=(coarse, coarse), dtype=np.uint16)
        background = np.repeat(np.repeat(background, block, 0), block, 1)[: grid.size, : grid.size]
        level = rng.uniform(300, 3500, size=len(parcels) + 1).astype(np.float32)
        value = np.where(labels > 0, level[labels], background.astype(np.float32))
        del background
        noise = rng.standard_normal(shape, dtype=np.float32)
        noise *= np.float32(0.04) * value
        value += noise
        del noise
        band = np.clip(np.rint(value), 1, 65535).astype(np.uint16)
        del value
        path = folder / f"B04_{date:03d}.tif"
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dst:
            dst.write(band, 1)
        paths.append(path)
        if jp2 and date == 0:
            jp2_path = folder / "B04_000.jp2"
            write_jp2(band, grid, jp2_path)
        if advance is not None:
            advance(1)
    return paths, jp2_path


def write_jp2(band: npt.NDArray[np.uint16], grid: TileGrid, path: Path) -> None:
    """Lossless JPEG2000 with 1024 px tiles, as in Sentinel-2 L2A products."""
    profile = {
        "driver": "JP2OpenJPEG",
        "width": grid.size,
        "height": grid.size,
        "count": 1,
        "dtype": "uint16",
        "crs": grid.crs,
        "transform": grid.transform,
        "blockxsize": 1024,
        "blockysize": 1024,
        "quality": 100,
        "reversible": "YES",
        "resolutions": 6,
        "num_threads": "ALL_CPUS",
    }
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dst:
        dst.write(band, 1)


def build_mdb(
    root: Path,
    parcels: int,
    dates: int,
    signals: int,
    *,
    seed: int,
    advance: Advance | None = None,
) -> MdbStore:
    """An MDB of ``parcels`` x ``dates`` x ``signals`` rows with smooth per-parcel curves."""
    if not 1 <= signals <= len(MDB_SIGNALS):
        raise InputError(f"--mdb-signals must be between 1 and {len(MDB_SIGNALS)}")
    rng = np.random.default_rng(seed + 2)
    store = MdbStore(root)
    store.initialise(
        MdbManifest(
            site="bench",
            parcel_set="bench",
            declaration_set_id=None,
            optical_buffer_m=5.0,
            sar_buffer_m=10.0,
            min_count=2,
            min_valid_fraction=0.1,
            engine_version="bench",
        )
    )
    ids = np.arange(1, parcels + 1, dtype=np.int64)
    pixels = rng.integers(40, 500, size=parcels).astype(np.int64)
    # A double-logistic NDVI curve per parcel: base, amplitude, green-up and senescence days.
    base = rng.uniform(0.1, 0.25, parcels)
    amplitude = rng.uniform(0.3, 0.65, parcels)
    rise = rng.uniform(80, 160, parcels)
    fall = rise + rng.uniform(60, 140, parcels)
    slope = rng.uniform(0.05, 0.15, parcels)
    heterogeneity = rng.uniform(0.02, 0.12, parcels)
    start = dt.date(2024, 1, 3)
    for d in range(dates):
        day = 365.0 * d / max(dates, 1)
        date = start + dt.timedelta(days=round(day))
        sensor = "S2A" if d % 2 == 0 else "S2B"
        product_id = f"{sensor}_MSIL2A_{date:%Y%m%d}T105031_N0510_R051_T31UFS_{date:%Y%m%d}T150000"
        acquisition = Acquisition(product_id, sensor, date, tile="31UFS")
        ndvi = base + amplitude * (
            1 / (1 + np.exp(-slope * (day - rise))) - 1 / (1 + np.exp(-slope * (day - fall)))
        )
        valid = np.clip(rng.normal(0.9, 0.15, parcels), 0.12, 1.0)
        count = np.maximum(np.rint(pixels * valid), 2).astype(np.int64)
        tables = []
        for s in range(signals):
            scale, offset = 1.0 + 0.3 * s, 0.05 * s
            mean = (ndvi * scale + offset) * (1 + rng.normal(0, 0.01, parcels))
            spread = heterogeneity * scale * rng.uniform(0.8, 1.2, parcels)
            stats = ParcelStatistics(
                parcel_ids=ids,
                pixels=pixels,
                count=count,
                mean=mean,
                stdev=spread,
                min=mean - spread * rng.uniform(1.5, 3, parcels),
                max=mean + spread * rng.uniform(1.5, 3, parcels),
                median=mean + spread * rng.normal(0, 0.1, parcels),
                p25=mean - spread * rng.uniform(0.5, 0.8, parcels),
                p75=mean + spread * rng.uniform(0.5, 0.8, parcels),
            )
            tables.append(statistics_table(acquisition, MDB_SIGNALS[s], stats))
        store.write_product(product_id, tables)
        if advance is not None:
            advance(1)
    return store
