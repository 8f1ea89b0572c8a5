"""``capmon run <processor> SITE SEASON [--parameter ...]``, generated from the registry.

Each registered processor becomes a command whose options are the fields of its pydantic
parameter model, so a new processor needs no CLI code. A processor that runs on files
(``Processor.runs_on_files``) also takes ``--out DIR`` (with ``--mdb``, ``--parcels`` and no
SITE), ``--parcel-id-col``, ``--crop-code-col``, ``--start``/``--end``/``--year``,
``--overwrite``. Multi-valued options take comma lists as well as repeats (``--signals B04,B8A``
is ``--signals B04 --signals B8A``); ``--json`` prints the result as one JSON object; a run whose
result reports failed products exits with code 1.
"""

from __future__ import annotations

import inspect
import json
import sys
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from capmon.cli.common import console, err_console, reported_errors, state
from capmon.errors import InputError
from capmon.processors import Processor, RunContext, RunResult
from capmon.processors.labels import parameter_label
from capmon.processors.registry import FilesMode

run_app = typer.Typer(help="Run a processor on a site and season.", no_args_is_help=True)
OPTION_NAMES: Mapping[str, tuple[str, str]] = {"source_names": ("--source", "--source-names")}
"""Parameters whose option has the name other commands give the same concept (``capmon
acquire --source``): the option's name, then the old name, kept as a hidden alias."""


def _option_type(annotation: Any) -> Any:
    """The type typer parses an option as (pydantic validates it afterwards)."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return list[str] | None  # comma lists are split, then pydantic converts each value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _option_type(args[0]) if len(args) == 1 else str
    if origin is typing.Literal:
        return str
    if annotation in (bool, int, float, str):
        return annotation
    return str


def _parameters_of(model: type[BaseModel], processor_id: str = "") -> list[inspect.Parameter]:
    parameters = []
    for name, info in model.model_fields.items():
        option_type = _option_type(info.annotation)
        flag, alias = OPTION_NAMES.get(name, ("--" + name.replace("_", "-"), ""))
        help_text = info.description or ""
        label = parameter_label(processor_id, name)  # the run form's title, and the unit
        if label is not None and help_text.lower().startswith(label.title.lower()):
            # the description starts with the title: say it once, with the unit
            help_text = label.text() + help_text[len(label.title) :]
        elif label is not None:
            help_text = f"{label.text()}: {help_text}" if help_text else label.text()
        default = _default_of(info)
        if info.annotation is bool or info.annotation == (bool | None):
            # bool | None: neither flag given leaves the processor's own choice (None)
            decls = [f"{flag}/--no-{name.replace('_', '-')}"]
            option = typer.Option(*decls, help=help_text)
            parameters.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=Annotated[info.annotation, option],
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
        if alias:
            hidden = typer.Option(alias, hidden=True, help=f"Deprecated name of {flag}.")
            parameters.append(
                inspect.Parameter(
                    f"alias_{name}",
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=Annotated[option_type | None, hidden],
                    default=None,
                )
            )
    return parameters


def _merge_aliases(values: dict[str, Any]) -> None:
    """Move the values given under an old option name (:data:`OPTION_NAMES`) to the new one."""
    for name in OPTION_NAMES:
        old = values.pop(f"alias_{name}", None)
        if old is not None and values.get(name) is None:
            values[name] = old


def _default_of(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return None if info.is_required() else info.default


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return origin in (list, tuple, set, frozenset)


def split_lists(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """The given option values, comma lists of multi-valued options split into items."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        info = model.model_fields.get(name)
        if info is not None and _is_list(info.annotation) and isinstance(value, list | tuple):
            value = [p.strip() for v in value for p in str(v).split(",") if p.strip()]
        out[name] = value
    return out


def _parse(processor: Processor, values: Mapping[str, Any]) -> BaseModel:
    from capmon.processors.files import parse_parameters

    return parse_parameters(processor, split_lists(processor.parameters, values))


