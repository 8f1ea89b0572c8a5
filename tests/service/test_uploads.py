"""Uploads over HTTP: declarations, crop LUT, L4B/L4C configs and practices.

Good files are stored as a new version with the import report; bad files (missing column,
invalid geometry, no CRS, wrong config key, too large...) answer 400/413 naming the file and
row or key, and leave what was stored as it was. Property-based tests (schemathesis) send
arbitrary requests built from the OpenAPI document to the upload, site and season routes:
none may answer 500.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from shapely.geometry import Point, Polygon
from sqlalchemy import func, select

from capmon.catalog.models import CropLut, DeclarationSet
from capmon.processors.l4b.config import read_l4b_config
from capmon.processors.l4c.practices import stored_config, stored_practices
from capmon.workspace import open_workspace
from tests.service.conftest import (
    PASSWORD,
    SEASON,
    LiveService,
    ServiceWorld,
    login,
    make_app,
)

YEAR = 2024
MAPPING = {
    "year": str(YEAR),
    "parcel_id_col": "PARCEL_ID",
    "holding_id_col": "HOLDING_ID",
    "crop_code_col": "CROP_CODE",
}
STORED = ("parcels", "luts", "practices", "configs")


def stored_state(home: Path) -> dict[str, Any]:
    """Every stored file (path, size) and the catalogue's import rows: must not change on a
    refused upload."""
    files = sorted(
        (p.relative_to(home).as_posix(), p.stat().st_size)
        for folder in STORED
        if (home / folder).exists()
        for p in (home / folder).rglob("*")
        if p.is_file()
    )
    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            rows = {
                model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in (DeclarationSet, CropLut)
            }
    finally:
        workspace.dispose()
    return {"files": files, "rows": rows}


def no_temporary_files(home: Path) -> bool:
    folder = home / "uploads" / "tmp"
    return not folder.exists() or not any(folder.iterdir())


@pytest.fixture
def client(writable_home: Path) -> Iterator[TestClient]:
    with TestClient(make_app(writable_home)) as test_client:
        yield test_client


def post(
    client: TestClient,
    route: str,
    payload: bytes,
    filename: str,
    data: dict[str, Any],
    user: str = "op-alpha",
) -> Any:
    return client.post(
        route, headers=login(client, user), data=data, files={"file": (filename, payload)}
    )


def declarations_frame(world: ServiceWorld) -> gpd.GeoDataFrame:
    return gpd.read_file(world.world.declarations[YEAR])


def gpkg_bytes(frame: gpd.GeoDataFrame, folder: Path) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "parcels.gpkg"
    frame.to_file(path, driver="GPKG")
    return path.read_bytes()


def zip_without_prj(source: Path) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(out, "w") as copy:
        for member in archive.namelist():
            if not member.lower().endswith(".prj"):
                copy.writestr(member, archive.read(member))
    return out.getvalue()


# --- declarations ------------------------------------------------------------------------


def test_declarations_upload_stores_a_version_with_its_report(
    service_world: ServiceWorld, client: TestClient, writable_home: Path
) -> None:
    payload = service_world.world.declarations[YEAR].read_bytes()
    answer = post(client, "/sites/alpha/declarations", payload, "GSAA 2024.zip", MAPPING)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["kind"] == "declarations"
    assert body["version"] == 2
    assert body["files"] == ["GSAA 2024.zip"]
    assert body["stored"] == "parcels/alpha/2024/v2/parcels.parquet"
    report = body["report"]
    assert report["counts"]["read"] == 60
    assert report["counts"]["unchanged"] == 60
    assert report["previous_version"] == 1
    assert report["source"].startswith("GSAA 2024.zip")
    stored = json.loads((writable_home / "parcels/alpha/2024/v2/report.json").read_text())
    assert stored["source"] == report["source"]
    listed = client.get("/sites/alpha/declarations", headers=login(client, "view-alpha")).json()
    assert [(v["year"], v["version"]) for v in listed] == [(2024, 1), (2024, 2)]
    assert listed[1]["source_file"] == "GSAA 2024.zip"
    assert listed[1]["report"]["source"] == report["source"]
    assert "uploads/tmp" not in json.dumps(listed)
    assert no_temporary_files(writable_home)


@pytest.mark.parametrize(
    ("mode", "deleted", "kept", "active"),
    [("update", 20, 0, 40), ("incremental", 0, 20, 60), ("replace", 0, 0, 40)],
)
def test_declaration_modes(
    service_world: ServiceWorld,
    client: TestClient,
    tmp_path: Path,
    mode: str,
    deleted: int,
    kept: int,
    active: int,
) -> None:
    subset = declarations_frame(service_world).iloc[:40]
    payload = gpkg_bytes(subset, tmp_path)
    answer = post(
        client, "/sites/alpha/declarations", payload, "subset.gpkg", MAPPING | {"mode": mode}
    )
    assert answer.status_code == 201, answer.text
    counts = answer.json()["report"]["counts"]
    assert (counts["deleted"], counts["kept"], counts["active_parcels"]) == (deleted, kept, active)


def test_declarations_report_lists_invalid_geometries_by_row(
    service_world: ServiceWorld, client: TestClient, tmp_path: Path
) -> None:
    frame = declarations_frame(service_world)
    x0, y0, x1, y1 = frame.geometry.iloc[4].bounds
    frame.loc[4, "geometry"] = Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])  # bow tie
    answer = post(
        client, "/sites/alpha/declarations", gpkg_bytes(frame, tmp_path), "p.gpkg", MAPPING
    )
    assert answer.status_code == 201, answer.text
    report = answer.json()["report"]
    assert report["counts"]["invalid"] == 1
    problem = report["problems"]["invalid"]["rows"][0]
    assert problem["row"] == 5
    assert problem["ori_id"] == frame.loc[4, "PARCEL_ID"]
    assert "Self-intersection" in problem["detail"]


def _points(world: ServiceWorld, folder: Path) -> bytes:
    frame = declarations_frame(world)
    frame.loc[2, "geometry"] = Point(frame.geometry.iloc[2].centroid)
    return gpkg_bytes(frame, folder)


def _ids(world: ServiceWorld, folder: Path, ids: list[Any]) -> bytes:
    frame = declarations_frame(world).iloc[: len(ids)].copy()
    frame["PARCEL_ID"] = ids
    return gpkg_bytes(frame, folder)


BAD_UPLOADS: list[Any] = [
    pytest.param(
        "/sites/alpha/declarations",
        lambda world, folder: world.world.declarations[YEAR].read_bytes(),
        "decl.zip",
        MAPPING | {"crop_code_col": "CROP"},
        ["decl.zip", "no crop code column 'CROP'", "Available columns: PARCEL_ID"],
        id="declarations missing column",
    ),
    pytest.param(
        "/sites/alpha/declarations",
        _points,
        "decl.gpkg",
        MAPPING,
        ["decl.gpkg", "1 features are not polygons: row 3 (Point)"],
        id="declarations point geometry",
    ),
    pytest.param(
        "/sites/alpha/declarations",
        lambda world, folder: zip_without_prj(world.world.declarations[YEAR]),
        "decl.zip",
        MAPPING,
        ["decl.zip", "no coordinate reference system"],
        id="declarations without CRS",
    ),
    pytest.param(
        "/sites/alpha/declarations",
        lambda world, folder: _ids(world, folder, [1.0, 2.5, 1e300]),
        "decl.gpkg",
        MAPPING,
        ["decl.gpkg", "row 3, column 'PARCEL_ID': the id 1e+300 is a real number of 2**53"],
        id="declarations real id beyond exact integers",
    ),
    pytest.param(
        "/sites/alpha/declarations",
        lambda world, folder: _ids(world, folder, ["a", "b" * 255]),
        "decl.gpkg",
        MAPPING,
        ["decl.gpkg", "row 2, column 'PARCEL_ID': the id is 255 characters long"],
        id="declarations id too long",
    ),
    pytest.param(
        "/sites/alpha/declarations",
        lambda world, folder: b"SQLite format 3\x00 but not really",
        "decl.gpkg",
        MAPPING,
        ["decl.gpkg", "not a readable vector file"],
        id="declarations not a vector file",
    ),
    pytest.param(
        "/sites/alpha/declarations",
        lambda world, folder: b"PARCEL_ID;CROP\n1;2\n",
        "decl.csv",
        MAPPING,
        ["decl.csv", "not a file format capmon reads for declarations", ".gpkg"],
        id="declarations unknown format",
    ),
    pytest.param(
        "/sites/alpha/luts",
        lambda world, folder: (
            world.world.lut.read_text().replace("ctnum,", "ctnumber,", 1).encode()
        ),
        "lut.csv",
        {"year": str(YEAR)},
        ["lut.csv", "lacks the required columns ctnum"],
        id="lut missing column",
    ),
    pytest.param(
        "/sites/alpha/luts",
        lambda world, folder: _break_lut_line(world.world.lut.read_text(), 3),
        "lut.csv",
        {"year": str(YEAR)},
        ["lut.csv", "line 3: ctnum 'x2' is not an integer"],
        id="lut bad value",
    ),
    pytest.param(
        "/sites/alpha/luts",
        lambda world, folder: world.world.lut.read_text().encode("utf-16"),
        "lut.csv",
        {"year": str(YEAR)},
        ["lut.csv", "UTF-8"],
        id="lut not utf-8",
    ),
    pytest.param(
        "/sites/alpha/configs/l4b",
        lambda world, folder: _replace_value(world.world.l4b_configs[YEAR], "pfa", "often"),
        "mowing.cfg",
        {"year": str(YEAR)},
        ["mowing.cfg, line", "[S1_processing] pfa = 'often' is not valid: expected a number"],
        id="l4b wrong value",
    ),
    pytest.param(
        "/sites/alpha/configs/l4c",
        lambda world, folder: (
            world.world.l4c_configs[YEAR].read_text().replace("NDVIDW", "NDVIDOWN", 1).encode()
        ),
        "practices.cfg",
        {"year": str(YEAR), "country": "BEL"},
        ["practices.cfg, line", "unknown key NDVIDOWN"],
        id="l4c wrong key",
    ),
    pytest.param(
        "/sites/alpha/practices",
        lambda world, folder: (
            world.world.practices[YEAR]["CC"].read_text().replace("P_START", "PSTART", 1).encode()
        ),
        "cc.csv",
        {"year": str(YEAR)},
        ["cc.csv", "missing column(s) P_START"],
        id="practices missing column",
    ),
]


def _break_lut_line(text: str, line: int) -> bytes:
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index("ctnum")] = "x" + cells[header.index("ctnum")]
    lines[line - 1] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def _replace_value(path: Path, key: str, value: str) -> bytes:
    lines = [
        f"{key} = {value}" if line.split("=")[0].strip().lower() == key else line
        for line in path.read_text().splitlines()
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(("route", "make", "filename", "data", "fragments"), BAD_UPLOADS)
def test_bad_uploads_name_the_problem_and_store_nothing(
    service_world: ServiceWorld,
    client: TestClient,
    writable_home: Path,
    tmp_path: Path,
    route: str,
    make: Any,
    filename: str,
    data: dict[str, str],
    fragments: list[str],
) -> None:
    before = stored_state(writable_home)
    answer = post(client, route, make(service_world, tmp_path), filename, data)
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    for fragment in fragments:
        assert fragment in detail
    assert str(writable_home) not in detail
    assert stored_state(writable_home) == before
    assert no_temporary_files(writable_home)


def test_bad_form_fields_are_named(service_world: ServiceWorld, client: TestClient) -> None:
    payload = service_world.world.declarations[YEAR].read_bytes()
    route = "/sites/alpha/declarations"
    cases = [
        (MAPPING | {"year": "last year"}, "year"),
        (MAPPING | {"year": "1999"}, "year"),
        (MAPPING | {"mode": "merge"}, "mode"),
        (MAPPING | {"parcel_ids": "PARCEL_ID"}, "parcel_ids"),
        ({k: v for k, v in MAPPING.items() if k != "year"}, "year"),
    ]
    for data, field in cases:
        answer = post(client, route, payload, "decl.zip", data)
        assert answer.status_code == 400, (data, answer.text)
        assert field in [e["field"] for e in answer.json()["errors"]], answer.json()
    no_file = client.post(route, headers=login(client, "op-alpha"), data=MAPPING, files={})
    assert no_file.status_code == 400
    two = client.post(
        route,
        headers=login(client, "op-alpha"),
        data=MAPPING,
        files=[("file", ("a.zip", payload)), ("file", ("b.zip", payload))],
    )
    assert two.status_code == 400
    assert "at most 1 file" in two.json()["detail"]
    other_field = client.post(
        route, headers=login(client, "op-alpha"), data=MAPPING, files={"upload": ("a.zip", payload)}
    )
    assert other_field.status_code == 400
    assert "field 'upload'" in other_field.json()["detail"]
    empty = post(client, route, b"", "a.zip", MAPPING)
    assert empty.status_code == 400
    assert "a.zip: the uploaded file is empty" in empty.json()["detail"]


def test_uploaded_file_names_are_never_paths(
    service_world: ServiceWorld, client: TestClient, writable_home: Path, tmp_path: Path
) -> None:
    payload = gpkg_bytes(declarations_frame(service_world), tmp_path / "gpkg")
    name = "../../../../tmp/evil name.gpkg"
    answer = post(client, "/sites/alpha/declarations", payload, name, MAPPING)
    assert answer.status_code == 201, answer.text
    assert answer.json()["files"] == ["evil name.gpkg"]
    found = [p for p in writable_home.parent.rglob("*evil*")]
    assert found == []
    assert no_temporary_files(writable_home)


def test_upload_over_real_http_in_chunks(service_world: ServiceWorld, writable_home: Path) -> None:
    """Through uvicorn, with a chunked body (no Content-Length): streamed, stored, cleaned."""
    import httpx

    payload = service_world.world.declarations[YEAR].read_bytes()
    boundary = "capmon-test-boundary"
    fields = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in MAPPING.items()
    )
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    body = fields + head + payload + f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    with LiveService(make_app(writable_home)) as live:
        token = httpx.post(
            f"{live.url}/auth/token", data={"username": "op-alpha", "password": PASSWORD}
        ).json()["access_token"]
        answer = httpx.post(
            f"{live.url}/sites/alpha/declarations",
            content=chunks(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            timeout=60,
        )
    assert answer.status_code == 201, answer.text
    assert answer.json()["version"] == 2
    assert answer.json()["report"]["counts"]["unchanged"] == 60
    assert no_temporary_files(writable_home)


# --- size limit --------------------------------------------------------------------------


def test_too_large_uploads_are_refused_before_anything_is_stored(
    service_world: ServiceWorld, writable_home: Path
) -> None:
    payload = service_world.world.declarations[YEAR].read_bytes()
    limit = len(payload) // 2
    before = stored_state(writable_home)
    with TestClient(make_app(writable_home, max_upload_bytes=limit)) as client:
        answer = post(client, "/sites/alpha/declarations", payload, "decl.zip", MAPPING)
        assert answer.status_code == 413
        assert f"limit of {limit:,} bytes" in answer.json()["detail"]
        # refused at once on Content-Length, without reading the body
        huge = b"0" * (limit + 5 * 2**20)
        assert post(client, "/sites/alpha/luts", huge, "l.csv", {"year": "2024"}).status_code == 413
        # access is checked first: a viewer's upload is not even read
        refused = post(client, "/sites/alpha/luts", huge, "l.csv", {"year": "2024"}, "view-alpha")
        assert refused.status_code == 403
        small = post(client, "/sites/alpha/luts", b"ori_crop\n", "l.csv", {"year": "2024"})
        assert small.status_code == 400  # under the limit: read and validated
    assert stored_state(writable_home) == before
    assert no_temporary_files(writable_home)


# --- LUT, configs, practices -------------------------------------------------------------


def test_lut_upload(service_world: ServiceWorld, client: TestClient, writable_home: Path) -> None:
    lut = service_world.world.lut.read_bytes()
    answer = post(client, "/sites/alpha/luts", lut, "crops.csv", {"year": str(YEAR)})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["kind"] == "lut"
    assert body["version"] == 2
    assert body["stored"] == "luts/alpha/2024/v2/lut.parquet"
    assert body["report"]["sources"] == ["crops.csv"]
    assert body["report"]["crop_codes"]["missing_code_count"] == 0
    listed = client.get("/sites/alpha/luts", headers=login(client, "view-alpha")).json()
    assert [v["version"] for v in listed] == [1, 2]
    assert listed[1]["source_file"] == "crops.csv"
    two = client.post(
        "/sites/alpha/luts",
        headers=login(client, "op-alpha"),
        data={"year": str(YEAR)},
        files=[("file", ("a.csv", b"x\n")), ("file", ("b.csv", b"y\n"))],
    )
    assert two.status_code == 400
    assert "format=hcat" in two.json()["detail"]


def test_l4b_config_upload_is_stored_for_l4b_runs(
    service_world: ServiceWorld, client: TestClient, writable_home: Path
) -> None:
    source = service_world.world.l4b_configs[YEAR]
    answer = post(
        client, "/sites/alpha/configs/l4b", source.read_bytes(), "l4b.cfg", {"year": "2024"}
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["stored"] == "configs/alpha/2024/l4b/v1"
    assert body["report"]["source_file"] == "l4b.cfg"
    path = Path(body["report"]["path"])
    assert path == writable_home / "configs/alpha/2024/l4b/v1/S4C_L4B_Config_2024.cfg"
    assert read_l4b_config(path).ctnum_filter == read_l4b_config(source).ctnum_filter
    assert body["report"]["ctnum_filter"] == list(read_l4b_config(source).ctnum_filter)
    listed = client.get("/sites/alpha/configs", headers=login(client, "op-alpha")).json()
    assert [(c["kind"], c["version"], c["path"]) for c in listed] == [("l4b", 1, str(path))]
    # viewers never see the server's folders (issue 18): paths relative to the workspace
    shown = client.get("/sites/alpha/configs", headers=login(client, "view-alpha")).json()
    relative = "configs/alpha/2024/l4b/v1/S4C_L4B_Config_2024.cfg"
    assert [(c["path"], c["stored"]) for c in shown] == [(relative, "configs/alpha/2024/l4b/v1")]
    home = str(writable_home)
    for route in ("declarations", "luts", "configs", "practices"):
        answer = client.get(f"/sites/alpha/{route}", headers=login(client, "view-alpha"))
        assert answer.status_code == 200, route
        assert home not in answer.text, route
        assert str(writable_home.resolve()) not in answer.text, route
    declarations = client.get("/sites/alpha/declarations", headers=login(client, "view-alpha"))
    for entry in declarations.json():
        assert entry["created_at"].endswith(("Z", "+00:00")), entry["created_at"]


def test_l4c_config_and_practices_are_stored_where_l4c_reads_them(
    service_world: ServiceWorld, client: TestClient, writable_home: Path
) -> None:
    config = service_world.world.l4c_configs[YEAR].read_bytes()
    answer = post(
        client, "/sites/alpha/configs/l4c", config, "nl.cfg", {"year": "2024", "country": "bel"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["report"]["country"] == "BEL"
    practices = service_world.world.practices[YEAR]["FL"].read_bytes()
    stored = post(client, "/sites/alpha/practices", practices, "fallow.csv", {"year": "2024"})
    assert stored.status_code == 201, stored.text
    report = stored.json()["report"]
    assert report["practice"] == "FL"
    assert report["matched"] == report["rows"] > 0
    assert report["source_file"] == "fallow.csv"
    workspace = open_workspace(writable_home)
    try:
        found_config = stored_config(workspace, "alpha", YEAR)
        found_table = stored_practices(workspace, "alpha", YEAR, "FL")
    finally:
        workspace.dispose()
    assert found_config is not None
    assert found_config.report["source_file"] == "nl.cfg"
    assert found_table is not None
    assert found_table.version == 1
    listed = client.get("/sites/alpha/practices", headers=login(client, "view-alpha")).json()
    assert [(p["practice"], p["version"]) for p in listed] == [("fallow", 1)]
    configs = client.get("/sites/alpha/configs", headers=login(client, "view-alpha")).json()
    assert [(c["kind"], c["year"]) for c in configs] == [("l4c", 2024)]
    no_declarations = post(
        client, "/sites/alpha/practices", practices, "fallow.csv", {"year": "2023"}
    )
    assert no_declarations.status_code == 409
    assert "upload the declarations first" in no_declarations.json()["detail"]


# --- property-based: no input gives a 500 ------------------------------------------------


OPERATIONS = (
    ("GET", "/sites"),
    ("POST", "/sites"),
    ("GET", "/sites/{site}"),
    ("PATCH", "/sites/{site}"),
    ("DELETE", "/sites/{site}"),
    ("GET", "/sites/{site}/seasons"),
    ("POST", "/sites/{site}/seasons"),
    ("GET", "/sites/{site}/seasons/{season}"),
    ("PATCH", "/sites/{site}/seasons/{season}"),
    ("DELETE", "/sites/{site}/seasons/{season}"),
    ("GET", "/sites/{site}/parcels/stats"),
    ("POST", "/sites/{site}/declarations"),
    ("GET", "/sites/{site}/declarations"),
    ("POST", "/sites/{site}/luts"),
    ("GET", "/sites/{site}/luts"),
    ("POST", "/sites/{site}/configs/l4b"),
    ("POST", "/sites/{site}/configs/l4c"),
    ("GET", "/sites/{site}/configs"),
    ("POST", "/sites/{site}/practices"),
    ("GET", "/sites/{site}/practices"),
)
EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzz_app(
    service_world: ServiceWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any, dict[str, str]]]:
    """The app on a private copy of the workspace (256 KiB upload limit), its OpenAPI document
    loaded by schemathesis, and an admin's token (so that every route is reachable)."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    shutil.copytree(service_world.home, home)
    app = make_app(home, max_upload_bytes=256 * 1024)
    with TestClient(app) as client:
        headers = login(client, "admin")
        with warnings.catch_warnings():  # other route modules' duplicate ids (their test)
            warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        yield app, schema, headers


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_error_on_any_input(
    fuzz_app: tuple[Any, Any, dict[str, str]], method: str, path: str
) -> None:
    """Requests generated from the OpenAPI document never get a 5xx. Half of them name the
    existing site alpha (and season S), so that the body, not the site lookup, is tested;
    deletions keep their generated names, so the workspace keeps its data for the others."""
    _app, schema, headers = fuzz_app
    operation = schema[path][method]

    @given(case=operation.as_strategy(), existing=st.booleans())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def check(case: Any, existing: bool) -> None:
        if existing and method != "DELETE" and case.path_parameters:
            case.path_parameters = {
                **case.path_parameters,
                "site": "alpha",
                **({"season": SEASON} if "season" in case.path_parameters else {}),
            }
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    check()


