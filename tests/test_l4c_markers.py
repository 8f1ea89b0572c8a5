"""L4C rules on hand-made weekly series: config and practice files, weekly pre-processing,
M1-M5 and the harvest week, M6-M10 and C_INDEX, tillage, gaps, the amplitude convention."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capmon.errors import ColumnError, InputError
from capmon.processors.l4c.config import TsaParameters, parse_l4c_config, read_l4c_config
from capmon.processors.l4c.efa import (
    EfaMarkers,
    catch_crop_index,
    catch_crop_window,
    efa_markers,
)
from capmon.processors.l4c.estimate import (
    AMPLITUDE,
    COHERENCE,
    HIGH,
    LOW,
    coherence_step,
    estimate_harvest,
)
from capmon.processors.l4c.harvest import (
    FALSE,
    NA,
    NR,
    TRUE,
    HarvestWindow,
    harvest_markers,
    optical_threshold,
)
from capmon.processors.l4c.practices import parse_practice_csv
from capmon.processors.l4c.tillage import detect_tillage
from capmon.processors.l4c.weekly import ParcelWeeks, s1_gaps, week_start, weekly_series

MONDAY = date(2024, 4, 1)
P = TsaParameters()


def series(
    ndvi: list[float],
    amp: list[float] | None = None,
    coh: list[float] | None = None,
    coh_change: list[float] | None = None,
    amp_change: list[float] | None = None,
    first: date = MONDAY,
) -> ParcelWeeks:
    """A weekly series starting on ``first`` (a Monday); missing inputs are flat."""
    n = len(ndvi)
    weeks = np.array([np.datetime64(first + timedelta(weeks=k), "D") for k in range(n)])
    amp_mean = np.array(amp if amp is not None else [3.0] * n, dtype=float)
    coh_max = np.array(coh if coh is not None else [0.3] * n, dtype=float)
    return ParcelWeeks(
        weeks=weeks,
        ndvi=np.array(ndvi, dtype=float),
        amp_mean=amp_mean,
        amp_max=amp_mean + 0.05,
        amp_change=np.array(amp_change if amp_change is not None else [0.0] * n, dtype=float),
        coh_max=coh_max,
        coh_change=np.array(coh_change if coh_change is not None else [0.0] * n, dtype=float),
        coherence_count=2 * n,
        coherence_max=float(coh_max.max()),
        last_coherence=first + timedelta(weeks=n - 1, days=3),
        ratio_dates=weeks,
        ratio_values=amp_mean,
        amp_statistics=amp_mean,
    )


def harvested(harvest_at: int = 10, n: int = 16) -> ParcelWeeks:
    """Green crop, NDVI drop, backscatter ratio jump and coherence rise at ``harvest_at``."""
    ndvi = [400.0, 600, 750, 800, 820, 800, 780, 760, 740, 700] + [200.0] * (n - 10)
    ndvi = ndvi[:harvest_at] + [200.0] * (n - harvest_at)
    amp = [3.0] * harvest_at + [4.5] * (n - harvest_at)
    amp_change = [0.0] * harvest_at + [1.5, 1.0] + [0.0] * (n - harvest_at - 2)
    coh = [0.3] * harvest_at + [0.3] + [0.85] * (n - harvest_at - 1)
    coh_change = [0.0] * (harvest_at + 1) + [0.55] + [0.0] * (n - harvest_at - 2)
    return series(ndvi, amp, coh, coh_change, amp_change)


WINDOW = HarvestWindow(MONDAY, MONDAY + timedelta(weeks=6), MONDAY + timedelta(weeks=15))


# --- config ----------------------------------------------------------------------------------


def test_config_default_and_practice_sections() -> None:
    text = """[DEFAULT_TIME_SERIES_ANALYSIS_PARAMS]
