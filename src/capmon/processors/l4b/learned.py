"""Learned mowing detection (``method=capmon``): NDVI drops as candidates, a trained model
scores them with the evidence around each one, non-maximum suppression picks the events.

Why (what the real GMD plots showed, docs/l4b.md): hand-set rules either miss cuts whose drop
is judged against a noise estimate made of the cuts themselves, or accept senescence, grazing
and residual clouds as cuts; a sensor used as a veto (coherence required) loses nearly every
cut. Here every drop of a parcel's NDVI between two of its own valid observations is a
*candidate*; its features describe the drop, the grass before it, what happens at the next
observations (a cloud residual is gone at once, a cut regrows over weeks, senescence does not
come back), the parcel's own noise, the time since its green-up and until its senescence (its
own green season, not the calendar), and, when Sentinel-1 is used, the coherence and
backscatter around the interval. A gradient-boosted model trained on real
reference mowings turns them into a probability, so each piece of evidence weighs by what it
was worth on real plots and none vetoes the others. A candidate without S1 data has NaN S1
features, which the model handles natively.

Every feature is the parcel's own: its result never depends on the other parcels of the run.
The shipped models (``capmon/data/models/l4b_*.txt``, LightGBM text format, with a data card)
were trained on the real GMD plots of Slovakia; ``capmon train l4b`` retrains them on an
agency's own reference mowings.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.processors.l4b.fusion import MAX_EVENTS, MowingEvent
from capmon.processors.l4b.series import F64, ParcelSeries, SeriesMatrix

Sensors = Literal["S2", "S1_S2"]

#: NDVI values below this are not observations (water, snow, a mask miss), as Sen4CAP's
#: ``corrupted_th``.
MIN_NDVI = 0.1
#: NDVI of green grass: the parcel's first and last observations at or above it bound its green
#: season, the time frame of the features (not the calendar: the model must hold where grass
#: greens up earlier or later than on the plots it was trained on).
GREEN_NDVI = 0.6
#: How many own observations a window may look back or ahead.
MAX_LAG = 12

S2_FEATURES: tuple[str, ...] = (
    "ndvi_before",
    "ndvi_after",
    "drop",
    "relative_drop",
    "gap_days",
    "drop_rate",
    "max_before_30",
    "drop_from_max",
    "drop_z",
    "noise",
    "previous_change",
    "next_change",
    "next_gap_days",
    "regrowth_40",
    "min_after_20",
    "level_after_60",
    "days_since_green",
    "days_to_brown",
    "season_peak",
    "peak_offset_days",
    "drops_before_30",
)
S1_FEATURES: tuple[str, ...] = (
    "cohe_vh_jump",
    "cohe_vv_jump",
    "cohe_vh_after",
    "cohe_vv_after",
    "cohe_vh_z",
    "amp_vh_change",
    "amp_vv_change",
    "s1_pairs",
)


def features_for(sensors: Sensors) -> tuple[str, ...]:
    """The feature columns a model for ``sensors`` reads."""
    return S2_FEATURES if sensors == "S2" else (*S2_FEATURES, *S1_FEATURES)


@dataclass(frozen=True)
class LearnedSettings:
    """Selection settings of the learned method (the model's probability threshold is the
    model's own, see :class:`MowingModel`)."""

    min_interval_days: int = 20  # two cuts are at least this far apart (end to end)
    max_events: int = MAX_EVENTS
    min_drop: float = 0.02  # a candidate is any own-observation drop larger than this
    # A dip gone at the parcel's next observation within ``rebound_days`` (back to within
    # ``rebound_margin`` of the value before) is a cloud or shadow residual, not a cut: cut
    # grass cannot regrow to its height in days. The rules method's settings, kept as a prior.
    rebound_days: int = 15
    rebound_margin: float = 0.03


def _own_observations(matrix: SeriesMatrix) -> tuple[F64, F64]:
    """Each parcel's valid values moved to the left, with their days (NaN beyond)."""
    values = np.where(matrix.values >= MIN_NDVI, matrix.values, np.nan)
    valid = np.isfinite(values)
    order = np.argsort(~valid, axis=1, kind="stable")
    own = np.take_along_axis(values, order, axis=1)
    days = np.broadcast_to(matrix.days(), values.shape)
    own_days = np.where(
        np.take_along_axis(valid, order, axis=1), np.take_along_axis(days, order, axis=1), np.nan
    )
    return own, own_days


def _shifted(values: F64, lag: int) -> F64:
    """``values[:, k + lag]`` at column k (NaN outside)."""
    out = np.full_like(values, np.nan)
    if lag > 0 and lag < values.shape[1]:
        out[:, :-lag] = values[:, lag:]
    elif lag < 0 and -lag < values.shape[1]:
        out[:, -lag:] = values[:, :lag]
    elif lag == 0:
        out = values.copy()
    return out


def _window(own: F64, days: F64, lags: range, low: float, high: float, how: str) -> F64:
    """Max, min or count of own observations at ``lags`` whose day offset is in [low, high]."""
    stack = []
    for lag in lags:
        value, day = _shifted(own, lag), _shifted(days, lag)
        offset = day - days
        stack.append(np.where((offset >= low) & (offset <= high), value, np.nan))
    window = np.stack(stack)
    with np.errstate(all="ignore"):
        if how == "max":
            return np.asarray(np.nanmax(np.where(np.isfinite(window), window, -np.inf), axis=0))
        if how == "min":
            return np.asarray(np.nanmin(np.where(np.isfinite(window), window, np.inf), axis=0))
        return np.asarray(np.isfinite(window).sum(axis=0), dtype=np.float64)


def _nanmedian(values: F64, axis: int) -> F64:
    """``np.nanmedian`` that gives NaN for an all-NaN slice without a warning."""
    if values.shape[axis] == 0:
        return np.full(values.shape[1 - axis], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmedian(values, axis=axis), dtype=np.float64)


def _finite(values: F64) -> F64:
    return np.where(np.isfinite(values), values, np.nan)


def ndvi_candidates(optical: SeriesMatrix, settings: LearnedSettings | None = None) -> pd.DataFrame:
    """Every drop between two successive own NDVI observations, with its S2 features.

    Columns: ``parcel_id``, ``start`` (the observation before), ``end`` (the one after), and
    :data:`S2_FEATURES`.
    """
    s = settings or LearnedSettings()
    if optical.empty:
        return _empty_candidates()
    own, days = _own_observations(optical)
    before, before_day = _shifted(own, -1), _shifted(days, -1)
    drop = before - own
    gap = days - before_day
    diffs = own[:, 1:] - own[:, :-1]
    noise = 1.4826 * _nanmedian(np.abs(diffs), axis=1)
    noise = np.maximum(np.nan_to_num(noise, nan=0.05), 0.01)
    max_before = _finite(_window(own, days, range(-MAX_LAG, 0), -30, -1, "max"))
    nxt, next_day = _shifted(own, 1), _shifted(days, 1)
    before2 = _shifted(own, -2)
    regrowth = _finite(_window(own, days, range(1, MAX_LAG + 1), 1, 40, "max"))
    min_after = _finite(_window(own, days, range(1, MAX_LAG + 1), 1, 20, "min"))
    late = _finite(_window(own, days, range(1, MAX_LAG + 1), 41, 60, "max"))
    dropped = np.where(drop > 0.05, 1.0, np.nan)
    drops_before = _window(dropped, days, range(-MAX_LAG, 0), -30, -1, "count")
    peak = np.nanmax(np.where(np.isfinite(own), own, -np.inf), axis=1)
    peak_column = np.argmax(np.where(np.isfinite(own), own, -np.inf), axis=1)
    peak_day = days[np.arange(len(own)), peak_column]
    green = np.where(own >= GREEN_NDVI, days, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        green_first, green_last = np.nanmin(green, axis=1), np.nanmax(green, axis=1)
    rows, cols = np.nonzero(np.isfinite(drop) & (drop > s.min_drop))
    if rows.size == 0:
        return _empty_candidates()
    end_days = days[rows, cols]
    start_days = before_day[rows, cols]
    end = pd.to_datetime(end_days.astype("int64"), unit="D")
    frame = pd.DataFrame(
        {
            "parcel_id": optical.parcel_ids[rows],
            "start": pd.to_datetime(start_days.astype("int64"), unit="D"),
            "end": end,
            "ndvi_before": before[rows, cols],
            "ndvi_after": own[rows, cols],
            "drop": drop[rows, cols],
            "relative_drop": drop[rows, cols] / before[rows, cols],
            "gap_days": gap[rows, cols],
            "drop_rate": drop[rows, cols] / np.maximum(gap[rows, cols], 1.0),
            "max_before_30": max_before[rows, cols],
            "drop_from_max": np.fmax(max_before[rows, cols], before[rows, cols]) - own[rows, cols],
            "drop_z": drop[rows, cols] / noise[rows],
            "noise": noise[rows],
            "previous_change": before[rows, cols] - before2[rows, cols],
            "next_change": nxt[rows, cols] - own[rows, cols],
            "next_gap_days": next_day[rows, cols] - days[rows, cols],
            "regrowth_40": regrowth[rows, cols] - own[rows, cols],
            "min_after_20": min_after[rows, cols] - own[rows, cols],
            "level_after_60": late[rows, cols],
            "days_since_green": end_days - green_first[rows],
            "days_to_brown": green_last[rows] - end_days,
            "season_peak": peak[rows],
            "peak_offset_days": end_days - peak_day[rows],
            "drops_before_30": drops_before[rows, cols],
        }
    )
    return frame.sort_values(["parcel_id", "end"], ignore_index=True)


def _empty_candidates() -> pd.DataFrame:
    columns: dict[str, Any] = {
        "parcel_id": pd.Series([], dtype="int64"),
        "start": pd.Series([], dtype="datetime64[ns]"),
        "end": pd.Series([], dtype="datetime64[ns]"),
    }
    for name in (*S2_FEATURES, *S1_FEATURES):
        columns[name] = pd.Series([], dtype="float64")
    return pd.DataFrame(columns)


def _parcel_rows(matrices: Sequence[SeriesMatrix], parcel_ids: np.ndarray) -> list[SeriesMatrix]:
    return [m.rows(parcel_ids) for m in matrices if not m.empty]


def _s1_window(
    matrices: Sequence[SeriesMatrix],
    row: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    use_first: bool,
    how: str,
) -> F64:
    """Per candidate, the max/median/count of S1 values dated in [low, high] (days)."""
    found: list[F64] = []
    for m in matrices:
        when = m.days()
        if use_first and m.first_dates is not None:
            when = m.first_dates.astype("datetime64[D]").astype(np.int64).astype(np.float64)
        values = m.values[row]  # candidates x dates
        inside = (when[None, :] >= low[:, None]) & (when[None, :] <= high[:, None])
        found.append(np.where(inside, values, np.nan))
    if not found:
        return np.full(len(row), np.nan)
    window = np.concatenate(found, axis=1)
    with np.errstate(all="ignore"):
        if how == "max":
            out = np.nanmax(np.where(np.isfinite(window), window, -np.inf), axis=1)
        elif how == "median":
            out = _nanmedian(window, axis=1)
        else:
            return np.asarray(np.isfinite(window).sum(axis=1), dtype=np.float64)
    return _finite(np.asarray(out, dtype=np.float64))


def _noise(matrices: Sequence[SeriesMatrix], row: np.ndarray) -> F64:
    """Per candidate, the median over orbits of its parcel's robust spread of successive
    differences of its own observations (NaN with fewer than 3)."""
    spreads = []
    for m in matrices:
        valid = np.isfinite(m.values)
        order = np.argsort(~valid, axis=1, kind="stable")
        own = np.take_along_axis(m.values, order, axis=1)  # own observations first
        diffs = np.abs(own[:, 1:] - own[:, :-1])
        spread = 1.4826 * _nanmedian(diffs, axis=1)
        spread[valid.sum(axis=1) < 3] = np.nan
        spreads.append(spread[row])
    if not spreads:
        return np.full(len(row), np.nan)
    return _finite(_nanmedian(np.stack(spreads), axis=0))


def add_s1_features(candidates: pd.DataFrame, series: ParcelSeries) -> pd.DataFrame:
    """The candidates with :data:`S1_FEATURES` from the parcel's own S1 series (NaN when it has
    none around the candidate).

    Coherence (per polarisation, every orbit): the most coherent pair starting between the
    observation before and 12 days after the observation after (short grass is stable), minus
    the median of the pairs ending in the 40 days before; backscatter: the mean of the 12 days
    after the candidate's end minus the mean of the 24 days before its start.
    """
    out = candidates.copy()
    for name in S1_FEATURES:
        out[name] = np.nan
    if out.empty or (not series.has_s1 and not any(series.amplitude.values())):
        return out
    ids = np.asarray(series.parcel_ids)
    position = {int(p): i for i, p in enumerate(ids)}
    row = np.array([position.get(int(p), -1) for p in out["parcel_id"]], dtype=np.int64)
    keep = row >= 0
    if not keep.any():
        return out
    row = row[keep]
    start = out["start"].to_numpy("datetime64[D]").astype(np.int64).astype(np.float64)[keep]
    end = out["end"].to_numpy("datetime64[D]").astype(np.int64).astype(np.float64)[keep]
    pairs_total = np.zeros(len(row))
    for pol in ("VH", "VV"):
        matrices = [m for m in series.coherence.get(pol, []) if not m.empty]
        if not matrices:
            continue
        after = _s1_window(matrices, row, start, end + 12, True, "max")
        before = _s1_window(matrices, row, start - 40, start, False, "median")
        out.loc[keep, f"cohe_{pol.lower()}_jump"] = after - before
        out.loc[keep, f"cohe_{pol.lower()}_after"] = after
        if pol == "VH":
            noise = np.maximum(np.nan_to_num(_noise(matrices, row), nan=0.05), 0.02)
            out.loc[keep, "cohe_vh_z"] = (after - before) / noise
        pairs_total += _s1_window(matrices, row, start, end + 12, True, "count")
    out.loc[keep, "s1_pairs"] = pairs_total
    for pol in ("VH", "VV"):
        matrices = [m for m in series.amplitude.get(pol, []) if not m.empty]
        if not matrices:
            continue
        after = _s1_window(matrices, row, end, end + 12, False, "median")
        before = _s1_window(matrices, row, start - 24, start, False, "median")
        out.loc[keep, f"amp_{pol.lower()}_change"] = after - before
    return out


def candidates_for(
    series: ParcelSeries, sensors: Sensors, settings: LearnedSettings | None = None
) -> pd.DataFrame:
    """The candidates and features of ``series`` for a model of ``sensors``."""
    if series.optical is None:
        return _empty_candidates()
    found = ndvi_candidates(series.optical, settings)
    if sensors == "S1_S2":
        found = add_s1_features(found, series)
    return found


def label_candidates(
    candidates: pd.DataFrame, reference: pd.DataFrame, window: tuple[int, int] = (-3, 20)
) -> np.ndarray:
    """1 where a reference mowing of the parcel (``parcel_id``, ``date``) lies so that
    ``end - date`` is within ``window`` days, else 0 (the scoring rule of ``eval mowing``)."""
    labels = np.zeros(len(candidates), dtype=np.int64)
    if candidates.empty or reference.empty:
        return labels
    dates = (
        reference.dropna(subset=["date"])
        .groupby("parcel_id")["date"]
        .apply(lambda d: pd.to_datetime(d).to_numpy("datetime64[D]"))
    )
    ends = candidates["end"].to_numpy("datetime64[D]")
    for i, pid in enumerate(candidates["parcel_id"].to_numpy()):
        truth = dates.get(pid)
        if truth is None:
            continue
        delay = (ends[i] - truth).astype(np.int64)
        labels[i] = int(((delay >= window[0]) & (delay <= window[1])).any())
    return labels


@dataclass(frozen=True)
class MowingModel:
    """A trained candidate scorer: a LightGBM booster (text) over ``features``, with the
    probability ``threshold`` above which a candidate is a cut, and its data card."""

    sensors: Sensors
    features: tuple[str, ...]
    threshold: float
    booster: str
    card: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, candidates: pd.DataFrame) -> F64:
        """The model's probability that each candidate is a cut."""
        if candidates.empty:
            return np.zeros(0)
        missing = [f for f in self.features if f not in candidates.columns]
        if missing:
            raise InputError(f"mowing candidates lack the model's features {missing}")
        booster = _booster(self.booster)
        matrix = candidates[list(self.features)].to_numpy(np.float64)
        return np.asarray(booster.predict(matrix), dtype=np.float64)

    def save(self, path: Path) -> None:
        """Write the model as one JSON file (booster text inside), atomically."""
        from capmon.workspace import atomic_path

        document = {
            "format": "capmon-l4b-model",
            "version": 1,
            "sensors": self.sensors,
            "features": list(self.features),
            "threshold": self.threshold,
            "card": self.card,
            "booster": self.booster,
        }
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(document, indent=1))

    @classmethod
    def load(cls, path: Path) -> MowingModel:
        """Read a model written by :meth:`save` (``capmon train l4b``)."""
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: not a readable L4B model ({error})") from error
        return cls.from_document(document, str(path))

    @classmethod
    def from_document(cls, document: Any, source: str) -> MowingModel:
        if not isinstance(document, dict) or document.get("format") != "capmon-l4b-model":
            raise InputError(f"{source}: not a capmon L4B model (format capmon-l4b-model)")
        sensors = document.get("sensors")
        if sensors not in ("S2", "S1_S2"):
            raise InputError(f"{source}: sensors must be S2 or S1_S2, not {sensors!r}")
        features = tuple(str(f) for f in document.get("features", []))
        unknown = [f for f in features if f not in (*S2_FEATURES, *S1_FEATURES)]
        if unknown or not features:
            raise InputError(f"{source}: unknown or no features {unknown}")
        return cls(
            sensors,
            features,
            float(document["threshold"]),
            str(document["booster"]),
            dict(document.get("card", {})),
        )


