"""``capmon mdb extract|export|info``: the markers database."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from capmon.cli.common import console, print_json, reported_errors
from capmon.cli.processors import processor_command
from capmon.errors import InputError
from capmon.mdb.export import export_long, export_sen4cap
from capmon.mdb.query import open_mdb
from capmon.processors import get_processor

mdb_app = typer.Typer(help="The markers database (MDB).", no_args_is_help=True)
mdb_app.command("extract")(processor_command(get_processor("mdb")))


class ExportFormat(StrEnum):
    SEN4CAP = "sen4cap"
    CSV = "csv"
    PARQUET = "parquet"


@mdb_app.command("export")
def export(
    ctx: typer.Context,
    mdb: Annotated[Path, typer.Argument(help="MDB folder (printed by `capmon mdb extract`).")],
    out: Annotated[Path, typer.Argument(help="Output folder (sen4cap) or file (csv, parquet).")],
    file_format: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.SEN4CAP,
    statistic: Annotated[
        list[str] | None, typer.Option(help="Statistics of the sen4cap export [mean, stdev].")
    ] = None,
) -> None:
    """Export an MDB: Sen4CAP's wide Arrow IPC + CSV, or the long rows as CSV or Parquet."""
    with reported_errors():
        database = open_mdb(mdb)
        if file_format is ExportFormat.SEN4CAP:
            rows = database.timeseries(parcel_ids=None, signals=None)
            if rows.empty:
                raise InputError(f"the MDB at {mdb} is empty")
            start = min(rows["date"]).strftime("%Y%m%d")
            end = max(rows["date"]).strftime("%Y%m%d")
            now = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            stem = f"SEN4CAP_MDB1_S{database.manifest.site}_V{start}_{end}_{now}"
            written = export_sen4cap(
                database, out, stem, statistics=tuple(statistic or ("mean", "stdev"))
            )
            console.print(
                f"Wrote {written.parcels} parcels x {written.columns} columns: "
                f"{written.ipc}, {written.index}, {written.csv}"
            )
        else:
            count = export_long(database, out, file_format.value)
            console.print(f"Wrote {count} rows to {out}")


@mdb_app.command("info")
def info(
    ctx: typer.Context,
    mdb: Annotated[Path, typer.Argument(help="MDB folder.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What an MDB holds: rows, parcels, dates and products per signal."""
    with reported_errors():
        database = open_mdb(mdb)
        rows = (
            database.duckdb()
            .aggregate(
                "signal, count(*) AS rows, count(DISTINCT parcel_id) AS parcels, "
                "count(DISTINCT date) AS dates, min(date) AS first, max(date) AS last",
                "signal",
            )
            .order("signal")
            .fetchall()
        )
    summary = [
        {"signal": r[0], "rows": r[1], "parcels": r[2], "dates": r[3], "first": r[4], "last": r[5]}
        for r in rows
    ]
    if as_json:
        print_json(summary)
        return
    table = Table("signal", "rows", "parcels", "dates", "first", "last", title=str(mdb))
    for row in summary:
        table.add_row(
            *(str(row[k]) for k in ("signal", "rows", "parcels", "dates", "first", "last"))
        )
    console.print(table)
    _ = ctx
