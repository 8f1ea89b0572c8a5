"""``capmon bench extract``: capmon's extraction engine against the decode floor and its peers.

One run generates a Sentinel-2-sized tile (band files and a parcel set, see
:mod:`capmon.bench.world`), then times, each method in its own spawned process (so that each
peak RSS is its own):

- raw decode of the band (GDAL_NUM_THREADS=1 and the configured threads), GeoTIFF and JPEG2000;
- capmon's first date: parcels + band read, ``parcel_pixels``, ``parcel_statistics``;
- capmon's further dates: band read + ``parcel_statistics`` on the cached pixels (median);
- exactextract on the band read into memory first (same statistics);
- rasterstats on a subset of parcels, extrapolated;
- a one-parcel time-series query on an MDB of parcels x dates x signals.

It also checks correctness (capmon against a per-parcel reference and against exactextract)
and reports ratios against the targets. Timings are reported, never asserted.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import platform
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio import features, windows

from capmon.bench import workers, world
from capmon.bench.common import load_average, working_folder
from capmon.errors import InputError
from capmon.mdb.store import MdbStore

METHODS = ("exactextract", "rasterstats")
GB = 1e9
TARGETS = {
    "capmon_next_vs_raw_decode": ("<=", 1.5, "capmon per further date / raw decode"),
    "exactextract_vs_capmon_next": (">=", 5.0, "exactextract in memory / capmon per further date"),
    "capmon_first_vs_exactextract": ("<=", 2.0, "capmon first date / exactextract in memory"),
    "capmon_peak_rss_gb": ("<", 2.5, "capmon peak memory for one tile (GB)"),
    "query_median_ms": ("<", 20.0, "one-parcel time-series query, median (ms)"),
    "mdb_bytes_per_row": ("<", 30.0, "MDB bytes per (parcel, signal, date) row"),
}
# Pixel-centre (capmon) vs coverage-weighted (exactextract) statistics: medians over parcels.
MAX_MEDIAN_MEAN_DIFFERENCE = 0.01
MAX_MEDIAN_COUNT_DIFFERENCE = 0.05
Reporter = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class BenchConfig:
    """What to generate and time (defaults: one whole tile, 50k parcels)."""

    tile: str = "31UFS"
    size: int = 10980
    parcels: int = 50_000
    dates: int = 5
    jp2: bool = True
    threads: str = "ALL_CPUS"
    optical_buffer_m: float = 0.0
    decode_repeats: int = 3
    rasterstats_parcels: int = 2_000
    reference_parcels: int = 200
    mdb_parcels: int = 50_000
    mdb_dates: int = 70
    mdb_signals: int = 10
    queries: int = 50
    seed: int = 20240501
    skip: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.dates < 1:
            raise InputError(f"--dates must be at least 1, not {self.dates}")
        if self.decode_repeats < 1:
            raise InputError("--decode-repeats must be at least 1")
        if self.optical_buffer_m < 0:
            raise InputError(
                f"--optical-buffer-m is an inward buffer in metres, >= 0: {self.optical_buffer_m}"
            )
        if self.mdb_parcels < 1 or self.mdb_dates < 1 or self.queries < 1:
            raise InputError("--mdb-parcels, --mdb-dates and --queries must be at least 1")
        if not 1 <= self.mdb_signals <= len(world.MDB_SIGNALS):
            raise InputError(f"--mdb-signals must be between 1 and {len(world.MDB_SIGNALS)}")
        if self.rasterstats_parcels < 1 or self.reference_parcels < 1:
            raise InputError("--rasterstats-parcels and --reference-parcels must be >= 1")
        unknown = sorted(set(self.skip) - set(METHODS))
        if unknown:
            raise InputError(f"--skip takes {', '.join(METHODS)}, not {', '.join(unknown)}")
        if self.threads != "ALL_CPUS" and not self.threads.isdigit():
            raise InputError(f"--threads is ALL_CPUS or a number, not {self.threads!r}")
        world.tile_grid(self.tile, self.size)  # checks the tile name and size


@dataclass
class BenchReport:
    """Every figure of a run (what ``--json`` writes)."""

    config: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    correctness: dict[str, Any] = field(default_factory=dict)
    mdb: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _isolated(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``function(*args)`` in a fresh spawned process and return its figures."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def _silent(_label: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


def run_benchmark(
    config: BenchConfig, workdir: Path | None = None, report: Reporter = _silent
) -> BenchReport:
    """Generate the data (or reuse it in ``workdir``), time every method, check correctness."""
    result = BenchReport(config=asdict(config))
    result.machine = {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gdal": rasterio.__gdal_version__,
        "load_at_start": load_average(),
    }
    for method in METHODS:
        if method in config.skip:
            result.skipped[method] = "skipped with --skip"
        elif not _installed(method):
            result.skipped[method] = (
                f"{method} is not installed (optional extra: pip install 'capmon[bench]')"
            )
    with working_folder(workdir, "capmon-bench-") as folder:
        parcels_path, bands, jp2 = _prepare_tile(config, folder, result, report)
        _time_methods(config, folder, parcels_path, bands, jp2, result, report)
        _check_correctness(config, folder, parcels_path, bands[0], result, report)
        _bench_mdb(config, folder, result, report)
    result.machine["load_at_end"] = load_average()
    _ratios_and_targets(result)
    return result


def _reusable(marker: Path, wanted: dict[str, Any], files: list[Path]) -> bool:
    if not marker.exists() or not all(f.exists() for f in files):
        return False
    try:
        return bool(json.loads(marker.read_text()) == wanted)
    except ValueError:
        return False


def _prepare_tile(
    config: BenchConfig, folder: Path, result: BenchReport, report: Reporter
) -> tuple[Path, list[Path], Path | None]:
    grid = world.tile_grid(config.tile, config.size)
    parcels_path = folder / "parcels.parquet"
    bands = [folder / f"B04_{d:03d}.tif" for d in range(config.dates)]
    jp2 = folder / "B04_000.jp2" if config.jp2 else None
    wanted = {
        "tile": config.tile,
        "size": config.size,
        "parcels": config.parcels,
        "dates": config.dates,
        "jp2": config.jp2,
        "seed": config.seed,
        "version": 1,
    }
    marker = folder / "tile.json"
    started = time.perf_counter()
    reused = _reusable(marker, wanted, [parcels_path, *bands, *([jp2] if jp2 else [])])
    if not reused:
        marker.unlink(missing_ok=True)
        advance = report("Generating parcels and band files", config.dates + 1)
        parcels = world.make_parcels(grid, config.parcels, config.seed)
        world.write_parcels(parcels, parcels_path)
        advance(1)
        world.band_files(
            grid, parcels, folder, config.dates, seed=config.seed, jp2=config.jp2, advance=advance
        )
        marker.write_text(json.dumps(wanted))
    parcels = gpd.read_parquet(parcels_path)
    hectares = parcels.geometry.area.to_numpy() / 1e4
    result.data = {
        "tile": config.tile,
        "size": config.size,
        "parcels": len(parcels),
        "parcel_hectares": {
            "min": float(hectares.min()),
            "median": float(np.median(hectares)),
            "max": float(hectares.max()),
            "total": float(hectares.sum()),
        },
        "gtiff_bytes": bands[0].stat().st_size,
        "jp2_bytes": jp2.stat().st_size if jp2 else None,
        "reused": reused,
        "generate_seconds": None if reused else time.perf_counter() - started,
    }
    return parcels_path, bands, jp2


def _time_methods(
    config: BenchConfig,
    folder: Path,
    parcels_path: Path,
    bands: list[Path],
    jp2: Path | None,
    result: BenchReport,
    report: Reporter,
) -> None:
    n = result.data["parcels"]
    threads = config.threads
    variants = [("gtiff", bands[0], "1"), ("gtiff", bands[0], threads)]
    if jp2 is not None:
        variants += [("jp2", jp2, "1"), ("jp2", jp2, threads)]
    steps = len(variants) + 2 + sum(m not in result.skipped for m in METHODS)
    advance = report("Timing the methods (one process each)", steps)
    for kind, path, count in variants:
        name = f"raw_decode_{kind}_{'1thread' if count == '1' else 'threads'}"
        repeats = config.decode_repeats if kind == "gtiff" else 1  # JPEG2000 is slow
        result.methods[name] = _isolated(workers.raw_decode, str(path), count, repeats) | {
            "load": load_average()
        }
        advance(1)

    cache, first_out = folder / "pixels.npz", folder / "capmon_first.parquet"
    first = _isolated(
        workers.capmon_first_date,
        str(parcels_path),
        str(bands[0]),
        threads,
        config.optical_buffer_m,
        str(cache),
        str(first_out),
    )
    result.methods["capmon_first_date"] = first | {"load": load_average()}
    result.data["parcel_pixels"] = first["parcel_pixels"]
    advance(1)
    further = bands[1:] if len(bands) > 1 else bands
    result.methods["capmon_next_date"] = _isolated(
        workers.capmon_next_dates, str(cache), [str(p) for p in further], threads
    ) | {"load": load_average()}
    advance(1)
    if "exactextract" not in result.skipped:
        result.methods["exactextract_in_memory"] = _isolated(
            workers.exactextract_in_memory,
            str(parcels_path),
            str(bands[0]),
            threads,
            str(folder / "exactextract.parquet"),
        ) | {"load": load_average(), "weighting": "coverage fraction (default)"}
        advance(1)
    if "rasterstats" not in result.skipped:
        subset = min(config.rasterstats_parcels, n)
        figures = _isolated(
            workers.rasterstats_subset, str(parcels_path), str(bands[0]), subset, config.seed
        )
        figures["seconds"] = figures["seconds_subset"] * n / subset
        figures["extrapolated_from"] = subset
        result.methods["rasterstats"] = figures | {"load": load_average()}
        advance(1)
    for figures in result.methods.values():
        seconds = figures.get("seconds")
        figures["parcels_per_second"] = n / seconds if seconds else None


def _check_correctness(
    config: BenchConfig,
    folder: Path,
    parcels_path: Path,
    band_path: Path,
    result: BenchReport,
    report: Reporter,
) -> None:
    advance = report("Checking correctness", 2)
    capmon = pd.read_parquet(folder / "capmon_first.parquet").set_index("NewID")
    parcels = gpd.read_parquet(parcels_path).set_index("NewID")
    rng = np.random.default_rng(config.seed + 3)
    sample = rng.choice(parcels.index.to_numpy(), size=min(config.reference_parcels, len(parcels)))
    worst = 0.0
    mismatched: list[int] = []
    with rasterio.open(band_path) as src:
        for pid in sample:
            expected = _reference_statistics(
                src, parcels.geometry.loc[pid], config.optical_buffer_m
            )
            got = capmon.loc[pid]
            for name, value in expected.items():
                have = float(got[name])
                if np.isnan(value) and np.isnan(have):
                    continue
                difference = abs(have - value) / max(abs(value), 1e-12)
                worst = max(worst, difference)
                if difference > 1e-9:
                    mismatched.append(int(pid))
    result.correctness["reference"] = {
        "parcels": len(sample),
        "max_relative_difference": worst,
        "mismatched_parcels": sorted(set(mismatched))[:10],
        "passed": not mismatched,
    }
    advance(1)
    path = folder / "exactextract.parquet"
    if "exactextract" in result.skipped or not path.exists():
        result.correctness["exactextract"] = {"skipped": result.skipped.get("exactextract")}
        advance(1)
        return
    theirs = pd.read_parquet(path).set_index("NewID")
    both = capmon.merge(
        theirs, left_index=True, right_index=True, how="inner", suffixes=("", "_ee")
    )
    both = both[(both["count"] > 0) & (both["count_ee"] > 0)]
    mean = _relative(both["mean"], both["mean_ee"])
    count = _relative(both["count"], both["count_ee"])
    half = both.dropna(subset=["count_half"])
    half = half[half["count_half"] > 0]
    half_mean = _relative(half["mean"], half["mean_half"])
    half_count = _relative(half["count"], half["count_half"])
    result.correctness["exactextract"] = {
        "parcels": len(both),
        "optical_buffer_m": config.optical_buffer_m,
        "weighting": "exactextract: coverage fraction (default); capmon: pixel centre",
        "median_relative_mean_difference": float(mean.median()),
        "p95_relative_mean_difference": float(mean.quantile(0.95)),
        "median_relative_count_difference": float(count.median()),
        "p95_relative_count_difference": float(count.quantile(0.95)),
        "half_covered_parcels": len(half),
        "half_covered_median_relative_mean_difference": float(half_mean.median()),
        "half_covered_median_relative_count_difference": float(half_count.median()),
        "half_covered_identical_counts": float((half["count"] == half["count_half"]).mean()),
        "passed": bool(
            len(both) == int((capmon["count"] > 0).sum())
            and count.median() < MAX_MEDIAN_COUNT_DIFFERENCE
            and half_mean.median() < MAX_MEDIAN_MEAN_DIFFERENCE
            and half_count.median() < MAX_MEDIAN_COUNT_DIFFERENCE
        ),
    }
    advance(1)


def _relative(ours: pd.Series, theirs: pd.Series) -> pd.Series:
    difference: pd.Series = (ours - theirs).abs() / theirs.abs()
    return difference


def _reference_statistics(
    src: rasterio.io.DatasetReader, geometry: Any, buffer_m: float
) -> dict[str, float]:
    """One parcel rasterised alone on its window, then plain numpy statistics."""
    shape = geometry.buffer(-buffer_m) if buffer_m else geometry
    if shape.is_empty:
        return {"pixels": 0.0, "count": 0.0}
    window = (
        windows.from_bounds(*shape.bounds, transform=src.transform)
        .round_offsets(op="floor")
        .round_lengths(op="ceil")
    )
    window = windows.Window(
        window.col_off - 1, window.row_off - 1, window.width + 2, window.height + 2
    )
    window = window.intersection(windows.Window(0, 0, src.width, src.height))
    band = src.read(1, window=window)
    inside = features.rasterize(
        [(shape, 1)],
        out_shape=band.shape,
        transform=src.transform @ Affine.translation(window.col_off, window.row_off),
        fill=0,
        dtype="uint8",
    ).astype(bool)
    values = band[inside].astype(np.float64)
    row = {"pixels": float(inside.sum()), "count": float(len(values))}
    if len(values):
        row |= {
            "mean": float(np.mean(values)),
            "min": float(values.min()),
            "max": float(values.max()),
            "median": float(np.median(values)),
            "p25": float(np.percentile(values, 25)),
            "p75": float(np.percentile(values, 75)),
        }
    if len(values) > 1:
        row["stdev"] = float(np.std(values, ddof=1))
    return row


def _bench_mdb(config: BenchConfig, folder: Path, result: BenchReport, report: Reporter) -> None:
    root = folder / "mdb"
    wanted = {
        "parcels": config.mdb_parcels,
        "dates": config.mdb_dates,
        "signals": config.mdb_signals,
        "seed": config.seed,
        "version": 1,
    }
    marker = folder / "mdb.json"
    started = time.perf_counter()
    reused = _reusable(marker, wanted, [root / "mdb.json"])
    if not reused:
        marker.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        advance = report("Building the MDB", config.mdb_dates)
        world.build_mdb(
            root,
            config.mdb_parcels,
            config.mdb_dates,
            config.mdb_signals,
            seed=config.seed,
            advance=advance,
        )
        marker.write_text(json.dumps(wanted))
    built = None if reused else time.perf_counter() - started
    files = sorted((root / "observations").glob("*.parquet"))
    size = sum(f.stat().st_size for f in files)
    rows = config.mdb_parcels * config.mdb_dates * config.mdb_signals
    advance = report("Timing one-parcel queries", 1)
    query = _isolated(workers.mdb_query, str(root), config.queries, config.seed)
    advance(1)
    result.mdb = {
        "parcels": config.mdb_parcels,
        "dates": config.mdb_dates,
        "signals": config.mdb_signals,
        "rows": rows,
        "files": len(files),
        "bytes": size,
        "bytes_per_row": size / rows,
        "build_seconds": built,
        "reused": reused,
        "query": query | {"load": load_average()},
        "query_rows_expected": config.mdb_dates * config.mdb_signals,
    }
    advance = report("Compacting the MDB (capmon's store) and timing the query again", 2)
    started = time.perf_counter()
    compacted_root = _compacted_copy(root, folder / "mdb_compacted")
    compact_seconds = time.perf_counter() - started
    advance(1)
    compacted_query = _isolated(workers.mdb_query, str(compacted_root), config.queries, config.seed)
    advance(1)
    compacted_size = sum(
        f.stat().st_size for f in (compacted_root / "compacted").rglob("*.parquet")
    )
    result.mdb["compacted_layout"] = {
        "what": "MdbStore.compact(): the rows in parcel-bucketed, parcel-sorted files "
        "(what `capmon mdb extract` leaves by default)",
        "seconds": compact_seconds,
        "bytes_per_row": compacted_size / rows,
        "query": compacted_query,
    }
    result.correctness["query"] = {
        "rows_per_query": query["rows_per_query"],
        "compacted_rows_per_query": compacted_query["rows_per_query"],
        "passed": query["rows_per_query"] == config.mdb_dates * config.mdb_signals
        and compacted_query["rows_per_query"] == query["rows_per_query"],
    }


def _compacted_copy(root: Path, target: Path) -> Path:
    """A copy of the MDB folder, compacted by capmon's own store."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root, target)
    MdbStore(target).compact()
    return target


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _ratios_and_targets(result: BenchReport) -> None:
    methods = result.methods

    def seconds(name: str) -> float | None:
        value = methods.get(name, {}).get("seconds")
        return float(value) if value is not None else None

    raw = seconds("raw_decode_gtiff_threads")
    raw_one = seconds("raw_decode_gtiff_1thread")
    first, further = seconds("capmon_first_date"), seconds("capmon_next_date")
    exact, rstats = seconds("exactextract_in_memory"), seconds("rasterstats")
    stats_only = methods.get("capmon_next_date", {}).get("statistics_seconds")
    jp2 = seconds("raw_decode_jp2_threads")
    result.ratios = {
        "capmon_next_vs_raw_decode": _ratio(further, raw),
        "capmon_next_vs_raw_decode_1thread": _ratio(further, raw_one),
        "exactextract_vs_capmon_next": _ratio(exact, further),
        "capmon_first_vs_exactextract": _ratio(first, exact),
        "rasterstats_vs_capmon_next": _ratio(rstats, further),
        "jp2_vs_gtiff_decode": _ratio(jp2, raw),
        "capmon_next_jp2_estimate_seconds": jp2 + stats_only if jp2 and stats_only else None,
    }
    peaks = [
        methods[m]["peak_rss_bytes"] / GB
        for m in ("capmon_first_date", "capmon_next_date")
        if m in methods
    ]
    values: dict[str, float | None] = {
        "capmon_next_vs_raw_decode": result.ratios["capmon_next_vs_raw_decode"],
        "exactextract_vs_capmon_next": result.ratios["exactextract_vs_capmon_next"],
        "capmon_first_vs_exactextract": result.ratios["capmon_first_vs_exactextract"],
        "capmon_peak_rss_gb": max(peaks) if peaks else None,
        "query_median_ms": result.mdb["compacted_layout"]["query"]["median_seconds"] * 1e3,
        "mdb_bytes_per_row": result.mdb["compacted_layout"]["bytes_per_row"],
    }
    result.targets = []
    for name, (op, limit, label) in TARGETS.items():
        value = values[name]
        met = None
        if value is not None:
            met = {"<=": value <= limit, ">=": value >= limit, "<": value < limit}[op]
        result.targets.append(
            {"name": name, "label": label, "value": value, "target": f"{op} {limit}", "met": met}
        )


def write_json(result: BenchReport, path: Path) -> None:
    """The figures as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2, default=str))
