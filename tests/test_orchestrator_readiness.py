"""Season runs on a user's own workspace (issue 19, items 1 and 7): a processor whose inputs
are not given is skipped with the reason and the command that gives them (never a failure),
the run prints its stages as it goes, the job's progress does not reach 100 % before its
processors ran, and the products a season run makes are linked to its job."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from capmon.catalog.models import Product
from capmon.cli.main import app
from capmon.orchestrator import ClusterSpec, list_jobs, run_season, set_schedule, show_job
from capmon.parcels import import_lut
from capmon.processors import get_processor
from capmon.processors.registry import missing_inputs
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.sources import ingest_product
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import Workspace, open_workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    return generate_world(
        tmp_path_factory.mktemp("ready") / "w",
        parcels=16,
        window_km=0.8,
        revisit_days=30,
        s2_format="cog",
        sentinel1=False,
        seed=3,
    )


def _workspace(world: SynthWorld, home: Path, *, lut: bool = True) -> Workspace:
    """A user's site: declarations, products and (unless ``lut`` is False) a LUT; no
    practice table."""
    workspace = open_workspace(home)
    year = world.years[0]
    with workspace.session() as session:
        site = create_site(session, "own", world.aoi)
        create_season(
            session, site, "S", SeasonDates.parse(f"{year}-02-01", f"{year}-11-30", f"{year}-06-15")
        )
    if lut:
        import_lut(workspace, "own", year, world.lut)
    import_world_declarations(workspace, "own", year, world.declarations[year])
    assert world.s2_dir is not None
    with workspace.session() as session:
        site = get_site(session, "own")
        for path in sorted(world.s2_dir.iterdir()):
            if not path.name.startswith("."):
                ingest_product(session, site, path)
    set_schedule(workspace, "own", "S", "mdb", parameters={"signals": ["NDVI", "NDTILL", "BSI"]})
    return workspace


def test_missing_inputs_name_the_command_that_gives_them(world: SynthWorld, tmp_path: Path) -> None:
    workspace = _workspace(world, tmp_path / "ws", lut=False)
    try:
        with workspace.session() as session:
            site = get_site(session, "own")
            season = get_season(session, site, "S")
        l4c = missing_inputs(get_processor("l4c"), workspace, site, season, {})
        assert [str(m) for m in l4c] == [
            f"needs practice tables (NA for {season.year}), see `capmon practices import`"
        ]
        # a practice table given as a parameter is given
        assert not missing_inputs(
            get_processor("l4c"), workspace, site, season, {"practices": "p.csv"}
        )
        l4a = missing_inputs(get_processor("l4a"), workspace, site, season, {})
        assert [m.command for m in l4a] == ["capmon lut import"]
        assert not missing_inputs(get_processor("baresoil"), workspace, site, season, {})
    finally:
        workspace.dispose()


def test_season_run_skips_what_has_no_input_and_links_its_products(
    world: SynthWorld, tmp_path: Path
) -> None:
    workspace = _workspace(world, tmp_path / "ws")
    seen: list[tuple[str, Any]] = []

    def progress(message: str, done: int, total: int) -> None:
        if message.startswith("processors: running"):
            # the processors are queued, none has ended: the job is far from done
            job = list_jobs(workspace)[0]
            seen.append((message, show_job(workspace, job.id)))
        elif not seen or seen[-1][0] != message:
            seen.append((message, None))

    try:
        report = run_season(
            workspace,
            "own",
            "S",
            until=dt.date(world.years[0], 11, 30),
            processors=["mdb", "baresoil", "l4c"],
            cluster=ClusterSpec(workers=1),
            progress=progress,
        )
        assert report.status == "finished", report.summary()
        assert [p for p, _ in report.processors_run] == ["baresoil"]
        assert not report.processors_failed
        assert [p for p, _ in report.processors_skipped] == ["l4c"]
        assert "capmon practices import" in report.processors_skipped[0][1]
        assert "skipped: l4c" in report.summary()

        stages = [message.split(":", 1)[0] for message, _ in seen]
        for stage in ("planning", "skipped l4c", "extraction", "processors"):
            assert stage in stages, stages
        mid = next(view for message, view in seen if view is not None)
        assert mid.status == "running"
        assert mid.progress < 0.9
        assert {t["module"]: t["status"] for t in mid.tasks}["baresoil"] in ("pending", "running")

        view = show_job(workspace, report.job_id or 0)
        assert view.progress == 1.0
        assert "l4c" not in [t["module"] for t in view.tasks]
        with workspace.session() as session:
            made = session.scalars(
                select(Product).where(
                    Product.product_type == get_processor("baresoil").outputs[0].product_type
                )
            ).all()
        assert made
        assert {p.job_id for p in made} == {report.job_id}
    finally:
        workspace.dispose()


def test_cli_season_run_reports_skipped_processors_and_stages(
    world: SynthWorld, tmp_path: Path
) -> None:
    home = tmp_path / "ws"
    _workspace(world, home).dispose()
    base = ["--home", str(home)]
    result = runner.invoke(
        app,
        [
            *base,
            "season",
            "run",
            "own",
            "S",
            "--until",
            f"{world.years[0]}-11-30",
            "--processors",
            "mdb,baresoil",
            "--processors",
            "l4c",
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "l4c skipped: needs practice tables" in result.output
    assert "see `capmon practices import`" in result.output
    # stage lines on stderr (plain lines: not a terminal)
    assert "extraction: " in result.stderr
    assert "processors: 1/1 done (baresoil finished)" in result.stderr
    shown = runner.invoke(app, [*base, "jobs", "list", "--json"])
    (job,) = json.loads(shown.stdout)
    assert job["status"] == "finished"
    assert "skipped: l4c" in job["message"]
    logs = runner.invoke(app, [*base, "jobs", "logs", str(job["id"])])
    assert "skipped l4c: needs practice tables" in logs.output
