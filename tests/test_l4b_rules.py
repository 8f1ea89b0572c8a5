"""Every L4B rule on hand-made series: Sen4CAP's S2 and S1 detectors, fusion, suppression,
the four-event limit, compliance codes, capmon's method and the evaluation."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capmon.errors import ColumnError, InputError
from capmon.processors.l4b import capmon_method, sen4cap
from capmon.processors.l4b.compliance import compliance_code
from capmon.processors.l4b.config import ComplianceRule, L4BConfig, S1Settings, S2Settings
from capmon.processors.l4b.evaluate import load_reference, score_events
from capmon.processors.l4b.fusion import (
    MowingEvent,
    fuse,
    fused_confidence,
    strongest,
    suppress,
)
from capmon.processors.l4b.series import ParcelSeries, SeriesMatrix

START = np.datetime64("2024-05-01", "D")


def _optical(*rows: list[float], step: int = 5) -> SeriesMatrix:
    values = np.array(rows, dtype=float)
    dates = START + np.arange(values.shape[1]) * np.timedelta64(step, "D")
    return SeriesMatrix("NDVI", np.arange(1, len(rows) + 1, dtype=np.int64), dates, values,
                        np.full_like(values, 50.0))  # fmt: skip


def _coherence(*rows: list[float], pixels: float = 50.0, orbit: int = 37,
               offset: int = 0, pol: str = "VH") -> SeriesMatrix:  # fmt: skip
    values = np.array(rows, dtype=float)
    dates = START + offset + np.arange(values.shape[1]) * np.timedelta64(6, "D")
    return SeriesMatrix(f"COHE_{pol}", np.arange(1, len(rows) + 1, dtype=np.int64), dates,
                        values, np.full_like(values, pixels), dates - np.timedelta64(6, "D"),
                        orbit, "ASCENDING")  # fmt: skip


def _event(day: int, confidence: float, mission: str = "S2", length: int = 5) -> MowingEvent:
    end = datetime(2024, 5, 1) + timedelta(days=day)
    return MowingEvent(end - timedelta(days=length), end, confidence, mission, end)


# --- Sen4CAP S2 NDVI drop --------------------------------------------------------------------


def test_s2_drop_is_detected_between_the_two_memory_dates() -> None:
    matrix = _optical([0.80, 0.82, 0.62, 0.66, 0.75])
    found = sen4cap.s2_candidates(matrix, S2Settings())
    assert len(found) == 1
    row = found.iloc[0]
    assert row["start"] == pd.Timestamp("2024-05-06 10:30:00")  # day0: the 0.82
    assert row["end"] == pd.Timestamp("2024-05-11 10:30:00")  # day1: the 0.62
    assert row["detected_on"] == pd.Timestamp("2024-05-16 10:30:00")  # needs the next value
    strength = (0.82 - 0.62 - 0.12) / 0.62
    assert row["confidence"] == pytest.approx(1 - 0.5 * np.exp(-strength))
    assert 0.5 <= row["confidence"] < 1


@pytest.mark.parametrize(
    ("series", "reason"),
    [
        ([0.80, 0.82, 0.72, 0.74, 0.75], "drop below decreasing_abs_th (0.12)"),
        ([0.95, 0.95, 0.78, 0.80, 0.80], "N1 not below high_abs_th (0.75)"),
        ([0.45, 0.48, 0.20, 0.25, 0.30], "N0 not above low_abs_th (0.5)"),
        ([0.80, 0.82, 0.62, 0.95, 0.95], "regrowth faster than increasing_rate_th"),
        ([0.80, 0.82, 0.62, np.nan, np.nan], "no following value yet"),
    ],
)
def test_s2_conditions_block_a_detection(series: list[float], reason: str) -> None:
    assert sen4cap.s2_candidates(_optical(series), S2Settings()).empty, reason


def test_s2_rate_threshold_and_interval_shortening() -> None:
    # a drop spread over a long gap is slow: above decreasing_rate_th -0.02/day blocks it
    slow = replace(S2Settings(), decreasing_rate_th=-0.02)
    matrix = _optical([0.80, 0.82, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 0.62, 0.66])
    assert sen4cap.s2_candidates(matrix, slow).empty
    found = sen4cap.s2_candidates(matrix, S2Settings())
    assert len(found) == 1  # 35 days between the values: interval cut to no_mowing_after_det
    assert found.iloc[0]["end"] - found.iloc[0]["start"] == pd.Timedelta(days=30)


def test_s2_values_below_corrupted_threshold_are_skipped() -> None:
    matrix = _optical([0.80, 0.82, 0.05, 0.62, 0.66])  # 0.05 < corrupted_th: not a value
    found = sen4cap.s2_candidates(matrix, S2Settings())
    assert len(found) == 1
    assert found.iloc[0]["start"] == pd.Timestamp("2024-05-06 10:30:00")
    assert found.iloc[0]["end"] == pd.Timestamp("2024-05-16 10:30:00")


# --- Sen4CAP S1 coherence CFAR -------------------------------------------------------------


def test_cfar_factor_of_sen4cap_pfa() -> None:
    assert sen4cap.cfar_factor(3e-8) == pytest.approx(5.42, abs=0.01)
    assert sen4cap.cfar_factor(3e-7) == pytest.approx(4.99, abs=0.01)


def test_coherence_jump_is_detected_on_the_decorrelated_pair() -> None:
    series = [0.40, 0.41, 0.40, 0.41, 0.40, 0.41, 0.30, 0.70, 0.62, 0.55]
    matrix = _coherence(series, pixels=100.0)
    strength = sen4cap.cfar_strength(matrix, S1Settings())
    assert np.flatnonzero(strength[0] > 0).tolist() == [6]  # moved one pair back
    found = sen4cap.s1_candidates(ParcelSeries(matrix.parcel_ids, None, {"VH": [matrix]}, {}),
                                  S1Settings())  # fmt: skip
    assert len(found) == 1
    row = found.iloc[0]
    assert row["end"] == pd.Timestamp(matrix.dates[6]) + pd.Timedelta(hours=18)
    assert row["start"] == row["end"] - pd.Timedelta(days=6)
    assert row["detected_on"] == pd.Timestamp(matrix.dates[7]) + pd.Timedelta(hours=18)
    assert 0 < row["confidence"] < 0.5


def test_min_cohe_var_floor_depends_on_pixels() -> None:
    series = [0.40, 0.40, 0.40, 0.40, 0.40, 0.40, 0.35, 0.55, 0.50, 0.45]
    assert (sen4cap.cfar_strength(_coherence(series, pixels=400.0), S1Settings()) > 0).any()
    assert not (sen4cap.cfar_strength(_coherence(series, pixels=4.0), S1Settings()) > 0).any()


def test_cfar_needs_stat_smpl_n_previous_samples() -> None:
    series = [0.40, 0.41, 0.30, 0.80, 0.70]  # the jump comes after 3 samples only
    assert not (sen4cap.cfar_strength(_coherence(series, pixels=400.0), S1Settings()) > 0).any()


# --- fusion, suppression, limit --------------------------------------------------------------


def test_fused_confidence_formula() -> None:
    assert fused_confidence([0.5, 0.5]) == pytest.approx(0.75)
    assert fused_confidence([0.8]) == pytest.approx(0.8)
    assert fused_confidence([0.9, 0.9, 0.9]) < 1


def test_overlapping_s2_and_s1_events_fuse() -> None:
    s2 = _event(10, 0.8, "S2", length=5)
    s1 = _event(12, 0.3, "S1", length=6)
    [fused] = fuse([s1, s2])
    assert fused.mission == "S2/S1"
    assert (fused.start, fused.end) == (s2.start, s2.end)  # the more confident interval
    assert fused.confidence == pytest.approx(fused_confidence([0.8, 0.3]))
    [both_s1] = fuse([_event(12, 0.45, "S1"), _event(13, 0.4, "S1")])
    assert both_s1.confidence <= 0.5
    assert both_s1.mission == "S1"


def test_suppression_rules() -> None:
    events = [_event(0, 0.9), _event(40, 0.7), _event(60, 0.8)]
    # S2 rule: intervals closer than 45 days -> the less confident goes
    kept = suppress(events, 45, "interval")
    assert [e.confidence for e in kept] == [0.9, 0.8]
    # S1 rule: end dates closer than 28 days
    kept = suppress(events, 28, "end")
    assert [e.confidence for e in kept] == [0.9, 0.8]
    kept = suppress([_event(0, 0.3, "S1"), _event(30, 0.2, "S1")], 28, "end")
    assert len(kept) == 2


def test_at_most_four_events_the_most_confident_by_time() -> None:
    events = [_event(10 * k, c) for k, c in enumerate([0.6, 0.9, 0.55, 0.8, 0.7, 0.95])]
    best = strongest(events)
    assert [e.confidence for e in best] == [0.9, 0.8, 0.7, 0.95]


def test_select_events_runs_s2_first_then_each_orbit() -> None:
    config = L4BConfig()
    rows = [
        (1, "S2", "2024-05-06 10:30", "2024-05-11 10:30", 0.8, "S2", "2024-05-16", 1.0),
        (1, "S1:37", "2024-05-05 18:00", "2024-05-11 18:00", 0.3, "S1", "2024-05-17", 1.0),
        (1, "S1:88", "2024-07-01 06:00", "2024-07-07 06:00", 0.4, "S1", "2024-07-13", 1.0),
        (1, "S1:88", "2024-07-13 06:00", "2024-07-19 06:00", 0.2, "S1", "2024-07-25", 1.0),
    ]
    frame = sen4cap._typed(pd.DataFrame(rows, columns=list(sen4cap.CANDIDATE_COLUMNS)))
    events = sen4cap.select_events(frame, config)
    assert [e.mission for e in events] == ["S2/S1", "S1"]
    assert events[1].confidence == pytest.approx(0.4)  # 07-19 is within 28 days of 07-07


# --- compliance ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crop", "days", "processed", "rule", "code"),
    [
        ("99", [30], True, 0, -1),  # not in [compliancy]
        ("60", [], False, 0, 0),  # not processed
        ("60", [], True, 0, 2),  # processed, no mowing
        ("60", [30], True, 0, 1),  # mown in the window
        ("60", [-40], True, 0, 2),  # mown before the window only
        ("60", [-40, 30], True, 0, 1),  # standard rule: one inside is enough
        ("60", [-40, 30], True, 1, 3),  # Lithuania rule: inside and outside
        ("60", [30], True, 1, 1),
        ("60", [-40], True, 1, 2),
    ],
)
def test_compliance_codes(
    crop: str, days: list[int], processed: bool, rule: int, code: int
) -> None:
    config = L4BConfig(compliance=(ComplianceRule("60", date(2024, 5, 15), date(2024, 7, 31),
                                                  rule),))  # fmt: skip
    events = [_event(d, 0.8) for d in days]
    assert compliance_code(crop, events, processed, config) == code


# --- capmon method ------------------------------------------------------------------------------

QUIET = [0.40, 0.42, 0.39, 0.41, 0.40, 0.42, 0.40, 0.41, 0.39, 0.41, 0.40, 0.42, 0.41, 0.40]
CUT = [0.40, 0.42, 0.39, 0.41, 0.40, 0.30, 0.70, 0.62, 0.55, 0.48, 0.44, 0.42, 0.41, 0.40]


def _scene(target: list[float], weather_dip: int | None = None, n: int = 20) -> SeriesMatrix:
    rng = np.random.default_rng(1)
    rows = [np.array(QUIET) + rng.normal(0, 0.005, len(QUIET)) for _ in range(n)]
    rows.insert(0, np.array(target))
    matrix = np.array(rows)
    if weather_dip is not None:  # rain: every parcel decorrelates, then recovers
        matrix[:, weather_dip] -= 0.15
    return _coherence(*matrix.tolist())


def _capmon(series: ParcelSeries) -> dict[int, list[MowingEvent]]:
    config = L4BConfig()
    found = capmon_method.detect_candidates(series, config)
    return capmon_method.select_all(found, series)


def test_capmon_detects_a_parcel_specific_jump_with_two_orbits() -> None:
    a, b = _scene(CUT), replace(_scene(CUT), orbit=88, direction="DESCENDING")
    series = ParcelSeries(a.parcel_ids, None, {"VH": [a, b]}, {})
    events = _capmon(series)
    assert list(events) == [1]
    [event] = events[1]
    # the cut is in the decorrelated pair of both orbits: their intervals are intersected
    day = datetime.combine(pd.Timestamp(a.dates[5]).date(), datetime.min.time())
    assert (event.start, event.end) == (
        day - timedelta(days=6) + timedelta(hours=18),
        day + timedelta(hours=6),
    )
    assert event.mission == "S1"
    assert event.detected_on == day + timedelta(days=6, hours=6)


def test_capmon_one_moderate_jump_needs_confirmation() -> None:
    a = _scene(CUT)
    alone = _capmon(ParcelSeries(a.parcel_ids, None, {"VH": [a]}, {}))
    assert list(alone) == [1]  # a strong jump stands alone
    weak = [0.40, 0.42, 0.39, 0.41, 0.40, 0.35, 0.49, 0.47, 0.45, 0.44, 0.43, 0.42, 0.41, 0.40]
    w = _scene(weak)
    assert _capmon(ParcelSeries(w.parcel_ids, None, {"VH": [w]}, {})) == {}
    # confirmed by the other orbit, the same moderate jump is a cut
    w88 = replace(_scene(weak), orbit=88)
    assert list(_capmon(ParcelSeries(w.parcel_ids, None, {"VH": [w, w88]}, {}))) == [1]


def test_capmon_ignores_a_scene_wide_weather_dip() -> None:
    a = _scene(QUIET, weather_dip=5)
    b = replace(_scene(QUIET, weather_dip=5), orbit=88)
    assert _capmon(ParcelSeries(a.parcel_ids, None, {"VH": [a, b]}, {})) == {}


def _with_ndvi(coherence: list[SeriesMatrix], before: float, after: float) -> ParcelSeries:
    n = len(coherence[0].parcel_ids)
    dates = START + np.arange(0, 84, 5) * np.timedelta64(1, "D")
    cut = START + np.timedelta64(30, "D")
    ndvi = np.where(dates < cut, before, after)[None, :].repeat(n, axis=0).astype(float)
    optical = SeriesMatrix("NDVI", coherence[0].parcel_ids, dates, ndvi, np.full_like(ndvi, 9))
    return ParcelSeries(coherence[0].parcel_ids, optical, {"VH": coherence}, {})


def test_capmon_needs_grass_before_and_after() -> None:
    a, b = _scene(CUT), replace(_scene(CUT), orbit=88)
    assert 1 in _capmon(_with_ndvi([a, b], 0.82, 0.70))  # a cut meadow
    assert 1 not in _capmon(_with_ndvi([a, b], 0.20, 0.25))  # bare before: a sowing
    assert 1 not in _capmon(_with_ndvi([a, b], 0.82, 0.15))  # bare after: ploughed


def test_capmon_s2_only_parcels_use_ndvi_and_reject_cloud_dips() -> None:
    mown = _optical([0.80, 0.82, 0.84, 0.66, 0.72, 0.78, 0.82, 0.84])
    cloudy = _optical([0.80, 0.82, 0.84, 0.55, 0.84, 0.84, 0.84, 0.84])
    for matrix, expected in ((mown, 1), (cloudy, 0)):
        series = ParcelSeries(matrix.parcel_ids, matrix, {"VH": []}, {})
        events = _capmon(series)
        assert len(events.get(1, [])) == expected


# --- evaluation ---------------------------------------------------------------------------------


def test_scores_with_tolerance_delay_and_count_error() -> None:
    parcels = pd.DataFrame({"NewID": [1, 2, 3], "Ori_id": ["A", "B", "C"]})
    reference = pd.DataFrame(
        {"ref_id": ["A", "A", "B", "Z"],
         "date": pd.to_datetime(["2024-05-10", "2024-07-01", "2024-06-01", "2024-06-01"])}
    )  # fmt: skip
    events = pd.DataFrame(
        {"NewID": [1, 1, 2, 3],
         "end": pd.to_datetime(["2024-05-12", "2024-07-25", "2024-05-30", "2024-06-01"]),
         "detected_on": pd.to_datetime(["2024-05-18", "2024-07-30", "2024-06-05", "2024-06-07"])}
    )  # fmt: skip
    result = score_events(parcels, events, reference)
    # A: 05-12 matches (+2), 07-25 is +24 (late); B: 05-30 matches (-2); C: a false alarm
    assert (result.matched, result.detected_events, result.reference_events) == (2, 4, 3)
    assert result.precision == pytest.approx(0.5)
    assert result.recall == pytest.approx(2 / 3, abs=1e-4)
    assert result.mean_delay_days == pytest.approx(0.0)
    assert result.mean_availability_delay_days == pytest.approx((8 + 4) / 2)
    assert result.count_mae == pytest.approx(1 / 3, abs=1e-4)  # C has one too many
    assert result.reference_outside_product == 1
    assert result.id_column == "ori_id"
    wide = score_events(parcels, events, reference, tolerance_days=(-3, 30))
    assert wide.matched == 3


def test_reference_files(tmp_path: Path) -> None:
    simple = tmp_path / "simple.csv"
    simple.write_text("parcel_id,mowing_date\nA,2024-05-10\nB,\n")
    table = load_reference(simple)
    assert table["ref_id"].tolist() == ["A", "B"]
    assert table["date"].isna().tolist() == [False, True]
    truth = tmp_path / "events.csv"
    truth.write_text("parcel_id,year,date,event,crop_code,part\nA,2024,2024-05-10,mowing,60,main\n"
                     "A,2024,2024-03-01,sowing,60,main\n")  # fmt: skip
    assert len(load_reference(truth)) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("parcel_id,date\nA,2024-05-10\nB,someday\n")
    with pytest.raises(InputError, match="line 3"):
        load_reference(bad)
    nameless = tmp_path / "nameless.csv"
    nameless.write_text("x,y\n1,2\n")
    with pytest.raises(ColumnError, match="parcel id column"):
        load_reference(nameless)
