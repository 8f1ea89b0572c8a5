"""``capmon lut ...``: import, list and show a site's crop look-up tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from capmon.cli.common import console, print_json, reported_errors, state
from capmon.errors import ColumnError, InputError
from capmon.parcels.lut import LutFormat, import_lut, list_luts, load_lut, lut_info
from capmon.parcels.lut_schema import FLAG_COLUMNS, LUT_COLUMNS, read_utf8_csv
from capmon.parcels.report import render_lut_report

lut_app = typer.Typer(
    help="Crop look-up tables (Sen4CAP LUT or EuroCrops HCAT mapping) per site and year.",
    no_args_is_help=True,
)


@lut_app.command("import")
def lut_import(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    year: Annotated[int, typer.Argument(help="Year the LUT applies to.")],
    files: Annotated[
        list[Path],
        typer.Argument(help="LUT CSV (UTF-8); with --format hcat, one or more mapping CSVs."),
    ],
    lut_format: Annotated[
        LutFormat | None,
        typer.Option(
            "--format",
            help="sen4cap: Sen4CAP LUT CSV; hcat: EuroCrops HCAT mapping CSV [default: told "
            "from the columns].",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import a crop LUT as the next version of the site's LUT for YEAR.

    A Sen4CAP LUT has the columns ori_crop, ctnum, ct, lc, ctnuml4a, ctl4a, ctnumdiv, eaa, al,
    pgrass, tgrass, fallow, cwater; a EuroCrops HCAT mapping CSV has original_code (or
    original_name) and HCAT3_code. The format is told from the columns unless --format is
    given."""
    with reported_errors():
        kind = lut_format or detect_lut_format(files)
        result = import_lut(state(ctx).workspace(), site, year, files, lut_format=kind)
    if as_json:
        print_json(result.report.to_dict())
        return
    console.print(render_lut_report(result.report.to_dict()))
    console.print(
        f"Stored LUT version {result.version} of {result.site} {result.year}: "
        f"{result.report.entries} crop codes in {result.lut_path}"
    )


@lut_app.command("show")
def lut_show(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    year: Annotated[int, typer.Argument(help="Year.")],
    version: Annotated[int | None, typer.Option(help="Version [default: newest].")] = None,
    rows: Annotated[int, typer.Option(help="How many LUT rows to print (0: all).")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print report and rows as JSON.")] = False,
) -> None:
    """Show a crop LUT: its import report and its rows."""
    with reported_errors():
        workspace = state(ctx).workspace()
        info = lut_info(workspace, site, year, version)
        table = load_lut(workspace, site, year, info.version)
    shown = table if rows <= 0 else table.head(rows)
    if as_json:
        records = [
            {k: (None if _is_missing(v) else v) for k, v in record.items()}
            for record in shown[list(LUT_COLUMNS)].astype(object).to_dict("records")
        ]
        print_json({"report": info.report, "rows": records, "entries": info.entries})
        return
    console.print(render_lut_report(info.report))
    shown_columns = [c for c in LUT_COLUMNS if c not in FLAG_COLUMNS]
    grid = Table(*shown_columns, "flags set", title=f"LUT rows ({len(shown)} of {len(table)})")
    for record in shown.astype(object).to_dict("records"):
        cells = ["" if _is_missing(record[c]) else str(record[c]) for c in shown_columns]
        grid.add_row(*cells, " ".join(c for c in FLAG_COLUMNS if bool(record[c])))
    console.print(grid)


def detect_lut_format(files: list[Path]) -> LutFormat:
    """The LUT format of ``files`` told from the first file's columns: a Sen4CAP LUT has every
    Sen4CAP column, a EuroCrops HCAT mapping an ``HCAT3_code`` column; anything else is an
    error naming both sets of columns."""
    if not files:
        raise InputError("no LUT file given")
    header, _records = read_utf8_csv(files[0])
    found = {h.lower() for h in header}
    if "hcat3_code" in found:
        return LutFormat.HCAT
    if set(LUT_COLUMNS) <= found:
        return LutFormat.SEN4CAP
    missing = [c for c in LUT_COLUMNS if c not in found]
    raise ColumnError(
        f"{files[0]}: neither a Sen4CAP LUT nor a EuroCrops HCAT mapping CSV (columns found: "
        f"{', '.join(header) or 'none'}). A Sen4CAP LUT has the columns "
        f"{', '.join(LUT_COLUMNS)} (missing here: {', '.join(missing)}); a EuroCrops HCAT "
        "mapping has original_code (or original_name) and HCAT3_code"
    )


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


@lut_app.command("list")
def lut_list(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the crop LUTs of a site."""
    with reported_errors():
        luts = list_luts(state(ctx).workspace(), site)
    if as_json:
        print_json(
            [
                {
                    "year": i.year,
                    "version": i.version,
                    "kind": i.kind,
                    "entries": i.entries,
                    "source_file": i.source_file,
                    "lut_path": i.lut_path,
                    "created_at": i.created_at,
                }
                for i in luts
            ]
        )
        return
    table = Table("year", "version", "kind", "entries", "source", title="Crop LUTs")
    for i in luts:
        table.add_row(str(i.year), str(i.version), i.kind, str(i.entries), i.source_file)
    console.print(table)
