"""STAC API: landing, collections, items, search (bbox, datetime, paging), asset downloads,
path traversal, and site isolation (a viewer of alpha never sees beta's items or files)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pystac
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select

from capmon.catalog.models import Product, Role, Site
from capmon.errors import InputError, NotFoundError
from capmon.processors import RunContext, get_processor
from capmon.service.auth import Principal
from capmon.service.errors import ForbiddenError
from capmon.service.stac import (
    COG,
    AssetRoot,
    Interval,
    Search,
    SortKey,
    StacCatalog,
    media_type,
    parse_bbox,
    parse_datetime,
)
from capmon.service.stac_ids import COLLECTIONS, collection_id, item_path
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.workspace import Workspace, open_workspace
from tests.service.conftest import SEASON, ServiceWorld, login, make_app

S2 = "sentinel-2-l2a"


def get_json(client: TestClient, url: str, headers: dict[str, str], status: int = 200) -> Any:
    answer = client.get(url, headers=headers)
    assert answer.status_code == status, (url, answer.status_code, answer.text)
    return answer.json()


def walk_pages(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every feature of a GET listing, following the ``next`` links."""
    features: list[dict[str, Any]] = []
    pages = 0
    while url:
        page = get_json(client, url, headers)
        features.extend(page["features"])
        assert page["numberReturned"] == len(page["features"])
        nexts = [link["href"] for link in page["links"] if link["rel"] == "next"]
        url = nexts[0] if nexts else ""
        pages += 1
        assert pages < 100
    return features


def site_products(home: Path, site: str, product_type: str | None = None) -> list[Product]:
    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            query = select(Product).join(Site).where(Site.name == site)
            if product_type is not None:
                query = query.where(Product.product_type == product_type)
            return list(session.scalars(query))
    finally:
        workspace.dispose()


def site_aoi(home: Path, site: str) -> BaseGeometry:
    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            return get_site(session, site).aoi
    finally:
        workspace.dispose()


def acquired(product: Product) -> datetime:
    assert product.acquired_at is not None
    return product.acquired_at


# ---------------------------------------------------------------------------------------------
# A copy of the service workspace with a bare-soil product for beta only


@dataclass(frozen=True)
class ProcessedWorld:
    home: Path
    client: TestClient
    headers: dict[str, dict[str, str]]
    baresoil_item: str


@pytest.fixture(scope="module")
def processed(
    service_world: ServiceWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessedWorld]:
    """The service workspace plus a ``baresoil`` product of site beta (none for alpha), so
    that the collections of the two sites differ."""
    home = tmp_path_factory.mktemp("stac") / "home"
    shutil.copytree(service_world.home, home)
    workspace = open_workspace(home)
    try:
        processor = get_processor("baresoil")
        with workspace.session() as session:
            site = get_site(session, "beta")
            season = get_season(session, site, SEASON)
        result = processor.run(RunContext(workspace, site, season), processor.parse_parameters({}))
    finally:
        workspace.dispose()
    folder = Path(result.outputs["product"])
    with TestClient(make_app(home)) as client:
        headers = {user: login(client, user) for user in ("admin", "view-alpha", "view-beta")}
        yield ProcessedWorld(home, client, headers, f"beta.{folder.name}")


# ---------------------------------------------------------------------------------------------
# Landing, conformance, authentication


