"""Harvest markers M1-M5 and the harvest week (Sen4CAP's ``TsaHarvestOnlyAnalysisHandler``).

sen4cap-system.md 7.3, per week of a parcel's :class:`ParcelWeeks`:

* **M1 NDVI presence**: TRUE from the first week in [VEG_START, H_END] with NDVI >
  ``OPTTHRVEGCYCLE`` onward. Without such a week there is no vegetation cycle: M1 FALSE,
  M2-M5 NR, harvest NR.
* **M2 NDVI loss**: threshold ``thr`` from the drops in the vegetation weeks (``NDVIDW``,
  ``NDVIUP``, ``NDVISTEP``), buffer ``round((max - thr) / OPTTHRBUFDEN)``; the optical harvest
  start is the first week >= H_START with ``ndviNext < thr + buf``, ``ndviPrev > thr`` and
  ``ndviPrev > ndviNext``; from it, M2 = (``ndviNext < thr + buf`` or ``ndviPrev < thr + buf``)
  and ``ndviPrev > OPTTHRMIN`` and ``ndviPrev + NDVIDW > ndviNext``.
* **M3 backscatter loss**: ``ampChange > max(std/AMPTHRBREAKDEN, AMPTHRMIN)`` (std of the weekly
  ratio means); forced TRUE where ``cohChange > COHTHRHIGH`` and the candidate holds at w-1, w
  or w+1.
* **M4 amplitude presence**: ``ampMax > mean - std/AMPTHRVALDEN`` (``mean`` when
  ``STDDEVINAMPTHR`` is 0); also TRUE where ``cohChange > COHTHRHIGH`` and M1, M2, M3.
* **M5 coherence increase**: ``cohChange >= COHTHRBASE`` or ``cohMax >= CohThrAbs``
  (``COHTHRABS``, or the season max - ``COHTHRBASE`` when the season max is below it).
* **Harvest week**: the first week >= H_START with M1-M5 all TRUE (``H_WEEK``); with M1, M3,
  M4, M5 only: ``H_W_S1``.

Marker values are int8 codes, as Sen4CAP's MDB3 export: TRUE 1, FALSE 0, NA -1, NA1 -2, NR -3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from capmon.processors.l4c.config import TsaParameters
from capmon.processors.l4c.weekly import (
    ParcelWeeks,
    ndvi_neighbours,
    season_week_start,
    week_start,
)

TRUE, FALSE, NA, NA1, NR = 1, 0, -1, -2, -3
MARKER_TEXT = {TRUE: "TRUE", FALSE: "FALSE", NA: "NA", NA1: "NA1", NR: "NR"}
Markers = npt.NDArray[np.int8]


@dataclass(frozen=True)
class HarvestWindow:
    """A parcel's declared vegetation and harvest dates (VEG_START, H_START, H_END)."""

    veg_start: date
    h_start: date
    h_end: date


@dataclass(frozen=True)
class HarvestResult:
    """The weekly markers M1-M5 of one parcel, its harvest week and S1-only harvest week.

    ``harvest`` and ``harvest_s1`` are indices into the parcel's weeks (None: not found);
    ``vegetation`` is False when no vegetation cycle was seen (markers NR).
    """

    m1: Markers
    m2: Markers
    m3: Markers
    m4: Markers
    m5: Markers
    harvest: int | None
    harvest_s1: int | None
    vegetation: bool
    ndvi_prev: npt.NDArray[np.float64]
    ndvi_next: npt.NDArray[np.float64]
    optical_threshold: float | None = None

    def markers(self) -> tuple[Markers, Markers, Markers, Markers, Markers]:
        return self.m1, self.m2, self.m3, self.m4, self.m5

    def reported_index(self) -> int | None:
        """The week whose markers go to the CSV: the last week (Sen4CAP)."""
        return len(self.m1) - 1 if len(self.m1) else None


def optical_threshold(
    veg_values: npt.NDArray[np.float64],
    drops: npt.NDArray[np.float64],
    lower: float,
    upper: float,
    step: float,
) -> float:
    """Sen4CAP's NDVI loss threshold from the vegetation weeks' values and their drops.

    ``lower`` (NDVIDW) when every value is below it or a drop goes below it; else the smallest
    drop rounded up to ``step`` when a drop is below ``upper`` (NDVIUP); else ``upper``.
    """
    if len(veg_values) == 0 or bool((veg_values < lower).all()) or bool((drops < lower).any()):
        return lower
    low_drops = drops[drops < upper]
    if len(low_drops):
        smallest = float(low_drops.min())
        return step * math.ceil(smallest / step) if step > 0 else smallest
    return upper


def ndvi_drops(
    ndvi: npt.NDArray[np.float64],
    mask: npt.NDArray[np.bool_],
    upper: float,
    reset: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float64]:
    """NDVI values of the weeks in ``mask`` lower than the previous valid value and ``upper``.

    Weeks in ``reset`` are not "previous values" (Sen4CAP compares vegetation weeks only).
    """
    drops: list[float] = []
    last = math.nan
    for k, (value, inside) in enumerate(zip(ndvi, mask, strict=True)):
        if math.isnan(value) or (reset is not None and reset[k]):
            continue
        if inside and not math.isnan(last) and value < last and value < upper:
            drops.append(float(value))
        last = value
    return np.array(drops, dtype=np.float64)


