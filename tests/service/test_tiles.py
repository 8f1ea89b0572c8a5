"""Map routes: parcels as GeoJSON by bounding box and as vector tiles, raster tiles of a
signal, the MVT encoder, and site isolation of every tile route."""

from __future__ import annotations

import io
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import numpy.typing as npt
import pytest
import shapely
from fastapi.testclient import TestClient
from PIL import Image
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, box

from capmon.parcels import load_parcels
from capmon.service.mvt import (
    EXTENT,
    encode_geometries,
    encode_layer,
    tile_bounds,
    tiles_covering,
    varints,
    zigzag,
)
from capmon.service.routes import tiles as tiles_module
from capmon.workspace import open_workspace
from tests.service.conftest import SEASON, ServiceWorld

BASE = f"/sites/alpha/seasons/{SEASON}"
_TO_MERCATOR = Transformer.from_crs(4326, 3857, always_xy=True)


@pytest.fixture(scope="module")
def parcels(service_world: ServiceWorld) -> gpd.GeoDataFrame:
    workspace = open_workspace(service_world.home)
    try:
        return load_parcels(workspace, "alpha", service_world.year)
    finally:
        workspace.dispose()


def _mercator_bounds(frame: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = frame.to_crs(3857).total_bounds
    return (float(minx), float(miny), float(maxx), float(maxy))


def _tile_of(parcel: Any, z: int) -> tuple[int, int]:
    point = parcel.geometry.representative_point()
    x, y = _TO_MERCATOR.transform(point.x, point.y)
    (col, _), (row, _) = tiles_covering((x, y, x, y), z)
    return col, row


def _decode(content: bytes) -> list[dict[str, Any]]:
    if not content:
        return []
    features: list[dict[str, Any]] = mapbox_vector_tile.decode(content)["parcels"]["features"]
    return features


def _mvt(client: TestClient, headers: dict[str, str], z: int, x: int, y: int, **query: str) -> Any:
    return client.get(
        f"/tiles/parcels/{z}/{x}/{y}.mvt",
        params={"site": "alpha", "season": SEASON, **query},
        headers=headers,
    )


# --- encoder -----------------------------------------------------------------------------------


def test_varints_and_zigzag() -> None:
    encoded, ends = varints(np.array([0, 1, 127, 128, 300, 2**32 - 1], np.uint64))
    assert encoded == bytes([0, 1, 127, 0x80, 1, 0xAC, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
    assert ends.tolist() == [1, 2, 3, 5, 7, 12]
    assert zigzag(np.array([0, -1, 1, -2, 2])).tolist() == [0, 1, 2, 3, 4]


def test_encoder_rings_holes_parts_and_properties() -> None:
    """On a tile whose bounds are 0..EXTENT, tile units are the input with y flipped."""
    bounds = (0.0, 0.0, float(EXTENT), float(EXTENT))
    with_hole = Polygon(
        [(100, 100), (1000, 100), (1000, 1000), (100, 1000)],
        [[(300, 300), (600, 300), (600, 600), (300, 600)]],  # wound like the exterior
    )
    parts = MultiPolygon([box(2000, 2000, 2500, 2500), box(3000, 3000, 3500, 3200)])
    vanishing = box(10.1, 10.1, 10.3, 10.3)  # rounds to one point
    clockwise = Polygon([(1500, 100), (1500, 800), (1800, 800)])  # in y-up coordinates
    geometries = encode_geometries(
        bounds,
        np.array([0, 1, 2, 3]),
        np.array([with_hole, parts, vanishing, clockwise], dtype=object),
        np.array([4]),
        np.array([[50.4, 60.6]]),
    )
    assert geometries.rows.tolist() == [0, 1, 3, 4]
    tile = encode_layer(
        "parcels",
        geometries,
        [10, 11, 13, 14],
        {"value": (("wheat", -1, 2.5, True), np.array([0, 1, -1, 3]))},
    )
    decoded = mapbox_vector_tile.decode(tile)  # flips y back
    features = decoded["parcels"]["features"]
    assert decoded["parcels"]["extent"] == EXTENT
    assert [f["id"] for f in features] == [10, 11, 13, 14]
    assert [f["properties"] for f in features] == [
        {"parcel_id": 10, "value": "wheat"},
        {"parcel_id": 11, "value": -1},
        {"parcel_id": 13},
        {"parcel_id": 14, "value": True},
    ]
    first = features[0]["geometry"]
    assert first["type"] == "Polygon"
    assert len(first["coordinates"]) == 2
    exterior, hole = (Polygon(ring) for ring in first["coordinates"])
    # MVT: exterior rings have a positive surveyor's area in tile units (y down), holes a
    # negative one; decoded with y up, exteriors turn clockwise (as mapbox-vector-tile's own)
    assert not exterior.exterior.is_ccw
    assert hole.exterior.is_ccw
    assert Polygon(exterior.exterior, [hole.exterior]).equals(with_hole)
    assert features[1]["geometry"]["type"] == "MultiPolygon"
    assert shapely.MultiPolygon(
        [Polygon(p[0]) for p in features[1]["geometry"]["coordinates"]]
    ).equals(parts)
    third = Polygon(features[2]["geometry"]["coordinates"][0])
    assert third.equals(clockwise)
    assert not third.exterior.is_ccw
    assert features[3]["geometry"] == {"type": "Point", "coordinates": [50, 61]}
    empty = encode_geometries(
        bounds, np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, np.int64), np.zeros((0, 2))
    )
    assert encode_layer("parcels", empty, []) == b""


def test_encoder_agrees_with_mapbox_vector_tile_on_many_parcels() -> None:
    rng = np.random.default_rng(3)
    corners = rng.uniform(0, 4000, (500, 1, 2))
    offsets = np.array([[0, 0], [60, 0], [60, 45], [0, 45]])
    polygons: npt.NDArray[np.object_] = np.asarray(shapely.polygons(corners + offsets), object)
    bounds = (0.0, 0.0, float(EXTENT), float(EXTENT))
    geometries = encode_geometries(
        bounds, np.arange(500), polygons, np.zeros(0, np.int64), np.zeros((0, 2))
    )
    values = ("a", "b", "c")
    tile = encode_layer(
        "parcels", geometries, np.arange(500) + 1, {"value": (values, np.arange(500) % 3)}
    )
    features = mapbox_vector_tile.decode(tile)["parcels"]["features"]
    assert [f["id"] for f in features] == list(range(1, 501))
    for i, feature in enumerate(features):
        assert feature["properties"] == {"parcel_id": i + 1, "value": values[i % 3]}
        assert Polygon(feature["geometry"]["coordinates"][0]).equals(
            shapely.set_precision(polygons[i], 1.0)
        )


# --- vector tiles ------------------------------------------------------------------------------


def test_vector_tile_holds_the_parcels_of_the_tile(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], parcels: gpd.GeoDataFrame
) -> None:
    headers = auth_headers["view-alpha"]
    z = 16
    x, y = _tile_of(parcels.iloc[0], z)
    answer = _mvt(read_client, headers, z, x, y)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    features = _decode(answer.content)
    got = {f["properties"]["parcel_id"] for f in features}
    assert all(f["id"] == f["properties"]["parcel_id"] for f in features)
    mercator = parcels.to_crs(3857)
    bounds = tile_bounds(z, x, y)
    inside = set(mercator.loc[mercator.intersects(box(*bounds)), "NewID"].astype(int))
    margin = (bounds[2] - bounds[0]) * 64 / EXTENT
    near = set(mercator.loc[mercator.intersects(box(*bounds).buffer(margin)), "NewID"].astype(int))
    assert int(parcels.iloc[0]["NewID"]) in got
    assert inside <= got <= near
    assert len(got) < len(parcels)  # parcels away from the tile are not in it
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in features)


