"""Declared ids as text: real-number id columns, ids too long, the rows the errors name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, box

from capmon.errors import InputError
from capmon.parcels.declarations import ColumnMapping, prepare_declarations
from capmon.parcels.identity import MAX_ID_LENGTH, id_text, join_id_columns
from capmon.vector import read_vector

X0, Y0 = 500_000.0, 5_600_000.0  # EPSG:32631
MAPPING = ColumnMapping(("pid",), ("farm",), "crop")


def _square(i: int) -> shapely.Polygon:
    return box(X0 + i * 200, Y0, X0 + i * 200 + 100, Y0 + 100)


def _frame(ids: Any, *, farms: Any = None, geometries: list[Any] | None = None) -> gpd.GeoDataFrame:
    n = len(ids)
    return gpd.GeoDataFrame(
        {
            "pid": ids,
            "farm": farms if farms is not None else [f"H{i}" for i in range(n)],
            "crop": [10] * n,
        },
        geometry=geometries if geometries is not None else [_square(i) for i in range(n)],
        crs=32631,
    )


def _written(frame: gpd.GeoDataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_file(path)
    return path


def _ori_ids(path: Path, mapping: ColumnMapping = MAPPING, **options: Any) -> list[str]:
    parcels = prepare_declarations(path, mapping, **options).parcels
    return parcels.sort_values("source_row")["ori_id"].tolist()


# ---- real-number id columns ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet", ".shp"])
def test_a_real_id_column_keeps_whole_ids_whole_and_decimals_as_written(
    tmp_path: Path, suffix: str
) -> None:
    frame = _frame(np.array([12.0, 12.5, 7.0, -3.25, 9_007_199_254_740_991.0]))
    path = _written(frame, tmp_path / f"d{suffix}")
    assert read_vector(path).frame["pid"].dtype == np.float64  # the file stores reals
    assert _ori_ids(path) == ["12", "12.5", "7", "-3.25", "9007199254740991"]


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet"])
def test_a_real_id_beyond_exact_integers_is_refused_naming_file_row_and_column(
    tmp_path: Path, suffix: str
) -> None:
    path = _written(_frame(np.array([1.0, 1e300, 3.0])), tmp_path / f"d{suffix}")
    with pytest.raises(InputError) as raised:
        prepare_declarations(path, MAPPING)
    message = str(raised.value)
    assert path.name in message
    assert "row 2, column 'pid'" in message
    assert "1e+300" in message
    assert "2**53" in message
    assert "0" * 30 not in message  # never the 301-digit expansion


def test_the_first_real_that_is_not_an_exact_integer_is_refused(tmp_path: Path) -> None:
    path = _written(_frame(np.array([2.0**53 - 1, 2.0**53])), tmp_path / "d.parquet")
    with pytest.raises(InputError, match=r"row 2, column 'pid'.*2\*\*53"):
        prepare_declarations(path, MAPPING)


def test_float32_ids_are_their_shortest_text(tmp_path: Path) -> None:
    frame = _frame(np.array([12.3, 0.1, 16_777_215.0], dtype=np.float32))
    path = _written(frame, tmp_path / "d.parquet")
    assert pd.read_parquet(path)["pid"].dtype == np.float32
    assert _ori_ids(path) == ["12.3", "0.1", "16777215"]
    too_big = _written(_frame(np.array([16_777_216.0], dtype=np.float32)), tmp_path / "b.parquet")
    with pytest.raises(InputError, match=r"row 1, column 'pid'.*2\*\*24.*float32"):
        prepare_declarations(too_big, MAPPING)


def test_infinite_ids_are_refused(tmp_path: Path) -> None:
    path = _written(_frame(np.array([1.0, np.inf])), tmp_path / "d.parquet")
    with pytest.raises(InputError, match="row 2, column 'pid': the id inf is not a finite"):
        prepare_declarations(path, MAPPING)


def test_real_holding_ids_follow_the_same_rules(tmp_path: Path) -> None:
    path = _written(_frame(["a", "b"], farms=np.array([4.0, 4.5])), tmp_path / "d.gpkg")
    holdings = prepare_declarations(path, MAPPING).parcels.sort_values("source_row")
    assert holdings["ori_hold"].tolist() == ["4", "4.5"]
    bad = _written(_frame(["a", "b"], farms=np.array([4.0, -1e20])), tmp_path / "b.gpkg")
    with pytest.raises(InputError, match="row 2, column 'farm'"):
        prepare_declarations(bad, MAPPING)


def test_id_text_of_each_kind_of_value() -> None:
    assert id_text(np.float64(1e-7)) == "1e-07"  # shortest text, never 0.000...
    assert id_text(np.int64(2**62)) == str(2**62)  # integers are exact at any size
    assert id_text(float("nan")) is None
    assert id_text("  x ") == "x"
    assert id_text(-0.0) == "0"


# ---- length -------------------------------------------------------------------------------


def test_ids_up_to_the_limit_are_kept_and_longer_ones_refused_naming_the_row(
    tmp_path: Path,
) -> None:
    longest = "p" * MAX_ID_LENGTH
    path = _written(_frame(["a", longest]), tmp_path / "ok.gpkg")
    assert _ori_ids(path) == ["a", longest]
    path = _written(_frame(["a", "b", "x" * (MAX_ID_LENGTH + 1)]), tmp_path / "long.gpkg")
    with pytest.raises(InputError) as raised:
        prepare_declarations(path, MAPPING)
    message = str(raised.value)
    assert "long.gpkg" in message
    assert f"row 3, column 'pid': the id is {MAX_ID_LENGTH + 1} characters long" in message
    assert "x" * 41 not in message  # the id is shown shortened


def test_the_limit_applies_to_joined_ids_and_holdings(tmp_path: Path) -> None:
    frame = _frame(["a" * 200, "b"])
    frame["part"] = ["c" * 60, "d"]
    path = _written(frame, tmp_path / "d.parquet")
    with pytest.raises(InputError, match="row 1, columns 'pid' \\+ 'part': the id is 261"):
        prepare_declarations(path, ColumnMapping(("pid", "part"), ("farm",), "crop"))
    holdings = _written(_frame(["a", "b"], farms=["F", "h" * 300]), tmp_path / "h.parquet")
    with pytest.raises(InputError, match="row 2, column 'farm': the id is 300"):
        prepare_declarations(holdings, MAPPING)


def test_duplicate_suffixes_may_not_make_an_id_too_long(tmp_path: Path) -> None:
    longest = "p" * MAX_ID_LENGTH
    path = _written(_frame(["a", longest, longest]), tmp_path / "d.gpkg")
    expected = r"2 ids are longer than 254 characters with their duplicate suffixes: row 2: "
    with pytest.raises(InputError, match=expected):
        prepare_declarations(path, MAPPING, on_duplicate_id="suffix")
    short = _written(_frame(["a", "b" * 250, "b" * 250]), tmp_path / "s.gpkg")
    assert _ori_ids(short, on_duplicate_id="suffix")[1:] == ["b" * 250 + "-A", "b" * 250 + "-B"]


def test_a_dropped_non_polygon_with_a_bad_id_does_not_stop_the_import(tmp_path: Path) -> None:
    geometries = [_square(0), LineString([(X0, Y0), (X0 + 10, Y0)])]
    path = _written(_frame(np.array([1.0, 1e300]), geometries=geometries), tmp_path / "d.gpkg")
    prepared = prepare_declarations(path, MAPPING, skip_non_polygons=True)
    assert prepared.parcels["ori_id"].tolist() == ["1"]
    assert prepared.report.dropped_geometry_types == {"LineString": 1}


def test_join_lists_every_bad_row_up_to_ten() -> None:
    frame = pd.DataFrame({"pid": [1e300] * 12 + [5.0]})
    with pytest.raises(InputError) as raised:
        join_id_columns(frame, ["pid"], label="f.gpkg", rows=np.arange(1, 14))
    message = str(raised.value)
    assert message.startswith("f.gpkg: 12 invalid ids: row 1, column 'pid'")
    assert "row 10, column" in message
    assert "row 11, column" not in message
    assert message.endswith("and 2 more")
    lenient = join_id_columns(frame, ["pid"], strict=False)
    assert lenient.isna().sum() == 12
    assert lenient.iloc[-1] == "5"
