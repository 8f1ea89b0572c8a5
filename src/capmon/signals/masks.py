"""Validity masks of optical products: Sen2Cor SCL, MAJA/THEIA masks, Landsat C2 QA bands.

Every function returns a boolean array, True where the pixel is VALID (usable for statistics).
Masks given at a coarser resolution than the bands are brought to the band grid with
:func:`upsample_nearest` (class/bit rasters) or :func:`resample_mask` (boolean masks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from numbers import Integral

import numpy as np
import numpy.typing as npt

from capmon.errors import InputError

BoolArray = npt.NDArray[np.bool_]


# --- Sentinel-2 L2A (Sen2Cor) scene classification -------------------------------------------


class SclClass(IntEnum):
    """Classes of the Sen2Cor scene classification layer (SCL, 20 m)."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA = 2
    CLOUD_SHADOW = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW = 11


DEFAULT_SCL_INVALID = frozenset(
    {
        SclClass.NO_DATA,
        SclClass.SATURATED_OR_DEFECTIVE,
        SclClass.CLOUD_SHADOW,
        SclClass.CLOUD_MEDIUM_PROBABILITY,
        SclClass.CLOUD_HIGH_PROBABILITY,
        SclClass.THIN_CIRRUS,
        SclClass.SNOW,
    }
)


@dataclass(frozen=True)
class SclMaskConfig:
    """Which SCL classes make a pixel invalid (values outside 0..11 are always invalid).

    Give the invalid classes (``--scl-invalid-classes``) or build it from the valid ones with
    :meth:`from_valid_classes` (``--valid-scl 4,5``: every other class is invalid).
    """

    invalid_classes: frozenset[int] = field(default_factory=lambda: DEFAULT_SCL_INVALID)

    def __post_init__(self) -> None:
        _check_scl_classes(self.invalid_classes, "invalid")

    @classmethod
    def from_valid_classes(cls, valid_classes: Iterable[int]) -> SclMaskConfig:
        """The configuration in which exactly ``valid_classes`` are valid (at least one)."""
        valid = frozenset(valid_classes)
        _check_scl_classes(valid, "valid")
        if not valid:
            raise InputError("give at least one valid SCL class (0..11), e.g. 4,5")
        return cls(frozenset(int(c) for c in SclClass) - {int(c) for c in valid})

    @property
    def valid_classes(self) -> frozenset[int]:
        """The SCL classes that stay valid."""
        return frozenset(int(c) for c in SclClass) - {int(c) for c in self.invalid_classes}


def _check_scl_classes(classes: Iterable[object], kind: str) -> None:
    """An InputError naming the classes of ``classes`` that are not SCL classes (0..11)."""
    wrong = [
        c
        for c in classes
        if isinstance(c, bool) or not isinstance(c, Integral) or not 0 <= int(c) <= 11
    ]
    if wrong:
        shown = ", ".join(sorted(repr(c) for c in wrong))
        raise InputError(f"SCL classes are the integers 0..11; unknown {kind} classes: {shown}")


def scl_valid(scl: npt.ArrayLike, config: SclMaskConfig | None = None) -> BoolArray:
    """True where the SCL class is not one of ``config.invalid_classes``.

    An SCL stored as floats (a band of a float multi-band file) is read as classes where its
    values are integers; NaN, fill values and fractions are invalid."""
    config = config or SclMaskConfig()
    classes = _classes("SCL", scl)
    lookup = np.zeros(256, dtype=np.bool_)
    lookup[: len(SclClass)] = True
    lookup[[int(c) for c in config.invalid_classes]] = False
    in_range = (classes >= 0) & (classes < len(SclClass))
    result: BoolArray = lookup[np.where(in_range, classes, 255).astype(np.intp)]
    return result


def _classes(name: str, values: npt.ArrayLike) -> npt.NDArray[np.integer]:
    """An integer layer; floats are accepted where they hold integers (elsewhere -1: invalid
    for every rule here)."""
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.integer):
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"the {name} layer must be integer, got {array.dtype}")
    whole = (array == np.floor(array)) & (array >= 0) & (array <= np.iinfo(np.uint16).max)
    return np.where(whole, array, -1).astype(np.int64)


