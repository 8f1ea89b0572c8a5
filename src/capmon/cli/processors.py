"""``capmon run <processor> SITE SEASON [--parameter ...]``, generated from the registry.

Each registered processor becomes a command whose options are the fields of its pydantic
parameter model, so a new processor needs no CLI code.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from capmon.cli.common import console, reported_errors, state
from capmon.errors import InputError
from capmon.processors import Processor, RunContext, RunResult, all_processors
from capmon.sites import get_season, get_site

run_app = typer.Typer(help="Run a processor on a site and season.", no_args_is_help=True)


def _option_type(annotation: Any) -> Any:
    """The type typer parses an option as (pydantic validates it afterwards)."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        (inner, *_rest) = typing.get_args(annotation) or (str,)
        return list[_option_type(inner)] | None  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _option_type(args[0]) if len(args) == 1 else str
    if origin is typing.Literal:
        return str
    if annotation in (bool, int, float, str):
        return annotation
    return str


def _parameters_of(model: type[BaseModel]) -> list[inspect.Parameter]:
    parameters = []
    for name, info in model.model_fields.items():
        option_type = _option_type(info.annotation)
        flag = "--" + name.replace("_", "-")
        help_text = info.description or ""
        default = _default_of(info)
        if info.annotation is bool:
            decls = [f"{flag}/--no-{name.replace('_', '-')}"]
            option = typer.Option(*decls, help=help_text)
            parameters.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=Annotated[bool, option],
                    default=default,
                )
            )
            continue
        shown = "" if default is None else f" [default: {default}]"
        option = typer.Option(flag, help=help_text + shown, show_default=False)
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[option_type | None, option],
                default=None,
            )
        )
    return parameters


def _default_of(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return None if info.is_required() else info.default


def run_processor(
    ctx: typer.Context, processor: Processor, site: str, season: str | None, values: dict[str, Any]
) -> RunResult:
    """Validate the parameters, run ``processor`` with a progress bar and print its result."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        parameters = processor.parse_parameters(given)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        raise InputError(f"invalid parameters for {processor.id}: {problems}") from exc
    workspace = state(ctx).workspace()
    with workspace.session() as session:
        site_row = get_site(session, site)
        season_row = get_season(session, site_row, season) if season is not None else None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[item]}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(processor.title, total=1000, item="")

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=int(1000 * min(max(fraction, 0.0), 1.0)), item=message)

        result = processor.run(RunContext(workspace, site_row, season_row, progress), parameters)
    console.print(f"[bold]{processor.title}[/]: {result.summary}")
    if result.figures:
        table = Table("figure", "value", title=f"{processor.id} on {site}/{season or '-'}")
        for key, value in result.figures.items():
            shown = json.dumps(value) if isinstance(value, list | dict) else str(value)
            table.add_row(key, shown)
        console.print(table)
    for name, path in result.outputs.items():
        console.print(f"{name}: {path}")
    return result


def processor_command(processor: Processor) -> Callable[..., None]:
    """A typer command running ``processor``, with one option per parameter."""

    def command(ctx: typer.Context, site: str, season: str | None = None, **values: Any) -> None:
        with reported_errors():
            run_processor(ctx, processor, site, season, values)

    season_help = "Season name." if processor.needs_season else "Season name (optional)."
    signature = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter(
            "site",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, typer.Argument(help="Site name.")],
        ),
        inspect.Parameter(
            "season",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, typer.Argument(help=season_help)]
            if processor.needs_season
            else Annotated[str | None, typer.Argument(help=season_help)],
            default=inspect.Parameter.empty if processor.needs_season else None,
        ),
        *_parameters_of(processor.parameters),
    ]
    command.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    command.__doc__ = f"{processor.title} (v{processor.version}). {processor.description}"
    return command


def register_processor_commands(app: typer.Typer) -> None:
    """``capmon run <id>`` for every registered processor."""
    for processor in all_processors():
        run_app.command(processor.id)(processor_command(processor))
    app.add_typer(run_app, name="run")
