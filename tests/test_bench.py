"""``capmon bench extract`` end to end on a tiny tile: every figure is there, results are right.

Timings are never asserted; only that they were measured and that the correctness checks pass.
"""

from __future__ import annotations

import importlib.util
import json
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from capmon.bench import extract as bench_extract
from capmon.bench import world
from capmon.cli.bench import bench_app
from capmon.grid import PixelGrid
from capmon.mdb.labels import parcel_pixels
from capmon.mdb.stats import parcel_statistics

TINY = [
    "--size",
    "600",
    "--parcels",
    "300",
    "--dates",
    "2",
    "--no-jp2",
    "--decode-repeats",
    "1",
    "--rasterstats-parcels",
    "50",
    "--reference-parcels",
    "100",
    "--mdb-parcels",
    "300",
    "--mdb-dates",
    "5",
    "--mdb-signals",
    "3",
    "--queries",
    "5",
]
METHODS = ("raw_decode_gtiff_1thread", "raw_decode_gtiff_threads", "capmon_first_date")
HAVE = {m: importlib.util.find_spec(m) is not None for m in bench_extract.METHODS}


def _run(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "figures.json"
    result = CliRunner().invoke(
        bench_app,
        ["extract", *TINY, "--workdir", str(tmp_path / "work"), "--json", str(out), *extra],
    )
    assert result.exit_code == 0, "".join(traceback.format_exception(result.exception))
    assert "Targets" in result.output
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def _check_common(figures: dict[str, Any]) -> None:
    for name in (*METHODS, "capmon_next_date"):
        method = figures["methods"][name]
        assert method["seconds"] > 0, name
        assert method["peak_rss_bytes"] > 10 * 2**20, name
    assert figures["data"]["parcels"] == 300
    assert figures["data"]["parcel_pixels"] > 300 * 40  # >= 0.5 ha each, minus edge pixels
    assert figures["methods"]["capmon_next_date"]["dates"] == 1
    assert figures["correctness"]["reference"]["passed"]
    assert figures["correctness"]["reference"]["max_relative_difference"] < 1e-9
    assert figures["correctness"]["query"]["passed"]
    mdb = figures["mdb"]
    assert mdb["rows"] == 300 * 5 * 3
    assert mdb["files"] == 5
    assert 0 < mdb["bytes_per_row"] < 200
    assert mdb["query"]["rows_per_query"] == 15
    assert mdb["query"]["median_seconds"] <= mdb["query"]["p95_seconds"]
    assert set(figures["ratios"]) >= {
        "capmon_next_vs_raw_decode",
        "exactextract_vs_capmon_next",
        "capmon_first_vs_exactextract",
        "rasterstats_vs_capmon_next",
        "jp2_vs_gtiff_decode",
    }
    assert figures["ratios"]["capmon_next_vs_raw_decode"] > 0
    assert [t["name"] for t in figures["targets"]] == list(bench_extract.TARGETS)
    assert figures["machine"]["load_at_start"]
    assert figures["machine"]["load_at_end"]


@pytest.mark.skipif(
    not all(HAVE.values()), reason="exactextract/rasterstats not installed (extra 'bench')"
)
def test_tiny_benchmark_with_every_method(tmp_path: Path) -> None:
    figures = _run(tmp_path)
    _check_common(figures)
    assert figures["skipped"] == {}
    assert figures["methods"]["exactextract_in_memory"]["seconds"] > 0
    assert figures["methods"]["rasterstats"]["extrapolated_from"] == 50
    exact = figures["correctness"]["exactextract"]
    assert exact["passed"], exact
    assert exact["parcels"] == 300
    assert exact["half_covered_median_relative_mean_difference"] < 1e-3
    assert all(t["met"] is not None for t in figures["targets"])
    assert figures["ratios"]["exactextract_vs_capmon_next"] > 0


def test_tiny_benchmark_without_the_optional_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What CI (only ``.[test]``) runs: the peers are skipped, with the reason, never failed."""
    monkeypatch.setattr(bench_extract, "_installed", lambda _module: False)
    figures = _run(tmp_path)
    _check_common(figures)
    for method in bench_extract.METHODS:
        assert "not installed" in figures["skipped"][method]
    assert "exactextract_in_memory" not in figures["methods"]
    assert "rasterstats" not in figures["methods"]
    assert "not installed" in figures["correctness"]["exactextract"]["skipped"]
    met = {t["name"]: t["met"] for t in figures["targets"]}
    assert met["exactextract_vs_capmon_next"] is None
    assert met["capmon_first_vs_exactextract"] is None
    assert met["query_median_ms"] is not None


def test_generated_data_is_reused_from_the_workdir(tmp_path: Path) -> None:
    figures = _run(tmp_path, "--skip", "exactextract", "--skip", "rasterstats")
    assert figures["skipped"]["exactextract"] == "skipped with --skip"
    assert not figures["data"]["reused"]
    again = _run(tmp_path, "--skip", "exactextract", "--skip", "rasterstats")
    assert again["data"]["reused"]
    assert again["mdb"]["reused"]
    assert again["data"]["parcel_pixels"] == figures["data"]["parcel_pixels"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--size", "50"], "--size must be between"),
        (["--skip", "zonal"], "--skip takes exactextract, rasterstats"),
        (["--threads", "many"], "--threads is ALL_CPUS or a number"),
        (["--size", "100", "--parcels", "5000"], "ask for fewer parcels"),
        (["--mdb-signals", "11"], "--mdb-signals must be between 1 and 10"),
    ],
)
def test_bad_options_are_reported(tmp_path: Path, options: list[str], message: str) -> None:
    result = CliRunner().invoke(
        bench_app, ["extract", "--workdir", str(tmp_path), "--no-jp2", *options]
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_parcels_are_realistic_fields_that_never_overlap() -> None:
    grid = world.tile_grid("31UFS", 1000)
    parcels = world.make_parcels(grid, 500, seed=7)
    geometries = parcels.geometry.to_numpy()
    hectares = shapely.area(geometries) / 1e4
    assert hectares.min() >= world.MIN_FIELD_HA
    assert hectares.max() <= world.MAX_FIELD_HA
    assert shapely.is_valid(geometries).all()
    assert shapely.within(geometries, shapely.box(*grid.bounds)).all()
    tree = shapely.STRtree(geometries)
    left, right = tree.query(geometries, predicate="intersects")
    assert (left == right).all()  # each field touches only itself: margins between fields
    assert sorted(parcels["NewID"]) == list(range(1, 501))
    again = world.make_parcels(grid, 500, seed=7)
    assert np.array_equal(shapely.get_coordinates(geometries), again.get_coordinates().to_numpy())


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_integer_bands_give_the_statistics_of_their_float32_values(dtype: str) -> None:
    """The engine's integer fast path (bands of Sentinel-2 digital numbers) changes nothing."""
    rng = np.random.default_rng(3)
    grid = world.tile_grid("31UFS", 200)
    parcels = world.make_parcels(grid, 20, seed=3)
    pixel_grid = PixelGrid(grid.crs, grid.transform, grid.size, grid.size)
    pixels = parcel_pixels(parcels, pixel_grid, buffer_m=5)
    info = np.iinfo(dtype) if dtype != "float32" else np.iinfo(np.int16)
    band = rng.integers(info.min, int(info.max) + 1, size=(200, 200)).astype(dtype)
    valid = rng.random((200, 200)) > 0.2
    for mask in (None, valid):
        got = parcel_statistics(pixels, band, mask)
        expected = parcel_statistics(pixels, band.astype(np.float32), mask)
        for name in ("count", "mean", "stdev", "min", "max", "median", "p25", "p75"):
            assert np.array_equal(getattr(got, name), getattr(expected, name), equal_nan=True)
