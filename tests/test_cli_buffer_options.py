"""The inward parcel buffer has one name in every command (issue 15, defect 7).

``capmon run mdb`` / ``capmon mdb extract`` call them ``--optical-buffer-m`` and
``--sar-buffer-m`` (the MDB extraction's parameters); every other command that buffers the
parcels uses the same names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from capmon.cli.bench import bench_app
from capmon.cli.main import app

BUFFER_OPTIONS = {"--optical-buffer-m", "--sar-buffer-m"}


def _options(command: Any, ctx: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every option of ``command`` and of its sub-commands, with the command's path."""
    for param in command.params:
        if param.param_type_name == "option":
            yield path, param
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            yield from _options(sub, typer.Context(sub, parent=ctx), f"{path} {name}")


def test_buffer_options_have_the_mdb_extraction_names() -> None:
    root = typer.main.get_group(app)
    found: dict[str, set[str]] = {}
    for path, option in _options(root, typer.Context(root), "capmon"):
        names = [n for n in (*option.opts, *option.secondary_opts) if "buffer" in n]
        if names and not option.hidden:
            found.setdefault(path, set()).update(names)
    assert {path: names - BUFFER_OPTIONS for path, names in found.items()} == {
        path: set() for path in found
    }
    assert found["capmon run mdb"] == BUFFER_OPTIONS
    assert found["capmon mdb extract"] == BUFFER_OPTIONS
    assert found["capmon bench extract"] == {"--optical-buffer-m"}


def test_the_old_bench_option_still_works_and_says_so() -> None:
    runner = CliRunner()
    new = runner.invoke(bench_app, ["extract", "--optical-buffer-m", "-1"])
    assert new.exit_code == 2
    assert "--optical-buffer-m is an inward buffer in metres, >= 0" in new.output
    old = runner.invoke(bench_app, ["extract", "--buffer", "-1"])
    assert old.exit_code == 2
    assert "--buffer is deprecated: use --optical-buffer-m" in old.output
    assert "--optical-buffer-m is an inward buffer in metres, >= 0" in old.output
