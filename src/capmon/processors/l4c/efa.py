"""Practice markers M6-M10, the catch-crop window and the compliance index C_INDEX.

Sen4CAP's ``TsaEfaAnalysisBase``, ``TsaCatchCropAnalysisHandler``, ``TsaFallowAnalysisHandler``
and ``TsaNfcAnalysisHandler`` (sen4cap-system.md 7.4), over the practice window
[P_START, P_END] (weekA = P_START's week):

* **M6 NDVI presence**: some week with NDVI >= ``EFANDVITHR``.
* **M8 NDVI no loss**: no week where the NDVI drops from above to below the EFA threshold
  (computed as M2's with ``EFANDVIDW``/``EFANDVIUP``).
* **M7 NDVI growth**: (M6 or M8) and every NDVI from weekA + 21 days on >= ``EFANDVIMIN``.
* **M9 amplitude no loss**: no week whose OLS fit of the VV-VH ratio lines over weeks +-2
  (>= 3 distinct weeks; x in days) has slope >= ``EFAAMPTHR`` and p < 0.05.
* **M10 coherence no loss**: no week from weekA + 14 days with ``cohChange >= EFACOHCHANGE``
  or ``cohMax >= EFACOHVALUE``.

A threshold set to -10000 (None here) leaves its marker NA; a window without NDVI leaves M6-M8
NA. Compliance: see :func:`catch_crop_index`, :func:`nfc_index`, :func:`fallow_index`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
from scipy import stats

from capmon.processors.l4c.config import TsaParameters
from capmon.processors.l4c.harvest import (
    FALSE,
    NA,
    NR,
    TRUE,
    HarvestResult,
    ndvi_drops,
    optical_threshold,
)
from capmon.processors.l4c.weekly import ParcelWeeks, week_start

STRONG, MODERATE, WEAK, POOR = "STRONG", "MODERATE", "WEAK", "POOR"
C_INDEX_VALUES = (STRONG, MODERATE, WEAK, POOR, "NR")
P_VALUE = 0.05


@dataclass(frozen=True)
class EfaMarkers:
    """M6-M10 of a practice window, as marker codes (TRUE, FALSE, NA, NA1, NR)."""

    m6: int
    m7: int
    m8: int
    m9: int
    m10: int

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return self.m6, self.m7, self.m8, self.m9, self.m10


def all_markers(code: int) -> EfaMarkers:
    return EfaMarkers(code, code, code, code, code)


def _code(flag: bool) -> int:
    return TRUE if flag else FALSE


def amplitude_loss(
    dates: npt.NDArray[np.datetime64],
    ratios: npt.NDArray[np.float64],
    centre: np.datetime64,
    slope_threshold: float,
) -> bool | None:
    """Whether the ratio lines of weeks ``centre`` +-2 rise significantly (None: < 3 weeks)."""
    low = centre - np.timedelta64(14, "D")
    high = centre + np.timedelta64(20, "D")
    inside = (dates >= low) & (dates <= high)
    x_dates = dates[inside]
    y = ratios[inside]
    weeks = {(int(d.astype("int64")) + 3) // 7 for d in x_dates}  # Monday-based week ids
    if len(weeks) < 3 or len(y) < 3:
        return None
    x = x_dates.astype("int64").astype(np.float64)
    if np.ptp(x) == 0:
        return None
    fit = stats.linregress(x, y)
    return bool(fit.slope >= slope_threshold and fit.pvalue < P_VALUE)


def efa_markers(
    series: ParcelWeeks,
    harvest: HarvestResult,
    p_start: date,
    p_end: date,
    parameters: TsaParameters,
) -> EfaMarkers:
    """M6-M10 of the window [P_START, P_END] (see the module docstring)."""
    p = parameters
    weeks = series.weeks
    week_a = np.datetime64(week_start(p_start), "D")
    inside = (weeks >= week_a) & (weeks <= np.datetime64(p_end, "D"))
    if not inside.any():
        return all_markers(NA)
    ndvi = series.ndvi
    valid = inside & ~np.isnan(ndvi)
    values = ndvi[valid]

    m6 = NA
    if p.efandvithr is not None and len(values):
        m6 = _code(bool((values >= p.efandvithr).any()))

    m8 = NA
    if p.efandvidw is not None and p.efandviup is not None and len(values):
        drops = ndvi_drops(ndvi, inside, p.efandviup)
        thr = optical_threshold(values, drops, p.efandvidw, p.efandviup, p.ndvistep or 0.0)
        previous = harvest.ndvi_prev if len(harvest.ndvi_prev) == len(ndvi) else ndvi
        with np.errstate(invalid="ignore"):
            loss = valid & (ndvi < thr) & (previous >= thr) & (ndvi < previous)
        m8 = _code(not bool(loss.any()))

    m7 = NA
    late = valid & (weeks >= week_a + np.timedelta64(21, "D"))
    if len(values) and late.any():
        growing = m6 == TRUE or m8 == TRUE
        minimum = p.efandvimin if p.efandvimin is not None else 300.0
        m7 = _code(growing and bool((ndvi[late] >= minimum).all()))

    m9 = NA
    if p.efaampthr is not None and len(series.ratio_values):
        losses = [
            amplitude_loss(series.ratio_dates, series.ratio_values, w, p.efaampthr)
            for w in weeks[inside]
        ]
        evaluated = [loss for loss in losses if loss is not None]
        if evaluated:
            m9 = _code(not any(evaluated))

    m10 = NA
    if p.efacohchange is not None or p.efacohvalue is not None:
        late_coh = inside & (weeks >= week_a + np.timedelta64(14, "D"))
        if late_coh.any():
            change = p.efacohchange if p.efacohchange is not None else math.inf
            value = p.efacohvalue if p.efacohvalue is not None else math.inf
            lost = (series.coh_change[late_coh] >= change) | (series.coh_max[late_coh] >= value)
            m10 = _code(not bool(lost.any()))
    return EfaMarkers(m6, m7, m8, m9, m10)


def catch_crop_window(
    series: ParcelWeeks,
    harvest: HarvestResult,
    p_start: date,
    parameters: TsaParameters,
) -> tuple[date, date]:
    """The estimated catch-crop window when P_END is NA (sen4cap-system.md 7.4).

    The search starts at the harvest week when it precedes P_START (else P_START), not before
    CATCHPERIODSTART; the NDVI buffer is ``max(10, (max - min) * CATCHPROPORTION)`` over
    [C, C + CATCHPERIOD - 1]; the catch crop starts at the last week from C to P_START with
    ``ndviNext < min + buffer`` and M3 and M5 TRUE (C when there is none); the window lasts
    CATCHPERIOD days.
    """
    p = parameters
    period = int(p.catchperiod or 56)
    weeks = series.weeks
    search = p_start
    if harvest.harvest is not None:
        harvest_day = _day(weeks[harvest.harvest])
        if harvest_day <= p_start:
            search = harvest_day
    if p.catchperiodstart is not None and search < p.catchperiodstart:
        search = p.catchperiodstart
    first = np.datetime64(week_start(search), "D")
    span = (weeks >= first) & (weeks <= first + np.timedelta64(period - 1, "D"))
    values = series.ndvi[span & ~np.isnan(series.ndvi)]
    start = search
    if len(values) and len(harvest.ndvi_next) == len(weeks):
        proportion = p.catchproportion if p.catchproportion is not None else 1.0 / 3.0
        buffer = max(10.0, float(values.max() - values.min()) * proportion)
        low = float(values.min()) + buffer
        with np.errstate(invalid="ignore"):
            candidates = (
                (weeks >= first)
                & (weeks <= np.datetime64(p_start, "D"))
                & (harvest.ndvi_next < low)
                & (harvest.m3 == TRUE)
                & (harvest.m5 == TRUE)
            )
        hits = np.flatnonzero(candidates)
        if len(hits):
            start = _day(weeks[hits[-1]])
    return start, start + timedelta(days=period - 1)


def _day(week: np.datetime64) -> date:
    return date.fromisoformat(str(week.astype("datetime64[D]")))


def _falses(codes: tuple[int, ...]) -> int:
    return sum(1 for code in codes if code == FALSE)


def catch_crop_index(
    markers: EfaMarkers,
    harvest: HarvestResult,
    harvest_day: date | None,
    p_start: date,
    catch_under_main: bool,
) -> str:
    """C_INDEX of a catch crop: FALSE markers among M6-M10 -> 0 STRONG, 1 MODERATE, 2 WEAK,
    >= 3 POOR; with M6-M8 all NA, 0 FALSE -> MODERATE else WEAK; a harvest after the practice
    start (unless the catch crop is sown under the main crop) -> POOR; no vegetation cycle
    -> NR."""
    if not harvest.vegetation:
        return "NR"
    if harvest_day is not None and harvest_day > p_start and not catch_under_main:
        return POOR
    codes = markers.as_tuple()
    if all(code == NA for code in codes[:3]):
        return MODERATE if _falses(codes[3:]) == 0 else WEAK
    falses = _falses(codes)
    return (STRONG, MODERATE, WEAK)[falses] if falses < 3 else POOR


def nfc_index(
    markers: EfaMarkers,
    harvest_day: date | None,
    p_start: date,
    p_end: date,
    country: str,
) -> str:
    """C_INDEX of a nitrogen-fixing crop: no NDVI presence -> WEAK (ESP, ITA: POOR); no harvest
    -> MODERATE; a harvest -> STRONG (ROU: a harvest inside the window -> WEAK)."""
    if markers.m6 == FALSE:
        return POOR if country in ("ESP", "ITA") else WEAK
    if harvest_day is None:
        return MODERATE
    if country == "ROU" and p_start < harvest_day <= p_end:
        return WEAK
    return STRONG


def fallow_index(markers: EfaMarkers, harvest_day: date | None, p_start: date, p_end: date) -> str:
    """C_INDEX of fallow land: no NDVI presence -> STRONG; no harvest -> MODERATE; a harvest
    inside (P_START, P_END] -> WEAK, else MODERATE."""
    if markers.m6 == FALSE:
        return STRONG
    if harvest_day is None:
        return MODERATE
    return WEAK if p_start < harvest_day <= p_end else MODERATE


def not_relevant() -> EfaMarkers:
    """M6-M10 of a practice without a window (NA practice)."""
    return all_markers(NR)
