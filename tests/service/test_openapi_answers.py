"""The OpenAPI document and the answers agree (issue 18, item 9): declared error answers,
time zones, 405 with Allow, STAC pages, and schemathesis with all its checks (positive and
negative data, every phase) over every operation, for an admin and a viewer."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from capmon.catalog.models import Product
from capmon.orchestrator.execute import ClusterSpec
from capmon.processors import all_processors
from capmon.service.stac import MAX_LIMIT
from capmon.sites import SeasonDates, create_season, create_site, get_site
from capmon.workspace import open_workspace
from tests.service.conftest import SEASON, LiveService, ServiceWorld, login, make_app

ANONYMOUS = {"/", "/conformance", "/auth/token", "/auth/login"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "responses" in operation
    ]


def test_every_operation_declares_its_error_answers(read_client: TestClient) -> None:
    document = read_client.get("/openapi.json").json()
    operations = _operations(document)
    assert len(operations) > 40
    for path, method, operation in operations:
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        assert "422" not in responses, where  # validation errors answer 400
        if path not in ANONYMOUS:
            assert {"401", "403"} <= set(responses), where
            assert "WWW-Authenticate" in responses["401"]["headers"], where
        if "{" in path:
            assert "404" in responses, where
        if operation.get("parameters") or operation.get("requestBody"):
            assert "400" in responses, where
        for status, response in responses.items():
            if status.startswith("4") and "content" in response:
                assert "application/json" in response["content"], (where, status)
    logs = document["paths"]["/jobs/{jobID}/logs"]["get"]["responses"]
    assert set(logs["404"]["content"]) == {"application/json"}
    token = document["paths"]["/auth/token"]["post"]["responses"]
    assert token["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/OAuthError")


def test_405_names_the_allowed_methods(read_client: TestClient) -> None:
    answer = read_client.delete("/conformance")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
    assert answer.json()["status"] == 405


def test_time_stamps_carry_their_time_zone(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    sites = read_client.get("/sites", headers=auth_headers["admin"]).json()
    assert sites
    for site in sites:
        assert site["created_at"].endswith(("Z", "+00:00")), site["created_at"]


def test_405_names_every_method_of_the_path(read_client: TestClient) -> None:
    """Starlette named only the methods of the first route of the path (GET /sites/{site}
    hid PATCH and DELETE)."""
    for method, path, allowed in (
        ("OPTIONS", "/sites/alpha", "GET, PATCH, DELETE"),
        ("PUT", "/stac/search", "GET, POST"),
        ("OPTIONS", "/sites/alpha/seasons/S", "GET, PATCH, DELETE"),
        ("PUT", "/jobs/x", "GET, DELETE"),
        ("DELETE", "/stac/assets/x/a/b.tif", "GET, HEAD"),
    ):
        answer = read_client.request(method, path)
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"] == allowed, (method, path)


def test_the_job_log_404_is_the_json_the_document_declares(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    document = read_client.get("/openapi.json").json()
    declared = document["paths"]["/jobs/{jobID}/logs"]["get"]["responses"]
    answer = read_client.get(
        "/jobs/0123456789abcdef0123456789abcdef/logs", headers=auth_headers["admin"]
    )
    assert answer.status_code == 404
    media = answer.headers["content-type"].split(";")[0]
    assert media == "application/json"
    assert set(declared["404"]["content"]) == {media}
    assert answer.json()["status"] == 404
    assert set(declared["200"]["content"]) == {"text/plain"}


def test_token_endpoints_are_oauth2_token_urls(read_client: TestClient) -> None:
    document = read_client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    token_urls = {
        flow["tokenUrl"]
        for scheme in schemes.values()
        if scheme["type"] == "oauth2"
        for flow in scheme["flows"].values()
    }
    assert token_urls == {"/auth/token", "/auth/login"}
    for name in ("OAuth2", "Sen4CAPLogin"):
        assert {name: []} in document["paths"]["/sites"]["get"]["security"]
    assert "security" not in document["paths"]["/auth/token"]["post"]


def test_constraints_the_service_enforces_are_in_the_document(read_client: TestClient) -> None:
    paths = read_client.get("/openapi.json").json()["paths"]

    def parameter(path: str, name: str) -> dict[str, Any]:
        found = [p for p in paths[path]["get"]["parameters"] if p["name"] == name]
        return dict(found[0]["schema"])

    assert "pattern" in parameter("/stac/search", "datetime")
    assert "pattern" in parameter("/stac/search", "bbox")
    assert "pattern" in parameter("/stac/collections/{cid}/items", "datetime")
    assert "pattern" in parameter("/sites/{site}/seasons/{season}/parcels.geojson", "bbox")
    assert "pattern" in parameter("/tiles/signals/{product_id}/{signal}/{z}/{x}/{y}.png", "signal")
    timeseries = "/sites/{site}/seasons/{season}/parcels/{parcel_id}/timeseries"
    assert "pattern" in parameter(timeseries, "signals")
    assert "pattern" in parameter("/jobs", "status")
    for method, path in (
        ("delete", "/sites/{site}"),
        ("post", "/sites/{site}/seasons"),
        ("patch", "/sites/{site}/seasons/{season}"),
        ("delete", "/sites/{site}/seasons/{season}"),
    ):
        assert "409" in paths[path][method]["responses"], (method, path)
    assets = paths["/stac/assets/{iid}/{path}"]["get"]["responses"]["200"]
    assert set(assets["content"]) == {"*/*"}  # a file's own media type


def test_stac_datetimes_and_boxes_follow_the_documented_syntax(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    headers = auth_headers["view-alpha"]
    for query in (
        "datetime=0001-01-01T00:00:00%2B01:00",  # before datetime.min in UTC: was a 500
        "datetime=9999-12-31T23:00:00-05:00/..",
        "datetime=2024-05-01/2024-05-02",
        "datetime=../2024-05-01T00:00:00Z",
        "bbox=-180,-90,180,90",
        "bbox=170,-10,-170,10",  # across the antimeridian
    ):
        answer = read_client.get(f"/stac/search?{query}", headers=headers)
        assert answer.status_code == 200, (query, answer.text)
    for query in (
        "datetime=2024-05-01T00:00:00",  # no offset
        "datetime=20240501",
        "datetime=2024-05-01%0A",
        "bbox=1e1,0,20,10",
        "bbox=181,0,182,1",
        "bbox=0,0,1,1,",
        "token=not%20a%20token",
    ):
        answer = read_client.get(f"/stac/search?{query}", headers=headers)
        assert answer.status_code == 400, (query, answer.text)
    for bbox in ([False, 0, 1, 1], [200, 0, 201, 1], ["1", 0, 2, 1]):
        answer = read_client.post("/stac/search", json={"bbox": bbox}, headers=headers)
        assert answer.status_code == 400, (bbox, answer.text)


def test_execution_requests_name_their_site(read_client: TestClient) -> None:
    schemas = read_client.get("/openapi.json").json()["components"]["schemas"]
    execute = schemas["Execute"]
    assert execute["required"] == ["inputs"]
    assert execute["properties"]["inputs"]["required"] == ["site"]


@pytest.fixture
def many_products(service_world: ServiceWorld, tmp_path: Path) -> Iterator[TestClient]:
    """The service on a copy of the workspace whose site alpha has 250 more Sentinel-2
    products (copies of one, under other names)."""
    home = tmp_path / "home"
    shutil.copytree(service_world.home, home)
    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            site = get_site(session, "alpha")
            model = session.scalars(
                select(Product).where(Product.site_id == site.id, Product.product_type == "l2a")
            ).first()
            assert model is not None
            for number in range(250):
                session.add(
                    Product(
                        site_id=site.id,
                        name=f"{model.name}_COPY{number:03d}",
                        product_type=model.product_type,
                        sensor=model.sensor,
                        acquired_at=model.acquired_at,
                        tile=model.tile,
                        footprint=model.footprint,
                        path=model.path,
                        properties=model.properties,
                    )
                )
    finally:
        workspace.dispose()
    with TestClient(make_app(home)) as client:
        yield client


def test_stac_pages_are_capped_and_say_so(many_products: TestClient) -> None:
    """The largest page is MAX_LIMIT (200) items with a next link, whatever limit is asked
    (STAC API: a larger limit is served as the maximum); the document states the cap."""
    client = many_products
    assert MAX_LIMIT == 200
    headers = login(client, "view-alpha")
    for url in (
        f"/stac/search?limit={MAX_LIMIT}",
        "/stac/search?limit=100000",
        "/stac/collections/sentinel-2-l2a/items?limit=100000",
    ):
        page = client.get(url, headers=headers).json()
        assert page["numberReturned"] == len(page["features"]) == MAX_LIMIT, url
        assert [link for link in page["links"] if link["rel"] == "next"], url
    posted = client.post("/stac/search", json={"limit": 100000}, headers=headers).json()
    assert len(posted["features"]) == MAX_LIMIT
    [follow] = [link for link in posted["links"] if link["rel"] == "next"]
    rest = client.post("/stac/search", json=follow["body"], headers=headers).json()
    assert 0 < len(rest["features"]) <= MAX_LIMIT
    document = client.get("/openapi.json").json()
    for path, method in (
        ("/stac/search", "get"),
        ("/stac/search", "post"),
        ("/stac/collections/{cid}/items", "get"),
    ):
        page_schema = document["paths"][path][method]["responses"]["200"]["content"][
            "application/geo+json"
        ]["schema"]
        assert page_schema["properties"]["features"]["maxItems"] == MAX_LIMIT
        assert page_schema["properties"]["numberReturned"]["maximum"] == MAX_LIMIT
    limit = [
        p for p in document["paths"]["/stac/search"]["get"]["parameters"] if p["name"] == "limit"
    ]
    assert str(MAX_LIMIT) in limit[0]["description"]


# ---------------------------------------------------------------------------------------------
# schemathesis, every check, every operation

POSITIVE_ALSO_400 = {
    "POST /sites": "an uploaded file's content (a readable AOI) cannot be said in OpenAPI",
    "POST /sites/{site}/declarations": "the file's content (readable parcels, the columns named)",
    "POST /sites/{site}/luts": "the file's content (a crop LUT)",
    "POST /sites/{site}/configs/l4b": "the file's content (an L4B config)",
    "POST /sites/{site}/configs/l4c": "the file's content (an L4C config)",
    "POST /sites/{site}/practices": "the file's content (a practices table)",
    "POST /sites/{site}/seasons": "start < mid < end compares fields",
    "PATCH /sites/{site}/seasons/{season}": "new dates are checked against the stored ones",
    "POST /processes/{processID}/execution": "the inputs depend on the process in the path",
    "GET /stac/search": "south <= north, an interval's start <= end, bbox or intersects, "
    "collections of the catalogue, tokens the service issued",
    "POST /stac/search": "as GET /stac/search, and latitudes within -90..90 in a bbox "
    "array (OpenAPI 3.0 has no per-position item schemas)",
    "GET /stac/collections/{cid}/items": "south <= north, an interval's start <= end, tokens",
    "GET /sites/{site}/seasons/{season}/parcels.geojson": "minx < maxx, miny < maxy, and at "
    "most 5000 parcels in the box",
    "GET /sites/{site}/seasons/{season}/parcels/{parcel_id}/timeseries": "start <= end, and "
    "signals the season's MDB stores",
    "GET /tiles/signals/{product_id}/{signal}/{z}/{x}/{y}.png": "min < max, a signal the "
    "product's sensor has, a matplotlib colour map",
}
"""Operations whose valid-looking requests may be refused (400) by a rule OpenAPI cannot
state (between fields, on a file's content, on stored data): only there, positive data may
also get 400. Every other check stays as it is."""

ACCEPTED = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"""schemathesis's default expected statuses of positive data, plus 400 (5xx is the
not_a_server_error check's business)."""

VIEWER = "view-alpha"


def _config(dictionaries: dict[str, list[Any]], max_examples: int) -> str:
    """A schemathesis.toml: fixed seed, every check, names of existing things used half of
    the time (for the path and query parameters of that name, or the body field a dotted
    name points to), and the per-operation exceptions of :data:`POSITIVE_ALSO_400`."""
    lines = [
        "seed = 18",
        "[generation]",
        f"max-examples = {max_examples}",
        "deterministic = true",
        "[checks]",
        "enabled = true",
    ]
    bindings = {}
    for name, values in dictionaries.items():
        dictionary = name.replace(".", "_")
        lines += [f"[dictionaries.{dictionary}]", f"values = {json.dumps(values)}"]
        for key in [name] if "." in name else [f"path.{name}", f"query.{name}"]:
            bindings[key] = dictionary
    lines.append("[parameters]")
    for key, dictionary in bindings.items():
        lines.append(f'"{key}" = {{ dictionary = "{dictionary}", probability = 0.5 }}')
    for label in POSITIVE_ALSO_400:
        method, path = label.split(" ", 1)
        lines += [
            "[[operations]]",
            f'include-method = "{method}"',
            f'include-path = "{path}"',
            f"checks.positive_data_acceptance.expected-statuses = {json.dumps(ACCEPTED)}",
        ]
    return "\n".join(lines) + "\n"


def run_schemathesis(
    url: str,
    token: str,
    operations: str,
    work: Path,
    dictionaries: dict[str, list[Any]],
    max_examples: int,
) -> None:
    """``st run`` over the operations whose label ("GET /sites/{site}") matches the regular
    expression ``operations``, all checks, both generation modes and every phase (examples,
    coverage, fuzzing, stateful); the token goes where the document asks for one."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "schemathesis.toml"
    auth = f'[auth.openapi.HTTPBearer]\nbearer = "{token}"\n'
    config.write_text(_config(dictionaries, max_examples) + auth)
    command = [
        *(sys.executable, "-m", "schemathesis.cli"),
        *("--config-file", str(config), "--no-color", "run", f"{url}/openapi.json"),
        *("--checks", "all", "--mode", "all", "--workers", "1"),
        *("--phases", "examples,coverage,fuzzing,stateful"),
        *("--include-name-regex", operations),
        *("--request-timeout", "60", "--output-truncate", "false"),
    ]
    answer = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=600)
    assert answer.returncode == 0, answer.stdout[-20000:] + answer.stderr[-5000:]
    assert "No operations" not in answer.stdout, answer.stdout


FAST_FAIL_SITE, FAST_FAIL_SEASON = "gamma", "G"
"""A site without declarations: every processor run on it fails at once."""


@pytest.fixture
def live_world(service_world: ServiceWorld, tmp_path: Path) -> Iterator[tuple[str, TestClient]]:
    """The service over HTTP on a private copy of the workspace with a site gamma (one Dask
    worker)."""
    home = tmp_path / "home"
    shutil.copytree(service_world.home, home)
    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            gamma = create_site(session, FAST_FAIL_SITE, get_site(session, "alpha").aoi)
            year = service_world.year
            dates = SeasonDates.parse(f"{year}-02-01", f"{year}-11-30", f"{year}-06-15")
            create_season(session, gamma, FAST_FAIL_SEASON, dates)
    finally:
        workspace.dispose()
    app = make_app(home, cluster=ClusterSpec(workers=1, threads=1), sync_wait_seconds=2.0)
    with LiveService(app) as live, TestClient(app) as client:
        yield live.url, client


def _known_names(client: TestClient, admin: dict[str, str]) -> dict[str, list[Any]]:
    """Names of things that exist, for the generated requests to reach past the 404s."""
    page = client.get("/stac/search?limit=5", headers=admin).json()
    layers = client.get(f"/sites/alpha/seasons/{SEASON}/layers", headers=admin).json()
    return {
        "site": ["alpha", "beta"],
        "season": [SEASON],
        "cid": sorted({feature["collection"] for feature in page["features"]}),
        "iid": [feature["id"] for feature in page["features"]],
        "parcel_id": ["1", "2"],
        "layer": [layer["id"] for layer in layers["layers"]],
        "product_id": [p["product_id"] for p in layers["rasters"]["products"][:3]],
        "processID": [p.id for p in all_processors()],
    }


READ_OPERATIONS = r"^(GET (?!/jobs|/processes).*|POST /stac/search|POST /auth/(token|login))$"
WRITE_OPERATIONS = r"^(POST|PATCH|PUT|DELETE) /sites.*$"
JOB_OPERATIONS = r"^[A-Z]+ /(jobs|processes).*$"


def test_the_schemathesis_runs_cover_every_operation(read_client: TestClient) -> None:
    document = read_client.get("/openapi.json").json()
    labels = [f"{method.upper()} {path}" for path, method, _op in _operations(document)]
    assert len(labels) > 50
    for label in labels:
        runs = [
            r for r in (READ_OPERATIONS, WRITE_OPERATIONS, JOB_OPERATIONS) if re.match(r, label)
        ]
        assert len(runs) == 1, (label, runs)
    assert set(POSITIVE_ALSO_400) <= set(labels)


def _users(client: TestClient) -> dict[str, str]:
    return {
        user: login(client, user)["Authorization"].removeprefix("Bearer ")
        for user in ("admin", VIEWER)
    }


@pytest.mark.parametrize("user", ["admin", VIEWER])
@pytest.mark.parametrize(
    "operations",
    [READ_OPERATIONS, WRITE_OPERATIONS],
    ids=["read operations", "site changes"],
)
def test_schemathesis_finds_no_failure_on_reads_and_site_changes(
    live_world: tuple[str, TestClient], tmp_path: Path, user: str, operations: str
) -> None:
    """Every GET (but jobs' and processes'), the token endpoints and POST /stac/search; then
    uploads, sites and seasons: created, changed and deleted (on the private copy)."""
    url, client = live_world
    tokens = _users(client)
    names = _known_names(client, {"Authorization": f"Bearer {tokens['admin']}"})
    run_schemathesis(url, tokens[user], operations, tmp_path / "st", names, max_examples=8)


@pytest.mark.parametrize("user", ["admin", VIEWER])
def test_schemathesis_finds_no_failure_on_processes_and_jobs(
    live_world: tuple[str, TestClient], tmp_path: Path, user: str
) -> None:
    """Process list, descriptions and execution, and every job route on real jobs (of a site
    where runs fail at once, so that executions stay cheap): status, results, logs, pause,
    resume, cancel, dismiss."""
    url, client = live_world
    tokens = _users(client)
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    names = _known_names(client, admin)
    jobs = []
    for process in ("baresoil", "mdb", "multiannual"):
        inputs = {"site": FAST_FAIL_SITE, "season": FAST_FAIL_SEASON}
        answer = client.post(
            f"/processes/{process}/execution", headers=admin, json={"inputs": inputs}
        )
        assert answer.status_code == 201, answer.text
        jobs.append(answer.json()["jobID"])
    names["jobID"] = jobs
    names["body.inputs.site"] = [FAST_FAIL_SITE]
    names["body.inputs.season"] = [FAST_FAIL_SEASON]
    run_schemathesis(url, tokens[user], JOB_OPERATIONS, tmp_path / "st", names, max_examples=8)