NDVIUP=350
EFANDVIMIN="-10000"
EFAAMPTHR="-10000"
[CC_TIME_SERIES_ANALYSIS_PARAMS]
CC_NDVIUP=500
CC_CATCHPERIODSTART="${YEAR}-07-15"
[NA_TIME_SERIES_ANALYSIS_PARAMS]
NA_EFANDVITHR="-10000"
"""
    config = parse_l4c_config(text, "x.cfg", 2024)
    cc, na, fl = config.parameters("CC"), config.parameters("NA"), config.parameters("FL")
    assert cc.ndviup == 500
    assert fl.ndviup == 350
    assert cc.catchperiodstart == date(2024, 7, 15)
    assert cc.efandvimin == 300
    assert cc.efaampthr == 0.01
    assert na.efandvithr is None
    assert cc.efandvithr == 325


def test_config_wrong_type_names_key_and_line() -> None:
    with pytest.raises(InputError, match=r"x.cfg, line 3: key NDVIDW must be a number"):
        parse_l4c_config("[DEFAULT_TIME_SERIES_ANALYSIS_PARAMS]\nNDVIUP=1\nNDVIDW=abc\n", "x.cfg")
    with pytest.raises(InputError, match="line 2: key CATCHPERIODSTART must be a date"):
        parse_l4c_config("[CC_TIME_SERIES_ANALYSIS_PARAMS]\nCC_CATCHPERIODSTART=15/07\n")
    with pytest.raises(InputError, match="must start with FL_"):
        parse_l4c_config("[FL_TIME_SERIES_ANALYSIS_PARAMS]\nNDVIUP=1\n")
    with pytest.raises(InputError, match="unknown key NDVIUPP"):
        parse_l4c_config("[DEFAULT_TIME_SERIES_ANALYSIS_PARAMS]\nNDVIUPP=1\n")
    with pytest.raises(InputError, match="unknown section"):
        parse_l4c_config("[OTHER]\nA=1\n")


def test_sen4cap_config_files(shared_data: Path) -> None:
    folder = shared_data / "sen4cap_practice_samples/sen2agri-processors/AgriculturalPractices"
    default = read_l4c_config(folder / "ConfigFiles/S4C_L4C_Default_Config.cfg", 2024)
    assert default.parameters("CC") == TsaParameters(tlcohthrabs=0.75)
    assert any("TLCOHTHRABS" in note for note in default.notes)  # Sen4CAP's duplicated key
    nld = read_l4c_config(folder / "ConfigFiles/S4C_L4C_Config_NLD.cfg", 2019)
    assert nld.parameters("CC").catchmain == "CatchCrop_3"
    assert nld.parameters("CC").catchperiodstart == date(2019, 7, 15)
    ltu = read_l4c_config(folder / "ConfigFiles/S4C_L4C_Config_LTU.cfg", 2019).parameters("CC")
    assert ltu.catchperiod == 56  # -10000: the code default
    sample = folder / "ConfigFiles/S4C_L4C_Sample_Catch_Practice_File_short.csv"
    table = parse_practice_csv(sample.read_text(), str(sample))
    assert table.practice == "CC"
    assert len(table.rows) > 50
    assert table.rows["P_END"].isna().all()


# --- practice files --------------------------------------------------------------------------

HEADER = "FIELD_ID;MAIN_CROP;VEG_START;H_START;H_END;PRACTICE;P_TYPE;P_START;P_END\n"


def test_practice_csv_semicolon_and_na_dates() -> None:
    table = parse_practice_csv(
        HEADER + "A;311;2024-03-01;2024-06-20;2024-09-15;CatchCrop;CC1;2024-09-15;NA\n"
    )
    assert table.practice == "CC"
    assert table.rows.loc[0, "P_END"] is None
    assert table.rows.loc[0, "H_START"] == date(2024, 6, 20)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("A;1;2024-13-01;NA;NA;NA;NA;NA;NA", r"line 2, column VEG_START: expected a date"),
        ("A;1;NA;2024-09-01;2024-08-01;NA;NA;NA;NA", "H_START 2024-09-01 is after H_END"),
        ("A;1;NA;NA;NA;Fallow;F;2024-01-01;NA", "P_END is required for Fallow"),
        ("A;1;NA;NA;NA;Tillage;F;NA;NA", "column PRACTICE: unknown practice"),
        ("A;1;NA;NA;NA;CatchCrop;C;2024-09-01;2024-08-01", "P_START 2024-09-01 is after P_END"),
    ],
)
def test_practice_csv_bad_rows(row: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_practice_csv(HEADER + row + "\n", "p.csv")


def test_practice_csv_overlapping_rows_and_columns() -> None:
    rows = (
        "A;1;NA;NA;NA;CatchCrop;C;2024-09-01;2024-10-01\n"
        "A;1;NA;NA;NA;CatchCrop;C;2024-09-15;2024-11-01\n"
    )
    with pytest.raises(InputError, match=r"lines 2 and 3 .overlapping practice windows"):
        parse_practice_csv(HEADER + rows, "p.csv")
    with pytest.raises(ColumnError, match=r"missing column.s. P_END"):
        parse_practice_csv(HEADER.replace(";P_END", "") + "A;1;NA;NA;NA;NA;NA;NA\n", "p.csv")


# --- weekly pre-processing and amplitude convention ------------------------------------------


def _mdb_rows(vv_db: float, vh_db: float, signal_prefix: str) -> pd.DataFrame:
    days = [MONDAY + timedelta(days=3 * k) for k in range(30)]
    rows = []
    for k, day in enumerate(days):
        jump = 1.0 if k >= 15 else 0.0
        rows += [
            (1, f"{signal_prefix}_VV", day, 37, vv_db),
            (1, f"{signal_prefix}_VH", day, 37, vh_db - 2 * jump),
            (1, "COHE_VV", day, 37, 0.3 + 0.01 * k),
            (1, "NDVI", day, None, 0.5),
        ]
    return pd.DataFrame(rows, columns=["parcel_id", "signal", "date", "orbit", "mean"])


def test_weekly_series_weeks_start_monday_and_ratio() -> None:
    weekly = weekly_series(_mdb_rows(-5.0, -8.0, "AMP"), "amp")[1]
    assert all(pd.Timestamp(w).day_of_week == 0 for w in weekly.weeks)
    assert weekly.ndvi[0] == 500  # NDVI x 1000
    assert weekly.amp_mean[0] == pytest.approx(3.0)
    assert weekly.amp_change.max() > 0
    assert weekly.amp_change[:3].sum() == 0
    assert weekly.coherence_count == 30


def test_bck_input_is_halved_to_sen4cap_scale() -> None:
    """True sigma0 dB (BCK) gives the same ratio as Sen4CAP's AMP dB once halved."""
    amp = weekly_series(_mdb_rows(-5.0, -8.0, "AMP"), "amp")[1]
    bck = weekly_series(_mdb_rows(-10.0, -16.0, "BCK"), "bck")[1]
    np.testing.assert_allclose(bck.amp_mean[:2], amp.amp_mean[:2])
    assert not np.allclose(
        weekly_series(_mdb_rows(-10.0, -16.0, "BCK").replace("BCK_VV", "AMP_VV")
                      .replace("BCK_VH", "AMP_VH"), "amp")[1].amp_mean[:2],
        amp.amp_mean[:2],
    )  # fmt: skip


