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
from capmon.sources import ProductType, find_products, open_product
from capmon.sources.stac import StacReader
from tests.test_sources_helpers import (
    SENSING,
    SIZE,
    TILE,
    landsat_product,
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
    assert info.properties["mask"] == "data"
    np.testing.assert_array_equal(reader.valid_mask(), ~np.isnan(landsat.read("B04")))
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
