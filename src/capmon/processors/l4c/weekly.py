"""Weekly pre-processing of the L4C time series (Sen4CAP's ``TsaDataPreProcessor``).

sen4cap-system.md 7.2: weeks start on Monday (ISO-8601 numbers); each acquisition is floored to
its week start.

* Amplitude: only dates (and orbits) with both VV and VH; the ratio ``r = VV - VH``; per week
  its mean and max (lines whose VV exceeds -3, Sen4CAP's outlier rule on its "AMP dB" scale,
  are left out of the ratio's season mean and std used by M3 and M4);
  ``ampChange(w) = max(0, round2(mean_r(w) - mean(mean_r of the 3 previous weeks)))`` from the
  4th week with amplitude on (0 before).
* Coherence VV: per line the change from the previous line; per week the max value
  (``cohMax``) and the max change (``cohChange``, rounded to 3 decimals); the season max.
* Coherence lines (all orbits, by date) are kept with their pair's first date for capmon's
  harvest estimate (:mod:`.estimate`).
* NDVI: the weekly mean of NDVI x 1000, rounded.
* Merge: the weeks having both amplitude and coherence, with the NDVI where available.

**Amplitude convention.** Sen4CAP's thresholds (``AMPTHRMIN``, ``EFAAMPTHR``, the -3 outlier
rule) are on its "AMP dB" scale: ``10*log10`` of its stored amplitude ``sqrt(sigma0)``, i.e.
half the sigma0 dB value. capmon's MDB stores ``AMP_VV``/``AMP_VH`` on that scale and
``BCK_VV``/``BCK_VH`` in true sigma0 dB. :data:`AMPLITUDE_INPUTS` names, for each input, the
signals read and the factor that brings them to Sen4CAP's scale (1 for AMP, 0.5 for BCK), so the
default thresholds keep their meaning whichever is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

AmplitudeInput = Literal["amp", "bck"]


@dataclass(frozen=True)
class AmplitudeSignals:
    """The MDB signals of one amplitude input and their conversion to Sen4CAP's "AMP dB"."""

    vv: str
    vh: str
    to_sen4cap: float
    description: str


AMPLITUDE_INPUTS: dict[str, AmplitudeSignals] = {
    "amp": AmplitudeSignals(
        "AMP_VV", "AMP_VH", 1.0, "Sen4CAP AMP dB = 10*log10(sqrt(sigma0)) (as stored)"
    ),
    "bck": AmplitudeSignals("BCK_VV", "BCK_VH", 0.5, "true sigma0 dB, halved to Sen4CAP's scale"),
}
COHERENCE_SIGNAL = "COHE_VV"
NDVI_SIGNAL = "NDVI"
NDVI_SCALE = 1000.0
"""capmon's NDVI is unitless (-1..1); Sen4CAP's thresholds are NDVI x 1000."""
VV_OUTLIER = -3.0
"""VV lines above this ("AMP dB", i.e. -6 dB sigma0) are outliers (Sen4CAP)."""

Days = npt.NDArray[np.datetime64]
Floats = npt.NDArray[np.float64]