def test_vector_tiles_cover_every_parcel_once_at_small_zoom(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], parcels: gpd.GeoDataFrame
) -> None:
    """At zoom 8 parcels are smaller than 3 pixels: each is one point, in one tile."""
    headers = auth_headers["view-alpha"]
    (x0, x1), (y0, y1) = tiles_covering(_mercator_bounds(parcels), 8)
    features = [
        f
        for x in range(x0, x1 + 1)
        for y in range(y0, y1 + 1)
        for f in _decode(_mvt(read_client, headers, 8, x, y).content)
    ]
    assert {f["geometry"]["type"] for f in features} == {"Point"}
    ids = [f["properties"]["parcel_id"] for f in features]
    assert len(ids) == len(set(ids))  # one point per screen pixel at most, each in one tile
    assert 0 < len(ids) <= len(parcels)


def test_vector_tile_values_of_the_crop_layer(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], parcels: gpd.GeoDataFrame
) -> None:
    headers = auth_headers["view-alpha"]
    (x0, x1), (y0, y1) = tiles_covering(_mercator_bounds(parcels), 14)
    crops = dict(zip(parcels["NewID"].astype(int), parcels["ori_crop"].astype(int), strict=True))
    seen = {}
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            for f in _decode(_mvt(read_client, headers, 14, x, y, layer="crop").content):
                seen[f["properties"]["parcel_id"]] = f["properties"]["value"]
    assert seen == crops