def _corrupted(payload: bytes, data: st.DataObject) -> bytes:
    """``payload`` truncated or not, and with a few bytes replaced."""
    whole = st.just(len(payload))
    size = data.draw(st.one_of(whole, st.integers(1, len(payload))), label="size")
    damaged = bytearray(payload[:size])
    for _ in range(data.draw(st.integers(0, 8), label="flips")):
        position = data.draw(st.integers(0, len(damaged) - 1))
        damaged[position] = data.draw(st.integers(0, 255))
    return bytes(damaged)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_damaged_files_never_give_a_server_error(
    fuzz_app: tuple[Any, Any, dict[str, str]], service_world: ServiceWorld, data: st.DataObject
) -> None:
    """Truncated or altered real files of every kind, under their own or another name."""
    app, _schema, headers = fuzz_app
    world = service_world.world
    route, source, fields = data.draw(
        st.sampled_from(
            [
                ("/sites/alpha/declarations", world.declarations[YEAR], MAPPING),
                ("/sites", world.aoi, {"name": "fuzzed"}),
                ("/sites/alpha/luts", world.lut, {"year": str(YEAR)}),
                ("/sites/alpha/configs/l4b", world.l4b_configs[YEAR], {"year": str(YEAR)}),
                ("/sites/alpha/configs/l4c", world.l4c_configs[YEAR],
                 {"year": str(YEAR), "country": "BEL"}),
                ("/sites/alpha/practices", world.practices[YEAR]["CC"], {"year": str(YEAR)}),
            ]
        ),
        label="route",
    )  # fmt: skip
    payload = _corrupted(source.read_bytes(), data)
    name = data.draw(st.sampled_from([source.name, "x.gpkg", "x.parquet", "x", "x.zip"]))
    with TestClient(app) as client:
        answer = client.post(route, headers=headers, data=fields, files={"file": (name, payload)})
    assert answer.status_code < 500, answer.text
