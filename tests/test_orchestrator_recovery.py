"""Recovery rules of season runs: a failed processor is retried with backoff by automatic runs
(and always by requested ones), ``capmon watch --once`` fails when its run fails, and product
folders a killed run left unregistered are removed by the run that takes its lock over."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from capmon.catalog.models import ActivityStatus, DeclarationSet, SeasonLock, StartType
from capmon.cli.main import app
from capmon.mdb.extract import mdb_folder
from capmon.orchestrator import ClusterSpec, dask_client, run_season
from capmon.orchestrator import execute as execute_module
from capmon.orchestrator.jobs import create_job, failed_attempts
from capmon.orchestrator.lock import SeasonRunLock
from capmon.parcels import import_lut
from capmon.parcels.store import latest_row
from capmon.processors.common import register_product
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import Workspace, open_workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    return generate_world(
        tmp_path_factory.mktemp("recovery") / "w",
        parcels=30,
        window_km=1.0,
        revisit_days=30,
        s2_format="cog",
        sentinel1=False,
        seed=9,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    with dask_client(ClusterSpec(workers=1, threads=1)) as client:
        yield client


def _workspace(world: SynthWorld, home: Path, database_url: str | None = None) -> Workspace:
    """Declarations and a broken MDB (a folder without its manifest): bare soil is due (its
    inputs are there, so it is not skipped) and fails at once."""
    workspace = open_workspace(home, database_url)
    year = world.years[0]
    with workspace.session() as session:
        site = create_site(session, "tiny", world.aoi)
        create_season(
            session, site, "S", SeasonDates.parse(f"{year}-02-01", f"{year}-11-30", f"{year}-06-15")
        )
    import_lut(workspace, "tiny", year, world.lut)
    import_world_declarations(
        workspace,
        "tiny",
        year,
        world.declarations[year],
    )
    with workspace.session() as session:
        site = get_site(session, "tiny")
        declarations = latest_row(session, DeclarationSet, site, year)
        assert declarations is not None
        mdb_folder(workspace, "tiny", "S", declarations.id).mkdir(parents=True)
    return workspace


def test_failed_processors_are_retried_with_backoff(
    world: SynthWorld, tmp_path: Path, cluster: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = _workspace(world, tmp_path / "ws")
    until = dt.date(world.years[0], 9, 1)

    def run(start_type: StartType) -> execute_module.SeasonRunReport:
        return run_season(
            workspace, "tiny", "S", until=until, processors=["baresoil"],
            client=cluster, start_type=start_type,  # type: ignore[arg-type]
        )  # fmt: skip

    first = run(StartType.TRIGGERED)
    assert first.status == ActivityStatus.ERROR.value
    assert [name for name, _ in first.processors_failed] == ["baresoil"]
    assert "not an MDB folder" in first.processors_failed[0][1]
    # an automatic run waits for the backoff
    second = run(StartType.SCHEDULED)
    assert second.nothing_due
    assert second.processors_backing_off[0][0] == "baresoil"
    assert "next retry after" in second.processors_backing_off[0][1]
    # a requested run retries at once
    third = run(StartType.REQUESTED)
    assert third.status == ActivityStatus.ERROR.value
    # with no backoff left, automatic runs retry until the attempts are used up
    monkeypatch.setattr(execute_module, "RETRY_BACKOFF", dt.timedelta(0))
    for _ in range(2):
        assert run(StartType.TRIGGERED).status == ActivityStatus.ERROR.value
    counts = failed_attempts(workspace, _error_keys(workspace))
    assert [a.count for a in counts.values()] == [execute_module.MAX_AUTOMATIC_ATTEMPTS]
    last = run(StartType.TRIGGERED)
    assert last.nothing_due
    assert "failed 4 times" in last.processors_backing_off[0][1]
    workspace.dispose()


def _error_keys(workspace: Workspace) -> set[str]:
    from sqlalchemy import select

    from capmon.catalog.models import Task

    with workspace.session() as session:
        return {
            k
            for k in session.scalars(
                select(Task.output_key).where(Task.status == ActivityStatus.ERROR)
            )
            if k is not None
        }


def test_watch_once_exits_1_when_its_run_fails(world: SynthWorld, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    _workspace(world, home).dispose()
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    args = ["--home", str(home), "watch", "tiny", str(incoming), "--season", "S", "--once"]
    options = ["--processors", "baresoil", "--workers", "1", "--until", f"{world.years[0]}-09-01"]
    result = runner.invoke(app, [*args, *options])
    assert result.exit_code == 1, result.output
    assert "baresoil failed" in result.output


def test_a_takeover_removes_the_killed_runs_unregistered_products(
    world: SynthWorld, tmp_path: Path
) -> None:
    workspace = _workspace(world, tmp_path / "ws")
    with workspace.session() as session:
        site = get_site(session, "tiny")
        season = get_season(session, site, "S")
    products = workspace.path("products/tiny/baresoil")
    registered = products / "SEN4CAP_BARESOIL_S1_V1_2_20240101T000000"
    orphan = products / "SEN4CAP_BARESOIL_S1_V1_2_20240102T000000"
    temporary = products / ".SEN4CAP_BARESOIL_S1_V1_2_20240103T000000.0123abcd.tmp"
    for folder in (registered, orphan, temporary):
        folder.mkdir(parents=True)
        (folder / "report.json").write_text("{}")
    register_product(workspace, site, registered, "s4c_baresoil", None, None, {})
    # the killed run's last heartbeat came after it wrote those folders
    past = dt.datetime.now(dt.UTC).timestamp() - 600
    for folder in (registered, orphan, temporary):
        os.utime(folder, (past, past))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    heartbeat = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
    job_id = create_job(workspace, "season", site, season, StartType.REQUESTED, {})
    lock = SeasonRunLock(workspace, season.id)
    with workspace.session() as session:
        session.add(
            SeasonLock(
                season_id=season.id, job_id=job_id, owner="gone", host=lock.host, pid=dead.pid,
                acquired_at=heartbeat, heartbeat_at=heartbeat,
            )
        )  # fmt: skip
    # a folder another process is writing right now (after the heartbeat) is left alone
    fresh = products / ".SEN4CAP_BARESOIL_S1_V1_2_20240104T000000.4567cdef.tmp"
    fresh.mkdir()
    report = run_season(
        workspace, "tiny", "S", until=dt.date(world.years[0], 1, 1), processors=["baresoil"]
    )
    assert report.nothing_due
    assert report.lock_taken_over_from is not None
    assert sorted(report.orphans_removed) == sorted(
        [workspace.relative(orphan), workspace.relative(temporary)]
    )
    assert registered.is_dir()
    assert fresh.is_dir()
    assert not orphan.exists()
    assert not temporary.exists()
    workspace.dispose()


def test_two_runs_in_the_same_second_get_two_product_folders(
    world: SynthWorld, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from capmon.processors.common import new_product_folder

    workspace = _workspace(world, tmp_path / "ws")
    with workspace.session() as session:
        site = get_site(session, "tiny")
    name = "SEN4CAP_BARESOIL_S1_V1_2_20240101T000000"
    with ThreadPoolExecutor(8) as pool:
        folders = list(
            pool.map(lambda _i: new_product_folder(workspace, site, "baresoil", name), range(8))
        )
    assert len(set(folders)) == 8
    registered = folders[0]
    registered.mkdir()
    register_product(workspace, site, registered, "s4c_baresoil", None, None, {})
    assert not registered.with_name(f".{registered.name}.reserved").exists()
    workspace.dispose()
