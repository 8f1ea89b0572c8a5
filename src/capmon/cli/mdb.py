"""``capmon mdb extract|export|info``: the markers database."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from capmon.cli.common import console, print_json, reported_errors, split_values
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
        list[str] | None,
        typer.Option(
            help="Statistics of the sen4cap export, comma-separated or repeated [mean, stdev]."
        ),
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
                database, out, stem, statistics=tuple(split_values(statistic) or ("mean", "stdev"))
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
    _print_product_notes(mdb)
    _ = ctx


def _print_product_notes(mdb: Path) -> None:
    """The products extracted without a cloud mask and the signals products could not give."""
    from capmon.mdb.store import MdbStore

    coverage = MdbStore(mdb).coverage()
    unmasked = sorted(p for p, held in coverage.items() if not held.masked)
    if unmasked:
        console.print(
            f"{len(unmasked)} products extracted without a cloud mask (--allow-unmasked): "
            + ", ".join(unmasked)
        )
    skipped: dict[str, list[str]] = {}
    for product, held in coverage.items():
        for signal, reason in held.unavailable.items():
            skipped.setdefault(f"{signal} ({reason})", []).append(product)
    for what, products in sorted(skipped.items()):
        console.print(f"not given by {len(products)} products: {what}")


@mdb_app.command("import")
def import_statistics_command(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Files of per-parcel, per-date statistics (CSV, Parquet, IPC)."),
    ],
    mdb: Annotated[Path, typer.Option("--mdb", help="MDB folder to create, or an earlier import.")],
    spec: Annotated[
        str | None,
        typer.Option(help="Import spec: a TOML file or a shipped one (gmd-s2, gmd-s1, ...)."),
    ] = None,
    layout: Annotated[
        str | None, typer.Option(help="long (the default), wide, sen4cap, cbm or openeo.")
    ] = None,
    cbm_kind: Annotated[
        str | None, typer.Option(help="cbm layout: s2, bs (backscatter) or c6 (coherence).")
    ] = None,
    id_col: Annotated[str | None, typer.Option(help="Column of the parcel ids.")] = None,
    date_col: Annotated[str | None, typer.Option(help="Column of the dates.")] = None,
    date_format: Annotated[
        str | None, typer.Option(help="strftime format of the dates, or 'epoch' (seconds).")
    ] = None,
    signal_col: Annotated[
        str | None, typer.Option(help="Long layouts: column of the signal names.")
    ] = None,
    signal_map: Annotated[
        list[str] | None,
        typer.Option(help="SOURCE=SIGNAL,...: columns (wide) or signal names (long) to signals."),
    ] = None,
    stat_map: Annotated[
        list[str] | None,
        typer.Option(help="STATISTIC=COLUMN,... (long), e.g. stdev=std,median=p50."),
    ] = None,
    scale: Annotated[
        list[str] | None, typer.Option(help="SOURCE=FACTOR,...: multiply values (e.g. B04=0.0001).")
    ] = None,
    sensor: Annotated[
        str | None, typer.Option(help="Sensor of every row (S2, S2A, S1A...).")
    ] = None,
    sensor_col: Annotated[str | None, typer.Option(help="Column holding the sensor.")] = None,
    sensor_pattern: Annotated[
        str | None, typer.Option(help="Regex whose first group is the sensor in --sensor-col.")
    ] = None,
    tile_col: Annotated[str | None, typer.Option(help="Column holding the tile.")] = None,
    tile_pattern: Annotated[
        str | None, typer.Option(help="Regex whose first group is the tile in --tile-col.")
    ] = None,
    orbit: Annotated[int | None, typer.Option(help="Relative orbit of every row.")] = None,
    orbit_col: Annotated[str | None, typer.Option(help="Column of the relative orbit.")] = None,
    date_first_col: Annotated[
        str | None, typer.Option(help="Coherence: column of the pair's first date.")
    ] = None,
    date_pair_from: Annotated[
        str | None, typer.Option(help="Coherence: column holding both dates of the pair.")
    ] = None,
    date_pair_pattern: Annotated[
        str | None,
        typer.Option(
            help="Regex with groups (?P<first>...) and (?P<date>...) (default: two YYYYMMDD)."
        ),
    ] = None,
    valid_col: Annotated[
        str | None, typer.Option(help="Column saying whether a row is an observation.")
    ] = None,
    valid_values: Annotated[
        list[str] | None,
        typer.Option(help="V,...: the --valid-col values of observations (e.g. 1)."),
    ] = None,
    nodata: Annotated[
        list[str] | None, typer.Option(help="V,...: values that mean missing (e.g. -9999).")
    ] = None,
    sar_unit: Annotated[
        str | None,
        typer.Option(help="S1 backscatter values: db (sigma0 dB), amp-db (Sen4CAP AMP), linear."),
    ] = None,
    backscatter: Annotated[
        str | None, typer.Option(help="sigma0 or gamma0 (what S1 backscatter values are).")
    ] = None,
    custom_signals: Annotated[
        bool, typer.Option(help="Accept signal names capmon does not know (no range checks).")
    ] = False,
    parcels: Annotated[
        Path | None, typer.Option(help="Parcels file (any vector format or CSV): the known ids.")
    ] = None,
    parcel_id_col: Annotated[
        str | None, typer.Option(help="Id column of --parcels (matches the sources' ids).")
    ] = None,
    skip_unknown_parcels: Annotated[
        bool, typer.Option(help="Skip rows of parcels not in --parcels instead of failing.")
    ] = False,
    site_name: Annotated[str, typer.Option(help="Site recorded in mdb.json.")] = "imported",
    parcel_set: Annotated[
        str | None,
        typer.Option(
            help="Parcel set recorded in mdb.json (default: the --parcels file, or imported)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import per-parcel, per-date statistics computed by other tools into an MDB.

    Layouts: long (one row per parcel, date and signal), wide (one column per signal, e.g.
    Google Earth Engine exports), sen4cap (Sen4CAP's MDB export), cbm (JRC CbM signature
    tables), openeo (aggregate_spatial output). See docs/mdb.md, "Importing statistics".
    """
    from dataclasses import replace

    from rich.table import Table as RichTable

    from capmon.cli.common import console as out
    from capmon.cli.common import print_json as show_json
    from capmon.cli.common import reported_errors as errors
    from capmon.errors import InputError as BadInput
    from capmon.mdb import imports

    def pairs(given: list[str] | None, option: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for item in split_values(given) or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise BadInput(f"{option}: {item!r} is not SOURCE=VALUE")
            found.append((key.strip(), value.strip()))
        return found

    def values(given: list[str] | None) -> tuple[str, ...]:
        return tuple(split_values(given) or ())

    with errors():
        chosen = imports.load_spec(spec) if spec else imports.ImportSpec()
        changes: dict[str, object] = {}
        simple = {
            "layout": layout,
            "cbm_kind": cbm_kind,
            "id_column": id_col,
            "date_column": date_col,
            "date_format": date_format,
            "signal_column": signal_col,
            "sensor": sensor,
            "orbit": orbit,
            "valid_column": valid_col,
            "sar_unit": sar_unit,
            "backscatter": backscatter,
        }
        changes.update({k: v for k, v in simple.items() if v is not None})
        if custom_signals:
            changes["custom_signals"] = True
        extracts = {
            "sensor_from": (sensor_col, sensor_pattern, "--sensor-col"),
            "tile_from": (tile_col, tile_pattern, "--tile-col"),
            "date_first_from": (date_first_col, None, "--date-first-col"),
            "date_pair_from": (date_pair_from, date_pair_pattern, "--date-pair-from"),
        }
        for key, (column, pattern, option) in extracts.items():
            if column is not None:
                changes[key] = imports.Extract(column, pattern)
            elif pattern is not None:
                raise BadInput(f"a pattern needs its column ({option})")
        if orbit_col is not None:
            changes["orbit_from"] = imports.Extract(orbit_col)
        if valid_values is not None:
            changes["valid_values"] = values(valid_values)
        if nodata is not None:
            try:
                changes["nodata"] = tuple(float(v) for v in values(nodata))
            except ValueError as exc:
                raise BadInput(f"--nodata {nodata!r}: give numbers") from exc
        if stat_map:
            changes["statistic_columns"] = tuple(pairs(stat_map, "--stat-map"))
        by_source = {v.source: v for v in chosen.values}
        for source, signal in pairs(signal_map, "--signal-map"):
            known = by_source.get(source)
            by_source[source] = (
                replace(known, signal=signal) if known else imports.ValueSource(source, signal)
            )
        for source, factor in pairs(scale, "--scale"):
            known = by_source.get(source) or imports.ValueSource(source, source)
            try:
                by_source[source] = replace(known, scale=float(factor))
            except ValueError as exc:
                raise BadInput(f"--scale {source}={factor}: not a number") from exc
        changes["values"] = tuple(by_source.values())
        chosen = imports.check_spec(replace(chosen, **changes))  # type: ignore[arg-type]
        allowed: tuple[str, ...] | None = None
        if parcels is not None:
            if parcel_id_col is None:
                raise BadInput("--parcels needs --parcel-id-col (the column of the parcel ids)")
            allowed = imports.read_parcel_ids(parcels, parcel_id_col)
        elif parcel_id_col is not None:
            raise BadInput("--parcel-id-col needs --parcels")
        label = parcel_set or (f"{parcels.name}:{parcel_id_col}" if parcels else "imported")
        report = imports.import_statistics(
            sources,
            mdb,
            chosen,
            parcels=allowed,
            skip_unknown_parcels=skip_unknown_parcels,
            site=site_name,
            parcel_set=label,
        )
    if as_json:
        show_json(report.to_json())
        return
    table = RichTable(
        "source",
        "rows",
        "not valid",
        "missing",
        "observations",
        "parcels",
        "first",
        "last",
        title=str(mdb),
    )
    for item in report.sources:
        table.add_row(
            item.source.name,
            str(item.rows_read),
            str(item.rows_not_valid),
            str(item.missing_values),
            str(item.observations) + (" (already imported)" if item.already_imported else ""),
            str(item.parcels),
            str(item.first or "-"),
            str(item.last or "-"),
        )
    out.print(table)
    for item in report.sources:
        out.print(
            f"{item.source.name}: product {item.product_id}; signals {', '.join(item.signals)}",
            highlight=False,
            soft_wrap=True,
        )
    for note in report.notes:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
    if report.id_map:
        out.print(f"Parcel ids: {mdb / imports.PARCEL_ID_MAP} (original id -> parcel_id)")
