"""``capmon demo``: the whole system on the built-in synthetic season."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from capmon.cli.common import console, reported_errors, state
from capmon.demo import FULL_WORLD, QUICK_WORLD, run_demo
from capmon.settings import Settings


class DemoFormat(StrEnum):
    JP2 = "jp2"
    COG = "cog"


def demo(
    ctx: typer.Context,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help=f"The full world ({FULL_WORLD.parcels} parcels, {FULL_WORLD.window_km:g} km; "
            f"takes 10-20 minutes) rather than the quick one ({QUICK_WORLD.parcels} parcels, "
            f"{QUICK_WORLD.window_km:g} km).",
        ),
    ] = False,
    parcels: Annotated[
        int | None,
        typer.Option(
            help="Parcels of the synthetic world [default: those of the quick or full world].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic world.")] = 0,
    s2_format: Annotated[
        DemoFormat, typer.Option("--format", help="Sentinel-2 band files: JPEG 2000 or COG.")
    ] = DemoFormat.JP2,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing demo workspace at --home.")
    ] = False,
) -> None:
    """Create a workspace and run every stage of capmon on a synthetic season.

    A quick world by default (first results in a few minutes); --full for the full one."""
    cli_state = state(ctx)
    home = cli_state.home or Settings.from_environment().home
    with (
        reported_errors(),
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("demo", total=1.0)

        def progress(stage: str, fraction: float) -> None:
            bar.update(task, description=stage[:60], completed=min(max(fraction, 0.0), 1.0))

        world = FULL_WORLD if full else QUICK_WORLD
        report = run_demo(
            home,
            parcels=parcels or world.parcels,
            window_km=world.window_km,
            revisit_days=world.revisit_days,
            s1_repeat_days=world.s1_repeat_days,
            multiannual_parcels=world.multiannual_parcels,
            multiannual_window_km=world.multiannual_window_km,
            multiannual_revisit_days=world.multiannual_revisit_days,
            seed=seed,
            s2_format=s2_format.value,
            overwrite=overwrite,
            database_url=cli_state.database_url,
            progress=progress,
        )
    table = Table("stage", "seconds", "what was done", title=f"capmon demo in {report.home}")
    for name, seconds, detail in report.stages:
        table.add_row(name, f"{seconds:.1f}", detail)
    console.print(table)
    figures = Table("figure", "value", title="Checks against the synthetic truth")
    for key, value in report.figures.items():
        figures.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(figures)
    for title, frame in report.tables.items():
        evaluation = Table(*[str(c) for c in frame.columns], title=title)
        for values in frame.itertuples(index=False):
            evaluation.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in values])
        console.print(evaluation)
    mdb = report.figures.get("mdb", "")
    console.print(f"Workspace: {report.home}  (try: capmon --home {report.home} mdb info {mdb})")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
