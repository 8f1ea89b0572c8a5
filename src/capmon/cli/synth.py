"""``capmon synth OUTDIR``: generate a synthetic season (products, declarations, configs, truth)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from capmon.cli.common import console, reported_errors


class S2Format(StrEnum):
    JP2 = "jp2"
    COG = "cog"


class Realism(StrEnum):
    CALIBRATED = "calibrated"
    CLEAN = "clean"


def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create (must be empty or absent).")],
    parcels: Annotated[int, typer.Option("--parcels", help="Number of parcels.")] = 2000,
    years: Annotated[int, typer.Option("--years", help="Consecutive years to simulate.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same world).")] = 0,
    window_km: Annotated[
        float, typer.Option("--window-km", help="Side of the square window in km.")
    ] = 10.0,
    first_year: Annotated[int, typer.Option("--first-year", help="First simulated year.")] = 2024,
    s2_format: Annotated[
        S2Format, typer.Option("--format", help="Sentinel-2 band files: JPEG 2000 or COG.")
    ] = S2Format.JP2,
    maja: Annotated[bool, typer.Option("--maja", help="Also write MAJA (THEIA) products.")] = False,
    no_s1: Annotated[
        bool, typer.Option("--no-s1", help="Do not write Sentinel-1 products.")
    ] = False,
    s1_repeat: Annotated[
        int,
        typer.Option("--s1-repeat", help="Sentinel-1 repeat (coherence pair) in days: 6 or 12."),
    ] = 6,
    revisit_days: Annotated[
        int, typer.Option("--revisit-days", help="Days between Sentinel-2 acquisitions.")
    ] = 5,
    cloud_fraction: Annotated[
        float, typer.Option("--cloud-fraction", help="Mean cloud cover of the scenes (0-1).")
    ] = 0.35,
    wrong_declarations: Annotated[
        float,
        typer.Option(
            "--wrong-declarations", help="Fraction of parcels declared with a wrong crop."
        ),
    ] = 0.0,
    realism: Annotated[
        Realism,
        typer.Option(
            "--realism",
            help="How rough the world is: calibrated on real Sentinel series, or clean "
            "(smooth, cloud masks perfect, informative radar: for plumbing tests).",
        ),
    ] = Realism.CALIBRATED,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUTDIR if it is not empty.")
    ] = False,
) -> None:
    """Generate a synthetic farm landscape and its Sentinel-1/2 season with the ground truth."""
    from capmon.synth import generate_world

    with reported_errors():
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(step, total=total)
                bar.update(tasks[step], completed=done, total=total)

            world = generate_world(
                out_dir, parcels=parcels, years=years, seed=seed, window_km=window_km,
                first_year=first_year, s2_format=s2_format.value, maja=maja,
                sentinel1=not no_s1, s1_repeat_days=s1_repeat, revisit_days=revisit_days,
                cloud_fraction=cloud_fraction,
                wrong_declarations=wrong_declarations, overwrite=overwrite, progress=progress,
                realism=realism.value,
            )  # fmt: skip
    table = Table(title=f"Synthetic world {world.root}")
    table.add_column("item")
    table.add_column("value")
    table.add_row("tile / window", f"{world.tile} {tuple(round(v) for v in world.window_bounds)}")
    table.add_row("years", ", ".join(str(y) for y in world.years))
    table.add_row("parcels", ", ".join(f"{y}: {n}" for y, n in sorted(world.parcel_counts.items())))
    table.add_row("Sentinel-2 products", str(world.s2_products))
    table.add_row("Sentinel-1 files", str(world.s1_products))
    table.add_row("realism", str(world.options.get("realism", "")))
    table.add_row(
        "declarations",
        f"{len(world.declarations)} zipped shapefiles (EPSG:{world.declarations_epsg})",
    )
    table.add_row("manifest", str(world.root / "world.json"))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``capmon synth`` to ``app``."""
    app.command("synth")(synth)
