"""Crop LUT import: Sen4CAP CSV rules, EuroCrops HCAT conversion, missing declared codes."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from capmon import sites
from capmon.errors import ColumnError, EncodingError, InputError, NotFoundError
from capmon.parcels.codes import check_crop_codes, crop_key
from capmon.parcels.declarations import import_declarations
from capmon.parcels.hcat import l4a_group, land_cover_and_flags
from capmon.parcels.lut import import_lut, list_luts, load_lut, lut_info, prepare_lut
from capmon.workspace import Workspace

HEADER = "ori_crop,ctnum,ct,lc,ctnuml4a,ctl4a,ctnumdiv,eaa,al,pgrass,tgrass,fallow,cwater"
SITE = "Lut site"


def _lut(path: Path, rows: list[str], header: str = HEADER, encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


ROWS = [
    "1,1,Winter wheat,1,10,Wheat,1,1,1,0,0,0,0",
    "2,2,Spring wheat,1,10,Wheat,1,1,1,0,0,0,0",
    "60,3,Grassland,3,20,Grass,2,1,0,1,0,0,0",
]


def test_sen4cap_lut_is_read_with_types_and_keys(tmp_path: Path) -> None:
    upper = HEADER.upper().replace(",", ";")
    rows = [r.replace(",", ";") for r in ROWS] + ["007;4;Rice;1;30;Rice;3;1;1;0;0;0;1"]
    path = tmp_path / "lut.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join([upper, *rows]) + "\n").encode())
    prepared = prepare_lut(path)
    table = prepared.table
    assert str(table["ori_crop"].dtype) == "Int64"
    assert table["ori_crop"].tolist() == [1, 2, 60, 7]
    assert table["crop_key"].tolist() == ["1", "2", "60", "7"]
    assert str(table["ctnum"].dtype) == "int32"
    assert table["cwater"].tolist() == [False, False, False, True]
    assert prepared.report.entries == 4
    assert prepared.report.kind == "sen4cap"


def test_text_codes_and_extra_columns(tmp_path: Path) -> None:
    path = _lut(
        tmp_path / "lut.csv",
        [
            'BTH,1,"Blé tendre d\'hiver",1,1,"Wheat, soft",1,1,1,0,0,0,0,note A',
            "PPH,2,Prairie permanente,2,2,Grass,2,1,0,1,0,0,0,",
        ],
        header=HEADER + ",comment",
    )
    table = prepare_lut(path).table
    assert str(table["ori_crop"].dtype) == "string"
    assert table["ct"].tolist() == ["Blé tendre d'hiver", "Prairie permanente"]
    assert table["ctl4a"].tolist()[0] == "Wheat, soft"
    assert table["comment"].tolist() == ["note A", ""]


def test_a_non_utf8_lut_is_an_encoding_error_naming_file_and_line(tmp_path: Path) -> None:
    rows = [*ROWS, "99,9,Blé,1,1,x,1,1,1,0,0,0,0"]
    path = _lut(tmp_path / "latin.csv", rows, encoding="latin-1")
    with pytest.raises(EncodingError) as caught:
        prepare_lut(path)
    assert "latin.csv: line 5" in str(caught.value)
    assert "UTF-8" in str(caught.value)


def test_missing_required_columns_are_named(tmp_path: Path) -> None:
    path = _lut(tmp_path / "short.csv", ["1,1,Wheat,1"], header="ori_crop,ctnum,ct,lc")
    with pytest.raises(ColumnError) as caught:
        prepare_lut(path)
    message = str(caught.value)
    assert "short.csv" in message
    assert "ctnuml4a, ctl4a, ctnumdiv, eaa, al, pgrass, tgrass, fallow, cwater" in message


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([*ROWS, "01,4,Again,1,1,x,1,1,1,0,0,0,0"], "ori_crop '1' appears on lines 2, 5"),
        ([*ROWS, "5,3,Again,1,1,x,1,1,1,0,0,0,0"], "ctnum 3 appears on lines 4, 5"),
        ([*ROWS, "5,x,Bad,1,1,x,1,1,1,0,0,0,0"], "line 5: ctnum 'x' is not an integer"),
        ([*ROWS, "5,5,Bad,1,1,x,1,2,1,0,0,0,0"], "line 5: eaa '2' is not 0 or 1"),
        ([*ROWS, ",5,Bad,1,1,x,1,1,1,0,0,0,0"], "line 5: ori_crop is empty"),
        ([], "has a header but no rows"),
    ],
)
def test_invalid_luts_are_refused_with_the_line(
    tmp_path: Path, rows: list[str], expected: str
) -> None:
    with pytest.raises(InputError, match=expected):
        prepare_lut(_lut(tmp_path / "bad.csv", rows))


def test_hcat_rules() -> None:
    assert l4a_group(3301010402) == 3301010402  # spring_barley keeps its season
    assert l4a_group(3301010499) == 3301010400  # unspecified_season_barley -> barley
    assert l4a_group(3301061213) == 3301061200  # chamomile -> aromatic plants
    assert l4a_group(3302000000) == 3302000000
    assert land_cover_and_flags(3301010101) == {
        "lc": 1, "eaa": True, "al": True, "pgrass": False, "tgrass": False,
        "fallow": False, "cwater": False,
    }  # fmt: skip
    assert land_cover_and_flags(3302000000)["pgrass"] is True
    assert land_cover_and_flags(3301090100)["tgrass"] is True
    assert land_cover_and_flags(3301110000)["lc"] == 4
    assert land_cover_and_flags(3301010799)["cwater"] is True
    assert land_cover_and_flags(3303060000)["lc"] == 3
    assert land_cover_and_flags(3306000000) == {
        "lc": 0, "eaa": False, "al": False, "pgrass": False, "tgrass": False,
        "fallow": False, "cwater": False,
    }  # fmt: skip


def test_hcat_mapping_is_converted_with_normalised_codes(tmp_path: Path) -> None:
    first = tmp_path / "xx_2021.csv"
    first.write_text(
        "original_code,original_name,translated_name,HCAT3_name,HCAT3_code\n"
        '0001,"Winterweizen\n(Saatgut)",Winter wheat,winter_common_soft_wheat,3301010101\n'
        ",Ohne Code,No code,not_known_and_other,3399000000\n"
        "60,Grünland,Grassland,pasture_meadow_grassland_grass,3302000000\n"
        "1,Doppelt,Duplicate,barley,3301010400\n"
        "WB,Wintergerste,Winter barley,winter_barley,3301010401\n",
        encoding="utf-8",
    )
    second = tmp_path / "xx_other.csv"
    second.write_text(
        "original_name,original_code,HCAT3_code,HCAT3_name\n"
        "Grünland alt,060,3302000000,pasture_meadow_grassland_grass\n"
        "Brache,591,3301110000,fallow_land_not_crop\n",
        encoding="utf-8",
    )
    prepared = prepare_lut([first, second], "hcat")
    table = prepared.table.set_index("crop_key")
    assert sorted(table.index) == ["1", "591", "60", "WB"]
    assert str(prepared.table["ori_crop"].dtype) == "string"  # 'WB' makes the codes text
    assert table.loc["1", "ori_name"] == "Winterweizen\n(Saatgut)"
    assert table.loc["1", "ct"] == "winter_common_soft_wheat"
    assert table.loc["1", "ctnuml4a"] == 1010101
    assert table.loc["WB", "ctl4a"] == "winter_barley"
    assert table.loc["591", "fallow"]
    assert table.loc["60", "pgrass"]
    assert sorted(prepared.table["ctnum"]) == [1, 2, 3, 4]
    skipped = prepared.report.skipped
    assert skipped.count == 3
    assert [r.row for r in skipped.rows] == [4, 6, 2]
    assert "no crop code" in skipped.rows[0].detail
    assert "already in xx_2021.csv line 2" in skipped.rows[1].detail


def test_hcat_file_without_code_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("code,name\n1,Wheat\n", encoding="utf-8")
    with pytest.raises(ColumnError, match=r"wrong\.csv: not a EuroCrops HCAT mapping"):
        prepare_lut(path, "hcat")


def test_crop_keys_and_check() -> None:
    assert [crop_key(v) for v in ("001", 1, 1.0, " 88 ", "VRC", None, float("nan"), "")] == [
        "1", "1", "1", "88", "VRC", None, None, None,
    ]  # fmt: skip
    check = check_crop_codes(["001", "2", "2", "X", None], ["1"])
    assert check.distinct_codes == 3
    assert [(m.code, m.parcels) for m in check.missing_codes] == [("2", 2), ("X", 1)]
    assert check.parcels_without_lut_entry == 3


def _declarations(tmp_path: Path) -> Path:
    frame = gpd.GeoDataFrame(
        {"pid": ["a", "b", "c", "d"], "crop": ["001", "002", "060", "777"]},
        geometry=[
            box(500_000 + i * 200, 5_600_000, 500_100 + i * 200, 5_600_100) for i in range(4)
        ],
        crs=32631,
    )
    path = tmp_path / "declarations.gpkg"
    frame.to_file(path)
    return path


def _site(workspace: Workspace) -> None:
    with workspace.session() as session:
        sites.create_site(session, SITE, box(2.9, 50.45, 3.3, 50.7))


def test_lut_after_declarations_lists_the_missing_codes(
    workspace: Workspace, tmp_path: Path
) -> None:
    _site(workspace)
    import_declarations(
        workspace, SITE, 2024, _declarations(tmp_path), parcel_id_cols=["pid"], crop_code_col="crop"
    )
    result = import_lut(workspace, SITE, 2024, _lut(tmp_path / "lut.csv", ROWS))
    assert result.version == 1
    assert result.lut_path == workspace.path("luts/lut_site/2024/v1/lut.parquet")
    assert (result.lut_path.parent / "lut.csv").is_file()
    codes = result.report.crop_codes
    assert codes is not None
    assert (codes.lut_version, codes.declaration_version) == (1, 1)
    assert [(m.code, m.parcels) for m in codes.missing_codes] == [("777", 1)]
    stored = lut_info(workspace, SITE, 2024)
    assert stored.report["crop_codes"]["missing_codes"] == [{"code": "777", "parcels": 1}]
    assert stored.kind == "sen4cap"
    second = import_lut(workspace, SITE, 2024, _lut(tmp_path / "lut2.csv", ROWS[:1]))
    assert second.version == 2
    assert [(i.version, i.entries) for i in list_luts(workspace, SITE)] == [(1, 3), (2, 1)]
    assert len(load_lut(workspace, SITE, 2024, version=1)) == 3
    assert load_lut(workspace, SITE, 2024)["ori_crop"].tolist() == [1]
    with pytest.raises(NotFoundError, match=r"no crop LUT version 5 for 2024 \(versions: 1, 2\)"):
        load_lut(workspace, SITE, 2024, version=5)


def test_declarations_after_lut_list_the_missing_codes(
    workspace: Workspace, tmp_path: Path
) -> None:
    _site(workspace)
    import_lut(workspace, SITE, 2024, _lut(tmp_path / "lut.csv", ROWS))
    result = import_declarations(
        workspace, SITE, 2024, _declarations(tmp_path), parcel_id_cols=["pid"], crop_code_col="crop"
    )
    codes = result.report.crop_codes
    assert codes is not None
    assert (codes.lut_version, codes.declaration_version) == (1, 1)
    assert codes.missing_code_count == 1
    assert codes.missing_codes[0].code == "777"
    assert result.report.to_dict()["crop_codes"]["parcels_without_lut_entry"] == 1


def test_a_failed_lut_import_changes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    _site(workspace)
    first = import_lut(workspace, SITE, 2024, _lut(tmp_path / "lut.csv", ROWS))
    before = first.lut_path.read_bytes()
    bad = _lut(tmp_path / "bad.csv", [*ROWS, "1,9,Again,1,1,x,1,1,1,0,0,0,0"])
    with pytest.raises(InputError):
        import_lut(workspace, SITE, 2024, bad)
    assert first.lut_path.read_bytes() == before
    assert [i.version for i in list_luts(workspace, SITE)] == [1]
    assert sorted(p.name for p in first.lut_path.parent.parent.iterdir()) == ["v1"]
    with pytest.raises(InputError, match="year 1980 is out of range"):
        import_lut(workspace, SITE, 1980, tmp_path / "lut.csv")
    with pytest.raises(NotFoundError, match="no site 'Nowhere'"):
        import_lut(workspace, "Nowhere", 2024, tmp_path / "lut.csv")
    assert isinstance(pd.read_parquet(first.lut_path), pd.DataFrame)
