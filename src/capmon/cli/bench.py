"""``capmon bench extract``: the extraction engine against the decode floor and its peers;
``capmon bench scale``: season extraction on 1 and 2 workers; ``capmon bench api``: the
markers and map routes under concurrent clients."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from capmon.bench.extract import METHODS, BenchConfig, run_benchmark, write_json
from capmon.bench.report import render
from capmon.cli.common import console, err_console, reported_errors, split_values

Stage = Callable[[str, int], Callable[[int], None]]


@contextmanager
def _stages() -> Iterator[Stage]:
    """A progress display with one bar per benchmark stage: ``step(label, total)`` adds a bar
    and returns the function that advances it."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:

        def step(label: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(label, total=total)
            return lambda n: bar.advance(task, n)

        yield step


bench_app = typer.Typer(
    help="Benchmarks of the extraction engine and the MDB.", no_args_is_help=True
)


@bench_app.callback()
def bench() -> None:
    """Benchmarks of the extraction engine and the MDB (timings reported, never asserted)."""


@bench_app.command("extract")
def extract(
    tile: Annotated[str, typer.Option(help="Sentinel-2 tile whose 10 m grid is used.")] = "31UFS",
    size: Annotated[int, typer.Option(help="Raster width and height in pixels.")] = 10980,
    parcels: Annotated[int, typer.Option(help="Parcels (0.5-5 ha, not overlapping).")] = 50_000,
    dates: Annotated[int, typer.Option(help="Band files (dates) to generate and time.")] = 5,
    jp2: Annotated[
        bool, typer.Option("--jp2/--no-jp2", help="Also time the decode of a JPEG2000 band.")
    ] = True,
    threads: Annotated[
        str, typer.Option(help="GDAL_NUM_THREADS for reads (besides the 1-thread decode).")
    ] = "ALL_CPUS",
    optical_buffer_m: Annotated[
        float,
        typer.Option(help="Inward buffer of the parcels in metres (as in `capmon mdb extract`)."),
    ] = 0.0,
    old_buffer: Annotated[
        float | None, typer.Option("--buffer", hidden=True, help="Deprecated: --optical-buffer-m.")
    ] = None,
    decode_repeats: Annotated[int, typer.Option(help="Raw decodes per variant (median).")] = 3,
    rasterstats_parcels: Annotated[
        int, typer.Option(help="Parcels given to rasterstats (time extrapolated).")
    ] = 2_000,
    reference_parcels: Annotated[
        int, typer.Option(help="Parcels checked against a per-parcel reference.")
    ] = 200,
    mdb_parcels: Annotated[int, typer.Option(help="Parcels of the query MDB.")] = 50_000,
    mdb_dates: Annotated[int, typer.Option(help="Dates (products) of the query MDB.")] = 70,
    mdb_signals: Annotated[int, typer.Option(help="Signals of the query MDB (1-10).")] = 10,
    queries: Annotated[int, typer.Option(help="Timed one-parcel queries.")] = 50,
    seed: Annotated[int, typer.Option(help="Random seed of the generated data.")] = 20240501,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Methods to leave out (comma-separated or repeated): {', '.join(METHODS)}."
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep (and reuse) the generated data here [default: a temp folder]."),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure to this JSON file.")
    ] = None,
) -> None:
    """Time capmon's extraction against raw decode, exactextract and rasterstats on one tile."""
    if old_buffer is not None:
        err_console.print(
            "--buffer is deprecated: use --optical-buffer-m (as `capmon mdb extract`)"
        )
        optical_buffer_m = old_buffer
    with reported_errors():
        config = BenchConfig(
            tile=tile,
            size=size,
            parcels=parcels,
            dates=dates,
            jp2=jp2,
            threads=threads,
            optical_buffer_m=optical_buffer_m,
            decode_repeats=decode_repeats,
            rasterstats_parcels=rasterstats_parcels,
            reference_parcels=reference_parcels,
            mdb_parcels=mdb_parcels,
            mdb_dates=mdb_dates,
            mdb_signals=mdb_signals,
            queries=queries,
            seed=seed,
            skip=tuple(split_values(skip) or ()),
        )
        with _stages() as step:
            result = run_benchmark(config, workdir, step)
        render(result, console)
        if json_path is not None:
            write_json(result, json_path)
            console.print(f"Figures written to {json_path}")


