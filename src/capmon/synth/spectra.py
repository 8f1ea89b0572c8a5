"""Surface reflectance of the Sentinel-2 L2A bands from a canopy state, by linear mixing.

A pixel is a mix of green vegetation, dry vegetation (senescent crop, straw, stubble, cut grass),
yellow flowers (rapeseed) and a substrate (loamy soil, asphalt, roofs, water, forest floor).
The endmember spectra are typical library values: a dense green canopy has NDVI about 0.86,
bare loam about 0.15. Dry residue keeps a strong SWIR1/SWIR2 contrast (cellulose and lignin
absorption near 2.1 µm), so its tillage index NDTILL = (B11 − B12)/(B11 + B12) is about 0.2
while bare soil is about 0.09; both have a low NDVI. Moist soil is darker in every band.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip

F32 = npt.NDArray[np.float32]

# Endmember reflectances, bands in BANDS order (B01 ... B09, B11, B12).
_TABLE = """
GREEN   0.030 0.034 0.072 0.030 0.105 0.300 0.385 0.420 0.440 0.415 0.200 0.090
DRY     0.075 0.095 0.145 0.215 0.255 0.285 0.305 0.325 0.345 0.340 0.420 0.275
FLOWER  0.040 0.045 0.150 0.120 0.260 0.360 0.420 0.450 0.460 0.440 0.260 0.130
SOIL    0.080 0.100 0.140 0.185 0.210 0.228 0.240 0.250 0.262 0.265 0.340 0.285
ASPHALT 0.080 0.090 0.100 0.110 0.118 0.122 0.126 0.130 0.133 0.135 0.150 0.140
ROOF    0.120 0.140 0.160 0.190 0.210 0.220 0.230 0.240 0.245 0.245 0.290 0.260
WATER   0.050 0.052 0.055 0.032 0.025 0.018 0.016 0.015 0.013 0.012 0.008 0.006
LITTER  0.040 0.045 0.065 0.075 0.100 0.130 0.145 0.155 0.160 0.160 0.200 0.140
SNOW    0.880 0.900 0.880 0.860 0.840 0.820 0.800 0.780 0.760 0.700 0.080 0.060
CLOUD   0.560 0.560 0.570 0.580 0.590 0.590 0.590 0.590 0.590 0.580 0.450 0.320
"""
_SPECTRA = {
    line.split()[0]: np.array([float(v) for v in line.split()[1:]])
    for line in _TABLE.strip().splitlines()
}
GREEN = _SPECTRA["GREEN"]
DRY = _SPECTRA["DRY"]
FLOWER = _SPECTRA["FLOWER"]
SOIL = _SPECTRA["SOIL"]
ASPHALT = _SPECTRA["ASPHALT"]
ROOF = _SPECTRA["ROOF"]
WATER = _SPECTRA["WATER"]
LITTER = _SPECTRA["LITTER"]
SNOW = _SPECTRA["SNOW"]
CLOUD = _SPECTRA["CLOUD"]


class Substrate(IntEnum):
    """What lies under the vegetation."""

    SOIL = 0
    ASPHALT = 1
    ROOF = 2
    WATER = 3
    LITTER = 4


SUBSTRATES = np.stack([SOIL, ASPHALT, ROOF, WATER, LITTER]).astype(np.float32)
_MOISTURE_DARKENING = np.array([0.35, 0.05, 0.0, 0.0, 0.25], dtype=np.float32)


def mix(
    green: F32,
    dry: F32,
    flower: F32,
    substrate: npt.NDArray[np.integer],
    moisture: float,
    brightness: F32,
) -> dict[str, F32]:
    """Reflectance per band of pixels with the given cover fractions (same-shape arrays).

    ``flower`` is the share of ``green`` in flowers; ``brightness`` a per-pixel factor of the
    substrate (soil texture and organic matter); ``moisture`` the soil moisture 0..1 of the day.
    """
    yellow = green * flower
    leaf = green - yellow
    bare = np.clip(1.0 - green - dry, 0.0, 1.0)
    wet = (1.0 - _MOISTURE_DARKENING * moisture)[substrate] * brightness
    dry_wet = np.float32(1.0 - 0.15 * moisture)
    out: dict[str, F32] = {}
    for b, band in enumerate(BANDS):
        soil = SUBSTRATES[:, b][substrate] * wet
        value = (
            leaf * np.float32(GREEN[b])
            + yellow * np.float32(FLOWER[b])
            + dry * np.float32(DRY[b] * dry_wet)
            + bare * soil
        )
        out[band] = value.astype(np.float32, copy=False)
    return out


def ndvi(red: npt.ArrayLike, nir: npt.ArrayLike) -> npt.NDArray[np.float64]:
    r, n = np.asarray(red, dtype=float), np.asarray(nir, dtype=float)
    out: npt.NDArray[np.float64] = (n - r) / (n + r)
    return out


def ndtill(swir1: npt.ArrayLike, swir2: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Normalised difference tillage index (B11 − B12)/(B11 + B12)."""
    s1, s2 = np.asarray(swir1, dtype=float), np.asarray(swir2, dtype=float)
    out: npt.NDArray[np.float64] = (s1 - s2) / (s1 + s2)
    return out


def bsi(
    blue: npt.ArrayLike, red: npt.ArrayLike, nir: npt.ArrayLike, swir1: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Bare soil index ((B11 + B04) − (B08 + B02)) / ((B11 + B04) + (B08 + B02))."""
    b, r, n, s = (np.asarray(x, dtype=float) for x in (blue, red, nir, swir1))
    out: npt.NDArray[np.float64] = ((s + r) - (n + b)) / ((s + r) + (n + b))
    return out


def mixed_ndvi(
    green: npt.ArrayLike, dry: npt.ArrayLike, moisture: float = 0.4
) -> npt.NDArray[np.float64]:
    """Noise-free NDVI of a soil pixel with the given green and dry covers (for truth tables)."""
    g = np.asarray(green, dtype=float)
    d = np.asarray(dry, dtype=float)
    bare = np.clip(1 - g - d, 0, 1)
    soil = 1 - _MOISTURE_DARKENING[0] * moisture
    red = g * GREEN[3] + d * DRY[3] * (1 - 0.15 * moisture) + bare * SOIL[3] * soil
    nir = g * GREEN[7] + d * DRY[7] * (1 - 0.15 * moisture) + bare * SOIL[7] * soil
    return ndvi(red, nir)
