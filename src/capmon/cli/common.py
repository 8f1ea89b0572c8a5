"""What every command group shares: the workspace options, the console and error reporting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from capmon.errors import CapmonError

if TYPE_CHECKING:
    from capmon.workspace import Workspace

console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    """Options given before the command (``capmon --home DIR ...``)."""

    home: Path | None = None
    database_url: str | None = None
    _workspace: Workspace | None = None

    def workspace(self) -> Workspace:
        """The workspace, opened (and migrated) on first use."""
        if self._workspace is None:
            from capmon.workspace import open_workspace  # the catalogue: not needed for --help

            self._workspace = open_workspace(self.home, self.database_url)
        return self._workspace

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.dispose()
            self._workspace = None


def state(ctx: typer.Context) -> CliState:
    """The :class:`CliState` of the running command."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a :class:`CapmonError` into a one-line message and exit code 2."""
    try:
        yield
    except CapmonError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc


def print_json(payload: Any) -> None:
    """Machine-readable output for ``--json`` options."""
    console.print_json(json.dumps(payload, default=str))
