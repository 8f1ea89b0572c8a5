"""Training the learned mowing model on reference mowings (``capmon train l4b``).

An agency's field checks (parcel id, mowing date; parcels checked and not mown as rows without
a date) and the MDBs of the checked seasons give labelled candidates: a candidate is a cut when
a reference mowing of its parcel lies within the scoring window of ``capmon eval mowing``
([-3, +20] days of its end). Only the parcels the reference lists for a season are used (the
others were not checked). The model is cross-validated by parcel groups before it is trained
on everything, so the data card states what it is worth on parcels it did not see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.mdb.query import MarkersDatabase
from capmon.processors.l4b import learned
from capmon.processors.l4b.evaluate import score_events
from capmon.processors.l4b.series import build_series, series_signals

WINDOW = (-3, 20)


@dataclass(frozen=True)
class TrainingSeason:
    """One season of training: its MDB, the reported period and the reference rows that
    belong to it (``parcel_id`` of the MDB, ``date``; NaT = checked, not mown)."""

    name: str
    mdb: MarkersDatabase
    start: date
    until: date
    reference: pd.DataFrame


@dataclass(frozen=True)
class TrainingSet:
    """Candidates of every season (``season`` column added), their labels and references."""

    candidates: pd.DataFrame
    labels: np.ndarray
    seasons: tuple[TrainingSeason, ...]


def season_reference(
    reference: pd.DataFrame,
    id_map: dict[str, int] | None,
    year: int,
    start: date,
    until: date,
    label: str,
) -> pd.DataFrame:
    """The rows of ``reference`` (``ref_id``, ``date``, optional ``year``) for one season,
    with the MDB's ``parcel_id``: rows of that year (``year`` column), else dated rows in the
    period and undated rows (checked, not mown)."""
    rows = reference
    if "year" in rows.columns and rows["year"].notna().any():
        rows = rows[rows["year"] == year]
    else:
        dated = rows["date"].notna()
        inside = (rows["date"] >= pd.Timestamp(start)) & (rows["date"] <= pd.Timestamp(until))
        rows = rows[~dated | inside]
    if id_map is not None:
        ids = rows["ref_id"].map(id_map)
    else:
        ids = pd.to_numeric(rows["ref_id"], errors="coerce")
    matched = rows.assign(parcel_id=ids).dropna(subset=["parcel_id"])
    if matched.empty and not rows.empty:
        raise InputError(
            f"{label}: none of the {rows['ref_id'].nunique()} reference parcels of "
            f"{year} is in the MDB (ids such as {rows['ref_id'].iloc[0]!r})"
        )
    matched = matched.assign(parcel_id=matched["parcel_id"].astype("int64"))
    return matched[["parcel_id", "date"]].reset_index(drop=True)


def training_set(
    seasons: Sequence[TrainingSeason], sensors: learned.Sensors, lookback_days: int = 45
) -> TrainingSet:
    """Labelled candidates of the checked parcels of every season."""
    frames, labels = [], []
    for season in seasons:
        ids = sorted(set(season.reference["parcel_id"].tolist()))
        if not ids:
            continue
        first = season.start - timedelta(days=lookback_days)
        rows = season.mdb.timeseries(ids, series_signals("NDVI"), first, season.until)
        found = learned.candidates_for(build_series(rows, ids), sensors)
        found = found[
            (found["end"] >= pd.Timestamp(season.start))
            & (found["end"] <= pd.Timestamp(season.until))
        ]
        found = found.reset_index(drop=True).assign(season=season.name)
        frames.append(found)
        labels.append(learned.label_candidates(found, season.reference, WINDOW))
    if not frames:
        raise InputError("no reference parcel has observations in the MDBs given")
    return TrainingSet(pd.concat(frames, ignore_index=True), np.concatenate(labels), tuple(seasons))


def score(
    training: TrainingSet,
    probability: np.ndarray,
    threshold: float,
    mask: np.ndarray | None = None,
    parcels: set[tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """Precision, recall, F1 and date errors of the events the probabilities select, over the
    checked parcels of every season (``parcels``: only these season-parcels)."""
    candidates = training.candidates
    keep = np.ones(len(candidates), dtype=bool) if mask is None else mask
    probability = learned.without_rebounds(candidates, probability)
    scored = candidates[keep].assign(
        source=learned.SOURCE,
        confidence=probability[keep],
        mission="S2",
        detected_on=candidates["end"][keep],
        strength=probability[keep],
        threshold=threshold,
    )
    rows, events, references = [], [], []
    for k, season in enumerate(training.seasons):
        offset = (k + 1) * 10_000_000_000
        ids = sorted(set(season.reference["parcel_id"].tolist()))
        if parcels is not None:
            ids = [i for i in ids if (season.name, i) in parcels]
        own = scored[(scored["season"] == season.name) & scored["parcel_id"].isin(ids)]
        for pid, found in learned.select_events(own).items():
            events += [{"NewID": pid + offset, "end": pd.Timestamp(e.end)} for e in found]
        rows += [{"NewID": i + offset, "Ori_id": str(i + offset)} for i in ids]
        reference = season.reference[season.reference["parcel_id"].isin(ids)]
        references.append(
            pd.DataFrame(
                {"ref_id": (reference["parcel_id"] + offset).astype(str), "date": reference["date"]}
            )
        )
    figures = score_events(
        pd.DataFrame(rows),
        pd.DataFrame(events, columns=["NewID", "end"]),
        pd.concat(references, ignore_index=True),
        WINDOW,
        "ori_id",
    ).figures()
    return {
        k: figures[k]
        for k in (
            "parcels",
            "reference_events",
            "detected_events",
            "matched",
            "precision",
            "recall",
            "f1",
            "median_abs_date_error_days",
        )
    }


def cross_validate(
    training: TrainingSet, sensors: learned.Sensors, folds: int = 5, threshold: float = 0.5
) -> dict[str, Any]:
    """Scores of models trained without each fold of parcels (grouped by parcel, so no parcel
    is scored by a model that saw it in any season)."""
    parcels = training.candidates["parcel_id"].to_numpy()
    groups = np.unique(parcels)
    rng = np.random.default_rng(7)
    fold_of = dict(zip(groups.tolist(), rng.permutation(len(groups)) % folds, strict=True))
    fold = np.array([fold_of[int(p)] for p in parcels])
    probability = np.full(len(parcels), np.nan)
    for k in range(folds):
        test = fold == k
        if not test.any():
            continue
        model = learned.train_model(
            training.candidates[~test], training.labels[~test], sensors, threshold
        )
        probability[test] = model.probabilities(training.candidates[test])
    return score(training, probability, threshold)


def train(
    training: TrainingSet,
    sensors: learned.Sensors,
    threshold: float = 0.5,
    folds: int = 5,
    card: dict[str, Any] | None = None,
) -> learned.MowingModel:
    """A model trained on every candidate, its card holding the data and the cross-validated
    figures (``folds`` 0: none)."""
    details: dict[str, Any] = dict(card or {})
    details |= {
        "seasons": [
            {
                "name": s.name,
                "start": s.start.isoformat(),
                "until": s.until.isoformat(),
                "parcels": int(s.reference["parcel_id"].nunique()),
                "reference_mowings": int(s.reference["date"].notna().sum()),
            }
            for s in training.seasons
        ],
        "candidates": len(training.labels),
        "cut_candidates": int(training.labels.sum()),
        "window_days": list(WINDOW),
        "threshold": threshold,
        "parameters": learned.TRAIN_PARAMETERS | {"rounds": learned.TRAIN_ROUNDS},
    }
    if folds:
        details["cross_validation"] = {"folds": folds, "grouped_by": "parcel"} | cross_validate(
            training, sensors, folds, threshold
        )
    return learned.train_model(training.candidates, training.labels, sensors, threshold, details)


def mdb_year(mdb: MarkersDatabase) -> int:
    """The season year of an MDB: the year of most of its observations."""
    rows = (
        mdb.duckdb()
        .aggregate("year(date) AS y, count(*) AS n", "year(date)")
        .order("n DESC")
        .fetchall()
    )
    if not rows or rows[0][0] is None:
        raise InputError(f"the MDB {mdb.root} holds no observation")
    return int(rows[0][0])


def read_seasons(
    mdbs: Sequence[Path], reference: pd.DataFrame, first_day: str, last_day: str
) -> list[TrainingSeason]:
    """One training season per MDB folder: its year, the period ``first_day`` to ``last_day``
    (``MM-DD``) of that year, and the reference rows of that year."""
    from capmon.mdb.imports import parcel_id_map
    from capmon.mdb.query import open_mdb

    seasons = []
    for path in mdbs:
        mdb = open_mdb(path)
        year = mdb_year(mdb)
        try:
            start = date.fromisoformat(f"{year}-{first_day}")
            until = date.fromisoformat(f"{year}-{last_day}")
        except ValueError as error:
            raise InputError(f"--first-day/--last-day must be MM-DD ({error})") from error
        if until < start:
            raise InputError(f"--last-day {last_day} is before --first-day {first_day}")
        rows = season_reference(reference, parcel_id_map(path), year, start, until, str(path))
        seasons.append(TrainingSeason(f"{Path(path).name}:{year}", mdb, start, until, rows))
    return seasons
