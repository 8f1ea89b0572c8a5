"""Declarations import: column mapping, ids, modes, stability of NewID, bad input, atomicity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point, box
from sqlalchemy import select

from capmon import sites
from capmon.catalog.models import DeclarationSet
from capmon.errors import (
    ColumnError,
    ConflictError,
    CRSError,
    GeometryError,
    InputError,
    NotFoundError,
)
from capmon.parcels import declarations, store
from capmon.parcels.declarations import (
    PARCEL_COLUMNS,
    ColumnMapping,
    declaration_report,
    import_declarations,
    list_declaration_sets,
    load_parcels,
    prepare_declarations,
)
from capmon.workspace import Workspace

X0, Y0 = 500_000.0, 5_600_000.0  # EPSG:32631, near 3.0 E 50.55 N (tile 31UES)
SITE = "Demo site"


def _square(i: int, size: float = 100.0, dy: float = 0.0) -> shapely.Polygon:
    x = X0 + (i % 20) * 200
    y = Y0 + (i // 20) * 200 + dy
    return box(x, y, x + size, y + size)


def _write(
    path: Path,
    ids: list[Any],
    geometries: list[Any] | None = None,
    *,
    crops: list[Any] | None = None,
    farms: list[Any] | None = None,
    crs: int | None = 32631,
    extra: dict[str, list[Any]] | None = None,
) -> Path:
    geometries = geometries if geometries is not None else [_square(i) for i in range(len(ids))]
    frame = gpd.GeoDataFrame(
        {
            "pid": ids,
            "farm": farms if farms is not None else [f"H{i // 3}" for i in range(len(ids))],
            "crop": crops if crops is not None else [10 + i % 4 for i in range(len(ids))],
            **(extra or {}),
        },
        geometry=geometries,
        crs=crs,
    )
    frame.to_file(path)
    return path


def _site(workspace: Workspace) -> None:
    with workspace.session() as session:
        sites.create_site(session, SITE, box(2.9, 50.45, 3.3, 50.7))


def _import(workspace: Workspace, path: Path, **options: Any) -> Any:
    return import_declarations(
        workspace,
        SITE,
        2024,
        path,
        parcel_id_cols=["pid"],
        holding_id_cols=["farm"],
        crop_code_col="crop",
        **options,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the pure function --------------------------------------------------------------------


def test_parcels_table_schema_and_crs(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.gpkg", ["b", "a", "c"], crops=[1.0, 2.0, None])
    prepared = prepare_declarations(path, ColumnMapping(("pid",), ("farm",), "crop"))
    parcels = prepared.parcels
    assert tuple(parcels.columns) == PARCEL_COLUMNS
    assert parcels.crs.to_epsg() == 4326
    assert set(parcels.geom_type) == {"MultiPolygon"}
    dtypes = parcels.dtypes.astype(str).to_dict()
    assert dtypes["NewID"] == "int32"
    assert dtypes["HoldID"] == "Int32"
    assert dtypes["ori_crop"] == "Int64"  # whole reals are numeric codes
    assert dtypes["S2Pix"] == "int32"
    assert dtypes["inserted_at"] == "datetime64[us, UTC]"
    # NewIDs follow ori_id order; rows are sorted by NewID
    assert parcels["ori_id"].tolist() == ["a", "b", "c"]
    assert parcels["NewID"].tolist() == [1, 2, 3]
    assert parcels["source_row"].tolist() == [2, 1, 3]
    assert parcels["ori_crop"].tolist()[:2] == [2, 1]
    assert pd.isna(parcels["ori_crop"].iloc[2])
    assert prepared.report.counts.missing_crop_code == 1
    assert parcels["S2Pix"].between(64, 100).all()
    assert parcels["change"].tolist() == ["inserted"] * 3


def test_text_codes_stay_text_and_several_id_columns_are_joined(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "d.gpkg",
        ["1", "1", "2"],
        crops=["001", " 088 ", "WHE"],
        farms=["F1", "F1", "F2"],
        extra={"part": [1, 2, 1], "region": ["N", "N", "S"]},
    )
    prepared = prepare_declarations(
        path, ColumnMapping(("pid", "part"), ("farm", "region"), "crop")
    )
    parcels = prepared.parcels
    assert parcels["ori_id"].tolist() == ["1-1", "1-2", "2-1"]
    assert parcels["ori_hold"].tolist() == ["F1-N", "F1-N", "F2-S"]
    assert parcels["HoldID"].tolist() == [1, 1, 2]
    assert str(parcels["ori_crop"].dtype) == "string"
    assert parcels["ori_crop"].tolist() == ["001", "088", "WHE"]


def test_fiboa_columns_are_the_defaults(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"id": ["x1", "x2"], "crop:code": ["AA", "BB"]},
        geometry=[_square(0), _square(1)],
        crs=32631,
    )
    path = tmp_path / "fiboa.parquet"
    frame.to_parquet(path)
    prepared = prepare_declarations(path)
    assert prepared.parcels["ori_id"].tolist() == ["x1", "x2"]
    assert prepared.parcels["ori_crop"].tolist() == ["AA", "BB"]
    assert prepared.parcels["HoldID"].isna().all()
    assert prepared.report.column_mapping == {
        "parcel_id": ["id"],
        "holding_id": [],
        "crop_code": "crop:code",
    }


def test_unknown_columns_are_named_with_the_available_ones(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.gpkg", ["a", "b"])
    with pytest.raises(ColumnError) as caught:
        prepare_declarations(path, ColumnMapping(("PARCEL",), ("farm",), "CROP_CODE"))
    message = str(caught.value)
    assert str(path) in message
    assert "'PARCEL'" in message
    assert "'CROP_CODE'" in message
    assert "Available columns: pid, farm, crop" in message
    with pytest.raises(ColumnError, match="fiboa default"):
        prepare_declarations(path)
    # column names match case-insensitively when that is unambiguous
    ok = prepare_declarations(path, ColumnMapping(("PID",), ("Farm",), "CROP"))
    assert ok.report.column_mapping["parcel_id"] == ["pid"]


def test_duplicate_ids_are_an_error_listing_rows_or_get_suffixes(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.gpkg", ["a", "b", "a", "c", "a", "a-A"])
    with pytest.raises(InputError) as caught:
        prepare_declarations(path, ColumnMapping(("pid",), (), "crop"))
    assert "'a' on rows 1, 3, 5" in str(caught.value)
    assert "--on-duplicate-id suffix" in str(caught.value)
    prepared = prepare_declarations(
        path, ColumnMapping(("pid",), (), "crop"), on_duplicate_id="suffix"
    )
    by_row = prepared.parcels.set_index("source_row")["ori_id"].to_dict()
    # 'a-A' is an id of the file, so the shared 'a' gets the next free suffixes
    assert by_row == {1: "a-B", 2: "b", 3: "a-C", 4: "c", 5: "a-D", 6: "a-A"}
    assert prepared.report.counts.suffixed_ids == 3


def test_non_polygons_are_an_error_naming_rows_or_dropped_on_request(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"pid": ["a", "b", "c", "d"], "crop": [1, 2, 3, 4]},
        geometry=[_square(0), Point(X0, Y0), LineString([(X0, Y0), (X0 + 9, Y0)]), _square(2)],
        crs=32631,
    )
    path = tmp_path / "mixed.gpkg"
    frame.to_file(path)
    with pytest.raises(GeometryError) as caught:
        prepare_declarations(path, ColumnMapping(("pid",), (), "crop"))
    assert "row 2 (Point), row 3 (LineString)" in str(caught.value)
    assert "--skip-non-polygons" in str(caught.value)
    prepared = prepare_declarations(
        path, ColumnMapping(("pid",), (), "crop"), skip_non_polygons=True
    )
    assert prepared.parcels["ori_id"].tolist() == ["a", "d"]
    assert prepared.report.dropped_geometry_types == {"Point": 1, "LineString": 1}
    assert prepared.report.counts.dropped_non_polygon == 2
    assert prepared.report.counts.read == 4


def test_missing_crs_empty_and_non_vector_files_are_errors_naming_the_file(
    tmp_path: Path,
) -> None:
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        shp = _write(tmp_path / "nocrs.shp", ["a"], crs=None)
    assert shp.with_suffix(".prj").exists() is False
    with pytest.raises(CRSError, match=r"nocrs\.shp"):
        prepare_declarations(shp, ColumnMapping(("pid",), (), "crop"))
    empty = tmp_path / "empty.gpkg"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.gpkg.*empty"):
        prepare_declarations(empty)
    text = tmp_path / "notes.gpkg"
    text.write_text("these are not parcels\n")
    with pytest.raises(InputError, match=r"notes\.gpkg.*not a readable vector file"):
        prepare_declarations(text)
    with pytest.raises(InputError, match="file not found"):
        prepare_declarations(tmp_path / "missing.gpkg")


def test_attribute_encodings_cpg_and_explicit(tmp_path: Path) -> None:
    names = ["Поле-1", "Поле-2"]
    frame = gpd.GeoDataFrame(
        {"pid": names, "crop": ["Пшеница", "Ячмень"]},
        geometry=[_square(0), _square(1)],
        crs=32631,
    )
    path = tmp_path / "cyrillic.shp"
    frame.to_file(path, encoding="cp1251")
    assert path.with_suffix(".cpg").read_text().strip().upper() in {"CP1251", "1251"}
    honoured = prepare_declarations(path, ColumnMapping(("pid",), (), "crop"))
    assert honoured.parcels["ori_id"].tolist() == names
    path.with_suffix(".cpg").unlink()
    explicit = prepare_declarations(path, ColumnMapping(("pid",), (), "crop"), encoding="cp1251")
    assert explicit.parcels["ori_crop"].tolist() == ["Пшеница", "Ячмень"]


# ---- the workspace import -----------------------------------------------------------------


def test_import_list_show_and_load(workspace: Workspace, tmp_path: Path) -> None:
    _site(workspace)
    path = _write(tmp_path / "v1.gpkg", [f"p{i}" for i in range(6)])
    result = _import(workspace, path)
    assert result.version == 1
    assert result.parcels_path == workspace.path("parcels/demo_site/2024/v1/parcels.parquet")
    assert result.parcels_path.is_file()
    saved = json.loads((result.parcels_path.parent / "report.json").read_text())
    assert saved["counts"]["imported"] == 6
    assert saved["version"] == 1
    assert declaration_report(workspace, SITE, 2024) == saved
    listed = list_declaration_sets(workspace, SITE)
    assert [(s.year, s.version, s.mode, s.parcels) for s in listed] == [(2024, 1, "update", 6)]
    loaded = load_parcels(workspace, SITE, 2024)
    assert loaded["NewID"].tolist() == [1, 2, 3, 4, 5, 6]
    assert loaded.crs.to_epsg() == 4326
    with workspace.session() as session:
        row = session.scalars(select(DeclarationSet)).one()
        assert row.column_mapping == {
            "parcel_id": ["pid"],
            "holding_id": ["farm"],
            "crop_code": "crop",
        }
        assert row.parcels_path == "parcels/demo_site/2024/v1/parcels.parquet"


def test_new_ids_are_stable_across_update_imports(workspace: Workspace, tmp_path: Path) -> None:
    _site(workspace)
    first = _write(tmp_path / "v1.gpkg", ["p1", "p2", "p3", "p4"])
    _import(workspace, first)
    # v2: p2 gone, p3 moved (100x120 instead of 100x100), p4 new crop, n1/n0 new
    geometries = [_square(0), box(*_square(2).bounds[:2], X0 + 500, Y0 + 120), _square(3)]
    geometries += [_square(10), _square(11)]
    second = _write(
        tmp_path / "v2.gpkg",
        ["p1", "p3", "p4", "n1", "n0"],
        geometries,
        crops=[10, 12, 99, 1, 1],
        farms=["H0", "H0", "H1", "H9", "H0"],
    )
    result = _import(workspace, second)
    assert result.version == 2
    table = result.parcels.set_index("ori_id")
    assert table["NewID"].to_dict() == {"p1": 1, "p2": 2, "p3": 3, "p4": 4, "n0": 5, "n1": 6}
    assert table["change"].to_dict() == {
        "p1": "unchanged",
        "p2": "deleted",
        "p3": "updated",
        "p4": "updated",
        "n0": "inserted",
        "n1": "inserted",
    }
    assert table["is_deleted"].to_dict()["p2"] is True
    assert table.loc["p3", "geom_change_ratio"] == pytest.approx(2000 / 12000, rel=1e-3)
    assert table.loc["p4", "geom_change_ratio"] == 0.0  # crop changed, geometry did not
    assert pd.isna(table.loc["p1", "geom_change_ratio"])
    assert pd.isna(table.loc["n0", "geom_change_ratio"])
    assert table.loc["p1", "inserted_at"] == table.loc["p3", "inserted_at"]
    assert pd.isna(table.loc["p1", "updated_at"])
    assert table.loc["p3", "updated_at"] > table.loc["p3", "inserted_at"]
    # holdings: H0 and H1 keep their ids, H9 is new
    assert table.loc["n1", "HoldID"] == 3
    assert table.loc["n0", "HoldID"] == table.loc["p1", "HoldID"] == 1
    counts = result.report.counts
    assert (counts.inserted, counts.updated, counts.unchanged, counts.deleted) == (2, 2, 1, 1)
    assert result.report.previous_version == 1
    assert load_parcels(workspace, SITE, 2024)["ori_id"].tolist() == [
        "p1", "p3", "p4", "n0", "n1",
    ]  # fmt: skip
    assert len(load_parcels(workspace, SITE, 2024, include_deleted=True)) == 6
    # v3: the deleted p2 comes back with its NewID; new ids continue after the highest one
    third = _write(tmp_path / "v3.gpkg", ["p2", "z9"], [_square(1), _square(15)])
    again = _import(workspace, third).parcels.set_index("ori_id")
    assert again.loc["p2", "NewID"] == 2
    assert bool(again.loc["p2", "is_deleted"]) is False
    assert again.loc["p2", "change"] == "updated"
    assert again.loc["z9", "NewID"] == 7
    assert again.loc["p1", "change"] == "deleted"
    assert load_parcels(workspace, SITE, 2024, version=1)["ori_id"].tolist() == [
        "p1", "p2", "p3", "p4",
    ]  # fmt: skip


def test_incremental_keeps_missing_parcels_and_replace_starts_again(
    workspace: Workspace, tmp_path: Path
) -> None:
    _site(workspace)
    _import(workspace, _write(tmp_path / "v1.gpkg", ["b", "c", "d"]))
    added = _write(tmp_path / "v2.gpkg", ["a", "e"], [_square(5), _square(6)])
    incremental = _import(workspace, added, mode="incremental").parcels.set_index("ori_id")
    assert incremental["NewID"].to_dict() == {"b": 1, "c": 2, "d": 3, "a": 4, "e": 5}
    assert not incremental["is_deleted"].any()
    assert incremental.loc["b", "change"] == "kept"
    replaced = _import(workspace, added, mode="replace").parcels.set_index("ori_id")
    assert replaced["NewID"].to_dict() == {"a": 1, "e": 2}
    assert replaced["change"].tolist() == ["inserted", "inserted"]
    modes = [(s.version, s.mode, s.parcels) for s in list_declaration_sets(workspace, SITE)]
    assert modes == [(1, "update", 3), (2, "incremental", 5), (3, "replace", 2)]


def test_a_failed_import_leaves_the_previous_declaration_set_intact(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _site(workspace)
    first = _import(workspace, _write(tmp_path / "v1.gpkg", ["a", "b"]))
    digest = _digest(first.parcels_path)
    year_folder = first.parcels_path.parent.parent

    def assert_intact() -> None:
        assert _digest(first.parcels_path) == digest
        assert sorted(p.name for p in year_folder.iterdir()) == ["v1"]
        assert [s.version for s in list_declaration_sets(workspace, SITE)] == [1]

    # bad input: found before anything is written
    with pytest.raises(InputError, match="parcel ids are used by several"):
        _import(workspace, _write(tmp_path / "dup.gpkg", ["a", "a"]))
    assert_intact()
    # a failure while writing the new version's files
    good = _write(tmp_path / "v2.gpkg", ["a", "c"])

    def broken_write(path: Path, payload: Any) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(store, "write_json", broken_write)
        with pytest.raises(OSError, match="disk full"):
            _import(workspace, good)
    assert_intact()

    # a failure while inserting the catalogue row, after the files were written
    def broken_row(**fields: Any) -> DeclarationSet:
        raise RuntimeError("catalogue unavailable")

    with monkeypatch.context() as patch:
        patch.setattr("capmon.parcels.declarations.DeclarationSet", broken_row)
        with pytest.raises(RuntimeError, match="catalogue unavailable"):
            _import(workspace, good)
    assert_intact()
    # and the next import works and gets version 2
    assert _import(workspace, good).version == 2


def test_unknown_site_and_year_out_of_range(workspace: Workspace, tmp_path: Path) -> None:
    path = _write(tmp_path / "d.gpkg", ["a"])
    with pytest.raises(NotFoundError, match="no site 'Demo site'"):
        _import(workspace, path)
    _site(workspace)
    for year in (1999, 20024):
        with pytest.raises(InputError, match=f"year {year} is out of range"):
            import_declarations(
                workspace, SITE, year, path, parcel_id_cols=["pid"], crop_code_col="crop"
            )
    with pytest.raises(NotFoundError, match="no declarations for 2024"):
        declaration_report(workspace, SITE, 2024)


def test_an_import_finished_meanwhile_is_a_conflict(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _site(workspace)
    _import(workspace, _write(tmp_path / "v1.gpkg", ["a", "b"]))
    original = declarations.prepare_declarations

    def racing(*args: Any, **kwargs: Any) -> Any:
        prepared = original(*args, **kwargs)
        with monkeypatch.context() as inner:  # another import stores version 2 meanwhile
            inner.setattr(declarations, "prepare_declarations", original)
            _import(workspace, _write(tmp_path / "other.gpkg", ["x"]))
        return prepared

    monkeypatch.setattr(declarations, "prepare_declarations", racing)
    with pytest.raises(ConflictError, match="finished while this one ran"):
        _import(workspace, _write(tmp_path / "v2.gpkg", ["a", "c"]))
    sets = list_declaration_sets(workspace, SITE)
    assert [(s.version, s.parcels) for s in sets] == [(1, 2), (2, 1)]  # a, b deleted by "x"
    assert sorted(p.name for p in workspace.path("parcels/demo_site/2024").iterdir()) == [
        "v1",
        "v2",
    ]
