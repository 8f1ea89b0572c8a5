"""Command groups whose commands are imported only when they are used (start-up, issue 15).

``capmon --help`` lists every command without importing the modules behind them: a
:class:`LazyGroup` knows each command's name and one-line help up front, shows stand-ins made
from them in its own help, and builds the real command (importing its module) only when that
command runs or shows its own help. ``capmon bench startup`` measures the effect.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# click's Context and Command (typer >= 0.2x vendors its own click, hence Any)
Command = Any
Context = Any


@dataclass(frozen=True)
class LazyCommand:
    """A command known by its one-line help; ``load`` imports its module and builds it."""

    help: str
    load: Callable[[], Command]


class LazyGroup(TyperGroup):
    """A typer group whose commands come from :meth:`lazy_commands`, built on first use."""

    _listing = False

    def lazy_commands(self) -> Mapping[str, LazyCommand]:
        """The group's commands by name, in the order ``--help`` lists them."""
        return {}

    def list_commands(self, ctx: Context) -> list[str]:
        lazy = self.lazy_commands()
        return [*lazy, *(name for name in self.commands if name not in lazy)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command:
        lazy = self.lazy_commands().get(cmd_name)
        if lazy is not None and self._listing:
            # the group's own help: a stand-in, so that listing imports nothing
            return TyperCommand(cmd_name, help=lazy.help)
        if lazy is not None and cmd_name not in self.commands:
            self.commands[cmd_name] = lazy.load()
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except Exception as error:  # click's UsageError; typer suggests from built commands only
            message = getattr(error, "message", "")
            if isinstance(message, str) and message.startswith("No such command") and args:
                matches = difflib.get_close_matches(args[0], self.list_commands(ctx))
                if matches and "Did you mean" not in message:
                    suggestions = ", ".join(repr(match) for match in matches)
                    error.message = f"{message.rstrip('.')}. Did you mean {suggestions}?"  # type: ignore[attr-defined]
            raise

    def format_help(self, ctx: Context, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


class ProcessorGroup(LazyGroup):
    """``capmon run``: one command per processor, whose module is imported on first use."""

    def lazy_commands(self) -> Mapping[str, LazyCommand]:
        from capmon.processors.registry import processor_titles

        return {
            key: LazyCommand(title, functools.partial(_processor_command, key))
            for key, title in processor_titles().items()
        }


def _processor_command(processor_id: str) -> Command:
    from capmon.cli.processors import processor_command
    from capmon.processors.registry import get_processor

    scratch = typer.Typer()
    scratch.command(processor_id)(processor_command(get_processor(processor_id)))
    return typer.main.get_group(scratch).commands[processor_id]