@functools.lru_cache(maxsize=8)
def _booster(text: str) -> Any:
    """The LightGBM booster of a model's text, parsed once per process."""
    import lightgbm

    return lightgbm.Booster(model_str=text)


@functools.cache
def shipped_model(sensors: Sensors) -> MowingModel:
    """The model shipped with capmon for ``sensors`` (trained on the real GMD plots); read
    once per process, as every parcel chunk of a run asks for it."""
    name = "l4b_mowing_s2.json" if sensors == "S2" else "l4b_mowing_s1_s2.json"
    text = resources.files("capmon.data.models").joinpath(name).read_text()
    return MowingModel.from_document(json.loads(text), f"capmon/data/models/{name}")


#: LightGBM settings: shallow trees and strong leaf minimums, as the training sets are a few
#: thousand candidates of which a few hundred are cuts.
TRAIN_PARAMETERS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "max_depth": 3,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "num_threads": 1,
    "seed": 7,
    "deterministic": True,
}
TRAIN_ROUNDS = 200


def train_model(
    candidates: pd.DataFrame,
    labels: np.ndarray,
    sensors: Sensors,
    threshold: float = 0.5,
    card: dict[str, Any] | None = None,
) -> MowingModel:
    """A model trained on labelled candidates (see :func:`label_candidates`)."""
    import lightgbm

    if len(candidates) != len(labels):
        raise InputError("one label per candidate is needed")
    positives = int(np.sum(labels))
    if positives < 10 or len(labels) - positives < 10:
        raise InputError(
            f"training needs at least 10 cuts and 10 other candidates "
            f"(got {positives} and {len(labels) - positives})"
        )
    features = features_for(sensors)
    dataset = lightgbm.Dataset(
        candidates[list(features)].to_numpy(np.float64),
        label=labels,
        feature_name=list(features),
        free_raw_data=True,
    )
    booster = lightgbm.train(TRAIN_PARAMETERS, dataset, num_boost_round=TRAIN_ROUNDS)
    return MowingModel(sensors, features, threshold, booster.model_to_string(), dict(card or {}))