# --- MAJA / THEIA (MUSCATE) masks ------------------------------------------------------------


class MajaClm(IntFlag):
    """Bits of the CLM cloud mask in the THEIA/MUSCATE L2A format (``*_CLM_R1/R2.tif``)."""

    CLOUDS_AND_SHADOWS = 1
    """All clouds except the thinnest, and all shadows (summary bit)."""
    CLOUDS = 2
    """All clouds except the thinnest."""
    CLOUDS_MONO_TEMPORAL = 4
    CLOUDS_MULTI_TEMPORAL = 8
    THIN_CLOUDS = 16
    CLOUD_SHADOWS = 32
    """Shadows cast by a detected cloud."""
    CLOUD_SHADOWS_OUTSIDE = 64
    """Shadows cast by a cloud outside the image."""
    HIGH_CLOUDS = 128
    """High clouds detected with the 1.38 µm band."""


class MajaNativeClm(IntFlag):
    """Bits of the cloud mask in MAJA's *native* format (bits 2-7 ordered differently)."""

    CLOUDS_AND_SHADOWS = 1
    CLOUDS = 2
    CLOUD_SHADOWS = 4
    CLOUD_SHADOWS_OUTSIDE = 8
    CLOUDS_MONO_TEMPORAL = 16
    CLOUDS_MULTI_TEMPORAL = 32
    THIN_CLOUDS = 64
    HIGH_CLOUDS = 128


class MajaMg2(IntFlag):
    """Bits of the MG2 geophysical mask (THEIA/MUSCATE ``*_MG2_R1/R2.tif``)."""

    WATER = 1
    CLOUDS = 2
    """All clouds (logical OR of the cloud masks); Sen4CAP's cloud test uses it."""
    SNOW = 4
    CLOUD_SHADOWS = 8
    TOPOGRAPHIC_SHADOWS = 16
    HIDDEN_BY_TOPOGRAPHY = 32
    SUN_TOO_LOW = 64
    """Sun too low for an accurate slope correction."""
    SUN_TANGENT = 128


@dataclass(frozen=True)
class MajaMaskConfig:
    """Bits that make a pixel invalid in each MAJA mask.

    Defaults: any CLM bit (bits 0 and 1 mean the same in the THEIA and the native layout, so
    "any bit" is layout-independent and also drops the thinnest clouds); MG2 clouds, snow and
    cloud shadows (the bits Sen4CAP's ``MAJAMaskHandlerFunctor`` tests; water stays valid); any
    saturated band in SAT. EDG is binary: non-zero = outside the swath / no data.
    """

    clm_invalid_bits: int = 0xFF
    mg2_invalid_bits: int = MajaMg2.CLOUDS | MajaMg2.SNOW | MajaMg2.CLOUD_SHADOWS
    sat_invalid_bits: int = 0xFF

    def __post_init__(self) -> None:
        for name in ("clm_invalid_bits", "mg2_invalid_bits", "sat_invalid_bits"):
            value = int(getattr(self, name))
            if not 0 <= value <= 0xFF:
                raise InputError(f"{name} must be an 8-bit mask, got {value}")


def _bits(name: str, values: npt.ArrayLike, shape: tuple[int, ...] | None) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"the {name} mask must be integer, got {array.dtype}")
    if shape is not None and array.shape != shape:
        raise InputError(f"the {name} mask has shape {array.shape}, expected {shape}")
    return array.astype(np.int64, copy=False)


