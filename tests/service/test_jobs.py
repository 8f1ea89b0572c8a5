"""Jobs over real HTTP (uvicorn on loopback) on a real 2-worker Dask LocalCluster: execute,
poll, results, logs, synchronous execution, pause/resume/cancel, dismiss, listing, access."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from capmon.catalog.models import Job, Product, StartType
from capmon.orchestrator import jobs as job_store
from capmon.orchestrator.execute import ClusterSpec
from capmon.service.executor import EXECUTOR, JobExecutor
from capmon.sites import get_season, get_site
from capmon.workspace import Workspace, open_workspace
from tests.service.conftest import PASSWORD, SEASON, USERS, LiveService, ServiceWorld, make_app

OGC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
SLOW: dict[str, Any] = {"chunk_parcels": 1}
"""baresoil reads the MDB parcel by parcel: ~60 progress reports over a few seconds, so that
pause, cancel and dismiss reach it while it runs."""


@dataclass(frozen=True)
class Live:
    url: str
    home: Path
    app: FastAPI
    headers: dict[str, dict[str, str]]

    def get(self, path: str, user: str = "op-alpha", **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers[user], timeout=60, **kwargs)

    def post(self, path: str, user: str = "op-alpha", **kwargs: Any) -> httpx.Response:
        headers = {**self.headers[user], **kwargs.pop("headers", {})}
        return httpx.post(self.url + path, headers=headers, timeout=90, **kwargs)

    def delete(self, path: str, user: str = "op-alpha") -> httpx.Response:
        return httpx.delete(self.url + path, headers=self.headers[user], timeout=60)

    def execute(
        self, process: str = "baresoil", user: str = "op-alpha", **inputs: Any
    ) -> httpx.Response:
        body = {"inputs": {"site": "alpha", "season": SEASON, **inputs}}
        return self.post(f"/processes/{process}/execution", user, json=body)

    def wait(
        self, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            document: dict[str, Any] = self.get(f"/jobs/{job_id}").json()
            if until(document) or time.monotonic() > deadline:
                return document
            time.sleep(0.1)

    def workspace(self) -> Workspace:
        return open_workspace(self.home)


def ended(document: dict[str, Any]) -> bool:
    return document["status"] in ("successful", "failed", "dismissed")


@pytest.fixture(scope="module")
def live(service_world: ServiceWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The service on a private copy of the workspace, its jobs on 2 worker processes."""
    home = tmp_path_factory.mktemp("jobs") / "home"
    shutil.copytree(service_world.home, home)
    app = make_app(home, cluster=ClusterSpec(workers=2, threads=1), sync_wait_seconds=60.0)
    with LiveService(app) as service:
        headers = {}
        for user in USERS:
            answer = httpx.post(
                f"{service.url}/auth/token", data={"username": user, "password": PASSWORD}
            )
            headers[user] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        yield Live(service.url, home, app, headers)


def row_id(workspace: Workspace, job_id: str) -> int:
    """The catalogue row of the job ``job_id`` (its public uid)."""
    with workspace.session() as session:
        number = session.scalar(select(Job.id).where(Job.uid == job_id))
    assert number is not None, job_id
    return number


def uid_of(workspace: Workspace, number: int) -> str:
    with workspace.session() as session:
        uid = session.scalar(select(Job.uid).where(Job.id == number))
    assert uid is not None
    return uid


def products_of(workspace: Workspace, job_id: str) -> list[Product]:
    with workspace.session() as session:
        number = session.scalar(select(Job.id).where(Job.uid == job_id))
        return list(session.scalars(select(Product).where(Product.job_id == number)))


def orphan_folders(workspace: Workspace) -> list[Path]:
    """Product folders of site alpha without a catalogue row (or temporary ones)."""
    with workspace.session() as session:
        registered = {Path(p) for p in session.scalars(select(Product.path))}
    root = workspace.path("products/alpha/baresoil")
    return [p for p in root.iterdir() if p not in registered] if root.exists() else []


