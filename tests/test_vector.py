"""Reading vector files: formats, zip members, layers and every kind of bad file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

from capmon.errors import CRSError, InputError
from capmon.vector import read_vector


def _frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"parcel": ["a", "b"]},
        geometry=[box(0, 0, 100, 100), box(100, 0, 200, 100)],
        crs=31370,
    )


def test_formats_round_trip(tmp_path: Path) -> None:
    frame = _frame()
    frame.to_file(tmp_path / "p.gpkg", layer="parcels")
    frame.to_file(tmp_path / "p.shp.zip", driver="ESRI Shapefile")
    frame.to_parquet(tmp_path / "p.parquet")
    with zipfile.ZipFile(tmp_path / "inside.zip", "w") as archive:
        archive.write(tmp_path / "p.gpkg", "folder/p.gpkg")
    with zipfile.ZipFile(tmp_path / "pq.zip", "w") as archive:
        archive.write(tmp_path / "p.parquet", "data.geoparquet")
    for name in ("p.gpkg", "p.shp.zip", "p.parquet", "inside.zip", "pq.zip"):
        read = read_vector(tmp_path / name)
        assert list(read.frame["parcel"]) == ["a", "b"], name
        assert read.frame.crs is not None
        assert read.frame.crs.to_epsg() == 31370, name
    assert read_vector(tmp_path / "inside.zip").member == "folder/p.gpkg"


def test_layers(tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    _frame().to_file(path, layer="first")
    _frame().to_file(path, layer="second")
    with pytest.raises(InputError, match=r"several layers; choose one with --layer: first"):
        read_vector(path)
    assert read_vector(path, "second").layer == "second"
    with pytest.raises(InputError, match="no layer 'third'; layers: first, second"):
        read_vector(path, "third")


def test_bad_files(tmp_path: Path) -> None:
    (tmp_path / "empty.gpkg").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.gpkg: the file is empty"):
        read_vector(tmp_path / "empty.gpkg")
    (tmp_path / "text.shp").write_text("hello")
    with pytest.raises(InputError, match=r"text\.shp: not a readable vector file"):
        read_vector(tmp_path / "text.shp")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(InputError, match=r"junk\.parquet: not a readable GeoParquet file"):
        read_vector(tmp_path / "junk.parquet")
    with zipfile.ZipFile(tmp_path / "docs.zip", "w") as archive:
        archive.writestr("readme.txt", "nothing here")
    with pytest.raises(InputError, match=r"docs\.zip: the zip archive holds no vector file"):
        read_vector(tmp_path / "docs.zip")
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as archive:
        archive.writestr("a.geojson", _frame().to_crs(4326).to_json())
        archive.writestr("b.geojson", _frame().to_crs(4326).to_json())
    with pytest.raises(InputError, match="several vector files; choose one with --layer"):
        read_vector(tmp_path / "many.zip")
    assert len(read_vector(tmp_path / "many.zip", "b.geojson").frame) == 2
    _frame().iloc[:0].to_file(tmp_path / "none.gpkg")
    with pytest.raises(InputError, match="contains no features"):
        read_vector(tmp_path / "none.gpkg")
    with pytest.raises(InputError, match="file not found"):
        read_vector(tmp_path / "missing.gpkg")


def test_missing_crs_is_an_error(tmp_path: Path) -> None:
    frame = _frame().set_crs(None, allow_override=True)
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        frame.to_file(tmp_path / "nocrs.shp")
    with pytest.raises(CRSError, match=r"nocrs\.shp: has no coordinate reference system"):
        read_vector(tmp_path / "nocrs.shp")
    assert read_vector(tmp_path / "nocrs.shp", require_crs=False).frame.crs is None


def test_every_shared_lpis_sample_is_readable(shared_data: Path) -> None:
    root = shared_data / "fiboa_lpis_samples"
    samples = {
        "at": "tests/data-files/convert/at/inspire_schlaege_2025-1_polygon.gpkg.zip",
        "be_vlg": "tests/data-files/convert/be_vlg/"
        "Landbouwgebruikspercelen_2023_-_Definitief_(extractie_28-03-2024)_GPKG.zip",
        "cz": "extracted/cz_GEOPROSTOR_ZADOSTI23_2024.zip",
        "dk": "tests/data-files/convert/dk/Marker_2026.zip",
        "fr": "extracted/fr_RPG_2022_PARCELLES_GRAPHIQUES.gpkg",
        "it_1": "tests/data-files/convert/it_1/iti1_2023.parquet",
        "lt": "tests/data-files/convert/lt/LT_2024.zip",
        "lv": "tests/data-files/convert/lv/1_100.xml",
        "ie": "tests/data-files/convert/ie/GSAA_2024.zip",
    }
    for name, relative in samples.items():
        read = read_vector(root / relative)
        assert len(read.frame) == 100, name
        assert read.frame.crs is not None, name
