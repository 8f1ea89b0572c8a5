"""Practice markers M6-M10, the catch-crop window and the compliance index C_INDEX.

Sen4CAP's ``TsaEfaAnalysisBase.cpp`` (markers), ``TsaCatchCropAnalysisHandler.cpp``,
``TsaFallowAnalysisHandler.cpp`` and ``TsaNfcAnalysisHandler.cpp`` (sen4cap-system.md 7.4), over
the practice window [P_START, P_END] (weekA = P_START's week). Per window week, as
``ExtractEfaMarkers``:

* presence: NDVI >= ``EFANDVITHR``; drop: NDVI below the previous valid NDVI of the window and
  below ``EFANDVIUP`` (NA for the first value); the optical threshold is updated week by week
  from the values and drops seen so far (``EFANDVIDW``/``EFANDVIUP``/``NDVISTEP``, as M2's);
  growth: (presence or no drop) and NDVI >= ``EFANDVIMIN``; no loss: not (drop and NDVI <=
  threshold).
* M9 amplitude: for every window week but the first and the last, an OLS fit of the VV-VH
  ratio lines (dates in [P_START, P_END + 7 days]) of the weeks +-2 (>= 3 distinct weeks);
  x is the acquisition date in days (``ttDate / SEC_IN_DAY``), so the slope is dB per day;
  loss when slope >= ``EFAAMPTHR`` and p < 0.05.
* M10 coherence: loss when ``cohChange >= EFACOHCHANGE`` or ``cohMax >= EFACOHVALUE``
  (``COHTHRHIGH``/``COHTHRABS`` when those are -10000).

Catch crops aggregate them into M6-M10 (:func:`efa_markers`); fallow land and NFC only report
the markers their country rules use, the others are NR (:func:`fallow_compliance`,
:func:`nfc_compliance`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
from scipy import stats

from capmon.processors.l4c.config import TsaParameters
from capmon.processors.l4c.harvest import FALSE, NA, NR, TRUE, HarvestResult
from capmon.processors.l4c.weekly import ParcelWeeks, week_start

STRONG, MODERATE, WEAK, POOR = "STRONG", "MODERATE", "WEAK", "POOR"
C_INDEX_VALUES = (STRONG, MODERATE, WEAK, POOR, "NR")
P_VALUE = 0.05
LTU_STABLE_WEEKS = 9
"""LTU fallow: weeks of coherence without loss in a row that show a vegetation cover."""
PDZ_EARLY_DAYS = 62
"""LTU green fallow (PDZ): a harvest this many days or more before P_END's week is early."""
CZE_MOWING_BUFFER_DAYS = 30
"""CZE fallow: the mowing/mulching markers are read this many days around FLMARK dates."""


@dataclass(frozen=True)
class Compliance:
    """A practice's markers and C_INDEX; ``harvest_relevant`` False: Sen4CAP resets the harvest
    week to NR (LTU black fallow), written NO-HARVEST."""

    markers: EfaMarkers
    c_index: str
    harvest_relevant: bool = True


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


