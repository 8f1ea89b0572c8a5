"""``capmon bench api`` on a tiny season: the workspace is built then reused, ``capmon serve``
answers every request of the clients, and every figure is produced. Timings are never
asserted."""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from capmon.bench.api import ApiBenchConfig, ApiReport, _prepare, _silent
from capmon.cli.bench import bench_app
from capmon.errors import InputError

TINY = [
    "--parcels",
    "150",
    "--dates",
    "3",
    "--signals",
    "3",
    "--clients",
    "4",
    "--seconds",
    "1.5",
    "--zooms",
    "14,15",
]


def _run(folder: Path, *extra: str) -> dict[str, Any]:
    out = folder / "figures.json"
    result = CliRunner().invoke(
        bench_app, ["api", *TINY, "--workdir", str(folder / "work"), "--json", str(out), *extra]
    )
    assert result.exit_code == 0, result.output + "".join(
        traceback.format_exception(*result.exc_info) if result.exc_info else []
    )
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("bench-api")
    return _run(folder, "--think-ms", "20"), folder / "work"


def test_every_figure_is_produced(run: tuple[dict[str, Any], Path]) -> None:
    first, _work = run
    assert not first["workspace"]["reused"]
    assert first["workspace"]["parcels"] == 150
    assert first["workspace"]["mdb_rows"] == 150 * 3 * 3
    assert set(first["workspace"]["tiles_per_zoom"]) == {"14", "15"}
    assert {"layers (parcel index, layers)", "first time series", "first tile z14"} <= set(
        first["cold_ms"]
    )
    routes = first["routes"]
    assert {"all", "time series", "vector tile", "vector tile z14", "vector tile z15"} <= set(
        routes
    )
    assert (
        routes["all"]["requests"]
        == routes["time series"]["requests"] + (routes["vector tile"]["requests"])
    )
    assert routes["all"]["requests"] > 0
    assert routes["all"]["errors"] == 0
    for figures in routes.values():
        assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert set(first["targets"]) == {"timeseries_p95_ms", "tile_p95_ms", "errors"}
    assert first["targets"]["errors"]["met"] is True
    assert first["run"]["server_cpu_cores"] > 0


def test_the_workspace_is_reused(run: tuple[dict[str, Any], Path]) -> None:
    first, work = run
    config = ApiBenchConfig(
        **{
            **first["config"],
            "zooms": tuple(first["config"]["zooms"]),
            "layers": tuple(first["config"]["layers"]),
        }
    )
    report = ApiReport(config=first["config"])
    built = _prepare(config, work, True, report, _silent)
    assert report.workspace["reused"]
    assert report.workspace["build_seconds"] == first["workspace"]["build_seconds"]
    assert built.parcel_ids == list(range(1, 151))
    other = ApiReport(config=first["config"])
    _prepare(ApiBenchConfig(parcels=150, dates=3, signals=2), work, True, other, _silent)
    assert not other.workspace["reused"]
    assert "other options" in other.notes[0]


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="tile-share"):
        ApiBenchConfig(tile_share=1.5)
    with pytest.raises(InputError, match="zooms"):
        ApiBenchConfig(zooms=(30,))
    result = CliRunner().invoke(bench_app, ["api", "--reuse"])
    assert result.exit_code != 0
    assert "--workdir" in result.output
