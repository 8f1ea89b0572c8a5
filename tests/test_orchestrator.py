"""Orchestration: schedules, season runs on a real 2-worker LocalCluster, resume after SIGKILL,
a worker killed mid-run, a late product, reruns that do nothing, the season lock and jobs CLI."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from capmon.catalog.models import ActivityStatus, Job, Season, SeasonLock, StartType
from capmon.cli.main import app
from capmon.errors import ConflictError, InputError
from capmon.mdb.extract import ExtractionSettings, extract_season
from capmon.mdb.query import open_mdb
from capmon.orchestrator import (
    ClusterSpec,
    SeasonRunLock,
    dask_client,
    list_jobs,
    occurrences,
    run_season,
    set_schedule,
    show_job,
)
from capmon.orchestrator.jobs import create_job
from capmon.orchestrator.plan import processor_key
from capmon.orchestrator.units import UnitOutcome
from capmon.parcels import import_lut
from capmon.processors import get_processor
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.sources import ingest_product
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import Workspace, open_workspace

SIGNALS = ["NDVI", "NDTILL", "BSI"]
PROCESSORS = ["mdb", "baresoil"]
runner = CliRunner()


def _season(start: str, mid: str, end: str) -> Season:
    dates = SeasonDates.parse(start, end, mid)
    return Season(name="S", start_date=dates.start, mid_date=dates.mid, end_date=dates.end)


def test_occurrences_follow_sen4cap_default_schedules() -> None:
    season = _season("2024-02-01", "2024-06-15", "2024-11-30")
    end = dt.date(2024, 11, 30)
    l4a = occurrences(get_processor("l4a").schedule, season, end)
    assert l4a[0] == dt.date(2024, 6, 15)
    assert l4a[1] == dt.date(2024, 6, 30)
    assert l4a[-1] == dt.date(2024, 11, 30)
    assert len(l4a) == 7
    l4b = occurrences(get_processor("l4b").schedule, season, end)
    assert l4b[0] == dt.date(2024, 3, 3)
    assert l4b[1] == dt.date(2024, 3, 31)
    l4c = occurrences(get_processor("l4c").schedule, season, dt.date(2024, 2, 20))
    assert l4c == [dt.date(2024, 2, 1), dt.date(2024, 2, 8), dt.date(2024, 2, 15)]
    assert occurrences(get_processor("l4a").schedule, season, dt.date(2024, 6, 1)) == []
    # until after the season end stops at the season end
    daily = occurrences(get_processor("mdb").schedule, season, dt.date(2025, 1, 1))
    assert daily[-1] == end
    assert len(daily) == (end - season.start_date).days + 1


def test_a_late_product_changes_the_key_a_later_one_does_not() -> None:
    season = _season("2024-02-01", "2024-06-15", "2024-11-30")
    season.id = 1
    l4a = get_processor("l4a")
    occurrence = dt.date(2024, 6, 30)
    products = [("A", dt.date(2024, 5, 1)), ("B", dt.date(2024, 6, 20))]
    key = processor_key(l4a, {}, season, 1, occurrence, products)
    assert (
        processor_key(l4a, {}, season, 1, occurrence, [*products, ("C", dt.date(2024, 7, 2))])
        == key
    )
    assert (
        processor_key(l4a, {}, season, 1, occurrence, [*products, ("D", dt.date(2024, 3, 2))])
        != key
    )
    assert processor_key(l4a, {"seed": 1}, season, 1, occurrence, products) != key
    assert processor_key(l4a, {}, season, 2, occurrence, products) != key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    return generate_world(
        tmp_path_factory.mktemp("orch") / "w",
        parcels=40,
        window_km=1.2,
        revisit_days=20,
        s2_format="cog",
        sentinel1=False,
        seed=5,
    )


def _products(world: SynthWorld) -> list[Path]:
    assert world.s2_dir is not None
    return sorted(p for p in world.s2_dir.iterdir() if not p.name.startswith("."))


def _workspace(
    world: SynthWorld, home: Path, url: str | None = None, skip: tuple[Path, ...] = ()
) -> Workspace:
    workspace = open_workspace(home, url)
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
    _ingest(workspace, [p for p in _products(world) if p not in skip])
    set_schedule(workspace, "tiny", "S", "mdb", parameters={"signals": SIGNALS})
    return workspace


def _ingest(workspace: Workspace, paths: list[Path]) -> None:
    with workspace.session() as session:
        site = get_site(session, "tiny")
        for path in paths:
            ingest_product(session, site, path)


def _rows(mdb: Path) -> pd.DataFrame:
    frame = open_mdb(mdb).timeseries()
    return frame.sort_values(["parcel_id", "signal", "date", "product_id"]).reset_index(drop=True)


def _mdb(workspace: Workspace) -> Path:
    folders = list(workspace.path("mdb/tiny/S").glob("declarations-*"))
    assert len(folders) == 1
    return folders[0]


@pytest.fixture(scope="module")
def reference(world: SynthWorld, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The MDB of an uninterrupted, serial extraction (no orchestrator)."""
    workspace = _workspace(world, tmp_path_factory.mktemp("reference") / "ws")
    try:
        result = extract_season(
            workspace, "tiny", "S", ExtractionSettings(optical_signals=tuple(SIGNALS))
        )
        assert not result.report.failed
        assert result.report.rows > 0
        return _rows(result.mdb_path)
    finally:
        workspace.dispose()


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A real LocalCluster of 2 worker processes, shared by the module's in-process runs."""
    with dask_client(ClusterSpec(workers=2, threads=1)) as client:
        yield client