def wait_without_orphans(workspace: Workspace, timeout: float = 30) -> list[Path]:
    deadline = time.monotonic() + timeout
    while (orphans := orphan_folders(workspace)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return orphans


def test_execute_poll_and_results_over_http(live: Live) -> None:
    answer = live.execute()
    assert answer.status_code == 201, answer.text
    status = answer.json()
    job_id = status["jobID"]
    assert answer.headers["location"] == f"{live.url}/jobs/{job_id}"
    assert status["processID"] == "baresoil"
    assert status["type"] == "process"
    assert status["status"] in ("accepted", "running")
    final = live.wait(job_id, ended)
    assert final["status"] == "successful", final
    assert final["x-capmon-status"] == "finished"
    assert final["progress"] == 100
    assert final["started"] <= final["finished"]
    assert "60 parcels" in final["message"]
    rels = {entry["rel"]: entry["href"] for entry in final["links"]}
    assert rels["self"] == f"{live.url}/jobs/{job_id}"
    results_url = rels["http://www.opengis.net/def/rel/ogc/1.0/results"]
    results = httpx.get(results_url, headers=live.headers["view-alpha"]).json()
    workspace = live.workspace()
    try:
        (product,) = products_of(workspace, job_id)
        assert Path(product.path).is_dir()
        assert results == {
            "baresoil": {
                "href": f"{live.url}/stac/collections/baresoil/items/alpha.{product.name}",
                "rel": "item",
                "type": "application/geo+json",
                "title": product.name,
            }
        }
        with workspace.session() as session:
            job = session.get(Job, row_id(workspace, job_id))
            assert job is not None
            assert job.start_type == StartType.REQUESTED
            assert job.parameters["requested_by"] == "op-alpha"
            assert job.parameters["inputs"]["chunk_parcels"] == 20000  # defaults recorded
    finally:
        workspace.dispose()
    log = live.get(f"/jobs/{job_id}/logs", "view-alpha")
    assert log.headers["content-type"].startswith("text/plain")
    assert "requested by op-alpha" in log.text
    assert "--- step baresoil/baresoil (finished)" in log.text
    # the run happened on a worker process of the 2-worker cluster, not in the service
    executor = live.app.state.capmon.resources[EXECUTOR]
    assert isinstance(executor, JobExecutor)
    assert len(executor.client().nthreads()) == 2  # type: ignore[no-untyped-call]
    worker_pid = int(log.text.split("worker pid ")[1].split(")")[0])
    assert worker_pid not in (0, os.getpid())


def test_prefer_wait_delays_the_asynchronous_answer(live: Live) -> None:
    """Processes run asynchronously only (OGC API - Processes 1.0: a process without
    sync-execute runs asynchronously whatever the client prefers); ``Prefer: wait=N`` delays
    the 201 answer until the job ends (or N seconds)."""
    answer = live.post(
        "/processes/baresoil/execution",
        json={"inputs": {"site": "alpha", "season": SEASON}},
        headers={"Prefer": "wait=50"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["preference-applied"] == "wait=50"
    status = answer.json()
    assert status["status"] == "successful"
    assert answer.headers["location"] == f"{live.url}/jobs/{status['jobID']}"
    results = live.get(f"/jobs/{status['jobID']}/results").json()
    assert results["baresoil"]["href"].startswith(f"{live.url}/stac/collections/baresoil/")
    # a run that fails on its inputs: its failed status, then its error at /results
    window = {"start": "2024-02-01", "end": "2024-02-02"}
    failing = live.post(
        "/processes/baresoil/execution",
        json={"inputs": {"site": "alpha", "season": SEASON, **window}},
        headers={"Prefer": "wait"},
    )
    assert failing.status_code == 201, failing.text
    status = failing.json()
    assert status["status"] == "failed"
    assert "no NDVI/NDTILL/BSI observation" in status["message"]
    results = live.get(f"/jobs/{status['jobID']}/results")
    assert results.status_code == 400
    assert results.json()["type"].endswith("job-failed")
    assert "Traceback" in live.get(f"/jobs/{status['jobID']}/logs").text
    # asked to respond asynchronously: 201 at once, the preference acknowledged
    async_answer = live.post(
        "/processes/baresoil/execution",
        json={"inputs": {"site": "alpha", "season": SEASON}},
        headers={"Prefer": "respond-async"},
    )
    assert async_answer.status_code == 201
    assert async_answer.headers["preference-applied"] == "respond-async"
    assert live.wait(async_answer.json()["jobID"], ended)["status"] == "successful"


def test_pause_then_resume(live: Live) -> None:
    job_id = live.execute(**SLOW).json()["jobID"]
    paused = live.post(f"/jobs/{job_id}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "running"
    assert paused.json()["x-capmon-status"] == "paused"
    assert live.post(f"/jobs/{job_id}/pause", "view-alpha").status_code == 403
    time.sleep(1.0)  # the worker reaches its next progress report and waits there
    before = live.get(f"/jobs/{job_id}").json()
    time.sleep(1.5)
    after = live.get(f"/jobs/{job_id}").json()
    assert before["x-capmon-status"] == after["x-capmon-status"] == "paused"
    assert before["progress"] == after["progress"] < 100
    workspace = live.workspace()
    try:
        assert products_of(workspace, job_id) == []
    finally:
        workspace.dispose()
    resumed = live.post(f"/jobs/{job_id}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["x-capmon-status"] == "running"
    final = live.wait(job_id, ended)
    assert final["status"] == "successful", final
    conflict = live.post(f"/jobs/{job_id}/resume")
    assert conflict.status_code == 409
    assert "finished" in conflict.json()["detail"]


def test_cancel_keeps_the_record_and_registers_nothing(live: Live) -> None:
    job_id = live.execute(**SLOW).json()["jobID"]
    cancelled = live.post(f"/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "dismissed"
    assert cancelled.json()["x-capmon-status"] == "cancelled"
    not_ready = live.get(f"/jobs/{job_id}/results")
    assert not_ready.status_code == 404
    assert not_ready.json()["type"] == OGC + "result-not-ready"
    workspace = live.workspace()
    try:
        assert wait_without_orphans(workspace) == []
        assert products_of(workspace, job_id) == []
    finally:
        workspace.dispose()
    deadline = time.monotonic() + 30
    while "(cancelled)" not in (log := live.get(f"/jobs/{job_id}/logs").text):
        assert time.monotonic() < deadline, log
        time.sleep(0.1)
    assert live.get(f"/jobs/{job_id}").json()["x-capmon-status"] == "cancelled"
    assert live.post(f"/jobs/{job_id}/pause").status_code == 409


def test_dismiss_deletes_products_log_and_record(live: Live) -> None:
    finished = live.execute().json()["jobID"]
    assert live.wait(finished, ended)["status"] == "successful"
    running = live.execute(**SLOW).json()["jobID"]
    workspace = live.workspace()
    try:
        (product,) = products_of(workspace, finished)
        finished_row, running_row = row_id(workspace, finished), row_id(workspace, running)
        assert live.delete(f"/jobs/{finished}", "view-alpha").status_code == 403
        answer = live.delete(f"/jobs/{finished}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "dismissed"
        assert answer.json()["jobID"] == finished
        assert not Path(product.path).exists()
        assert not job_store.job_folder(workspace, finished_row).exists()
        with workspace.session() as session:
            assert session.get(Product, product.id) is None
        for path in ("", "/results", "/logs"):
            gone = live.get(f"/jobs/{finished}{path}")
            assert gone.status_code == 404, path
            assert gone.json()["type"] == OGC + "no-such-job"
        assert live.delete(f"/jobs/{finished}").status_code == 404
        # a running job: cancelled, and nothing it writes afterwards stays
        assert live.delete(f"/jobs/{running}").json()["status"] == "dismissed"
        assert live.get(f"/jobs/{running}").status_code == 404
        assert wait_without_orphans(workspace) == []
        with workspace.session() as session:
            assert session.get(Job, running_row) is None
        assert not job_store.job_folder(workspace, running_row).exists()
    finally:
        workspace.dispose()


def test_season_runs_are_cancelled_not_dismissed(live: Live) -> None:
    workspace = live.workspace()
    try:
        with workspace.session() as session:
            site = get_site(session, "alpha")
            season = get_season(session, site, SEASON)
        number = job_store.create_job(workspace, "season", site, season, StartType.REQUESTED, {})
        job_id = uid_of(workspace, number)
    finally:
        workspace.dispose()
    refused = live.delete(f"/jobs/{job_id}")
    assert refused.status_code == 409
    assert f"POST /jobs/{job_id}/cancel" in refused.json()["detail"]
    assert live.post(f"/jobs/{job_id}/cancel").json()["x-capmon-status"] == "cancelled"


def test_job_list_filters_paging_and_access(live: Live) -> None:
    first = live.execute().json()["jobID"]
    second = live.execute().json()["jobID"]
    # submitted together: the second waits for the first (same processor and site), so the
    # two products get their own folders instead of colliding on the same name
    assert live.wait(second, ended)["status"] == "successful"
    assert live.wait(first, ended)["status"] == "successful"
    workspace = live.workspace()
    try:
        (one,), (two,) = products_of(workspace, first), products_of(workspace, second)
        assert one.path != two.path
    finally:
        workspace.dispose()
    page = live.get("/jobs", params={"processID": "baresoil", "limit": 1}).json()
    assert [job["jobID"] for job in page["jobs"]] == [second]
    rels = {entry["rel"]: entry["href"] for entry in page["links"]}
    assert "prev" not in rels
    following = httpx.get(rels["next"], headers=live.headers["op-alpha"]).json()
    assert [job["jobID"] for job in following["jobs"]] == [first]
    assert "prev" in {entry["rel"] for entry in following["links"]}
    successful = live.get("/jobs", params={"status": "successful", "limit": 1000}).json()
    assert {job["status"] for job in successful["jobs"]} == {"successful"}
    assert first in {job["jobID"] for job in successful["jobs"]}
    by_capmon = live.get("/jobs", params={"status": "finished,error", "site": "alpha"}).json()
    assert {job["x-capmon-status"] for job in by_capmon["jobs"]} <= {"finished", "error"}
    bad = live.get("/jobs", params={"status": "done"})
    assert bad.status_code == 400
    assert "status" in bad.json()["detail"]
    # jobs of sites a user cannot read: not listed, 403 by id
    assert live.get("/jobs", "view-beta").json()["jobs"] == []
    assert live.get("/jobs", "view-beta", params={"site": "alpha"}).status_code == 403
    assert live.get(f"/jobs/{first}", "view-beta").status_code == 403
    assert live.get(f"/jobs/{first}/results", "view-beta").status_code == 403
    assert live.get(f"/jobs/{first}", "admin").status_code == 200
    assert live.get(f"/jobs/{first}/results", "view-alpha").status_code == 200


@pytest.mark.parametrize(
    "job_id", ["1", "999999", "abc", "12345678901234567890123", "-1", "1.0", "0" * 32, "F" * 32]
)
def test_unknown_jobs_are_no_such_job(live: Live, job_id: str) -> None:
    for method, path in (
        ("GET", ""),
        ("GET", "/results"),
        ("GET", "/logs"),
        ("DELETE", ""),
        ("POST", "/pause"),
        ("POST", "/cancel"),
    ):
        answer = httpx.request(
            method, f"{live.url}/jobs/{job_id}{path}", headers=live.headers["admin"]
        )
        assert answer.status_code == 404, (method, path)
        assert answer.json()["type"] == OGC + "no-such-job"


def test_viewers_and_other_sites_operators_cannot_execute(live: Live) -> None:
    for user in ("view-alpha", "op-beta", "view-beta"):
        answer = live.execute(user=user)
        assert answer.status_code == 403, user
        assert answer.json()["status"] == 403


def test_mdb_results_link_the_item_the_job_wrote(live: Live) -> None:
    answer = live.post(
        "/processes/mdb/execution",
        json={"inputs": {"site": "alpha", "season": SEASON, "signals": ["NDVI"]}},
        headers={"Prefer": "wait=120"},
    )
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["jobID"]
    assert live.wait(job_id, ended)["status"] == "successful"
    results = live.get(f"/jobs/{job_id}/results").json()
    link = results["mdb"]
    assert link["rel"] == "item", results  # not the whole mdb collection
    assert link["href"].startswith(f"{live.url}/stac/collections/mdb/items/alpha.mdb_{SEASON}_")
    item = httpx.get(link["href"], headers=live.headers["view-alpha"])
    assert item.status_code == 200, item.text
    assert item.json()["id"] == link["href"].rsplit("/", 1)[1]
    assert item.json()["properties"]["capmon:site"] == "alpha"
