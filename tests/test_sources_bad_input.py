"""Bad input products give clear capmon errors naming the file, the band and the product."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from capmon.errors import CapmonError, CRSError, InputError, NotFoundError
from capmon.sources import MaskConfig, open_product
from capmon.sources.raster import Calibration, no_data
from tests.test_sources_helpers import (
    landsat_product,
    maja_product,
    sen2cor_product,
    write_tif,
)

_AMP = "SEN4CAP_L2A_S7_V20240504T172405_20240428T172404_VV_088_AMP.tif"


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_jp2_band(tmp_path: Path) -> None:
    written = sen2cor_product(tmp_path, fmt="jp2")
    reader = open_product(written.path)
    band_file = next(written.path.rglob("*_B04_10m.jp2"))
    _truncate(band_file)
    with pytest.raises(InputError, match=r"band B04 of product S2B_MSIL2A_.*corrupt") as caught:
        reader.read("B04", 10)
    assert str(band_file) in str(caught.value)
    reader.read("B03", 10)  # the other bands are unaffected


def test_truncated_geotiff_band(tmp_path: Path) -> None:
    written = maja_product(tmp_path)
    reader = open_product(written.path)
    band_file = next(written.path.glob("*_FRE_B11.tif"))
    _truncate(band_file)
    with pytest.raises(InputError, match=r"band B11 of product SENTINEL2B_.*corrupt"):
        reader.read("B11", 20)
    _truncate(band_file, keep=0.01)
    with pytest.raises(CapmonError, match=r"band B11 of product SENTINEL2B_.*_FRE_B11\.tif"):
        reader.read("B11", 20)


def test_garbage_instead_of_a_raster(tmp_path: Path) -> None:
    written = landsat_product(tmp_path)
    band_file = next(written.path.glob("*_SR_B4.TIF"))
    band_file.write_bytes(b"this is not a TIFF file at all")
    reader = open_product(written.path)
    with pytest.raises(InputError, match=r"cannot open band B04 of product LC09_.*SR_B4\.TIF"):
        reader.read("B04")
    with pytest.raises(InputError, match="band B04"):
        reader.check()


def test_missing_band_file(tmp_path: Path) -> None:
    written = sen2cor_product(tmp_path, fmt="cog")
    band_file = next(written.path.rglob("*_B8A_20m.tif"))
    band_file.unlink()
    reader = open_product(written.path)
    with pytest.raises(InputError, match=r"band B8A of product S2B_MSIL2A_.* is missing"):
        reader.read("B8A", 20)
    with pytest.raises(InputError, match="band B8A"):
        reader.check()


def test_missing_mask_file(tmp_path: Path) -> None:
    written = landsat_product(tmp_path)
    next(written.path.glob("*_QA_PIXEL.TIF")).unlink()
    with pytest.raises(InputError, match=r"layer QA_PIXEL of product LC09_.* is missing"):
        open_product(written.path).valid_mask()


def test_raster_without_crs(tmp_path: Path) -> None:
    without_crs = tmp_path / _AMP
    write_tif(without_crs, np.ones((8, 8), np.float32), Affine(20, 0, 0, 0, -20, 0), None, 0)
    with pytest.raises(CRSError, match=r"band VV of product SEN4CAP_L2A_.* has no CRS"):
        open_product(without_crs)
    without_transform = tmp_path / _AMP.replace("_VV_", "_VH_")
    write_tif(without_transform, np.ones((8, 8), np.float32), None, None, 0)
    with pytest.raises(CRSError, match="band VH"):
        open_product(without_transform)


def test_band_of_a_product_without_crs(tmp_path: Path) -> None:
    written = landsat_product(tmp_path)
    band_file = next(written.path.glob("*_SR_B6.TIF"))
    write_tif(band_file, written.dn[6], written.transform, None, 0)
    reader = open_product(written.path)
    with pytest.raises(CRSError, match=r"band B11 of product LC09_.* has no CRS"):
        reader.read("B11")


def test_multi_band_s1_file(tmp_path: Path) -> None:
    path = tmp_path / _AMP
    write_tif(path, np.ones((2, 8, 8), np.float32), Affine(20, 0, 0, 0, -20, 0), 3035, 0)
    with pytest.raises(InputError, match="has 2 bands"):
        open_product(path)


def test_unreadable_metadata(tmp_path: Path) -> None:
    s2 = sen2cor_product(tmp_path / "s2", fmt="cog")
    _truncate(s2.path / "MTD_MSIL2A.xml")
    with pytest.raises(InputError, match=r"unreadable: .*MTD_MSIL2A\.xml is not valid XML"):
        open_product(s2.path)
    maja = maja_product(tmp_path / "maja")
    (maja.path / f"{maja.path.name}_MTD_ALL.xml").write_text("<broken", encoding="utf-8")
    with pytest.raises(InputError, match=r"MTD_ALL\.xml is not valid XML"):
        open_product(maja.path)
    landsat = landsat_product(tmp_path / "landsat")
    mtl = next(landsat.path.glob("*_MTL.txt"))
    _truncate(mtl)
    with pytest.raises(InputError, match=r"MTL\.txt"):
        open_product(landsat.path)


def test_unreadable_tile_metadata(tmp_path: Path) -> None:
    written = sen2cor_product(tmp_path, fmt="cog")
    tile_metadata = next(written.path.rglob("MTD_TL.xml"))
    tile_metadata.write_text("not xml", encoding="utf-8")
    reader = open_product(written.path)
    with pytest.raises(InputError, match=r"MTD_TL\.xml is not valid XML"):
        reader.angles()
    with pytest.raises(InputError, match=r"MTD_TL\.xml"):
        reader.check()


def test_metadata_without_required_element(tmp_path: Path) -> None:
    written = sen2cor_product(tmp_path, fmt="cog")
    metadata = written.path / "MTD_MSIL2A.xml"
    text = metadata.read_text(encoding="utf-8")
    start = text.index("<EXT_POS_LIST>")
    end = text.index("</EXT_POS_LIST>") + len("</EXT_POS_LIST>")
    metadata.write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(InputError, match=r"MTD_MSIL2A\.xml of product S2B_.* lacks EXT_POS_LIST"):
        open_product(written.path)


def test_paths_that_are_not_products(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        open_product(tmp_path / "nothing")
    with pytest.raises(InputError, match="not a product"):
        open_product(tmp_path)


# --- products without a cloud mask (issue 15, defect 3) --------------------------------------


def _drop_lines(path: Path, pattern: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not re.search(pattern, line)]
    assert len(kept) < len(lines), f"{pattern} is not in {path}"
    path.write_text("".join(kept), encoding="utf-8")


def _drop_elements(path: Path, pattern: str) -> None:
    text = path.read_text(encoding="utf-8")
    stripped, count = re.subn(pattern, "", text)
    assert count, f"{pattern} is not in {path}"
    path.write_text(stripped, encoding="utf-8")


def test_products_whose_metadata_names_no_mask(tmp_path: Path) -> None:
    """Sen2Cor without SCL, MAJA without CLM, Landsat without QA_PIXEL: an error naming the
    product and what was searched, or with allow_unmasked a read marked as unmasked."""
    sen2cor = sen2cor_product(tmp_path / "s2", fmt="cog").path
    _drop_elements(sen2cor / "MTD_MSIL2A.xml", r"<IMAGE_FILE>[^<]*_SCL_\d\dm</IMAGE_FILE>")
    maja = maja_product(tmp_path / "maja").path
    _drop_elements(
        next(maja.glob("*_MTD_ALL.xml")), r"<MASK_FILE[^>]*>[^<]*_CLM_R\d\.tif</MASK_FILE>"
    )
    landsat = landsat_product(tmp_path / "landsat").path
    _drop_lines(next(landsat.glob("*_MTL.txt")), "FILE_NAME_QUALITY_L1_PIXEL")
    searched = {
        sen2cor: r"MTD_MSIL2A\.xml lists no SCL image",
        maja: r"_MTD_ALL\.xml lists no CLM mask",
        landsat: r"_MTL\.txt names no FILE_NAME_QUALITY_L1_PIXEL",
    }
    allowed = MaskConfig(allow_unmasked=True)
    for path, where in searched.items():
        reader = open_product(path)
        assert reader.mask_source is None
        name = re.escape(reader.info.name)
        with pytest.raises(InputError, match=rf"product {name} has no cloud mask: .*{where}"):
            reader.require_mask()
        with pytest.raises(InputError, match=rf"product {name} has no cloud mask"):
            reader.valid_mask()
        assert reader.require_mask(allowed) is None
        band = reader.bands[1]
        np.testing.assert_array_equal(
            reader.valid_mask(None, allowed), ~np.isnan(reader.read(band))
        )


def test_products_with_a_mask_name_it(tmp_path: Path) -> None:
    assert open_product(sen2cor_product(tmp_path / "s2").path).require_mask() == "SCL"
    assert open_product(maja_product(tmp_path / "maja").path).mask_source == "EDG+CLM+MG2+SAT"
    assert open_product(landsat_product(tmp_path / "l9").path).require_mask() == "QA_PIXEL"


def test_no_data_values_compare_in_the_stored_type() -> None:
    """A float32 file's 1e20 fill is float32(1e20); values the type cannot hold match nothing
    (no overflow error); declared and file no-data values both count."""
    stored = np.array([1e20, 0.5, 3.0e38, np.nan], np.float32)
    np.testing.assert_array_equal(no_data(stored, [1e20]), [True, False, False, False])
    assert no_data(stored, [1e40, math.nan]) is None
    dn = np.array([0, 7, 65535, 300], np.uint16)
    np.testing.assert_array_equal(no_data(dn, [-9999.0, 65535.0, 0.5]), [0, 0, 1, 0])
    assert no_data(dn, [70000.0]) is None
    calibration = Calibration(quantification=10_000, nodata=0)
    np.testing.assert_array_equal(
        np.isnan(calibration.apply(dn, 65535.0)), [True, False, True, False]
    )
