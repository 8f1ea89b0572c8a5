"""``capmon site`` and ``capmon season`` through the real command line parser."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Polygon, box
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.workspace import Workspace

runner = CliRunner()


def _aoi(tmp_path: Path) -> Path:
    path = tmp_path / "aoi.shp.zip"
    frame = gpd.GeoDataFrame(geometry=[box(4.30, 50.80, 4.40, 50.90)], crs=4326).to_crs(3035)
    frame.to_file(path, driver="ESRI Shapefile")
    return path


def test_site_and_season_commands(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "ws")]
    result = runner.invoke(
        app, [*home, "site", "create", "Demo site", "--aoi", str(_aoi(tmp_path))]
    )
    assert result.exit_code == 0, result.output
    assert "31UES" in result.output
    result = runner.invoke(
        app,
        [
            *home,
            "season",
            "create",
            "Demo site",
            "2024",
            "--start",
            "2023-10-01",
            "--mid",
            "2024-04-01",
            "--end",
            "2024-09-30",
        ],
    )
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, [*home, "site", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert rows[0]["name"] == "Demo site"
    assert rows[0]["short_name"] == "demo_site"
    assert rows[0]["seasons"] == ["2024"]
    seasons = json.loads(
        runner.invoke(app, [*home, "season", "list", "demo_site", "--json"]).output
    )
    assert seasons[0]["mid"] == "2024-04-01"


def test_errors_are_one_line_messages_with_exit_code_2(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "ws")]
    aoi = _aoi(tmp_path)
    assert runner.invoke(app, [*home, "site", "create", "A", "--aoi", str(aoi)]).exit_code == 0
    duplicate = runner.invoke(app, [*home, "site", "create", "A", "--aoi", str(aoi)])
    assert duplicate.exit_code == 2
    assert "already exists" in duplicate.output
    assert "Traceback" not in duplicate.output
    wrong_order = runner.invoke(
        app, [*home, "season", "create", "A", "S", "--start", "2024-10-01", "--end", "2024-01-01"]
    )
    assert wrong_order.exit_code == 2
    assert "must be after its start" in wrong_order.output
    unknown = runner.invoke(
        app, [*home, "season", "create", "B", "S", "--start", "2024-01-01", "--end", "2024-02-01"]
    )
    assert unknown.exit_code == 2
    assert "no site 'B'" in unknown.output
    line = tmp_path / "line.geojson"
    gpd.GeoDataFrame(
        geometry=[Polygon([(4.3, 50.8), (4.4, 50.8), (4.4, 50.9)]).exterior], crs=4326
    ).to_file(line)
    not_polygon = runner.invoke(app, [*home, "site", "create", "L", "--aoi", str(line)])
    assert not_polygon.exit_code == 2
    assert "must be made of polygons" in not_polygon.output


def test_environment_variable_selects_the_workspace(tmp_path: Path) -> None:
    env = {"CAPMON_HOME": str(tmp_path / "env-ws")}
    result = runner.invoke(app, ["site", "create", "E", "--aoi", str(_aoi(tmp_path))], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env-ws" / "catalog.sqlite").exists()


def test_site_and_season_names_that_would_escape_folders_are_refused(workspace: Workspace) -> None:
    from shapely.geometry import box

    from capmon.errors import InputError
    from capmon.sites import SeasonDates, create_season, create_site

    with workspace.session() as session, pytest.raises(InputError, match="not allowed"):
        create_site(session, "../up", box(4.0, 50.0, 4.1, 50.1))
    with workspace.session() as session:
        site = create_site(session, "Flat site", box(4.0, 50.0, 4.1, 50.1))
        with pytest.raises(InputError, match="season name 'a/b' is not allowed"):
            create_season(session, site, "a/b", SeasonDates.parse("2024-01-01", "2024-12-31"))
