"""``capmon workspace check|relocate``: a workspace moved or copied, and inputs that moved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from capmon.cli.common import console, print_json, reported_errors, state

workspace_app = typer.Typer(
    help="The workspace: check the files the catalogue names, relocate moved inputs.",
    no_args_is_help=True,
)


@workspace_app.command("check")
def workspace_check(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the products, declarations and LUTs whose files are missing (exit code 1 if any).

    Paths inside the workspace are stored relative to it, so a moved or copied workspace finds
    its own files; inputs kept elsewhere that moved are fixed with `capmon workspace relocate`."""
    from capmon.workspace import check_workspace

    with reported_errors():
        workspace = state(ctx).workspace()
        missing = check_workspace(workspace)
    if as_json:
        print_json(
            {
                "home": str(workspace.home),
                "missing": [{"kind": m.kind, "name": m.name, "path": m.path} for m in missing],
            }
        )
    elif missing:
        table = Table("kind", "name", "missing path", title=f"Missing files of {workspace.home}")
        for entry in missing:
            table.add_row(entry.kind, entry.name, entry.path)
        console.print(table)
        console.print(
            "Fix moved inputs with: capmon workspace relocate OLD_FOLDER NEW_FOLDER",
            highlight=False,
            markup=False,
        )
    else:
        console.print(f"{workspace.home}: every file the catalogue names is there")
    if missing:
        raise typer.Exit(1)


@workspace_app.command("relocate")
def workspace_relocate(
    ctx: typer.Context,
    old: Annotated[Path, typer.Argument(help="The folder the files were in.")],
    new: Annotated[
        Path | None,
        typer.Argument(
            help="The folder they are in now [default: this workspace, moved from OLD].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Rewrite the catalogue's paths under OLD to NEW: a workspace moved or copied from OLD
    (without NEW), or input products moved to another folder."""
    from capmon.workspace import relocate_workspace

    with reported_errors():
        workspace = state(ctx).workspace()
        changed = relocate_workspace(workspace, old, new)
    console.print(
        f"{changed} path(s) under {old} now point to {new or workspace.home}",
        highlight=False,
        markup=False,
    )
