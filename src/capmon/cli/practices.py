"""``capmon practices ...``: import, list and show a site's L4C practice tables and configs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from capmon.cli.common import console, print_json, reported_errors, state
from capmon.errors import InputError, NotFoundError
from capmon.processors.l4c.config import practice_code
from capmon.processors.l4c.practices import (
    CONFIG_FOLDER,
    FOLDER_NAMES,
    import_config,
    import_practices,
    list_stored,
    load_stored_practices,
    stored_config,
    stored_practices,
)

practices_app = typer.Typer(
    help="L4C practice tables (CatchCrop, Fallow, NFC, NA CSVs) and L4C configs per site and year.",
    no_args_is_help=True,
)


@practices_app.command("import")
def practices_import(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    year: Annotated[int, typer.Argument(help="Year of the practices.")],
    file: Annotated[Path, typer.Argument(help="A Sen4CAP practice CSV or an L4C .cfg file.")],
    practice: Annotated[
        str | None,
        typer.Option(help="catchcrop, fallow, nfc or na [default: the file's PRACTICE]."),
    ] = None,
    country: Annotated[
        str | None, typer.Option(help="Country code of an L4C config (required for a .cfg).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Validate and store a practice CSV (ids checked against the declarations) or an L4C config."""
    with reported_errors():
        workspace = state(ctx).workspace()
        if file.suffix.lower() == ".cfg":
            if country is None:
                raise InputError("an L4C config needs --country (e.g. --country NLD)")
            stored = import_config(workspace, site, year, file, country)
        else:
            stored = import_practices(workspace, site, year, file, practice)
    if as_json:
        print_json(stored.report | {"version": stored.version, "folder": str(stored.folder)})
        return
    if stored.kind == CONFIG_FOLDER:
        console.print(
            f"Stored L4C config version {stored.version} of {site} {year} "
            f"({stored.report['country']}) in {stored.folder}"
        )
        for note in stored.report.get("notes", []):
            console.print(f"note: {note}")
        return
    unknown = stored.report["unknown_ids"]
    console.print(
        f"Stored {stored.report['practice_name']} practices version {stored.version} of {site} "
        f"{year}: {stored.report['matched']} of {stored.report['rows']} rows matched, "
        f"{unknown['count']} unknown FIELD_ID(s) in {stored.folder}"
    )
    if unknown["count"]:
        console.print(
            f"unknown FIELD_IDs (first {len(unknown['ids'])}): {', '.join(unknown['ids'])}"
        )


@practices_app.command("list")
def practices_list(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the stored practice tables and configs of a site."""
    with reported_errors():
        stored = list_stored(state(ctx).workspace(), site)
    if as_json:
        print_json(
            [
                {
                    "year": s.year,
                    "kind": s.kind,
                    "version": s.version,
                    "folder": str(s.folder),
                    "rows": s.report.get("rows"),
                    "matched": s.report.get("matched"),
                    "country": s.report.get("country"),
                    "source_file": s.report.get("source_file"),
                }
                for s in stored
            ]
        )
        return
    table = Table("year", "kind", "version", "rows", "matched", "source", title="L4C practices")
    for s in stored:
        cells = [str(s.report.get(k, "")) for k in ("rows", "matched", "source_file")]
        table.add_row(str(s.year), s.kind, str(s.version), *cells)
    console.print(table)


@practices_app.command("show")
def practices_show(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    year: Annotated[int, typer.Argument(help="Year.")],
    practice: Annotated[str, typer.Argument(help="catchcrop, fallow, nfc, na or config.")],
    version: Annotated[int | None, typer.Option(help="Version [default: newest].")] = None,
    rows: Annotated[int, typer.Option(help="How many rows to print (0: all).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print report and rows as JSON.")] = False,
) -> None:
    """Show a stored practice table (report and rows) or config."""
    with reported_errors():
        workspace = state(ctx).workspace()
        if practice.lower() == CONFIG_FOLDER:
            found = stored_config(workspace, site, year, version)
            kind = CONFIG_FOLDER
        else:
            code = practice_code(practice)
            found = stored_practices(workspace, site, year, code, version)
            kind = FOLDER_NAMES[code]
        if found is None:
            raise NotFoundError(f"site {site!r} has no stored {kind} for {year}")
        table = load_stored_practices(found).rows if kind != CONFIG_FOLDER else None
    if as_json:
        payload: dict[str, object] = {"report": found.report, "version": found.version}
        if table is not None:
            shown = table if rows <= 0 else table.head(rows)
            payload["rows"] = shown.astype(str).to_dict("records")
        print_json(payload)
        return
    console.print(f"{kind} version {found.version} of {site} {year}: {found.folder}")
    for key in ("source_file", "rows", "matched", "country", "p_end_missing"):
        if key in found.report:
            console.print(f"{key}: {found.report[key]}")
    for note in found.report.get("notes", []):
        console.print(f"note: {note}")
    if table is not None:
        shown = table if rows <= 0 else table.head(rows)
        grid = Table(*[str(c) for c in shown.columns], title=f"rows ({len(shown)} of {len(table)})")
        for record in shown.astype(str).itertuples(index=False):
            grid.add_row(*[str(v) for v in record])
        console.print(grid)
