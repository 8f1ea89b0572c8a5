"""Sites and seasons over HTTP: CRUD, safe deletion, and who may call which route.

The authorisation matrix covers every route of ``routes/sites.py`` and ``routes/uploads.py``
for each role (anonymous, admin, operator and viewer of alpha, viewer of beta) on site alpha,
site beta and a site that does not exist. Requests that would change data are made so that an
allowed caller gets a harmless answer (an invalid body, a 409), so the table runs on one copy.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Polygon
from sqlalchemy import select

from capmon.catalog.models import ActivityStatus, DeclarationSet, Job, Site, StartType
from capmon.workspace import open_workspace
from tests.service.conftest import SEASON, ServiceWorld, login, make_app

ROLES = ("anonymous", "admin", "op-alpha", "view-alpha", "view-beta")
SITES = ("alpha", "beta", "nowhere")
BOUND = {"op-alpha": "alpha", "view-alpha": "alpha", "view-beta": "beta"}
READ, WRITE, ADMIN = "read", "write", "admin"
BAD_VECTOR = {"files": {"file": ("parcels.gpkg", b"not a geopackage")}, "data": {"year": "2024"}}
BAD_CSV = {"files": {"file": ("table.csv", b"a;b\n1;2\n")}, "data": {"year": "2024"}}
BAD_CFG = {"files": {"file": ("x.cfg", b"no section\n")}, "data": {"year": "2024"}}

# (method, path, who may call it, status when allowed, request) -- the status is that of a
# request that is allowed but changes nothing (409 or 400), or of a read.
SITE_ROUTES: tuple[tuple[str, str, str, int, dict[str, Any]], ...] = (
    ("GET", "/sites/{site}", READ, 200, {}),
    ("PATCH", "/sites/{site}", WRITE, 200, {"json": {}}),
    ("DELETE", "/sites/{site}", ADMIN, 409, {}),
    ("GET", "/sites/{site}/seasons", READ, 200, {}),
    ("POST", "/sites/{site}/seasons", WRITE, 400,
     {"json": {"name": "../x", "start": "2030-01-01", "end": "2030-02-01"}}),
    ("GET", f"/sites/{{site}}/seasons/{SEASON}", READ, 200, {}),
    ("PATCH", f"/sites/{{site}}/seasons/{SEASON}", WRITE, 200, {"json": {}}),
    ("DELETE", f"/sites/{{site}}/seasons/{SEASON}", WRITE, 409, {}),
    ("DELETE", "/sites/{site}/seasons/none?force=true", ADMIN, 404, {}),
    ("GET", "/sites/{site}/parcels/stats", READ, 200, {}),
    ("POST", "/sites/{site}/declarations", WRITE, 400, BAD_VECTOR),
    ("GET", "/sites/{site}/declarations", READ, 200, {}),
    ("POST", "/sites/{site}/luts", WRITE, 400, BAD_CSV),
    ("GET", "/sites/{site}/luts", READ, 200, {}),
    ("POST", "/sites/{site}/configs/l4b", WRITE, 400, BAD_CFG),
    ("POST", "/sites/{site}/configs/l4c", WRITE, 400,
     {"files": BAD_CFG["files"], "data": {"year": "2024", "country": "NLD"}}),
    ("GET", "/sites/{site}/configs", READ, 200, {}),
    ("POST", "/sites/{site}/practices", WRITE, 400, BAD_CSV),
    ("GET", "/sites/{site}/practices", READ, 200, {}),
)  # fmt: skip


def expected_status(role: str, site: str, who: str, allowed: int) -> int:
    """The access rules of docs/api.md, as a status."""
    if role == "anonymous":
        return 401
    if role == "admin":
        return 404 if site == "nowhere" else allowed
    if who == ADMIN or site != BOUND[role]:
        return 403
    if who == WRITE and role.startswith("view"):
        return 403
    return allowed


MATRIX = [
    pytest.param(method, path, role, site, expected_status(role, site, who, allowed), request,
                 id=f"{method} {path} {role} {site}")
    for method, path, who, allowed, request in SITE_ROUTES
    for role in ROLES
    for site in SITES
]  # fmt: skip


@pytest.fixture(scope="module")
def matrix_client(
    service_world: ServiceWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    home = tmp_path_factory.mktemp("matrix") / "home"
    shutil.copytree(service_world.home, home)
    with TestClient(make_app(home)) as client:
        headers = {role: login(client, role) for role in ROLES if role != "anonymous"}
        yield client, {"anonymous": {}, **headers}


@pytest.mark.parametrize(("method", "path", "role", "site", "status", "request_args"), MATRIX)
def test_authorisation_matrix(
    matrix_client: tuple[TestClient, dict[str, dict[str, str]]],
    method: str,
    path: str,
    role: str,
    site: str,
    status: int,
    request_args: dict[str, Any],
) -> None:
    client, headers = matrix_client
    answer = client.request(method, path.format(site=site), headers=headers[role], **request_args)
    assert answer.status_code == status, answer.text
    if status >= 400:
        assert answer.json()["status"] == status


@pytest.mark.parametrize(
    ("role", "status", "names"),
    [
        ("anonymous", 401, None),
        ("admin", 200, ["alpha", "beta"]),
        ("op-alpha", 200, ["alpha"]),
        ("view-alpha", 200, ["alpha"]),
        ("view-beta", 200, ["beta"]),
    ],
)
def test_site_list_shows_only_readable_sites(
    matrix_client: tuple[TestClient, dict[str, dict[str, str]]],
    role: str,
    status: int,
    names: list[str] | None,
) -> None:
    client, headers = matrix_client
    answer = client.get("/sites", headers=headers[role])
    assert answer.status_code == status
    if names is not None:
        assert [s["name"] for s in answer.json()] == names


@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 401), ("admin", 400), ("op-alpha", 403), ("view-alpha", 403),
     ("view-beta", 403)],
)  # fmt: skip
def test_only_admins_create_sites(
    matrix_client: tuple[TestClient, dict[str, dict[str, str]]], role: str, status: int
) -> None:
    client, headers = matrix_client
    answer = client.post(
        "/sites",
        headers=headers[role],
        data={"name": "gamma"},
        files={"file": ("aoi.geojson", b"{not json")},
    )
    assert answer.status_code == status, answer.text


# --- sites -------------------------------------------------------------------------------


def _zipped_shapefile(frame: gpd.GeoDataFrame, folder: Path, *, prj: bool = True) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_file(folder / "aoi.shp")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for part in sorted(folder.iterdir()):
            if prj or part.suffix != ".prj":
                archive.write(part, part.name)
    return out.getvalue()


def test_create_site_from_a_zipped_shapefile(
    service_world: ServiceWorld, writable_home: Path, tmp_path: Path
) -> None:
    aoi = gpd.read_file(service_world.world.aoi).to_crs(3035)[["geometry"]]
    payload = _zipped_shapefile(aoi, tmp_path / "shp")
    with TestClient(make_app(writable_home)) as client:
        admin = login(client, "admin")
        answer = client.post(
            "/sites",
            headers=admin,
            data={"name": "North Field"},
            files={"file": ("n.zip", payload)},
        )
        assert answer.status_code == 201, answer.text
        site = answer.json()
        assert site["name"] == "North Field"
        assert site["short_name"] == "north_field"
        assert site["tiles"] == ["31UFS"]
        assert site["aoi"]["type"] == "MultiPolygon"
        assert answer.headers["location"] == "/sites/North%20Field"
        assert client.get("/sites/North Field", headers=admin).json()["id"] == site["id"]
        again = client.post(
            "/sites",
            headers=admin,
            data={"name": "north field"},
            files={"file": ("n.zip", payload)},
        )
        assert again.status_code == 409
        assert "North Field" in again.json()["detail"]
    assert not any((writable_home / "uploads" / "tmp").iterdir())


def _bow_tie() -> Polygon:
    return Polygon([(5.19, 50.93), (5.21, 50.94), (5.21, 50.93), (5.19, 50.94)])


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("invalid geometry", ["bad-aoi.geojson", "invalid AOI geometry", "row 0"]),
        ("no CRS", ["bad-aoi.zip", "no coordinate reference system"]),
        ("points", ["bad-aoi.geojson", "must be made of polygons", "row 0 (Point)"]),
        ("not a vector file", ["bad-aoi.geojson", "not a readable vector file"]),
        ("bad name", ["'../evil'", "not allowed"]),
    ],
)
def test_bad_aoi_uploads_create_nothing(
    writable_home: Path, tmp_path: Path, case: str, fragments: list[str]
) -> None:
    name, filename = "gamma", "bad-aoi.geojson"
    if case == "invalid geometry":
        payload = gpd.GeoDataFrame(geometry=[_bow_tie()], crs=4326).to_json().encode()
    elif case == "points":
        payload = gpd.GeoSeries.from_xy([5.2], [50.93], crs=4326).to_json().encode()
    elif case == "no CRS":
        square = Polygon([(0, 0), (1000, 0), (1000, 1000), (0, 1000)])
        frame = gpd.GeoDataFrame(geometry=[square], crs=3035)  # .prj left out of the zip
        payload, filename = _zipped_shapefile(frame, tmp_path / "shp", prj=False), "bad-aoi.zip"
    elif case == "not a vector file":
        payload = b'{"type": "nothing"}'
    else:
        payload, name = (
            gpd.GeoDataFrame(geometry=[_bow_tie()], crs=4326).to_json().encode(),
            ("../evil"),
        )
    with TestClient(make_app(writable_home)) as client:
        admin = login(client, "admin")
        before = client.get("/sites", headers=admin).json()
        answer = client.post(
            "/sites", headers=admin, data={"name": name}, files={"file": (filename, payload)}
        )
        assert answer.status_code == 400, answer.text
        for fragment in fragments:
            assert fragment in answer.json()["detail"]
        assert str(writable_home) not in answer.json()["detail"]  # no server path leaks
        assert client.get("/sites", headers=admin).json() == before
    assert not any((writable_home / "uploads" / "tmp").iterdir())


def test_patch_site_enabled_only(writable_home: Path) -> None:
    with TestClient(make_app(writable_home)) as client:
        operator = login(client, "op-alpha")
        answer = client.patch("/sites/alpha", headers=operator, json={"enabled": False})
        assert answer.status_code == 200
        assert answer.json()["enabled"] is False
        assert client.get("/sites/alpha", headers=operator).json()["enabled"] is False
        renamed = client.patch("/sites/alpha", headers=operator, json={"name": "omega"})
        assert renamed.status_code == 400
        assert renamed.json()["errors"][0]["field"] == "name"


def test_parcel_stats(read_client: TestClient, auth_headers: dict[str, dict[str, str]]) -> None:
    answer = read_client.get("/sites/alpha/parcels/stats", headers=auth_headers["view-alpha"])
    assert answer.status_code == 200
    stats = answer.json()
    assert stats["parcels"] == 60
    assert stats["version"] == 1
    assert stats["lut_version"] == 1
    assert sum(c["parcels"] for c in stats["crops"]) == 60
    assert all(c["ct"] for c in stats["crops"])  # every declared code is in the LUT
    missing = read_client.get(
        "/sites/alpha/parcels/stats?year=2030", headers=auth_headers["view-alpha"]
    )
    assert missing.status_code == 404
    assert "2030" in missing.json()["detail"]


# --- deleting ---------------------------------------------------------------------------


def test_delete_site_needs_force_and_removes_its_data(
    service_world: ServiceWorld, writable_home: Path
) -> None:
    workspace = open_workspace(writable_home)
    try:
        with workspace.session() as session:
            job = Job(
                processor="l4a",
                site_id=session.scalar(select(Site.id).where(Site.name == "alpha")),
                start_type=StartType.REQUESTED,
                status=ActivityStatus.FINISHED,
                parameters={},
            )
            session.add(job)
            session.flush()
            job_id = job.id
    finally:
        workspace.dispose()
    (writable_home / "jobs" / str(job_id)).mkdir(parents=True)
    (writable_home / "jobs" / str(job_id) / "job.log").write_text("done\n")
    site_folders = ["parcels/alpha", "luts/alpha", "mdb/alpha", f"jobs/{job_id}"]
    with TestClient(make_app(writable_home)) as client:
        admin = login(client, "admin")
        operator = login(client, "op-alpha")
        refused = client.delete("/sites/alpha", headers=admin)
        assert refused.status_code == 409
        detail = refused.json()["detail"]
        assert "1 season" in detail
        assert "1 declaration set" in detail
        assert "1 job" in detail
        assert "force=true" in detail
        assert all((writable_home / f).is_dir() for f in site_folders)
        assert client.delete("/sites/alpha?force=true", headers=operator).status_code == 403

        assert client.delete("/sites/alpha?force=true", headers=admin).status_code == 204
        assert client.get("/sites/alpha", headers=admin).status_code == 404
        assert not any((writable_home / f).exists() for f in site_folders)
        assert client.get("/auth/me", headers=operator).json()["sites"] == []
        assert client.get("/sites/beta", headers=admin).status_code == 200
        stats = client.get("/sites/beta/parcels/stats", headers=admin)
        assert stats.json()["parcels"] == 60
    assert (writable_home / "parcels/beta").is_dir()
    assert service_world.world.s2_dir is not None
    assert service_world.world.s2_dir.is_dir()
    workspace = open_workspace(writable_home)
    try:
        with workspace.session() as session:
            assert session.get(Job, job_id) is None
            sets = session.scalars(select(DeclarationSet)).all()
            assert {s.site_id for s in sets} == {
                session.scalar(select(Site.id).where(Site.name == "beta"))
            }
    finally:
        workspace.dispose()
    assert not any((writable_home / "uploads" / "tmp").iterdir())


def test_delete_site_refused_while_a_job_runs(writable_home: Path) -> None:
    workspace = open_workspace(writable_home)
    try:
        with workspace.session() as session:
            site_id = session.scalar(select(Site.id).where(Site.name == "alpha"))
            session.add(
                Job(
                    processor="l4a",
                    site_id=site_id,
                    start_type=StartType.REQUESTED,
                    status=ActivityStatus.RUNNING,
                    parameters={},
                )
            )
    finally:
        workspace.dispose()
    with TestClient(make_app(writable_home)) as client:
        answer = client.delete("/sites/alpha?force=true", headers=login(client, "admin"))
        assert answer.status_code == 409
        assert "active jobs" in answer.json()["detail"]
    assert (writable_home / "parcels/alpha").is_dir()
    assert (writable_home / "mdb/alpha").is_dir()


def test_a_new_site_is_not_visible_to_users_of_a_deleted_one(
    service_world: ServiceWorld, writable_home: Path
) -> None:
    aoi = service_world.world.aoi.read_bytes()
    with TestClient(make_app(writable_home)) as client:
        admin = login(client, "admin")
        viewer = login(client, "view-beta")
        assert client.delete("/sites/beta?force=true", headers=admin).status_code == 204
        created = client.post(
            "/sites", headers=admin, data={"name": "delta"}, files={"file": ("a.geojson", aoi)}
        )
        assert created.status_code == 201
        assert client.get("/sites", headers=viewer).json() == []
        assert client.get("/sites/delta", headers=viewer).status_code == 403
        assert client.delete("/sites/delta", headers=admin).status_code == 204  # holds nothing


# --- seasons -----------------------------------------------------------------------------


def test_season_rules(writable_home: Path) -> None:
    with TestClient(make_app(writable_home)) as client:
        operator = login(client, "op-alpha")
        url = "/sites/alpha/seasons"
        overlap = client.post(
            url, headers=operator, json={"name": "X", "start": "2024-11-01", "end": "2025-03-01"}
        )
        assert overlap.status_code == 409
        assert "overlaps season 'S'" in overlap.json()["detail"]
        backwards = client.post(
            url, headers=operator, json={"name": "X", "start": "2025-06-01", "end": "2025-03-01"}
        )
        assert backwards.status_code == 400
        assert "end 2025-03-01 must be after its start" in backwards.json()["detail"]
        for bad_name in ("../x", "a/b", ".hidden", ""):
            answer = client.post(
                url,
                headers=operator,
                json={"name": bad_name, "start": "2026-01-01", "end": "2026-02-01"},
            )
            assert answer.status_code == 400, bad_name
            assert answer.json()["errors"][0]["field"] == "name"
        bad_date = client.post(
            url, headers=operator, json={"name": "X", "start": "2025-02-30", "end": "2025-03-01"}
        )
        assert bad_date.status_code == 400
        assert bad_date.json()["errors"][0]["field"] == "start"

        created = client.post(
            url, headers=operator, json={"name": "2025", "start": "2025-02-01", "end": "2025-11-30"}
        )
        assert created.status_code == 201
        assert created.json() == {
            "name": "2025",
            "start": "2025-02-01",
            "mid": "2025-07-02",
            "end": "2025-11-30",
            "enabled": True,
        }
        assert created.headers["location"] == "/sites/alpha/seasons/2025"
        assert [s["name"] for s in client.get(url, headers=operator).json()] == ["S", "2025"]
        moved = client.patch(f"{url}/2025", headers=operator, json={"start": "2024-11-01"})
        assert moved.status_code == 409
        assert "would overlap season 'S'" in moved.json()["detail"]
        outside = client.patch(f"{url}/2025", headers=operator, json={"mid": "2026-01-01"})
        assert outside.status_code == 400
        later = client.patch(f"{url}/2025", headers=operator, json={"end": "2025-12-31"})
        assert later.json()["end"] == "2025-12-31"
        assert later.json()["mid"] == "2025-07-02"  # kept: still inside the season
        disabled = client.patch(f"{url}/2025", headers=operator, json={"enabled": False})
        assert disabled.json()["enabled"] is False
        assert client.get(f"{url}/2025", headers=operator).json()["enabled"] is False
        assert client.get(f"{url}/none", headers=operator).status_code == 404
        assert client.delete(f"{url}/2025", headers=operator).status_code == 204
        assert client.get(f"{url}/2025", headers=operator).status_code == 404


def test_delete_season_with_an_mdb_needs_an_admin_and_force(writable_home: Path) -> None:
    mdb = writable_home / "mdb" / "alpha" / SEASON
    assert mdb.is_dir()
    with TestClient(make_app(writable_home)) as client:
        admin = login(client, "admin")
        operator = login(client, "op-alpha")
        url = f"/sites/alpha/seasons/{SEASON}"
        refused = client.delete(url, headers=operator)
        assert refused.status_code == 409
        assert "an extracted MDB" in refused.json()["detail"]
        assert client.delete(f"{url}?force=true", headers=operator).status_code == 403
        assert mdb.is_dir()
        assert client.delete(f"{url}?force=true", headers=admin).status_code == 204
        assert not mdb.exists()
        assert client.get("/sites/alpha/seasons", headers=admin).json() == []
        assert client.get("/sites/beta/seasons", headers=admin).json()[0]["name"] == SEASON
    assert (writable_home / "mdb" / "beta" / SEASON).is_dir()
