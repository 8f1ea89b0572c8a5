"""Bare-soil detection per parcel and 10-day period (dekad), bare-soil periods and compliance.

The pipeline, pure functions on MDB rows (``capmon.open_mdb(...).timeseries`` long tables):

1. :func:`optical_observations`: one row per parcel and optical acquisition with the parcel's
   mean NDVI, NDTILL and BSI and its valid-pixel fraction (``count / pixels``), and the model's
   P(bare) (:mod:`capmon.processors.baresoil.model`).
2. :func:`period_status`: calendar dekads (days 1-10, 11-20, 21-end of month) between the
   analysed dates; P(bare) of a dekad is the valid-fraction-weighted mean of its observations',
   optionally nudged by the dekad's Sentinel-1 VH and coherence. Status ``BARE`` when it is at
   least 0.5, ``VEG`` below, ``NO_DATA`` when the dekad has no optical observation (never
   "bare": a cloudy fortnight says nothing about the soil). Confidence is the probability of the
   status given (0.5-1), 0 for ``NO_DATA``.
3. :func:`bare_periods`: runs of consecutive ``BARE`` dekads, bridging at most ``max_gap``
   ``NO_DATA`` dekads between two ``BARE`` ones.
4. :func:`cover_compliance`: per parcel and soil-cover window (e.g. 1 Nov - 15 Feb), whether a
   ``BARE`` dekad falls in the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.processors.baresoil.model import FEATURES, BareSoilModel, RadarEvidence

BARE = "BARE"
VEG = "VEG"
NO_DATA = "NO_DATA"
COMPLIANT = "COMPLIANT"
NOT_COMPLIANT = "NOT_COMPLIANT"
RADAR_SIGNALS = ("AMP_VH", "COHE_VV")

OBSERVATION_COLUMNS = ("parcel_id", "date", "dekad", *FEATURES, "valid_fraction", "p_bare")
STATUS_COLUMNS = (
    "parcel_id", "dekad", "dekad_end", "status", "confidence", "p_bare", "observations",
    "valid_fraction", *FEATURES, "radar_p_bare",
)  # fmt: skip
PERIOD_COLUMNS = (
    "parcel_id", "start", "end", "days", "bare_dekads", "no_data_dekads", "first_observed",
    "last_observed", "confidence",
)  # fmt: skip
COMPLIANCE_COLUMNS = (
    "parcel_id", "window_start", "window_end", "analysed_start", "analysed_end", "dekads",
    "observed_dekads", "bare_dekads", "first_bare", "compliance", "confidence",
)  # fmt: skip


def dekad_start(dates: pd.Series | pd.DatetimeIndex | Sequence[date]) -> pd.Series:
    """The first day of the dekad (1, 11 or 21 of the month) of each date."""
    d = pd.to_datetime(pd.Series(dates)).astype("datetime64[ns]").dt.normalize()
    first = np.where(d.dt.day <= 10, 1, np.where(d.dt.day <= 20, 11, 21))
    return d - pd.to_timedelta(d.dt.day - first, unit="D")


def dekad_end(starts: pd.Series) -> pd.Series:
    """The last day of each dekad starting on ``starts``."""
    s = pd.to_datetime(pd.Series(starts))
    month_end = s + pd.offsets.MonthEnd(0)
    return (s + pd.Timedelta(days=9)).where(s.dt.day != 21, month_end)


def dekads_between(start: date, end: date) -> pd.DatetimeIndex:
    """Every dekad start from the dekad of ``start`` to the dekad of ``end``."""
    if end < start:
        raise InputError(f"the analysed period ends ({end}) before it starts ({start})")
    days = pd.date_range(start, end, freq="D")
    return pd.DatetimeIndex(dekad_start(days).drop_duplicates())


def optical_observations(rows: pd.DataFrame, model: BareSoilModel) -> pd.DataFrame:
    """One row per parcel and optical acquisition date with its indices and P(bare).

    Several optical rows of one parcel and date (two sensors) are averaged. Observations
    missing one of the indices get no probability and are left out.
    """
    missing = [
        c for c in ("parcel_id", "signal", "date", "mean", "count", "pixels") if c not in rows
    ]
    if missing:
        raise InputError(f"MDB rows lack column(s) {', '.join(missing)}")
    optical = rows[rows["signal"].isin(FEATURES)]
    if optical.empty:
        return pd.DataFrame(columns=list(OBSERVATION_COLUMNS))
    # a row whose count or pixels the MDB does not know (null or 0: an imported MDB of means)
    # counts as fully valid: the tool that computed it kept it as an observation
    count = optical["count"].astype(float)
    pixels = optical["pixels"].astype(float)
    known = (count > 0) & (pixels > 0)
    frame = optical.assign(
        date=pd.to_datetime(optical["date"]).astype("datetime64[ns]"),
        valid=(count / pixels.where(known, 1.0)).where(known, 1.0),
    )
    wide = frame.pivot_table(
        index=["parcel_id", "date"], columns="signal", values="mean", aggfunc="mean"
    )
    valid = (
        frame[frame["signal"] == "NDVI"].groupby(["parcel_id", "date"])["valid"].mean()
        if (frame["signal"] == "NDVI").any()
        else pd.Series(dtype=float)
    )
    for name in FEATURES:
        if name not in wide:
            wide[name] = np.nan
    wide = wide[list(FEATURES)].astype(float)
    wide["valid_fraction"] = valid.reindex(wide.index).fillna(0.0).clip(0, 1)
    wide = wide.reset_index()
    wide["p_bare"] = model.probability(
        wide["NDVI"].to_numpy(float), wide["NDTILL"].to_numpy(float), wide["BSI"].to_numpy(float)
    )
    wide = wide[np.isfinite(wide["p_bare"])]
    wide["dekad"] = dekad_start(wide["date"]).to_numpy()
    out: pd.DataFrame = wide[list(OBSERVATION_COLUMNS)].reset_index(drop=True)
    return out


def radar_by_dekad(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean AMP_VH and COHE_VV of each parcel and dekad (either may be NaN)."""
    radar = rows[rows["signal"].isin(RADAR_SIGNALS)]
    if radar.empty:
        return pd.DataFrame(columns=["parcel_id", "dekad", *RADAR_SIGNALS])
    radar = radar.assign(dekad=dekad_start(radar["date"]).to_numpy())
    wide = radar.pivot_table(
        index=["parcel_id", "dekad"], columns="signal", values="mean", aggfunc="mean"
    )
    for name in RADAR_SIGNALS:
        if name not in wide:
            wide[name] = np.nan
    return wide[list(RADAR_SIGNALS)].reset_index()


