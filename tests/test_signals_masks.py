"""Validity masks: SCL, MAJA/THEIA, Landsat QA_PIXEL and QA_RADSAT, mask resampling."""

from __future__ import annotations

import numpy as np
import pytest

from capmon.errors import InputError
from capmon.signals.masks import (
    Confidence,
    LandsatQa,
    LandsatQaConfig,
    MajaClm,
    MajaMaskConfig,
    MajaMg2,
    SclClass,
    SclMaskConfig,
    landsat_confidence,
    landsat_qa_valid,
    landsat_radsat_valid,
    maja_valid,
    resample_mask,
    scl_valid,
    upsample_nearest,
)


def test_scl_default_and_configured_invalid_classes() -> None:
    scl = np.arange(13, dtype=np.uint8)  # 12 is not an SCL class
    valid = scl_valid(scl)
    expected_valid = {2, 4, 5, 6, 7}
    assert {int(c) for c in scl[valid]} == expected_valid
    strict = scl_valid(
        scl, SclMaskConfig(invalid_classes=frozenset({0, 1, 8, 9, 10, SclClass.WATER}))
    )
    assert {int(c) for c in scl[strict]} == {2, 3, 4, 5, 7, 11}
    with pytest.raises(InputError, match=r"0\.\.11"):
        SclMaskConfig(invalid_classes=frozenset({12}))
    with pytest.raises(InputError, match="integer"):
        scl_valid(np.array(["4", "5"]))


def test_scl_stored_as_floats() -> None:
    """An SCL band of a float multi-band file: integral values are classes, the rest invalid."""
    scl = np.array([4.0, 5.0, 9.0, 4.5, np.nan, 1e20, -4.0, np.inf], dtype=np.float32)
    np.testing.assert_array_equal(
        scl_valid(scl), [True, True, False, False, False, False, False, False]
    )
    clear = float(LandsatQa.CLEAR)
    qa = np.array([clear, np.nan, 1e20, float(LandsatQa.CLOUD)], dtype=np.float64)
    np.testing.assert_array_equal(landsat_qa_valid(qa), [True, False, False, False])


def test_scl_config_from_valid_classes() -> None:
    """``--valid-scl 4,5``: every other class is invalid; classes are checked."""
    config = SclMaskConfig.from_valid_classes([4, 5])
    assert config.invalid_classes == frozenset({0, 1, 2, 3, 6, 7, 8, 9, 10, 11})
    assert config.valid_classes == frozenset({4, 5})
    scl = np.arange(12, dtype=np.uint8)
    assert {int(c) for c in scl[scl_valid(scl, config)]} == {4, 5}
    assert SclMaskConfig().valid_classes == frozenset({2, 4, 5, 6, 7})
    assert SclMaskConfig.from_valid_classes(np.array([4, 6], dtype=np.int64)).valid_classes == {
        4,
        6,
    }
    with pytest.raises(InputError, match=r"integers 0\.\.11; unknown valid classes: 12"):
        SclMaskConfig.from_valid_classes({4, 12})
    with pytest.raises(InputError, match=r"unknown valid classes: 4\.5"):
        SclMaskConfig.from_valid_classes({4.5})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least one valid SCL class"):
        SclMaskConfig.from_valid_classes([])
    with pytest.raises(InputError, match=r"unknown invalid classes: True"):
        SclMaskConfig(invalid_classes=frozenset({True}))


