"""Writers of real product formats: Sen2Cor SAFE, MAJA / THEIA, Sen4CAP S1 L2."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from capmon.errors import ConflictError, InputError, StorageError
from capmon.grid import s2_tile
from capmon.sources.naming import (
    parse_maja_name,
    parse_s1_name,
    parse_sen2cor_name,
    s1_product_name,
)
from capmon.synth.formats import (
    CLM_BITS,
    MG2_BITS,
    S2_BANDS,
    S2Acquisition,
    absolute_orbit,
    maja_product_name,
    reflectance_to_dn,
    sen2cor_product_name,
    write_maja,
    write_s1_amplitude,
    write_s1_coherence,
    write_sen2cor_safe,
)
from capmon.synth.formats import sen2cor as sen2cor_module

SIZE = 60  # 10 m pixels: 30 at 20 m, 10 at 60 m
TILE = s2_tile("31UFS")
SENSING = datetime(2024, 5, 3, 10, 50, 31, 24_000, tzinfo=UTC)


def _acquisition(**changes: Any) -> S2Acquisition:
    values: dict[str, Any] = {
        "tile": "31UFS",
        "spacecraft": "S2A",
        "sensing_time": SENSING,
        "processing_baseline": "05.10",
        "relative_orbit": 51,
        "epsg": TILE.epsg,
        "ulx": TILE.ulx + 600,
        "uly": TILE.uly - 1200,
        "width_10m": SIZE,
        "height_10m": SIZE,
        "sun_zenith": 35.5,
        "sun_azimuth": 160.25,
        "view_zenith": 5.0,
        "view_azimuth": 100.0,
        "cloud_cover": 12.5,
    }
    values.update(changes)
    return S2Acquisition(**values)


def _reflectance(seed: int = 0) -> dict[str, npt.NDArray[np.float32]]:
    """Random reflectances, with no data in the first row."""
    rng = np.random.default_rng(seed)
    bands = {band: (rng.random((SIZE, SIZE)) * 0.5).astype(np.float32) for band in S2_BANDS}
    for values in bands.values():
        values[0, :] = np.nan
    return bands


def _checkerboard() -> dict[str, npt.NDArray[np.float64]]:
    """Each 2x2 block holds 0.1, 0.2, 0.3, 0.4 (20 m mean 0.25); row 0 of B05 is no data."""
    block = np.array([[0.1, 0.2], [0.3, 0.4]])
    bands = {band: np.tile(block, (SIZE // 2, SIZE // 2)) for band in S2_BANDS}
    bands["B05"] = bands["B05"].copy()
    bands["B05"][0, 0] = np.nan
    return bands


def _scl() -> npt.NDArray[np.uint8]:
    return (np.arange(30 * 30).reshape(30, 30) % 12).astype(np.uint8)


def _subdatasets(path: Path) -> list[str]:
    # The product-level dataset is a container of subdatasets: it has no geotransform, in
    # real products as here, so GDAL's SENTINEL2 driver reports it as not georeferenced.
    with pytest.warns(NotGeoreferencedWarning):
        product = rasterio.open(path / "MTD_MSIL2A.xml")
    with product:
        assert product.driver == "SENTINEL2"
        return list(product.subdatasets)


def _xml(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def _text(root: ET.Element, path: str) -> str:
    element = root.find(path)
    assert element is not None, path
    return element.text or ""


# --------------------------------------------------------------------------------------------
# Sen2Cor SAFE


def test_sen2cor_product_opens_with_the_gdal_sentinel2_driver(tmp_path: Path) -> None:
    acq = _acquisition()
    reflectance = _reflectance()
    scl = _scl()
    product = write_sen2cor_safe(tmp_path, acq, reflectance, scl)

    assert product.name == "S2A_MSIL2A_20240503T105031_N0510_R051_T31UFS_20240503T165031.SAFE"
    prefix = f"SENTINEL2_L2A:{product / 'MTD_MSIL2A.xml'}"
    assert _subdatasets(product) == [
        f"{prefix}:10m:EPSG_32631",
        f"{prefix}:20m:EPSG_32631",
        f"{prefix}:60m:EPSG_32631",
        f"{prefix}:TCI:EPSG_32631",
    ]
    with rasterio.open(f"{prefix}:10m:EPSG_32631") as ds:
        assert ds.crs.to_epsg() == 32631
        assert ds.transform == acq.transform(10)
        assert ds.shape == (SIZE, SIZE)
        assert [d.split(",")[0] for d in ds.descriptions] == ["B4", "B3", "B2", "B8", "AOT", "WVP"]
        assert ds.tags()["PROCESSING_BASELINE"] == "05.10"
        assert ds.tags()["CLOUD_COVERAGE_ASSESSMENT"] == "12.5"
        assert ds.tags(1)["BOA_ADD_OFFSET"] == "-1000"
        red = ds.read(1)
    expected = np.rint(reflectance["B04"].astype(np.float64) * 10_000) + 1_000
    assert np.array_equal(red[1:], expected[1:].astype(np.uint16))
    assert (red[0] == 0).all()
    with rasterio.open(f"{prefix}:20m:EPSG_32631") as ds:
        assert ds.transform == acq.transform(20)
        names = [d.split(",")[0] for d in ds.descriptions]
        assert np.array_equal(ds.read(names.index("SCL") + 1), scl)
    with rasterio.open(f"{prefix}:60m:EPSG_32631") as ds:
        assert ds.shape == (10, 10)
        names = [d.split(",")[0] for d in ds.descriptions]
        assert np.array_equal(ds.read(names.index("SCL") + 1), scl[1::3, 1::3])


def test_sen2cor_band_files_are_plain_georeferenced_lossless_jp2(tmp_path: Path) -> None:
    acq = _acquisition()
    product = write_sen2cor_safe(tmp_path, acq, _checkerboard(), _scl())
    granule = next((product / "GRANULE").iterdir())
    stamp = "T31UFS_20240503T105031"
    for resolution, bands in sen2cor_module.RESOLUTION_BANDS.items():
        folder = granule / "IMG_DATA" / f"R{resolution}m"
        layers = {*bands, "TCI", "AOT", "WVP"} | ({"SCL"} if resolution != 10 else set())
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            f"{stamp}_{layer}_{resolution}m.jp2" for layer in layers
        )
        for path in folder.iterdir():
            with rasterio.open(path) as ds:
                assert ds.driver == "JP2OpenJPEG"
                assert ds.crs.to_epsg() == 32631
                assert ds.transform == acq.transform(resolution)
                assert ds.shape == acq.shape(resolution)
    assert sorted(p.name for p in (granule / "QI_DATA").iterdir()) == [
        "MSK_CLDPRB_20m.jp2",
        "MSK_CLDPRB_60m.jp2",
        "MSK_SNWPRB_20m.jp2",
        "MSK_SNWPRB_60m.jp2",
    ]
    assert not list(product.rglob("*.aux.xml"))
    # Block means: every 2x2 and 6x6 block of the checkerboard averages 0.25 (DN 3500), and a
    # block with a no-data pixel is no data.
    with rasterio.open(granule / "IMG_DATA" / "R20m" / f"{stamp}_B05_20m.jp2") as ds:
        b05 = ds.read(1)
        assert ds.profile["dtype"] == "uint16"
    assert b05[0, 0] == 0
    assert (b05.ravel()[1:] == 3_500).all()
    with rasterio.open(granule / "IMG_DATA" / "R60m" / f"{stamp}_B01_60m.jp2") as ds:
        assert (ds.read(1) == 3_500).all()
    with rasterio.open(granule / "IMG_DATA" / "R10m" / f"{stamp}_B02_10m.jp2") as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION_REVERSIBILITY"] == "LOSSLESS"
        assert np.array_equal(ds.read(1)[:2, :2], [[2_000, 3_000], [4_000, 5_000]])


def test_sen2cor_metadata_agrees_with_the_name(tmp_path: Path) -> None:
    acq = _acquisition(spacecraft="S2B", relative_orbit=8, processing_baseline="99.99")
    product = write_sen2cor_safe(tmp_path, acq, _reflectance(), _scl(), fmt="cog")
    name = parse_sen2cor_name(product.name)
    assert product.name.startswith("S2B_MSIL2A_20240503T105031_N9999_R008_T31UFS_")
    orbit = absolute_orbit("S2B", SENSING, 8)

    main = _xml(product / "MTD_MSIL2A.xml")
    assert (
        main.tag
        == "{https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd}Level-2A_User_Product"
    )
    info = ".//Product_Info"
    assert _text(main, f"{info}/PRODUCT_URI") == product.name
    assert _text(main, f"{info}/PRODUCT_TYPE") == "S2MSI2A"
    assert _text(main, f"{info}/PROCESSING_BASELINE") == "99.99"
    assert _text(main, f"{info}/PRODUCT_START_TIME") == "2024-05-03T10:50:31.024Z"
    assert _text(main, f"{info}/Datatake/SPACECRAFT_NAME") == "Sentinel-2B"
    assert _text(main, f"{info}/Datatake/SENSING_ORBIT_NUMBER") == "8"
    datatake = main.find(f"{info}/Datatake")
    assert datatake is not None
    assert datatake.get("datatakeIdentifier") == f"GS2B_20240503T105031_{orbit:06d}_N99.99"
    assert _text(main, ".//Cloud_Coverage_Assessment") == "12.5"
    offsets = main.findall(".//BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET")
    assert [o.text for o in offsets] == ["-1000"] * 13
    images = [e.text or "" for e in main.findall(".//Granule/IMAGE_FILE")]
    granule_dir = f"GRANULE/L2A_T31UFS_A{orbit:06d}_20240503T105031"
    assert all(image.startswith(f"{granule_dir}/IMG_DATA/R") for image in images)
    # capmon's .tif convenience: the same names with a .tif extension.
    assert all((product / f"{image}.tif").is_file() for image in images)
    assert len(images) == 7 + 14 + 15

    tile = _xml(product / granule_dir / "MTD_TL.xml")
    geocoding = ".//Tile_Geocoding"
    assert _text(tile, f"{geocoding}/HORIZONTAL_CS_CODE") == "EPSG:32631"
    sizes = {e.get("resolution"): e for e in tile.findall(f"{geocoding}/Size")}
    assert _text(sizes["20"], "NROWS") == "30"
    assert _text(sizes["60"], "NCOLS") == "10"
    positions = tile.findall(f"{geocoding}/Geoposition")
    assert {(_text(p, "ULX"), _text(p, "ULY")) for p in positions} == {
        (str(int(acq.ulx)), str(int(acq.uly)))
    }
    assert _text(tile, ".//Mean_Sun_Angle/ZENITH_ANGLE") == "35.5"
    assert _text(tile, ".//Mean_Sun_Angle/AZIMUTH_ANGLE") == "160.25"
    assert (
        len(tile.findall(".//Mean_Viewing_Incidence_Angle_List/Mean_Viewing_Incidence_Angle")) == 13
    )
    rows = tile.findall(".//Sun_Angles_Grid/Zenith/Values_List/VALUES")
    assert len(rows) == 2
    assert (rows[0].text or "").split() == ["35.5", "35.5"]
    assert _text(tile, ".//TILE_ID").endswith(f"_A{orbit:06d}_T31UFS_N99.99")

    manifest = (product / "manifest.safe").read_text()
    assert f'href="./{granule_dir}/MTD_TL.xml"' in manifest
    assert name.relative_orbit == 8
    assert name.processing_baseline == "99.99"


def test_cog_products_hold_cloud_optimized_geotiffs(tmp_path: Path) -> None:
    acq = _acquisition()
    reflectance = _reflectance(seed=3)
    product = write_sen2cor_safe(tmp_path, acq, reflectance, _scl(), fmt="cog")
    assert not list(product.rglob("*.jp2"))
    path = next(product.rglob("T31UFS_20240503T105031_B08_10m.tif"))
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.profile["compress"] == "deflate"
        assert ds.nodata == 0
        assert ds.transform == acq.transform(10)
        nir = ds.read(1)
    expected = np.rint(reflectance["B08"][1:].astype(np.float64) * 10_000) + 1_000
    assert np.array_equal(nir[1:], expected)


def test_baselines_before_04_00_store_reflectance_without_offset(tmp_path: Path) -> None:
    acq = _acquisition(processing_baseline="03.01")
    product = write_sen2cor_safe(tmp_path, acq, _checkerboard(), _scl(), fmt="cog")
    assert "_N0301_" in product.name
    with rasterio.open(next(product.rglob("*_B05_20m.tif"))) as ds:
        assert (ds.read(1).ravel()[1:] == 2_500).all()
    main = _xml(product / "MTD_MSIL2A.xml")
    assert main.find(".//BOA_ADD_OFFSET_VALUES_LIST") is None
    assert _text(main, ".//L2A_BOA_QUANTIFICATION_VALUE") == "10000.0"


def test_reflectance_to_dn_quantifies_and_keeps_zero_for_no_data() -> None:
    values = np.array([0.0, 0.12345, -0.05, np.nan, -0.5, 7.0])
    assert reflectance_to_dn(values, "05.10").tolist() == [1000, 2234, 500, 0, 1, 65534]
    assert reflectance_to_dn(values, "02.14").tolist() == [1, 1234, 1, 0, 1, 65534]
    with pytest.raises(InputError, match="processing_baseline"):
        reflectance_to_dn(values, "5.1")


def test_sen2cor_names_round_trip() -> None:
    acq = _acquisition(generation_time=datetime(2024, 5, 3, 16, 12, 10, tzinfo=UTC))
    name = sen2cor_product_name(acq)
    assert name == "S2A_MSIL2A_20240503T105031_N0510_R051_T31UFS_20240503T161210.SAFE"
    parsed = parse_sen2cor_name(name)
    assert parsed.safe_name == name
    assert parsed.sensing_time == SENSING.replace(microsecond=0)
    assert (parsed.spacecraft, parsed.tile, parsed.relative_orbit) == ("S2A", "31UFS", 51)
    assert parse_sen2cor_name(f"/data/{name[:-5]}") == parsed
    for bad in ("S2A_MSIL1C_20240503T105031_N0510_R051_T31UFS_20240503T161210.SAFE", "x.SAFE"):
        with pytest.raises(InputError, match="not a Sentinel-2 L2A product name"):
            parse_sen2cor_name(bad)
    with pytest.raises(InputError, match="invalid date"):
        parse_sen2cor_name("S2A_MSIL2A_20241303T105031_N0510_R051_T31UFS_20240503T161210")


def test_absolute_orbits_match_real_products() -> None:
    # S2A_MSIL1C_20170102T111442_N0204_R137_T30TXT: granule A007999.
    assert absolute_orbit("S2A", datetime(2017, 1, 2, 11, 14, 42, tzinfo=UTC), 137) == 7_999
    # GS2B_20240103T101329_035655, relative orbit 22.
    assert absolute_orbit("S2B", datetime(2024, 1, 3, 10, 13, 29, tzinfo=UTC), 22) == 35_655
    # One repeat cycle (10 days, 143 orbits) later, the same relative orbit.
    later = datetime(2024, 1, 13, 10, 13, 29, tzinfo=UTC)
    assert absolute_orbit("S2B", later, 22) == 35_655 + 143


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tile": "T31UFS"}, "tile must be"),
        ({"tile": "31UFI"}, "not a Sentinel-2 MGRS tile name"),
        ({"epsg": 32632}, "epsg 32632"),
        ({"spacecraft": "L8"}, "spacecraft"),
        ({"sensing_time": datetime(2024, 5, 3, 10, 50)}, "timezone-aware"),
        ({"processing_baseline": "5.10"}, "processing_baseline"),
        ({"relative_orbit": 144}, "relative_orbit"),
        ({"width_10m": 64}, "width_10m"),
        ({"ulx": TILE.ulx + 610}, "60 m grid"),
        ({"ulx": TILE.ulx + 109_740}, "does not fit"),
        ({"sun_zenith": 95.0}, "sun_zenith"),
        ({"cloud_cover": 101.0}, "cloud_cover"),
    ],
)
def test_acquisition_rejects_bad_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        _acquisition(**changes)


def test_acquisition_accepts_numpy_integers() -> None:
    acq = _acquisition(width_10m=np.int64(SIZE), relative_orbit=np.int16(51))
    assert acq.shape(20) == (30, 30)
    assert sen2cor_product_name(acq).split("_")[4] == "R051"


def test_acquisition_converts_sensing_time_to_utc() -> None:
    cest = timezone(timedelta(hours=2))
    acq = _acquisition(sensing_time=datetime(2024, 5, 3, 12, 50, 31, 24_000, tzinfo=cest))
    assert sen2cor_product_name(acq).startswith("S2A_MSIL2A_20240503T105031_")


@pytest.mark.parametrize(
    ("reflectance", "scl", "message"),
    [
        (
            {b: v for b, v in _reflectance().items() if b != "B8A"},
            _scl(),
            r"lacks the bands \['B8A'\]",
        ),
        ({**_reflectance(), "B10": np.zeros((SIZE, SIZE))}, _scl(), "unknown bands"),
        (
            {**_reflectance(), "B04": np.zeros((SIZE, SIZE - 6))},
            _scl(),
            r"reflectance\['B04'\].*shape",
        ),
        ({**_reflectance(), "B04": np.zeros((SIZE, SIZE), np.uint16)}, _scl(), "floating-point"),
        ({**_reflectance(), "B02": np.full((SIZE, SIZE), np.inf)}, _scl(), "infinite"),
        (_reflectance(), np.zeros((SIZE, SIZE), np.uint8), "scl must have the shape"),
        (_reflectance(), np.full((30, 30), 12, np.uint8), "scl codes"),
    ],
)
def test_sen2cor_writer_rejects_bad_arrays(
    tmp_path: Path, reflectance: dict[str, Any], scl: npt.NDArray[Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        write_sen2cor_safe(tmp_path, _acquisition(), reflectance, scl)
    assert list(tmp_path.iterdir()) == []


def test_sen2cor_writer_rejects_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="fmt"):
        write_sen2cor_safe(tmp_path, _acquisition(), _reflectance(), _scl(), fmt="png")  # type: ignore[arg-type]


def test_existing_products_are_replaced_only_on_request(tmp_path: Path) -> None:
    acq = _acquisition()
    first = write_sen2cor_safe(tmp_path, acq, _checkerboard(), _scl(), fmt="cog")
    with pytest.raises(ConflictError, match="overwrite=True"):
        write_sen2cor_safe(tmp_path, acq, _reflectance(), _scl(), fmt="cog")
    second = write_sen2cor_safe(
        tmp_path, acq, _reflectance(seed=5), _scl(), fmt="cog", overwrite=True
    )
    assert second == first
    assert [p.name for p in tmp_path.iterdir()] == [first.name]
    with rasterio.open(next(second.rglob("*_B05_20m.tif"))) as ds:
        assert not (ds.read(1).ravel()[1:] == 3_500).all()


def test_a_failed_write_leaves_the_previous_product_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acq = _acquisition()
    product = write_sen2cor_safe(tmp_path, acq, _checkerboard(), _scl(), fmt="cog")
    before = sorted(p.relative_to(product) for p in product.rglob("*"))

    def broken(*args: object, **kwargs: object) -> None:
        raise StorageError("disk full")

    monkeypatch.setattr(sen2cor_module, "write_xml", broken)
    with pytest.raises(StorageError, match="disk full"):
        write_sen2cor_safe(tmp_path, acq, _reflectance(), _scl(), fmt="cog", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == [product.name]
    assert sorted(p.relative_to(product) for p in product.rglob("*")) == before


def test_a_failed_final_rename_restores_the_previous_product(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acq = _acquisition()
    product = write_sen2cor_safe(tmp_path, acq, _checkerboard(), _scl(), fmt="cog")
    before = sorted(p.relative_to(product) for p in product.rglob("*"))
    real_replace = os.replace

    def failing_replace(source: Any, destination: Any) -> None:
        if str(source).endswith(".tmp.SAFE"):  # the staged product, renamed last
            raise OSError(28, "No space left on device")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StorageError, match="No space left"):
        write_sen2cor_safe(tmp_path, acq, _reflectance(), _scl(), fmt="cog", overwrite=True)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [product.name]
    assert sorted(p.relative_to(product) for p in product.rglob("*")) == before


# --------------------------------------------------------------------------------------------
# MAJA / THEIA


def _maja_masks() -> dict[str, Any]:
    none = np.zeros((SIZE, SIZE), np.bool_)
    cloud, shadow, snow, saturated, edge, water = (none.copy() for _ in range(6))
    cloud[10:12, 10:12] = True
    shadow[20, 21] = True  # one 10 m pixel: its whole 20 m pixel is flagged
    snow[30:32, 30:32] = True
    saturated[40:42, 0:2] = True
    edge[:, -6:] = True
    water[50:52, 50:52] = True
    return {
        "cloud": cloud,
        "shadow": shadow,
        "snow": snow,
        "saturated": saturated,
        "edge": edge,
        "water": water,
    }


def test_maja_product_layout_and_reflectances(tmp_path: Path) -> None:
    acq = _acquisition(spacecraft="S2B")
    reflectance = _reflectance(seed=1)
    product = write_maja(tmp_path, acq, reflectance, **_maja_masks())
    name = "SENTINEL2B_20240503-105031-024_L2A_T31UFS_C_V3-1"
    assert product.name == name == maja_product_name(acq)
    theia_bands = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    expected = {f"{name}_{kind}_{band}.tif" for kind in ("FRE", "SRE") for band in theia_bands}
    expected |= {f"{name}_MTD_ALL.xml", "MASKS"}
    assert {p.name for p in product.iterdir()} == expected
    assert {p.name for p in (product / "MASKS").iterdir()} == {
        f"{name}_{mask}_{group}.tif"
        for mask in ("CLM", "EDG", "SAT", "MG2")
        for group in ("R1", "R2")
    }
    with rasterio.open(product / f"{name}_FRE_B4.tif") as ds:
        assert ds.profile["dtype"] == "int16"
        assert ds.nodata == -10_000
        assert ds.transform == acq.transform(10)
        assert ds.crs.to_epsg() == 32631
        red = ds.read(1)
    with rasterio.open(product / f"{name}_SRE_B4.tif") as ds:
        assert np.array_equal(ds.read(1), red)
    expected_red = np.rint(reflectance["B04"].astype(np.float64) * 10_000)
    assert np.array_equal(red[1:, :-6], expected_red[1:, :-6])
    assert (red[0] == -10_000).all()
    assert (red[:, -6:] == -10_000).all()
    with rasterio.open(product / f"{name}_FRE_B11.tif") as ds:
        assert ds.transform == acq.transform(20)
        assert ds.shape == (30, 30)
        swir = ds.read(1)
    mean = reflectance["B11"][2:4, 0:2].astype(np.float64).mean()
    assert swir[1, 0] == np.rint(mean * 10_000)
    assert (swir[:, -3:] == -10_000).all()


def test_maja_masks_follow_the_theia_bits(tmp_path: Path) -> None:
    masks = _maja_masks()
    product = write_maja(tmp_path, _acquisition(), _reflectance(seed=2), **masks)

    def read(mask: str, group: str) -> npt.NDArray[np.uint8]:
        with rasterio.open(next((product / "MASKS").glob(f"*_{mask}_{group}.tif"))) as ds:
            assert ds.profile["dtype"] == "uint8"
            values: npt.NDArray[np.uint8] = ds.read(1)
            return values

    clm, mg2, sat, edg = (read(mask, "R1") for mask in ("CLM", "MG2", "SAT", "EDG"))
    cloud_bits = 1 << CLM_BITS["clouds_and_shadows"] | 1 << CLM_BITS["clouds"]
    assert clm[10, 10] & cloud_bits == cloud_bits
    assert clm[20, 21] == 1 << CLM_BITS["clouds_and_shadows"] | 1 << CLM_BITS["cloud_shadows"]
    assert clm[5, 5] == 0
    assert mg2[10, 10] == 1 << MG2_BITS["clouds"]
    assert mg2[30, 30] == 1 << MG2_BITS["snow"]
    assert mg2[20, 21] == 1 << MG2_BITS["cloud_shadows"]
    assert mg2[50, 50] == 1 << MG2_BITS["water"]
    assert sat[40, 0] == 0b1111
    assert sat[40, 2] == 0
    # EDG: the edge band and the first row (no reflectance); masks are clear there.
    assert edg[:, -6:].all()
    assert edg[0].all()
    assert not edg[1:, :-6].any()
    clm_r2, mg2_r2, sat_r2, edg_r2 = (read(mask, "R2") for mask in ("CLM", "MG2", "SAT", "EDG"))
    assert clm_r2[10, 10] & (1 << CLM_BITS["cloud_shadows"])  # from the single 10 m pixel
    assert mg2_r2[15, 15] == 1 << MG2_BITS["snow"]
    assert sat_r2[20, 0] == 0b111111
    assert edg_r2[:, -3:].all()
    assert not edg_r2[1:, :-3].any()


def test_maja_metadata(tmp_path: Path) -> None:
    acq = _acquisition()
    product = write_maja(tmp_path, acq, _reflectance(), **_maja_masks())
    root = _xml(next(product.glob("*_MTD_ALL.xml")))
    assert root.tag == "Muscate_Metadata_Document"
    assert _text(root, ".//IDENTIFIER") == product.name
    assert _text(root, ".//GEOGRAPHICAL_ZONE") == "T31UFS"
    assert _text(root, ".//ACQUISITION_DATE") == "2024-05-03T10:50:31.024Z"
    assert _text(root, ".//PLATFORM") == "SENTINEL2A"
    assert _text(root, ".//Sun_Angles/ZENITH_ANGLE") == "35.5"
    assert _text(root, ".//QUALITY_INDEX[@name='CloudPercent']") == "12.5"
    assert _text(root, ".//SPECIAL_VALUE[@name='nodata']") == "-10000"
    groups = {g.get("group_id"): g for g in root.findall(".//Group_Geopositioning")}
    assert (_text(groups["R2"], "NROWS"), _text(groups["R2"], "XDIM")) == ("30", "20")
    assert _text(groups["R1"], "ULX") == str(int(acq.ulx))
    files = {e.text for e in root.findall(".//Mask_File_List/MASK_FILE")}
    assert all((product / str(f)).is_file() for f in files)
    assert len(files) == 8


def test_maja_names_round_trip() -> None:
    parsed = parse_maja_name("SENTINEL2A_20240503-105031-024_L2A_T31UFS_C_V3-1")
    assert parsed.acquisition_time == SENSING
    assert (parsed.spacecraft, parsed.tile, parsed.version) == ("S2A", "31UFS", "3-1")
    assert parsed.product_name == "SENTINEL2A_20240503-105031-024_L2A_T31UFS_C_V3-1"
    with pytest.raises(InputError, match="THEIA"):
        parse_maja_name("SENTINEL2A_20240503-105031_L2A_T31UFS_C_V3-1")


def test_maja_writer_rejects_bad_masks(tmp_path: Path) -> None:
    masks = _maja_masks()
    with pytest.raises(InputError, match="cloud must be a boolean array"):
        write_maja(
            tmp_path,
            _acquisition(),
            _reflectance(),
            **{**masks, "cloud": masks["cloud"].astype(np.uint8)},
        )
    with pytest.raises(InputError, match="snow must have the shape"):
        write_maja(
            tmp_path, _acquisition(), _reflectance(), **{**masks, "snow": masks["snow"][:30]}
        )
    partial = {b: v for b, v in _reflectance().items() if b != "B05"}
    with pytest.raises(InputError, match="lacks the bands"):
        write_maja(tmp_path, _acquisition(), partial, **masks)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Sentinel-1


# The file name regexes of Sen4CAP (sen2agri-orchestrator s1l2producthelper.cpp).
SEN4CAP_V1 = re.compile(
    r"SEN4CAP_(L2A)_.*_V(\d{8}T\d{6})_(\d{8}T\d{6})_(VH|VV)_(\d{3})_(?:.+)?(AMP|COHE)(\.tif)?"
)
SEN4CAP_V2 = re.compile(
    r"S1[A-D]_(L2)_(BCK|COH)_(\d{8}T\d{6})(_(\d{8}T\d{6}))?_(VH|VV)_(\d{3})_(\d{2}\w{3})(\.tif)?"
)
GRID = Affine(20.0, 0.0, 3_900_000.0, 0.0, -20.0, 3_100_000.0)
T1 = datetime(2020, 4, 4, 16, 50, 41, 500_000, tzinfo=UTC)
T0 = datetime(2020, 3, 29, 16, 51, 22, tzinfo=UTC)


def test_s1_amplitude_geotiff(tmp_path: Path) -> None:
    amplitude = np.full((40, 50), 0.25, np.float32)
    amplitude[0, 0] = np.nan
    path = write_s1_amplitude(
        tmp_path,
        site_id=7,
        polarisation="VH",
        relative_orbit=146,
        time=T1,
        time_pair=T0,
        amplitude=amplitude,
        transform=GRID,
        epsg=3035,
        orbit_direction="ASC",
    )
    assert path.name == "SEN4CAP_L2A_S7_V20200404T165041_20200329T165122_VH_146_AMP.tif"
    assert SEN4CAP_V1.fullmatch(path.name)
    with rasterio.open(path) as ds:
        assert ds.profile["dtype"] == "float32"
        assert ds.nodata == 0
        assert ds.profile["compress"] == "deflate"
        assert ds.profile["tiled"]
        assert ds.crs.to_epsg() == 3035
        assert ds.transform == GRID
        assert ds.descriptions == ("VH amplitude",)
        tags = ds.tags()
        values = ds.read(1)
    assert values[0, 0] == 0
    assert (values.ravel()[1:] == np.float32(0.25)).all()
    assert tags["POLARISATION"] == "VH"
    assert tags["ORBIT_DIRECTION"] == "ASC"
    assert tags["ACQUISITION_TIME"] == "2020-04-04T16:50:41Z"
    assert tags["PAIR_TIME"] == "2020-03-29T16:51:22Z"
    assert tags["VALUE_CONVENTION"].startswith("amplitude=sqrt(sigma0)")
    assert list(tmp_path.iterdir()) == [path]


def test_s1_coherence_geotiff_with_v2_name(tmp_path: Path) -> None:
    coherence = np.linspace(0, 1, 20 * 30).reshape(20, 30)
    path = write_s1_coherence(
        tmp_path,
        site_id=7,
        polarisation="VV",
        relative_orbit=96,
        time=datetime(2020, 1, 14, 7, 2, 38, tzinfo=UTC),
        time_pair=datetime(2020, 1, 8, 7, 1, 56, tzinfo=UTC),
        coherence=coherence,
        transform=GRID,
        epsg=3035,
        tile="28RBR",
        naming="v2",
        spacecraft="S1B",
    )
    assert path.name == "S1B_L2_COH_20200114T070238_20200108T070156_VV_096_28RBR.tif"
    assert SEN4CAP_V2.fullmatch(path.name)
    with rasterio.open(path) as ds:
        assert np.allclose(ds.read(1), coherence.astype(np.float32))
        assert ds.tags()["PRODUCT_TYPE"] == "COHE"
        assert ds.tags()["TILE"] == "28RBR"
        assert "ORBIT_DIRECTION" not in ds.tags()


@pytest.mark.parametrize(
    "name",
    [
        "SEN4CAP_L2A_S7_V20200404T165041_20200329T165122_VH_146_AMP.tif",
        "SEN4CAP_L2A_S12_V20200404T165041_20200329T165122_VV_001_COHE.tif",
        "SEN4CAP_L2A_S7_V20200404T165041_20200329T165122_VH_146_AMP_31UFS.tif",
        "S1A_L2_BCK_20200114T070238_VV_096_28RBR.tif",
        "S1A_L2_COH_20200114T070238_20200108T070156_VV_096_28RBR.tif",
    ],
)
def test_s1_names_round_trip(name: str) -> None:
    parsed = parse_s1_name(name)
    assert parsed.filename == name
    assert parse_s1_name(f"/archive/{name}") == parsed


def test_s1_name_fields() -> None:
    v1 = parse_s1_name("SEN4CAP_L2A_S7_V20200404T165041_20200329T165122_VH_146_AMP_31UFS.tif")
    assert (v1.kind, v1.polarisation, v1.relative_orbit, v1.site_id) == ("AMP", "VH", 146, 7)
    assert (v1.time, v1.time_pair) == (T1.replace(microsecond=0), T0)
    assert (v1.tile, v1.spacecraft, v1.naming) == ("31UFS", None, "v1")
    v2 = parse_s1_name("S1A_L2_BCK_20200114T070238_VV_096_28RBR.tif")
    assert (v2.kind, v2.time_pair, v2.spacecraft, v2.naming) == ("AMP", None, "S1A", "v2")
    built = s1_product_name(
        "AMP",
        site_id=7,
        polarisation="VV",
        relative_orbit=96,
        time=v2.time,
        time_pair=T0,
        tile="28RBR",
        naming="v2",
    )
    assert built == v2
    for bad in (
        "S1A_L2_BCK_20200114T070238_20200108T070156_VV_096_28RBR.tif",
        "S1A_L2_COH_20200114T070238_VV_096_28RBR.tif",
    ):
        with pytest.raises(InputError, match="BCK names have one date"):
            parse_s1_name(bad)
    with pytest.raises(InputError, match="not a Sen4CAP S1 L2 name"):
        parse_s1_name("SEN4CAP_L2A_S7_V20200404T165041_VH_146_AMP.tif")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"coherence": np.full((4, 4), 1.5)}, "must not exceed 1.0"),
        ({"coherence": np.full((4, 4), -0.1)}, "must not be negative"),
        ({"coherence": np.zeros((4, 4), np.int16)}, "floating-point"),
        ({"coherence": np.zeros(4)}, "2-D"),
        ({"time": T0, "time_pair": T1}, "later acquisition"),
        ({"time": datetime(2020, 4, 4)}, "timezone-aware"),
        ({"polarisation": "HH"}, "polarisation"),
        ({"relative_orbit": 0}, "relative_orbit"),
        ({"naming": "v2"}, "tile is required"),
        ({"tile": "T31UFS"}, "tile must be"),
        ({"naming": "v2", "tile": "31UFS", "spacecraft": "S2A"}, "spacecraft"),
        ({"site_id": 0}, "site_id"),
        ({"orbit_direction": "NORTH"}, "orbit_direction"),
        ({"epsg": "3035"}, "epsg"),
    ],
)
def test_s1_writers_reject_bad_arguments(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {
        "site_id": 7,
        "polarisation": "VV",
        "relative_orbit": 96,
        "time": T1,
        "time_pair": T0,
        "coherence": np.full((4, 4), 0.5),
        "transform": GRID,
        "epsg": 3035,
    }
    arguments.update(changes)
    with pytest.raises(InputError, match=message):
        write_s1_coherence(tmp_path, **arguments)
    assert list(tmp_path.iterdir()) == []


def test_s1_existing_file_needs_overwrite(tmp_path: Path) -> None:
    arguments: dict[str, Any] = {
        "site_id": 7,
        "polarisation": "VV",
        "relative_orbit": 96,
        "time": T1,
        "time_pair": T0,
        "transform": GRID,
        "epsg": 3035,
    }
    path = write_s1_amplitude(tmp_path, amplitude=np.full((4, 4), 0.2), **arguments)
    with pytest.raises(ConflictError):
        write_s1_amplitude(tmp_path, amplitude=np.full((4, 4), 0.3), **arguments)
    assert (
        write_s1_amplitude(tmp_path, amplitude=np.full((4, 4), 0.3), overwrite=True, **arguments)
        == path
    )
    with rasterio.open(path) as ds:
        assert (ds.read(1) == np.float32(0.3)).all()
    assert list(tmp_path.iterdir()) == [path]


def test_s2_acquisition_is_a_value() -> None:
    acq = _acquisition()
    assert replace(acq, cloud_cover=12.5) == acq
    with pytest.raises(AttributeError):
        acq.cloud_cover = 3.0  # type: ignore[misc]