def test_season_run_on_two_workers_then_a_rerun_does_nothing(
    world: SynthWorld, reference: pd.DataFrame, cluster: object, tmp_path: Path
) -> None:
    workspace = _workspace(world, tmp_path / "ws")
    try:
        report = run_season(workspace, "tiny", "S", processors=PROCESSORS, client=cluster)  # type: ignore[arg-type]
        assert report.status == "finished", report.summary()
        assert len(report.extracted) + len(report.empty) == len(_products(world))
        assert [p for p, _ in report.processors_run] == ["baresoil"]
        pd.testing.assert_frame_equal(_rows(_mdb(workspace)), reference)
        view = show_job(workspace, report.job_id or 0)
        assert view.status == "finished"
        assert view.progress == 1.0
        assert [t["module"] for t in view.tasks] == ["mdb", "compact", "baresoil"]
        assert view.tasks[0]["steps"] == len(_products(world))
        assert view.tasks[2]["output_key"]
        assert view.tasks[2]["preceding"] == [
            view.tasks[0]["id"],
            view.tasks[1]["id"],
        ]
        products = workspace.path("products/tiny/baresoil")
        made = sorted(products.iterdir())

        again = run_season(workspace, "tiny", "S", processors=PROCESSORS, client=cluster)  # type: ignore[arg-type]
        assert again.nothing_due
        assert again.job_id is None
        assert len(list_jobs(workspace)) == 1
        assert sorted(products.iterdir()) == made

        # A new parameter is a new input key: the processor runs again, the MDB is untouched.
        set_schedule(workspace, "tiny", "S", "baresoil", parameters={"ndvi_max": 0.32})
        changed = run_season(workspace, "tiny", "S", processors=PROCESSORS, client=cluster)  # type: ignore[arg-type]
        assert not changed.extracted
        assert [p for p, _ in changed.processors_run] == ["baresoil"]
    finally:
        workspace.dispose()