#: How far ahead the features look (``level_after_60``): an event is known at the latest
#: this many days after its end, or at the run's last date.
LOOKAHEAD_DAYS = 60
SOURCE = "ndvi_model"


def without_rebounds(
    candidates: pd.DataFrame, probability: F64, settings: LearnedSettings | None = None
) -> F64:
    """The probabilities with 0 for dips gone at the parcel's next observation (see
    :class:`LearnedSettings`)."""
    s = settings or LearnedSettings()
    gone = (candidates["next_gap_days"] <= s.rebound_days) & (
        candidates["next_change"] >= candidates["drop"] - s.rebound_margin
    )
    return np.where(gone.to_numpy(), 0.0, probability)


def scored_candidates(
    series: ParcelSeries,
    sensors: Sensors,
    models: dict[str, MowingModel],
    last_day: datetime | None,
    settings: LearnedSettings | None = None,
) -> pd.DataFrame:
    """The candidates of ``series`` with the model's probability (``confidence``) and
    threshold, in the candidate table's columns (``sen4cap.CANDIDATE_COLUMNS`` + threshold).

    With ``sensors`` S1_S2 and an S1_S2 model in ``models`` (:func:`models_for`), a candidate
    with S1 pairs around it is scored by that model, one without (a parcel or a period without
    S1) by the S2 model; without an S1_S2 model every candidate is scored by the S2 model.
    """
    found = candidates_for(series, sensors, settings)
    columns = [
        "parcel_id",
        "source",
        "start",
        "end",
        "confidence",
        "mission",
        "detected_on",
        "strength",
        "threshold",
    ]
    if found.empty:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in columns}).astype(
            {
                "parcel_id": "int64",
                "source": "object",
                "mission": "object",
                "start": "datetime64[ns]",
                "end": "datetime64[ns]",
                "detected_on": "datetime64[ns]",
            }
        )
    probability = np.zeros(len(found))
    threshold = np.zeros(len(found))
    mission = np.full(len(found), "S2", dtype=object)
    with_s1 = np.zeros(len(found), dtype=bool)
    if sensors == "S1_S2" and "S1_S2" in models:
        with_s1 = found["s1_pairs"].fillna(0).to_numpy() > 0
    for use, name in ((with_s1, "S1_S2"), (~with_s1, "S2")):
        if use.any():
            model = models[name]
            probability[use] = model.probabilities(found[use])
            threshold[use] = model.threshold
            mission[use] = "S2/S1" if name == "S1_S2" else "S2"
    probability = without_rebounds(found, probability, settings)
    known = found["end"] + pd.Timedelta(days=LOOKAHEAD_DAYS)
    if last_day is not None:
        known = known.where(known <= pd.Timestamp(last_day), pd.Timestamp(last_day))
    return pd.DataFrame(
        {
            "parcel_id": found["parcel_id"].astype("int64"),
            "source": SOURCE,
            "start": found["start"],
            "end": found["end"],
            "confidence": probability.round(4),
            "mission": mission,
            "detected_on": known.where(known > found["end"], found["end"]),
            "strength": probability,
            "threshold": threshold,
        }
    )