def test_vv_outliers_left_out_of_the_statistics() -> None:
    weekly = weekly_series(_mdb_rows(-2.0, -8.0, "AMP"), "amp")[1]  # VV > -3: outliers
    assert len(weekly.amp_mean)
    assert len(weekly.amp_statistics) == 0


# --- harvest markers -------------------------------------------------------------------------


def test_optical_threshold_rules() -> None:
    values = np.array([800.0, 400.0])
    assert optical_threshold(values, np.array([250.0]), 300, 350, 5) == 300  # drop below DW
    assert optical_threshold(values, np.array([322.0]), 300, 350, 5) == 325  # step ceil
    assert optical_threshold(values, np.array([]), 300, 350, 5) == 350  # no drop: UP
    assert optical_threshold(np.array([200.0]), np.array([]), 300, 350, 5) == 300  # all < DW


def test_harvest_week_needs_all_five_markers() -> None:
    result = harvest_markers(harvested(10), WINDOW, P)
    assert result.vegetation
    assert result.m1[0] == TRUE
    assert result.m1[1] == TRUE
    assert result.m2[10] == TRUE
    assert result.m2[5] == FALSE
    assert result.m3[10] == TRUE
    assert result.m3[5] == FALSE
    assert result.m4[10] == TRUE
    assert result.m4[2] == FALSE
    assert result.m5[10] == FALSE
    assert result.m5[11] == TRUE
    assert result.harvest == 11
    assert result.harvest_s1 == 11


def test_harvest_not_before_h_start() -> None:
    late = HarvestWindow(MONDAY, MONDAY + timedelta(weeks=13), MONDAY + timedelta(weeks=15))
    assert harvest_markers(harvested(10), late, P).harvest is None


def test_no_vegetation_cycle_is_nr() -> None:
    bare = series([200.0] * 12)
    result = harvest_markers(bare, WINDOW, P)
    assert not result.vegetation
    assert result.harvest is None
    assert (result.m1 == FALSE).all()
    assert (result.m2 == NR).all()
    assert (result.m5 == NR).all()


def test_m1_is_na_outside_the_vegetation_weeks() -> None:
    window = HarvestWindow(
        MONDAY + timedelta(weeks=2), WINDOW.h_start, MONDAY + timedelta(weeks=12)
    )
    result = harvest_markers(harvested(10), window, P)
    assert result.m1[0] == NA
    assert result.m1[14] == NA
    assert result.m1[5] == TRUE


