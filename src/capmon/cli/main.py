"""The ``capmon`` command: global options and one sub-command group per module of this package.

Start-up stays light (issue 15; ``capmon bench startup``): this module imports no domain
module. Every top-level command is listed in :data:`COMMANDS` with its one-line help, and its
module is imported only when the command runs or shows its own help, so ``capmon --help`` does
not pay for geopandas, rasterio or scikit-learn, and ``capmon site list`` pays only for the
catalogue.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import typer

from capmon import __version__
from capmon.cli.common import CliState
from capmon.cli.lazy import Command, LazyCommand, LazyGroup

Wiring = Callable[[typer.Typer], None]


def _synth(app: typer.Typer) -> None:
    from capmon.cli import synth

    synth.register(app)


def _demo(app: typer.Typer) -> None:
    from capmon.cli import demo

    demo.register(app)


def _orchestration(app: typer.Typer) -> None:
    from capmon.cli import orchestration, sites

    orchestration.register(app, sites.season_app)


def _service(app: typer.Typer) -> None:
    from capmon.cli import service

    service.register(app)


def _site(app: typer.Typer) -> None:
    from capmon.cli import sites

    app.add_typer(sites.site_app, name="site")


def _season(app: typer.Typer) -> None:
    from capmon.cli import sites

    _wired(_orchestration)  # adds `season run` and `season schedule` to the season group
    app.add_typer(sites.season_app, name="season")


def _products(app: typer.Typer) -> None:
    from capmon.cli import products

    app.add_typer(products.products_app, name="products")


def _declarations(app: typer.Typer) -> None:
    from capmon.cli import declarations

    app.add_typer(declarations.declarations_app, name="declarations")


def _workspace(app: typer.Typer) -> None:
    from capmon.cli import workspace

    app.add_typer(workspace.workspace_app, name="workspace")


def _lut(app: typer.Typer) -> None:
    from capmon.cli import lut

    app.add_typer(lut.lut_app, name="lut")


def _mdb(app: typer.Typer) -> None:
    from capmon.cli import mdb

    app.add_typer(mdb.mdb_app, name="mdb")


def _bench(app: typer.Typer) -> None:
    from capmon.cli import bench

    app.add_typer(bench.bench_app, name="bench")


def _calibrate(app: typer.Typer) -> None:
    from capmon.cli import calibrate

    app.add_typer(calibrate.calibrate_app, name="calibrate")


def _eval(app: typer.Typer) -> None:
    from capmon.cli import evaluate

    app.add_typer(evaluate.eval_app, name="eval")


def _train(app: typer.Typer) -> None:
    from capmon.cli import train

    app.add_typer(train.train_app, name="train")


def _practices(app: typer.Typer) -> None:
    from capmon.cli.practices import practices_app

    app.add_typer(practices_app, name="practices")


def _acquire(app: typer.Typer) -> None:
    from capmon.cli.acquire import acquire_app

    app.add_typer(acquire_app, name="acquire")


def _run(app: typer.Typer) -> None:
    from capmon.cli.processors import register_processor_commands

    register_processor_commands(app)


@functools.cache
def _wired(wiring: Wiring) -> typer.Typer:
    """A scratch app with one module's commands (wired once: some add to shared groups)."""
    scratch = typer.Typer()
    wiring(scratch)
    return scratch


def _loader(wiring: Wiring, name: str) -> Callable[[], Command]:
    return lambda: typer.main.get_group(_wired(wiring)).commands[name]


# name, one-line help (the first paragraph of the command's own help; a test keeps them equal)
# and the function that adds the command to an app, in the order `capmon --help` lists them
_TABLE: tuple[tuple[str, str, Wiring], ...] = (
    (
        "synth",
        "Generate a synthetic farm landscape and its Sentinel-1/2 season with the ground truth.",
        _synth,
    ),
    ("demo", "Create a workspace and run every stage of capmon on a synthetic season.", _demo),
    (
        "watch",
        "Pick up new products as they arrive: register them, extract only what is new and run "
        "the processors that are due (a product dated before a processor's last run makes it run "
        "again). Runs until interrupted (service mode), or once with --once.",
        _orchestration,
    ),
    (
        "worker",
        "Start a Dask worker for a scheduler (a wrapper of ``dask worker``); the worker needs "
        "capmon installed and the workspace's files at the same paths (a shared file system).",
        _orchestration,
    ),
    (
        "serve",
        "Serve the OGC API - Processes, the STAC API, the map tiles and the web UI.",
        _service,
    ),
    ("site", "Sites: named areas of interest.", _site),
    ("season", "Seasons of a site.", _season),
    (
        "products",
        "Input products (Sentinel-2 L2A, Landsat C2 L2, Sentinel-1, STAC items).",
        _products,
    ),
    (
        "declarations",
        "Declarations (GSAA/LPIS parcels): versioned import per site and year.",
        _declarations,
    ),
    ("lut", "Crop look-up tables (Sen4CAP LUT or EuroCrops HCAT mapping) per site and year.", _lut),
    (
        "workspace",
        "The workspace: check the files the catalogue names, relocate moved inputs.",
        _workspace,
    ),
    ("mdb", "The markers database (MDB).", _mdb),
    ("bench", "Benchmarks of the extraction engine and the MDB.", _bench),
    ("calibrate", "Calibrate processors on labelled data.", _calibrate),
    ("eval", "Score products against reference data.", _eval),
    ("train", "Train models on reference data.", _train),
    (
        "practices",
        "L4C practice tables (CatchCrop, Fallow, NFC, NA CSVs) and L4C configs per site and year.",
        _practices,
    ),
    (
        "acquire",
        "Find and download a season's input products from STAC APIs (capmon acquire SITE "
        "SEASON), show the download history (capmon acquire status SITE) or the sources.",
        _acquire,
    ),
    ("run", "Run a processor on a site and season.", _run),
    ("jobs", "Jobs: orchestrated runs, their tasks, steps and logs.", _orchestration),
    ("user", "Users of the service: roles and the sites they may see.", _service),
)

COMMANDS: Mapping[str, LazyCommand] = {
    name: LazyCommand(help_text, _loader(wiring, name)) for name, help_text, wiring in _TABLE
}


class CapmonGroup(LazyGroup):
    """The ``capmon`` group: the commands of :data:`COMMANDS`, imported on first use."""

    def lazy_commands(self) -> Mapping[str, LazyCommand]:
        return COMMANDS


app = typer.Typer(
    name="capmon",
    help="Monitor agricultural parcels for the CAP from Sentinel-1, Sentinel-2 and Landsat.",
    cls=CapmonGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"capmon {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="CAPMON_HOME",
            help="Workspace folder [default: ~/.capmon].",
            show_default=False,
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="CAPMON_DATABASE_URL",
            help="Catalogue database URL [default: SQLite file in the workspace].",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """capmon: CAP monitoring from Sentinel-1, Sentinel-2 and Landsat."""
    cli_state = CliState(home=home, database_url=database_url)
    ctx.obj = cli_state
    ctx.call_on_close(cli_state.close)


def main() -> None:
    """Console-script entry point."""
    app()
