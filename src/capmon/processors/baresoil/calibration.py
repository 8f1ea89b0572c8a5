"""Calibration of the bare-soil model from a labelled table (``capmon calibrate baresoil``).

The labels file is a CSV with a parcel id (``parcel_id`` or ``NewID``: the MDB's id), a date
(``date``, YYYY-MM-DD) and a label (``label``, ``BARE`` or ``VEG``; ``status`` or ``class``
are accepted as column names). Each label is matched with the parcel's optical observation
nearest to its date within ``tolerance_days``; unmatched labels are counted and reported.

Two models can be fitted:

* ``thresholds`` (default): the expert model's six parameters (threshold and softness of NDVI,
  NDTILL and BSI) by maximum likelihood, starting from the expert values; the result stays
  readable as thresholds;
* ``logistic``: a logistic regression on the standardised indices and their pairwise products.

Accuracy is estimated by k-fold cross-validation grouped by parcel (observations of one parcel
never fall in both the training and the test folds), and reported with the expert model's
accuracy on the same labels for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.model_selection import StratifiedGroupKFold  # type: ignore[import-untyped]

from capmon.errors import ColumnError, InputError, StorageError
from capmon.mdb.query import MarkersDatabase
from capmon.processors.baresoil.detect import optical_observations
from capmon.processors.baresoil.model import (
    FEATURES,
    BareSoilModel,
    CalibrationFile,
    LogisticModel,
    ThresholdModel,
    logistic_design,
)
from capmon.workspace import atomic_path

FloatArray = npt.NDArray[np.float64]
Method = Literal["thresholds", "logistic"]
_ID_COLUMNS = ("parcel_id", "newid", "parcel")
_LABEL_COLUMNS = ("label", "status", "class")
_LABELS = {"BARE": 1, "VEG": 0}


def read_labels(path: str | Path) -> pd.DataFrame:
    """The labels file as (``parcel_id`` int64, ``date`` Timestamp, ``bare`` 0/1)."""
    file = Path(path)
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise InputError(f"labels file {file} does not exist") from exc
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"{file}: not a readable CSV ({exc})") from exc
    columns = {c.strip().lower(): c for c in raw.columns}

    def column(options: tuple[str, ...], what: str) -> str:
        for option in options:
            if option in columns:
                return columns[option]
        raise ColumnError(
            f"{file}: no {what} column (one of {', '.join(options)}); "
            f"columns: {', '.join(raw.columns)}"
        )

    id_col = column(_ID_COLUMNS, "parcel id")
    date_col = column(("date",), "date")
    label_col = column(_LABEL_COLUMNS, "label")
    if raw.empty:
        raise InputError(f"{file} has no label row")
    ids = pd.to_numeric(raw[id_col].str.strip(), errors="coerce")
    dates = pd.to_datetime(raw[date_col].str.strip(), format="%Y-%m-%d", errors="coerce")
    labels = raw[label_col].str.strip().str.upper().map(_LABELS)
    for bad, what, source in (
        (ids.isna() | (ids % 1 != 0), f"parcel id ({id_col})", id_col),
        (dates.isna(), f"date ({date_col}, YYYY-MM-DD)", date_col),
        (labels.isna(), f"label ({label_col}: BARE or VEG)", label_col),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{file}, line {row + 2}: invalid {what}: {raw[source].iloc[row]!r} "
                f"({int(bad.sum())} such rows)"
            )
    table = pd.DataFrame(
        {
            "parcel_id": ids.astype(np.int64),
            "date": dates.astype("datetime64[ns]"),
            "bare": labels.astype(np.int8),
        }
    )
    return table.drop_duplicates().reset_index(drop=True)


def label_features(
    labels: pd.DataFrame, mdb: MarkersDatabase, *, tolerance_days: int = 3
) -> tuple[pd.DataFrame, int]:
    """Each label with the indices of the parcel's nearest optical observation; and the number
    of labels without an observation within ``tolerance_days``."""
    if tolerance_days < 0:
        raise InputError(f"tolerance_days must be >= 0, not {tolerance_days}")
    ids = sorted(set(labels["parcel_id"].tolist()))
    start = (labels["date"].min() - timedelta(days=tolerance_days)).date()
    end = (labels["date"].max() + timedelta(days=tolerance_days)).date()
    rows = mdb.timeseries(ids, FEATURES, start, end)
    observations = optical_observations(rows, ThresholdModel())
    if observations.empty:
        return pd.DataFrame(columns=["parcel_id", "date", "bare", *FEATURES]), len(labels)
    left = labels.assign(date=labels["date"].astype("datetime64[ns]"))
    left = left.sort_values("date").reset_index(drop=True)
    right = (
        observations[["parcel_id", "date", *FEATURES]]
        .rename(columns={"date": "observed"})
        .astype({"observed": "datetime64[ns]"})
        .sort_values("observed")
    )
    matched = pd.merge_asof(
        left,
        right,
        left_on="date",
        right_on="observed",
        by="parcel_id",
        direction="nearest",
        tolerance=pd.Timedelta(days=tolerance_days),
    )
    found = matched[list(FEATURES)].notna().all(axis=1)
    return matched[found].reset_index(drop=True), int((~found).sum())


def fit_thresholds(values: FloatArray, bare: npt.NDArray[np.int8]) -> ThresholdModel:
    """The threshold model maximising the likelihood of the labels (from the expert values)."""
    expert = ThresholdModel()
    x0 = np.array(
        [
            expert.ndvi_max,
            np.log(expert.ndvi_scale),
            expert.ndtill_max,
            np.log(expert.ndtill_scale),
            expert.bsi_min,
            np.log(expert.bsi_scale),
        ]
    )

    # Softness is kept >= a quarter of the expert's so that separable labels do not turn the
    # confidence into a hard 0/1 step.
    floor = np.log(0.25 * np.array([expert.ndvi_scale, expert.ndtill_scale, expert.bsi_scale]))

    def model_of(theta: FloatArray) -> ThresholdModel:
        scales = np.exp(np.clip(theta[[1, 3, 5]], floor, 2.0))
        return ThresholdModel(
            ndvi_max=float(theta[0]),
            ndvi_scale=float(scales[0]),
            ndtill_max=float(theta[2]),
            ndtill_scale=float(scales[1]),
            bsi_min=float(theta[4]),
            bsi_scale=float(scales[2]),
        )

    def loss(theta: FloatArray) -> float:
        p = _probability(model_of(theta), values)
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return float(-np.mean(bare * np.log(p) + (1 - bare) * np.log(1 - p)))

    fitted = minimize(loss, x0, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-4})
    return model_of(np.asarray(fitted.x))


def fit_logistic(values: FloatArray, bare: npt.NDArray[np.int8]) -> LogisticModel:
    """A logistic regression on the standardised indices and their pairwise products."""
    if len(np.unique(bare)) < 2:
        raise InputError("the labels must hold both BARE and VEG to fit a logistic model")
    mean = values.mean(axis=0)
    scale = values.std(axis=0)
    scale[scale == 0] = 1.0
    design = logistic_design(values, mean, scale)
    regression = LogisticRegression(C=1.0, max_iter=2000).fit(design, bare)
    return LogisticModel(
        mean=mean.tolist(),
        scale=scale.tolist(),
        coefficients=regression.coef_[0].tolist(),
        intercept=float(regression.intercept_[0]),
    )


def _probability(model: BareSoilModel, values: FloatArray) -> FloatArray:
    return model.probability(values[:, 0].copy(), values[:, 1].copy(), values[:, 2].copy())


def scores(
    model: BareSoilModel, values: FloatArray, bare: npt.NDArray[np.int8]
) -> dict[str, float]:
    """Accuracy, balanced accuracy and recall of each class of ``model`` on labelled values."""
    called = _probability(model, values) >= 0.5
    truth = bare.astype(bool)
    recall_bare = float(called[truth].mean()) if truth.any() else float("nan")
    recall_veg = float((~called[~truth]).mean()) if (~truth).any() else float("nan")
    return {
        "accuracy": float((called == truth).mean()),
        "balanced_accuracy": float(np.nanmean([recall_bare, recall_veg])),
        "recall_bare": recall_bare,
        "recall_veg": recall_veg,
    }


@dataclass(frozen=True)
class Calibration:
    """A fitted model and how well it and the expert model do on the labels."""

    model: BareSoilModel
    method: Method
    labels: int
    unmatched: int
    parcels: int
    folds: int
    cross_validation: dict[str, float]
    expert: dict[str, float]
    training: dict[str, float]


def calibrate(
    matched: pd.DataFrame,
    *,
    method: Method = "thresholds",
    folds: int = 5,
    seed: int = 0,
    unmatched: int = 0,
) -> Calibration:
    """Fit ``method`` on the matched labels; cross-validated scores grouped by parcel."""
    if method not in ("thresholds", "logistic"):
        raise InputError(f"method must be thresholds or logistic, not {method!r}")
    if folds < 2:
        raise InputError(f"folds must be >= 2, not {folds}")
    if matched.empty:
        raise InputError(
            "no label matches an optical observation of its parcel: check the parcel ids "
            "(the MDB's NewID) and dates, or raise --tolerance-days"
        )
    values = matched[list(FEATURES)].to_numpy(np.float64)
    bare = matched["bare"].to_numpy(np.int8)
    if len(np.unique(bare)) < 2:
        raise InputError("the matched labels must hold both BARE and VEG")
    fit: Callable[[FloatArray, npt.NDArray[np.int8]], BareSoilModel] = (
        fit_thresholds if method == "thresholds" else fit_logistic
    )
    groups = matched["parcel_id"].to_numpy()
    n_splits = min(folds, len(np.unique(groups)), int(np.bincount(bare).min()))
    cross: dict[str, float] = {}
    if n_splits >= 2:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        predicted = np.zeros(len(bare), dtype=bool)
        for train, test in splitter.split(values, bare, groups):
            fold_model = fit(values[train], bare[train])
            predicted[test] = _probability(fold_model, values[test]) >= 0.5
        truth = bare.astype(bool)
        recall_bare = float(predicted[truth].mean())
        recall_veg = float((~predicted[~truth]).mean())
        cross = {
            "accuracy": float((predicted == truth).mean()),
            "balanced_accuracy": (recall_bare + recall_veg) / 2,
            "recall_bare": recall_bare,
            "recall_veg": recall_veg,
        }
    model = fit(values, bare)
    return Calibration(
        model=model,
        method=method,
        labels=len(matched),
        unmatched=unmatched,
        parcels=len(np.unique(groups)),
        folds=n_splits if n_splits >= 2 else 0,
        cross_validation=cross,
        expert=scores(ThresholdModel(), values, bare),
        training=scores(model, values, bare),
    )


def write_calibration(calibration: Calibration, path: str | Path) -> Path:
    """Write the model file that ``capmon run baresoil --model`` reads."""
    target = Path(path)
    payload = CalibrationFile(
        model=calibration.model,
        labels=calibration.labels,
        cross_validation=calibration.cross_validation,
    )
    try:
        with atomic_path(target) as tmp:
            tmp.write_text(payload.model_dump_json(indent=2), encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"cannot write the bare-soil model {target}: {exc}") from exc
    return target
