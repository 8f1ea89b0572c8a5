"""``capmon products ingest`` and ``capmon products list`` through the real command line parser."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
from shapely.geometry import box
from typer.testing import CliRunner

from capmon.cli.main import app
from tests.test_sources_helpers import landsat_product, maja_product, s1_amplitude, sen2cor_product

runner = CliRunner()


def _site(tmp_path: Path, home: list[str]) -> None:
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box(4.40, 51.40, 4.50, 51.46)], crs=4326).to_file(aoi)
    result = runner.invoke(app, [*home, "site", "create", "Antwerp", "--aoi", str(aoi)])
    assert result.exit_code == 0, result.output


def test_ingest_and_list(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "ws")]
    _site(tmp_path, home)
    inputs = tmp_path / "inputs"
    s2 = sen2cor_product(inputs, fmt="cog").path
    landsat_product(inputs / "landsat")
    s1 = s1_amplitude(inputs)
    result = runner.invoke(app, [*home, "products", "ingest", "Antwerp", str(inputs)])
    assert result.exit_code == 0, result.output
    assert "3 registered, 0 already known" in result.output

    again = runner.invoke(app, [*home, "products", "ingest", "Antwerp", str(inputs), "--json"])
    assert again.exit_code == 0, again.output
    payload = json.loads(again.output)
    assert payload["summary"]["known"] == 3
    assert {p["status"] for p in payload["products"]} == {"known"}

    listed = runner.invoke(app, [*home, "products", "list", "Antwerp", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [row["name"] for row in rows] == [
        "LC09_L2SP_198025_20240503_20240504_02_T1",
        s2.stem,
        s1.stem,
    ]
    assert rows[1]["tile"] == "31UFS"
    assert rows[2]["polarisation"] == "VV"
    only_s1 = runner.invoke(
        app, [*home, "products", "list", "Antwerp", "--type", "s1_amp", "--json"]
    )
    assert [row["name"] for row in json.loads(only_s1.output)] == [s1.stem]
    table = runner.invoke(app, [*home, "products", "list", "Antwerp"])
    assert table.exit_code == 0, table.output
    assert "198025" in table.output


def test_bad_products_are_reported_and_do_not_stop_the_others(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "ws")]
    _site(tmp_path, home)
    inputs = tmp_path / "inputs"
    sen2cor_product(inputs, fmt="cog")
    broken = maja_product(inputs).path
    next(broken.glob("*_FRE_B8A.tif")).write_bytes(b"garbage")
    result = runner.invoke(
        app, [*home, "products", "ingest", "Antwerp", str(inputs), "--no-recursive", "--json"]
    )
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert payload["summary"]["registered"] == 1
    assert payload["summary"]["failed"] == 1
    (failure,) = [p for p in payload["products"] if p["status"] == "failed"]
    assert "band B8A" in failure["reason"]
    assert broken.name in failure["reason"]


def test_unknown_site_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["--home", str(tmp_path / "ws"), "products", "ingest", "Nowhere", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no site 'Nowhere'" in result.output
