"""The per-observation bare-soil model: probability that a Sentinel-2 parcel observation is bare.

Three indices, each on a parcel's mean over its valid pixels:

* NDVI separates green vegetation (high) from everything without green cover (low);
* NDTILL = (B11 - B12)/(B11 + B12) separates bare soil (about 0.05-0.10) from dry vegetation,
  straw and stubble (0.15-0.30): cellulose and lignin absorb near 2.1 um (B12), soil does not.
  This is what NDVI alone cannot do: senescent crops and stubble have a soil-like NDVI;
* BSI = ((B11 + B04) - (B08 + B02)) / ((B11 + B04) + (B08 + B02)) is positive on soil and dry
  matter and negative on green canopies: a second, independent check against green cover.

The expert model is a product of logistic "soft thresholds",
``p = s((ndvi_max - NDVI)/ndvi_scale) * s((ndtill_max - NDTILL)/ndtill_scale)
* s((BSI - bsi_min)/bsi_scale)``: bare needs all three conditions, and each factor turns into a
confidence near the threshold instead of a hard flip. Calibration (``calibration.py``) refits
the thresholds and scales on labelled observations, or replaces them with a logistic regression
on the three indices and their products.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from capmon.errors import InputError, StorageError

FEATURES = ("NDVI", "NDTILL", "BSI")
FloatArray = npt.NDArray[np.float64]


def sigmoid(x: npt.ArrayLike) -> FloatArray:
    """The logistic function, without overflow warnings."""
    z = np.clip(np.asarray(x, dtype=np.float64), -60.0, 60.0)
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


def logit(p: npt.ArrayLike) -> FloatArray:
    """The inverse of :func:`sigmoid` (probabilities clipped away from 0 and 1)."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    out: FloatArray = np.log(q / (1 - q))
    return out


class ThresholdModel(BaseModel):
    """Soft thresholds on NDVI, NDTILL and BSI (the expert defaults or calibrated ones)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["thresholds"] = "thresholds"
    ndvi_max: float = Field(default=0.30, description="Bare soil has NDVI below this.")
    ndvi_scale: float = Field(default=0.04, gt=0, description="NDVI softness (1/slope).")
    ndtill_max: float = Field(
        default=0.13, description="Bare soil has NDTILL below this (residue above)."
    )
    ndtill_scale: float = Field(default=0.015, gt=0, description="NDTILL softness (1/slope).")
    bsi_min: float = Field(default=0.02, description="Bare soil has BSI above this.")
    bsi_scale: float = Field(default=0.04, gt=0, description="BSI softness (1/slope).")

    def probability(self, ndvi: FloatArray, ndtill: FloatArray, bsi: FloatArray) -> FloatArray:
        """P(bare) of each observation (NaN where an index is missing)."""
        p = (
            sigmoid((self.ndvi_max - ndvi) / self.ndvi_scale)
            * sigmoid((self.ndtill_max - ndtill) / self.ndtill_scale)
            * sigmoid((bsi - self.bsi_min) / self.bsi_scale)
        )
        p[~(np.isfinite(ndvi) & np.isfinite(ndtill) & np.isfinite(bsi))] = np.nan
        return p


class LogisticModel(BaseModel):
    """A logistic regression on standardised (NDVI, NDTILL, BSI) and their pairwise products."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["logistic"] = "logistic"
    mean: list[float]
    scale: list[float]
    coefficients: list[float]
    intercept: float

    def probability(self, ndvi: FloatArray, ndtill: FloatArray, bsi: FloatArray) -> FloatArray:
        """P(bare) of each observation (NaN where an index is missing)."""
        design = logistic_design(np.column_stack([ndvi, ndtill, bsi]), self.mean, self.scale)
        if design.shape[1] != len(self.coefficients):
            raise InputError(
                f"the logistic bare-soil model has {len(self.coefficients)} coefficients, "
                f"its design {design.shape[1]} columns"
            )
        finite = np.isfinite(design).all(axis=1)
        p = np.full(len(design), np.nan)
        p[finite] = sigmoid(design[finite] @ np.asarray(self.coefficients) + self.intercept)
        return p


BareSoilModel = ThresholdModel | LogisticModel


def logistic_design(
    values: FloatArray, mean: list[float] | FloatArray, scale: list[float] | FloatArray
) -> FloatArray:
    """Standardised indices and their pairwise products (the logistic model's inputs)."""
    z = (values - np.asarray(mean)) / np.asarray(scale)
    pairs = [z[:, i] * z[:, j] for i in range(z.shape[1]) for j in range(i + 1, z.shape[1])]
    out: FloatArray = np.column_stack([z, *pairs]) if pairs else z
    return out


class CalibrationFile(BaseModel):
    """What ``capmon calibrate baresoil`` writes and ``capmon run baresoil --model`` reads."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["capmon-baresoil-model/1"] = "capmon-baresoil-model/1"
    model: ThresholdModel | LogisticModel = Field(discriminator="kind")
    labels: int = 0
    cross_validation: dict[str, float] = Field(default_factory=dict)


def load_model(path: str | Path) -> BareSoilModel:
    """The model stored in a calibration file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"bare-soil model file {file} does not exist") from exc
    except OSError as exc:
        raise StorageError(f"cannot read bare-soil model file {file}: {exc}") from exc
    try:
        return CalibrationFile.model_validate(json.loads(text)).model
    except (ValueError, ValidationError) as exc:
        raise InputError(f"{file}: not a capmon bare-soil model file ({exc})") from exc


class RadarEvidence(BaseModel):
    """Optional Sentinel-1 evidence: bare soil has a low VH backscatter and a high coherence.

    ``logit(p) += weight * logit(q)``, ``q = s((vh_max - AMP_VH)/vh_scale) * s((COHE_VV -
    coherence_min)/coherence_scale)``: a period's S1 observations nudge the S2 probability;
    they never decide alone (a period without S2 stays "no data").
    """

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(default=0.5, ge=0, le=2, description="Weight of the S1 evidence.")
    vh_max: float = Field(
        default=-8.8, description="AMP_VH (Sen4CAP AMP dB, half sigma0 dB) of bare soil below."
    )
    vh_scale: float = Field(default=0.3, gt=0)
    coherence_min: float = Field(default=0.62, description="COHE_VV of bare soil above.")
    coherence_scale: float = Field(default=0.06, gt=0)

    def probability(self, vh: FloatArray, coherence: FloatArray) -> FloatArray:
        """P(bare) from radar alone (NaN where both are missing; a missing one counts 0.5)."""
        a = np.where(np.isfinite(vh), sigmoid((self.vh_max - vh) / self.vh_scale), 0.5)
        b = np.where(
            np.isfinite(coherence),
            sigmoid((coherence - self.coherence_min) / self.coherence_scale),
            0.5,
        )
        q: FloatArray = a * b / (a * b + (1 - a) * (1 - b))
        q[~(np.isfinite(vh) | np.isfinite(coherence))] = np.nan
        return q

    def combine(self, p: FloatArray, q: FloatArray) -> FloatArray:
        """The S2 probability ``p`` updated with the radar probability ``q`` where it exists."""
        out = p.copy()
        use = np.isfinite(p) & np.isfinite(q)
        out[use] = sigmoid(logit(p[use]) + self.weight * logit(q[use]))
        return out