def run_processor(
    ctx: typer.Context,
    processor: Processor,
    site: str | None,
    season: str | None,
    values: dict[str, Any],
    *,
    files: FilesMode | None = None,
    as_json: bool = False,
) -> RunResult:
    """Validate the parameters, run ``processor`` with a progress bar and print its result
    (on a site, or on files when ``files`` is given and ``site`` is None)."""
    parameters = _parse(processor, values)
    if files is not None and site is not None:
        raise InputError("--out writes a run on files: give no SITE (or drop --out)")
    if site is None and files is None:
        raise InputError(
            f"give SITE and SEASON, or run on files: capmon run {processor.id} --mdb DIR "
            "--parcels FILE --out DIR"
            if processor.runs_on_files
            else f"capmon run {processor.id} needs a SITE"
        )
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[item]}"),
        console=err_console if as_json else console,
        transient=True,
    ) as bar:
        task = bar.add_task(processor.title, total=1000, item="")

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=int(1000 * min(max(fraction, 0.0), 1.0)), item=message)

        if files is not None:
            from capmon.processors.files import run_on_files

            result = run_on_files(processor.id, parameters, files, progress)
        else:
            from capmon.sites import get_season, get_site

            assert site is not None
            workspace = state(ctx).workspace()
            with workspace.session() as session:
                site_row = get_site(session, site)
                season_row = get_season(session, site_row, season) if season is not None else None
            result = processor.run(
                RunContext(workspace, site_row, season_row, progress), parameters
            )
    where = f"{site}/{season or '-'}" if site is not None else "files"
    if as_json:
        payload = {
            "processor": processor.id,
            "summary": result.summary,
            "figures": dict(result.figures),
            "outputs": dict(result.outputs),
            "failed": failed_products(result),
        }
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        sys.stdout.flush()
        return result
    console.print(f"[bold]{processor.title}[/]: {result.summary}", soft_wrap=True)
    if result.figures:
        table = Table("figure", "value", title=f"{processor.id} on {where}")
        for key, value in result.figures.items():
            shown = json.dumps(value, default=str) if isinstance(value, list | dict) else str(value)
            table.add_row(key, shown)
        console.print(table)
    for name, path in result.outputs.items():
        console.print(f"{name}: {path}", soft_wrap=True, highlight=False, markup=False)
    return result


def failed_products(result: RunResult) -> list[str]:
    """What the run reports as failed: ``RunResult.failed``, else the figures' ``failures``
    list, else ``failed`` products counted in the figures."""
    if result.failed:
        return [str(f) for f in result.failed]
    failures = result.figures.get("failures")
    if isinstance(failures, list) and failures:
        return [str(f) for f in failures]
    count = result.figures.get("failed")
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        return [f"{count} failed"]
    if isinstance(count, list) and count:
        return [str(f) for f in count]
    return []


_FILES_OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "out": (Path | None, None, "Run on files: write the product to this folder (no SITE)."),
    "overwrite": (bool, False, "Replace a non-empty --out folder (once the new product is done)."),
    "parcel_id_col": (str | None, None, "Column of --parcels holding the MDB parcel ids."),
    "crop_code_col": (str | None, None, "Column of --parcels holding the declared crop codes."),
    "start": (str | None, None, "Files: season start YYYY-MM-DD (default: the MDB's first date)."),
    "end": (str | None, None, "Files: season end YYYY-MM-DD (default: the MDB's last date)."),
    "year": (int | None, None, "Files: the season's year (its dates in the MDB)."),
}


def _files_parameters(processor: Processor) -> list[inspect.Parameter]:
    """The options of a run on files that the processor's parameters do not already have."""
    fields = processor.parameters.model_fields
    out = []
    for name, (kind, default, help_text) in _FILES_OPTIONS.items():
        if name in fields:
            continue
        flag = "--" + name.replace("_", "-")
        option = typer.Option(flag, help=help_text, show_default=False)
        out.append(
            inspect.Parameter(
                f"files_{name}",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[kind, option],
                default=default,
            )
        )
    return out