def test_m3_forced_by_coherence_next_to_a_candidate() -> None:
    weeks = harvested(10)
    result = harvest_markers(weeks, WINDOW, P)
    assert weeks.amp_change[12] == 0
    assert result.m3[11] == TRUE


def test_m5_absolute_threshold_follows_a_low_season_max() -> None:
    weeks = series([500.0] * 6, coh=[0.3, 0.3, 0.5, 0.3, 0.3, 0.3])
    result = harvest_markers(weeks, WINDOW, P)  # season max 0.5 < 0.75: threshold 0.45
    assert list(result.m5) == [FALSE, FALSE, TRUE, FALSE, FALSE, FALSE]


# --- practice markers and compliance ---------------------------------------------------------


def catch_crop(present: bool) -> ParcelWeeks:
    """Harvest in week 10, then a catch crop (green, low coherence) or bare stubble."""
    base = harvested(10, n=26)
    ndvi = base.ndvi.copy()
    coh = base.coh_max.copy()
    if present:
        ndvi[13:] = [300, 450, 600, 700, 750, 760, 760, 760, 760, 760, 760, 760, 760]
        coh[13:] = 0.35
    return series(list(ndvi), list(base.amp_mean), list(coh), list(base.coh_change),
                  list(base.amp_change))  # fmt: skip


def test_catch_crop_present_is_strong_absent_is_poor() -> None:
    p_start, p_end = MONDAY + timedelta(weeks=15), MONDAY + timedelta(weeks=23)
    for present, expected in ((True, "STRONG"), (False, "POOR")):
        weeks = catch_crop(present)
        harvest = harvest_markers(weeks, WINDOW, P)
        markers = efa_markers(weeks, harvest, p_start, p_end, P)
        day = week_start(MONDAY + timedelta(weeks=harvest.harvest or 0))
        assert catch_crop_index(markers, harvest, day, p_start, False) == expected
    absent = efa_markers(catch_crop(False), harvest, p_start, p_end, P)
    assert absent.m6 == FALSE
    assert absent.m7 == FALSE
    assert absent.m10 == FALSE


def test_catch_crop_index_rules() -> None:
    harvest = harvest_markers(harvested(10), WINDOW, P)
    start = date(2024, 9, 15)
    one_false = EfaMarkers(TRUE, TRUE, TRUE, TRUE, FALSE)
    assert catch_crop_index(one_false, harvest, None, start, False) == "MODERATE"
    two = EfaMarkers(TRUE, FALSE, TRUE, TRUE, FALSE)
    assert catch_crop_index(two, harvest, None, start, False) == "WEAK"
    optical_na = EfaMarkers(NA, NA, NA, TRUE, FALSE)
    assert catch_crop_index(optical_na, harvest, None, start, False) == "WEAK"
    assert catch_crop_index(EfaMarkers(NA, NA, NA, TRUE, TRUE), harvest, None, start,
                            False) == "MODERATE"  # fmt: skip
    good = EfaMarkers(TRUE, TRUE, TRUE, TRUE, TRUE)
    later = start + timedelta(days=7)
    assert catch_crop_index(good, harvest, later, start, False) == "POOR"
    assert catch_crop_index(good, harvest, later, start, True) == "STRONG"  # under main crop
    bare = harvest_markers(series([200.0] * 12), WINDOW, P)
    assert catch_crop_index(good, bare, None, start, False) == "NR"


def test_efa_threshold_not_available() -> None:
    """-10000 for EFANDVITHR leaves M6 NA; for EFACOHCHANGE/VALUE M10 falls back to
    COHTHRHIGH/COHTHRABS (TsaEfaAnalysisBase), so a 0.18 coherence jump is a loss."""
    weeks = catch_crop(True)
    harvest = harvest_markers(weeks, WINDOW, P)
    no_coherence = TsaParameters(efacohchange=None, efacohvalue=None, efandvithr=None)
    p_start, p_end = MONDAY + timedelta(weeks=15), MONDAY + timedelta(weeks=23)
    markers = efa_markers(weeks, harvest, p_start, p_end, no_coherence)
    assert markers.m10 == TRUE
    assert markers.m6 == NA
    jump = weeks.coh_change.copy()
    jump[20] = 0.18
    jumped = dataclasses.replace(weeks, coh_change=jump)
    assert efa_markers(jumped, harvest, p_start, p_end, no_coherence).m10 == FALSE
    assert efa_markers(jumped, harvest, p_start, p_end, P).m10 == TRUE  # 0.18 < 0.2