def select_events(
    scored: pd.DataFrame, settings: LearnedSettings | None = None
) -> dict[int, list[MowingEvent]]:
    """Per parcel, the most probable candidates at or above their model's threshold, at least
    ``min_interval_days`` apart (end to end), at most ``max_events``, sorted by time."""
    s = settings or LearnedSettings()
    out: dict[int, list[MowingEvent]] = {}
    if scored.empty:
        return out
    frame = scored[scored["confidence"] >= scored["threshold"]]
    for pid, group in frame.groupby("parcel_id", sort=True):
        chosen: list[MowingEvent] = []
        for rec in group.sort_values(["confidence", "end"], ascending=[False, True]).itertuples():
            end = _as_datetime(rec.end)
            if any(abs((end - e.end) / timedelta(days=1)) < s.min_interval_days for e in chosen):
                continue
            chosen.append(
                MowingEvent(
                    _as_datetime(rec.start),
                    end,
                    float(cast(float, rec.confidence)),
                    str(rec.mission),
                    _as_datetime(rec.detected_on),
                )
            )
            if len(chosen) == s.max_events:
                break
        out[int(cast(int, pid))] = sorted(chosen, key=lambda e: e.end)
    return out


# The shipped S1+S2 model is not used unless asked for: scored leave-one-region-out on the real
# development plots it did not beat the S2 model on the unseen region (F1 0.85 against 0.85 on
# LR, 0.77 against 0.82 on NB; docs/l4b.md), so S1 evidence has not earned a say by default.
S1_EVIDENCE_BY_DEFAULT = False


