"""``capmon declarations ...`` and ``capmon lut ...`` through the real command line parser."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
from shapely.geometry import box
from typer.testing import CliRunner

from capmon.cli.main import app

runner = CliRunner()
LUT = (
    "ori_crop,ctnum,ct,lc,ctnuml4a,ctl4a,ctnumdiv,eaa,al,pgrass,tgrass,fallow,cwater\n"
    "11,1,Wheat,1,1,Cereals,1,1,1,0,0,0,0\n"
    "12,2,Barley,1,1,Cereals,2,1,1,0,0,0,0\n"
)


def _files(tmp_path: Path) -> tuple[list[str], Path]:
    home = ["--home", str(tmp_path / "ws")]
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box(2.9, 50.45, 3.3, 50.7)], crs=4326).to_file(aoi)
    result = runner.invoke(app, [*home, "site", "create", "Cli site", "--aoi", str(aoi)])
    assert result.exit_code == 0, result.output
    frame = gpd.GeoDataFrame(
        {"pid": ["a", "b", "c"], "farm": ["F", "F", "G"], "crop": [11, 12, 13]},
        geometry=[
            box(500_000 + i * 200, 5_600_000, 500_100 + i * 200, 5_600_100) for i in range(3)
        ],
        crs=32631,
    )
    shapefile = tmp_path / "decl.shp"
    frame.to_file(shapefile)
    return home, shapefile


def test_import_list_show(tmp_path: Path) -> None:
    home, shapefile = _files(tmp_path)
    args = [*home, "declarations", "import", "Cli site", "2024", str(shapefile)]
    columns = ["--parcel-id-col", "pid", "--holding-id-col", "farm", "--crop-code-col", "crop"]
    result = runner.invoke(app, [*args, *columns])
    assert result.exit_code == 0, result.output
    assert "Stored version 1 of Cli site 2024: 3 parcels" in result.output
    assert "new parcels" in result.output
    again = runner.invoke(app, [*args, *columns, "--mode", "replace", "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.output)
    assert report["version"] == 2
    assert report["mode"] == "replace"
    assert report["counts"]["inserted"] == 3
    listed = runner.invoke(app, [*home, "declarations", "list", "Cli site", "--json"])
    assert [(s["version"], s["mode"]) for s in json.loads(listed.output)] == [
        (1, "update"),
        (2, "replace"),
    ]
    shown = runner.invoke(
        app, [*home, "declarations", "show", "Cli site", "2024", "--version", "1", "--json"]
    )
    assert json.loads(shown.output)["version"] == 1
    table = runner.invoke(app, [*home, "declarations", "show", "cli_site", "2024"])
    assert table.exit_code == 0, table.output
    assert "rows in the parcels table" in table.output

    lut = tmp_path / "lut.csv"
    lut.write_text(LUT, encoding="utf-8")
    imported = runner.invoke(app, [*home, "lut", "import", "Cli site", "2024", str(lut)])
    assert imported.exit_code == 0, imported.output
    assert "missing" in imported.output
    assert "│ 13 " in imported.output  # the declared code the LUT lacks, listed in a table
    shown_lut = runner.invoke(app, [*home, "lut", "show", "Cli site", "2024", "--json"])
    payload = json.loads(shown_lut.output)
    assert [r["ori_crop"] for r in payload["rows"]] == [11, 12]
    assert payload["report"]["crop_codes"]["missing_codes"] == [{"code": "13", "parcels": 1}]
    printed = runner.invoke(app, [*home, "lut", "show", "Cli site", "2024"])
    assert "Barley" in printed.output
    listed_luts = runner.invoke(app, [*home, "lut", "list", "Cli site"])
    assert "sen4cap" in listed_luts.output


def test_errors_are_one_line_messages_naming_the_problem(tmp_path: Path) -> None:
    home, shapefile = _files(tmp_path)
    args = [*home, "declarations", "import", "Cli site", "2024", str(shapefile)]
    unknown = runner.invoke(app, [*args, "--parcel-id-col", "PARCEL", "--crop-code-col", "crop"])
    assert unknown.exit_code == 2
    assert "no parcel id column 'PARCEL'" in unknown.output
    assert "Available columns: pid, farm, crop" in unknown.output
    no_site = runner.invoke(
        app,
        [*home, "declarations", "import", "Elsewhere", "2024", str(shapefile),
         "--parcel-id-col", "pid", "--crop-code-col", "crop"],
    )  # fmt: skip
    assert no_site.exit_code == 2
    assert "no site 'Elsewhere'" in no_site.output
    bad_mode = runner.invoke(app, [*args, "--parcel-id-col", "pid", "--mode", "merge"])
    assert bad_mode.exit_code == 2
    latin = tmp_path / "latin.csv"
    latin.write_bytes(LUT.replace("Barley", "Orge d'hiver é").encode("latin-1"))
    refused = runner.invoke(app, [*home, "lut", "import", "Cli site", "2024", str(latin)])
    assert refused.exit_code == 2
    assert "latin.csv: line 3" in refused.output
    nothing = runner.invoke(app, [*home, "lut", "show", "Cli site", "2024"])
    assert nothing.exit_code == 2
    assert "no crop LUT for 2024" in nothing.output
