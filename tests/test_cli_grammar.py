"""One command-line grammar (issue 19, item 4): every command's ``--help`` is walked and
checked (no ``<bool>``, strftime patterns or stray spaces; multi-valued options shown as comma
lists), multi-valued options take comma lists and repeats, one option name per concept, every
listing has ``--json``, and tables written to a pipe keep whole headers and cells."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import typer
from shapely.geometry import box
from typer.testing import CliRunner

from capmon.catalog.models import StartType
from capmon.cli.main import app
from capmon.orchestrator import jobs
from capmon.sites import get_site
from capmon.workspace import open_workspace

runner = CliRunner()
LISTINGS = ("list", "show", "status", "sources", "info")


def _commands() -> Iterator[tuple[list[str], Any]]:
    root = typer.main.get_command(app)

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        if hasattr(command, "list_commands"):
            context = command.context_class(command)
            for name in command.list_commands(context):
                yield from walk(command.get_command(context, name), [*path, name])
        else:
            yield path, command

    yield from walk(root, [])


COMMANDS = list(_commands())


def _help(path: list[str]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, (path, result.output)
    return result.output


@pytest.mark.parametrize("path", [[]] + [p for p, _ in COMMANDS], ids=" ".join)
def test_help_has_no_placeholders_or_stray_spaces(path: list[str]) -> None:
    text = _help(path)
    assert "<bool>" not in text
    assert "%Y" not in text
    assert "%m" not in text
    # rich markup used to eat "[default: ...]" and leave "folder ." behind
    assert not re.search(r"\w \.( |$)", text, re.MULTILINE), text
    assert " ," not in text
    assert "[default: None]" not in text


def test_the_commands_are_all_walked() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    for expected in ("season run", "lut import", "run l4c", "acquire run", "jobs list"):
        assert expected in names


@pytest.mark.parametrize(
    ("path", "command"), [c for c in COMMANDS if c[0][-1] in LISTINGS], ids=lambda v: str(v)
)
def test_every_listing_has_json(path: list[str], command: Any) -> None:
    if path == ["jobs", "logs"]:
        pytest.skip("a log is text")
    assert any("--json" in p.opts for p in command.params), path


def test_multi_valued_options_show_comma_lists() -> None:
    for path, command in COMMANDS:
        for param in command.params:
            if getattr(param, "multiple", False) and not getattr(param, "hidden", False):
                shown = param.display_type_rich(None)
                assert shown is not None, (path, param.opts)
                assert shown.endswith(",...>"), (path, param.opts, shown)


def test_one_option_name_per_concept() -> None:
    """The data sources file and the source names have one name in `capmon acquire` and in
    `capmon run acquire`; the old names are hidden aliases."""
    by_path = {" ".join(path): command for path, command in COMMANDS}
    for name in ("acquire run", "run acquire"):
        shown = {
            opt for p in by_path[name].params if not getattr(p, "hidden", False) for opt in p.opts
        }
        assert {"--sources-file", "--source"} <= shown, name
        assert not {"--sources", "--source-names"} & shown, name
        help_text = _help(name.split())
        assert "--sources-file" in help_text
        assert "--source-names" not in help_text


def test_old_option_names_still_work(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "ws")]
    missing = tmp_path / "nowhere.toml"
    for option in ("--sources", "--sources-file"):
        result = runner.invoke(app, [*home, "acquire", "sources", option, str(missing)])
        assert result.exit_code == 2, result.output
        assert "nowhere.toml" in result.output


def _site(tmp_path: Path) -> list[str]:
    home = ["--home", str(tmp_path / "ws")]
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box(2.9, 50.45, 3.3, 50.7)], crs=4326).to_file(aoi)
    result = runner.invoke(app, [*home, "site", "create", "grammar", "--aoi", str(aoi)])
    assert result.exit_code == 0, result.output
    return home


def test_parcel_id_columns_take_a_comma_list(tmp_path: Path) -> None:
    home = _site(tmp_path)
    frame = gpd.GeoDataFrame(
        {"Journalnr": ["J1", "J1", "J2"], "Marknr": ["1", "2", "1"], "crop": [11, 12, 11]},
        geometry=[
            box(500_000 + i * 200, 5_600_000, 500_100 + i * 200, 5_600_100) for i in range(3)
        ],
        crs=32631,
    )
    path = tmp_path / "decl.gpkg"
    frame.to_file(path)
    args = [*home, "declarations", "import", "grammar", "2024", str(path), "--json"]
    crop = ["--crop-code-col", "crop"]
    comma = runner.invoke(app, [*args, "--parcel-id-col", "Journalnr,Marknr", *crop])
    assert comma.exit_code == 0, comma.output
    assert json.loads(comma.stdout)["counts"]["imported"] == 3
    repeated = runner.invoke(
        app,
        [*args, "--parcel-id-col", "Journalnr", "--parcel-id-col", "Marknr",
         "--crop-code-col", "crop", "--mode", "replace"],
    )  # fmt: skip
    assert repeated.exit_code == 0, repeated.output
    workspace = open_workspace(tmp_path / "ws")
    try:
        from capmon.parcels import load_parcels

        ids = sorted(load_parcels(workspace, "grammar", 2024)["ori_id"])
    finally:
        workspace.dispose()
    assert ids == ["J1-1", "J1-2", "J2-1"]


def test_user_sites_take_a_comma_list(tmp_path: Path) -> None:
    home = _site(tmp_path)
    aoi = tmp_path / "aoi.gpkg"
    assert runner.invoke(app, [*home, "site", "create", "other", "--aoi", str(aoi)]).exit_code == 0
    added = runner.invoke(
        app,
        [*home, "user", "add", "ana", "--role", "viewer", "--site", "grammar,other",
         "--password-stdin"],
        input="a long enough password\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, [*home, "user", "list", "--json"])
    (user,) = json.loads(listed.stdout)
    assert sorted(user["sites"]) == ["grammar", "other"]


def test_tables_keep_whole_headers_and_cells_in_a_pipe(tmp_path: Path) -> None:
    home = _site(tmp_path)
    workspace = open_workspace(tmp_path / "ws")
    try:
        with workspace.session() as session:
            site = get_site(session, "grammar")
        job_id = jobs.create_job(workspace, "season", site, None, StartType.REQUESTED, {})
        jobs.set_job_progress(workspace, job_id, 0.999, "extraction: 999/1000 products")
    finally:
        workspace.dispose()
    listed = runner.invoke(app, [*home, "jobs", "list"], env={"COLUMNS": ""})
    assert listed.exit_code == 0, listed.output
    assert "…" not in listed.output
    for header in ("processor", "progress", "submitted", "message"):
        assert header in listed.output
    assert "extraction: 999/1000 products" in listed.output
    # a job that has not ended is never shown as 100 %
    assert "99 %" in listed.output
    assert "100 %" not in listed.output
