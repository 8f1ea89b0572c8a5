"""Sen4CAP's country rules, catch-crop window and EFA markers on hand-made weekly series.

Each test names the Sen4CAP source the rule comes from (TimeSeriesAnalysis/src/).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from capmon.processors.l4c.config import TsaParameters
from capmon.processors.l4c.efa import (
    amplitude_no_loss,
    catch_crop_compliance,
    catch_crop_window,
    efa_markers,
    fallow_compliance,
    last_separated_start,
    nfc_compliance,
)
from capmon.processors.l4c.harvest import FALSE, NA, NR, TRUE, HarvestResult
from capmon.processors.l4c.weekly import ParcelWeeks

MONDAY = date(2024, 4, 1)
P = TsaParameters()
START, END = MONDAY + timedelta(weeks=4), MONDAY + timedelta(weeks=16)  # P_START, P_END


def weeks_of(
    ndvi: list[float],
    coh: list[float] | None = None,
    ratio: list[float] | None = None,
) -> ParcelWeeks:
    """Weekly series from MONDAY; one ratio line per week (Wednesday) unless given."""
    n = len(ndvi)
    weeks = np.array([np.datetime64(MONDAY + timedelta(weeks=k), "D") for k in range(n)])
    coh_max = np.array(coh if coh is not None else [0.3] * n, dtype=float)
    ratios = np.array(ratio if ratio is not None else [3.0] * n, dtype=float)
    return ParcelWeeks(
        weeks=weeks,
        ndvi=np.array(ndvi, dtype=float),
        amp_mean=ratios,
        amp_max=ratios + 0.05,
        amp_change=np.zeros(n),
        coh_max=coh_max,
        coh_change=np.zeros(n),
        coherence_count=2 * n,
        coherence_max=float(coh_max.max()),
        last_coherence=MONDAY + timedelta(weeks=n - 1, days=3),
        ratio_dates=np.array(
            [np.datetime64(MONDAY + timedelta(weeks=k, days=2), "D") for k in range(n)]
        ),
        ratio_values=ratios,
        amp_statistics=ratios,
    )


def harvest_result(
    n: int,
    harvest: int | None = None,
    m2: list[int] | None = None,
    m3: list[int] | None = None,
    m5: list[int] | None = None,
    ndvi_next: list[float] | None = None,
    vegetation: bool = True,
) -> HarvestResult:
    """Hand-set weekly harvest markers (all TRUE unless given)."""

    def codes(values: list[int] | None) -> np.ndarray:
        return np.array(values if values is not None else [TRUE] * n, dtype=np.int8)

    following = np.array(ndvi_next if ndvi_next is not None else [200.0] * n, dtype=float)
    return HarvestResult(codes(None), codes(m2), codes(m3), codes(None), codes(m5), harvest,
                         harvest, vegetation, following.copy(), following)  # fmt: skip


def day(k: int) -> date:
    return MONDAY + timedelta(weeks=k)


# --- fallow: TsaFallowAnalysisHandler.cpp ----------------------------------------------------

GREEN = [700.0] * 20
BARE = [200.0] * 20


@pytest.mark.parametrize("country", ["BEL", "ESP", "XXX"])
def test_fallow_default_rules_report_only_m6(country: str) -> None:
    absent = fallow_compliance(weeks_of(BARE), None, START, END, "", country, P)
    assert absent.c_index == "STRONG"
    assert absent.markers.as_tuple() == (FALSE, NR, NR, NR, NR)
    present = weeks_of(GREEN)
    assert fallow_compliance(present, None, START, END, "", country, P).c_index == "MODERATE"
    assert fallow_compliance(present, day(8), START, END, "", country, P).c_index == "WEAK"
    assert fallow_compliance(present, day(17), START, END, "", country, P).c_index == "MODERATE"
    assert fallow_compliance(present, day(4), START, END, "", country, P).c_index == "MODERATE"
    no_ndvi = fallow_compliance(weeks_of([np.nan] * 20), None, START, END, "", country, P)
    assert no_ndvi.markers.m6 == NA


def test_fallow_ita_harvest_window_ends_at_flmarkstartdate() -> None:
    ita = TsaParameters(flmarkstartdate=day(6) + timedelta(days=2))
    present = weeks_of(GREEN)
    assert fallow_compliance(present, day(6), START, END, "", "ITA", ita).c_index == "WEAK"
    assert fallow_compliance(present, day(8), START, END, "", "ITA", ita).c_index == "MODERATE"
    assert fallow_compliance(present, day(8), START, END, "", "ITA_PU", ita).c_index == "MODERATE"
    assert fallow_compliance(present, day(8), START, END, "", "BEL", ita).c_index == "WEAK"


def test_fallow_cze_needs_mowing_between_the_flmark_dates() -> None:
    cze = TsaParameters(flmarkstartdate=day(8), flmarkstenddate=day(11))
    assert fallow_compliance(weeks_of(BARE), None, START, END, "", "CZE", cze).c_index == "POOR"
    green = weeks_of(GREEN)
    assert fallow_compliance(green, day(9), START, END, "", "CZE", cze).c_index == "WEAK"
    unmown = fallow_compliance(green, None, START, END, "", "CZE", cze)
    assert (unmown.c_index, unmown.markers.m8) == ("MODERATE", TRUE)
    mown = GREEN.copy()
    mown[10] = 250.0  # mulched in week 10, inside [FLMARKSTARTDATE, FLMARKSTENDDATE]
    result = fallow_compliance(weeks_of(mown), None, START, END, "", "CZE", cze)
    assert (result.c_index, result.markers.m8) == ("STRONG", FALSE)
    late = GREEN.copy()
    late[17] = 250.0  # mown after the period: not a mowing of the period
    assert fallow_compliance(weeks_of(late), None, START, END, "", "CZE", cze).c_index == "MODERATE"


def test_fallow_ltu_black_and_green_fallow() -> None:
    stable = weeks_of(GREEN, coh=[0.3] * 20)  # 13 window weeks without coherence loss
    bare = weeks_of(BARE, coh=[0.8] * 20)  # coherence high every week: no cover
    black = fallow_compliance(bare, day(8), START, END, "PDJ", "LTU", P)
    assert (black.c_index, black.harvest_relevant) == ("STRONG", False)
    assert black.markers.as_tuple() == (NR, NR, NR, NR, FALSE)
    covered = fallow_compliance(stable, None, START, END, "PDJ", "LTU", P)
    assert (covered.c_index, covered.markers.m10, covered.harvest_relevant) == ("WEAK", TRUE, True)
    assert fallow_compliance(bare, None, START, END, "PDZ", "LTU", P).c_index == "WEAK"
    assert fallow_compliance(stable, None, START, END, "PDZ", "LTU", P).c_index == "MODERATE"
    assert fallow_compliance(stable, day(15), START, END, "PDZ", "LTU", P).c_index == "STRONG"
    assert fallow_compliance(stable, day(17), START, END, "PDZ", "LTU", P).c_index == "STRONG"
    assert fallow_compliance(stable, day(7), START, END, "PDZ", "LTU", P).c_index == "MODERATE"
    broken = [0.3] * 20
    broken[10] = 0.8  # a loss splits the window into runs of 6 and 5 weeks
    split = weeks_of(GREEN, coh=broken)
    assert fallow_compliance(split, None, START, END, "PDJ", "LTU", P).c_index == "STRONG"
    assert fallow_compliance(stable, None, START, END, "OTHER", "LTU", P).c_index == "NR"


# --- NFC: TsaNfcAnalysisHandler.cpp ----------------------------------------------------------


def test_nfc_default_esp_ita_rou() -> None:
    bare, green = weeks_of(BARE), weeks_of(GREEN)
    assert nfc_compliance(bare, None, MONDAY, START, END, "BEL", P).c_index == "WEAK"
    assert nfc_compliance(bare, None, MONDAY, START, END, "ESP", P).c_index == "POOR"
    assert nfc_compliance(bare, None, MONDAY, START, END, "ITA_PU", P).c_index == "POOR"
    result = nfc_compliance(green, None, MONDAY, START, END, "BEL", P)
    assert (result.c_index, result.markers.as_tuple()) == ("MODERATE", (TRUE, NR, NR, NR, NR))
    assert nfc_compliance(green, day(8), MONDAY, START, END, "BEL", P).c_index == "STRONG"
    assert nfc_compliance(green, day(8), MONDAY, START, END, "ROU", P).c_index == "WEAK"
    # ROU: strictly before P_END's week
    assert nfc_compliance(green, day(16), MONDAY, START, END, "ROU", P).c_index == "STRONG"
    empty = weeks_of([np.nan] * 20)
    assert nfc_compliance(empty, None, MONDAY, START, END, "ROU", P).c_index == "NR"
    assert nfc_compliance(empty, None, MONDAY, START, END, "BEL", P).markers.m6 == NA


def test_nfc_cze_uses_the_vegetation_season() -> None:
    early = [700.0] * 4 + [200.0] * 16  # green before P_START only
    assert nfc_compliance(weeks_of(BARE), None, MONDAY, START, END, "CZE", P).c_index == "POOR"
    assert nfc_compliance(weeks_of(GREEN), day(8), MONDAY, START, END, "CZE", P).c_index == "WEAK"
    assert nfc_compliance(weeks_of(GREEN), None, MONDAY, START, END, "CZE", P).c_index == "STRONG"
    before = nfc_compliance(weeks_of(early), None, MONDAY, START, END, "CZE", P)
    assert (before.c_index, before.markers.m6) == ("MODERATE", FALSE)
    # default countries look at the window only
    assert nfc_compliance(weeks_of(early), None, MONDAY, START, END, "BEL", P).c_index == "WEAK"


# --- catch-crop window: TsaCatchCropAnalysisHandler.cpp --------------------------------------


def test_last_separated_start() -> None:
    starts = [day(2), day(3), day(12), day(13)]
    assert last_separated_start(starts, 56) == 1  # the start before the >= 8-week gap
    assert last_separated_start([day(2), day(3), day(4)], 56) == 2  # no gap: the last
    assert last_separated_start([day(2), day(10), day(20)], 56) == 1  # the last such gap
    assert last_separated_start([], 56) is None


def test_catch_crop_window_picks_the_start_before_the_gap() -> None:
    n = 30
    series = weeks_of([200.0] * n)
    m3 = [FALSE] * n
    for k in (5, 6, 15):
        m3[k] = TRUE
    harvest = harvest_result(n, harvest=3, m3=m3)
    start, end = catch_crop_window(series, harvest, day(16), P)
    assert start == day(6)  # candidates 5, 6, 15: 6 -> 15 is 63 days >= CATCHPERIOD
    assert (end - start).days == 55
    m3[15] = FALSE
    m3[12] = TRUE  # 6 -> 12 is 42 days: the last candidate wins
    assert catch_crop_window(series, harvest_result(n, 3, m3=m3), day(16), P)[0] == day(12)


def test_catch_crop_window_needs_bare_ndvi_and_data() -> None:
    n = 30
    series = weeks_of([200.0] * 5 + [700.0] * 25)
    harvest = harvest_result(n, harvest=3, ndvi_next=[200.0] * 5 + [700.0] * 25)
    # candidates need ndviNext < min + max(10, (max - min) / 3): weeks 3 and 4 only
    assert catch_crop_window(series, harvest, day(16), P)[0] == day(4)
    # no candidate: D, the harvest week
    none = harvest_result(n, harvest=3, m5=[FALSE] * n)
    assert catch_crop_window(series, none, day(16), P)[0] == day(3)
    # the data do not cover CATCHPERIOD days from C: P_START
    short = weeks_of([200.0] * 8)
    assert catch_crop_window(short, harvest_result(8, harvest=3), day(6), P)[0] == day(6)
    # CATCHPERIODSTART is the earliest start
    limited = TsaParameters(catchperiodstart=day(10) + timedelta(days=2))
    assert catch_crop_window(series, harvest, day(16), limited)[0] == day(10) + timedelta(days=2)


def test_catch_crop_window_without_harvest_starts_after_the_optical_loss() -> None:
    n = 30
    series = weeks_of([200.0] * n)
    m2 = [FALSE] * 7 + [TRUE] * (n - 7)
    m3 = [TRUE] * n
    harvest = harvest_result(n, harvest=None, m2=m2, m3=m3)
    # D = the first M2 week (7); candidates 7..P_START's week (16), no 56-day gap: the last
    assert catch_crop_window(series, harvest, day(16), P)[0] == day(16)
    m3 = [FALSE] * n
    m3[2] = m3[9] = TRUE
    assert catch_crop_window(series, harvest_result(n, None, m2=m2, m3=m3), day(16),
                             P)[0] == day(9)  # fmt: skip


# --- catch-crop compliance and markers: TsaCatchCropAnalysisHandler / TsaEfaAnalysisBase -----


def test_catch_crop_without_harvest_or_drop_is_poor_with_nr_markers() -> None:
    flat = weeks_of([700.0] * 20)
    harvest = harvest_result(20, harvest=None)
    result = catch_crop_compliance(flat, harvest, None, MONDAY, START, END, P, False)
    assert (result.c_index, result.markers.as_tuple()) == ("POOR", (NR,) * 5)
    under_main = catch_crop_compliance(flat, harvest, None, MONDAY, START, END, P, True)
    assert under_main.c_index == "STRONG"
    dropped = weeks_of([700.0, 800.0, 300.0] + [700.0] * 17)  # a drop under NDVIUP
    assert catch_crop_compliance(dropped, harvest, None, MONDAY, START, END, P,
                                 False).c_index == "STRONG"  # fmt: skip
    late = catch_crop_compliance(flat, harvest_result(20, 6), day(6), MONDAY, START, END, P,
                                 False)  # fmt: skip
    assert (late.c_index, late.markers.m6) == ("POOR", NR)
    no_cycle = harvest_result(20, None, vegetation=False)
    assert catch_crop_compliance(flat, no_cycle, None, MONDAY, START, END, P,
                                 True).c_index == "NR"  # fmt: skip


def test_m6_na_without_late_ndvi_and_m8_progressive_threshold() -> None:
    early_only = [200.0] * 6 + [np.nan] * 14  # low NDVI in the first weeks only
    markers = efa_markers(weeks_of(early_only), harvest_result(20), START, END, P)
    assert (markers.m6, markers.m7, markers.m8) == (NA, NA, NA)
    # a drop to 320 (< EFANDVIUP 400): the threshold becomes 320, the drop is a loss
    dip = [700.0] * 10 + [320.0] + [700.0] * 9
    markers = efa_markers(weeks_of(dip), harvest_result(20), START, END, P)
    assert (markers.m6, markers.m8) == (TRUE, FALSE)
    # a week under EFANDVITHR (325) that dropped has no growth: M7 FALSE
    assert markers.m7 == FALSE
    smooth = efa_markers(weeks_of([700.0] * 20), harvest_result(20), START, END, P)
    assert (smooth.m6, smooth.m7, smooth.m8) == (TRUE, TRUE, TRUE)


def test_m9_slope_is_per_day_on_window_lines() -> None:
    n = 20
    inside = (np.arange(n) >= 4) & (np.arange(n) <= 16)
    # 0.05 dB per week = 0.007 dB per day: under EFAAMPTHR 0.01 per day
    slow = weeks_of(GREEN, ratio=list(3.0 + 0.05 * np.arange(n)))
    assert amplitude_no_loss(slow, inside, START, END, 0.01) == TRUE
    fast = weeks_of(GREEN, ratio=list(3.0 + 0.14 * np.arange(n)))  # 0.02 dB per day
    assert amplitude_no_loss(fast, inside, START, END, 0.01) == FALSE
    # a rise before P_START only: its lines are outside the window
    before = weeks_of(GREEN, ratio=[3.0, 3.5, 4.0, 4.5] + [4.5] * 16)
    assert amplitude_no_loss(before, inside, START, END, 0.01) == TRUE
    # fewer than 3 distinct weeks of lines in the window: NA
    two = np.zeros(n, dtype=bool)
    two[4:6] = True
    assert amplitude_no_loss(fast, two, START, START + timedelta(days=1), 0.01) == NA
