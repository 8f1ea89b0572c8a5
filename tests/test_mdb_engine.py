"""The extraction engine against a straightforward reference and against real reference data."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS
from rasterio import features
from shapely.geometry import Polygon, box

from capmon.errors import CRSError, GeometryError, InputError
from capmon.grid import PixelGrid
from capmon.mdb.labels import parcel_pixels
from capmon.mdb.stats import ParcelPixels, parcel_statistics

UTM31 = CRS.from_epsg(32631)


def _reference(
    parcels: gpd.GeoDataFrame,
    grid: PixelGrid,
    band: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    buffer_m: float,
) -> dict[int, dict[str, float]]:
    """Each parcel rasterised alone, then plain numpy statistics."""
    result: dict[int, dict[str, float]] = {}
    for pid, geometry in zip(parcels["NewID"], parcels.to_crs(grid.crs).geometry, strict=True):
        shape = geometry.buffer(-buffer_m) if buffer_m else geometry
        inside = np.zeros(grid.shape, dtype=bool)
        if not shape.is_empty:
            inside = features.rasterize(
                [(shape, 1)], out_shape=grid.shape, transform=grid.transform, fill=0
            ).astype(bool)
        values = band[inside & valid & np.isfinite(band)].astype(np.float64)
        row = {"pixels": float(inside.sum()), "count": float(len(values))}
        if len(values):
            row |= {
                "mean": float(np.mean(values)),
                "min": float(values.min()),
                "max": float(values.max()),
                "median": float(np.median(values)),
                "p25": float(np.percentile(values, 25)),
                "p75": float(np.percentile(values, 75)),
            }
        if len(values) > 1:
            row["stdev"] = float(np.std(values, ddof=1))
        result[int(pid)] = row
    return result


@st.composite
def scenes(draw: st.DrawFn) -> tuple[gpd.GeoDataFrame, PixelGrid, np.ndarray, np.ndarray, float]:
    width = draw(st.integers(8, 40))
    height = draw(st.integers(8, 40))
    res = draw(st.sampled_from([10.0, 20.0]))
    grid = PixelGrid(UTM31, Affine(res, 0, 600_000, 0, -res, 5_700_000), width, height)
    n = draw(st.integers(1, 12))
    polygons = []
    for _ in range(n):
        x0 = draw(st.floats(-3 * res, width * res))
        y0 = draw(st.floats(-3 * res, height * res))
        w = draw(st.floats(res * 0.5, res * 15))
        h = draw(st.floats(res * 0.5, res * 15))
        skew = draw(st.floats(-0.9, 0.9)) * h
        polygons.append(
            Polygon(
                [
                    (600_000 + x0, 5_700_000 - y0),
                    (600_000 + x0 + w, 5_700_000 - y0 + skew),
                    (600_000 + x0 + w, 5_700_000 - y0 - h),
                    (600_000 + x0, 5_700_000 - y0 - h),
                ]
            )
        )
    ids = draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n, unique=True))
    parcels = gpd.GeoDataFrame({"NewID": ids}, geometry=polygons, crs=UTM31)
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    band = rng.normal(0.5, 0.3, size=(height, width)).astype(np.float32)
    if draw(st.booleans()):
        band = np.round(band * 4).astype(np.float32)  # many ties
    band[rng.random((height, width)) < 0.05] = np.nan
    valid = rng.random((height, width)) > draw(st.sampled_from([0.0, 0.3, 0.9]))
    buffer_m = draw(st.sampled_from([0.0, res / 2, res]))
    return parcels, grid, band, valid, buffer_m


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_engine_matches_the_straightforward_reference(
    scene: tuple[gpd.GeoDataFrame, PixelGrid, np.ndarray, np.ndarray, float],
) -> None:
    parcels, grid, band, valid, buffer_m = scene
    pixels = parcel_pixels(parcels, grid, buffer_m=buffer_m)
    stats = parcel_statistics(pixels, band, valid)
    expected = _reference(parcels, grid, band, valid, buffer_m)
    assert list(stats.parcel_ids) == sorted(expected)
    for i, pid in enumerate(stats.parcel_ids):
        row = expected[int(pid)]
        assert stats.pixels[i] == row["pixels"]
        assert stats.count[i] == row["count"]
        for name in ("mean", "min", "max", "median", "p25", "p75", "stdev"):
            got = float(getattr(stats, name)[i])
            if name in row:
                assert got == pytest.approx(row[name], rel=1e-12, abs=1e-12), name
            else:
                assert np.isnan(got), name


def test_overlapping_parcels_each_get_all_their_pixels() -> None:
    grid = PixelGrid(UTM31, Affine(10, 0, 0, 0, -10, 100), 10, 10)
    parcels = gpd.GeoDataFrame(
        {"NewID": [7, 3]}, geometry=[box(0, 0, 60, 100), box(40, 0, 100, 100)], crs=UTM31
    )
    pixels = parcel_pixels(parcels, grid)
    assert list(pixels.parcel_ids) == [3, 7]
    assert list(pixels.pixels) == [60, 60]
    band = np.tile(np.arange(10, dtype=np.float32), (10, 1))
    stats = parcel_statistics(pixels, band)
    assert stats.mean.tolist() == [6.5, 2.5]


def test_kept_follows_the_sen4cap_rule() -> None:
    grid = PixelGrid(UTM31, Affine(10, 0, 0, 0, -10, 100), 10, 10)
    parcels = gpd.GeoDataFrame({"NewID": [1]}, geometry=[box(0, 0, 100, 100)], crs=UTM31)
    pixels = parcel_pixels(parcels, grid)
    band = np.ones((10, 10), dtype=np.float32)
    valid = np.zeros((10, 10), dtype=bool)
    valid.ravel()[:10] = True  # 10 % of 100 pixels: not more than 10 %
    assert not parcel_statistics(pixels, band, valid).kept()[0]
    valid.ravel()[10] = True
    assert parcel_statistics(pixels, band, valid).kept()[0]
    valid[:] = False
    valid.ravel()[0] = True
    assert not parcel_statistics(pixels, band, valid).kept(min_valid_fraction=0.0)[0]


def test_parcels_are_reprojected_to_the_grid_and_errors_are_explicit() -> None:
    grid = PixelGrid(UTM31, Affine(10, 0, 600_000, 0, -10, 5_700_000), 20, 20)
    square = box(600_023, 5_699_877, 600_123, 5_699_977)
    in_utm = gpd.GeoDataFrame({"NewID": [1]}, geometry=[square], crs=UTM31)
    in_wgs84 = in_utm.to_crs(4326)
    assert parcel_pixels(in_wgs84, grid).pixels.tolist() == [100]
    assert parcel_pixels(in_utm, grid, buffer_m=5).pixels.tolist() == [81]
    with pytest.raises(CRSError, match="no CRS"):
        parcel_pixels(gpd.GeoDataFrame({"NewID": [1]}, geometry=[square]), grid)
    bowtie = Polygon(
        [(600_000, 5_700_000), (600_100, 5_699_900), (600_100, 5_700_000), (600_000, 5_699_900)]
    )
    with pytest.raises(GeometryError, match="1 invalid parcel geometries: 1 "):
        parcel_pixels(gpd.GeoDataFrame({"NewID": [1]}, geometry=[bowtie], crs=UTM31), grid)
    with pytest.raises(InputError, match="must be unique"):
        parcel_pixels(
            gpd.GeoDataFrame({"NewID": [1, 1]}, geometry=[square, square], crs=UTM31), grid
        )
    geographic = PixelGrid(CRS.from_epsg(4326), Affine(1e-4, 0, 3, 0, -1e-4, 51), 10, 10)
    with pytest.raises(CRSError, match="projected grid CRS"):
        parcel_pixels(in_utm, geographic, buffer_m=5)
    pixels = ParcelPixels(np.array([1]), np.array([0, 1]), np.array([0]), (2, 2))
    with pytest.raises(InputError, match="band shape"):
        parcel_statistics(pixels, np.zeros((3, 3), dtype=np.float32))


def test_matches_the_eolearn_reference_statistics(shared_data: Path) -> None:
    """81 real land-use polygons x 68 dates of NDVI (pixel-centre rule, IS_VALID mask)."""
    base = shared_data / "eolearn_testeopatch"
    parcels = gpd.read_file(base / "example_data/TestEOPatch/vector_timeless/LULC.gpkg")
    parcels["NewID"] = np.arange(len(parcels))
    with rasterio.open(base / "derived/NDVI_stack_EPSG32633.tif") as src:
        grid = PixelGrid(src.crs, src.transform, src.width, src.height)
        ndvi = src.read()
        dates = list(src.descriptions)
    with rasterio.open(base / "derived/IS_VALID_stack_EPSG32633.tif") as src:
        valid = src.read().astype(bool)
    reference = pd.read_csv(base / "derived/reference_lulc_polygon_ndvi.csv")
    pixels = parcel_pixels(parcels, grid)
    checked = 0
    for t, date in enumerate(dates):
        everything = parcel_statistics(pixels, ndvi[t])
        masked = parcel_statistics(pixels, ndvi[t], valid[t])
        for row in reference[reference["date"] == date].itertuples():
            i = int(np.searchsorted(pixels.parcel_ids, row.poly_row))
            assert pixels.pixels[i] == row.n_pixels
            assert masked.count[i] == row.n_valid
            assert everything.mean[i] == pytest.approx(row.ndvi_mean_all, abs=1e-5)
            if row.n_valid == 0:
                assert np.isnan(masked.mean[i])  # a date with no valid pixel is no observation
                continue
            assert masked.mean[i] == pytest.approx(row.ndvi_mean_valid, abs=1e-5)
            assert masked.median[i] == pytest.approx(row.ndvi_median_valid, abs=1e-5)
            checked += 1
    assert checked > 3000
