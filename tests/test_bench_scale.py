"""``capmon bench scale`` on a tiny two-tile world: every figure is produced and the MDBs of
the 1- and 2-worker runs are identical. Timings are never asserted."""

from __future__ import annotations

import json
import shutil
import traceback
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from capmon.bench.scale import ScaleConfig, ScaleReport, _compare, _prepare_world
from capmon.cli.bench import bench_app
from capmon.errors import InputError
from capmon.mdb.query import open_mdb

TINY = ["--parcels", "60", "--tiles", "2", "--dates", "2", "--signals", "NDVI,B04"]


@pytest.fixture(scope="module")
def scale_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("scale")
    out = folder / "figures.json"
    result = CliRunner().invoke(
        bench_app, ["scale", *TINY, "--workdir", str(folder / "work"), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output + "".join(
        traceback.format_exception(*result.exc_info) if result.exc_info else []
    )
    assert "identical" in result.output
    return json.loads(out.read_text()), folder / "work"


def test_figures_are_produced_for_one_and_two_workers(
    scale_run: tuple[dict[str, Any], Path],
) -> None:
    figures, _work = scale_run
    assert figures["data"]["tiles"] == ["31UFS", "31UES"]
    assert figures["data"]["parcels_per_tile"] == [30, 30]
    assert figures["data"]["products"] == 4
    assert figures["data"]["parcel_dates"] == 120
    assert set(figures["runs"]) == {"1", "2"}
    for workers, run in figures["runs"].items():
        assert len(run["worker_peak_rss_bytes"]) == int(workers)
        assert all(b > 50e6 for b in run["worker_peak_rss_bytes"].values())
        assert run["units"] == 4
        assert run["extracted"] + run["empty"] == 4
        assert run["rows"] > 0
        assert run["extraction_wall_seconds"] > 0
        assert run["unit_compute_seconds"] > 0
        assert run["overhead_share"] < 1
        assert run["parcel_dates_per_second"] > 0
    assert len(figures["runs"]["2"]["units_per_worker"]) >= 1
    for name in ("speedup", "overhead_share", "cpu_seconds_per_parcel_date", "worker_peak_rss_gb"):
        value = figures["figures"][name]
        assert value is not None
        assert value > 0
    assert [t["name"] for t in figures["targets"]] == ["speedup", "overhead_share"]
    comparison = figures["correctness"]["comparisons"]["1_vs_2"]
    assert figures["correctness"]["identical"] is True
    assert comparison["rows"][0] == comparison["rows"][1] == figures["runs"]["1"]["rows"]


def test_the_comparison_sees_a_different_mdb(
    scale_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    figures, _work = scale_run
    first = Path(figures["runs"]["1"]["mdb"])
    changed = tmp_path / "mdb"
    shutil.copytree(first, changed)
    open_mdb(changed).add_signal("TWICE", "2 * NDVI_mean")
    report = ScaleReport(config={})
    _compare({1: first, 2: changed}, report, lambda _label, _total: lambda _n: None)
    assert report.correctness["identical"] is False
    assert report.correctness["comparisons"]["1_vs_2"]["only_in_second"] > 0


def test_a_kept_world_is_reused(scale_run: tuple[dict[str, Any], Path]) -> None:
    _figures, work = scale_run
    config = ScaleConfig(parcels=60, tiles=2, dates=2, signals=("NDVI", "B04"))
    report = ScaleReport(config={})
    world = _prepare_world(config, work, report, lambda _label, _total: lambda _n: None)
    assert report.data["reused"] is True
    assert report.data["generate_seconds"] is None
    assert len(world.products) == 4


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(InputError, match="--tiles"):
        ScaleConfig(tiles=9)
    with pytest.raises(InputError, match="window"):
        ScaleConfig(parcels=1_000_000, tiles=1)
    with pytest.raises(InputError, match="--dates"):
        ScaleConfig(dates=0)
