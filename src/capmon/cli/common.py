"""What every command group shares: the workspace options, the console and error reporting."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.table import Table

from capmon.errors import CapmonError

if TYPE_CHECKING:
    from capmon.workspace import Workspace

PIPE_WIDTH = 160
"""Width of tables written to a file or a pipe (no terminal to size them; ``COLUMNS`` wins)."""


class CapmonConsole(Console):
    """A rich console whose tables keep their headers whole and fold long cells rather than
    cutting them with '…', and that is :data:`PIPE_WIDTH` wide, not 80, when its output is
    not a terminal (``capmon jobs list > jobs.txt``), so that tables fit or wrap cleanly."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # rich freezes $COLUMNS at creation (this module's import): read it at each print
        self._width = options.get("width")

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal and not os.environ.get("COLUMNS"):
            return ConsoleDimensions(max(size.width, PIPE_WIDTH), size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def print(self, *objects: Any, **kwargs: Any) -> None:
        for shown in objects:
            if isinstance(shown, Table):
                headers = [min(len(str(column.header)), 24) for column in shown.columns]
                # whole headers when they fit side by side (else rich would crop the table)
                fits = sum(width + 3 for width in headers) + 1 <= self.width
                for column, width in zip(shown.columns, headers, strict=True):
                    if fits:
                        column.min_width = max(column.min_width or 0, width)
                    column.overflow = "fold"
        super().print(*objects, **kwargs)


console = CapmonConsole()
err_console = CapmonConsole(stderr=True)


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


def split_values(values: Sequence[str] | str | None) -> list[str] | None:
    """The values of a multi-valued option given as repeats, comma lists or both
    (``--processors l4a,l4b --processors l4c``): one CLI grammar for every command. None when
    the option was not given."""
    if values is None:
        return None
    given = [values] if isinstance(values, str) else list(values)
    if not given:
        return None
    return [part.strip() for value in given for part in value.split(",") if part.strip()]


def print_json(payload: Any) -> None:
    """Machine-readable output for ``--json`` options."""
    console.print_json(json.dumps(payload, default=str))