def test_maja_masks() -> None:
    edg = np.array([0, 1, 0, 0, 0, 0, 0], dtype=np.uint8)
    clm = np.array([0, 0, MajaClm.THIN_CLOUDS, 0, 0, 0, 0], dtype=np.uint8)
    mg2 = np.array(
        [MajaMg2.WATER, 0, 0, MajaMg2.SNOW, MajaMg2.CLOUD_SHADOWS, MajaMg2.TOPOGRAPHIC_SHADOWS, 0],
        dtype=np.uint8,
    )
    sat = np.array([0, 0, 0, 0, 0, 0, 0b100], dtype=np.uint8)
    valid = maja_valid(edg, clm=clm, mg2=mg2, sat=sat)
    np.testing.assert_array_equal(valid, [True, False, False, False, False, True, False])
    # only EDG given: only the edge is invalid
    np.testing.assert_array_equal(maja_valid(edg), edg == 0)
    # thin clouds allowed, saturation of another band ignored
    config = MajaMaskConfig(
        clm_invalid_bits=MajaClm.CLOUDS_AND_SHADOWS | MajaClm.CLOUDS, sat_invalid_bits=0b011
    )
    relaxed = maja_valid(edg, clm=clm, mg2=mg2, sat=sat, config=config)
    np.testing.assert_array_equal(relaxed, [True, False, True, False, False, True, True])
    with pytest.raises(InputError, match="shape"):
        maja_valid(edg, clm=np.zeros(3, dtype=np.uint8))
    with pytest.raises(InputError, match="8-bit"):
        MajaMaskConfig(clm_invalid_bits=512)


def test_landsat_qa_pixel_bits_and_confidences() -> None:
    clear = LandsatQa.CLEAR | (Confidence.LOW << 8) | (Confidence.LOW << 14)
    qa = np.array(
        [
            clear,
            LandsatQa.FILL,
            LandsatQa.DILATED_CLOUD,
            LandsatQa.CIRRUS,
            LandsatQa.CLOUD | (Confidence.HIGH << 8),
            LandsatQa.CLOUD_SHADOW,
            LandsatQa.SNOW,
            LandsatQa.WATER | LandsatQa.CLEAR,
            LandsatQa.CLEAR | (Confidence.MEDIUM << 8),
        ],
        dtype=np.uint16,
    )
    valid = landsat_qa_valid(qa)
    np.testing.assert_array_equal(valid, [True] + [False] * 6 + [True, True])
    strict = landsat_qa_valid(qa, LandsatQaConfig(max_confidence=(("cloud", Confidence.LOW),)))
    assert not strict[-1]
    assert strict[0]
    np.testing.assert_array_equal(landsat_confidence(qa, "cloud"), [1, 0, 0, 0, 3, 0, 0, 0, 2])
    assert landsat_confidence(qa, "cirrus")[0] == 1
    with pytest.raises(InputError, match="confidence"):
        LandsatQaConfig(max_confidence=(("haze", 1),))


def test_landsat_radsat() -> None:
    radsat = np.array([0, 1 << 3, 1 << 8, 1 << 11, 1 << 7], dtype=np.uint16)
    np.testing.assert_array_equal(landsat_radsat_valid(radsat), [True, False, True, False, True])
    np.testing.assert_array_equal(
        landsat_radsat_valid(radsat, (5, 9), terrain_occlusion=False),
        [True, True, False, True, True],
    )
    with pytest.raises(InputError, match="band 8"):
        landsat_radsat_valid(radsat, (8,))


def test_upsampling_20m_and_60m_to_10m() -> None:
    mask20 = np.array([[True, False], [False, True]])
    up = resample_mask(mask20, 20, 10)
    np.testing.assert_array_equal(
        up,
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]],
    )
    scl60 = np.array([[4, 9]], dtype=np.uint8)
    assert upsample_nearest(scl60, 6).shape == (6, 12)
    assert (upsample_nearest(scl60, 6)[:, 6:] == 9).all()
    assert resample_mask(mask20, 20, 10, shape=(3, 3)).shape == (3, 3)
    with pytest.raises(InputError, match="integer factor"):
        resample_mask(mask20, 20, 15)


def test_downsampling_needs_all_fine_pixels_valid() -> None:
    fine = np.ones((5, 4), dtype=bool)
    fine[0, 1] = False
    coarse = resample_mask(fine, 10, 20)
    np.testing.assert_array_equal(coarse, [[False, True], [True, True], [True, True]])
    np.testing.assert_array_equal(
        resample_mask(resample_mask(fine, 10, 20), 20, 10, (5, 4))[0], [0, 0, 1, 1]
    )