def _files_mode(processor: Processor, values: dict[str, Any]) -> FilesMode | None:
    """The run on files the options ask for (None without ``--out``); pops the files options."""
    own = {name: values.pop(f"files_{name}", None) for name in _FILES_OPTIONS}
    out = own["out"]
    if out is None:
        given = [f"--{k.replace('_', '-')}" for k, v in own.items() if v not in (None, False)]
        if given:
            raise InputError(f"{', '.join(given)}: only for a run on files (with --out DIR)")
        return None

    def day(name: str) -> date | None:
        value = own[name] if own[name] is not None else values.get(name)
        if value is None or isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError as exc:
            raise InputError(f"--{name} must be a date YYYY-MM-DD, not {value!r}") from exc

    return FilesMode(
        out=Path(out).expanduser().absolute(),
        overwrite=bool(own["overwrite"]),
        parcel_id_col=own["parcel_id_col"],
        crop_code_col=own["crop_code_col"],
        start=day("start"),
        end=day("end"),
        year=own["year"],
    )


def processor_command(processor: Processor) -> Callable[..., None]:
    """A typer command running ``processor``, with one option per parameter (and the options
    of a run on files when the processor runs on files)."""

    def command(
        ctx: typer.Context,
        site: str | None = None,
        season: str | None = None,
        json_output: bool = False,
        **values: Any,
    ) -> None:
        with reported_errors():
            _merge_aliases(values)
            files = _files_mode(processor, values) if processor.runs_on_files else None
            if files is None and processor.needs_season and site is not None and season is None:
                raise InputError(f"capmon run {processor.id} SITE SEASON: give the season")
            result = run_processor(
                ctx, processor, site, season, values, files=files, as_json=json_output
            )
        failed = failed_products(result)
        if failed:
            if not json_output:
                err_console.print(
                    f"[bold red]failed:[/] {len(failed)}: " + "; ".join(failed[:20]),
                    highlight=False,
                    soft_wrap=True,
                )
            raise typer.Exit(1)

    optional_site = processor.runs_on_files
    season_help = "Season name." if processor.needs_season else "Season name (optional)."
    site_help = "Site name (none for a run on files: --mdb, --parcels, --out)."
    signature = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter(
            "site",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str | None, typer.Argument(help=site_help, show_default=False)]
            if optional_site
            else Annotated[str, typer.Argument(help="Site name.")],
            default=None if optional_site else inspect.Parameter.empty,
        ),
        inspect.Parameter(
            "season",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, typer.Argument(help=season_help)]
            if processor.needs_season and not optional_site
            else Annotated[str | None, typer.Argument(help=season_help, show_default=False)],
            default=inspect.Parameter.empty
            if processor.needs_season and not optional_site
            else None,
        ),
        inspect.Parameter(
            "json_output",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                bool,
                typer.Option(
                    "--json", help="Print the result (summary, figures, outputs) as JSON."
                ),
            ],
            default=False,
        ),
        *_parameters_of(processor.parameters, processor.id),
        *(_files_parameters(processor) if processor.runs_on_files else []),
    ]
    command.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    command.__doc__ = f"{processor.title} (v{processor.version}). {processor.description}"
    if processor.runs_on_files:
        command.__doc__ += (
            f"\n\nOn files, with no site: capmon run {processor.id} --mdb DIR --parcels FILE "
            "--out DIR [--parcel-id-col COLUMN]."
        )
    return command


def register_processor_commands(app: typer.Typer) -> None:
    """``capmon run <id>`` for every registered processor; each command is built, and its
    processor's module imported, only when it is used (start-up, :mod:`capmon.cli.lazy`)."""
    from capmon.cli.lazy import ProcessorGroup

    app.add_typer(run_app, name="run", cls=ProcessorGroup)