def uses_s1_evidence(
    sensors: Sensors, model: MowingModel | None = None, s1_evidence: bool | None = None
) -> bool:
    """Whether a run scores candidates with S1 pairs around them by an S1_S2 model: only with
    S1 and S2 read, and then as ``s1_evidence`` says, or when not said, when ``model`` (from
    ``--model``) was trained with S1."""
    if sensors != "S1_S2":
        return False
    if s1_evidence is not None:
        return s1_evidence
    return S1_EVIDENCE_BY_DEFAULT or (model is not None and model.sensors == "S1_S2")


def models_for(
    sensors: Sensors, model: MowingModel | None = None, s1_evidence: bool | None = None
) -> dict[str, MowingModel]:
    """The models a run uses: ``model`` (from ``--model``) for its sensor set, the shipped
    ones otherwise. The S2 model scores every candidate, except, when the run uses S1
    evidence (:func:`uses_s1_evidence`), those with S1 pairs around them."""
    if model is not None and model.sensors == "S1_S2" and sensors == "S2":
        raise InputError(
            "the model was trained with S1 and S2 (sensors S1_S2); this run "
            "uses S2 only: pass --sensors S1_S2 or an S2 model"
        )
    with_s1 = uses_s1_evidence(sensors, model, s1_evidence)
    if model is not None and model.sensors == "S1_S2" and not with_s1:
        raise InputError(
            "the model was trained with S1 and S2 (sensors S1_S2) but this run does not use "
            "S1 evidence: drop --no-s1-evidence or pass an S2 model"
        )
    models = {"S2": shipped_model("S2")}
    if with_s1:
        models["S1_S2"] = shipped_model("S1_S2")
    if model is not None:
        models[model.sensors] = model
    return models


def _as_datetime(value: Any) -> datetime:
    return pd.Timestamp(value).to_pydatetime()
