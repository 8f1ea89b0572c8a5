"""``capmon bench scale``: season extraction through the orchestrator on 1 and then 2 workers.

One run generates a larger synthetic world (``--parcels`` spread over ``--tiles`` adjacent
Sentinel-2 tiles, one :func:`capmon.synth.world.generate_world` window in the middle of each
tile, COG products, ``--dates`` acquisitions per tile), or reuses it from ``--workdir``. For
each worker count it then builds a fresh workspace (site covering every window, the
declarations of all windows in one file, the products registered) and runs
:func:`capmon.orchestrator.run_season` (``mdb`` only) on a ``LocalCluster`` of that many
worker processes with one thread each. It reports:

- **throughput**: parcel-dates (each parcel once per acquisition of its tile) per second of
  extraction wall time (from the call to the last product's outcome: planning, the job's
  rows, scheduling and extraction; compaction on the driver is reported apart);
- **speedup**: extraction wall time on 1 worker / on 2 workers;
- **scheduling overhead**: ``1 - sum(unit compute seconds) / (workers x wall)``: the share of
  the workers' time not spent inside a unit (planning, submission, recording, idle tails);
- **peak RSS per worker**: ``VmHWM`` of each worker process (``client.run``);
- **correctness**: the MDBs of the runs are identical row for row (DuckDB ``EXCEPT ALL`` both
  ways on every column).

Workers are started and warmed up (capmon's modules imported) before the clock starts; the
start-up time is reported apart. Timings are reported, never asserted.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rich.console import Console
from rich.table import Table

from capmon.bench.common import load_average
from capmon.bench.workers import peak_rss_bytes
from capmon.errors import InputError
from capmon.mdb.extract import DEFAULT_OPTICAL_SIGNALS
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import Workspace, atomic_path

GB = 1e9
TILES = ("31UFS", "31UES", "31UGS", "31UDS")
"""Adjacent tiles (same UTM zone and latitude band); windows sit in their middles, far from
the strips where neighbouring tiles overlap."""
PARCEL_KM2 = 0.05
"""Gross area per parcel of the generated windows (5 ha, as the demo's 2000 in 10 km)."""
MAX_WINDOW_KM = 80.0
SITE = "scale"
SEASON = "S"
YEAR = 2024
WARM_MODULES = ("capmon.orchestrator.units", "capmon.sources", "capmon.mdb.extract")
TARGETS = {
    "speedup": (">=", 1.7, "extraction speedup, 2 workers vs 1"),
    "overhead_share": ("<", 0.05, "scheduling overhead share of wall time (2 workers)"),
}
Reporter = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class ScaleConfig:
    """What to generate and run (default: 40,000 parcels over 2 tiles, 10 dates)."""

    parcels: int = 40_000
    tiles: int = 2
    dates: int = 10
    workers: tuple[int, ...] = (1, 2)
    signals: tuple[str, ...] = DEFAULT_OPTICAL_SIGNALS
    seed: int = 20240601

    def __post_init__(self) -> None:
        if not 1 <= self.tiles <= len(TILES):
            raise InputError(f"--tiles must be from 1 to {len(TILES)}, not {self.tiles}")
        if self.parcels < 10 * self.tiles:
            raise InputError(f"--parcels must be at least 10 per tile, not {self.parcels}")
        if self.window_km > MAX_WINDOW_KM:
            raise InputError(
                f"--parcels {self.parcels} over {self.tiles} tiles needs a "
                f"{self.window_km:.0f} km window per tile (at most {MAX_WINDOW_KM:.0f} km): "
                "add tiles"
            )
        if not 1 <= self.dates <= len(_s2_dates(1)):
            raise InputError(f"--dates must be from 1 to {len(_s2_dates(1))}, not {self.dates}")
        if not self.workers or min(self.workers) < 1:
            raise InputError(f"worker counts must be at least 1: {self.workers}")
        if not self.signals:
            raise InputError("at least one signal is needed")

    @property
    def tile_names(self) -> tuple[str, ...]:
        return TILES[: self.tiles]

    @property
    def parcels_per_tile(self) -> list[int]:
        base, extra = divmod(self.parcels, self.tiles)
        return [base + (1 if i < extra else 0) for i in range(self.tiles)]

    @property
    def window_km(self) -> float:
        return math.sqrt(max(self.parcels_per_tile) * PARCEL_KM2)

    @property
    def revisit_days(self) -> int:
        """The longest revisit that still gives at least ``dates`` acquisitions."""
        return max(r for r in range(1, 61) if len(_s2_dates(r)) >= self.dates)


def _s2_dates(revisit_days: int) -> list[Any]:
    from capmon.synth.world import s2_dates

    return s2_dates(YEAR, revisit_days)


@dataclass
class ScaleReport:
    """Every figure of a run (what ``--json`` writes)."""

    config: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: dict[str, float | None] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    correctness: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def process_cpu_seconds() -> float:
    """User + system CPU time of this process (a worker's, through ``client.run``)."""
    times = os.times()
    return times.user + times.system


def _silent(_label: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="capmon-scale-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_scale(
    config: ScaleConfig, workdir: Path | None = None, report: Reporter = _silent
) -> ScaleReport:
    """Generate the world (or reuse it in ``workdir``), run the season on each worker count,
    compare the MDBs."""
    result = ScaleReport(config=asdict(config))
    result.machine = {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "load_at_start": load_average(),
    }
    with _workdir(workdir) as folder:
        world = _prepare_world(config, folder, result, report)
        mdbs: dict[int, Path] = {}
        for workers in config.workers:
            figures, mdbs[workers] = _run_once(config, folder, world, workers, report)
            result.runs[str(workers)] = figures
        _compare(mdbs, result, report)
    result.machine["load_at_end"] = load_average()
    _figures_and_targets(config, result)
    return result


@dataclass(frozen=True)
class _World:
    """The generated windows merged into one site's inputs."""

    aoi: Any
    lut: Path
    declarations: Path
    products: list[Path]
    parcels: int


def _prepare_world(
    config: ScaleConfig, folder: Path, result: ScaleReport, report: Reporter
) -> _World:
    from capmon.synth import SynthWorld, generate_world

    wanted = {
        "tiles": list(config.tile_names),
        "parcels": config.parcels_per_tile,
        "revisit_days": config.revisit_days,
        "seed": config.seed,
        "version": 1,
    }
    marker = folder / "world.json"
    worlds_dir = folder / "worlds"
    names = [worlds_dir / tile for tile in config.tile_names]
    reused = _reusable(marker, wanted, [n / "world.json" for n in names])
    started = time.perf_counter()
    if not reused:
        marker.unlink(missing_ok=True)
        advance = report(
            f"Generating {config.parcels:,} parcels over {config.tiles} tile(s)", config.tiles
        )
        for index, (tile, count) in enumerate(
            zip(config.tile_names, config.parcels_per_tile, strict=True)
        ):
            generate_world(
                names[index],
                parcels=count,
                window_km=math.sqrt(count * PARCEL_KM2),
                tile=tile,
                first_year=YEAR,
                revisit_days=config.revisit_days,
                s2_format="cog",
                sentinel1=False,
                seed=config.seed + index,
                overwrite=True,
            )
            advance(1)
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps(wanted))
    generated = None if reused else time.perf_counter() - started
    worlds = [SynthWorld.load(n) for n in names]
    declarations = _merged_declarations(worlds, folder / "declarations.gpkg")
    aoi = shapely.union_all(
        [gpd.read_file(w.aoi).to_crs(4326).geometry.union_all() for w in worlds]
    )
    products: list[Path] = []
    for w in worlds:
        products += _chosen_products(w.s2_dir, config.dates)
    result.data = {
        "tiles": list(config.tile_names),
        "parcels": config.parcels,
        "parcels_per_tile": config.parcels_per_tile,
        "window_km": round(config.window_km, 2),
        "revisit_days": config.revisit_days,
        "products": len(products),
        "parcel_dates": sum(count * config.dates for count in config.parcels_per_tile),
        "signals": len(config.signals),
        "product_bytes": sum(
            f.stat().st_size for p in products for f in p.rglob("*") if f.is_file()
        ),
        "reused": reused,
        "generate_seconds": generated,
    }
    return _World(aoi, worlds[0].lut, declarations, products, config.parcels)


