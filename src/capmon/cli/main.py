"""The ``capmon`` command: global options and one sub-command group per module of this package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from capmon import __version__
from capmon.cli import bench, calibrate, declarations, demo, lut, mdb, products, sites, synth
from capmon.cli import evaluate as evaluate_cli
from capmon.cli.acquire import acquire_app
from capmon.cli.common import CliState
from capmon.cli.orchestration import register as register_orchestration
from capmon.cli.practices import practices_app
from capmon.cli.processors import register_processor_commands
from capmon.cli.service import register as register_service

app = typer.Typer(
    name="capmon",
    help="Monitor agricultural parcels for the CAP from Sentinel-1, Sentinel-2 and Landsat.",
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


app.add_typer(sites.site_app, name="site")
app.add_typer(sites.season_app, name="season")
synth.register(app)
app.add_typer(products.products_app, name="products")
app.add_typer(declarations.declarations_app, name="declarations")
app.add_typer(lut.lut_app, name="lut")
app.add_typer(mdb.mdb_app, name="mdb")
app.add_typer(bench.bench_app, name="bench")
app.add_typer(calibrate.calibrate_app, name="calibrate")
app.add_typer(evaluate_cli.eval_app, name="eval")
app.add_typer(practices_app, name="practices")
app.add_typer(acquire_app, name="acquire")
register_processor_commands(app)
demo.register(app)
register_orchestration(app, sites.season_app)
register_service(app)


def main() -> None:
    """Console-script entry point."""
    app()