def _codes(condition: npt.NDArray[np.bool_]) -> Markers:
    return np.where(condition, TRUE, FALSE).astype(np.int8)


def _first(condition: npt.NDArray[np.bool_]) -> int | None:
    hits = np.flatnonzero(condition)
    return int(hits[0]) if len(hits) else None


def harvest_markers(
    series: ParcelWeeks, window: HarvestWindow, parameters: TsaParameters
) -> HarvestResult:
    """M1-M5 of every week of ``series`` and the harvest week (see the module docstring)."""
    p = parameters
    n = series.size
    weeks = series.weeks
    ndvi = series.ndvi
    veg_week = np.datetime64(season_week_start(window.veg_start), "D")
    first = int(np.searchsorted(weeks, veg_week))
    if first < n:
        veg_week = weeks[first]  # a gap at VEG_START: the first week after it (Sen4CAP)
    harvest_week = np.datetime64(season_week_start(window.h_start), "D")
    h_end = np.datetime64(week_start(window.h_end), "D")
    if n and not (weeks == h_end).any():
        h_end = weeks[-1]  # H_END without data: the last week (Sen4CAP)
    prev, nxt = ndvi_neighbours(ndvi, first)
    in_veg = (weeks >= veg_week) & (weeks <= h_end)
    valid_veg = in_veg & ~np.isnan(ndvi)
    veg_values = ndvi[valid_veg]
    presence_threshold = p.number("OPTTHRVEGCYCLE")
    present = valid_veg & (np.nan_to_num(ndvi, nan=-np.inf) > presence_threshold)
    start = _first(present)
    if start is None:
        nr = np.full(n, NR, dtype=np.int8)
        return HarvestResult(np.zeros(n, np.int8), nr, nr.copy(), nr.copy(), nr.copy(), None,
                             None, False, prev, nxt)  # fmt: skip
    index = np.arange(n)
    m1 = np.where(in_veg & (index < start), FALSE, NA).astype(np.int8)
    m1[in_veg & (index >= start)] = TRUE

    lower, upper = p.number("NDVIDW"), p.number("NDVIUP")
    drops = ndvi_drops(ndvi, in_veg & (m1 != FALSE), upper, reset=~in_veg)
    thr = optical_threshold(veg_values, drops, lower, upper, p.number("NDVISTEP"))
    vegetated = int((valid_veg & (m1 == TRUE)).sum())
    buffer = 0.0
    if vegetated > 1:
        buffer = max(0.0, float(round((float(veg_values.max()) - thr) / p.number("OPTTHRBUFDEN"))))
    limit = thr + buffer
    with np.errstate(invalid="ignore"):
        after = weeks >= harvest_week
        loss_start = _first(after & (nxt < limit) & (prev > thr) & (prev > nxt))
        optical_start = weeks[loss_start] if loss_start is not None else harvest_week
        m2_condition = np.zeros(n, dtype=bool)
        if len(drops):
            m2_condition = (
                (weeks >= optical_start)
                & ((nxt < limit) | (prev < limit))
                & (prev > p.number("OPTTHRMIN"))
                & (prev + lower > nxt)
            )
    m2 = _codes(m2_condition)

    amp = series.amp_statistics[~np.isnan(series.amp_statistics)]
    mean = float(amp.mean()) if len(amp) else math.nan
    std = float(amp.std(ddof=1)) if len(amp) > 1 else 0.0
    brk = max(std / p.number("AMPTHRBREAKDEN"), p.number("AMPTHRMIN"))
    candidate = series.amp_change > brk
    high_coherence = series.coh_change > p.number("COHTHRHIGH")
    around = np.zeros(n, dtype=bool)
    if n > 2:  # Sen4CAP looks at the inner weeks only
        around[1:-1] = candidate[:-2] | candidate[1:-1] | candidate[2:]
    m3_condition = candidate | (high_coherence & around)
    m3 = _codes(m3_condition)

    use_std = p.stddevinampthr is None or p.stddevinampthr != 0
    amp_threshold = mean - std / p.number("AMPTHRVALDEN") if use_std else mean
    m4_condition = (series.amp_max > amp_threshold) | (
        high_coherence & (m1 == TRUE) & m2_condition & m3_condition
    )
    m4 = _codes(m4_condition)

    base, absolute = p.number("COHTHRBASE"), p.number("COHTHRABS")
    season_max = series.coherence_max
    if not math.isnan(season_max) and season_max < absolute:
        absolute = season_max - base
    m5 = _codes((series.coh_change >= base) | (series.coh_max >= absolute))

    s1 = after & (m1 == TRUE) & (m3 == TRUE) & (m4 == TRUE) & (m5 == TRUE)
    return HarvestResult(
        m1, m2, m3, m4, m5, _first(s1 & (m2 == TRUE)), _first(s1), True, prev, nxt, thr
    )


def no_data_result(size: int, code: int) -> HarvestResult:
    """Markers all ``code`` (NA1 for parcels with too few S1 pixels, NR without S1 data)."""
    markers = np.full(size, code, dtype=np.int8)
    empty = np.full(size, np.nan)
    return HarvestResult(markers, markers.copy(), markers.copy(), markers.copy(), markers.copy(),
                         None, None, False, empty, empty)  # fmt: skip