def _reusable(marker: Path, wanted: dict[str, Any], files: list[Path]) -> bool:
    if not marker.exists() or not all(f.exists() for f in files):
        return False
    try:
        return bool(json.loads(marker.read_text()) == wanted)
    except ValueError:
        return False


def _merged_declarations(worlds: list[Any], path: Path) -> Path:
    """One declarations file for every window: ids prefixed with the tile after the first."""
    frames = []
    crs = None
    for index, w in enumerate(worlds):
        frame = gpd.read_file(w.declarations[YEAR])
        crs = crs or frame.crs
        if index:
            for column in ("PARCEL_ID", "HOLDING_ID"):
                frame[column] = f"{w.tile}-" + frame[column].astype(str)
        frames.append(frame.to_crs(crs))
    merged = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)
    with atomic_path(path) as tmp:
        merged.to_file(tmp, driver="GPKG", layer="declarations")
    return path


def _chosen_products(s2_dir: Path | None, dates: int) -> list[Path]:
    """``dates`` acquisitions spread over the season (generated products sorted by date)."""
    if s2_dir is None:
        raise InputError("the generated world has no Sentinel-2 products")
    found = sorted(
        (p for p in s2_dir.iterdir() if not p.name.startswith(".")),
        key=lambda p: (p.name.split("_")[2], p.name),
    )
    if len(found) < dates:
        raise InputError(f"{s2_dir} has {len(found)} products, fewer than --dates {dates}")
    picks = np.unique(np.linspace(0, len(found) - 1, dates).round().astype(int))
    return [found[i] for i in picks]