def test_landing_page_is_a_stac_api_catalog(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    landing = get_json(read_client, "/stac", auth_headers["view-alpha"])
    assert landing["type"] == "Catalog"
    assert landing["stac_version"] == "1.0.0"
    for kind in ("core", "collections", "ogcapi-features", "item-search"):
        assert f"https://api.stacspec.org/v1.0.0/{kind}" in landing["conformsTo"]
    rels = {link["rel"]: link for link in landing["links"]}
    assert {"root", "self", "data", "search", "conformance", "service-desc"} <= set(rels)
    assert rels["data"]["href"].endswith("/stac/collections")
    methods = {link.get("method") for link in landing["links"] if link["rel"] == "search"}
    assert methods == {"GET", "POST"}
    children = {
        link["href"].rsplit("/", 1)[1] for link in landing["links"] if link["rel"] == "child"
    }
    assert {cid for cid, _title in COLLECTIONS.values()} <= children
    catalog = pystac.Catalog.from_dict(landing)
    assert catalog.id == "capmon"
    conformance = get_json(read_client, "/stac/conformance", auth_headers["view-alpha"])
    assert conformance["conformsTo"] == landing["conformsTo"]
    paths = get_json(read_client, "/openapi.json", {})["paths"]
    assert set(paths["/stac/search"]) == {"get", "post"}
    assert "get" in paths["/stac/assets/{iid}/{path}"]


def test_every_stac_route_needs_a_token(read_client: TestClient) -> None:
    for url in (
        "/stac",
        "/stac/conformance",
        "/stac/collections",
        f"/stac/collections/{S2}",
        f"/stac/collections/{S2}/items",
        f"/stac/collections/{S2}/items/alpha.x",
        "/stac/search",
        "/stac/assets/alpha.mdb_S_declarations-1/mdb.json",
    ):
        answer = read_client.get(url)
        assert answer.status_code == 401, url
        assert answer.json()["status"] == 401
    assert read_client.post("/stac/search", json={}).status_code == 401
    forged = {"Authorization": "Bearer not-a-token"}
    assert read_client.get("/stac/collections", headers=forged).status_code == 401


# ---------------------------------------------------------------------------------------------
# Collections and items


def test_collections_have_the_extent_of_the_visible_items(
    service_world: ServiceWorld,
    read_client: TestClient,
    auth_headers: dict[str, dict[str, str]],
) -> None:
    answer = get_json(read_client, "/stac/collections", auth_headers["view-alpha"])
    collections = {c["id"]: c for c in answer["collections"]}
    assert {cid for cid, _title in COLLECTIONS.values()} <= set(collections)
    for document in collections.values():
        pystac.Collection.from_dict(document)
    products = site_products(service_world.home, "alpha", "l2a")
    footprints = shapely.union_all([p.footprint for p in products])
    s2 = collections[S2]
    assert s2["extent"]["spatial"]["bbox"][0] == pytest.approx(list(footprints.bounds))
    first = min(p.acquired_at for p in products if p.acquired_at is not None)
    last = max(p.acquired_at for p in products if p.acquired_at is not None)
    interval = s2["extent"]["temporal"]["interval"][0]
    assert interval == [
        first.strftime("%Y-%m-%dT%H:%M:%SZ"),
        last.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    mdb = collections["mdb"]
    year = service_world.year
    assert mdb["extent"]["temporal"]["interval"][0] == [
        f"{year}-02-01T00:00:00Z",
        f"{year}-11-30T00:00:00Z",
    ]
    assert mdb["extent"]["spatial"]["bbox"][0] == pytest.approx(
        list(site_aoi(service_world.home, "alpha").bounds)
    )
    # no product of that type: the whole world and an open interval
    assert collections["landsat-c2-l2"]["extent"]["temporal"]["interval"] == [[None, None]]
    single = get_json(read_client, f"/stac/collections/{S2}", auth_headers["view-alpha"])
    assert single == s2
    missing = get_json(read_client, "/stac/collections/nope", auth_headers["view-alpha"], 404)
    assert "sentinel-2-l2a" in missing["detail"]
    get_json(read_client, "/stac/collections/nope/items", auth_headers["view-alpha"], 404)


def test_items_of_a_collection_page_through_every_product(
    service_world: ServiceWorld,
    read_client: TestClient,
    auth_headers: dict[str, dict[str, str]],
) -> None:
    headers = auth_headers["view-alpha"]
    features = walk_pages(read_client, f"/stac/collections/{S2}/items?limit=4", headers)
    products = site_products(service_world.home, "alpha", "l2a")
    assert len(products) > 8  # several pages
    assert sorted(f["id"] for f in features) == sorted(f"alpha.{p.name}" for p in products)
    times = [f["properties"]["datetime"] for f in features]
    assert times == sorted(times, reverse=True)  # newest first
    by_name = {p.name: p for p in products}
    for feature in features:
        item = pystac.Item.from_dict(feature)
        assert item.collection_id == S2
        product = by_name[feature["id"].split(".", 1)[1]]
        footprint, sensor = product.footprint, product.sensor
        assert footprint is not None
        assert sensor is not None
        assert shape(feature["geometry"]).equals(footprint)
        assert feature["bbox"] == pytest.approx(list(footprint.bounds))
        props = feature["properties"]
        assert props["platform"] == f"sentinel-{sensor[1:].lower()}"
        assert props["constellation"] == "sentinel-2"
        assert props["sat:relative_orbit"] == product.relative_orbit
        assert props["sat:orbit_state"] == "descending"
        assert props["s2:mgrs_tile"] == product.tile
        assert props["grid:code"] == f"MGRS-{product.tile}"
        assert props["processing:level"] == "L2A"
        assert props["capmon:site"] == "alpha"
        rels = {link["rel"] for link in feature["links"]}
        assert {"self", "parent", "collection", "root"} <= rels
        assert feature["links"][0]["href"].endswith(
            item_path(product.product_type, "alpha", product.name)
        )
        tifs = [a for key, a in feature["assets"].items() if key.endswith(".tif")]
        assert tifs
        assert all(a["type"] == COG and a["roles"] == ["data"] for a in tifs)
        root = Path(product.path)
        for key, asset in feature["assets"].items():
            assert asset["file:size"] == (root / key).stat().st_size
    one = features[0]
    again = get_json(read_client, one["links"][0]["href"], headers)
    assert again == one
    get_json(read_client, f"/stac/collections/mdb/items/{one['id']}", headers, 404)
    get_json(read_client, f"/stac/collections/{S2}/items/alpha.NOT_A_PRODUCT", headers, 404)


def test_mdb_items_and_asset_download_with_ranges(
    service_world: ServiceWorld,
    read_client: TestClient,
    auth_headers: dict[str, dict[str, str]],
) -> None:
    headers = auth_headers["view-alpha"]
    page = get_json(read_client, "/stac/collections/mdb/items", headers)
    assert [f["id"] for f in page["features"]] == ["alpha.mdb_S_declarations-1"]
    feature = page["features"][0]
    item = pystac.Item.from_dict(feature)
    assert item.datetime is None
    assert feature["properties"]["start_datetime"] == f"{service_world.year}-02-01T00:00:00Z"
    assert feature["properties"]["capmon:season"] == SEASON
    assert shape(feature["geometry"]).equals(site_aoi(service_world.home, "alpha"))
    folder = service_world.home / "mdb" / "alpha" / SEASON / "declarations-1"
    parquet = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet"))
    assert parquet
    listed = feature["assets"]
    assert sorted(k for k in listed if k.endswith(".parquet")) == parquet
    assert not any(key.startswith("pixels/") for key in listed)  # caches are not assets
    assert listed["mdb.json"]["roles"] == ["metadata"]
    asset = listed[parquet[0]]
    assert asset["type"] == "application/vnd.apache.parquet"
    content = (folder / parquet[0]).read_bytes()
    whole = read_client.get(asset["href"], headers=headers)
    assert whole.status_code == 200
    assert whole.content == content
    assert whole.headers["content-type"] == "application/vnd.apache.parquet"
    part = read_client.get(asset["href"], headers={**headers, "Range": "bytes=4-103"})
    assert part.status_code == 206
    assert part.content == content[4:104]
    assert part.headers["content-range"] == f"bytes 4-103/{len(content)}"
    head = read_client.head(asset["href"], headers=headers)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(content)
    assert read_client.get(asset["href"]).status_code == 401
    get_json(read_client, "/stac/assets/alpha.mdb_S_declarations-1/missing.parquet", headers, 404)
    get_json(read_client, "/stac/assets/alpha.mdb_S_declarations-99/mdb.json", headers, 404)


def test_asset_paths_cannot_leave_the_item_folder(
    processed: ProcessedWorld, read_client: TestClient
) -> None:
    client, headers = processed.client, processed.headers["view-beta"]
    item = get_json(client, f"/stac/collections/baresoil/items/{processed.baresoil_item}", headers)
    product_folder = Path(site_products(processed.home, "beta", "s4c_baresoil")[0].path)
    # a link inside the folder to a file outside: neither listed nor served
    (product_folder / "leak.csv").symlink_to(processed.home / "catalog.sqlite")
    (product_folder / ".hidden.csv").write_text("a,b\n", encoding="utf-8")
    try:
        listed = get_json(
            client, f"/stac/collections/baresoil/items/{processed.baresoil_item}", headers
        )["assets"]
        assert "leak.csv" not in listed
        assert ".hidden.csv" not in listed
        assert set(listed) == set(item["assets"])
        prefix = f"/stac/assets/{processed.baresoil_item}/"
        mdb = "/stac/assets/beta.mdb_S_declarations-2/"
        for attempt in (
            prefix + "leak.csv",
            prefix + ".hidden.csv",
            prefix + "%2E%2E/%2E%2E/%2E%2E/%2E%2E/catalog.sqlite",
            prefix + "..%2F..%2F..%2F..%2Fcatalog.sqlite",
            prefix + "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fcatalog.sqlite",
            prefix + "%2Fetc%2Fpasswd",
            prefix + "/etc/passwd",
            prefix + f"%2F{str(processed.home / 'catalog.sqlite').lstrip('/')}",
            prefix + "report.json%00.csv",
            prefix + "..%5C..%5Ccatalog.sqlite",
            mdb + "pixels",
            mdb + "%2E%2E/declarations-2/mdb.json",
            mdb + "../../../../catalog.sqlite",
        ):
            answer = client.get(attempt, headers=headers)
            assert answer.status_code == 404, (attempt, answer.status_code)
            assert b"SQLite format" not in answer.content
            assert b"root:" not in answer.content
        pixels = next(
            (processed.home / "mdb" / "beta" / SEASON / "declarations-2").glob("pixels/*")
        )
        assert client.get(mdb + f"pixels/{pixels.name}", headers=headers).status_code == 404
        ok = client.get(prefix + "report.json", headers=headers)
        assert ok.status_code == 200
        assert json.loads(ok.content)["parcels"] > 0
    finally:
        (product_folder / "leak.csv").unlink()
        (product_folder / ".hidden.csv").unlink()


def test_processor_product_item(processed: ProcessedWorld) -> None:
    client, headers = processed.client, processed.headers["view-beta"]
    feature = get_json(
        client, f"/stac/collections/baresoil/items/{processed.baresoil_item}", headers
    )
    item = pystac.Item.from_dict(feature)
    props = feature["properties"]
    assert item.datetime is None
    assert props["start_datetime"].endswith("-02-01T00:00:00Z")
    assert props["end_datetime"].endswith("-11-30T00:00:00Z")
    assert props["capmon:processor"] == "baresoil"
    assert props["capmon:season"] == SEASON
    assert props["capmon:site"] == "beta"
    assert props["capmon:product_type"] == "s4c_baresoil"
    assert shape(feature["geometry"]).equals(site_aoi(processed.home, "beta"))
    assets = feature["assets"]
    assert assets["status.parquet"]["type"] == "application/vnd.apache.parquet"
    assert assets["periods.csv"]["type"] == "text/csv"
    assert assets["report.json"]["roles"] == ["metadata"]
    found = get_json(
        client, f"/stac/search?collections=baresoil&ids={processed.baresoil_item}", headers
    )
    assert [f["id"] for f in found["features"]] == [processed.baresoil_item]


# ---------------------------------------------------------------------------------------------
# Search


def test_search_filters_by_bbox_and_datetime(
    service_world: ServiceWorld,
    read_client: TestClient,
    auth_headers: dict[str, dict[str, str]],
) -> None:
    headers = auth_headers["view-alpha"]
    products = site_products(service_world.home, "alpha", "l2a")
    everything = walk_pages(read_client, "/stac/search?limit=7", headers)
    assert len(everything) == len(products) + 1  # plus the MDB
    aoi = site_aoi(service_world.home, "alpha")
    west, south = aoi.bounds[:2]
    inside = f"{west + 0.001},{south + 0.001},{west + 0.002},{south + 0.002}"
    found = walk_pages(read_client, f"/stac/search?limit=50&bbox={inside}", headers)
    assert len(found) == len(everything)
    far = get_json(read_client, "/stac/search?bbox=-10,-10,-9,-9", headers)
    assert far["features"] == []
    # an instant, a closed interval, open ones, a day
    product = sorted(products, key=acquired)[3]
    moment = acquired(product).strftime("%Y-%m-%dT%H:%M:%SZ")
    at = get_json(read_client, f"/stac/search?collections={S2}&datetime={moment}", headers)
    assert [f["id"] for f in at["features"]] == [f"alpha.{product.name}"]
    day = acquired(product).strftime("%Y-%m-%d")
    on_day = get_json(read_client, f"/stac/search?datetime={day}", headers)
    assert {f["id"] for f in on_day["features"]} == {f"alpha.{product.name}", MDB_ALPHA}
    until = walk_pages(read_client, f"/stac/search?collections={S2}&datetime=../{moment}", headers)
    since = walk_pages(read_client, f"/stac/search?collections={S2}&datetime={moment}/", headers)
    assert len(until) == 4
    assert len(since) == len(products) - 3
    year = service_world.year
    window = f"{year}-05-01T00:00:00Z/{year}-06-30T23:59:59Z"
    in_window = walk_pages(read_client, f"/stac/search?datetime={window}", headers)
    expected = {
        f"alpha.{p.name}"
        for p in products
        if datetime(year, 5, 1) <= acquired(p).replace(tzinfo=None) <= datetime(year, 7, 1)
    }
    assert {f["id"] for f in in_window} == expected | {MDB_ALPHA}
    before_season = get_json(read_client, f"/stac/search?datetime=../{year - 1}-12-31", headers)
    assert before_season["features"] == []
    polygon = json.dumps(shapely.geometry.mapping(aoi))
    touching = get_json(read_client, f"/stac/search?limit=3&intersects={polygon}", headers)
    assert len(touching["features"]) == 3


def test_search_post_pages_with_the_body_of_the_next_link(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    headers = auth_headers["view-alpha"]
    expected = [f["id"] for f in walk_pages(read_client, "/stac/search?limit=100", headers)]
    body: dict[str, Any] | None = {"limit": 4, "collections": [S2, "mdb"]}
    seen: list[str] = []
    while body is not None:
        answer = read_client.post("/stac/search", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/geo+json"
        page = answer.json()
        seen.extend(f["id"] for f in page["features"])
        nexts = [link for link in page["links"] if link["rel"] == "next"]
        if nexts:
            assert nexts[0]["method"] == "POST"
            body = nexts[0]["body"]
        else:
            body = None
    assert seen == expected
    ids = read_client.post(
        "/stac/search", json={"ids": expected[:2], "bbox": [-180, -90, 180, 90]}, headers=headers
    ).json()
    assert [f["id"] for f in ids["features"]] == expected[:2]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("datetime=yesterday", "datetime"),
        ("datetime=2024-06-01/2024-05-01", "datetime"),
        ("datetime=../..", "datetime"),
        ("bbox=1,2,3", "bbox"),
        ("bbox=0,10,1,5", "bbox"),
        ("bbox=a,b,c,d", "bbox"),
        (
            "bbox=0,0,1,1&intersects=%7B%22type%22%3A%22Point%22%2C%22coordinates%22%3A%5B0%2C0%5D%7D",
            "intersects",
        ),
        ("intersects=%7B%22type%22%3A%22Blob%22%7D", "intersects"),
        ("token=xyz", "token"),
        ("collections=nope", "nope"),
        ("limit=0", "limit"),
    ],
)
def test_search_rejects_bad_parameters(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], query: str, field: str
) -> None:
    answer = get_json(read_client, f"/stac/search?{query}", auth_headers["view-alpha"], 400)
    assert field in answer["detail"]


def test_search_post_rejects_unknown_fields(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    answer = read_client.post(
        "/stac/search", json={"filter": {"op": "="}}, headers=auth_headers["view-alpha"]
    )
    assert answer.status_code == 400
    assert "filter" in answer.json()["detail"]


def test_limit_above_the_maximum_is_served_as_the_maximum(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    page = get_json(read_client, "/stac/search?limit=100000", auth_headers["view-alpha"])
    assert not [link for link in page["links"] if link["rel"] == "next"]
    assert page["numberReturned"] == len(page["features"]) > 10


# ---------------------------------------------------------------------------------------------
# Site isolation


MDB_ALPHA = "alpha.mdb_S_declarations-1"


def test_a_viewer_of_alpha_never_sees_beta(processed: ProcessedWorld) -> None:
    client = processed.client
    alpha, beta, admin = (processed.headers[u] for u in ("view-alpha", "view-beta", "admin"))
    beta_products = site_products(processed.home, "beta")
    some_beta = f"beta.{beta_products[0].name}"
    beta_cid = collection_id(beta_products[0].product_type)

    # collections: beta's bare-soil product counts in beta's extent only
    for headers, has_baresoil in ((alpha, False), (beta, True), (admin, True)):
        document = get_json(client, "/stac/collections/baresoil", headers)
        interval = document["extent"]["temporal"]["interval"][0]
        assert (interval != [None, None]) is has_baresoil
        by_id = {c["id"]: c for c in get_json(client, "/stac/collections", headers)["collections"]}
        assert by_id["baresoil"] == document
    assert get_json(client, "/stac/collections/baresoil/items", alpha)["features"] == []

    # every item alpha can list or search belongs to alpha; beta's are all there for beta
    def ids(headers: dict[str, str], url: str) -> set[str]:
        return {f["id"] for f in walk_pages(client, url, headers)}

    alpha_all = ids(alpha, "/stac/search?limit=50")
    assert alpha_all
    assert all(i.startswith("alpha.") for i in alpha_all)
    for cid in {c["id"] for c in get_json(client, "/stac/collections", alpha)["collections"]}:
        listed = ids(alpha, f"/stac/collections/{cid}/items?limit=50")
        assert all(i.startswith("alpha.") for i in listed)
    beta_all = ids(beta, "/stac/search?limit=50")
    assert {f"beta.{p.name}" for p in beta_products} | {"beta.mdb_S_declarations-2"} == beta_all
    assert ids(admin, "/stac/search?limit=200") == alpha_all | beta_all
    assert ids(alpha, f"/stac/search?ids={some_beta},{processed.baresoil_item}") == set()
    posted = client.post(
        "/stac/search", json={"ids": [some_beta], "collections": [beta_cid]}, headers=alpha
    )
    assert posted.status_code == 200
    assert posted.json()["features"] == []

    # an item or asset of beta, existing or not: 403 for alpha (and the same answer)
    item_url = f"/stac/collections/{beta_cid}/items/{some_beta}"
    denied = get_json(client, item_url, alpha, 403)
    assert denied["type"].endswith("forbidden")
    assert get_json(client, item_url, beta)["id"] == some_beta
    get_json(client, f"/stac/collections/{beta_cid}/items/beta.NOT_THERE", alpha, 403)
    get_json(client, "/stac/collections/mdb/items/beta.mdb_S_declarations-2", alpha, 403)
    get_json(client, f"/stac/collections/{beta_cid}/items/gamma.X", alpha, 403)
    get_json(client, f"/stac/collections/{beta_cid}/items/gamma.X", admin, 404)
    beta_item = get_json(
        client, f"/stac/collections/baresoil/items/{processed.baresoil_item}", beta
    )
    for asset in beta_item["assets"].values():
        assert client.get(asset["href"], headers=beta).status_code == 200
        assert client.get(asset["href"], headers=alpha).status_code == 403
    mdb_asset = "/stac/assets/beta.mdb_S_declarations-2/mdb.json"
    assert client.get(mdb_asset, headers=alpha).status_code == 403
    assert client.get(mdb_asset, headers=beta).status_code == 200
    assert client.get("/stac/assets/beta.NOPE/x.csv", headers=alpha).status_code == 403
    # alpha's own assets stay readable
    assert client.get(f"/stac/assets/{MDB_ALPHA}/mdb.json", headers=alpha).status_code == 200


# ---------------------------------------------------------------------------------------------
# The search engine on a hand-made catalogue (SQLite and PostgreSQL)


T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def handmade(workspace: Workspace, tmp_path: Path) -> Workspace:
    """Sites near (sites ``east``, ``west``) with products of known footprints and times:
    two with the same time (paging ties), one without a time, a processor product without a
    footprint, and one across the antimeridian."""
    folder = tmp_path / "product"
    folder.mkdir()
    (folder / "band.tif").write_bytes(b"II*\x00")
    with workspace.session() as session:
        east = create_site(session, "east", box(10.0, 45.0, 10.5, 45.5))
        west = create_site(session, "west", box(-5.0, 40.0, -4.5, 40.5))
        create_season(session, east, "2024", SeasonDates.parse("2024-02-01", "2024-11-30"))

        def add(site: Site, name: str, **fields: Any) -> None:
            session.add(
                Product(
                    site_id=site.id, name=name, product_type=fields.pop("kind", "l2a"),
                    path=str(folder), properties={}, **fields,
                )
            )  # fmt: skip

        for n in range(6):
            add(
                east,
                f"E{n}",
                acquired_at=T0 + timedelta(days=n),
                footprint=box(9.8, 44.8, 10.3, 45.3),
            )
        add(east, "TIE_A", acquired_at=T0 + timedelta(days=2), footprint=box(10.4, 45.4, 11, 46))
        add(east, "NOTIME", footprint=box(9.8, 44.8, 10.3, 45.3))
        add(
            east, "L4A", kind="s4c_l4a", acquired_first_at=T0 - timedelta(days=20),
            acquired_at=T0 + timedelta(days=40),
        )  # fmt: skip
        add(
            east, "DATELINE", acquired_at=T0 + timedelta(days=1),
            footprint=shapely.MultiPolygon([box(179, 0, 180, 1), box(-180, 0, -179, 1)]),
        )  # fmt: skip
        add(west, "W0", acquired_at=T0, footprint=box(-5.2, 39.8, -4.8, 40.2))
    return workspace


def engine_ids(catalog: StacCatalog, **search: Any) -> list[str]:
    """Every id of a search, paging with small pages (checks paging against ties)."""
    out: list[str] = []
    token = None
    while True:
        features, after = catalog.search(Search.build(token=token, limit=2, **search))
        out.extend(f["id"] for f in features)
        if after is None:
            return out
        token = after.encode()


def test_search_engine_orders_pages_and_filters(handmade: Workspace) -> None:
    admin = StacCatalog(handmade, Principal("root", Role.ADMIN, frozenset()), "http://x")
    everything = engine_ids(admin)
    assert everything[:3] == ["east.L4A", "east.E5", "east.E4"]
    assert everything[-1] == "east.NOTIME"  # no time: last
    assert len(everything) == len(set(everything)) == 11
    ties = everything.index("east.TIE_A")  # same time as E2, registered later: first
    assert everything[ties : ties + 2] == ["east.TIE_A", "east.E2"]
    # bbox: footprints; a product without footprint counts with its site's AOI
    assert set(engine_ids(admin, bbox=box(10.45, 45.45, 10.6, 45.6))) == {"east.TIE_A", "east.L4A"}
    assert engine_ids(admin, bbox=box(-4.9, 40.3, -4.7, 40.4)) == []  # west AOI, no footprint
    assert engine_ids(admin, bbox=box(-5.1, 39.9, -5.0, 40.0)) == ["west.W0"]
    assert engine_ids(admin, bbox=box(179.5, 0.5, 179.6, 0.6)) == ["east.DATELINE"]
    assert engine_ids(admin, bbox=parse_bbox([179.9, 0.2, -179.9, 0.3])) == ["east.DATELINE"]
    # datetime: instants and ranges (the L4A covers T0-20d..T0+40d)
    day = T0 + timedelta(days=3)
    assert engine_ids(admin, datetime_text=day.isoformat()) == ["east.L4A", "east.E3"]
    before = (T0 - timedelta(days=10)).isoformat()
    assert engine_ids(admin, datetime_text=f"../{before}") == ["east.L4A"]
    # a product without acquisition time has its registration time (now)
    assert engine_ids(admin, datetime_text=f"{(T0 + timedelta(days=30)).isoformat()}/..") == [
        "east.L4A",
        "east.NOTIME",
    ]
    notime = admin.item("sentinel-2-l2a", "east.NOTIME")["properties"]
    assert notime["datetime"] == notime["created"]
    assert engine_ids(admin, ids=["east.E1", "west.W0", "nowhere.X", "noprefix"]) == [
        "east.E1",
        "west.W0",
    ]
    assert engine_ids(admin, collections=["l4a"]) == ["east.L4A"]
    # a viewer of west sees west only, however it asks
    viewer = StacCatalog(handmade, Principal("v", Role.VIEWER, frozenset({2})), "http://x")
    assert engine_ids(viewer) == ["west.W0"]
    assert engine_ids(viewer, ids=["east.E1"]) == []
    with pytest.raises(ForbiddenError):
        viewer.item("sentinel-2-l2a", "east.E1")
    with pytest.raises(ForbiddenError):
        viewer.asset_root("east.E1")
    with pytest.raises(NotFoundError):
        viewer.item("sentinel-2-l2a", "west.E1")
    collections = {c["id"]: c for c in viewer.collections()}
    assert collections["sentinel-2-l2a"]["extent"]["spatial"]["bbox"] == [
        pytest.approx([-5.2, 39.8, -4.8, 40.2])
    ]
    assert collections["l4a"]["extent"]["temporal"]["interval"] == [[None, None]]
    east_extent = {c["id"]: c for c in admin.collections()}["l4a"]["extent"]
    assert east_extent["spatial"]["bbox"] == [pytest.approx([10.0, 45.0, 10.5, 45.5])]
    l4a = admin.item("l4a", "east.L4A")
    assert l4a["properties"]["datetime"] is None
    assert l4a["properties"]["capmon:season"] == "2024"
    assert l4a["properties"]["processing:level"] == "L4A"
    assert shape(l4a["geometry"]).equals(box(10.0, 45.0, 10.5, 45.5))


# ---------------------------------------------------------------------------------------------
# Small pieces


def test_datetime_parameter() -> None:
    at = datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_datetime("2024-05-01T10:00:00Z") == Interval(at, at)
    assert parse_datetime("2024-05-01T12:00:00+02:00") == Interval(at, at)
    assert parse_datetime("2024-05-01T10:00:00Z/..") == Interval(at, None)
    assert parse_datetime("/2024-05-01T10:00:00Z") == Interval(None, at)
    day = parse_datetime("2024-05-01")
    assert day is not None
    assert day.start == datetime(2024, 5, 1, tzinfo=UTC)
    assert day.end == datetime(2024, 5, 2, tzinfo=UTC) - timedelta(microseconds=1)
    assert parse_datetime(None) is None
    assert parse_datetime("  ") is None
    for bad in ("2024-13-01", "a/b/c", "../..", "2024-05-02/2024-05-01"):
        with pytest.raises(InputError, match="datetime"):
            parse_datetime(bad)
    assert Interval(at, None).meets(at - timedelta(days=1), at)
    assert not Interval(at, None).meets(None, at - timedelta(seconds=1))
    assert not Interval(None, at).meets(at + timedelta(seconds=1), at + timedelta(days=1))


def test_sort_key_token_round_trip() -> None:
    key = SortKey(datetime(2024, 5, 1, tzinfo=UTC), 1, 7, 3)
    assert SortKey.decode(key.encode()) == key
    empty = SortKey(None, 0, 12)
    assert SortKey.decode(empty.encode()) == empty
    assert key.order() < empty.order()  # items without time come last


def test_asset_root_serves_only_files_inside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "product"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "table.csv").write_text("a\n", encoding="utf-8")
    (folder / "report.json").write_text("{}", encoding="utf-8")
    (folder / ".tmp.csv").write_text("a\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    (folder / "outside.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "inside.json").symlink_to(folder / "report.json")
    root = AssetRoot(folder)
    assert [relative for relative, _path in root.files()] == [
        "inside.json",
        "report.json",
        "sub/table.csv",
    ]
    assert root.file("sub/table.csv") == (folder / "sub" / "table.csv").resolve()
    for bad in (
        "", "../secret.txt", "sub/../../secret.txt", str(tmp_path / "secret.txt"), "outside.txt",
        ".tmp.csv", "sub", "sub\\..\\..\\secret.txt", "missing.csv", "report.json\x00",
        "sub/.hidden",
    ):  # fmt: skip
        with pytest.raises(NotFoundError):
            root.file(bad)
    single = AssetRoot(folder / "report.json")
    assert [relative for relative, _path in single.files()] == ["report.json"]
    assert single.file("report.json") == (folder / "report.json").resolve()
    with pytest.raises(NotFoundError):
        single.file("../sub/table.csv")
    mdb = AssetRoot(folder, is_mdb=True)
    assert [relative for relative, _path in mdb.files()] == ["inside.json", "report.json"]
    with pytest.raises(NotFoundError):
        mdb.file("sub/table.csv")


def test_media_types(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tif"
    plain.write_bytes(b"II*\x00" + b"\x00" * 64)
    cog = tmp_path / "cog.tif"
    cog.write_bytes(b"II*\x00\x08\x00\x00\x00GDAL_STRUCTURAL_METADATA_SIZE=000140 bytes\n"
                    b"LAYOUT=IFDS_BEFORE_DATA\n")  # fmt: skip
    assert media_type(plain) == "image/tiff; application=geotiff"
    assert media_type(cog) == COG
    expected = {
        "a.gpkg": "application/geopackage+sqlite3",
        "a.parquet": "application/vnd.apache.parquet",
        "a.csv": "text/csv",
        "a.zip": "application/zip",
        "a.json": "application/json",
        "a.jp2": "image/jp2",
        "a.unknownext": "application/octet-stream",
    }
    for name, kind in expected.items():
        assert media_type(tmp_path / name) == kind
