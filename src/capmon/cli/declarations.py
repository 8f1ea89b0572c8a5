"""``capmon declarations ...``: import, list and show a site's declarations (parcels)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from capmon.catalog.models import ImportMode
from capmon.cli.common import console, print_json, reported_errors, split_values, state
from capmon.parcels.declarations import (
    DuplicateIdPolicy,
    declaration_report,
    import_declarations,
    list_declaration_sets,
)
from capmon.parcels.report import render_declaration_report

declarations_app = typer.Typer(
    help="Declarations (GSAA/LPIS parcels): versioned import per site and year.",
    no_args_is_help=True,
)


@declarations_app.command("import")
def declarations_import(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    year: Annotated[int, typer.Argument(help="Declaration year.")],
    file: Annotated[
        Path,
        typer.Argument(help="Zipped shapefile, GeoPackage, GML, GeoParquet...; any CRS."),
    ],
    parcel_id_col: Annotated[
        list[str] | None,
        typer.Option(
            "--parcel-id-col",
            help="Parcel id column; several (comma-separated or repeated) are joined with '-' "
            "[default: fiboa id].",
        ),
    ] = None,
    holding_id_col: Annotated[
        list[str] | None,
        typer.Option(
            "--holding-id-col",
            help="Holding id column; several are comma-separated or repeated.",
        ),
    ] = None,
    crop_code_col: Annotated[
        str | None,
        typer.Option("--crop-code-col", help="Crop code column [default: fiboa crop:code]."),
    ] = None,
    mode: Annotated[
        ImportMode,
        typer.Option(
            help="update: missing parcels are marked deleted; incremental: they are kept; "
            "replace: start again (new NewIDs)."
        ),
    ] = ImportMode.UPDATE,
    layer: Annotated[str | None, typer.Option(help="Layer (or zip member) to read.")] = None,
    encoding: Annotated[
        str | None, typer.Option(help="Attribute encoding, e.g. cp1252 (default: declared).")
    ] = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Repair invalid geometries with make_valid.")
    ] = False,
    on_duplicate_id: Annotated[
        DuplicateIdPolicy,
        typer.Option(help="error: refuse duplicate parcel ids; suffix: add -A, -B..."),
    ] = DuplicateIdPolicy.ERROR,
    skip_non_polygons: Annotated[
        bool,
        typer.Option(
            "--skip-non-polygons", help="Drop (and count) features that are not polygons."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import a declarations file as the next version of the site's parcels for YEAR."""
    with reported_errors():
        result = import_declarations(
            state(ctx).workspace(),
            site,
            year,
            file,
            parcel_id_cols=split_values(parcel_id_col) or (),
            holding_id_cols=split_values(holding_id_col) or (),
            crop_code_col=crop_code_col,
            mode=mode,
            layer=layer,
            encoding=encoding,
            repair=repair,
            on_duplicate_id=on_duplicate_id,
            skip_non_polygons=skip_non_polygons,
        )
    if as_json:
        print_json(result.report.to_dict())
        return
    console.print(render_declaration_report(result.report.to_dict()))
    console.print(
        f"Stored version {result.version} of {result.site} {result.year}: "
        f"{result.report.counts.active_parcels} parcels in {result.parcels_path}"
    )


@declarations_app.command("list")
def declarations_list(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the imported declaration sets of a site."""
    with reported_errors():
        sets = list_declaration_sets(state(ctx).workspace(), site)
    if as_json:
        print_json([dataclasses.asdict(s) for s in sets])
        return
    table = Table("year", "version", "mode", "parcels", "source", "created", title="Declarations")
    for entry in sets:
        table.add_row(
            str(entry.year),
            str(entry.version),
            entry.mode,
            str(entry.parcels),
            entry.source_file,
            f"{entry.created_at:%Y-%m-%d %H:%M}" if entry.created_at else "",
        )
    console.print(table)


@declarations_app.command("show")
def declarations_show(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    year: Annotated[int, typer.Argument(help="Declaration year.")],
    version: Annotated[int | None, typer.Option(help="Version [default: newest].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Show the import report of a declaration set."""
    with reported_errors():
        report = declaration_report(state(ctx).workspace(), site, year, version)
    if as_json:
        print_json(report)
        return
    console.print(render_declaration_report(report))


@declarations_app.command("terrain")
def declarations_terrain(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    year: Annotated[int, typer.Argument(help="Declaration year.")],
    dem: Annotated[
        Path, typer.Option(help="A DEM raster (elevation in metres, with a CRS).", metavar="FILE")
    ],
    out: Annotated[
        Path, typer.Option(help="The attributes file to write (.csv or .parquet).", metavar="FILE")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Mean elevation and slope of each parcel from a DEM, as an attributes file for
    ``capmon run l4a --attributes-file`` (docs/l4a.md)."""
    from capmon.mdb.terrain import terrain_attributes, write_attributes
    from capmon.parcels import load_parcels

    with reported_errors():
        parcels = load_parcels(state(ctx).workspace(), site, year)
        result = terrain_attributes(parcels, dem)
        written = write_attributes(result.table, out)
    summary = {
        "file": str(written),
        "parcels": len(result.table),
        "without_value": result.outside,
        "elevation_mean": float(result.table["elevation"].mean()),
        "slope_mean": float(result.table["slope"].mean()),
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{written}: elevation and slope of {summary['parcels']} parcels "
        f"(mean {summary['elevation_mean']:.1f} m, {summary['slope_mean']:.2f} deg)"
        + (f"; {result.outside} outside the DEM or over its nodata" if result.outside else "")
    )
