"""L4B plumbing on hand-made series (issue 16): a parcel's events never depend on the other
parcels of the run, the look-back before ``--start``, rows of one pixel or of unknown count,
and the evaluation report and plots."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from shapely.geometry import Point
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.mdb.query import MarkersDatabase
from capmon.mdb.store import MDB_SCHEMA, MdbManifest, MdbStore
from capmon.processors.l4b import capmon_method, learned, sen4cap
from capmon.processors.l4b.config import L4BConfig, S1Settings
from capmon.processors.l4b.evaluate import naive_drop_events, score_events
from capmon.processors.l4b.fusion import MowingEvent
from capmon.processors.l4b.processor import L4BParameters, detect_mowing, grassland_parcels
from capmon.processors.l4b.series import build_series

START = pd.Timestamp("2024-04-02")
runner = CliRunner()


def _rows(parcel: int, signal: str, days: list[int], values: list[float], count: int = 50,
          orbit: int | None = None) -> pd.DataFrame:  # fmt: skip
    dates = [START + pd.Timedelta(days=d) for d in days]
    frame = pd.DataFrame({"parcel_id": parcel, "signal": signal, "date": dates,
                          "mean": values, "count": count})  # fmt: skip
    if orbit is not None:
        frame["orbit"] = orbit
        frame["orbit_direction"] = "ASCENDING"
        if signal.startswith("COHE"):
            frame["date_first"] = [d - pd.Timedelta(days=12) for d in dates]
    return frame


def _target(parcel: int = 1, shift: int = 0) -> pd.DataFrame:
    """A meadow: a cloud-residual NDVI dip gone at the parcel's next date (day 30), a real cut
    before day 70 (NDVI and coherence), on the parcel's own dates (every 10 / 12 days)."""
    ndvi_days = [shift + d for d in range(0, 140, 10)]
    ndvi = [0.80, 0.81, 0.80, 0.55, 0.80, 0.81, 0.80, 0.52, 0.58, 0.66, 0.72, 0.78, 0.80, 0.80]
    pair_days = [shift + d for d in range(0, 144, 12)]
    wiggle = [0.0, 0.02, -0.01, 0.01, -0.02, 0.0, -0.01, 0.01, 0.0, -0.01, 0.02, 0.0]
    cohe = [0.30 + w for w in wiggle]
    cohe[5], cohe[6] = 0.26, 0.75  # the pair over the cut decorrelates, the next is coherent
    vv = [c + 0.08 for c in cohe]
    amp = [-8.5 + w for w in wiggle]
    amp[6] = -9.6
    return pd.concat([
        _rows(parcel, "NDVI", ndvi_days, ndvi),
        _rows(parcel, "COHE_VH", pair_days, cohe, orbit=175),
        _rows(parcel, "COHE_VV", pair_days, vv, orbit=175),
        _rows(parcel, "AMP_VH", pair_days, amp, orbit=175),
    ], ignore_index=True)  # fmt: skip


def _others(count: int = 15) -> pd.DataFrame:
    """Parcels observed on other dates (another tile and orbit timing), with cuts of their own."""
    parts = []
    for k in range(count):
        rng = np.random.default_rng(k)
        ndvi_days = list(range(3, 140, 4))
        ndvi = 0.75 + rng.normal(0, 0.02, len(ndvi_days))
        ndvi[12 + k % 5 :] -= 0.2
        pair_days = list(range(5, 144, 6))
        cohe = 0.35 + rng.normal(0, 0.03, len(pair_days))
        parts += [_rows(100 + k, "NDVI", ndvi_days, list(ndvi)),
                  _rows(100 + k, "COHE_VH", pair_days, list(cohe), orbit=175),
                  _rows(100 + k, "COHE_VV", pair_days, list(cohe + 0.1), orbit=175),
                  _rows(100 + k, "AMP_VH", pair_days, list(-8.0 + cohe), orbit=175)]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def _events(
    rows: pd.DataFrame, ids: list[int], method: str, sensors: str
) -> dict[int, list[MowingEvent]]:
    series = build_series(rows, ids)
    config = L4BConfig()
    use_s1, use_s2 = "S1" in sensors, "S2" in sensors
    if method == "sen4cap":
        found = sen4cap.detect_candidates(series, config, use_s1, use_s2)
        return {int(k): sen4cap.select_events(g, config) for k, g in found.groupby("parcel_id")}
    if method == "capmon":
        chosen: learned.Sensors = "S1_S2" if use_s1 else "S2"
        scored = learned.scored_candidates(series, chosen, learned.models_for(chosen), None)
        return learned.select_events(scored)
    found = capmon_method.detect_candidates(series, config, None, use_s1, use_s2)
    return capmon_method.select_all(found, series, None, use_s1)


