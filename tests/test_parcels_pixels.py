"""S2Pix/S1Pix: the scanline pixel count against a brute-force point-in-polygon count."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry.base import BaseGeometry

from capmon.parcels.pixels import (
    count_pixel_centres,
    nearest_utm_epsg,
    sentinel_pixel_counts,
    transform_geometries,
)


def _brute_force(geometry: BaseGeometry, resolution: float) -> int:
    west, south, east, north = geometry.bounds
    xs = np.arange(np.floor(west / resolution) - 1, np.ceil(east / resolution) + 1) + 0.5
    ys = np.arange(np.floor(south / resolution) - 1, np.ceil(north / resolution) + 1) + 0.5
    grid_x, grid_y = np.meshgrid(xs * resolution, ys * resolution)
    return int(shapely.contains_xy(geometry, grid_x.ravel(), grid_y.ravel()).sum())


def _on_boundary(geometry: BaseGeometry, resolution: float) -> bool:
    west, south, east, north = geometry.bounds
    xs = np.arange(np.floor(west / resolution) - 1, np.ceil(east / resolution) + 1) + 0.5
    ys = np.arange(np.floor(south / resolution) - 1, np.ceil(north / resolution) + 1) + 0.5
    grid_x, grid_y = np.meshgrid(xs * resolution, ys * resolution)
    # Within a micrometre of an edge, in or out is decided by float rounding (the scanline's
    # crossing and GEOS's predicate may legitimately differ): such cases are not compared.
    centres = shapely.points(grid_x.ravel(), grid_y.ravel())
    return bool(shapely.dwithin(geometry.boundary, centres, 1e-6).any())


coordinate = st.floats(min_value=0, max_value=150, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    points=st.lists(st.tuples(coordinate, coordinate), min_size=3, max_size=12),
    hole=st.booleans(),
    resolution=st.sampled_from([10.0, 20.0]),
)
def test_scanline_count_equals_brute_force(
    points: list[tuple[float, float]], hole: bool, resolution: float
) -> None:
    offset = np.array([500_000.0, 5_600_000.0])
    raw = shapely.Polygon([tuple(np.array(p) + offset) for p in points])
    geometry = shapely.make_valid(raw, method="structure", keep_collapsed=False)
    if hole and not geometry.is_empty:
        geometry = geometry.difference(geometry.centroid.buffer(8))
    assume(not geometry.is_empty and geometry.area > 0)
    assume(not _on_boundary(geometry, resolution))
    counted = count_pixel_centres(np.array([geometry], dtype=object), resolution)
    assert counted[0] == _brute_force(geometry, resolution)


def test_many_parcels_at_once_match_one_by_one() -> None:
    rng = np.random.default_rng(7)
    geometries: list[BaseGeometry | None] = []
    for _ in range(200):
        x = float(rng.uniform(0, 2_000)) + 600_000.0
        y = float(rng.uniform(0, 2_000)) + 5_700_000.0
        body = shapely.Point(x, y).buffer(rng.uniform(3, 70))
        geometries.append(body.union(shapely.box(x, y, x + rng.uniform(1, 90), y + 33.3)))
    geometries.append(
        shapely.MultiPolygon(
            [shapely.box(0.1, 0.1, 30.1, 30.1), shapely.box(100.3, 0.2, 140.3, 20.2)]
        )
    )
    geometries.append(None)
    geometries.append(shapely.Polygon())
    array = np.array(geometries, dtype=object)
    counts = count_pixel_centres(array, 10)
    expected = [0 if g is None or g.is_empty else _brute_force(g, 10) for g in geometries]
    assert counts.tolist() == expected
    assert counts[-3] == 9 + 8  # 3x3 centres in the first square, 4x2 in the second


def test_a_one_hectare_square_on_the_grid() -> None:
    square = shapely.box(500_000, 5_600_000, 500_100, 5_600_100)  # 100 m x 100 m
    wgs84 = transform_geometries(np.array([square], dtype=object), 32631, 4326)
    s2, s1 = sentinel_pixel_counts(wgs84, (32631,))
    # -5 m buffer: 90 m square from 5 to 95 m -> centres 5..95 step 10: 9 x 9 = 81 (edges at
    # 5 m would sit on centres; the reprojection round trip moves them by far less than 1 mm,
    # so allow the boundary to fall either way)
    assert 64 <= s2[0] <= 100
    # -10 m buffer: 80 m square from 10 to 90 m -> 20 m centres at 10, 30, 50, 70: 4 x 4 = 16
    assert 9 <= s1[0] <= 25
    shifted = shapely.box(500_003, 5_600_003, 500_103, 5_600_103)
    s2, s1 = sentinel_pixel_counts(
        transform_geometries(np.array([shifted], dtype=object), 32631, 4326), (32631,)
    )
    assert (s2[0], s1[0]) == (81, 16)


def test_small_parcels_have_no_pixel() -> None:
    tiny = shapely.box(500_003, 5_600_003, 500_012, 5_600_012)
    s2, s1 = sentinel_pixel_counts(
        transform_geometries(np.array([tiny], dtype=object), 32631, 4326), (32631,)
    )
    assert (s2[0], s1[0]) == (0, 0)


@pytest.mark.parametrize(
    ("lon", "lat", "candidates", "expected"),
    [
        (3.1, 50.0, (), 32631),
        (-3.1, 40.0, (), 32630),
        (3.1, -10.0, (), 32731),
        (5.99, 50.0, (32631, 32632), 32631),
        (6.01, 50.0, (32631, 32632), 32632),
        (12.0, 50.0, (32632,), 32632),
    ],
)
def test_zone_of_each_parcel(
    lon: float, lat: float, candidates: tuple[int, ...], expected: int
) -> None:
    chosen = nearest_utm_epsg(np.array([lon]), np.array([lat]), candidates)
    assert chosen.tolist() == [expected]
