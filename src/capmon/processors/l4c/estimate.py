"""capmon's harvest date estimate (``HARVEST_WEEK_EST``), next to Sen4CAP's ``H_WEEK``.

Sen4CAP's ``H_WEEK`` is the harvest *confirmation* week: the first week where M1-M5 all hold.
M5 needs a coherent pair, and a pair is coherent only when both its acquisitions follow the
harvest (a pair spanning the harvest is decorrelated by it), so ``H_WEEK`` lags the harvest
by one or two weeks. ``H_WEEK`` stays as Sen4CAP defines it; this module dates the harvest that
Sen4CAP confirmed from the same evidence, and only for parcels with a confirmed ``H_WEEK``:

* **Coherence step** (source ``COHERENCE``): the coherence lines (all orbits, sorted by their
  second date) from ``LOOKBACK_WEEKS`` weeks before the confirmation week to its end are split
  where they rise from a low level (standing crop, or a pair spanning the harvest) to a high one
  (bare soil or stubble): the split with the least squared error around the two means among
  the rising ones (a single change point, no threshold). A coherent pair's two acquisitions
  both follow the harvest and a decorrelated one's first acquisition precedes it, so the
  harvest lies between ``a``, the latest first acquisition of a low pair before ``b``, and
  ``b``, the earliest first acquisition of a high pair: ``HARVEST_EST_FROM = a``,
  ``HARVEST_EST_TO = b``, the estimated date the middle of the two, its week
  ``HARVEST_WEEK_EST``.
* **Confidence**: ``HIGH`` when the coherence step (high mean - low mean) exceeds Sen4CAP's
  ``COHTHRHIGH`` (its "high coherence change") and the bracket is at most 7 days, else ``LOW``.
* **Fallback** (source ``AMPLITUDE``, confidence ``LOW``): without a rising coherence step in
  the window, the first week of the window where M3 (the VV/VH ratio jump) holds; the range is
  that week.

Parcels without a confirmed harvest (``H_WEEK`` = ``NO-HARVEST``, NR, NA1) get no estimate.
``LOOKBACK_WEEKS`` (4) covers the usual lag (one pair interval, plus two weeks when soil work
keeps the coherence low after the harvest) while keeping the pre-harvest low level short.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from capmon.processors.l4c.config import TsaParameters
from capmon.processors.l4c.harvest import TRUE, HarvestResult
from capmon.processors.l4c.weekly import ParcelWeeks

LOOKBACK_WEEKS = 4
"""Weeks before the confirmation week searched for the coherence step."""
MAX_HIGH_CONFIDENCE_DAYS = 7
"""A bracket wider than a week cannot name the week: confidence LOW."""
RISE_TOLERANCE = 1e-9
"""A "rise" below this is rounding error of a flat series."""
COHERENCE, AMPLITUDE = "COHERENCE", "AMPLITUDE"
HIGH, LOW = "HIGH", "LOW"


@dataclass(frozen=True)
class HarvestEstimate:
    """The estimated harvest of a parcel: the date, the bracket it lies in and the evidence."""

    day: date
    earliest: date
    latest: date
    source: str
    confidence: str
    coherence_step: float | None

    @property
    def week_start(self) -> date:
        return self.day - timedelta(days=self.day.weekday())

    @property
    def iso_week(self) -> int:
        return self.day.isocalendar()[1]


def _day(value: np.datetime64) -> date:
    return date.fromisoformat(str(value.astype("datetime64[D]")))


def coherence_step(values: npt.NDArray[np.float64]) -> tuple[int, float] | None:
    """The best rising split of ``values``: (size of the low part, high mean - low mean).

    Among the splits into a non-empty low part then a non-empty high part whose mean is higher,
    the one with the least squared error around the two means; None without a rising split.
    """
    n = len(values)
    if n < 2:
        return None
    total = np.cumsum(values)
    squares = np.cumsum(values**2)
    low = np.arange(1, n)
    low_sum, low_squares = total[low - 1], squares[low - 1]
    high_sum, high_squares = total[-1] - low_sum, squares[-1] - low_squares
    low_mean, high_mean = low_sum / low, high_sum / (n - low)
    cost = (low_squares - low_sum * low_mean) + (high_squares - high_sum * high_mean)
    rising = high_mean - low_mean > RISE_TOLERANCE
    if not rising.any():
        return None
    best = int(np.argmin(np.where(rising, cost, np.inf)))
    return best + 1, float(high_mean[best] - low_mean[best])


def estimate_harvest(
    series: ParcelWeeks, harvest: HarvestResult, parameters: TsaParameters
) -> HarvestEstimate | None:
    """The harvest date behind Sen4CAP's confirmed harvest week (see the module docstring).

    None when the harvest is not confirmed (``harvest.harvest`` is None).
    """
    if harvest.harvest is None:
        return None
    confirmed = series.weeks[harvest.harvest]
    window_start = confirmed - np.timedelta64(7 * LOOKBACK_WEEKS, "D")
    window_end = confirmed + np.timedelta64(6, "D")
    dates, firsts = series.coherence_dates, series.coherence_first
    inside = (dates >= window_start) & (dates <= window_end) & ~np.isnat(firsts)
    inside &= ~np.isnan(series.coherence_values)
    step = coherence_step(series.coherence_values[inside])
    if step is not None:
        split, rise = step
        low_firsts, high_firsts = firsts[inside][:split], firsts[inside][split:]
        latest = high_firsts.min()
        before = low_firsts[low_firsts < latest]
        if len(before):
            earliest = before.max()
        else:  # no decorrelated pair starts before: one pair interval back
            first_high = int(np.argmin(high_firsts))
            earliest = latest - (dates[inside][split:][first_high] - latest)
        width = int((latest - earliest).astype(int))
        day = _day(earliest) + timedelta(days=width // 2)
        confidence = (
            HIGH
            if rise > parameters.number("COHTHRHIGH") and width <= MAX_HIGH_CONFIDENCE_DAYS
            else LOW
        )
        return HarvestEstimate(day, _day(earliest), _day(latest), COHERENCE, confidence, rise)
    weeks = series.weeks
    in_window = (weeks >= window_start) & (weeks <= confirmed) & (harvest.m3 == TRUE)
    hits = np.flatnonzero(in_window)
    week = weeks[int(hits[0])] if len(hits) else confirmed
    monday = _day(week)
    return HarvestEstimate(
        monday + timedelta(days=3), monday, monday + timedelta(days=6), AMPLITUDE, LOW, None
    )