def _workspace(home: Path, world: _World, signals: tuple[str, ...]) -> Workspace:
    """A fresh workspace with the site, season, LUT, declarations and products."""
    from capmon.orchestrator import set_schedule
    from capmon.parcels import import_lut
    from capmon.sites import SeasonDates, create_season, create_site, get_site
    from capmon.sources import ingest_product
    from capmon.workspace import open_workspace

    shutil.rmtree(home, ignore_errors=True)
    workspace = open_workspace(home)
    with workspace.session() as session:
        site = create_site(session, SITE, world.aoi)
        create_season(
            session,
            site,
            SEASON,
            SeasonDates.parse(f"{YEAR}-02-01", f"{YEAR}-11-30", f"{YEAR}-06-15"),
        )
    import_lut(workspace, SITE, YEAR, world.lut)
    import_world_declarations(
        workspace,
        SITE,
        YEAR,
        world.declarations,
    )
    with workspace.session() as session:
        site = get_site(session, SITE)
        for product in world.products:
            ingest_product(session, site, product)
    set_schedule(workspace, SITE, SEASON, "mdb", parameters={"signals": list(signals)})
    return workspace


def _run_once(
    config: ScaleConfig, folder: Path, world: _World, workers: int, report: Reporter
) -> tuple[dict[str, Any], Path]:
    from capmon.orchestrator import ClusterSpec, dask_client, run_season
    from capmon.orchestrator.units import UnitOutcome

    home = folder / f"ws-{workers}-workers"
    workspace = _workspace(home, world, config.signals)
    advance = report(f"Season run on {workers} worker(s)", len(world.products))
    outcomes: list[tuple[float, UnitOutcome]] = []

    def on_unit(outcome: UnitOutcome) -> None:
        outcomes.append((time.perf_counter(), outcome))
        advance(1)

    try:
        load_before = load_average()
        started = time.perf_counter()
        with dask_client(ClusterSpec(workers=workers, threads=1)) as client:
            for module in WARM_MODULES:
                client.run(importlib.import_module, module)
            startup = time.perf_counter() - started
            cpu_before: dict[str, float] = client.run(process_cpu_seconds)
            driver_before = process_cpu_seconds()
            began = time.perf_counter()
            run = run_season(
                workspace, SITE, SEASON, processors=["mdb"], client=client, on_unit=on_unit
            )
            ended = time.perf_counter()
            driver_cpu = process_cpu_seconds() - driver_before
            cpu_after: dict[str, float] = client.run(process_cpu_seconds)
            peaks: dict[str, int] = client.run(peak_rss_bytes)
        if run.failed or run.status != "finished":
            raise InputError(f"the season run on {workers} worker(s) failed: {run.summary()}")
        last_unit = max(t for t, _o in outcomes)
        wall = last_unit - began
        compute = [o.seconds for _t, o in outcomes]
        mdb = next(home.glob(f"mdb/{SITE}/{SEASON}/declarations-*"))
    finally:
        workspace.dispose()
    parcel_dates = sum(config.parcels_per_tile) * config.dates
    return {
        "workers": workers,
        "threads_per_worker": 1,
        "startup_seconds": startup,
        "extraction_wall_seconds": wall,
        "run_seconds": ended - began,
        "after_extraction_seconds": ended - last_unit,
        "driver_seconds": run.driver_seconds,
        "unit_compute_seconds": sum(compute),
        "unit_seconds_median": statistics.median(compute),
        "unit_seconds_max": max(compute),
        "units": len(compute),
        "units_per_worker": {str(k): v for k, v in run.workers.items()},
        "worker_cpu_seconds": sum(cpu_after[a] - cpu_before.get(a, 0.0) for a in cpu_after),
        "worker_cores_used": sum(cpu_after[a] - cpu_before.get(a, 0.0) for a in cpu_after)
        / (ended - began),
        "driver_cpu_seconds": driver_cpu,
        "overhead_seconds": workers * wall - sum(compute),
        "overhead_share": 1 - sum(compute) / (workers * wall),
        "parcel_dates_per_second": parcel_dates / wall,
        "rows": run.rows,
        "rows_per_second": run.rows / wall,
        "extracted": len(run.extracted),
        "empty": len(run.empty),
        "worker_peak_rss_bytes": dict(sorted(peaks.items())),
        "load_before": load_before,
        "load_after": load_average(),
        "job": run.job_id,
        "mdb": str(mdb),
    }, mdb


