"""``capmon lut import`` tells a Sen4CAP LUT from a EuroCrops HCAT mapping by its columns
(issue 19, item 5), and names both sets of columns when a file is neither."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
from shapely.geometry import box
from typer.testing import CliRunner

from capmon.cli.main import app

runner = CliRunner()
SEN4CAP = (
    "ori_crop,ctnum,ct,lc,ctnuml4a,ctl4a,ctnumdiv,eaa,al,pgrass,tgrass,fallow,cwater\n"
    "11,1,Wheat,1,1,Cereals,1,1,1,0,0,0,0\n"
)
HCAT = (
    "original_code,original_name,translated_name,HCAT3_name,HCAT3_code\n"
    "0001,Winterweizen,Winter wheat,winter_common_soft_wheat,3301010101\n"
    "60,Grünland,Grassland,pasture_meadow_grassland_grass,3302000000\n"
)


def _site(tmp_path: Path) -> list[str]:
    home = ["--home", str(tmp_path / "ws")]
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box(2.9, 50.45, 3.3, 50.7)], crs=4326).to_file(aoi)
    result = runner.invoke(app, [*home, "site", "create", "lut site", "--aoi", str(aoi)])
    assert result.exit_code == 0, result.output
    return home


def test_lut_import_tells_the_format_from_the_columns(tmp_path: Path) -> None:
    home = _site(tmp_path)
    hcat = tmp_path / "eurocrops.csv"
    hcat.write_text(HCAT, encoding="utf-8")
    sen4cap = tmp_path / "lut.csv"
    sen4cap.write_text(SEN4CAP, encoding="utf-8")
    first = runner.invoke(app, [*home, "lut", "import", "lut site", "2024", str(hcat)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, [*home, "lut", "import", "lut site", "2025", str(sen4cap)])
    assert second.exit_code == 0, second.output
    listed = runner.invoke(app, [*home, "lut", "list", "lut site", "--json"])
    kinds = {entry["year"]: entry["kind"] for entry in json.loads(listed.stdout)}
    assert kinds == {2024: "hcat", 2025: "sen4cap"}
    # --format still forces a format
    forced = runner.invoke(
        app, [*home, "lut", "import", "lut site", "2024", str(hcat), "--format", "sen4cap"]
    )
    assert forced.exit_code == 2
    assert "lacks the required columns" in forced.output


def test_a_file_of_neither_format_names_the_expected_columns(tmp_path: Path) -> None:
    home = _site(tmp_path)
    other = tmp_path / "crops.csv"
    other.write_text("code,name\n1,Wheat\n", encoding="utf-8")
    result = runner.invoke(app, [*home, "lut", "import", "lut site", "2024", str(other)])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "neither a Sen4CAP LUT nor a EuroCrops HCAT mapping CSV" in message
    assert "columns found: code, name" in message
    assert "ori_crop, ctnum, ct, lc" in message
    assert "original_code (or original_name) and HCAT3_code" in message
