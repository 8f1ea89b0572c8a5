"""``capmon eval ...``: products scored against reference data (``capmon eval mowing``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, cast

import typer
from rich.table import Table

from capmon.cli.common import console, print_json, reported_errors
from capmon.processors.l4b.evaluate import evaluate_mowing

eval_app = typer.Typer(help="Score products against reference data.", no_args_is_help=True)


@eval_app.command("mowing")
def eval_mowing(
    product: Annotated[Path, typer.Argument(help="An L4B product folder.")],
    reference: Annotated[
        Path,
        typer.Option(
            "--reference",
            help="Reference CSV (parcel id, mowing date) or a synthetic world's truth/events.csv.",
        ),
    ],
    early_days: Annotated[
        int, typer.Option("--early-days", min=0, help="A detection may precede the mowing by this.")
    ] = 3,
    late_days: Annotated[
        int, typer.Option("--late-days", min=0, help="A detection may follow the mowing by this.")
    ] = 20,
    id_column: Annotated[
        str, typer.Option("--id-column", help="Reference ids are: auto, ori_id or NewID.")
    ] = "auto",
    start: Annotated[
        datetime | None,
        typer.Option("--start", formats=["%Y-%m-%d"], help="Ignore reference dates before."),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--end", formats=["%Y-%m-%d"], help="Ignore reference dates after."),
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help="Write PNG plots of a sample of parcels to this folder."),
    ] = None,
    mdb: Annotated[
        Path | None,
        typer.Option("--mdb", help="The MDB the product was made from (NDVI for --plots)."),
    ] = None,
    plot_parcels: Annotated[
        int, typer.Option("--plot-parcels", min=1, help="How many parcels --plots draws.")
    ] = 12,
    signal: Annotated[str, typer.Option("--signal", help="Optical signal plotted.")] = "NDVI",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Precision, recall, F1, date error, false alarms per month and count error of mowing
    detections; with --plots, PNGs of a sample of parcels' series (detections, references)."""
    with reported_errors():
        if id_column not in ("auto", "ori_id", "NewID"):
            raise typer.BadParameter("--id-column must be auto, ori_id or NewID")
        result = evaluate_mowing(
            product,
            reference,
            tolerance_days=(-early_days, late_days),
            start=start.date() if start else None,
            end=end.date() if end else None,
            id_column=cast(Literal["auto", "ori_id", "NewID"], id_column),
        )
        figures = result.figures()
        if plots is not None:
            if mdb is None:
                raise typer.BadParameter("--plots needs --mdb (the MDB of the product)")
            written = _plot(product, reference, mdb, plots, plot_parcels, signal,
                            (-early_days, late_days), start, end, id_column)  # fmt: skip
            figures["plots"] = [str(p) for p in written]
        if as_json:
            print_json(figures)
            return
        table = Table("figure", "value", title=f"mowing: {product.name}")
        for key, value in figures.items():
            if key == "plots":
                value = f"{len(value)} PNG in {plots}"
            table.add_row(key, str(value))
        console.print(table)


def _plot(
    product: Path, reference: Path, mdb: Path, folder: Path, count: int, signal: str,
    tolerance: tuple[int, int], start: datetime | None, end: datetime | None, id_column: str,
) -> list[Path]:  # fmt: skip
    from capmon.mdb.query import MarkersDatabase
    from capmon.processors.l4b.evaluate import load_reference
    from capmon.processors.l4b.outputs import read_product
    from capmon.processors.l4b.plots import plot_parcels, sample_parcels

    parcels, events = read_product(product)
    table = load_reference(reference, start.date() if start else None, end.date() if end else None)
    chosen = sample_parcels(parcels, events, table, count)
    rows = MarkersDatabase(mdb).timeseries(chosen, [signal])
    return plot_parcels(folder, rows, parcels, events, table, chosen, tolerance,
                        cast(Literal["auto", "ori_id", "NewID"], id_column))  # fmt: skip


@eval_app.command("heterogeneity")
def eval_heterogeneity(
    product: Annotated[Path, typer.Argument(help="A heterogeneity product folder.")],
    truth: Annotated[
        Path,
        typer.Option(
            "--truth",
            help="CSV with parcel_id (declarations' id) and heterogeneous (0/1), e.g. a "
            "synthetic world's truth/parcels_<year>.csv.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Precision, recall and F1 of each heterogeneity method and of their majority."""
    from capmon.processors.heterogeneity.evaluate import evaluate_heterogeneity

    with reported_errors():
        figures = evaluate_heterogeneity(product, truth)
        if as_json:
            print_json(figures)
            return
        table = Table("figure", "value", title=f"heterogeneity: {product.name}")
        for key, value in figures.items():
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        console.print(table)
