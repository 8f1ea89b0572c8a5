"""STAC items read by ``capmon.sources.stac``: single- and multi-band assets, catalogs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine

from capmon.errors import InputError
from capmon.mdb.stats import ParcelPixels, parcel_statistics
from capmon.signals import compute_signals, plan_signals
from capmon.signals.masks import SclMaskConfig, scl_valid
from capmon.sources import MaskConfig, ProductType, find_products, open_product
from capmon.sources.stac import StacReader
from tests.test_sources_helpers import (
    NODATA_PLACES,
    S2_STACK,
    SENSING,
    SIZE,
    TILE,
    landsat_product,
    multiband_s2_item,
    sen2cor_product,
    stac_item,
    write_tif,
)

_COMMON = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B8A": "nir08"}


def _s2_item(tmp_path: Path, *, stac_version: str = "1.0.0") -> tuple[Path, Path]:
    """A Sentinel-2 item whose assets are the band files of a Sen2Cor COG product."""
    safe = sen2cor_product(tmp_path / "data", fmt="cog").path
    item_path = tmp_path / "items" / "s2" / "item.json"
    assets: dict[str, Any] = {}
    for band, common in _COMMON.items():
        resolution = 10 if band != "B8A" else 20
        file = next(safe.rglob(f"*_{band}_{resolution}m.tif"))
        href = os.path.relpath(file, item_path.parent)
        if stac_version == "1.0.0":
            assets[common] = {
                "href": href,
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data", "reflectance"],
                "eo:bands": [{"name": band, "common_name": common}],
                "raster:bands": [
                    {"nodata": 0, "scale": 0.0001, "offset": -0.1, "spatial_resolution": resolution}
                ],
            }
        else:
            assets[common] = {
                "href": href,
                "roles": ["data"],
                "bands": [
                    {"name": band, "eo:common_name": common, "nodata": 0, "scale": 0.0001,
                     "offset": -0.1}
                ],
            }  # fmt: skip
    scl = next(safe.rglob("*_SCL_20m.tif"))
    assets["scl"] = {"href": os.path.relpath(scl, item_path.parent), "roles": ["data"]}
    tci = next(safe.rglob("*_TCI_10m.tif"))
    assets["visual"] = {
        "href": os.path.relpath(tci, item_path.parent),
        "roles": ["visual"],
        "eo:bands": [{"common_name": c} for c in ("red", "green", "blue")],
    }
    stac_item(
        item_path,
        item_id="S2B_31UFS_20240503_0_L2A",
        assets=assets,
        platform="sentinel-2b",
        stac_version=stac_version,
        properties={
            "s2:mgrs_tile": "31UFS",
            "sat:relative_orbit": 51,
            "sat:orbit_state": "descending",
            "s2:processing_baseline": "05.10",
            "view:sun_elevation": 54.5,
            "view:sun_azimuth": 160.25,
            "eo:cloud_cover": 10.0,
        },
    )
    return item_path, safe


@pytest.mark.parametrize("stac_version", ["1.0.0", "1.1.0"])
def test_sentinel2_item_with_single_band_assets(tmp_path: Path, stac_version: str) -> None:
    item_path, safe = _s2_item(tmp_path, stac_version=stac_version)
    reader = open_product(item_path)
    assert isinstance(reader, StacReader)
    info = reader.info
    assert info.name == "S2B_31UFS_20240503_0_L2A"
    assert info.product_type is ProductType.L2A
    assert (info.sensor, info.tile, info.relative_orbit) == ("S2B", "31UFS", 51)
    assert (info.orbit_direction, info.processing_baseline) == ("DESC", "05.10")
    assert info.acquired_at == SENSING
    assert info.properties["mask"] == "scl"
    assert info.properties["assets"]["B04"] == "red"  # not the visual (TCI) asset
    assert reader.bands == ("B02", "B03", "B04", "B08", "B8A")
    safe_reader = open_product(safe)
    assert reader.grid(10) == safe_reader.grid(10)
    for band in reader.bands:
        np.testing.assert_array_equal(reader.read(band, 10), safe_reader.read(band, 10))
    np.testing.assert_array_equal(reader.valid_mask(10), safe_reader.valid_mask(10))
    angles = reader.angles()
    assert angles.sun_zenith == pytest.approx(35.5)
    assert angles.view_zenith == 0.0


def test_landsat_item_with_a_multi_band_asset(tmp_path: Path) -> None:
    written = landsat_product(tmp_path / "data")
    stack = np.stack([written.dn[4], written.dn[5], written.dn[6]])
    data = tmp_path / "items" / "stack.tif"
    data.parent.mkdir(parents=True)
    write_tif(data, stack, written.transform, TILE.epsg, 0)
    item_path = stac_item(
        tmp_path / "items" / "landsat.json",
        item_id="LC09_L2SP_198025_20240503_02_T1",
        platform="landsat-9",
        stac_version="1.1.0",
        properties={"landsat:wrs_path": "198", "landsat:wrs_row": "025"},
        assets={
            "reflectance": {
                "href": "stack.tif",
                "roles": ["data"],
                "bands": [
                    {"name": name, "eo:common_name": common, "nodata": 0,
                     "scale": 2.75e-05, "offset": -0.2}
                    for name, common in (("SR_B4", "red"), ("SR_B5", "nir08"),
                                         ("SR_B6", "swir16"))
                ],
            }
        },
    )  # fmt: skip
    reader = open_product(item_path)
    info = reader.info
    assert info.product_type is ProductType.LANDSAT_L2
    assert (info.sensor, info.tile, info.relative_orbit) == ("L9", "198025", 198)
    assert reader.bands == ("B04", "B08", "B8A", "B11")
    landsat = open_product(written.path)
    for band in reader.bands:
        np.testing.assert_array_equal(reader.read(band), landsat.read(band), err_msg=band)
    assert info.properties["mask"] == "none"
    assert reader.mask_source is None
    with pytest.raises(
        InputError,
        match=r"LC09_L2SP_198025_20240503_02_T1 has no cloud mask.*"
        r"qa_pixel \(assets: reflectance\)",
    ):
        reader.valid_mask()
    unmasked = MaskConfig(allow_unmasked=True)
    assert reader.require_mask(unmasked) is None
    np.testing.assert_array_equal(reader.valid_mask(None, unmasked), ~np.isnan(landsat.read("B04")))
    reader.check()


def test_multi_band_asset_with_the_wrong_band_count(tmp_path: Path) -> None:
    data = tmp_path / "stack.tif"
    transform = TILE.transform(10) @ Affine.translation(60, 120)
    write_tif(data, np.ones((3, SIZE, SIZE), np.uint16), transform, TILE.epsg, 0)
    item_path = stac_item(
        tmp_path / "item.json",
        item_id="four-bands",
        assets={
            "stack": {
                "href": "./stack.tif",
                "eo:bands": [{"common_name": c} for c in ("blue", "green", "red", "nir")],
            }
        },
    )
    reader = open_product(item_path)
    with pytest.raises(InputError, match=r"stack\.tif has 3 band\(s\), the metadata declares 4"):
        reader.check()
    with pytest.raises(InputError, match=r"band B02 of product four-bands"):
        reader.read("B02")


def test_item_without_datetime_is_refused(tmp_path: Path) -> None:
    item_path = stac_item(
        tmp_path / "nodate.json",
        item_id="nodate",
        when=None,
        properties={"start_datetime": "2024-05-01T00:00:00Z"},
        assets={"red": {"href": "red.tif", "eo:bands": [{"common_name": "red"}]}},
    )
    with pytest.raises(InputError, match=r"nodate\.json has no datetime"):
        open_product(item_path)


def test_remote_assets_and_unknown_platforms_are_refused(tmp_path: Path) -> None:
    remote = stac_item(
        tmp_path / "remote.json",
        item_id="remote",
        assets={
            "red": {"href": "https://example.com/red.tif", "eo:bands": [{"common_name": "red"}]}
        },
    )
    with pytest.raises(InputError, match="remote"):
        open_product(remote)
    spot = stac_item(
        tmp_path / "spot.json",
        item_id="spot",
        platform="spot-6",
        assets={"red": {"href": "red.tif", "eo:bands": [{"common_name": "red"}]}},
    )
    with pytest.raises(InputError, match="unknown platform 'spot-6'"):
        open_product(spot)


def test_static_catalog_is_walked_locally(tmp_path: Path) -> None:
    item_path, _ = _s2_item(tmp_path)
    root = tmp_path / "catalog"
    sub = root / "sub"
    sub.mkdir(parents=True)
    (root / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "root",
                "description": "test catalog",
                "links": [{"rel": "child", "href": "./sub/catalog.json"}],
            }
        ),
        encoding="utf-8",
    )
    (sub / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "sub",
                "description": "sub catalog",
                "links": [
                    {"rel": "item", "href": os.path.relpath(item_path, sub)},
                ],
            }
        ),
        encoding="utf-8",
    )
    found = find_products([root / "catalog.json"])
    assert found == [item_path.resolve()]
    assert open_product(found[0]).info.name == "S2B_31UFS_20240503_0_L2A"
    with pytest.raises(InputError, match="STAC catalog"):
        open_product(root / "catalog.json")


# --------------------------------------------------------------------------------------------
# Masks and no data inside multi-band assets (issue 15, defect 3)


def _one_parcel(shape: tuple[int, int]) -> ParcelPixels:
    """Every pixel of the window as one parcel."""
    size = shape[0] * shape[1]
    return ParcelPixels(
        np.array([1], np.int64), np.array([0, size], np.int64), np.arange(size), shape
    )


@pytest.mark.parametrize("nodata_at", NODATA_PLACES)
def test_scl_band_inside_a_multi_band_asset_masks_clouds(tmp_path: Path, nodata_at: str) -> None:
    """One asset with the 13 bands and SCL: SCL is found and masks, the declared fill value
    (wherever it is declared) is no data; before, the item was read with no mask at all."""
    written = multiband_s2_item(tmp_path, nodata_at=nodata_at)
    reader = open_product(written.item)
    assert reader.bands == S2_STACK[:-1]  # the 12 bands of an L2A product (no B10)
    assert reader.mask_source == "SCL"
    assert reader.info.properties["mask"] == "scl"
    assert reader.require_mask() == "SCL"
    for band in ("B02", "B04", "B8A", "B12"):
        values = reader.read(band, 10)
        assert np.isnan(values[written.filled]).all(), band
        np.testing.assert_array_equal(
            values[~written.filled], written.reflectance[band][~written.filled]
        )
    classes = np.where(written.filled, 0, written.scl).astype(np.uint8)
    expected = scl_valid(classes) & ~written.filled
    np.testing.assert_array_equal(reader.valid_mask(10), expected)
    assert 0 < expected.sum() < expected.size - written.filled.sum()  # clouds are masked
    # --scl-invalid-classes / --valid-scl change the result
    only_vegetation = MaskConfig(scl=SclMaskConfig.from_valid_classes({4}))
    np.testing.assert_array_equal(
        reader.valid_mask(10, only_vegetation), (classes == 4) & ~written.filled
    )
    nothing_but_no_data = MaskConfig(scl=SclMaskConfig(invalid_classes=frozenset({0})))
    np.testing.assert_array_equal(
        reader.valid_mask(10, nothing_but_no_data), (classes != 0) & ~written.filled
    )
    # at 20 m a pixel is valid only when its four 10 m pixels are
    coarse = reader.valid_mask(20)
    assert coarse.shape == (SIZE // 2, SIZE // 2)
    np.testing.assert_array_equal(coarse, expected.reshape(30, 2, 30, 2).all(axis=(1, 3)))


def test_undeclared_fill_values_never_reach_statistics(tmp_path: Path) -> None:
    """Fill values that no metadata declares, under an SCL that says "vegetation": the
    physical ranges keep them out of every statistic (before: a mean of about 1e20)."""
    written = multiband_s2_item(tmp_path, nodata_at=None, scl_at_fill=4.0)
    reader = open_product(written.item)
    b04 = reader.read("B04", 10)
    assert (b04[written.filled] == np.float32(1e20)).all()  # the reader gives what is stored
    valid = reader.valid_mask(10)
    assert valid[written.filled].all()  # and the mask does not know
    bands = {band: reader.read(band, 10) for band in ("B04", "B08")}
    signals = compute_signals(["B04", "B08", "NDVI"], bands, sensor="S2A")
    pixels = _one_parcel(b04.shape)
    clean = valid & ~written.filled
    for name, values in signals.items():
        assert np.isnan(values[written.filled]).all(), name
        stats = parcel_statistics(pixels, values, valid)
        assert stats.count[0] == clean.sum(), name
        assert stats.max[0] <= 1.0, name
        assert stats.mean[0] == pytest.approx(float(values[clean].astype(np.float64).mean()))


def test_item_without_a_mask_is_an_error_unless_allowed(tmp_path: Path) -> None:
    written = multiband_s2_item(tmp_path, with_scl=False, item_id="S2A_NO_MASK")
    reader = open_product(written.item)
    assert reader.mask_source is None
    assert reader.info.properties["mask"] == "none"
    message = (
        r"S2A_NO_MASK has no cloud mask: .*S2A_NO_MASK\.json has no asset and no band named scl"
    )
    with pytest.raises(InputError, match=message):
        reader.require_mask()
    with pytest.raises(InputError, match=message):
        reader.valid_mask(10)
    allowed = MaskConfig(allow_unmasked=True)
    assert reader.require_mask(allowed) is None
    np.testing.assert_array_equal(reader.valid_mask(10, allowed), ~written.filled)


def test_per_band_assets_without_b08(tmp_path: Path) -> None:
    """Earth Search-like per-band assets with no ``nir``: NDVI is skipped, not the product;
    NDVI_B8A, B04 and NDWI_B8A are computed (issue 15, defect 4)."""
    item_path, safe = _s2_item(tmp_path)
    item = json.loads(item_path.read_text(encoding="utf-8"))
    del item["assets"]["nir"]
    swir = next(safe.rglob("*_B11_20m.tif"))
    item["assets"]["swir16"] = {
        "href": os.path.relpath(swir, item_path.parent),
        "type": "image/tiff; application=geotiff",
        "eo:bands": [{"name": "B11", "common_name": "swir16"}],
        "raster:bands": [{"nodata": 0, "scale": 0.0001, "offset": -0.1, "spatial_resolution": 20}],
    }
    item_path.write_text(json.dumps(item), encoding="utf-8")
    reader = open_product(item_path)
    assert not reader.has_band("B08")
    assert reader.has_band("B8A")
    plan = plan_signals(["NDVI", "NDVI_B8A", "B04", "NDWI_B8A", "B05"], "S2B", reader.bands)
    assert plan.signals == ("NDVI_B8A", "B04", "NDWI_B8A")
    assert plan.bands == ("B04", "B11", "B8A")
    assert plan.skipped == {
        "NDVI": "the product has no band B08",
        "B05": "the product has no band B05",
    }
    bands = {band: reader.read(band, 10) for band in plan.bands}
    out = compute_signals(plan.signals, bands, sensor="S2B")
    safe_reader = open_product(safe)
    b04, b8a = safe_reader.read("B04", 10), safe_reader.read("B8A", 10)
    np.testing.assert_allclose(out["NDVI_B8A"], (b8a - b04) / (b8a + b04), rtol=1e-6)
    np.testing.assert_array_equal(out["B04"], b04)
    assert np.isfinite(out["NDWI_B8A"][2:]).all()  # the first 20 m pixel holds no data


def test_copernicus_style_asset_keys(tmp_path: Path) -> None:
    """Assets named by band and resolution (``B04_10m``, ``B04_20m``, ``SCL_20m``): each
    resolution's own file is read, and SCL is the mask."""
    safe = sen2cor_product(tmp_path / "data", fmt="cog").path
    item_path = tmp_path / "items" / "cdse.json"
    assets: dict[str, Any] = {}
    for layer, resolution in (("B04", 10), ("B04", 20), ("B08", 10), ("SCL", 20), ("AOT", 20)):
        file = next(safe.rglob(f"*_{layer}_{resolution}m.tif"))
        assets[f"{layer}_{resolution}m"] = {
            "href": os.path.relpath(file, item_path.parent),
            "roles": ["data"],
            "gsd": resolution,
            **({"raster:bands": [{"scale": 0.0001, "offset": -0.1}]} if layer[0] == "B" else {}),
        }
    stac_item(item_path, item_id="S2B_MSIL2A_CDSE", assets=assets, platform="sentinel-2b")
    reader = open_product(item_path)
    safe_reader = open_product(safe)
    assert reader.bands == ("B04", "B08")
    assert reader.mask_source == "SCL"
    for resolution in (10, 20):
        np.testing.assert_array_equal(
            reader.read("B04", resolution), safe_reader.read("B04", resolution)
        )
        np.testing.assert_array_equal(
            reader.valid_mask(resolution), safe_reader.valid_mask(resolution)
        )


