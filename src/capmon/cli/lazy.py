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
from rich.markup import escape
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
            self.commands[cmd_name] = tidy_help(lazy.load())
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
        tidy_help(self, recursive=False)
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def tidy_help(command: Command, *, recursive: bool = True) -> Command:
    """One look for every ``--help`` (issue 19): flags show no ``<bool>``, dates show
    ``<YYYY-MM-DD>`` rather than a strftime pattern, and help texts keep their brackets
    (``[default: ...]`` is not read as rich markup, which dropped it and left a stray space).
    Returns ``command``, tidied in place (and its sub-commands when ``recursive``)."""
    if getattr(command, "_capmon_tidy", False):
        return command
    params = list(getattr(command, "params", []))
    helper = _help_option(command)
    if helper is not None:
        params.append(helper)
    for param in params:
        text = getattr(param, "help", None)
        if isinstance(text, str):
            param.help = escape(text)
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.display_type_rich = _no_type
        elif _is_date(param):
            param.display_type_rich = _date_type
        elif getattr(param, "multiple", False):
            param.display_type_rich = _list_type(param)
    if isinstance(getattr(command, "help", None), str):
        command.help = escape(command.help)
    command._capmon_tidy = True
    if recursive:
        for sub in getattr(command, "commands", {}).values():
            tidy_help(sub)
    return command


def _help_option(command: Command) -> Any:
    getter = getattr(command, "get_help_option", None)
    context_class = getattr(command, "context_class", None)
    if getter is None or context_class is None:
        return None
    return getter(context_class(command))


def _is_date(param: Any) -> bool:
    descriptor = getattr(param, "type_descriptor", None)
    return bool(descriptor is not None and descriptor.is_datetime)


def _list_type(param: Any) -> Callable[[Context], str]:
    """``<str,...>``: a multi-valued option takes comma lists (and repeats)."""
    shown = str(param.display_type_rich(None)).strip("<>")
    inner = shown.removeprefix("list[").removesuffix("]")

    def display(ctx: Context) -> str:
        return f"<{inner},...>"

    return display


def _no_type(ctx: Context) -> None:
    return None


def _date_type(ctx: Context) -> str:
    return "<YYYY-MM-DD>"


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