def _compare(mdbs: dict[int, Path], result: ScaleReport, report: Reporter) -> None:
    """Row-for-row comparison of every MDB with the first (all columns, both ways)."""
    from capmon.mdb.query import open_mdb

    counts = sorted(mdbs)
    advance = report("Comparing the MDBs", max(len(counts) - 1, 1))
    first = counts[0]
    connection = duckdb.connect()
    base = open_mdb(mdbs[first]).duckdb(connection)
    columns = ", ".join(f'"{c}"' for c in sorted(base.columns))
    base.create_view("mdb_a")
    comparisons: dict[str, Any] = {}
    for other in counts[1:]:
        open_mdb(mdbs[other]).duckdb(connection).create_view("mdb_b")
        rows_a = _scalar(connection, "SELECT count(*) FROM mdb_a")
        rows_b = _scalar(connection, "SELECT count(*) FROM mdb_b")
        only_a = _scalar(
            connection,
            f"SELECT count(*) FROM (SELECT {columns} FROM mdb_a EXCEPT ALL "
            f"SELECT {columns} FROM mdb_b)",
        )
        only_b = _scalar(
            connection,
            f"SELECT count(*) FROM (SELECT {columns} FROM mdb_b EXCEPT ALL "
            f"SELECT {columns} FROM mdb_a)",
        )
        comparisons[f"{first}_vs_{other}"] = {
            "rows": [rows_a, rows_b],
            "only_in_first": only_a,
            "only_in_second": only_b,
            "identical": rows_a == rows_b and only_a == 0 and only_b == 0 and rows_a > 0,
        }
        advance(1)
    connection.close()
    result.correctness = {
        "comparisons": comparisons,
        "identical": all(c["identical"] for c in comparisons.values()) if comparisons else None,
    }


