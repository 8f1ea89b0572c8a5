"""Sentinel-1 backscatter and interferometric coherence from the canopy state.

Backscatter follows the water-cloud model (Attema & Ulaby 1978): σ⁰ = A·cosθ·(1 − τ²) + τ²·σ⁰_soil
with two-way attenuation τ² = exp(−2·B·W/cosθ) by the vegetation water content W (kg/m²).
Soil backscatter rises with moisture and roughness (fresh ploughing is rough). The parameters
give the published ranges: over crops VV about −10 dB and VH about −17 dB; bare soil VV −13 to
−8 dB and VH −22 to −17 dB; dense maize VH about −15 dB; the cross-polarisation ratio VH/VV rises
with biomass (VV_dB − VH_dB falls from about 9 dB on bare soil to 5 dB under dense canopies).

Coherence of a pair (t1, t2) multiplies a surface term (high on bare soil, slowly decaying with
the interval), a volume term (vegetation decorrelates fast, more in VH), the surface changes
made between the two dates (ploughing, sowing, harvest, cutting) and rain on either date, then
adds the estimator bias of a finite window: values range from about 0.2 (dense crops, water)
to 0.9 (bare soil, roads, buildings). A harvested field is coherent; so is a mown meadow in
the clean world, while in the calibrated one (:mod:`capmon.synth.realism`) the stubble, the
lying swath and the haymaking days after a cut keep coherence and backscatter almost where
they were, and per-parcel noise of the size seen on real plots is added by the renderer.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from capmon.synth.spectra import Substrate

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Polarisation = Literal["VV", "VH"]

_A = {"VV": 0.13, "VH": 0.042}
_B = {"VV": 0.42, "VH": 0.30}
# Soil σ⁰ (dB) = base + moisture_gain·m + roughness_gain·r
_SOIL = {"VV": (-16.0, 6.0, 4.0), "VH": (-25.0, 5.0, 5.0)}
# Fixed σ⁰ (dB) of non-soil substrates under no vegetation.
_FIXED_DB = {
    "VV": {Substrate.ASPHALT: -19.0, Substrate.ROOF: -3.0, Substrate.WATER: -22.0},
    "VH": {Substrate.ASPHALT: -27.0, Substrate.ROOF: -10.0, Substrate.WATER: -28.0},
}
_COHERENT = {Substrate.ASPHALT: 0.85, Substrate.ROOF: 0.92, Substrate.WATER: 0.03}
LOOKS = 12.0
COHERENCE_SAMPLES = 25.0


def sigma0(
    biomass: F64,
    rough: F64,
    moisture: float,
    substrate: npt.NDArray[np.integer],
    incidence_deg: float,
    pol: Polarisation,
    snow: float = 0.0,
) -> F64:
    """Linear σ⁰ per unit (no speckle)."""
    cos = math.cos(math.radians(incidence_deg))
    base, gain_m, gain_r = _SOIL[pol]
    soil_db = base + gain_m * moisture + gain_r * rough - 3.0 * snow
    for sub, value in _FIXED_DB[pol].items():
        soil_db = np.where(substrate == sub, value, soil_db)
    tau2 = np.exp(-2.0 * _B[pol] * biomass / cos)
    result: F64 = _A[pol] * cos * (1.0 - tau2) + tau2 * 10.0 ** (soil_db / 10.0)
    return result


def coherence(
    biomass_1: F64,
    biomass_2: F64,
    interval_days: int,
    surface_change: F64,
    rain_mm: float,
    substrate: npt.NDArray[np.integer],
    pol: Polarisation,
) -> F64:
    """Expected coherence magnitude per unit for a pair ``interval_days`` apart.

    ``surface_change`` is the product over the days between the dates of (1 − disturbance).
    """
    volume = 0.5 * (biomass_1 + biomass_2)
    k = 0.55 if pol == "VV" else 0.7
    top = 0.9 if pol == "VV" else 0.86
    surface = math.exp(-interval_days / 90.0)
    veg = np.exp(-k * volume * math.sqrt(interval_days / 6.0))
    wet = 1.0 - 0.3 * min(1.0, rain_mm / 15.0)
    gamma = top * surface * veg * surface_change * wet
    for sub, value in _COHERENT.items():
        gamma = np.where(substrate == sub, value, gamma)
    biased: F64 = np.sqrt(gamma**2 + 1.0 / COHERENCE_SAMPLES)
    return biased


def speckle(rng: np.random.Generator, sigma: F32) -> F32:
    """Multiplicative gamma speckle of a ``LOOKS``-look image."""
    noise = rng.gamma(LOOKS, 1.0 / LOOKS, size=sigma.shape).astype(np.float32)
    out: F32 = (sigma * noise).astype(np.float32)
    return out


def coherence_noise(rng: np.random.Generator, gamma: F32) -> F32:
    """Estimation noise of the coherence magnitude, clipped to [0, 1]."""
    sd = (1.0 - gamma**2) / math.sqrt(2.0 * COHERENCE_SAMPLES)
    noisy = gamma + sd * rng.standard_normal(gamma.shape, dtype=np.float32)
    out: F32 = np.clip(noisy, 0.01, 1.0).astype(np.float32)
    return out
