"""Terrain attributes of parcels from a DEM (``capmon declarations terrain``), and their way
into L4A as an attributes file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.errors import CRSError, InputError
from capmon.mdb.terrain import terrain_attributes, write_attributes
from capmon.processors.l4a import read_attributes

X0, Y0 = 500_000.0, 5_600_000.0  # the DEM's upper left corner (EPSG:32631)


def _dem(
    path: Path,
    values: np.ndarray,
    *,
    crs: object = 32631,
    size: float = 10.0,
    origin: tuple[float, float] = (X0, Y0),
    nodata: float | None = -9999.0,
) -> Path:
    transform = Affine(size, 0.0, origin[0], 0.0, -size, origin[1])
    with rasterio.open(
        path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
        dtype="float32", crs=crs, transform=transform, nodata=nodata,
    ) as target:  # fmt: skip
        target.write(values.astype(np.float32), 1)
    return path


def _plane(rows: int = 100, cols: int = 100) -> np.ndarray:
    """100 m + 0.1 m per metre eastward (10 m pixels: 1 m per pixel): slope atan(0.1)."""
    return np.tile(100.0 + np.arange(cols) * 1.0 + 0.5, (rows, 1))


def _parcels(boxes: list[tuple[float, float, float, float]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"NewID": np.arange(1, len(boxes) + 1), "ori_id": [f"p{i + 1}" for i in range(len(boxes))]},
        geometry=[box(*b) for b in boxes],
        crs=32631,
    )


def test_elevation_and_slope_of_a_tilted_plane(tmp_path: Path) -> None:
    dem = _dem(tmp_path / "dem.tif", _plane())
    parcels = _parcels([
        (X0 + 100, Y0 - 300, X0 + 200, Y0 - 200),  # 100 x 100 m: 100 pixels
        (X0 + 500, Y0 - 600, X0 + 800, Y0 - 500),
        (X0 + 302, Y0 - 408, X0 + 306, Y0 - 404),  # 4 x 4 m: no pixel centre inside
        (X0 + 5000, Y0 - 5000, X0 + 5100, Y0 - 4900),  # outside the DEM
    ])  # fmt: skip
    result = terrain_attributes(parcels, dem)
    table = result.table.set_index("NewID")
    # the mean elevation is the plane at the parcel's centre (x - X0 metres east: 100 + x/10)
    assert table.loc[1, "elevation"] == pytest.approx(100 + 150 / 10, abs=0.01)
    assert table.loc[2, "elevation"] == pytest.approx(100 + 650 / 10, abs=0.01)
    assert table.loc[3, "elevation"] == pytest.approx(100 + 30.5, abs=0.01)  # its pixel's value
    expected = math.degrees(math.atan(0.1))
    assert table.loc[[1, 2, 3], "slope"].to_numpy() == pytest.approx([expected] * 3, abs=0.001)
    assert np.isnan(table.loc[4, "elevation"])
    assert np.isnan(table.loc[4, "slope"])
    assert result.outside == 1
    assert table["ori_id"].tolist() == ["p1", "p2", "p3", "p4"]


def test_nodata_and_a_geographic_dem(tmp_path: Path) -> None:
    values = _plane()
    values[:, :30] = -9999.0  # the western 300 m are nodata
    dem = _dem(tmp_path / "holes.tif", values)
    parcels = _parcels(
        [(X0 + 50, Y0 - 300, X0 + 150, Y0 - 200), (X0 + 500, Y0 - 300, X0 + 600, Y0 - 200)]
    )
    table = terrain_attributes(parcels, dem).table.set_index("NewID")
    assert np.isnan(table.loc[1, "elevation"])
    assert table.loc[2, "elevation"] == pytest.approx(155.0, abs=0.01)
    # a DEM in degrees: 0.0001 deg pixels, 1 m more per row southward at 50.5 N: the slope is
    # atan(1 m / 11.132 m), the metres of 0.0001 deg of latitude
    rows = np.tile((np.arange(200) * 1.0)[:, None], (1, 200))
    geographic = _dem(tmp_path / "wgs84.tif", rows, crs=4326, size=0.0001, origin=(3.0, 50.51))
    lonlat = gpd.GeoDataFrame(
        {"NewID": [7]}, geometry=[box(3.005, 50.5, 3.006, 50.501)], crs=4326
    ).to_crs(32631)
    slope = terrain_attributes(lonlat, geographic).table.loc[0, "slope"]
    assert slope == pytest.approx(math.degrees(math.atan(1 / 11.132)), abs=0.01)


def test_bad_dems_and_parcels_are_named(tmp_path: Path) -> None:
    parcels = _parcels([(X0 + 100, Y0 - 300, X0 + 200, Y0 - 200)])
    with pytest.raises(InputError, match=r"missing.tif: DEM not found"):
        terrain_attributes(parcels, tmp_path / "missing.tif")
    (tmp_path / "text.tif").write_text("not a raster")
    with pytest.raises(InputError, match=r"text.tif: not a readable raster"):
        terrain_attributes(parcels, tmp_path / "text.tif")
    no_crs = _dem(tmp_path / "no-crs.tif", _plane(), crs=None)
    with pytest.raises(CRSError, match=r"no-crs.tif: the DEM has no CRS"):
        terrain_attributes(parcels, no_crs)
    dem = _dem(tmp_path / "dem.tif", _plane())
    with pytest.raises(CRSError, match="the parcels have no CRS"):
        terrain_attributes(parcels.set_crs(None, allow_override=True), dem)
    with pytest.raises(InputError, match=r"terrain.txt: write the attributes as .csv or .parquet"):
        write_attributes(pd.DataFrame({"NewID": [1]}), tmp_path / "terrain.txt")


def test_the_attributes_file_feeds_l4a(tmp_path: Path) -> None:
    dem = _dem(tmp_path / "dem.tif", _plane())
    parcels = _parcels([(X0 + 100, Y0 - 300, X0 + 200, Y0 - 200),
                        (X0 + 500, Y0 - 600, X0 + 800, Y0 - 500)])  # fmt: skip
    table = terrain_attributes(parcels, dem).table
    for name in ("terrain.csv", "terrain.parquet"):
        written = write_attributes(table, tmp_path / name)
        joined = read_attributes(written, parcels)
        assert joined.names == ("elevation", "slope")
        assert joined.parcels["elevation"].tolist() == pytest.approx([115.0, 165.0], abs=0.01)


def test_cli_writes_the_attributes_of_the_stored_declarations(tmp_path: Path) -> None:
    runner = CliRunner()
    home = ["--home", str(tmp_path / "ws")]
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box(2.9, 50.45, 3.3, 50.7)], crs=4326).to_file(aoi)
    created = runner.invoke(app, [*home, "site", "create", "Hills", "--aoi", str(aoi)])
    assert created.exit_code == 0, created.output
    declared = _parcels(
        [(X0 + 100, Y0 - 300, X0 + 200, Y0 - 200), (X0 + 500, Y0 - 600, X0 + 800, Y0 - 500)]
    ).assign(crop=[11, 12])
    declared.drop(columns="NewID").to_file(tmp_path / "decl.gpkg")
    imported = runner.invoke(app, [*home, "declarations", "import", "Hills", "2024",
                                   str(tmp_path / "decl.gpkg"), "--parcel-id-col", "ori_id",
                                   "--crop-code-col", "crop"])  # fmt: skip
    assert imported.exit_code == 0, imported.output
    dem = _dem(tmp_path / "dem.tif", _plane())
    out = tmp_path / "terrain.csv"
    done = runner.invoke(app, [*home, "declarations", "terrain", "Hills", "2024", "--dem",
                               str(dem), "--out", str(out), "--json"])  # fmt: skip
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert (summary["parcels"], summary["without_value"]) == (2, 0)
    written = pd.read_csv(out, sep=";", dtype={"ori_id": str})
    assert sorted(written["ori_id"]) == ["p1", "p2"]
    assert sorted(written["elevation"]) == pytest.approx([115.0, 165.0], abs=0.01)
    missing = runner.invoke(app, [*home, "declarations", "terrain", "Hills", "2024", "--dem",
                                  str(tmp_path / "none.tif"), "--out", str(out)])  # fmt: skip
    assert missing.exit_code != 0
    assert "none.tif: DEM not found" in missing.output