@pytest.mark.parametrize("sensors", ["S2", "S1_S2"])
@pytest.mark.parametrize("method", ["capmon", "rules", "sen4cap"])
def test_a_parcel_gives_the_same_events_alone_and_within_a_run(method: str, sensors: str) -> None:
    """The 'dip gone at the next date' check looked 3 columns ahead in the run's shared date
    grid, and Sen4CAP's coherence trend and capmon's coherence baseline stepped through grid
    columns: with other parcels on other dates, the same parcel got other events."""
    target = _target()
    alone = _events(target, [1], method, sensors).get(1, [])
    together = pd.concat([target, _others()], ignore_index=True)
    within = _events(together, [1, *range(100, 115)], method, sensors).get(1, [])
    assert within == alone
    ends = [e.end.date() for e in alone]
    cut = (START + pd.Timedelta(days=70)).date()
    assert any(cut - timedelta(days=14) <= e <= cut + timedelta(days=1) for e in ends), ends
    if method in ("capmon", "rules"):  # the dip at day 30 comes back at the parcel's next date
        dip = (START + pd.Timedelta(days=30)).date()
        assert all(abs((e - dip).days) > 5 for e in ends), ends


def test_one_pixel_and_unknown_count_rows_are_used_explicitly() -> None:
    """Rows of count 1 (a one-pixel mean the MDB extraction would have dropped) and count 0
    (unknown: an imported MDB) are both used; Sen4CAP's coherence floor is the widest for one
    pixel and absent for an unknown count; ``min_count`` drops known small counts only."""
    rows = pd.concat([_target(1).assign(count=1), _target(2).assign(count=0),
                      _target(3).assign(count=40)], ignore_index=True)  # fmt: skip
    series = build_series(rows, [1, 2, 3])
    assert series.optical is not None
    assert np.isfinite(series.optical.values).all(axis=1).tolist() == [True] * 3
    pixels = sen4cap._parcel_pixels(series.coherence["VH"][0])
    assert pixels.tolist() == [1.0, 0.0, 40.0]
    assert np.sqrt(S1Settings().min_cohe_var / pixels[0]) == pytest.approx(0.155, abs=1e-3)
    kept = build_series(rows, [1, 2, 3], min_count=2)
    assert kept.optical is not None
    assert np.isfinite(kept.optical.values).any(axis=1).tolist() == [False, True, True]
    # a date with a one-pixel row and a 40-pixel row (two tiles) keeps the 40-pixel one
    twice = pd.concat([_target(1).assign(count=1),
                       _target(1).assign(count=40, mean=0.3)], ignore_index=True)  # fmt: skip
    optical = build_series(twice, [1]).optical
    assert optical is not None
    assert np.nanmax(optical.values) == pytest.approx(0.3)