def test_a_late_product_is_inserted_and_dependent_products_recomputed(
    world: SynthWorld, reference: pd.DataFrame, cluster: object, tmp_path: Path
) -> None:
    late = _products(world)[len(_products(world)) // 2]
    workspace = _workspace(world, tmp_path / "ws", skip=(late,))
    try:
        first = run_season(workspace, "tiny", "S", processors=PROCESSORS, client=cluster)  # type: ignore[arg-type]
        assert first.status == "finished"
        assert late.name not in first.extracted
        _ingest(workspace, [late])
        second = run_season(workspace, "tiny", "S", processors=PROCESSORS, client=cluster)  # type: ignore[arg-type]
        assert len(second.extracted) + len(second.empty) == 1
        assert [p for p, _ in second.processors_run] == ["baresoil"]
        pd.testing.assert_frame_equal(_rows(_mdb(workspace)), reference)
        assert run_season(workspace, "tiny", "S", processors=PROCESSORS, client=cluster).nothing_due  # type: ignore[arg-type]
    finally:
        workspace.dispose()


def test_a_worker_killed_mid_run_has_its_units_rerun_elsewhere(
    world: SynthWorld, reference: pd.DataFrame, tmp_path: Path
) -> None:
    workspace = _workspace(world, tmp_path / "ws")
    killed: list[int] = []
    try:
        with dask_client(ClusterSpec(workers=2, threads=1)) as client:
            pids: dict[str, int] = client.run(os.getpid)

            def kill_one(outcome: UnitOutcome) -> None:
                if not killed:
                    victim = next(p for p in pids.values() if p != outcome.worker_pid)
                    os.kill(victim, signal.SIGKILL)
                    killed.append(victim)

            report = run_season(
                workspace, "tiny", "S", processors=["mdb"], client=client, on_unit=kill_one
            )
        assert killed
        assert killed[0] not in report.workers
        assert report.status == "finished"
        assert not report.failed
        pd.testing.assert_frame_equal(_rows(_mdb(workspace)), reference)
    finally:
        workspace.dispose()


def _cli_run(home: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "capmon"), "--home", str(home)]
    return subprocess.Popen(
        [*command, "season", "run", "tiny", "S", "--processors", "mdb", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_sigkill_then_rerun_gives_the_uninterrupted_mdb(
    world: SynthWorld, reference: pd.DataFrame, tmp_path: Path
) -> None:
    home = tmp_path / "ws"
    _workspace(world, home).dispose()
    observations = home / "mdb" / "tiny" / "S" / "declarations-1" / "observations"
    process = _cli_run(home)
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline and process.poll() is None:
        stored = len(list(observations.glob("*.parquet"))) if observations.exists() else 0
        if stored >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()[0].decode()
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its workers: the whole run
    process.communicate()
    assert 2 <= stored < len(_products(world))

    rerun = _cli_run(home)
    output = rerun.communicate(timeout=120)[0].decode()
    assert rerun.returncode == 0, output
    workspace = open_workspace(home)
    try:
        pd.testing.assert_frame_equal(_rows(_mdb(workspace)), reference)
        jobs = {j.id: j for j in list_jobs(workspace)}
        assert jobs[1].status == "error"
        assert "interrupted" in (jobs[1].message or "")
        assert jobs[2].status == "finished"
        with workspace.session() as session:
            assert session.get(SeasonLock, 1) is None
    finally:
        workspace.dispose()


def _site_and_season(workspace: Workspace, world: SynthWorld) -> int:
    with workspace.session() as session:
        site = create_site(session, "tiny", world.aoi)
        season = create_season(session, site, "S", SeasonDates.parse("2024-02-01", "2024-11-30"))
        session.flush()
        return season.id


def test_a_second_run_is_refused_while_the_first_holds_the_season_lock(
    workspace: Workspace, world: SynthWorld
) -> None:
    season_id = _site_and_season(workspace, world)
    with workspace.session() as session:
        site = get_site(session, "tiny")
        season = get_season(session, site, "S")
    job_id = create_job(workspace, "season", site, season, StartType.REQUESTED, {})
    with SeasonRunLock(workspace, season_id, what="season S of site tiny") as held:
        held.set_job(job_id)
        with pytest.raises(
            ConflictError, match=rf"season S of site tiny is being run by job {job_id}"
        ):
            run_season(workspace, "tiny", "S")
        with pytest.raises(ConflictError, match="jobs cancel"):
            SeasonRunLock(workspace, season_id).acquire()
    # released: the next one takes it
    with SeasonRunLock(workspace, season_id) as again:
        assert again.taken_over is None


def test_a_stale_lock_of_a_killed_run_is_taken_over(
    workspace: Workspace, world: SynthWorld
) -> None:
    season_id = _site_and_season(workspace, world)
    with workspace.session() as session:
        site = get_site(session, "tiny")
        season = get_season(session, site, "S")
    job_id = create_job(workspace, "season", site, season, StartType.REQUESTED, {})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stamp = dt.datetime.now(dt.UTC)
    lock = SeasonRunLock(workspace, season_id)
    with workspace.session() as session:
        session.add(
            SeasonLock(
                season_id=season_id, job_id=job_id, owner="gone", host=lock.host, pid=dead.pid,
                acquired_at=stamp, heartbeat_at=stamp,
            )
        )  # fmt: skip
        session.get_one(Job, job_id).status = ActivityStatus.RUNNING
    with lock:
        assert lock.taken_over is not None
        assert lock.taken_over.job_id == job_id
    view = show_job(workspace, job_id)
    assert view.status == "error"
    assert "interrupted" in (view.message or "")
    # an old heartbeat of another host is stale too
    with workspace.session() as session:
        session.add(
            SeasonLock(
                season_id=season_id, job_id=None, owner="far", host="elsewhere", pid=1,
                acquired_at=stamp, heartbeat_at=stamp - dt.timedelta(minutes=10),
            )
        )  # fmt: skip
    with SeasonRunLock(workspace, season_id) as taken:
        assert taken.taken_over is not None
        assert taken.taken_over.owner == "far"


def test_jobs_cli_list_show_logs_pause_resume_cancel(world: SynthWorld, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    workspace = open_workspace(home)
    try:
        _site_and_season(workspace, world)
        with workspace.session() as session:
            site = get_site(session, "tiny")
            season = get_season(session, site, "S")
        job_id = create_job(workspace, "season", site, season, StartType.SCHEDULED, {"a": 1})
    finally:
        workspace.dispose()
    base = ["--home", str(home), "jobs"]
    listed = runner.invoke(app, [*base, "list", "--json"])
    assert listed.exit_code == 0
    assert f'"id": {job_id}' in listed.output
    assert runner.invoke(app, [*base, "resume", str(job_id)]).exit_code == 2  # not paused
    assert "paused" in runner.invoke(app, [*base, "pause", str(job_id)]).output
    assert "running" in runner.invoke(app, [*base, "resume", str(job_id)]).output
    assert "cancelled" in runner.invoke(app, [*base, "cancel", str(job_id)]).output
    refused = runner.invoke(app, [*base, "pause", str(job_id)])
    assert refused.exit_code == 2
    assert "cancelled" in refused.output
    logs = runner.invoke(app, [*base, "logs", str(job_id)])
    assert "pause requested" not in logs.output
    assert "paused requested" in logs.output
    shown = runner.invoke(app, [*base, "show", str(job_id)])
    assert "cancelled" in shown.output
    assert runner.invoke(app, [*base, "show", "999"]).exit_code == 2


def test_schedule_overrides_are_checked(world: SynthWorld, tmp_path: Path) -> None:
    workspace = open_workspace(tmp_path / "ws")
    try:
        _site_and_season(workspace, world)
        with pytest.raises(InputError, match="kind"):
            set_schedule(workspace, "tiny", "S", "l4a", kind="hourly")
        with pytest.raises(ValueError, match="no_such_field"):
            set_schedule(workspace, "tiny", None, "l4a", parameters={"no_such_field": 1})
    finally:
        workspace.dispose()
