"""The L4A parameters (defaults are Sen4CAP's ``processor.s4c_l4a.*``, sen4cap-system.md 5.1),
except three: ``pa_min`` 10 (Sen4CAP: 30, which on real national LUTs with many small classes
leaves most classes out: 9 of 12 on 406 French parcels; the WorldCereal Corsica set has 11
classes with >= 10 samples, so 10 still gives every class 8 training parcels and 2 per fold),
``balance`` class weights (Sen4CAP: SMOTE to 1000, ``--balance smote``) and ``jobs`` 0 (the
free cores, Sen4CAP: every core)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from capmon.processors.l4a.features import FeatureSettings
from capmon.processors.l4a.training import TrainingRules


class L4AParameters(BaseModel):
    """Parameters of the L4A crop-type processor."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["s2-only", "s1-only", "both"] = Field(
        default="both",
        description="Sensors used: s2-only, s1-only or both (red-edge bands with both).",
    )
    classifier: Literal["rf", "extratrees", "lightgbm"] = Field(
        default="rf",
        description="rf (Sen4CAP's random forest), extratrees (extremely randomised trees) "
        "or lightgbm.",
    )
    until: date | None = Field(
        default=None,
        description="Early season: use only acquisitions up to this date (YYYY-MM-DD).",
    )
    lc: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 4], description="LUT land-cover codes classified."
    )
    min_s2_pix: int = Field(default=3, ge=0, description="Minimum S2Pix of a classified parcel.")
    min_s1_pix: int = Field(default=1, ge=0, description="Minimum S1Pix of a classified parcel.")
    best_s2_pix: int = Field(
        default=10, ge=0, description="S2Pix of the 'best' (calibration) parcels."
    )
    pa_min: int = Field(
        default=10,
        ge=1,
        description="Best parcels a class needs to be classified (Sen4CAP: 30).",
    )
    pa_train_h: int = Field(
        default=4000, ge=1, description="Classes this large train on sample_ratio_h."
    )
    pa_train_l: int = Field(
        default=1333, ge=1, description="Classes this large train on smote_target."
    )
    sample_ratio_h: float = Field(
        default=0.25, gt=0, le=1, description="Training share, strategy 1."
    )
    sample_ratio_l: float = Field(
        default=0.75, gt=0, le=1, description="Training share, strategy 3."
    )
    balance: Literal["weights", "sqrt", "smote", "none"] = Field(
        default="weights",
        description="Class balance: weights (inverse class size), sqrt (its square root), "
        "smote (Sen4CAP's SMOTE to smote_target) or none.",
    )
    smote_target: int = Field(
        default=1000,
        ge=1,
        description="Strategy 2 training size; with --balance smote, SMOTE raises small "
        "classes to this size.",
    )
    smote_k: int = Field(default=5, ge=1, description="SMOTE nearest neighbours.")
    num_trees: int = Field(
        default=300, ge=1, description="Trees (rf, extratrees) or boosting rounds (lightgbm)."
    )
    min_node_size: int | None = Field(
        default=None,
        ge=2,
        description="Smallest node a tree splits (RF and extra trees min_samples_split, "
        "LightGBM min_child_samples); default 10 for rf and lightgbm (Sen4CAP's ranger "
        "min.node.size), 2 for extratrees.",
    )
    num_leaves: int = Field(default=15, ge=2, description="LightGBM leaves per tree.")
    learning_rate: float = Field(default=0.05, gt=0, le=1, description="LightGBM learning rate.")
    feature_fraction: float = Field(
        default=0.3, gt=0, le=1, description="LightGBM share of the features each tree sees."
    )
    attributes: list[str] = Field(
        default_factory=list,
        description="Numeric columns of the parcels table (or of attributes_file) used as "
        "features in every model (e.g. elevation, slope, rainfall); a missing value takes the "
        "median.",
    )
    attributes_file: Path | None = Field(
        default=None,
        description="A CSV or Parquet table of parcel attributes (id column NewID or ori_id); "
        "without attributes, every numeric column is used.",
    )
    period: Literal["auto", "dekad", "month"] = Field(
        default="auto",
        description="Calendar periods of the optical series (and of the S1 series when "
        "monthly): dekads (1st, 11th, 21st), months, or auto (months for monthly composites).",
    )
    descriptors: bool = Field(
        default=True,
        description="Temporal descriptors (maximum and its day, green-up, senescence, slopes, "
        "integral) of the smoothed NDVI, NDWI and backscatter curves.",
    )
    radar_weeks: int = Field(default=1, ge=1, description="Weeks per backscatter composite.")
    backscatter_months: int = Field(
        default=2, ge=1, description="Months per backscatter statistic."
    )
    second_min_confidence: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description=(
            "A declaration matching the second prediction is conform only if that prediction's "
            "confidence reaches this (0: Sen4CAP's rule, any second prediction)."
        ),
    )
    cross_prediction: bool = Field(
        default=True,
        description="Predict each training parcel with a model that did not train on it.",
    )
    folds: int = Field(default=5, ge=2, description="Folds of the cross-prediction.")
    seed: int = Field(default=42, description="Random seed of sampling, SMOTE and the classifier.")
    jobs: int = Field(
        default=0,
        description="Threads of the classifier (0 or negative: the free cores of this process).",
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
    lut: Path | None = Field(
        default=None, description="A Sen4CAP LUT CSV instead of the stored one."
    )

    @field_validator("lc")
    @classmethod
    def _some_land_cover(cls, codes: list[int]) -> list[int]:
        if not codes:
            raise ValueError("lc needs at least one land-cover code")
        return sorted(set(codes))

    @field_validator("attributes")
    @classmethod
    def _distinct_attributes(cls, names: list[str]) -> list[str]:
        blank = [n for n in names if not n.strip()]
        if blank:
            raise ValueError("attributes: an empty column name")
        return list(dict.fromkeys(n.strip() for n in names))

    @model_validator(mode="before")
    @classmethod
    def _earlier_step(cls, values: object) -> object:
        """``optical_step_days`` (before calendar periods; stored schedules and configs may
        still pass it): 10 is dekads, 30 or 31 months, anything else an error saying so."""
        if not isinstance(values, dict) or "optical_step_days" not in values:
            return values
        values = dict(values)
        step = values.pop("optical_step_days")
        try:
            days = int(step)
        except (TypeError, ValueError):
            days = -1
        period = {10: "dekad", 30: "month", 31: "month"}.get(days)
        if period is None:
            raise ValueError(f"optical_step_days {step!r} is no longer supported: L4A uses "
                             "calendar periods, set period to dekad or month")  # fmt: skip
        values.setdefault("period", period)
        return values

    @model_validator(mode="after")
    def _thresholds(self) -> L4AParameters:
        if self.pa_train_l > self.pa_train_h:
            raise ValueError("pa_train_l must not exceed pa_train_h")
        return self

    def feature_settings(
        self, start: date | None = None, end: date | None = None
    ) -> FeatureSettings:
        """The feature settings of these parameters for a season window."""
        return FeatureSettings(
            mode=self.mode,
            start=start,
            end=end,
            until=self.until,
            period=self.period,
            descriptors=self.descriptors,
            radar_weeks=self.radar_weeks,
            backscatter_months=self.backscatter_months,
        )

    def training_rules(self) -> TrainingRules:
        """The sampling, SMOTE and classifier rules of these parameters."""
        return TrainingRules(
            pa_min=self.pa_min,
            pa_train_h=self.pa_train_h,
            pa_train_l=self.pa_train_l,
            sample_ratio_h=self.sample_ratio_h,
            sample_ratio_l=self.sample_ratio_l,
            smote_target=self.smote_target,
            smote_k=self.smote_k,
            num_trees=self.num_trees,
            min_node_size=self.min_node_size,
            classifier=self.classifier,
            cross_prediction=self.cross_prediction,
            folds=self.folds,
            seed=self.seed,
            jobs=self.jobs,
            balance=self.balance,
            num_leaves=self.num_leaves,
            learning_rate=self.learning_rate,
            feature_fraction=self.feature_fraction,
        )

    @property
    def effective_min_s2_pix(self) -> int:
        """Sen4CAP: no S2 pixel minimum in s1-only mode."""
        return 0 if self.mode == "s1-only" else self.min_s2_pix

    @property
    def effective_min_s1_pix(self) -> int:
        """Sen4CAP: no S1 pixel minimum in s2-only mode."""
        return 0 if self.mode == "s2-only" else self.min_s1_pix