def _mdb(root: Path, rows: pd.DataFrame) -> MarkersDatabase:
    """A real MDB folder holding ``rows`` (their S1 pair dates and orbits when given)."""
    store = MdbStore(root)
    store.initialise(MdbManifest("test", "test/2024/v1", None, 5.0, 10.0, 2, 0.1, "1"))
    n = len(rows)
    radar = rows["signal"].str.startswith(("COHE", "AMP")).to_numpy()
    columns = {
        "parcel_id": rows["parcel_id"].tolist(),
        "signal": rows["signal"].tolist(),
        "sensor": np.where(radar, "S1A", "S2A").tolist(),
        "date": pd.to_datetime(rows["date"]).dt.date.tolist(),
        "product_id": ["handmade"] * n,
        "count": rows["count"].tolist(),
        "pixels": rows["count"].tolist(),
        "mean": rows["mean"].tolist(),
    }
    if "orbit" in rows:
        columns["orbit"] = [None if pd.isna(o) else int(o) for o in rows["orbit"]]
        columns["orbit_direction"] = [None if pd.isna(o) else o for o in rows["orbit_direction"]]
    if "date_first" in rows:
        columns["date_first"] = [None if pd.isna(d) else d.date() for d in rows["date_first"]]
    arrays = {f.name: pa.array(columns.get(f.name, [None] * n), type=f.type) for f in MDB_SCHEMA}
    store.write_product("handmade", [pa.Table.from_pydict(arrays, schema=MDB_SCHEMA)])
    return MarkersDatabase(root)


def _meadow(start: date) -> gpd.GeoDataFrame:
    parcels = gpd.GeoDataFrame(
        {"NewID": [1], "ori_id": ["M1"], "ori_hold": ["H1"], "ori_crop": ["GRASS"],
         "Area_meters": [5000.0]},
        geometry=[Point(0, 0).buffer(40)], crs="EPSG:32633",
    )  # fmt: skip
    lut = pd.DataFrame({"ori_crop": pd.Series(dtype="string"), "ctnum": []})
    return grassland_parcels(parcels, lut, L4BConfig())


@pytest.mark.parametrize("method", ["capmon", "rules", "sen4cap"])
def test_look_back_gives_context_before_the_reporting_period(
    method: Literal["capmon", "rules", "sen4cap"], tmp_path: Path
) -> None:
    """``--start`` used to be the first date read: a cut just after it had no value before it.
    Now the ``lookback_days`` before it are read, and events are reported only from it."""
    days = {"2024-02-20": 0.80, "2024-03-01": 0.50, "2024-03-11": 0.60, "2024-03-21": 0.75,
            "2024-03-31": 0.80, "2024-04-10": 0.55, "2024-04-20": 0.60, "2024-04-30": 0.70,
            "2024-05-10": 0.78, "2024-05-20": 0.80}  # fmt: skip
    rows = pd.DataFrame({"parcel_id": 1, "signal": "NDVI", "date": list(days),
                         "mean": list(days.values()), "count": 50})  # fmt: skip
    mdb = _mdb(tmp_path / "mdb", rows)
    parcels = _meadow(date(2024, 4, 2))
    start, until = date(2024, 4, 2), date(2024, 9, 30)

    def ends(lookback: int) -> list[date]:
        result = detect_mowing(mdb, parcels, L4BConfig(), method=method, sensors="S2",
                               start=start, until=until, lookback_days=lookback)  # fmt: skip
        assert result.first_date == date(2024, 4, 10)  # the reported period's first date
        if method == "capmon":  # the model's candidates: April 10 needs March 31 before it
            found = result.candidates
            pairs = zip(found["start"], found["end"], strict=True)
            return [pd.Timestamp(e).date() for b, e in pairs
                    if pd.Timestamp(b).date() == date(2024, 3, 31)]  # fmt: skip
        return [e.end.date() for e in result.events.get(1, [])]

    assert ends(0) == []  # the old behaviour: the 0.80 of March 31 was never read
    assert ends(45) == [date(2024, 4, 10)]  # the March 1 cut is context, not reported
    with pytest.raises(ValueError, match="lookback_days"):
        L4BParameters(lookback_days=-1)