def maja_valid(
    edg: npt.ArrayLike,
    *,
    clm: npt.ArrayLike | None = None,
    mg2: npt.ArrayLike | None = None,
    sat: npt.ArrayLike | None = None,
    config: MajaMaskConfig | None = None,
) -> BoolArray:
    """True where EDG is 0 and no configured CLM/MG2/SAT bit is set (masks of one resolution)."""
    config = config or MajaMaskConfig()
    edge = _bits("EDG", edg, None)
    valid: BoolArray = edge == 0
    for name, mask, bits in (
        ("CLM", clm, config.clm_invalid_bits),
        ("MG2", mg2, config.mg2_invalid_bits),
        ("SAT", sat, config.sat_invalid_bits),
    ):
        if mask is not None:
            valid &= (_bits(name, mask, edge.shape) & int(bits)) == 0
    return valid


# --- Landsat Collection 2 Level-2 QA bands ---------------------------------------------------


class LandsatQa(IntFlag):
    """Single-bit flags of the Landsat Collection 2 ``QA_PIXEL`` band."""

    FILL = 1 << 0
    DILATED_CLOUD = 1 << 1
    CIRRUS = 1 << 2
    CLOUD = 1 << 3
    CLOUD_SHADOW = 1 << 4
    SNOW = 1 << 5
    CLEAR = 1 << 6
    WATER = 1 << 7