def period_status(
    observations: pd.DataFrame,
    parcel_ids: Iterable[int],
    start: date,
    end: date,
    *,
    radar: pd.DataFrame | None = None,
    radar_model: RadarEvidence | None = None,
) -> pd.DataFrame:
    """Status and confidence of every parcel of ``parcel_ids`` in every dekad of [start, end]."""
    dekads = dekads_between(start, end)
    ids = np.unique(np.asarray(list(parcel_ids), dtype=np.int64))
    grid = pd.DataFrame(
        {
            "parcel_id": np.repeat(ids, len(dekads)),
            "dekad": np.tile(dekads.to_numpy(), len(ids)),
        }
    )
    obs = observations[
        (observations["date"] >= pd.Timestamp(start)) & (observations["date"] <= pd.Timestamp(end))
    ]
    weight = obs["valid_fraction"].clip(lower=0.05)
    weighted = obs.assign(
        _w=weight,
        **{f"_w{name}": obs[name] * weight for name in ("p_bare", *FEATURES)},
    )
    sums = weighted.groupby(["parcel_id", "dekad"]).agg(
        _w=("_w", "sum"),
        observations=("p_bare", "size"),
        valid_fraction=("valid_fraction", "mean"),
        **{f"_w{name}": (f"_w{name}", "sum") for name in ("p_bare", *FEATURES)},
    )
    for name in ("p_bare", *FEATURES):
        sums[name] = sums[f"_w{name}"] / sums["_w"]
    table = grid.merge(
        sums[["observations", "valid_fraction", "p_bare", *FEATURES]].reset_index(),
        on=["parcel_id", "dekad"],
        how="left",
    )
    table["observations"] = table["observations"].fillna(0).astype(np.int32)
    table["radar_p_bare"] = np.nan
    if radar is not None and radar_model is not None and not radar.empty:
        joined = table[["parcel_id", "dekad"]].merge(radar, on=["parcel_id", "dekad"], how="left")
        q = radar_model.probability(
            joined["AMP_VH"].to_numpy(float), joined["COHE_VV"].to_numpy(float)
        )
        table["radar_p_bare"] = q
        table["p_bare"] = radar_model.combine(table["p_bare"].to_numpy(float), q)
    p = table["p_bare"].to_numpy(float)
    observed = table["observations"].to_numpy() > 0
    table["status"] = np.where(~observed, NO_DATA, np.where(p >= 0.5, BARE, VEG))
    table["confidence"] = np.where(observed, np.maximum(p, 1 - p), 0.0)
    table["dekad_end"] = dekad_end(table["dekad"]).to_numpy()
    return table[list(STATUS_COLUMNS)]


