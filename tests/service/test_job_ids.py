"""Job ids never repeat: a dismissed job's URL never shows another job (issue 18, item 4).

SQLite gives a new row the id of the newest row deleted before it; job URLs carry the job's
random uid instead. The jobs here are catalogue records (no Dask run): dismissing one that
never started only deletes it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capmon.catalog.models import StartType
from capmon.orchestrator import jobs as job_store
from capmon.sites import get_season, get_site
from capmon.workspace import Workspace, open_workspace
from tests.service.conftest import SEASON, login, make_app

CREATE = -1
"""An operation: create a job; any other value n dismisses the n-th live job from the newest
(modulo their number)."""


def _create(client: TestClient, workspace: Workspace, headers: dict[str, str]) -> str:
    with workspace.session() as session:
        site = get_site(session, "alpha")
        season = get_season(session, site, SEASON)
    job_store.create_job(workspace, "baresoil", site, season, StartType.REQUESTED, {})
    newest = client.get("/jobs", params={"limit": 1}, headers=headers).json()["jobs"][0]
    return str(newest["jobID"])


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=st.lists(st.sampled_from([CREATE, CREATE, 0, 0, 1, 2]), max_size=12))
def test_job_ids_never_repeat_after_dismiss(writable_home: Path, operations: list[int]) -> None:
    workspace = open_workspace(writable_home)
    try:
        with TestClient(make_app(writable_home)) as client:
            headers = login(client, "admin")
            seen: set[str] = {
                job["jobID"] for job in client.get("/jobs", headers=headers).json()["jobs"]
            }
            live: list[str] = []
            dismissed: list[str] = []
            for operation in [CREATE, *operations, CREATE]:
                if operation == CREATE or not live:
                    job_id = _create(client, workspace, headers)
                    assert job_id not in seen, f"job id {job_id} was used before"
                    seen.add(job_id)
                    live.append(job_id)
                else:
                    job_id = live.pop(-1 - operation % len(live))
                    answer = client.delete(f"/jobs/{job_id}", headers=headers)
                    assert answer.status_code == 200, answer.text
                    dismissed.append(job_id)
                for gone in dismissed:  # an old URL never shows another job
                    assert client.get(f"/jobs/{gone}", headers=headers).status_code == 404
                for job_id in live:
                    assert client.get(f"/jobs/{job_id}", headers=headers).json()["jobID"] == job_id
    finally:
        workspace.dispose()