def _scalar(connection: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = connection.execute(sql).fetchone()
    return int(row[0]) if row is not None else 0


def _figures_and_targets(config: ScaleConfig, result: ScaleReport) -> None:
    one, two = result.runs.get("1"), result.runs.get("2")
    speedup = (
        one["extraction_wall_seconds"] / two["extraction_wall_seconds"] if one and two else None
    )
    cpu_per_product = (
        statistics.median(r["unit_compute_seconds"] / r["units"] for r in result.runs.values())
        if result.runs
        else None
    )
    result.figures = {
        "speedup": speedup,
        "overhead_share": two["overhead_share"] if two else None,
        "parcel_dates_per_second_1": one["parcel_dates_per_second"] if one else None,
        "parcel_dates_per_second_2": two["parcel_dates_per_second"] if two else None,
        "cpu_seconds_per_product": cpu_per_product,
        "cpu_seconds_per_parcel_date": (
            cpu_per_product * result.data["products"] / result.data["parcel_dates"]
            if cpu_per_product
            else None
        ),
        "worker_peak_rss_gb": max(
            (b / GB for r in result.runs.values() for b in r["worker_peak_rss_bytes"].values()),
            default=None,
        ),
    }
    result.targets = []
    for name, (op, limit, label) in TARGETS.items():
        value = result.figures[name]
        met = None
        if value is not None:
            met = {">=": value >= limit, "<": value < limit}[op]
        result.targets.append(
            {"name": name, "label": label, "value": value, "target": f"{op} {limit}", "met": met}
        )


def write_json(result: ScaleReport, path: Path) -> None:
    """The figures as JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=2, default=str))


def _number(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(result: ScaleReport, console: Console) -> None:
    """The runs, targets and correctness as rich tables."""
    data = result.data
    console.print(
        f"{data['parcels']:,} parcels over tile(s) {', '.join(data['tiles'])} "
        f"({data['window_km']} km windows), {data['products']} products "
        f"({data['product_bytes'] / 1e9:.1f} GB), {data['parcel_dates']:,} parcel-dates, "
        f"{data['signals']} signals; {result.machine['cpus']} CPUs, load "
        f"{result.machine['load_at_start']} at start, {result.machine['load_at_end']} at end"
        + (f"; generated in {data['generate_seconds']:.0f} s" if data["generate_seconds"] else "")
    )
    table = Table(title="Season extraction through the orchestrator")
    columns = (
        "workers", "wall s", "compute s", "overhead", "parcel-dates/s", "unit s med/max",
        "after s", "cores used", "worker RSS GB", "load",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for run in result.runs.values():
        table.add_row(
            str(run["workers"]),
            _number(run["extraction_wall_seconds"], 1),
            _number(run["unit_compute_seconds"], 1),
            f"{run['overhead_share']:.1%}",
            _number(run["parcel_dates_per_second"], 0),
            f"{run['unit_seconds_median']:.1f}/{run['unit_seconds_max']:.1f}",
            _number(run["after_extraction_seconds"], 1),
            f"{run['worker_cores_used']:.2f}"
            f" + {run['driver_cpu_seconds'] / run['run_seconds']:.2f}",
            "/".join(f"{b / GB:.2f}" for b in run["worker_peak_rss_bytes"].values()),
            f"{run['load_before'][0]:.1f}-{run['load_after'][0]:.1f}",
        )
    console.print(table)
    console.print(
        "wall: from the call to the last product (planning, scheduling, extraction); after: "
        "compaction and job end on the driver; cores used: workers' + driver's CPU seconds "
        "per second of the run; load: 1-minute load average before-after"
    )
    targets = Table(title="Targets")
    for column in ("figure", "value", "target", "met"):
        targets.add_column(column)
    met = {True: "[green]yes[/]", False: "[red]no[/]", None: "[yellow]-[/]"}
    for target in result.targets:
        targets.add_row(
            target["label"], _number(target["value"], 3), target["target"], met[target["met"]]
        )
    console.print(targets)
    identical = result.correctness.get("identical")
    console.print(
        "MDBs row for row: "
        + {True: "[green]identical[/]", False: "[red]DIFFERENT[/]", None: "[yellow]-[/]"}[identical]
        + "".join(
            f" ({name}: {c['rows'][0]:,} rows)"
            for name, c in result.correctness.get("comparisons", {}).items()
        )
    )
