"""``capmon train ...``: models trained on an agency's own reference data (``capmon train l4b``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, cast

import typer

from capmon.cli.common import console, print_json, reported_errors

train_app = typer.Typer(help="Train models on reference data.", no_args_is_help=True)


@train_app.command("l4b")
def train_l4b(
    reference: Annotated[
        Path,
        typer.Option(
            "--reference",
            help="Reference mowings: parcel id, date (CSV, GeoPackage, "
            "Parquet...); rows without a date: checked, not mown; a year column "
            "assigns rows to seasons.",
        ),
    ],
    mdb: Annotated[
        list[Path],
        typer.Option("--mdb", help="An MDB folder of one checked season (repeat for several)."),
    ],
    out: Annotated[Path, typer.Option("--out", help="The model file to write (JSON).")],
    sensors: Annotated[
        str, typer.Option("--sensors", help="S2 or S1_S2 (the model reads S1 features).")
    ] = "S1_S2",
    first_day: Annotated[
        str, typer.Option("--first-day", help="First reported day of each season, MM-DD.")
    ] = "03-01",
    last_day: Annotated[
        str, typer.Option("--last-day", help="Last day of each season, MM-DD.")
    ] = "11-30",
    lookback_days: Annotated[
        int, typer.Option("--lookback-days", min=0, max=366, help="Days read before the first.")
    ] = 45,
    threshold: Annotated[
        float,
        typer.Option("--threshold", min=0.05, max=0.95, help="Probability of a cut to report."),
    ] = 0.5,
    folds: Annotated[
        int, typer.Option("--folds", min=0, max=20, help="Cross-validation folds (0: none).")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Train the capmon mowing model on reference mowings and the seasons' MDBs; the model's
    card holds its cross-validated figures (parcels grouped). Use it with `capmon run l4b
    --model FILE`."""
    from capmon.errors import InputError
    from capmon.processors.l4b import training
    from capmon.processors.l4b.evaluate import load_reference

    with reported_errors():
        if sensors not in ("S2", "S1_S2"):
            raise InputError(f"--sensors must be S2 or S1_S2, not {sensors!r}")
        chosen = cast(Literal["S2", "S1_S2"], sensors)
        rows = load_reference(reference)
        seasons = training.read_seasons(mdb, rows, first_day, last_day)
        labelled = training.training_set(seasons, chosen, lookback_days)
        model = training.train(
            labelled, chosen, threshold, folds, {"reference": str(reference), "sensors": chosen}
        )
        model.save(out)
        card = model.card
        if as_json:
            print_json({"model": str(out), **card})
            return
        console.print(
            f"model written to {out} ({card['candidates']} candidates, "
            f"{card['cut_candidates']} on a reference mowing)"
        )
        figures = card.get("cross_validation")
        if figures:
            console.print(
                f"cross-validated ({figures['folds']} folds by parcel): precision "
                f"{figures['precision']:.2f}, recall {figures['recall']:.2f}, F1 "
                f"{figures['f1']:.2f}, median date error "
                f"{figures['median_abs_date_error_days']:.0f} d over {figures['parcels']} "
                f"parcel-seasons"
            )