def test_evaluation_reports_date_errors_and_false_alarms_per_month() -> None:
    parcels = pd.DataFrame({"NewID": [1, 2, 3], "Ori_id": ["A", "B", "C"]})
    events = pd.DataFrame({
        "NewID": [1, 1, 2, 3, 3],
        "end": pd.to_datetime(["2024-06-05", "2024-10-02", "2024-06-30", "2024-07-20",
                               "2024-10-20"]),
    })  # fmt: skip
    reference = pd.DataFrame({
        "ref_id": ["A", "B", "C", "C"],
        "date": pd.to_datetime(["2024-06-01", "2024-07-10", "2024-07-15", "2024-09-01"]),
    })  # fmt: skip
    score = score_events(parcels, events, reference)
    # A: June 5 matches June 1 (+4); B: June 30 is 10 days before July 10 (outside [-3, +20])
    # C: July 20 matches July 15 (+5); September 1 is missed; the October ends are false alarms
    assert (score.matched, score.detected_events, score.reference_events) == (2, 5, 4)
    assert score.precision == pytest.approx(0.4)
    assert score.recall == pytest.approx(0.5)
    assert score.f1 == pytest.approx(2 * 0.4 * 0.5 / 0.9, abs=1e-4)
    assert score.median_abs_date_error_days == pytest.approx(4.5)
    assert score.mean_abs_date_error_days == pytest.approx(4.5)
    assert score.false_alarms == 3
    assert score.false_alarms_by_month == {"2024-06": 1, "2024-10": 2}
    assert score.figures()["false_alarms_by_month"] == {"2024-06": 1, "2024-10": 2}


def test_naive_rule_is_a_drop_from_a_high_previous_observation() -> None:
    rows = pd.DataFrame({
        "parcel_id": [1] * 6 + [2] * 3,
        "date": pd.to_datetime(["2024-05-01", "2024-05-06", "2024-05-11", "2024-05-16",
                                "2024-05-21", "2024-05-26", "2024-05-01", "2024-05-06",
                                "2024-05-11"]),
        "mean": [0.80, 0.67, 0.70, 0.05, 0.50, 0.30, 0.44, 0.30, 0.30],
    })  # fmt: skip
    found = naive_drop_events(rows)
    # 0.80 -> 0.67 (0.13 from >= 0.45); 0.05 is no observation, so 0.70 -> 0.50 (0.20);
    # 0.50 -> 0.30 (from 0.50); parcel 2 starts below 0.45
    assert found["NewID"].tolist() == [1, 1, 1]
    assert found["end"].dt.strftime("%m-%d").tolist() == ["05-06", "05-21", "05-26"]
    late = naive_drop_events(rows, start=date(2024, 5, 20))
    assert late["end"].dt.strftime("%m-%d").tolist() == ["05-21", "05-26"]