def test_empty_tile_and_tile_errors(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    headers = auth_headers["view-alpha"]
    empty = _mvt(read_client, headers, 14, 0, 0)  # the Arctic Ocean off Alaska
    assert empty.status_code == 200
    assert empty.content == b""
    assert _mvt(read_client, headers, 3, 8, 0).status_code == 404  # x beyond 2**3: no tile
    assert _mvt(read_client, headers, 25, 0, 0).status_code == 400
    unknown = _mvt(read_client, headers, 14, 0, 0, layer="nope")
    assert unknown.status_code == 404  # well-formed, but not a layer of this season
    assert "'nope'" in unknown.json()["detail"]
    assert "crop" in unknown.json()["detail"]
    season = read_client.get(
        "/tiles/parcels/14/0/0.mvt", params={"site": "alpha", "season": "nope"}, headers=headers
    )
    assert season.status_code == 404


def test_vector_tile_etag(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], parcels: gpd.GeoDataFrame
) -> None:
    headers = auth_headers["view-alpha"]
    x, y = _tile_of(parcels.iloc[3], 15)
    first = _mvt(read_client, headers, 15, x, y, layer="crop")
    again = _mvt(
        read_client, {**headers, "If-None-Match": first.headers["etag"]}, 15, x, y, layer="crop"
    )
    assert again.status_code == 304
    assert again.content == b""
    other_layer = _mvt(read_client, headers, 15, x, y, layer="crop_type")
    assert other_layer.headers["etag"] != first.headers["etag"]


# --- GeoJSON -----------------------------------------------------------------------------------


