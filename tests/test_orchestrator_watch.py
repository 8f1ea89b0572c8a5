"""``capmon watch SITE DIR --season S --once``: a product dropped into the watched folder is
registered and extracted and the due processors run; a look with nothing new does nothing."""

from __future__ import annotations

import shutil
import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from capmon.cli.main import app
from capmon.mdb.store import MdbStore
from capmon.orchestrator import list_jobs, set_schedule, show_job
from capmon.parcels import import_lut
from capmon.sites import SeasonDates, create_season, create_site, get_site
from capmon.sources import list_products
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import open_workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    return generate_world(
        tmp_path_factory.mktemp("watch") / "w",
        parcels=30,
        window_km=1.0,
        revisit_days=45,
        s2_format="cog",
        sentinel1=False,
        seed=11,
    )


def _products(world: SynthWorld) -> list[Path]:
    assert world.s2_dir is not None
    return sorted(
        (p for p in world.s2_dir.iterdir() if not p.name.startswith(".")),
        key=lambda p: p.name.split("_")[2],
    )


def _watch(home: Path, folder: Path) -> Result:
    result = runner.invoke(
        app,
        ["--home", str(home), "watch", "tiny", str(folder), "--season", "S", "--once",
         "--processors", "mdb,baresoil", "--workers", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + "".join(
        traceback.format_exception(*result.exc_info) if result.exc_info else []
    )
    return result


def test_watch_once_picks_up_a_new_product_then_does_nothing(
    world: SynthWorld, tmp_path: Path
) -> None:
    home = tmp_path / "ws"
    year = world.years[0]
    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            site = create_site(session, "tiny", world.aoi)
            create_season(session, site, "S", SeasonDates.parse(f"{year}-02-01", f"{year}-11-30"))
        import_lut(workspace, "tiny", year, world.lut)
        import_world_declarations(
            workspace, "tiny", year, world.declarations[year],
        )  # fmt: skip
        set_schedule(
            workspace, "tiny", "S", "mdb", parameters={"signals": ["NDVI", "NDTILL", "BSI"]}
        )
    finally:
        workspace.dispose()
    products = _products(world)
    late = products[len(products) // 2]  # dated before the processors' last occurrence
    watched = tmp_path / "incoming"
    watched.mkdir()
    for product in products:
        if product != late:
            shutil.copytree(product, watched / product.name)

    first = _watch(home, watched)
    assert "job 1 finished" in first.output

    shutil.copytree(late, watched / late.name)  # a new product arrives
    second = _watch(home, watched)
    assert "job 2 finished" in second.output

    third = _watch(home, watched)
    assert "nothing due" in third.output

    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            registered = {
                p.name: Path(p.path) for p in list_products(session, get_site(session, "tiny"))
            }
        for product in products:
            name = product.name.removesuffix(".SAFE")
            assert registered[name].parent == watched  # registered where it was dropped
        jobs = sorted(list_jobs(workspace), key=lambda j: j.id)
        assert len(jobs) == 2  # the third look started no job
        assert [j.status for j in jobs] == ["finished", "finished"]
        assert [j.start_type for j in jobs] == ["triggered", "triggered"]
        first_job, second_job = (show_job(workspace, j.id) for j in jobs)
        assert first_job.tasks[0]["steps"] == len(products) - 1
        assert [t["module"] for t in second_job.tasks] == ["mdb", "compact", "baresoil"]
        assert second_job.tasks[0]["steps"] == 1  # only the new product
        for view in (first_job, second_job):
            assert view.tasks[2]["status"] == "finished"
            assert view.tasks[2]["output_key"]
        # the late product changed the processor's input key: a new run, a new product
        assert first_job.tasks[2]["output_key"] != second_job.tasks[2]["output_key"]
        assert len(list(home.glob("products/tiny/baresoil/*"))) == 2
        store = MdbStore(next(home.glob("mdb/tiny/S/declarations-*")))
        assert all(store.has_product(p.name.removesuffix(".SAFE")) for p in products)
    finally:
        workspace.dispose()
