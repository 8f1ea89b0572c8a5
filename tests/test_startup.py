"""Start-up of the command line (issue 15): help and light commands import no heavy library.

Each command runs in a fresh interpreter and reports the modules it imported; nothing is
timed here (``capmon bench startup`` measures the seconds).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import inspect as inspect_db
from sqlalchemy import text
from typer.core import TyperGroup
from typer.testing import CliRunner

from capmon.catalog.db import alembic_config, head_revision, migrate
from capmon.cli.main import COMMANDS, app
from capmon.processors import registry
from capmon.workspace import Workspace

# libraries that neither help nor a catalogue listing needs
ANALYSIS = (
    "geopandas", "rasterio", "pyogrio", "pyproj", "pandas", "scipy", "pyarrow", "duckdb",
    "sklearn", "lightgbm", "dask", "distributed", "fastapi", "uvicorn",
)  # fmt: skip
# ... and the catalogue's own, which help does not need either
CATALOGUE = ("sqlalchemy", "alembic", "shapely", "numpy")

SCRIPT = """
import json, sys
from capmon.cli.main import app
code = 0
try:
    app(sys.argv[2:], prog_name="capmon")
except SystemExit as exit:
    code = exit.code or 0
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def _imported(tmp_path: Path, *args: str) -> set[str]:
    """The modules a fresh ``capmon ARGS`` imported (it must succeed)."""
    report = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPMON_")}
    env.update(CAPMON_HOME=str(tmp_path / "home"), COLUMNS="100")
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(report.read_text())
    assert result["code"] == 0, completed.stdout + completed.stderr
    return set(result["modules"])


def _heavy(modules: set[str], libraries: tuple[str, ...]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(libraries))


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("run", "--help")], ids=" ".join)
def test_help_imports_no_heavy_library(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules = _imported(tmp_path, *args)
    assert _heavy(modules, ANALYSIS + CATALOGUE) == []
    builtin = {module for _title, module in registry.BUILTIN_PROCESSORS.values()}
    assert sorted(builtin & modules) == []


@pytest.mark.parametrize(
    "args", [("site", "list"), ("site", "--help"), ("jobs", "list")], ids=" ".join
)
def test_catalogue_listings_import_only_the_catalogue(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    modules = _imported(tmp_path, *args)
    assert _heavy(modules, ANALYSIS) == []
    assert "sqlalchemy" in modules  # the catalogue's commands


def test_an_up_to_date_catalogue_is_opened_without_alembic(tmp_path: Path) -> None:
    assert "alembic" in _imported(tmp_path, "site", "list")  # creates the catalogue
    assert "alembic" not in _imported(tmp_path, "site", "list")


def test_the_head_revision_is_alembic_s(workspace: Workspace) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(workspace.engine)).get_current_head()
    assert head_revision() == head


def test_an_older_catalogue_is_still_upgraded(workspace: Workspace) -> None:
    """The check that skips Alembic on a current catalogue still upgrades an older one."""
    with workspace.engine.begin() as connection:
        connection.execute(text("DROP TABLE download_history"))
        connection.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    migrate(workspace.engine)
    assert "download_history" in inspect_db(workspace.engine).get_table_names()
    with workspace.engine.connect() as connection:
        stored = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert stored == head_revision()


def test_one_processor_is_imported_alone(tmp_path: Path) -> None:
    modules = _imported(tmp_path, "run", "mdb", "--help")
    assert "capmon.processors.mdb_extract" in modules
    others = {m for key, (_t, m) in registry.BUILTIN_PROCESSORS.items() if key != "mdb"}
    assert sorted(others & modules) == []


def _first_paragraph(command: Any) -> str:
    text = inspect.cleandoc(command.short_help or command.help or "")
    return " ".join(text.split("\n\n")[0].split())


def test_the_command_table_lists_every_command_with_its_own_help() -> None:
    group = typer.main.get_group(app)
    ctx = typer.Context(group)
    names = group.list_commands(ctx)
    assert names == list(COMMANDS)
    assert {"site", "season", "run", "mdb", "jobs", "serve", "user", "demo"} <= set(names)
    for name in names:
        command = group.get_command(ctx, name)
        assert command is not None, name
        assert _first_paragraph(command) == COMMANDS[name].help, name
    season = group.get_command(ctx, "season")
    assert isinstance(season, TyperGroup)
    assert {"create", "list", "run", "schedule"} <= set(season.list_commands(ctx))


def test_the_processor_table_matches_the_registrations() -> None:
    """``BUILTIN_PROCESSORS`` names each builtin processor with the title and module that
    register it (checked in a fresh interpreter, module by module)."""
    script = (
        "import importlib, json\n"
        "from capmon.processors import registry\n"
        "found = {}\n"
        "for module in registry._BUILTIN_MODULES:\n"
        "    before = set(registry._REGISTRY)\n"
        "    importlib.import_module(module)\n"
        "    for key in set(registry._REGISTRY) - before:\n"
        "        found[key] = [registry._REGISTRY[key].title, module]\n"
        "print(json.dumps(found))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    found = {k: tuple(v) for k, v in json.loads(completed.stdout).items()}
    assert found == dict(registry.BUILTIN_PROCESSORS)


def test_run_lists_the_processors_and_builds_each_command() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "120"})
    assert listing.exit_code == 0, listing.output
    for key, (title, _module) in registry.BUILTIN_PROCESSORS.items():
        assert key in listing.output
        assert title in listing.output
    l4b = runner.invoke(app, ["run", "l4b", "--help"], env={"COLUMNS": "120"})
    assert l4b.exit_code == 0, l4b.output
    assert "L4B grassland mowing (v" in l4b.output
    assert "--method" in l4b.output
    unknown = runner.invoke(app, ["run", "l4z", "site", "2024"])
    assert unknown.exit_code == 2
    assert "No such command 'l4z'. Did you mean 'l4" in " ".join(unknown.output.split())
    typo = runner.invoke(app, ["sit", "list"])
    assert typo.exit_code == 2
    assert "Did you mean 'site'?" in typo.output


def test_get_processor_knows_every_processor() -> None:
    ids = [p.id for p in registry.all_processors()]
    assert set(registry.BUILTIN_PROCESSORS) <= set(ids)
    for key in ids:
        assert registry.get_processor(key).id == key
    assert set(registry.processor_titles()) == set(ids)
    with pytest.raises(LookupError, match="no processor 'l4z'"):
        registry.get_processor("l4z")