class Confidence(IntEnum):
    """Values of the two-bit confidence fields of ``QA_PIXEL``."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3


CONFIDENCE_SHIFTS = {"cloud": 8, "cloud_shadow": 10, "snow": 12, "cirrus": 14}
"""First bit of each confidence pair in ``QA_PIXEL`` (bits 8-9, 10-11, 12-13, 14-15)."""


@dataclass(frozen=True)
class LandsatQaConfig:
    """Which ``QA_PIXEL`` conditions make a pixel invalid.

    ``invalid_flags``: single-bit flags (default fill, dilated cloud, cirrus, cloud, cloud
    shadow, snow; water stays valid). ``max_confidence``: optionally, a confidence field
    (``cloud``, ``cloud_shadow``, ``snow``, ``cirrus``) above this level also invalidates, e.g.
    ``{"cloud": Confidence.LOW}`` drops medium- and high-confidence cloud.
    """

    invalid_flags: int = (
        LandsatQa.FILL
        | LandsatQa.DILATED_CLOUD
        | LandsatQa.CIRRUS
        | LandsatQa.CLOUD
        | LandsatQa.CLOUD_SHADOW
        | LandsatQa.SNOW
    )
    max_confidence: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for name, level in self.max_confidence:
            if name not in CONFIDENCE_SHIFTS:
                raise InputError(
                    f"unknown QA_PIXEL confidence {name!r}; known: {', '.join(CONFIDENCE_SHIFTS)}"
                )
            if not 0 <= int(level) <= 3:
                raise InputError(f"confidence levels are 0..3, got {level} for {name}")


def landsat_confidence(qa_pixel: npt.ArrayLike, name: str) -> npt.NDArray[np.uint8]:
    """One two-bit confidence field (0 none .. 3 high) of ``QA_PIXEL``."""
    if name not in CONFIDENCE_SHIFTS:
        raise InputError(
            f"unknown QA_PIXEL confidence {name!r}; known: {', '.join(CONFIDENCE_SHIFTS)}"
        )
    qa = _bits("QA_PIXEL", qa_pixel, None)
    return ((qa >> CONFIDENCE_SHIFTS[name]) & 0b11).astype(np.uint8)


def landsat_qa_valid(qa_pixel: npt.ArrayLike, config: LandsatQaConfig | None = None) -> BoolArray:
    """True where no configured ``QA_PIXEL`` flag is set and confidences are within limits."""
    config = config or LandsatQaConfig()
    qa = _bits("QA_PIXEL", _classes("QA_PIXEL", qa_pixel), None)
    valid: BoolArray = ((qa & int(config.invalid_flags)) == 0) & (qa >= 0)
    for name, level in config.max_confidence:
        valid &= ((qa >> CONFIDENCE_SHIFTS[name]) & 0b11) <= int(level)
    return valid


RADSAT_TERRAIN_OCCLUSION = 1 << 11
"""``QA_RADSAT`` bit 11 (Landsat 8/9): terrain occlusion."""


def landsat_radsat_valid(
    qa_radsat: npt.ArrayLike,
    bands: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7),
    *,
    terrain_occlusion: bool = True,
) -> BoolArray:
    """True where none of ``bands`` (OLI band numbers) is saturated in ``QA_RADSAT``.

    Bits 0-6 flag bands 1-7 and bit 8 band 9; with ``terrain_occlusion`` bit 11 also invalidates.
    """
    mask = 0
    for band in bands:
        if band in (1, 2, 3, 4, 5, 6, 7):
            mask |= 1 << (band - 1)
        elif band == 9:
            mask |= 1 << 8
        else:
            raise InputError(f"QA_RADSAT flags OLI bands 1-7 and 9, not band {band}")
    if terrain_occlusion:
        mask |= RADSAT_TERRAIN_OCCLUSION
    qa = _bits("QA_RADSAT", qa_radsat, None)
    valid: BoolArray = (qa & mask) == 0
    return valid


# --- resampling masks between the 10/20/60 m grids ------------------------------------------


def upsample_nearest(
    array: npt.ArrayLike, factor: int, shape: tuple[int, int] | None = None
) -> npt.NDArray[np.generic]:
    """Repeat each pixel ``factor`` × ``factor`` times (nearest neighbour on nested grids).

    For a 20 m mask on a 10 m grid use ``factor=2``, for 60 m ``factor=6``. ``shape`` crops the
    result to the target grid (it must not exceed the repeated size).
    """
    if factor < 1:
        raise InputError(f"the upsampling factor must be >= 1, got {factor}")
    source = np.asarray(array)
    if source.ndim != 2:
        raise InputError(f"expected a 2-D raster, got shape {source.shape}")
    result = np.repeat(np.repeat(source, factor, axis=0), factor, axis=1)
    if shape is not None:
        if shape[0] > result.shape[0] or shape[1] > result.shape[1]:
            raise InputError(
                f"target shape {shape} is larger than the upsampled raster {result.shape}"
            )
        result = result[: shape[0], : shape[1]]
    return result


def resample_mask(
    valid: npt.ArrayLike,
    source_resolution: float,
    target_resolution: float,
    shape: tuple[int, int] | None = None,
) -> BoolArray:
    """A validity mask brought to another grid nested with it (exact integer factors only).

    To a finer grid: nearest neighbour (each pixel repeated). To a coarser grid: a coarse pixel
    is valid only when all the fine pixels it covers are valid (a partial block at the edge
    counts with the pixels it has).
    """
    mask = np.asarray(valid, dtype=np.bool_)
    if mask.ndim != 2:
        raise InputError(f"expected a 2-D mask, got shape {mask.shape}")
    if source_resolution <= 0 or target_resolution <= 0:
        raise InputError("resolutions must be positive")
    if source_resolution >= target_resolution:
        ratio = source_resolution / target_resolution
        factor = round(ratio)
        if abs(ratio - factor) > 1e-9:
            raise InputError(
                f"{source_resolution} m -> {target_resolution} m is not an integer factor"
            )
        return np.asarray(upsample_nearest(mask, factor, shape), dtype=np.bool_)
    ratio = target_resolution / source_resolution
    factor = round(ratio)
    if abs(ratio - factor) > 1e-9:
        raise InputError(f"{source_resolution} m -> {target_resolution} m is not an integer factor")
    rows = -(-mask.shape[0] // factor)
    cols = -(-mask.shape[1] // factor)
    padded = np.ones((rows * factor, cols * factor), dtype=np.bool_)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    result: BoolArray = np.asarray(
        padded.reshape(rows, factor, cols, factor).all(axis=(1, 3)), dtype=np.bool_
    )
    if shape is not None:
        if shape[0] > rows or shape[1] > cols:
            raise InputError(f"target shape {shape} is larger than the resampled mask")
        result = result[: shape[0], : shape[1]]
    return result