def test_eval_mowing_command_writes_plots(tmp_path: Path) -> None:
    """`capmon eval mowing PRODUCT --reference FILE --mdb DIR --plots DIR`: the figures and one
    PNG per sampled parcel (headless Agg backend); a GeoPackage of field checks is read with
    its type column (k = mowing, n = checked, not mown)."""
    days = pd.date_range("2024-04-01", periods=20, freq="7D")
    ndvi = [0.8] * 9 + [0.5, 0.55, 0.62, 0.7, 0.78] + [0.8] * 6  # a cut before June 3
    rows = pd.concat([pd.DataFrame({"parcel_id": p, "signal": "NDVI", "date": days,
                                    "mean": ndvi, "count": 30}) for p in (1, 2)])  # fmt: skip
    _mdb(tmp_path / "mdb", rows)
    parcels = gpd.GeoDataFrame({"PLOTID": ["P1", "P2"]},
                               geometry=[Point(0, 0), Point(50, 0)], crs="EPSG:32633")  # fmt: skip
    parcels.to_file(tmp_path / "plots.gpkg", driver="GPKG")
    ids = pd.DataFrame({"original_id": ["P1", "P2"], "parcel_id": [1, 2]})
    ids.to_csv(tmp_path / "mdb" / "parcel_ids.csv", index=False)
    out = tmp_path / "l4b"
    result = runner.invoke(app, ["run", "l4b", "--mdb", str(tmp_path / "mdb"), "--parcels",
                                 str(tmp_path / "plots.gpkg"), "--parcel-id-col", "PLOTID",
                                 "--out", str(out), "--sensors", "S2", "--start", "2024-04-01",
                                 "--until", "2024-09-30"])  # fmt: skip
    assert result.exit_code == 0, result.output
    checks = gpd.GeoDataFrame(
        {"PLOTID": ["P1", "P2"], "type": ["k", "n"], "id": ["R1", "R1"],  # id: the region
         "date": pd.to_datetime(["2024-06-01", None])},
        geometry=[Point(0, 0), Point(50, 0)], crs="EPSG:32633",
    )  # fmt: skip
    checks.to_file(tmp_path / "checks.gpkg", driver="GPKG")
    plots = tmp_path / "plots"
    result = runner.invoke(app, ["eval", "mowing", str(out), "--reference",
                                 str(tmp_path / "checks.gpkg"), "--mdb", str(tmp_path / "mdb"),
                                 "--plots", str(plots), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["reference_events"] == 1
    assert figures["detected_events"] == 2
    assert figures["matched"] == 1
    assert figures["false_alarms_by_month"] == {"2024-06": 1}
    files = sorted(plots.glob("*.png"))
    assert [f.name for f in files] == ["mowing_1_P1.png", "mowing_2_P2.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)
    assert [str(f) for f in files] == sorted(figures["plots"])
    result = runner.invoke(app, ["eval", "mowing", str(out), "--reference",
                                 str(tmp_path / "checks.gpkg"), "--plots", str(plots)])  # fmt: skip
    assert result.exit_code != 0
    assert "--mdb" in result.output


def test_a_parcel_with_only_s1_is_not_processed_by_the_learned_method(tmp_path: Path) -> None:
    """The learned method detects on NDVI: a parcel with coherence but no NDVI must read
    proc 0 (not analysed), not "processed, no mowing", which would flag its farmer."""
    days = pd.date_range("2024-04-02", "2024-09-20", freq="12D")
    rows = pd.DataFrame({"parcel_id": 1, "signal": "COHE_VH", "date": days,
                         "mean": 0.3, "count": 50})  # fmt: skip
    mdb = _mdb(tmp_path / "mdb", rows)
    parcels = _meadow(date(2024, 4, 2))
    start, until = date(2024, 4, 2), date(2024, 9, 30)
    learned_run = detect_mowing(mdb, parcels, L4BConfig(), method="capmon", sensors="S1_S2",
                                start=start, until=until)  # fmt: skip
    rules_run = detect_mowing(mdb, parcels, L4BConfig(), method="rules", sensors="S1_S2",
                              start=start, until=until)  # fmt: skip
    assert learned_run.layer["proc"].tolist() == [0]
    assert rules_run.layer["proc"].tolist() == [1]


def test_s1_is_weighed_only_when_asked(tmp_path: Path) -> None:
    """With S1 and S2 read, the learned method scores with the S2 model unless S1 evidence is
    asked for (the shipped S1+S2 model did not beat it on the unseen real region): the same
    candidates as an S2 run; with --s1-evidence the candidates with S1 pairs around them are
    scored by the S1+S2 model (mission S2/S1)."""
    mdb = _mdb(tmp_path / "mdb", _target())
    parcels = _meadow(START.date())
    until = START.date() + timedelta(days=150)
    cases: list[tuple[str, Literal["S2", "S1_S2"], bool | None]] = [
        ("s2", "S2", None), ("default", "S1_S2", None), ("asked", "S1_S2", True),
    ]  # fmt: skip
    runs = {
        name: detect_mowing(
            mdb,
            parcels,
            L4BConfig(),
            method="capmon",
            sensors=sensors,
            start=START.date(),
            until=until,
            s1_evidence=evidence,
        )
        for name, sensors, evidence in cases
    }
    columns = ["start", "end", "confidence", "mission"]
    s2 = runs["s2"].candidates[columns].reset_index(drop=True)
    assert not s2.empty
    pd.testing.assert_frame_equal(runs["default"].candidates[columns].reset_index(drop=True), s2)
    assert (runs["asked"].candidates["mission"] == "S2/S1").any()