@bench_app.command("scale")
def scale(
    parcels: Annotated[int, typer.Option(help="Parcels in all (split over the tiles).")] = 40_000,
    tiles: Annotated[int, typer.Option(help="Adjacent S2 tiles, one window each (1-4).")] = 2,
    dates: Annotated[int, typer.Option(help="Acquisitions (COG products) per tile.")] = 10,
    signals: Annotated[
        list[str] | None,
        typer.Option(
            help="Signals, comma-separated or repeated [default: the MDB's 18 default signals].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the generated world.")] = 20240601,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep (and reuse) the generated world here [default: a temp folder]."),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure to this JSON file.")
    ] = None,
) -> None:
    """Run the season extraction through the orchestrator on 1 then 2 Dask workers: speedup,
    scheduling overhead, throughput, worker memory, identical MDBs."""
    from capmon.bench.scale import ScaleConfig, run_scale
    from capmon.bench.scale import render as render_scale
    from capmon.bench.scale import write_json as write_scale_json

    with reported_errors():
        chosen = tuple(split_values(signals) or ())
        config = ScaleConfig(parcels=parcels, tiles=tiles, dates=dates, seed=seed)
        if chosen:
            config = dataclasses.replace(config, signals=chosen)
        with _stages() as step:
            result = run_scale(config, workdir, step)
        render_scale(result, console)
        if json_path is not None:
            write_scale_json(result, json_path)
            console.print(f"Figures written to {json_path}")


@bench_app.command("startup")
def startup(
    repeats: Annotated[int, typer.Option(help="Timed runs of each command (median).")] = 7,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure to this JSON file.")
    ] = None,
) -> None:
    """Time `capmon --help` and light commands, each in fresh processes, against a bare Python
    start, and list the heavy libraries each one imports."""
    from capmon.bench.startup import render as render_startup
    from capmon.bench.startup import run_startup
    from capmon.bench.startup import write_json as write_startup_json

    with reported_errors():
        with _stages() as step:
            result = run_startup(repeats, report=step)
        render_startup(result, console)
        if json_path is not None:
            write_startup_json(result, json_path)
            console.print(f"Figures written to {json_path}")


@bench_app.command("api")
def api(
    parcels: Annotated[int, typer.Option(help="Parcels of the generated season.")] = 50_000,
    dates: Annotated[int, typer.Option(help="Dates (products) of the MDB.")] = 70,
    signals: Annotated[int, typer.Option(help="Signals of the MDB (1-10).")] = 10,
    clients: Annotated[int, typer.Option(help="Concurrent clients.")] = 50,
    seconds: Annotated[float, typer.Option(help="Length of the timed run.")] = 60.0,
    think_ms: Annotated[
        float,
        typer.Option(
            help="Mean pause of a client between an answer and its next request, like a map "
            "user (0: a closed loop, each client sends its next request at once)."
        ),
    ] = 1000.0,
    tile_share: Annotated[
        float, typer.Option(help="Share of vector-tile requests (the rest: time series).")
    ] = 0.5,
    zooms: Annotated[
        list[str] | None,
        typer.Option(
            help="Zooms of the tiles, comma-separated or repeated [default: 12,13,14,15].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the data and the clients.")] = 20240701,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Keep the generated workspace here [default: a temp folder]."),
    ] = None,
    reuse: Annotated[
        bool, typer.Option("--reuse", help="Reuse the workspace of --workdir when it matches.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure to this JSON file.")
    ] = None,
) -> None:
    """Serve a 50k-parcel season with `capmon serve` and time parcel time series and vector
    tiles under concurrent clients: p50/p95/p99, errors, throughput, against the targets."""
    from capmon.bench.api import ApiBenchConfig, run_api_bench
    from capmon.bench.api import render as render_api
    from capmon.bench.api import write_json as write_api_json
    from capmon.errors import InputError

    with reported_errors():
        try:
            given = split_values(zooms) or ["12", "13", "14", "15"]
            levels = tuple(int(z) for z in given)
        except ValueError as exc:
            raise InputError(f"--zooms {zooms!r} must be integers") from exc
        config = ApiBenchConfig(
            parcels=parcels,
            dates=dates,
            signals=signals,
            clients=clients,
            seconds=seconds,
            think_ms=think_ms,
            tile_share=tile_share,
            zooms=levels,
            seed=seed,
        )
        with _stages() as step:
            result = run_api_bench(config, workdir, reuse, step)
        render_api(result, console)
        if json_path is not None:
            write_api_json(result, json_path)
            console.print(f"Figures written to {json_path}")
