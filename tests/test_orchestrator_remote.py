"""A season run on a separate Dask scheduler with ``capmon worker`` processes and a PostgreSQL
catalogue: the setup of several machines sharing a catalogue and a file system, on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from capmon.catalog.models import Step
from capmon.cli.main import app
from capmon.mdb.query import open_mdb
from capmon.orchestrator import list_jobs
from capmon.sites import get_site
from capmon.sources import ingest_product
from capmon.synth import SynthWorld
from tests.test_orchestrator_recovery import _workspace
from tests.test_orchestrator_recovery import world as world

runner = CliRunner()
pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def remote_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A scheduler process and two ``capmon worker`` processes."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()

    def spawn(args: list[str], log: str) -> subprocess.Popen[bytes]:
        with (logs / log).open("wb") as sink:  # the child keeps its own descriptor
            return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)

    scheduler = spawn(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--dashboard-address", ":0", "--no-show"],
        "scheduler.log",
    )  # fmt: skip
    capmon = [sys.executable, "-c", "from capmon.cli.main import main; main()"]
    workers = [
        spawn([*capmon, "worker", address, "--name", f"machine-{i}"], f"worker{i}.log")
        for i in range(2)
    ]
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout=5) as client:  # type: ignore[no-untyped-call]
                    client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            process.terminate()
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_a_season_runs_on_a_remote_scheduler_with_capmon_workers_and_postgresql(
    world: SynthWorld,
    tmp_path: Path,
    pg_url: str,
    remote_cluster: tuple[str, list[subprocess.Popen[bytes]]],
) -> None:
    address, workers = remote_cluster
    home = tmp_path / "ws"
    workspace = _workspace(world, home, pg_url)
    with workspace.session() as session:
        site = get_site(session, "tiny")
        assert world.s2_dir is not None
        for path in sorted(p for p in world.s2_dir.iterdir() if not p.name.startswith(".")):
            ingest_product(session, site, path)
    base = ["--home", str(home), "--database-url", pg_url, "season", "run", "tiny", "S"]
    options = ["--scheduler", address, "--processors", "mdb,baresoil", "--json"]
    result = runner.invoke(app, [*base, *options])
    assert result.exit_code == 0, result.output
    assert '"processors_run": [\n    "baresoil"\n  ]' in result.output
    jobs = list_jobs(workspace)
    assert len(jobs) == 1
    assert jobs[0].status == "finished"
    # the units ran in the two worker processes, not in the driver
    with workspace.session() as session:
        pids = {p.get("worker_pid") for p in session.scalars(select(Step.parameters))} - {None}
    assert pids <= {w.pid for w in workers}
    assert len(pids) == 2
    folders = list(workspace.path("mdb/tiny/S").glob("declarations-*"))
    assert len(folders) == 1
    rows = open_mdb(folders[0]).timeseries()
    assert len(rows) > 0
    assert not rows.duplicated(["parcel_id", "signal", "date", "product_id"]).any()
    # a second run with the same command has nothing to do
    again = runner.invoke(app, [*base, *options])
    assert again.exit_code == 0, again.output
    assert '"job": null' in again.output
    workspace.dispose()
