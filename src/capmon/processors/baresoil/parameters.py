"""Parameters of the bare-soil processor (Sen4CAP publishes none: see docs/use-cases-2022.md)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from capmon.processors.baresoil.detect import CoverWindow
from capmon.processors.baresoil.model import (
    BareSoilModel,
    RadarEvidence,
    ThresholdModel,
    load_model,
)

_EXPERT = ThresholdModel()


class BareSoilParameters(BaseModel):
    """Parameters of ``capmon run baresoil``."""

    model_config = ConfigDict(extra="forbid")

    model: Path | None = Field(
        default=None,
        description="A calibrated model file (capmon calibrate baresoil) instead of thresholds.",
    )
    ndvi_max: float = Field(default=_EXPERT.ndvi_max, description="Bare soil NDVI below this.")
    ndtill_max: float = Field(
        default=_EXPERT.ndtill_max, description="Bare soil NDTILL below this (residue above)."
    )
    bsi_min: float = Field(default=_EXPERT.bsi_min, description="Bare soil BSI above this.")
    use_s1: bool = Field(
        default=False,
        description="Let each dekad's S1 VH and coherence nudge the S2 probability.",
    )
    s1_weight: float = Field(default=0.5, ge=0, le=2, description="Weight of the S1 evidence.")
    cover_start: str = Field(default="11-01", description="Soil-cover window start, MM-DD.")
    cover_end: str = Field(default="02-15", description="Soil-cover window end, MM-DD.")
    max_gap: int = Field(
        default=1, ge=0, description="NO_DATA dekads bridged inside a bare-soil period."
    )
    start: date | None = Field(default=None, description="First analysed day [season start].")
    end: date | None = Field(default=None, description="Last analysed day [season end].")
    chunk_parcels: int = Field(
        default=20000, ge=1, description="Parcels read from the MDB and processed at once."
    )
    mdb: Path | None = Field(
        default=None,
        description="An MDB folder instead of the season's MDB (on files: required).",
    )
    parcels: Path | None = Field(
        default=None,
        description="A parcels table (GeoParquet of an import) instead of the stored one; on files "
        "(with --out) any vector file, ids in --parcel-id-col.",
    )

    @model_validator(mode="after")
    def _window(self) -> BareSoilParameters:
        CoverWindow.parse(self.cover_start, self.cover_end)
        return self

    def bare_soil_model(self) -> BareSoilModel:
        """The calibrated model when a file is given, else the (possibly edited) thresholds."""
        if self.model is not None:
            return load_model(self.model)
        return ThresholdModel(
            ndvi_max=self.ndvi_max, ndtill_max=self.ndtill_max, bsi_min=self.bsi_min
        )

    def radar_model(self) -> RadarEvidence | None:
        """The S1 evidence when enabled."""
        return RadarEvidence(weight=self.s1_weight) if self.use_s1 else None

    def cover_window(self) -> CoverWindow:
        """The soil-cover window."""
        return CoverWindow.parse(self.cover_start, self.cover_end)
