"""``capmon calibrate baresoil LABELS.csv``: fit the bare-soil model on labelled observations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from capmon.cli.common import console, reported_errors, state
from capmon.errors import InputError
from capmon.mdb.query import open_mdb
from capmon.processors.baresoil.calibration import (
    calibrate,
    label_features,
    read_labels,
    write_calibration,
)
from capmon.processors.common import season_mdb_folder
from capmon.sites import get_season, get_site

calibrate_app = typer.Typer(help="Calibrate processors on labelled data.", no_args_is_help=True)


@calibrate_app.command("baresoil")
def baresoil(
    ctx: typer.Context,
    labels: Annotated[Path, typer.Argument(help="CSV: parcel_id (NewID), date, label BARE/VEG.")],
    mdb: Annotated[
        Path | None, typer.Option(help="MDB folder holding the labelled parcels.")
    ] = None,
    site: Annotated[
        str | None, typer.Option(help="Site (with --season, instead of --mdb).")
    ] = None,
    season: Annotated[str | None, typer.Option(help="Season of --site.")] = None,
    method: Annotated[str, typer.Option(help="thresholds or logistic.")] = "thresholds",
    folds: Annotated[int, typer.Option(help="Cross-validation folds (grouped by parcel).")] = 5,
    tolerance_days: Annotated[
        int, typer.Option(help="Days between a label and the observation it is matched with.")
    ] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the fold assignment.")] = 0,
    out: Annotated[
        Path, typer.Option(help="Model file to write (for `capmon run baresoil --model`).")
    ] = Path("baresoil-model.json"),
) -> None:
    """Fit the bare-soil thresholds (or a logistic model) and report cross-validated accuracy."""
    with reported_errors():
        if method not in ("thresholds", "logistic"):
            raise InputError(f"--method must be thresholds or logistic, not {method!r}")
        if mdb is None:
            if site is None or season is None:
                raise InputError("give --mdb, or --site and --season")
            workspace = state(ctx).workspace()
            with workspace.session() as session:
                site_row = get_site(session, site)
                season_row = get_season(session, site_row, season)
                year = season_row.year
            mdb = season_mdb_folder(workspace, site_row, season, year)
        table = read_labels(labels)
        matched, unmatched = label_features(table, open_mdb(mdb), tolerance_days=tolerance_days)
        result = calibrate(
            matched,
            method="logistic" if method == "logistic" else "thresholds",
            folds=folds,
            seed=seed,
            unmatched=unmatched,
        )
        written = write_calibration(result, out)
        console.print(
            f"{result.labels} labels on {result.parcels} parcels matched "
            f"({result.unmatched} without an observation within {tolerance_days} days)"
        )
        scores = Table("model", "accuracy", "balanced accuracy", "recall BARE", "recall VEG")
        for name, figures in (
            (f"{result.method}, {result.folds}-fold cross-validation", result.cross_validation),
            (f"{result.method}, training labels", result.training),
            ("expert thresholds (no fit)", result.expert),
        ):
            if figures:
                scores.add_row(
                    name,
                    *(
                        f"{figures[k]:.3f}"
                        for k in ("accuracy", "balanced_accuracy", "recall_bare", "recall_veg")
                    ),
                )
        console.print(scores)
        console.print(f"model: {result.model.model_dump_json()}")
        console.print(f"written: {written}")
