"""Clouds, cirrus, cloud shadows and snow of one Sentinel-2 scene, and its Sen2Cor SCL map.

Clouds are smooth random blobs (two scales of correlated noise thresholded to the scene's cloud
cover), with a soft opacity that also blends the cloud spectrum into the reflectances. Their
shadows are the same blobs displaced away from the sun (cloud tops 1-2.5 km high). Cirrus is a
thin, wide veil added to the reflectances. Residual haze (thin cloud, aerosol, cloud edges) is
blended like a cloud but stays below every mask threshold, as in real L2A products; on a few
dates it covers the whole scene (the real "every parcel drops" dates). Snow covers open ground
during the weather's snow episodes. The SCL classes are then derived at 20 m from block means,
as Sen2Cor works at 20 m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from capmon.synth.realism import Realism
from capmon.synth.spectra import BANDS, CLOUD, SNOW, ndvi

F32 = npt.NDArray[np.float32]

SCL_NODATA = 0
SCL_DARK = 2
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_UNCLASSIFIED = 7
SCL_CLOUD_MEDIUM = 8
SCL_CLOUD_HIGH = 9
SCL_CIRRUS = 10
SCL_SNOW = 11


@dataclass(frozen=True)
class Sky:
    """Per-pixel (10 m) atmosphere and snow of one scene."""

    opacity: F32
    cirrus: F32
    shadow: F32
    snow: F32
    haze: F32 | None = None
    """Opacity of the residual haze that no mask flags (None: none)."""

    @property
    def cloud_mask(self) -> npt.NDArray[np.bool_]:
        return (self.opacity > 0.25) | (self.cirrus > 0.012)

    @property
    def shadow_mask(self) -> npt.NDArray[np.bool_]:
        return (self.shadow > 0.35) & (self.opacity <= 0.25)

    @property
    def snow_mask(self) -> npt.NDArray[np.bool_]:
        return (self.snow > 0.5) & (self.opacity <= 0.25)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> F32:
    """Correlated noise with unit variance and blobs of about ``scale_px`` pixels."""
    h, w = shape
    ch, cw = max(2, math.ceil(h / scale_px) + 2), max(2, math.ceil(w / scale_px) + 2)
    coarse = ndimage.gaussian_filter(rng.standard_normal((ch, cw)), 0.8, mode="wrap")
    fine = ndimage.zoom(coarse, (h / (ch - 1), w / (cw - 1)), order=1, prefilter=False)
    fine = fine[:h, :w]
    sd = float(fine.std()) or 1.0
    out: F32 = ((fine - fine.mean()) / sd).astype(np.float32)
    return out


def scene_cloud_cover(
    rng: np.random.Generator, cloud_fraction: float, realism: Realism | None = None
) -> float:
    """The cloud cover (0..1) of one scene: many clear or overcast days, some partly cloudy
    (shares from ``realism``; by default those of the clean world)."""
    if cloud_fraction <= 0:
        return 0.0
    clear, overcast = (0.37, 0.23) if realism is None else (
        realism.clear_scene_share, realism.overcast_scene_share
    )  # fmt: skip
    u = rng.random()
    if u < clear:
        base = float(rng.uniform(0.0, 0.03))
    elif u < clear + overcast:
        base = float(rng.uniform(0.85, 1.0))
    else:
        base = float(rng.uniform(0.05, 0.8))
    return float(min(1.0, base * cloud_fraction / 0.4))


def residual_haze(rng: np.random.Generator, shape: tuple[int, int], realism: Realism) -> F32 | None:
    """The unflagged haze opacity (per pixel) of one scene, or None when there is none.

    An ordinary scene has an exponential haze level of mean ``haze_mean`` that varies between
    parcels (blobs of about 250 m, relative spread ``haze_spread``); a share ``anomaly_share``
    of scenes has a scene-wide veil of ``anomaly_haze`` (every parcel drops that day).
    """
    if realism.haze_mean <= 0 and realism.anomaly_share <= 0:
        return None
    level = float(rng.exponential(realism.haze_mean)) if realism.haze_mean > 0 else 0.0
    if rng.random() < realism.anomaly_share:
        level += float(rng.uniform(*realism.anomaly_haze))
    blobs = smooth_noise(rng, shape, 25.0)
    haze = np.clip(level * (1.0 + realism.haze_spread * blobs), 0.0, 0.2)
    out: F32 = haze.astype(np.float32)
    return out


def make_sky(
    rng: np.random.Generator,
    shape: tuple[int, int],
    cover: float,
    sun_zenith: float,
    sun_azimuth: float,
    snow_depth: float,
    openness: F32,
) -> Sky:
    """The sky of one scene with ``cover`` (0..1) cloud; ``openness`` = 1 − green cover."""
    zeros = np.zeros(shape, dtype=np.float32)
    opacity = zeros
    shadow = zeros
    if cover > 0.001:
        field = smooth_noise(rng, shape, 70.0) + 0.45 * smooth_noise(rng, shape, 14.0)
        if cover >= 0.999:
            threshold = float(field.min()) - 1.0
        else:
            threshold = float(np.quantile(field[::4, ::4], 1.0 - cover))
        opacity = np.clip((field - threshold) / 0.55, 0.0, 1.0).astype(np.float32) ** 0.7
        height = float(rng.uniform(1000.0, 2500.0))
        reach = height * math.tan(math.radians(sun_zenith)) / 10.0
        dcol = -round(reach * math.sin(math.radians(sun_azimuth)))
        drow = round(reach * math.cos(math.radians(sun_azimuth)))
        shadow = _shift(opacity, drow, dcol) * np.float32(0.9)
    cirrus = zeros
    if rng.random() < 0.2:
        veil = smooth_noise(rng, shape, 150.0)
        cirrus = (np.clip(veil, 0.0, None) * float(rng.uniform(0.006, 0.02))).astype(np.float32)
    snow = zeros
    if snow_depth > 0:
        patchy = smooth_noise(rng, shape, 25.0) * 0.15
        snow = np.clip(snow_depth * (0.35 + 0.65 * openness) + patchy, 0, 1).astype(np.float32)
    return Sky(opacity, cirrus, shadow, snow)


def _shift(a: F32, drow: int, dcol: int) -> F32:
    out = np.zeros_like(a)
    h, w = a.shape
    src_r = slice(max(0, -drow), min(h, h - drow))
    dst_r = slice(max(0, drow), min(h, h + drow))
    src_c = slice(max(0, -dcol), min(w, w - dcol))
    dst_c = slice(max(0, dcol), min(w, w + dcol))
    if src_r.start < src_r.stop and src_c.start < src_c.stop:
        out[dst_r, dst_c] = a[src_r, src_c]
    return out


def apply_sky(surface: dict[str, F32], sky: Sky) -> dict[str, F32]:
    """Top-of-canopy reflectances seen through the sky (snow, shadow, cloud, cirrus)."""
    snow, shadow = bool(sky.snow.any()), bool(sky.shadow.any())
    cloud, cirrus = bool(sky.opacity.any()), bool(sky.cirrus.any())
    out: dict[str, F32] = {}
    for b, band in enumerate(BANDS):
        value = surface[band]
        if snow:
            value = value * (1 - sky.snow) + np.float32(SNOW[b]) * sky.snow
        if shadow:
            value = value * (1 - np.float32(0.65) * sky.shadow)
        if sky.haze is not None:
            value = value * (1 - sky.haze) + np.float32(CLOUD[b]) * sky.haze
        if cloud:
            value = value * (1 - sky.opacity) + np.float32(CLOUD[b]) * sky.opacity
        if cirrus:
            value = value + sky.cirrus * np.float32(1.0 if b < 10 else 0.4)
        out[band] = value.astype(np.float32, copy=False)
    return out


def _block_mean(a: npt.NDArray[np.floating], f: int) -> npt.NDArray[np.float32]:
    h, w = a.shape
    out: npt.NDArray[np.float32] = (
        a.reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
    )
    return out


def scene_classification(
    observed: dict[str, F32], sky: Sky, water: npt.NDArray[np.bool_], rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    """Sen2Cor-like SCL at 20 m from the 10 m reflectances and sky."""
    red = _block_mean(observed["B04"], 2)
    nir = _block_mean(observed["B08"], 2)
    opacity = _block_mean(sky.opacity, 2)
    cirrus = _block_mean(sky.cirrus, 2)
    shadow = _block_mean(sky.shadow, 2)
    snow = _block_mean(sky.snow, 2)
    wet = _block_mean(water.astype(np.float32), 2) > 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        index = ndvi(red, nir)
    scl = np.where(index > 0.4, SCL_VEGETATION, SCL_NOT_VEGETATED).astype(np.uint8)
    scl[(nir < 0.06) & ~wet] = SCL_DARK
    scl[wet & (index < 0.2)] = SCL_WATER
    scl[snow > 0.5] = SCL_SNOW
    scl[shadow > 0.35] = SCL_CLOUD_SHADOW
    edge = (opacity > 0.08) & (opacity <= 0.25)
    scl[edge & (rng.random(edge.shape) < 0.5)] = SCL_UNCLASSIFIED
    scl[cirrus > 0.012] = SCL_CIRRUS
    scl[opacity > 0.25] = SCL_CLOUD_MEDIUM
    scl[opacity > 0.6] = SCL_CLOUD_HIGH
    return scl