def test_amplitude_loss_marks_m9_false() -> None:
    weeks = catch_crop(True)
    ratios = weeks.ratio_values.copy()
    ratios[18:] = ratios[18] + 0.2 * np.arange(len(ratios) - 18)  # a steady VH loss
    rising = series(list(weeks.ndvi), list(ratios), list(weeks.coh_max), list(weeks.coh_change))
    harvest = harvest_markers(rising, WINDOW, P)
    p_start, p_end = MONDAY + timedelta(weeks=15), MONDAY + timedelta(weeks=25)
    assert efa_markers(rising, harvest, p_start, p_end, P).m9 == FALSE
    assert efa_markers(weeks, harvest_markers(weeks, WINDOW, P), p_start, p_end, P).m9 == TRUE


def test_catch_crop_window_estimated_from_harvest() -> None:
    weeks = catch_crop(True)
    harvest = harvest_markers(weeks, WINDOW, P)
    start, end = catch_crop_window(weeks, harvest, MONDAY + timedelta(weeks=20), P)
    assert MONDAY + timedelta(weeks=10) <= start <= MONDAY + timedelta(weeks=13)
    assert (end - start).days == 55


# --- tillage and gaps ------------------------------------------------------------------------


def test_tillage_is_the_coherence_drop_after_harvest() -> None:
    weeks = harvested(10, n=20)
    coh = weeks.coh_max.copy()
    coh[15:] = 0.3  # ploughed in week 15
    tilled = series(list(weeks.ndvi), list(weeks.amp_mean), list(coh), list(weeks.coh_change),
                    list(weeks.amp_change))  # fmt: skip
    harvest = harvest_markers(tilled, WINDOW, P)
    assert detect_tillage(tilled, harvest, P).week == 15
    regrowth = series(list(weeks.ndvi[:13]) + [600.0] * 7, list(weeks.amp_mean), list(coh),
                      list(weeks.coh_change), list(weeks.amp_change))  # fmt: skip
    assert detect_tillage(regrowth, harvest_markers(regrowth, WINDOW, P), P).status == "NR"


def test_s1_gaps_as_sen4cap() -> None:
    weeks = [date(2024, 1, 1) + timedelta(weeks=k) for k in (0, 1, 2, 5, 6)]
    gaps = s1_gaps(weeks, 2024, date(2024, 2, 12), (date(2024, 1, 8), date(2024, 2, 5)),
                   None, date(2024, 2, 5))  # fmt: skip
    assert gaps.season == 2 + 0  # weeks 3 and 4 missing; Feb 12 one week after the last
    assert gaps.harvest == 2
    assert gaps.practice == 0
    assert gaps.before_harvest == 3


# capmon's harvest estimate (HARVEST_WEEK_EST) on hand-made coherence lines.


def with_lines(
    weekly: ParcelWeeks,
    harvest_day: date,
    interval: int,
    orbits: tuple[int, ...] = (0, 2),
    missing: tuple[date, date] | None = None,
    low: float = 0.3,
    high: float = 0.8,
) -> ParcelWeeks:
    """``weekly`` with coherence lines of ``interval``-day pairs on orbits starting ``orbits``
    days after MONDAY: a pair is coherent (``high``) when its first acquisition is on or after
    the harvest, decorrelated (``low``) otherwise; acquisitions in ``missing`` are absent."""
    lines: list[tuple[date, date, float]] = []
    end = MONDAY + timedelta(weeks=weekly.size)
    for offset in orbits:
        day = MONDAY + timedelta(days=offset)
        while day + timedelta(days=interval) < end:
            second = day + timedelta(days=interval)
            absent = missing is not None and any(missing[0] <= d <= missing[1]
                                                 for d in (day, second))  # fmt: skip
            if not absent:
                lines.append((second, day, high if day >= harvest_day else low))
            day = second
    lines.sort()
    dates = np.array([np.datetime64(s, "D") for s, _, _ in lines])
    values = np.array([v for _, _, v in lines], dtype=float)
    changes = np.diff(values, prepend=values[0])
    coh_max, coh_change = np.full(weekly.size, low), np.zeros(weekly.size)
    for k, monday in enumerate(weekly.weeks):  # M5's weekly inputs follow the lines
        in_week = (dates >= monday) & (dates < monday + np.timedelta64(7, "D"))
        if in_week.any():
            coh_max[k], coh_change[k] = values[in_week].max(), changes[in_week].max()
    return dataclasses.replace(
        weekly,
        coh_max=coh_max,
        coh_change=coh_change,
        coherence_dates=dates,
        coherence_first=np.array([np.datetime64(f, "D") for _, f, _ in lines]),
        coherence_values=values,
    )


