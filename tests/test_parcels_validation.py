"""GeomValid, --repair, Duplic, Overlap, Area_meters and ShapeInd on hand-made parcels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from capmon.parcels.declarations import ColumnMapping, prepare_declarations
from capmon.parcels.validation import as_multipolygons, repair
from capmon.vector import VectorFile

X0, Y0 = 500_000.0, 5_600_000.0
COLUMNS = ColumnMapping(("pid",), ("farm",), "crop")


def _declarations(geometries: Sequence[BaseGeometry], crs: int = 32631) -> VectorFile:
    frame = gpd.GeoDataFrame(
        {
            "pid": [f"P{i:02d}" for i in range(len(geometries))],
            "farm": ["F1"] * len(geometries),
            "crop": [1] * len(geometries),
        },
        geometry=geometries,
        crs=crs,
    )
    return VectorFile(frame, Path("hand-made.gpkg"), None)


def _square(x: float, y: float, size: float = 100.0) -> Polygon:
    return box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + size)


def _by_id(parcels: gpd.GeoDataFrame) -> pd.DataFrame:
    return pd.DataFrame(parcels.drop(columns="geometry")).set_index("ori_id")


def test_identical_geometries_are_duplicates_whatever_their_first_vertex() -> None:
    a = _square(0, 0)
    rotated = Polygon(list(a.exterior.coords)[2:-1] + list(a.exterior.coords)[:3])
    prepared = prepare_declarations(
        _declarations([a, rotated, _square(300, 0), _square(600, 0)]), COLUMNS
    )
    table = _by_id(prepared.parcels)
    assert table["Duplic"].tolist() == [True, True, False, False]
    assert prepared.report.counts.duplicates == 2
    listed = prepared.report.problems["duplicates"].rows
    assert [(r.row, r.ori_id) for r in listed] == [(1, "P00"), (2, "P01")]
    assert "P01" in listed[0].detail
    # a duplicate is also fully covered by the other parcel
    assert table["Overlap"].tolist() == [True, True, False, False]


def test_overlap_means_more_than_ten_percent_covered_by_other_valid_parcels() -> None:
    parcels = [
        _square(0, 0),  # P00: 20 % covered by P01
        _square(80, 0),  # P01: 20 % covered by P00, 5 % by P02
        _square(175, 0),  # P02: 5 % covered by P01
        _square(300, 0),  # P03: only touches P04
        _square(400, 0),  # P04
        _square(600, 0, 50),  # P05: inside P06
        _square(590, -10, 200),  # P06: 6.25 % covered by P05
    ]
    table = _by_id(prepare_declarations(_declarations(parcels), COLUMNS).parcels)
    assert table["Overlap"].to_dict() == {
        "P00": True,
        "P01": True,
        "P02": False,
        "P03": False,
        "P04": False,
        "P05": True,
        "P06": False,
    }


def test_invalid_geometries_are_flagged_with_the_reason_and_never_silently_repaired() -> None:
    bow_tie = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100), (X0, Y0)])
    prepared = prepare_declarations(_declarations([bow_tie, _square(50, 0)]), COLUMNS)
    table = _by_id(prepared.parcels)
    assert table["GeomValid"].tolist() == [False, True]
    assert table["repaired"].tolist() == [False, False]
    # measured on make_valid: two triangles of 2500 m² each
    assert table.loc["P00", "Area_meters"] == pytest.approx(5000, rel=1e-3)
    # invalid parcels take no part in Overlap
    assert table["Overlap"].tolist() == [False, False]
    stored = prepared.parcels.geometry.iloc[0]
    assert not stored.is_valid  # stored as declared
    invalid = prepared.report.problems["invalid"]
    assert invalid.count == 1
    assert invalid.rows[0].row == 1
    assert "Self-intersection" in invalid.rows[0].detail
    assert prepared.report.counts.invalid == 1
    assert prepared.report.counts.repaired == 0


def test_repair_keeps_the_polygonal_part_and_records_it() -> None:
    bow_tie = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100), (X0, Y0)])
    collapsed = Polygon([(X0, Y0), (X0 + 50, Y0 + 50), (X0 + 100, Y0 + 100), (X0, Y0)])
    prepared = prepare_declarations(
        _declarations([bow_tie, collapsed, _square(300, 0)]), COLUMNS, repair_geometries=True
    )
    table = _by_id(prepared.parcels)
    assert table["GeomValid"].tolist() == [True, False, True]
    assert table["repaired"].tolist() == [True, False, False]
    fixed = prepared.parcels.geometry.iloc[0]
    assert fixed.is_valid
    assert fixed.geom_type == "MultiPolygon"
    counts = prepared.report.counts
    assert (counts.invalid, counts.repaired, counts.unrepairable) == (2, 1, 1)
    assert prepared.report.problems["repaired"].rows[0].detail.startswith("repaired: ")
    assert prepared.report.problems["invalid"].rows[0].ori_id == "P01"


def test_area_and_shape_index_in_any_crs() -> None:
    square = _square(0, 0, 200)  # 4 ha
    disc = shapely.Point(X0 + 1000, Y0).buffer(100, quad_segs=64)
    projected = _by_id(prepare_declarations(_declarations([square, disc]), COLUMNS).parcels)
    # the same parcels given in lon/lat (EPSG:4326) and in LAEA Europe (EPSG:3035)
    for crs in (4326, 3035):
        frame = gpd.GeoSeries([square, disc], crs=32631).to_crs(crs)
        other = _by_id(prepare_declarations(_declarations(list(frame), crs=crs), COLUMNS).parcels)
        assert other["Area_meters"].to_numpy() == pytest.approx(
            projected["Area_meters"].to_numpy(), rel=2e-4
        )
    # UTM is conformal, not equal-area: scale factor k ~ 0.9996 near the central meridian
    assert projected.loc["P00", "Area_meters"] == pytest.approx(40_000 / 0.9996**2, rel=1e-3)
    assert projected.loc["P00", "ShapeInd"] == pytest.approx(2 / math.sqrt(math.pi), rel=1e-4)
    assert projected.loc["P01", "ShapeInd"] == pytest.approx(1.0, rel=1e-3)


def test_polygons_become_2d_multipolygons() -> None:
    geometries = np.array(
        [
            shapely.Polygon([(0, 0, 5), (1, 0, 5), (1, 1, 5), (0, 0, 5)]),
            shapely.GeometryCollection([shapely.MultiPolygon([box(2, 2, 3, 3)])]),
            shapely.Point(1, 1),
            None,
        ],
        dtype=object,
    )
    result = as_multipolygons(geometries)
    assert [g.geom_type for g in result] == ["MultiPolygon"] * 4
    assert not shapely.has_z(result[0])
    assert result[1].area == 1
    assert result[2].is_empty
    assert result[3].is_empty
    fixed, usable = repair(np.array([box(0, 0, 1, 1)], dtype=object))
    assert usable.tolist() == [True]
    assert fixed[0].equals(box(0, 0, 1, 1))