def test_multi_band_asset_named_by_common_names(tmp_path: Path) -> None:
    """Bands known only by common name (``red``, ``nir``) and a mask band named ``scl``, with
    a uint16 file whose own no-data value (65535) is honoured besides the declared one (0)."""
    rng = np.random.default_rng(8)
    red, nir = (rng.integers(100, 5000, (SIZE, SIZE)).astype(np.uint16) for _ in range(2))
    red[5, 5], nir[6, 6] = 65535, 0
    scl = np.full((SIZE, SIZE), 4, np.uint16)
    scl[:10, :] = 8  # cloud
    data = tmp_path / "stack.tif"
    transform = TILE.transform(10) @ Affine.translation(60, 120)
    write_tif(data, np.stack([red, nir, scl]), transform, TILE.epsg, 65535)
    item_path = stac_item(
        tmp_path / "common.json",
        item_id="common-names",
        assets={
            "analytic": {
                "href": "stack.tif",
                "eo:bands": [{"common_name": "red"}, {"name": "nir"}, {"name": "scl"}],
                "raster:bands": [{"nodata": 0, "scale": 0.0001}] * 2 + [{}],
            }
        },
    )
    reader = open_product(item_path)
    assert reader.bands == ("B04", "B08")
    assert reader.mask_source == "SCL"
    b04, b08 = reader.read("B04"), reader.read("B08")
    assert np.isnan(b04[5, 5])  # the file's no-data value
    assert np.isnan(b08[6, 6])  # the declared one
    assert np.nanmax(b04) < 0.5
    expected = np.ones((SIZE, SIZE), bool)
    expected[:10, :] = False
    np.testing.assert_array_equal(reader.valid_mask(), expected)