def _week_id(days: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    """Monday-based week numbers (consecutive across years, unlike ISO numbers)."""
    return (days.astype("datetime64[D]").astype(np.int64) + 3) // 7


def amplitude_no_loss(
    series: ParcelWeeks,
    window: npt.NDArray[np.bool_],
    p_start: date,
    p_end: date,
    slope_threshold: float,
) -> int:
    """M9 over the window weeks ``window`` (see the module docstring): NA when no week could be
    fitted, FALSE when a week's ratio lines rise significantly, else TRUE."""
    dates = series.ratio_dates.astype("datetime64[D]")
    lines = (dates >= np.datetime64(p_start, "D")) & (
        dates <= np.datetime64(p_end + timedelta(days=7), "D")
    )
    line_dates = dates[lines]
    values = series.ratio_values[lines]
    line_weeks = _week_id(line_dates)
    if len(np.unique(line_weeks)) < 3:
        return NA
    days = line_dates.astype(np.int64).astype(np.float64)
    window_weeks = _week_id(series.weeks[window])
    evaluated = False
    for week in window_weeks[1:-1]:  # Sen4CAP skips the first and the last week
        near = np.abs(line_weeks - week) <= 2
        if len(np.unique(line_weeks[near])) < 3:
            continue
        fit = stats.linregress(days[near], values[near])
        if math.isnan(fit.slope):
            continue
        if fit.slope < slope_threshold:
            evaluated = True  # no loss whatever the p-value (NaN for a flat series)
        elif not math.isnan(fit.pvalue):
            evaluated = True
            if fit.pvalue < P_VALUE:
                return FALSE
    return TRUE if evaluated else NA


@dataclass(frozen=True)
class NdviWeeks:
    """Per window week NDVI markers of ``ExtractEfaMarkers`` (codes TRUE, FALSE, NA)."""

    presence: npt.NDArray[np.int8]
    growth: npt.NDArray[np.int8]
    no_loss: npt.NDArray[np.int8]


def ndvi_weeks(ndvi: npt.NDArray[np.float64], parameters: TsaParameters) -> NdviWeeks:
    """Presence, growth and no-loss of each week of a window's NDVI (NaN: no value)."""
    p = parameters
    up = p.efandviup if p.efandviup is not None else p.number("NDVIUP")
    down = p.efandvidw if p.efandvidw is not None else p.number("NDVIDW")
    minimum = p.efandvimin if p.efandvimin is not None else 300.0
    step = p.ndvistep or 0.0
    n = len(ndvi)
    presence = np.full(n, NA, dtype=np.int8)
    growth = np.full(n, NA, dtype=np.int8)
    no_loss = np.full(n, NA, dtype=np.int8)
    previous = math.nan
    all_below_down, drop_below_down, drop_below_up = True, False, False
    lowest_drop = math.inf
    for k, value in enumerate(ndvi):
        if math.isnan(value):
            continue
        if p.efandvithr is not None:
            presence[k] = _code(value >= p.efandvithr)
        drop = NA if math.isnan(previous) else _code(value < previous and value < up)
        previous = value
        if value >= down:
            all_below_down = False
        if drop == TRUE:
            drop_below_down = drop_below_down or value < down
            drop_below_up = drop_below_up or value < up
            lowest_drop = min(lowest_drop, value)
        if presence[k] != NA or drop != NA:
            growth[k] = _code(presence[k] == TRUE or drop == FALSE)
        if growth[k] == TRUE:
            growth[k] = _code(value >= minimum)
        if all_below_down or drop_below_down:
            threshold = down
        elif drop_below_up:
            threshold = step * math.ceil(lowest_drop / step) if step > 0 else lowest_drop
        else:
            threshold = up
        if drop != NA:
            no_loss[k] = _code(not (drop == TRUE and value <= threshold))
    return NdviWeeks(presence, growth, no_loss)


def _window(series: ParcelWeeks, start: date, end: date) -> npt.NDArray[np.bool_]:
    week_a = np.datetime64(week_start(start), "D")
    return (series.weeks >= week_a) & (series.weeks <= np.datetime64(end, "D"))


def _all_true(codes: npt.NDArray[np.int8]) -> int:
    """TRUE when every known code is TRUE, FALSE when one is FALSE, NA when none is known."""
    known = codes[codes != NA]
    if not len(known):
        return NA
    return _code(bool((known == TRUE).all()))


def coherence_no_loss(
    series: ParcelWeeks, mask: npt.NDArray[np.bool_], parameters: TsaParameters
) -> npt.NDArray[np.bool_]:
    """Per week of ``mask``: no coherence loss (M10's weekly value)."""
    p = parameters
    change = p.efacohchange if p.efacohchange is not None else p.number("COHTHRHIGH")
    value = p.efacohvalue if p.efacohvalue is not None else p.number("COHTHRABS")
    lost = (series.coh_change[mask] >= change) | (series.coh_max[mask] >= value)
    return np.asarray(~lost, dtype=bool)


def ndvi_presence(series: ParcelWeeks, start: date, end: date, parameters: TsaParameters) -> int:
    """M6 of fallow land and NFC: TRUE/FALSE, NA when the window has no NDVI value."""
    values = series.ndvi[_window(series, start, end)]
    values = values[~np.isnan(values)]
    if not len(values) or parameters.efandvithr is None:
        return NA
    return _code(bool((values >= parameters.efandvithr).any()))


def efa_markers(
    series: ParcelWeeks,
    harvest: HarvestResult,
    p_start: date,
    p_end: date,
    parameters: TsaParameters,
) -> EfaMarkers:
    """M6-M10 of a catch crop over [P_START, P_END] (``CCEfaMarkersExtraction``).

    M6: some week present (NA when FALSE and no NDVI from weekA + 21 days); M7: every known
    growth from weekA + 21 days; M8: every known no-loss; NA for M7/M8 when M6 is NA or
    nothing is known; M9 :func:`amplitude_no_loss`; M10: no coherence loss from weekA + 14
    days (TRUE without such a week).
    """
    p = parameters
    weeks = series.weeks
    inside = _window(series, p_start, p_end)
    if not inside.any():
        return all_markers(NA)
    week_a = np.datetime64(week_start(p_start), "D")
    ndvi = series.ndvi[inside]
    markers = ndvi_weeks(ndvi, p)
    late = weeks[inside] >= week_a + np.timedelta64(21, "D")
    m6 = NA
    if p.efandvithr is not None:
        m6 = _code(bool((markers.presence == TRUE).any()))
        if m6 == FALSE and bool(np.isnan(ndvi[late]).all()):
            m6 = NA
    m7 = NA if m6 == NA else _all_true(markers.growth[late])
    m8 = NA if m6 == NA else _all_true(markers.no_loss)
    m9 = NA
    if p.efaampthr is not None:
        m9 = amplitude_no_loss(series, inside, p_start, p_end, p.efaampthr)
    late_coh = inside & (weeks >= week_a + np.timedelta64(14, "D"))
    m10 = _code(bool(coherence_no_loss(series, late_coh, p).all()))
    return EfaMarkers(m6, m7, m8, m9, m10)


def harvest_weeks(harvest: HarvestResult) -> npt.NDArray[np.bool_]:
    """Sen4CAP's per-week ``harvest`` flag: M1-M5 all TRUE from the harvest week on."""
    flags = np.ones(len(harvest.m1), dtype=bool)
    for marker in harvest.markers():
        flags &= marker == TRUE
    if harvest.harvest is None:
        return np.zeros(len(flags), dtype=bool)
    flags[: harvest.harvest] = False
    return flags


def last_separated_start(starts: list[date], period: int) -> int | None:
    """Index of the catch-crop start Sen4CAP keeps among candidate weeks: the last one followed
    by a gap of at least ``period`` days to the next candidate, else the last candidate."""
    chosen: int | None = None
    for k in range(1, len(starts)):
        if (starts[k] - starts[k - 1]).days >= period:
            chosen = k - 1
    if chosen is None and starts:
        chosen = len(starts) - 1
    return chosen


def catch_crop_window(
    series: ParcelWeeks,
    harvest: HarvestResult,
    p_start: date,
    parameters: TsaParameters,
) -> tuple[date, date]:
    """The catch-crop window when P_END is NA (``TsaCatchCropAnalysisHandler``).

    C = the last harvest-flagged week up to P_START's week (else the harvest week; P_START
    without a harvest), not before CATCHPERIODSTART. When the data cover C + CATCHPERIOD - 1
    days: the NDVI min/max over [C, P_START + CATCHPERIOD - 1] (min clamped to
    [EFANDVIDW, EFANDVIUP]; no NDVI: both EFANDVIDW) give ``efaChange = max(10, (max - min) *
    CATCHPROPORTION)``; D = the harvest week (else the first M2 week, else C); candidate starts
    are the weeks in [max(D, CATCHPERIODSTART's week), P_START's week] with ndviNext < min +
    efaChange and M3 and M5 TRUE; :func:`last_separated_start` picks one (D when there is none).
    Without that coverage the start is P_START. The window lasts CATCHPERIOD days.
    """
    p = parameters
    period = int(p.catchperiod or 56)
    weeks = series.weeks
    week_a = np.datetime64(week_start(p_start), "D")
    last_day = p_start + timedelta(days=period - 1)
    harvest_day = _day(weeks[harvest.harvest]) if harvest.harvest is not None else None
    start = p_start
    if harvest_day is not None:
        flagged = np.flatnonzero(harvest_weeks(harvest) & (weeks <= week_a))
        start = _day(weeks[flagged[-1]]) if len(flagged) else harvest_day
    date_c = start
    earliest = p.catchperiodstart
    if earliest is not None and date_c < earliest:
        date_c = earliest
    if len(weeks) and (_day(weeks[-1]) - date_c).days >= period - 1:
        up = p.efandviup if p.efandviup is not None else p.number("NDVIUP")
        down = p.efandvidw if p.efandvidw is not None else p.number("NDVIDW")
        span = (weeks >= np.datetime64(date_c, "D")) & (weeks <= np.datetime64(last_day, "D"))
        values = series.ndvi[span & ~np.isnan(series.ndvi)]
        if len(values):
            high, low = float(values.max()), float(values.min())
            low = max(low, down)
            if low > p.number("NDVIUP"):  # Sen4CAP compares with NDVIUP, sets EFANDVIUP
                low = up
        else:
            high = low = down
        proportion = p.catchproportion if p.catchproportion is not None else 1.0 / 3.0
        change = max(10.0, (high - low) * proportion)
        if harvest_day is not None:
            date_d = harvest_day
        else:
            optical = np.flatnonzero(harvest.m2 == TRUE)
            date_d = _day(weeks[optical[0]]) if len(optical) else date_c
        candidates = (weeks <= week_a) & (weeks >= np.datetime64(date_d, "D"))
        if earliest is not None:
            candidates &= weeks >= np.datetime64(week_start(earliest), "D")
        if len(harvest.ndvi_next) == len(weeks):
            with np.errstate(invalid="ignore"):
                candidates &= ~np.isnan(harvest.ndvi_next) & (harvest.ndvi_next < low + change)
        else:
            candidates[:] = False
        candidates &= (harvest.m3 == TRUE) & (harvest.m5 == TRUE)
        starts = [_day(w) for w in weeks[candidates]]
        chosen = last_separated_start(starts, period)
        start = starts[chosen] if chosen is not None else date_d
    else:
        start = p_start
    if earliest is not None and start < earliest:
        start = earliest
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
    """C_INDEX of a catch crop from its markers: FALSE markers among M6-M10 -> 0 STRONG,
    1 MODERATE, 2 WEAK, >= 3 POOR; with M6-M8 all NA, 0 FALSE -> MODERATE else WEAK; a harvest
    after the practice start's week (unless the catch crop is sown under the main crop) -> POOR;
    no vegetation cycle -> NR."""
    if not harvest.vegetation:
        return "NR"
    if harvest_day is not None and harvest_day > week_start(p_start) and not catch_under_main:
        return POOR
    codes = markers.as_tuple()
    if all(code == NA for code in codes[:3]):
        return MODERATE if _falses(codes[3:]) == 0 else WEAK
    falses = _falses(codes)
    return (STRONG, MODERATE, WEAK)[falses] if falses < 3 else POOR


def ndvi_drop_before(
    series: ParcelWeeks, veg_start: date, p_start: date, parameters: TsaParameters
) -> bool:
    """Whether the NDVI drops (below the previous value and NDVIUP) in a week from VEG_START's
    week to P_START's week (Sen4CAP's ``ndviDrop`` of the vegetation weeks)."""
    first = np.datetime64(week_start(veg_start), "D")
    last = np.datetime64(week_start(p_start), "D")
    up = parameters.number("NDVIUP")
    previous = math.nan
    for week, value in zip(series.weeks, series.ndvi, strict=True):
        if week < first or math.isnan(value):
            continue
        if week > last:
            break
        if not math.isnan(previous) and value < previous and value < up:
            return True
        previous = value
    return False


def catch_crop_compliance(
    series: ParcelWeeks,
    harvest: HarvestResult,
    harvest_day: date | None,
    veg_start: date,
    p_start: date,
    p_end: date,
    parameters: TsaParameters,
    catch_under_main: bool,
) -> Compliance:
    """Markers and C_INDEX of a catch crop (``TsaCatchCropAnalysisHandler::PerformAnalysis``).

    No vegetation cycle -> NR; without a harvest (and not under the main crop) no NDVI drop from
    VEG_START to P_START -> POOR; a harvest after P_START's week (not under the main crop) ->
    POOR; in those cases M6-M10 are NR. Otherwise :func:`efa_markers` and
    :func:`catch_crop_index`.
    """
    if not harvest.vegetation:
        return Compliance(not_relevant(), "NR")
    if not catch_under_main:
        if harvest_day is None and not ndvi_drop_before(series, veg_start, p_start, parameters):
            return Compliance(not_relevant(), POOR)
        if harvest_day is not None and harvest_day > week_start(p_start):
            return Compliance(not_relevant(), POOR)
    markers = efa_markers(series, harvest, p_start, p_end, parameters)
    return Compliance(
        markers, catch_crop_index(markers, harvest, harvest_day, p_start, catch_under_main)
    )


def _inside(day: date | None, start: date, end: date, include_end: bool = True) -> bool:
    """Whether a harvest week start lies in (start's week, end's week] (or ``<`` the end)."""
    if day is None:
        return False
    first, last = week_start(start), week_start(end)
    return first < day and (day <= last if include_end else day < last)


def nfc_compliance(
    series: ParcelWeeks,
    harvest_day: date | None,
    veg_start: date,
    p_start: date,
    p_end: date,
    country: str,
    parameters: TsaParameters,
) -> Compliance:
    """C_INDEX of a nitrogen-fixing crop (``TsaNfcAnalysisHandler``); only M6 is reported.

    Default: no NDVI presence in the window -> WEAK (ESP, ITA*: POOR); no harvest -> MODERATE;
    a harvest -> STRONG (ROU: a harvest strictly inside the window's weeks -> WEAK); M6 NA
    without NDVI (ROU: then NR). CZE: no presence from VEG_START's week to P_END -> POOR; a
    harvest in (P_START's week, P_END's week] -> WEAK; else presence in the window -> STRONG,
    none -> MODERATE.
    """
    nr = not_relevant()
    if country == "CZE":
        season = ndvi_presence(series, week_start(veg_start), p_end, parameters)
        if season != TRUE:
            return Compliance(dataclasses.replace(nr, m6=season), POOR)
        if _inside(harvest_day, p_start, p_end):
            return Compliance(dataclasses.replace(nr, m6=season), WEAK)
        m6 = ndvi_presence(series, p_start, p_end, parameters)
        return Compliance(dataclasses.replace(nr, m6=m6), STRONG if m6 == TRUE else MODERATE)
    m6 = ndvi_presence(series, p_start, p_end, parameters)
    if m6 != TRUE:
        index = POOR if country == "ESP" or country.startswith("ITA") else WEAK
    elif harvest_day is None:
        index = MODERATE
    elif country == "ROU" and _inside(harvest_day, p_start, p_end, include_end=False):
        index = WEAK
    else:
        index = STRONG
    if country == "ROU" and m6 == NA:
        index = "NR"
    return Compliance(dataclasses.replace(nr, m6=m6), index)


def fallow_compliance(
    series: ParcelWeeks,
    harvest_day: date | None,
    p_start: date,
    p_end: date,
    p_type: str,
    country: str,
    parameters: TsaParameters,
) -> Compliance:
    """C_INDEX of fallow land (``TsaFallowAnalysisHandler``); M7-M10 NR unless a rule uses them.

    * LTU: a cover is 9 weeks in a row without coherence loss (M10). PDJ (black fallow): no
      cover -> STRONG and the harvest is not relevant (NO-HARVEST), a cover -> WEAK; M6 NR.
      PDZ (green fallow): no cover or no NDVI presence -> WEAK; no harvest -> MODERATE; a
      harvest week 62 days or more before P_END's week -> MODERATE, up to a week after it ->
      STRONG, later -> MODERATE. Other types: NR.
    * CZE: no NDVI presence -> POOR; a harvest in (P_START's week, P_END's week] -> WEAK; else
      a mowing/mulching (an NDVI loss, M8 FALSE) in [FLMARKSTARTDATE's week, FLMARKSTENDDATE's
      week + 7 days] (markers read 30 days around) -> STRONG, none -> MODERATE.
    * Others (ESP, ITA*, default): no NDVI presence -> STRONG; no harvest -> MODERATE; a
      harvest in (P_START's week, P_END's week] -> WEAK (ITA*: up to FLMARKSTARTDATE's week),
      else MODERATE. M6 NA without NDVI.
    """
    nr = not_relevant()
    m6 = ndvi_presence(series, p_start, p_end, parameters)
    if country == "LTU":
        inside = _window(series, p_start, p_end)
        no_loss = coherence_no_loss(series, inside, parameters)
        run = longest = 0
        for flag in no_loss:
            run = run + 1 if flag else 0
            longest = max(longest, run)
        cover = len(no_loss) >= LTU_STABLE_WEEKS and longest >= LTU_STABLE_WEEKS
        m10 = _code(cover)
        if p_type == "PDJ":
            if not cover:
                return Compliance(dataclasses.replace(nr, m10=m10), STRONG, False)
            return Compliance(dataclasses.replace(nr, m10=m10), WEAK)
        if p_type != "PDZ":
            return Compliance(dataclasses.replace(nr, m6=m6, m10=m10), "NR")
        if not cover or m6 == FALSE:
            index = WEAK
        elif harvest_day is None:
            index = MODERATE
        else:
            end_week = week_start(p_end)
            early = harvest_day <= end_week - timedelta(days=PDZ_EARLY_DAYS)
            on_time = harvest_day <= end_week + timedelta(days=7)
            index = STRONG if on_time and not early else MODERATE
        return Compliance(dataclasses.replace(nr, m6=m6, m10=m10), index)
    if country == "CZE":
        if m6 == FALSE:
            return Compliance(dataclasses.replace(nr, m6=m6), POOR)
        if _inside(harvest_day, p_start, p_end):
            return Compliance(dataclasses.replace(nr, m6=m6), WEAK)
        m8 = _code(not mowing_detected(series, parameters, p_start, p_end))
        return Compliance(
            dataclasses.replace(nr, m6=m6, m8=m8), STRONG if m8 == FALSE else MODERATE
        )
    end = p_end
    if country.startswith("ITA") and parameters.flmarkstartdate is not None:
        end = parameters.flmarkstartdate
    if m6 == FALSE:
        index = STRONG
    elif harvest_day is None:
        index = MODERATE
    else:
        index = WEAK if _inside(harvest_day, p_start, end) else MODERATE
    return Compliance(dataclasses.replace(nr, m6=m6), index)


def mowing_detected(
    series: ParcelWeeks, parameters: TsaParameters, p_start: date, p_end: date
) -> bool:
    """CZE fallow: an NDVI loss (no-loss FALSE) in [FLMARKSTARTDATE's week, FLMARKSTENDDATE's
    week + 7 days], the markers read from 30 days before to 30 days after (P_START/P_END when
    the FLMARK dates are not set); a week without a value takes the next week's."""
    first = parameters.flmarkstartdate or p_start
    last = parameters.flmarkstenddate or p_end
    buffer = timedelta(days=CZE_MOWING_BUFFER_DAYS)
    inside = _window(series, first - buffer, last + buffer)
    no_loss = ndvi_weeks(series.ndvi[inside], parameters).no_loss.copy()
    for k in range(len(no_loss) - 2, -1, -1):
        if no_loss[k] == NA:
            no_loss[k] = no_loss[k + 1]
    weeks = series.weeks[inside]
    low = np.datetime64(week_start(first), "D")
    high = np.datetime64(week_start(last) + timedelta(days=7), "D")
    period = (weeks >= low) & (weeks <= high)
    return bool((no_loss[period] == FALSE).any())


def not_relevant() -> EfaMarkers:
    """M6-M10 of a practice without a window (NA practice)."""
    return all_markers(NR)