def test_geojson_by_bbox(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], parcels: gpd.GeoDataFrame
) -> None:
    minx, miny, maxx, maxy = parcels.total_bounds
    area = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    answer = read_client.get(
        f"{BASE}/parcels.geojson",
        params={"bbox": ",".join(str(v) for v in area), "layer": "crop"},
        headers=auth_headers["view-alpha"],
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/geo+json"
    collection = answer.json()
    expected = parcels[parcels.intersects(box(*area))]
    assert 0 < len(expected) < len(parcels)
    assert collection["numberReturned"] == len(expected)
    by_id = {f["id"]: f for f in collection["features"]}
    assert set(by_id) == set(expected["NewID"].astype(int))
    for _, row in expected.iterrows():
        feature = by_id[int(row["NewID"])]
        assert feature["properties"]["ori_id"] == row["ori_id"]
        assert feature["properties"]["value"] == int(row["ori_crop"])
        assert shapely.geometry.shape(feature["geometry"]).equals_exact(row.geometry, 1e-9)


def test_geojson_cap_and_bbox_errors(
    read_client: TestClient,
    auth_headers: dict[str, dict[str, str]],
    parcels: gpd.GeoDataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = auth_headers["view-alpha"]
    everything = ",".join(str(v) for v in parcels.total_bounds)
    monkeypatch.setattr(tiles_module, "GEOJSON_MAX_PARCELS", 5)
    capped = read_client.get(f"{BASE}/parcels.geojson?bbox={everything}", headers=headers)
    assert capped.status_code == 400
    assert f"{len(parcels)} parcels" in capped.json()["detail"]
    assert "/tiles/parcels" in capped.json()["detail"]
    for bad in ("1,2,3", "a,b,c,d", "10,50,9,51", "0,-95,1,1"):
        answer = read_client.get(f"{BASE}/parcels.geojson?bbox={bad}", headers=headers)
        assert answer.status_code == 400, bad
        assert "bbox" in answer.json()["detail"]
    missing = read_client.get(f"{BASE}/parcels.geojson", headers=headers)
    assert missing.status_code == 400
    assert "bbox" in missing.json()["detail"]


# --- raster tiles ------------------------------------------------------------------------------


def _an_s2_product(client: TestClient, headers: dict[str, str], site: str = "alpha") -> int:
    body = client.get(f"/sites/{site}/seasons/{SEASON}/layers", headers=headers).json()
    products = [p for p in body["rasters"]["products"] if (p["cloud_cover"] or 0) < 50]
    chosen = products[len(products) // 2] if products else body["rasters"]["products"][0]
    return int(chosen["product_id"])


def test_signal_raster_tile(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], parcels: gpd.GeoDataFrame
) -> None:
    headers = auth_headers["view-alpha"]
    product = _an_s2_product(read_client, headers)
    x, y = _tile_of(parcels.iloc[0], 14)
    answer = read_client.get(f"/tiles/signals/{product}/NDVI/14/{x}/{y}.png", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(answer.content)))
    assert image.shape == (256, 256, 4)
    assert (image[..., 3] == 255).sum() > 1000  # pixels where the product has clear data
    styled = read_client.get(
        f"/tiles/signals/{product}/NDVI/14/{x}/{y}.png?min=0.2&max=0.9&colormap=viridis",
        headers=headers,
    )
    assert styled.status_code == 200
    assert styled.content != answer.content
    away = read_client.get(f"/tiles/signals/{product}/NDVI/14/0/0.png", headers=headers)
    assert away.status_code == 200
    assert (np.asarray(Image.open(io.BytesIO(away.content)))[..., 3] == 0).all()


def test_signal_raster_tile_errors(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    headers = auth_headers["view-alpha"]
    product = _an_s2_product(read_client, headers)
    for path, word in (
        (f"/tiles/signals/{product}/NOPE/14/0/0.png", "NOPE"),
        (f"/tiles/signals/{product}/COHE_VV/14/0/0.png", "COHE_VV"),
        (f"/tiles/signals/{product}/NDVI/14/0/0.png?colormap=nope", "nope"),
        (f"/tiles/signals/{product}/NDVI/14/0/0.png?min=1&max=0", "min"),
    ):
        answer = read_client.get(path, headers=headers)
        assert answer.status_code == 400, path
        assert word in answer.json()["detail"]
    admin = read_client.get("/tiles/signals/999999/NDVI/14/0/0.png", headers=auth_headers["admin"])
    assert admin.status_code == 404


# --- site isolation ----------------------------------------------------------------------------


def test_tiles_site_isolation(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], parcels: gpd.GeoDataFrame
) -> None:
    beta_product = _an_s2_product(read_client, auth_headers["view-beta"], "beta")
    x, y = _tile_of(parcels.iloc[0], 14)
    bbox = ",".join(str(v) for v in parcels.total_bounds)
    routes = (
        f"/tiles/parcels/14/{x}/{y}.mvt?site=beta&season={SEASON}",
        f"/tiles/parcels/14/{x}/{y}.mvt?site=beta&season={SEASON}&layer=crop",
        f"/sites/beta/seasons/{SEASON}/parcels.geojson?bbox={bbox}",
        f"/tiles/signals/{beta_product}/NDVI/14/{x}/{y}.png",
    )
    for route in routes:
        assert read_client.get(route).status_code == 401, route
        for user in ("view-alpha", "op-alpha"):
            answer = read_client.get(route, headers=auth_headers[user])
            assert answer.status_code == 403, (route, user)
        for user in ("view-beta", "admin"):
            assert read_client.get(route, headers=auth_headers[user]).status_code == 200, route
    gamma = f"/tiles/parcels/14/{x}/{y}.mvt?site=gamma&season={SEASON}"
    assert read_client.get(gamma, headers=auth_headers["view-alpha"]).status_code == 403
    unknown = read_client.get(
        "/tiles/signals/999999/NDVI/14/0/0.png", headers=auth_headers["view-alpha"]
    )
    assert unknown.status_code == 403  # as for sites, other ids do not leak