def bare_periods(status: pd.DataFrame, *, max_gap: int = 1) -> pd.DataFrame:
    """Runs of ``BARE`` dekads per parcel; up to ``max_gap`` ``NO_DATA`` dekads between two
    ``BARE`` ones are bridged (counted in ``no_data_dekads`` and in the period's days)."""
    if max_gap < 0:
        raise InputError(f"max_gap must be >= 0, not {max_gap}")
    if status.empty:
        return pd.DataFrame(columns=list(PERIOD_COLUMNS))
    s = status.sort_values(["parcel_id", "dekad"]).reset_index(drop=True)
    pid = s["parcel_id"].to_numpy()
    code = s["status"].to_numpy()
    observed = code != NO_DATA
    # The last and the next observed status of each row, within its parcel.
    seen = pd.Series(code).where(observed)
    last_seen = seen.groupby(pid).ffill()
    next_seen = seen.groupby(pid).bfill()
    segment = pd.Series(observed).groupby(pid).cumsum().to_numpy()
    gap_size = pd.Series(~observed).groupby([pid, segment]).transform("sum").to_numpy()
    bridged = (
        ~observed
        & (last_seen.to_numpy() == BARE)
        & (next_seen.to_numpy() == BARE)
        & (gap_size <= max_gap)
    )
    inside = (code == BARE) | bridged
    new_run = inside & ~np.r_[False, inside[:-1] & (pid[1:] == pid[:-1])]
    run = np.cumsum(new_run)
    runs = s[inside].assign(_run=run[inside], _bare=code[inside] == BARE, _gap=code[inside] != BARE)
    if runs.empty:
        return pd.DataFrame(columns=list(PERIOD_COLUMNS))
    bare_rows = runs[runs["_bare"]]
    out = runs.groupby("_run").agg(
        parcel_id=("parcel_id", "first"),
        start=("dekad", "min"),
        end=("dekad_end", "max"),
        bare_dekads=("_bare", "sum"),
        no_data_dekads=("_gap", "sum"),
    )
    out["confidence"] = bare_rows.groupby("_run")["confidence"].mean()
    out["first_observed"] = bare_rows.groupby("_run")["dekad"].min()
    out["last_observed"] = bare_rows.groupby("_run")["dekad_end"].max()
    out["days"] = (out["end"] - out["start"]).dt.days + 1
    table: pd.DataFrame = out.reset_index(drop=True)[list(PERIOD_COLUMNS)]
    return table


@dataclass(frozen=True)
class CoverWindow:
    """A yearly minimum soil-cover window, month-day to month-day (may cross the new year)."""

    start: tuple[int, int]
    end: tuple[int, int]

    @classmethod
    def parse(cls, start: str, end: str) -> CoverWindow:
        """From ``MM-DD`` strings (``11-01``, ``02-15``)."""

        def md(text: str, label: str) -> tuple[int, int]:
            try:
                month, day = (int(x) for x in text.split("-"))
                date(2000, month, day)  # a leap year: 02-29 is allowed
            except ValueError as exc:
                raise InputError(f"{label} must be a month-day MM-DD, not {text!r}") from exc
            return month, day

        return cls(md(start, "cover_start"), md(end, "cover_end"))

    def instances(self, first: date, last: date) -> list[tuple[date, date]]:
        """The windows (start, end) that overlap [first, last]."""
        out = []
        for year in range(first.year - 1, last.year + 1):
            start = _month_day(year, self.start)
            end_year = year + 1 if self.end < self.start else year
            end = _month_day(end_year, self.end)
            if start <= last and end >= first:
                out.append((start, end))
        return out