HARVEST_WEEK = MONDAY + timedelta(weeks=10)


def test_coherence_step_is_the_best_rising_split() -> None:
    step = coherence_step(np.array([0.3, 0.35, 0.25, 0.8, 0.8]))
    assert step is not None
    assert step[0] == 3
    assert step[1] == pytest.approx(0.5)
    assert coherence_step(np.array([0.8, 0.8, 0.3])) is None
    assert coherence_step(np.array([0.5])) is None


def test_no_confirmed_harvest_no_estimate() -> None:
    late = HarvestWindow(MONDAY, MONDAY + timedelta(weeks=13), MONDAY + timedelta(weeks=15))
    weekly = with_lines(harvested(10), HARVEST_WEEK + timedelta(days=2), 6)
    result = harvest_markers(weekly, late, P)
    assert result.harvest is None
    assert estimate_harvest(weekly, result, P) is None


@pytest.mark.parametrize("weekday", range(7))
def test_estimate_brackets_the_harvest_between_pair_dates(weekday: int) -> None:
    """Two orbits of 6-day pairs: the harvest lies between the first acquisitions of the last
    decorrelated and the first coherent pair, a bracket of at most 4 days in its week."""
    day = HARVEST_WEEK + timedelta(days=weekday)
    weekly = with_lines(harvested(10), day, 6)
    result = harvest_markers(weekly, WINDOW, P)
    # Sen4CAP's confirmation: one week late, two when the first coherent pair ends next week
    assert result.harvest == (11 if weekday < 5 else 12)
    estimate = estimate_harvest(weekly, result, P)
    assert estimate is not None
    assert estimate.earliest < day <= estimate.latest
    assert (estimate.latest - estimate.earliest).days <= 4
    assert estimate.week_start == HARVEST_WEEK
    assert estimate.source == COHERENCE
    assert estimate.confidence == HIGH
    assert estimate.coherence_step == pytest.approx(0.5)


def test_harvest_in_the_last_days_of_a_long_pair() -> None:
    """One orbit of 12-day pairs (one S1 unit): the pair spanning a harvest on its last day
    before the second acquisition is decorrelated; the bracket is the whole pair (12 days), so
    the week is uncertain: confidence LOW, still within a week."""
    first = MONDAY + timedelta(days=60)  # Friday of week 8; the pair ends on Wednesday week 10
    day = first + timedelta(days=11)
    weekly = with_lines(harvested(10), day, 12, orbits=(60 % 12,))
    estimate = estimate_harvest(weekly, harvest_markers(weekly, WINDOW, P), P)
    assert estimate is not None
    assert estimate.earliest == first
    assert estimate.latest == first + timedelta(days=12)
    assert estimate.earliest < day <= estimate.latest
    assert estimate.confidence == LOW
    assert abs((estimate.week_start - week_start(day)).days) <= 7


def test_missing_s1_weeks_widen_the_bracket() -> None:
    """No acquisition for two weeks around the harvest: the bracket spans the gap, the harvest
    is inside it, the confidence is LOW."""
    day = HARVEST_WEEK + timedelta(days=1)
    gap = (HARVEST_WEEK - timedelta(days=5), HARVEST_WEEK + timedelta(days=4))
    weekly = with_lines(harvested(10), day, 6, missing=gap)
    estimate = estimate_harvest(weekly, harvest_markers(weekly, WINDOW, P), P)
    assert estimate is not None
    assert estimate.earliest < gap[0]
    assert estimate.latest > gap[1]
    assert estimate.earliest < day <= estimate.latest
    assert estimate.confidence == LOW


def test_estimate_falls_back_to_the_ratio_jump() -> None:
    """Without coherence lines rising in the window: the first M3 week, confidence LOW."""
    weekly = harvested(10)
    result = harvest_markers(weekly, WINDOW, P)
    estimate = estimate_harvest(weekly, result, P)
    assert estimate is not None
    assert estimate.source == AMPLITUDE
    assert estimate.confidence == LOW
    assert estimate.week_start == HARVEST_WEEK
    flat = with_lines(weekly, HARVEST_WEEK, 6, high=0.3)
    fallback = estimate_harvest(flat, result, P)
    assert fallback is not None
    assert fallback.source == AMPLITUDE