def week_start(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def iso_week(day: date) -> int:
    """The ISO-8601 week number of ``day``."""
    return day.isocalendar()[1]


def season_week_start(day: date) -> date:
    """Week start of a VEG_START/H_START date; a date in ISO week 1 moves to week 2 (Sen4CAP)."""
    start = week_start(day)
    return start + timedelta(days=7) if iso_week(day) == 1 else start


@dataclass(frozen=True)
class ParcelWeeks:
    """One parcel's weekly series (weeks having both amplitude and coherence)."""

    weeks: Days
    ndvi: Floats
    amp_mean: Floats
    amp_max: Floats
    amp_change: Floats
    coh_max: Floats
    coh_change: Floats
    coherence_count: int
    coherence_max: float
    last_coherence: date | None
    ratio_dates: Days
    ratio_values: Floats
    amp_statistics: Floats
    """Weekly ratio means without the VV outliers (M3/M4's mean and std)."""
    coherence_dates: Days = field(default_factory=lambda: np.array([], dtype="datetime64[D]"))
    """Coherence lines (all orbits, sorted by date): the pair's second (later) acquisition."""
    coherence_first: Days = field(default_factory=lambda: np.array([], dtype="datetime64[D]"))
    """The pair's first acquisition (the MDB's ``date_first``; else the orbit's previous line)."""
    coherence_values: Floats = field(default_factory=lambda: np.array([], dtype=np.float64))

    @property
    def size(self) -> int:
        return len(self.weeks)

    def week_dates(self) -> list[date]:
        return [pd.Timestamp(w).date() for w in self.weeks]


def empty_weeks() -> ParcelWeeks:
    """A parcel without any week of S1 data."""
    nothing = np.array([], dtype="datetime64[D]")
    none = np.array([], dtype=np.float64)
    return ParcelWeeks(nothing, none, none, none, none, none, none, 0, float("nan"), None,
                       nothing, none, none)  # fmt: skip


def _with_week(frame: pd.DataFrame) -> pd.DataFrame:
    days = pd.to_datetime(frame["date"])
    out = frame.assign(date=days)
    out["week"] = days - pd.to_timedelta(days.dt.day_of_week, unit="D")
    return out


def _parcel(key: Any) -> int:
    return int(key)


def weekly_series(
    rows: pd.DataFrame, amplitude: AmplitudeInput | str = "amp"
) -> dict[int, ParcelWeeks]:
    """The weekly series of every parcel in ``rows`` (the MDB long layout: parcel_id, signal,
    date, orbit, mean). Parcels without any week of S1 data are absent from the result."""
    source = AMPLITUDE_INPUTS[str(amplitude)]
    columns = ["parcel_id", "signal", "date", "orbit", "mean"]
    if "date_first" in rows.columns:
        columns.append("date_first")
    frame = rows.loc[rows["mean"].notna(), columns]
    frame = frame.assign(orbit=frame["orbit"].fillna(-1).astype("int64"))

    ndvi = _with_week(frame[frame["signal"] == NDVI_SIGNAL])
    ndvi_weekly = (
        (ndvi.groupby(["parcel_id", "week"])["mean"].mean() * NDVI_SCALE).round().rename("ndvi")
    )

    keys = ["parcel_id", "date", "orbit"]
    vv = frame.loc[frame["signal"] == source.vv, [*keys, "mean"]].rename(columns={"mean": "vv"})
    vh = frame.loc[frame["signal"] == source.vh, [*keys, "mean"]].rename(columns={"mean": "vh"})
    amp = (
        vv.groupby(keys, as_index=False)
        .mean()
        .merge(vh.groupby(keys, as_index=False).mean(), on=keys, how="inner")
    )
    amp["vv"] = amp["vv"] * source.to_sen4cap
    amp["vh"] = amp["vh"] * source.to_sen4cap
    amp = _with_week(amp)
    amp["ratio"] = amp["vv"] - amp["vh"]
    kept = amp[amp["vv"] <= VV_OUTLIER]
    statistics = kept.groupby(["parcel_id", "week"])["ratio"].mean()
    by_week = amp.groupby(["parcel_id", "week"])["ratio"]
    amp_weekly = by_week.agg(amp_mean="mean", amp_max="max").reset_index()
    by_parcel = amp_weekly.groupby("parcel_id")["amp_mean"]
    previous = (by_parcel.shift(1) + by_parcel.shift(2) + by_parcel.shift(3)) / 3.0
    change = (amp_weekly["amp_mean"] - previous).round(2).clip(lower=0.0)
    amp_weekly["amp_change"] = change.fillna(0.0)

    coh = _with_week(frame[frame["signal"] == COHERENCE_SIGNAL]).sort_values(
        ["parcel_id", "date", "orbit"], kind="stable"
    )
    coh["change"] = coh.groupby("parcel_id")["mean"].diff().fillna(0.0)
    previous_line = coh.groupby(["parcel_id", "orbit"])["date"].shift(1)
    if "date_first" in coh.columns:
        given = pd.to_datetime(coh["date_first"])
        coh["first"] = given.where(given.notna(), previous_line)
    else:
        coh["first"] = previous_line
    coh_weekly = (
        coh.groupby(["parcel_id", "week"])
        .agg(coh_max=("mean", "max"), coh_change=("change", "max"))
        .reset_index()
    )
    coh_weekly["coh_change"] = coh_weekly["coh_change"].round(3)
    coh_stats = coh.groupby("parcel_id")["mean"].agg(["count", "max"])
    coh_last = coh.groupby("parcel_id")["date"].max()

    merged = amp_weekly.merge(coh_weekly, on=["parcel_id", "week"], how="inner")
    merged = merged.merge(ndvi_weekly.reset_index(), on=["parcel_id", "week"], how="left")
    merged = merged.sort_values(["parcel_id", "week"], kind="stable")
    ratios = {_parcel(k): g for k, g in amp[["parcel_id", "date", "ratio"]].groupby("parcel_id")}
    weekly_statistics = {
        _parcel(k): g.to_numpy(np.float64) for k, g in statistics.groupby("parcel_id")
    }
    counts = {_parcel(k): int(v) for k, v in coh_stats["count"].items()}
    maxima = {_parcel(k): float(v) for k, v in coh_stats["max"].items()}
    lasts = {_parcel(k): pd.Timestamp(v).date() for k, v in coh_last.items()}
    coh_lines = {_parcel(k): g for k, g in coh[["parcel_id", "date", "first", "mean"]].groupby(
        "parcel_id")}  # fmt: skip
    out: dict[int, ParcelWeeks] = {}
    for key, group in merged.groupby("parcel_id", sort=True):
        pid = _parcel(key)
        lines = ratios[pid].sort_values("date")
        out[pid] = ParcelWeeks(
            weeks=group["week"].to_numpy().astype("datetime64[D]"),
            ndvi=group["ndvi"].to_numpy(np.float64),
            amp_mean=group["amp_mean"].to_numpy(np.float64),
            amp_max=group["amp_max"].to_numpy(np.float64),
            amp_change=group["amp_change"].to_numpy(np.float64),
            coh_max=group["coh_max"].to_numpy(np.float64),
            coh_change=group["coh_change"].to_numpy(np.float64),
            coherence_count=counts[pid],
            coherence_max=maxima[pid],
            last_coherence=lasts[pid],
            ratio_dates=lines["date"].to_numpy().astype("datetime64[D]"),
            ratio_values=lines["ratio"].to_numpy(np.float64),
            amp_statistics=weekly_statistics.get(pid, np.array([], dtype=np.float64)),
            coherence_dates=coh_lines[pid]["date"].to_numpy().astype("datetime64[D]"),
            coherence_first=coh_lines[pid]["first"].to_numpy().astype("datetime64[D]"),
            coherence_values=coh_lines[pid]["mean"].to_numpy(np.float64),
        )
    return out


def ndvi_neighbours(ndvi: Floats, first: int) -> tuple[Floats, Floats]:
    """(ndviPrev, ndviNext) from index ``first`` (the VEG_START week) onward, NaN before.

    ``ndviNext(w)`` is the week's NDVI or the next valid one; ``ndviPrev(w)`` the previous valid
    NDVI strictly before ``w`` (or ``ndviNext(w)`` when there is none).
    """
    n = len(ndvi)
    prev = np.full(n, np.nan)
    nxt = np.full(n, np.nan)
    upcoming = np.nan
    for i in range(n - 1, first - 1, -1):
        if not np.isnan(ndvi[i]):
            upcoming = ndvi[i]
        nxt[i] = upcoming
    last = np.nan
    for i in range(first, n):
        prev[i] = last if not np.isnan(last) else nxt[i]
        if not np.isnan(ndvi[i]):
            last = ndvi[i]
    return prev, nxt


@dataclass(frozen=True)
class S1Gaps:
    """Sen4CAP's S1 gap counts of a parcel (``S1GAPS``, ``H_S1GAPS``, ``P_S1GAPS``,
    ``H_W_S1GAPS``; the last is None without a harvest week)."""

    season: int
    harvest: int
    practice: int
    before_harvest: int | None


def _clipped_gap(
    window: tuple[date | None, date | None], previous: date, current: date, count_all: bool
) -> int:
    start, end = window
    if start is None or end is None or current <= start or previous >= end:
        return 0
    previous = max(previous, start)
    if previous < end <= current:
        current = end
    days = (current - previous).days
    return days // 7 - (0 if count_all else 1) if days > 7 else 0


def s1_gaps(
    weeks: Sequence[date],
    year: int,
    limit: date,
    harvest: tuple[date, date],
    practice: tuple[date, date] | None,
    confirmed: date | None,
) -> S1Gaps:
    """Sen4CAP's gap counts (``UpdateGapsInformation``): between consecutive S1 weeks from
    January 1st of ``year`` to ``limit`` (the last acquisition date), each step longer than
    7 days counts ``days // 7 - 1`` missing weeks; the harvest and practice windows count the
    steps clipped to their week starts; ``H_W_S1GAPS`` counts ``days // 7`` over the 5 weeks
    before the harvest week."""
    season = harvest_gaps = practice_gaps = before = 0
    h_range: tuple[date | None, date | None] = (week_start(harvest[0]), week_start(harvest[1]))
    p_range: tuple[date | None, date | None] = (None, None)
    if practice is not None:
        p_range = (week_start(practice[0]), week_start(practice[1]))
    c_range: tuple[date | None, date | None] = (None, None)
    if confirmed is not None:
        c_range = (confirmed - timedelta(days=35), confirmed)
    if weeks:
        previous = date(year, 1, 1)
        for k in range(len(weeks) + 1):
            if k > 0:
                previous = weeks[k - 1]
            current = weeks[k] if k < len(weeks) else limit
            days = (current - previous).days
            if days > 7:
                season += days // 7 - 1
            harvest_gaps += _clipped_gap(h_range, previous, current, False)
            practice_gaps += _clipped_gap(p_range, previous, current, False)
            before += _clipped_gap(c_range, previous, current, True)
    return S1Gaps(season, harvest_gaps, practice_gaps, before if confirmed is not None else None)