def _month_day(year: int, md: tuple[int, int]) -> date:
    month, day = md
    if (month, day) == (2, 29):
        return date(year, 3, 1) - timedelta(days=1)
    return date(year, month, day)


def cover_compliance(
    status: pd.DataFrame, window: CoverWindow, first: date, last: date
) -> pd.DataFrame:
    """Per parcel and window overlapping [first, last]: is any dekad of the window ``BARE``?

    ``NOT_COMPLIANT`` when one is (confidence: the highest of those dekads), ``COMPLIANT``
    when dekads were observed and none is bare (confidence: the lowest), ``NO_DATA`` when no
    dekad of the window was observed. ``analysed_start``/``analysed_end`` say which part of
    the window the analysed dates cover: a window reaching beyond the season is judged on its
    covered part only.
    """
    frames = []
    for w_start, w_end in window.instances(first, last):
        a_start, a_end = max(w_start, first), min(w_end, last)
        inside = status[
            (status["dekad_end"] >= pd.Timestamp(a_start))
            & (status["dekad"] <= pd.Timestamp(a_end))
        ]
        bare = inside["status"] == BARE
        observed = inside["status"] != NO_DATA
        grouped = inside.assign(
            _bare=bare,
            _observed=observed,
            _bare_conf=inside["confidence"].where(bare),
            _veg_conf=inside["confidence"].where(observed & ~bare),
            _first_bare=inside["dekad"].where(bare),
        ).groupby("parcel_id")
        table = grouped.agg(
            dekads=("dekad", "size"),
            observed_dekads=("_observed", "sum"),
            bare_dekads=("_bare", "sum"),
            first_bare=("_first_bare", "min"),
            bare_confidence=("_bare_conf", "max"),
            veg_confidence=("_veg_conf", "min"),
        ).reset_index()
        table["compliance"] = np.where(
            table["bare_dekads"] > 0,
            NOT_COMPLIANT,
            np.where(table["observed_dekads"] > 0, COMPLIANT, NO_DATA),
        )
        table["confidence"] = np.where(
            table["bare_dekads"] > 0,
            table["bare_confidence"],
            np.where(table["observed_dekads"] > 0, table["veg_confidence"], 0.0),
        )
        table = table.assign(
            window_start=pd.Timestamp(w_start),
            window_end=pd.Timestamp(w_end),
            analysed_start=pd.Timestamp(a_start),
            analysed_end=pd.Timestamp(a_end),
        )
        frames.append(table[list(COMPLIANCE_COLUMNS)])
    if not frames:
        return pd.DataFrame(columns=list(COMPLIANCE_COLUMNS))
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class BareSoilResult:
    """Everything one bare-soil run computed for a set of parcels."""

    observations: pd.DataFrame
    status: pd.DataFrame
    periods: pd.DataFrame
    compliance: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Dekads per status and non-compliant parcels."""
        counts = {
            f"dekads_{name.lower()}": int((self.status["status"] == name).sum())
            for name in (BARE, VEG, NO_DATA)
        }
        counts["bare_periods"] = len(self.periods)
        counts["parcels_not_compliant"] = int(
            self.compliance.loc[
                self.compliance["compliance"] == NOT_COMPLIANT, "parcel_id"
            ].nunique()
        )
        return counts


def detect_bare_soil(
    rows: pd.DataFrame,
    parcel_ids: Iterable[int],
    start: date,
    end: date,
    *,
    model: BareSoilModel,
    window: CoverWindow | None = None,
    radar_model: RadarEvidence | None = None,
    max_gap: int = 1,
) -> BareSoilResult:
    """The whole pipeline on MDB rows of some parcels (see the module docstring)."""
    ids = list(parcel_ids)
    observations = optical_observations(rows, model)
    radar = radar_by_dekad(rows) if radar_model is not None else None
    status = period_status(observations, ids, start, end, radar=radar, radar_model=radar_model)
    periods = bare_periods(status, max_gap=max_gap)
    compliance = (
        cover_compliance(status, window, start, end)
        if window is not None
        else pd.DataFrame(columns=list(COMPLIANCE_COLUMNS))
    )
    notes = []
    without = set(ids) - set(observations["parcel_id"].unique().tolist())
    if without:
        notes.append(f"{len(without)} parcels have no optical observation: every dekad NO_DATA")
    return BareSoilResult(observations, status, periods, compliance, notes)
