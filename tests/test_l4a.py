"""L4A rules on small hand-made inputs: well separated classes, parcels and a crop LUT.

The helpers (``lut``, ``parcels``, ``series``) are shared with ``test_l4a_processor.py``.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from capmon.errors import ColumnError, InputError
from capmon.processors.l4a import (
    CLASSIF_VALUES,
    FeatureSettings,
    FeatureTable,
    L4AParameters,
    TrainingRules,
    build_features,
    classify_crops,
    classify_features,
    read_attributes,
)
from capmon.processors.l4a import training as training_module
from capmon.processors.l4a.features import (
    fill_nearest,
    interpolate_to_grid,
    temporal_descriptors,
)
from capmon.processors.l4a.training import (
    fold_of,
    smote,
    split_calibration,
    strategy_of,
    train_and_predict,
    training_size,
)

SEASON_START = date(2024, 3, 1)
OPTICAL_DATES = tuple(SEASON_START + timedelta(days=d) for d in range(0, 150, 12))
SAR_DATES = tuple(SEASON_START + timedelta(days=d) for d in range(2, 150, 6))
# class -> (ori_crop, lc, name, day of the NDVI peak)
CLASSES = {1: (311, 1, "Winter wheat", 40), 2: (201, 1, "Maize", 110), 3: (60, 3, "Grassland", 75)}


def lut() -> pd.DataFrame:
    """A Sen4CAP LUT with the three classes plus a non-monitored land cover (lc 5)."""
    rows = [
        {"ori_crop": code, "ctnum": k, "ct": name, "lc": lc, "ctnuml4a": k, "ctl4a": name,
         "ctnumdiv": k, "eaa": True, "al": True, "pgrass": False, "tgrass": False,
         "fallow": False, "cwater": False}
        for k, (code, lc, name, _peak) in CLASSES.items()
    ]  # fmt: skip
    rows.append(
        {"ori_crop": 999, "ctnum": 9, "ct": "Built-up", "lc": 5, "ctnuml4a": 9, "ctl4a": "Other",
         "ctnumdiv": 9, "eaa": False, "al": False, "pgrass": False, "tgrass": False,
         "fallow": False, "cwater": False}
    )  # fmt: skip
    return pd.DataFrame(rows)


def parcels(counts: dict[int, int], *, first_id: int = 1) -> gpd.GeoDataFrame:
    """``counts[class]`` valid parcels of each class, S2Pix 40, S1Pix 8, 100 m squares."""
    codes = [CLASSES[k][0] for k, n in counts.items() for _ in range(n)]
    ids = np.arange(first_id, first_id + len(codes), dtype=np.int64)
    geometries = [box(i * 120.0, 0.0, i * 120.0 + 100.0, 100.0) for i in range(len(codes))]
    return gpd.GeoDataFrame(
        {
            "NewID": ids,
            "HoldID": ids,
            "ori_id": [f"P{i}" for i in ids],
            "ori_crop": pd.Series(codes, dtype="Int64"),
            "GeomValid": True,
            "Duplic": False,
            "Overlap": False,
            "Area_meters": 10000.0,
            "S2Pix": 40,
            "S1Pix": 8,
            "is_deleted": False,
            "geometry": geometries,
        },
        geometry="geometry",
        crs="EPSG:32631",
    )


def _ndvi(peak: int, day: int) -> float:
    return 0.15 + 0.7 * float(np.exp(-(((day - peak) / 25.0) ** 2)))


def series(table: pd.DataFrame, *, seed: int = 0, coherence: bool = True) -> pd.DataFrame:
    """MDB rows (long layout) for the parcels of ``table``, from their declared crop class."""
    rng = np.random.default_rng(seed)
    by_code = {code: peak for code, _lc, _name, peak in CLASSES.values()}
    by_code[999] = 60
    rows: list[dict[str, object]] = []
    for parcel_id, code in zip(table["NewID"], table["ori_crop"], strict=True):
        peak = by_code.get(int(code), 60)
        for when in OPTICAL_DATES:
            day = (when - SEASON_START).days
            ndvi = _ndvi(peak, day) + rng.normal(0, 0.02)
            red = 0.12 - 0.1 * ndvi
            nir = red * (1 + ndvi) / (1 - ndvi)
            values = {
                "NDVI": ndvi, "B04": red, "B08": nir, "B03": 0.08, "B11": 0.2 - 0.05 * ndvi,
                "B05": 0.1, "B06": 0.2 + 0.2 * ndvi, "B07": 0.25 + 0.2 * ndvi, "B12": 0.12,
            }  # fmt: skip
            values["NDWI"] = (values["B11"] - nir) / (values["B11"] + nir)
            values["BRIGHTNESS"] = float(np.sqrt(0.08**2 + red**2 + nir**2 + values["B11"] ** 2))
            for signal, value in values.items():
                rows.append(_row(parcel_id, signal, when, None, value))
        for when in SAR_DATES:
            day = (when - SEASON_START).days
            vv = -6.0 + 3.0 * _ndvi(peak, day) + rng.normal(0, 0.2)
            direction = "ASC" if (when - SEASON_START).days % 12 == 2 else "DESC"
            rows.append(_row(parcel_id, "AMP_VV", when, direction, vv))
            rows.append(_row(parcel_id, "AMP_VH", when, direction, vv - 3.0 - _ndvi(peak, day)))
            if coherence:
                cohe = 0.7 - 0.6 * _ndvi(peak, day)
                rows.append(_row(parcel_id, "COHE_VV", when, direction, cohe))
                rows.append(_row(parcel_id, "COHE_VH", when, direction, cohe * 0.8))
    return pd.DataFrame(rows)


def _row(
    parcel_id: int, signal: str, when: date, direction: str | None, value: float
) -> dict[str, object]:
    return {
        "parcel_id": int(parcel_id),
        "signal": signal,
        "date": when,
        "orbit_direction": direction,
        "mean": float(value),
        "stdev": 0.01,
        "count": 20,
    }


# Small and fast: few trees, small SMOTE target and class minimum.
FAST = {"num_trees": 25, "smote_target": 40, "pa_min": 5, "folds": 3, "jobs": 1}
World = tuple[gpd.GeoDataFrame, pd.DataFrame]


def fast(**changes: Any) -> L4AParameters:
    """Parameters for quick tests (few trees, small SMOTE target and class minimum)."""
    return L4AParameters.model_validate(FAST | changes)


@pytest.fixture(scope="module")
def world() -> World:
    table = parcels({1: 30, 2: 30, 3: 30})
    return table, series(table)


@pytest.fixture(scope="module")
def features_both(world: World) -> FeatureTable:
    table, rows = world
    return build_features(rows, table["NewID"].tolist(), FeatureSettings(mode="both"))


# -- sampling rules ---------------------------------------------------------------------------


def test_split_strategies_follow_class_size() -> None:
    rules = TrainingRules()
    assert (strategy_of(5000, rules), training_size(5000, rules)) == (1, 1250)
    assert (strategy_of(4000, rules), training_size(4000, rules)) == (1, 1000)
    assert (strategy_of(2000, rules), training_size(2000, rules)) == (2, 1000)
    assert (strategy_of(1333, rules), training_size(1333, rules)) == (2, 1000)
    assert (strategy_of(1332, rules), training_size(1332, rules)) == (3, 999)
    assert (strategy_of(40, rules), training_size(40, rules)) == (3, 30)


def test_split_is_per_class_and_reproducible() -> None:
    labels = np.repeat([1, 2, 3], [5000, 2000, 100])
    rules = TrainingRules()
    train = split_calibration(labels, rules)
    assert [int(train[labels == k].sum()) for k in (1, 2, 3)] == [1250, 1000, 75]
    assert np.array_equal(train, split_calibration(labels, rules))
    assert not np.array_equal(train, split_calibration(labels, TrainingRules(seed=7)))


def test_smote_raises_small_classes_to_the_target_only() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 2, 3, 4], [60, 20, 3, 1]).astype(np.int64)
    features = rng.normal(size=(len(labels), 4)) + labels[:, np.newaxis]
    rows, targets = smote(features, labels, TrainingRules(smote_target=50, smote_k=5), seed=1)
    counts = dict(zip(*np.unique(targets, return_counts=True), strict=True))
    # 60 > 50: untouched; 20 and 3 (k capped at 2) and 1 (repeated) reach exactly 50
    assert counts == {1: 60, 2: 50, 3: 50, 4: 50}
    assert np.array_equal(rows[: len(labels)], features)
    synthetic = rows[len(labels) :][targets[len(labels) :] == 3]
    members = features[labels == 3]
    # SMOTE rows lie between members of their own class
    assert (synthetic.min(axis=0) >= members.min(axis=0) - 1e-9).all()
    assert (synthetic.max(axis=0) <= members.max(axis=0) + 1e-9).all()


# -- features ----------------------------------------------------------------------------------


def test_interpolation_between_nearest_valid_acquisitions() -> None:
    days = np.array([0, 10, 20, 30], dtype=np.int64)
    values = np.array([[0.0, np.nan, 1.0, np.nan], [np.nan, 2.0, np.nan, np.nan],
                       [np.nan] * 4])  # fmt: skip
    grid = np.array([0, 5, 15, 25, 30], dtype=np.int64)
    out = interpolate_to_grid(values, days, grid)
    assert np.allclose(out[0], [0.0, 0.25, 0.75, 1.0, 1.0])  # after the last: last value
    assert np.allclose(out[1], [2.0] * 5)  # one acquisition: that value everywhere
    assert np.isnan(out[2]).all()


def test_gaps_filled_from_the_nearest_period() -> None:
    values = np.array([[np.nan, 1.0, np.nan, np.nan, 4.0, np.nan]])
    assert np.allclose(fill_nearest(values), [[1.0, 1.0, 1.0, 4.0, 4.0, 4.0]])


def test_feature_columns_by_mode(features_both: FeatureTable, world: World) -> None:
    table, rows = world
    columns = list(features_both.features.columns)
    assert "XX_2024_03_01_s2_mean_ndvi" in columns
    assert "XX_2024_03_11_s2_dev_b11" in columns  # 10-day grid
    assert any(c.endswith("_s2_mean_b5") for c in columns)  # red-edge in both mode
    assert any(c.startswith("XX_W2024") and c.endswith("_ASC_VV_BCK_MEAN") for c in columns)
    assert any(c.endswith("_DESC_RATIO_BCK_MEAN") for c in columns)
    assert any(c.startswith("XX_M202403_ASC_VH_BCK_CVAR_MEAN") for c in columns)
    assert "XX_M202404_VV_COHE_MIN_MEAN" in columns
    assert "XX_S_VH_COHE_DEV" in columns
    assert features_both.complete.all()
    assert not features_both.features.isna().any().any()
    s2 = build_features(rows, table["NewID"].tolist(), FeatureSettings(mode="s2-only"))
    assert not any("_s2_mean_b5" in c or "BCK" in c for c in s2.features.columns)
    s1 = build_features(rows, table["NewID"].tolist(), FeatureSettings(mode="s1-only"))
    assert not any("_s2_" in c for c in s1.features.columns)


def test_until_uses_only_earlier_acquisitions(world: World) -> None:
    table, rows = world
    until = date(2024, 4, 15)
    early = build_features(rows, table["NewID"].tolist(), FeatureSettings(until=until))
    assert early.last_acquisition is not None
    assert early.last_acquisition <= until
    assert max(early.optical_dates) <= until
    later = [c for c in early.features.columns if c.startswith(("XX_2024_05", "XX_W202420"))]
    assert later == []
    with pytest.raises(InputError, match="before the first acquisition"):
        build_features(rows, [1], FeatureSettings(until=date(2024, 1, 1)))


def test_bad_sources_are_named(world: World) -> None:
    _table, rows = world
    with pytest.raises(InputError, match="empty"):
        build_features(rows.iloc[:0], [1], FeatureSettings())
    no_red_edge = rows[~rows["signal"].isin(["B05", "B06"])]
    with pytest.raises(InputError, match=r"lacks the signals B05, B06 needed in mode both"):
        build_features(no_red_edge, [1], FeatureSettings(mode="both"))
    # s2-only does not need them
    build_features(no_red_edge, [1], FeatureSettings(mode="s2-only"))
    without_coherence = rows[~rows["signal"].str.startswith("COHE")]
    table = build_features(without_coherence, [1], FeatureSettings(mode="s1-only"))
    assert any("coherence" in note for note in table.notes)


# -- classification ----------------------------------------------------------------------------


def test_conformity_classes_and_reasons(world: World) -> None:
    table, _rows = world
    extra = parcels({1: 7}, first_id=1000)
    extra.loc[0, "GeomValid"] = False
    extra.loc[1, "Overlap"] = True
    extra.loc[2, "ori_crop"] = 999  # lc 5
    extra.loc[3, "S2Pix"] = 2
    extra.loc[4, "S1Pix"] = 0
    extra.loc[5, "ori_crop"] = 12345  # not in the LUT
    # parcel 1006 has no observation at all
    everything = pd.concat([table, extra], ignore_index=True)
    wrong = everything.index[everything["ori_crop"] == 311][0]
    everything.loc[wrong, "ori_crop"] = 201  # a wheat parcel declared as maize
    observed = series(pd.concat([table, extra.iloc[:6]], ignore_index=True))
    result = classify_crops(observed, everything, lut(), fast())
    by_id = result.parcels.set_index("NewID")
    assert by_id.loc[1000, "Classif_r"] == "Not_classified_geometry"
    assert by_id.loc[1001, "Classif_r"] == "Not_classified_geometry"
    assert by_id.loc[1002, "Classif_r"] == "Not_classified_land_cover"
    assert by_id.loc[1003, "Classif_r"] == "Not_classified_minS2pix"
    # mode both: no S1 pixel falls back to the S2-only model instead of being left out
    assert by_id.loc[1004, "Classif_r"] == "Classified_conform"
    assert str(by_id.loc[1004, "Predicted_by"]).startswith("S2 ")
    assert by_id.loc[1005, "Classif_r"] == "Not_classified_undefined"
    assert "12345 is not in the LUT" in str(by_id.loc[1005, "Reason"])
    assert result.missing_codes == {"12345": 1}
    assert by_id.loc[1006, "Classif_r"] == "Not_classified_no_observations"
    assert "no Sentinel-2" in str(by_id.loc[1006, "Reason"])
    assert by_id["CT_pred_1"].isna()[1006]
    wrong_id = int(everything.loc[wrong, "NewID"])
    assert by_id.loc[wrong_id, "Classif_r"] == "Classified_not_conform"
    assert by_id.loc[wrong_id, "CT_pred_1"] == 1
    classified = by_id[by_id.index < 1000].drop(index=wrong_id)
    assert (classified["Classif_r"] == "Classified_conform").all()
    assert set(result.parcels["Classif_r"]) <= set(CLASSIF_VALUES)
    assert result.overall_accuracy > 0.9
    # s2-only mode does not need S1 pixels
    s2_only = classify_crops(observed, everything, lut(), fast(mode="s2-only"))
    assert s2_only.parcels.set_index("NewID").loc[1004, "Classif_r"] == "Classified_conform"
    s1_only = classify_crops(observed, everything, lut(), fast(mode="s1-only"))
    assert s1_only.parcels.set_index("NewID").loc[1004, "Classif_r"] == "Not_classified_noS1pix"


def test_a_class_with_too_few_best_parcels_is_excluded(world: World) -> None:
    table, rows = world
    small = table[table["ori_crop"] != 60].copy()
    few_grass = table[table["ori_crop"] == 60].head(4)
    everything = pd.concat([small, few_grass], ignore_index=True)
    result = classify_crops(rows, everything, lut(), fast())
    assert [(e.class_id, e.best_parcels) for e in result.excluded_classes] == [(3, 4)]
    assert "fewer than pa_min 5" in result.excluded_classes[0].reason
    grass = result.parcels[result.parcels["CTnumL4A"] == 3]
    assert (grass["Classif_r"] == "Not_classified_excluded_class").all()
    assert grass["CT_pred_1"].isin([1, 2]).all()  # still predicted, with the kept classes
    summary = result.summary.set_index("CTnumL4A")
    assert not summary.loc[3, "Classified"]
    assert summary.loc[3, "Strategy"] == 0
    assert result.classes == (1, 2)


def test_one_class_left_is_reported_not_a_crash(world: World) -> None:
    table, rows = world
    result = classify_crops(rows, table, lut(), fast(pa_min=31))
    assert result.classes == ()
    assert len(result.excluded_classes) == 3
    assert (result.parcels["Classif_r"] == "Not_classified_excluded_class").all()
    assert any("nothing to classify" in note for note in result.notes)
    assert np.isnan(result.overall_accuracy)


def test_declared_codes_missing_from_the_lut(world: World) -> None:
    table, rows = world
    unknown = table.assign(ori_crop=pd.Series([4242] * len(table), dtype="Int64"))
    with pytest.raises(InputError, match="no declared crop code of the parcels is in the crop"):
        classify_crops(rows, unknown, lut(), fast())


def test_cross_prediction_never_uses_a_model_that_saw_the_parcel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    labels = np.repeat([1, 2, 3], 20).astype(np.int64)
    ids = np.arange(len(labels), dtype=np.float64)
    features = np.column_stack([ids, labels + rng.normal(0, 0.3, len(labels))])
    trained: list[set[int]] = []
    real_train = training_module.train

    def spy(
        rows: np.ndarray[Any, Any], targets: np.ndarray[Any, Any], rules: TrainingRules, seed: int
    ) -> training_module.TrainedModel:
        trained.append({int(i) for i in rows[:, 0]})
        return real_train(rows, targets, rules, seed)

    monkeypatch.setattr(training_module, "train", spy)
    rules = TrainingRules(num_trees=10, smote_target=10, folds=4, jobs=1)
    own, other = train_and_predict(features, labels, features[:5], rules)
    folds = fold_of(labels, 4, rules.seed)
    assert trained[0] == set(range(len(labels)))  # the full model saw everything
    for fold in range(4):
        held = set(np.flatnonzero(folds == fold).tolist())
        assert held
        assert not held & trained[fold + 1]
        assert set(own.predicted_by[list(held)]) == {f"fold {fold + 1}"}
    assert set(other.predicted_by) == {"full"}
    without = train_and_predict(
        features, labels, features[:5], TrainingRules(num_trees=10, smote_target=10,
                                                      cross_prediction=False, jobs=1)
    )  # fmt: skip
    assert set(without[0].predicted_by) == {"full"}


def test_training_parcels_are_cross_predicted(features_both: FeatureTable, world: World) -> None:
    table, _rows = world
    result = classify_features(features_both, table, lut(), fast())
    frame = result.parcels
    calibration = frame["Sample"] == "calibration"
    assert calibration.sum() == 3 * round(0.75 * 30)
    assert frame.loc[calibration, "Predicted_by"].str.startswith("fold ").all()
    assert (frame.loc[~calibration, "Predicted_by"] == "full").all()
    assert (frame.loc[~calibration, "Sample"] == "validation").all()


def test_reproducible_with_the_seed(features_both: FeatureTable, world: World) -> None:
    table, _rows = world
    first = classify_features(features_both, table, lut(), fast())
    again = classify_features(features_both, table, lut(), fast())
    pd.testing.assert_frame_equal(first.parcels, again.parcels)
    other = classify_features(features_both, table, lut(), fast(seed=1))
    assert not first.parcels["Sample"].equals(other.parcels["Sample"])


def test_lightgbm_classifier(features_both: FeatureTable, world: World) -> None:
    table, _rows = world
    parameters = fast(classifier="lightgbm")
    result = classify_features(features_both, table, lut(), parameters)
    assert result.overall_accuracy > 0.9
    assert result.parcels["CT_conf_1"].between(0, 1).all()
    assert (result.parcels["CT_conf_1"] >= result.parcels["CT_conf_2"]).all()


def test_accuracy_tables(features_both: FeatureTable, world: World) -> None:
    table, _rows = world
    result = classify_features(features_both, table, lut(), fast())
    assert list(result.confusion.columns) == ["1", "2", "3", "user_accuracy"]
    assert list(result.confusion.index) == ["1", "2", "3", "producer_accuracy"]
    assert result.confusion.loc["producer_accuracy", "user_accuracy"] == result.overall_accuracy
    overall = result.accuracy.iloc[0]
    assert overall["CTnumL4A"] == "Overall"
    assert overall["Kappa"] == result.kappa
    assert list(result.accuracy["CTnumL4A"][1:]) == ["All declared", "1", "2", "3"]
    assert {"Precision", "Recall", "F1", "Support"} <= set(result.accuracy.columns)
    assert list(result.confusion_user.columns[:3]) == ["CTnumL4A", "CTL4A", "user_accuracy"]
    assert "Conf3_pct" in result.confusion_producer.columns
    assert list(result.summary.columns[:8]) == [
        "CTnumL4A", "CTL4A", "Count", "Countratio", "Area", "Arearatio", "Classified", "Strategy",
    ]  # fmt: skip
    assert result.summary["Countratio"].sum() == pytest.approx(1.0, abs=1e-5)
    assert (result.summary["Strategy"] == 3).all()


# -- honest metrics, defaults, fallback, cost (issue 17) -----------------------------------------


def test_macro_figures_count_every_class() -> None:
    from capmon.processors.l4a.classify import _macro, _per_class

    # rows: predicted, columns: reference; class 3 (2 parcels) is never predicted
    matrix = np.array([[5, 0, 1], [0, 5, 1], [0, 0, 0]])
    precision, recall, f1, _support = _per_class(matrix)
    assert precision[2] == 0.0
    assert recall[2] == 0.0
    assert f1[2] == 0.0
    macro_precision, macro_recall, macro_f1 = _macro(matrix)
    assert macro_f1 == pytest.approx((2 * (2 * 5 / 6 * 1) / (5 / 6 + 1) + 0.0) / 3)
    assert macro_precision == pytest.approx((5 / 6 + 5 / 6 + 0.0) / 3)
    assert macro_recall == pytest.approx(2 / 3)


def test_accuracy_rests_on_every_out_of_fold_parcel(
    features_both: FeatureTable, world: World
) -> None:
    table, _rows = world
    result = classify_features(features_both, table, lut(), fast())
    assert result.evaluated == 90  # 67 cross-predicted training parcels + 23 validation ones
    overall = result.accuracy.iloc[0]
    assert overall["Support"] == 90
    assert overall["F1"] == pytest.approx(result.macro_f1)
    assert result.accuracy_warning is None
    assert result.counts["evaluated"] == 90


def test_accuracy_on_a_handful_of_parcels_warns(world: World) -> None:
    from capmon.processors.l4a.processor import _summary

    table, rows = world
    few = table.groupby("ori_crop").head(4)
    result = classify_crops(rows, few, lut(), fast(pa_min=3, cross_prediction=False))
    assert result.evaluated == 3  # one validation parcel per class
    assert result.accuracy_warning is not None
    assert "rests on 3 parcel(s)" in result.accuracy_warning
    assert result.accuracy_warning in result.notes
    assert "WARNING" in str(result.accuracy.iloc[0]["Note"])
    assert "WARNING" in _summary(result)
    assert "3 parcels" in _summary(result)


def test_excluded_classes_are_listed_and_counted_as_errors(world: World) -> None:
    table, rows = world
    small = table[table["ori_crop"] != 60]
    few_grass = table[table["ori_crop"] == 60].head(4)
    result = classify_crops(rows, pd.concat([small, few_grass], ignore_index=True), lut(), fast())
    rows_by = result.accuracy.set_index("CTnumL4A")
    correct = result.overall_accuracy * result.evaluated
    assert result.overall_accuracy_all_declared == pytest.approx(correct / (result.evaluated + 4))
    assert rows_by.loc["All declared", "Accuracy"] == result.overall_accuracy_all_declared
    assert rows_by.loc["All declared", "Support"] == result.evaluated + 4
    assert rows_by.loc["3", "Support"] == 4
    assert rows_by.loc["3", "Recall"] == 0.0
    assert "excluded" in str(rows_by.loc["3", "Note"])


def test_defaults_suit_small_classes_and_busy_machines() -> None:
    defaults = L4AParameters()
    assert defaults.pa_min == 10
    assert defaults.balance == "weights"
    assert training_module.threads(3) == 3
    assert training_module._model(TrainingRules(jobs=-1), 0, None).n_jobs >= 1
    assert training_module.class_weights(np.array([1, 1, 2]), defaults.balance) == {1: 0.75, 2: 1.5}


def test_threads_follow_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert training_module.threads(0) == 2
    assert training_module.threads(-1) == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 3.0, 3.0))
    assert training_module.threads(0) == 1


def test_class_weights_instead_of_smote(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 2], [30, 6]).astype(np.int64)
    features = np.column_stack([labels + rng.normal(0, 0.3, len(labels)), np.zeros(len(labels))])
    calls: list[int] = []
    real_smote = training_module.smote

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_smote(*args, **kwargs)

    monkeypatch.setattr(training_module, "smote", spy)
    weighted = training_module.train(features, labels, TrainingRules(num_trees=10, jobs=1), 0)
    assert not calls
    assert weighted.model.n_features_in_ == 1  # the constant column is dropped
    assert list(weighted.columns) == [0]
    assert weighted.probabilities(features, np.array([1, 2])).shape == (36, 2)
    sen4cap = TrainingRules(num_trees=10, jobs=1, balance="smote", smote_target=40)
    training_module.train(features, labels, sen4cap, 0)
    assert calls


def test_parcels_without_sentinel1_fall_back_to_sentinel2(world: World) -> None:
    table, rows = world
    no_s1 = [3, 33, 63, 4]  # one parcel of each class, plus another wheat one
    radar = rows["signal"].isin(["AMP_VV", "AMP_VH", "COHE_VV", "COHE_VH"])
    observed = rows[~(radar & rows["parcel_id"].isin(no_s1))]
    result = classify_crops(observed, table, lut(), fast())
    by_id = result.parcels.set_index("NewID")
    assert by_id.loc[no_s1, "Classif_r"].str.startswith("Classified").all()
    assert by_id.loc[no_s1, "Predicted_by"].str.startswith("S2 ").all()
    others = by_id.drop(index=no_s1)
    assert not others["Predicted_by"].str.startswith("S2").any()
    assert result.counts["s2_only"] == 4
    assert result.evaluated == 90  # none is left out of the accuracy either
    assert any("without Sentinel-1" in note for note in result.notes)


def test_a_markers_database_of_one_sensor_is_classified_from_it_in_mode_both(world: World) -> None:
    table, rows = world
    radar = rows["signal"].isin(["AMP_VV", "AMP_VH", "COHE_VV", "COHE_VH"])
    optical_only = classify_crops(rows[~radar], table, lut(), fast())
    assert optical_only.counts["predicted"] == len(table)
    assert optical_only.overall_accuracy > 0.9
    assert any("no Sentinel-1 signal: classified in mode s2-only" in n for n in optical_only.notes)
    # no fallback model: the one model is the Sentinel-2 one
    assert optical_only.counts["s2_only"] == 0
    radar_only = classify_crops(rows[radar], table, lut(), fast())
    assert radar_only.counts["predicted"] == len(table)
    assert any("no Sentinel-2 signal: classified in mode s1-only" in n for n in radar_only.notes)
    # one of the two backscatter signals is not enough to drop the sensor: still an error
    half = rows[~rows["signal"].isin(["AMP_VH"])]
    with pytest.raises(InputError, match="lacks the signals AMP_VH needed in mode both"):
        classify_crops(half, table, lut(), fast())
    # asked for explicitly, a mode is kept even when the MDB lacks its sensor
    with pytest.raises(InputError, match="needed in mode s1-only"):
        classify_crops(rows[~radar], table, lut(), fast(mode="s1-only"))


# -- issue 17: calendar periods, percentiles, temporal descriptors, S1-only fallback -----------


def _ndvi_rows(dates: list[date], values: list[float], **statistics: list[float]) -> pd.DataFrame:
    """NDVI rows of parcel 1 (and of parcel 2, the same plus 0.1) at ``dates``."""
    frames = []
    for parcel_id, shift in ((1, 0.0), (2, 0.1)):
        frame = pd.DataFrame(
            {"parcel_id": parcel_id, "signal": "NDVI", "date": dates,
             "orbit_direction": None, "mean": np.asarray(values) + shift, "stdev": 0.05}
        )  # fmt: skip
        for name, column in statistics.items():
            frame[name] = np.asarray(column) + shift
        frames.append(frame)
    return pd.DataFrame(pd.concat(frames, ignore_index=True))


def _ndvi_features(rows: pd.DataFrame, **settings: Any) -> pd.DataFrame:
    table = build_features(rows, [1, 2], FeatureSettings(mode="s2-only", **settings))
    return table.features.filter(regex="_s2_.*_ndvi$")


def _only_ndvi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FeatureSettings, "optical_signals", property(lambda _self: ("NDVI",)))


def test_periods_are_calendar_dekads_not_a_grid_from_the_first_acquisition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _only_ndvi(monkeypatch)
    dates = [date(2024, 3, 5), date(2024, 3, 9), date(2024, 3, 27), date(2024, 4, 14)]
    features = _ndvi_features(_ndvi_rows(dates, [0.2, 0.4, 0.5, 0.7]))
    means = features.filter(like="_s2_mean_").loc[1]
    # dekads start on the 1st, 11th and 21st whatever the first acquisition's day
    assert list(means.index) == [f"XX_2024_{d}_s2_mean_ndvi" for d in
                                 ("03_01", "03_11", "03_21", "04_01", "04_11")]  # fmt: skip
    assert means["XX_2024_03_01_s2_mean_ndvi"] == pytest.approx(0.3)  # mean of 5 and 9 March
    assert means["XX_2024_03_21_s2_mean_ndvi"] == pytest.approx(0.5)
    assert means["XX_2024_04_11_s2_mean_ndvi"] == pytest.approx(0.7)
    # an empty dekad: linear between the middles of its neighbours (6, 16 and 26.5 March)
    assert means["XX_2024_03_11_s2_mean_ndvi"] == pytest.approx(0.3 + 0.2 * 10 / 20.5)
    assert means["XX_2024_04_01_s2_mean_ndvi"] == pytest.approx(0.6, abs=0.01)


def test_monthly_composites_keep_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    _only_ndvi(monkeypatch)
    dates = [date(2024, m, 1) for m in (3, 4, 6, 7)]
    rows = _ndvi_rows(dates, [0.2, 0.5, 0.8, 0.4])
    means = _ndvi_features(rows).filter(like="_s2_mean_").loc[1]
    assert list(means.index) == [f"XX_2024_0{m}_01_s2_mean_ndvi" for m in (3, 4, 5, 6, 7)]
    assert means.to_numpy() == pytest.approx([0.2, 0.5, 0.65, 0.8, 0.4], abs=1e-6)
    dekads = _ndvi_features(rows, period="dekad").filter(like="_s2_mean_")
    assert dekads.shape[1] == 13  # forced dekads: 1 March to 1 July


def test_the_mdb_percentiles_are_features_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    _only_ndvi(monkeypatch)
    dates = [date(2024, m, 1) for m in (3, 4, 5)]
    plain = _ndvi_features(_ndvi_rows(dates, [0.2, 0.5, 0.8]))
    assert not any("_p25_" in c or "_median_" in c or "_p75_" in c for c in plain.columns)
    rows = _ndvi_rows(dates, [0.2, 0.5, 0.8], p25=[0.1, 0.4, 0.7], median=[0.25, 0.5, 0.8],
                      p75=[0.3, 0.6, 0.9])  # fmt: skip
    rows.loc[(rows["parcel_id"] == 2) & (rows["date"] == date(2024, 4, 1)), "p25"] = np.nan
    features = _ndvi_features(rows)
    assert features.loc[1, "XX_2024_04_01_s2_p25_ndvi"] == pytest.approx(0.4)
    assert features.loc[1, "XX_2024_05_01_s2_p75_ndvi"] == pytest.approx(0.9)
    assert features.loc[1, "XX_2024_03_01_s2_median_ndvi"] == pytest.approx(0.25)
    assert features.loc[2, "XX_2024_04_01_s2_p25_ndvi"] == pytest.approx(0.6)  # its mean


def test_temporal_descriptors_of_a_season_curve_and_a_gap() -> None:
    days = np.arange(0.0, 250.0, 10.0)
    curve = 0.15 + 0.7 * np.exp(-(((days - 100.0) / 25.0) ** 2))
    out = temporal_descriptors(curve[np.newaxis, :], days)
    assert out["max_day"][0, 0] == 100.0
    half = 25.0 * np.sqrt(np.log(2.0))  # the half-amplitude crossings of this curve
    assert out["greenup_day"][0, 0] == pytest.approx(100.0 - half, abs=3.0)
    assert out["senescence_day"][0, 0] == pytest.approx(100.0 + half, abs=3.0)
    assert out["rise_day"][0, 0] < 100.0 < out["fall_day"][0, 0]
    assert out["rise"][0, 0] > 0 > out["fall"][0, 0]
    assert out["min"][0, 0] == pytest.approx(0.15, abs=0.01)
    # the peak acquisition missing (linearly filled): the descriptors move little
    gappy = curve.copy()
    gappy[10] = (curve[9] + curve[11]) / 2
    moved = temporal_descriptors(gappy[np.newaxis, :], days)
    assert moved["max_day"][0, 0] == 100.0
    assert abs(moved["greenup_day"][0, 0] - out["greenup_day"][0, 0]) < 2.0
    assert abs(moved["integral"][0, 0] / out["integral"][0, 0] - 1.0) < 0.05
    assert np.isnan(temporal_descriptors(np.array([[np.nan, 1.0]]), [0, 10])["max"]).all()


def test_feature_table_has_descriptors_and_calendar_periods(
    features_both: FeatureTable, world: World
) -> None:
    columns = set(features_both.features.columns)
    assert {"XX_S_s2_ndvi_max_day", "XX_S_s2_ndwi_greenup_day", "XX_S_ASC_VH_integral",
            "XX_S_DESC_RATIO_fall"} <= columns  # fmt: skip
    peaks = features_both.features["XX_S_s2_ndvi_max_day"]
    table, rows = world
    declared = table.set_index("NewID")["ori_crop"].reindex(peaks.index)
    # winter wheat peaks 40 days after 1 March, maize 110: day of year 100 and 170
    assert peaks[declared == 311].median() == pytest.approx(60 + 40, abs=10)
    assert peaks[declared == 201].median() == pytest.approx(60 + 110, abs=10)
    plain = build_features(rows, table["NewID"].tolist(), FeatureSettings(descriptors=False))
    assert not any(c.startswith("XX_S_") and "COHE" not in c for c in plain.features.columns)


def test_parcels_without_sentinel2_fall_back_to_sentinel1(world: World) -> None:
    table, rows = world
    no_s2 = [5, 35, 65]  # one parcel of each class
    optical = ~rows["signal"].isin(["AMP_VV", "AMP_VH", "COHE_VV", "COHE_VH"])
    observed = rows[~(optical & rows["parcel_id"].isin(no_s2))]
    result = classify_crops(observed, table, lut(), fast())
    by_id = result.parcels.set_index("NewID")
    assert by_id.loc[no_s2, "Classif_r"].str.startswith("Classified").all()
    assert by_id.loc[no_s2, "Predicted_by"].str.startswith("S1 ").all()
    assert not by_id.drop(index=no_s2)["Predicted_by"].str.startswith("S").any()
    assert result.counts["s1_only"] == 3
    assert result.evaluated == 90
    assert any("without Sentinel-2" in note for note in result.notes)
    # no observation at all: left out, named
    nothing = observed[observed["parcel_id"] != 5]
    left = classify_crops(nothing, table, lut(), fast()).parcels.set_index("NewID")
    assert left.loc[5, "Classif_r"] == "Not_classified_no_observations"


def test_lightgbm_settings_and_no_balance_reach_the_model() -> None:
    rules = TrainingRules(
        classifier="lightgbm", num_leaves=7, learning_rate=0.1, feature_fraction=0.5,
        min_node_size=4, balance="none", jobs=1,
    )  # fmt: skip
    settings = training_module._model(rules, 0, None).get_params()
    assert (settings["num_leaves"], settings["learning_rate"]) == (7, 0.1)
    assert (settings["colsample_bytree"], settings["min_child_samples"]) == (0.5, 4)
    assert settings["class_weight"] is None
    labels = np.repeat([1, 2, 3], [60, 30, 15]).astype(np.int64)
    # 105 parcels, 3 classes: n / (k n_c) = 35/60, 35/30, 35/15
    inverse = {1: 35 / 60, 2: 35 / 30, 3: 35 / 15}
    assert training_module.class_weights(labels, "weights") == pytest.approx(inverse)
    assert training_module.class_weights(labels, "sqrt") == pytest.approx(
        {c: w**0.5 for c, w in inverse.items()}
    )
    assert training_module.class_weights(labels, "none") is None
    assert training_module.class_weights(labels, "smote") is None
    features = np.column_stack([labels + np.linspace(0, 0.5, len(labels)), labels * 2.0])
    for balance in ("weights", "sqrt", "none"):
        fitted = training_module.train(
            features, labels, TrainingRules(num_trees=5, balance=balance, jobs=1), 0
        )
        expected = training_module.class_weights(labels, balance)
        assert fitted.model.get_params()["class_weight"] == expected
    with pytest.raises(InputError, match="feature_fraction"):
        TrainingRules(feature_fraction=0.0)


def test_extratrees_classifier(features_both: FeatureTable, world: World) -> None:
    table, _rows = world
    result = classify_features(features_both, table, lut(), fast(classifier="extratrees"))
    assert result.overall_accuracy > 0.9
    assert result.parcels["CT_conf_1"].between(0, 1).all()


def test_each_classifier_has_its_own_smallest_node_unless_given() -> None:
    """Sen4CAP's min.node.size 10 for its forest and LightGBM, fully grown extra trees; a
    given min_node_size reaches every classifier."""
    extra = training_module._model(TrainingRules(classifier="extratrees", jobs=1), 0, None)
    assert type(extra).__name__ == "ExtraTreesClassifier"
    assert (extra.get_params()["min_samples_split"], extra.get_params()["bootstrap"]) == (2, False)
    forest = training_module._model(TrainingRules(jobs=1), 0, None).get_params()
    assert forest["min_samples_split"] == 10
    boosted = training_module._model(TrainingRules(classifier="lightgbm", jobs=1), 0, None)
    assert boosted.get_params()["min_child_samples"] == 10
    given = TrainingRules(classifier="extratrees", min_node_size=6, jobs=1)
    assert training_module._model(given, 0, None).get_params()["min_samples_split"] == 6
    with pytest.raises(InputError, match="min_node_size"):
        TrainingRules(min_node_size=1)
    with pytest.raises(ValueError, match="min_node_size"):
        L4AParameters(min_node_size=1)
    assert L4AParameters(classifier="extratrees").training_rules().min_node_size is None


# -- parcel attributes (terrain, weather) as features ------------------------------------------


def _same_series_world() -> World:
    """Three classes whose series are all the same (one wheat parcel's), so only an attribute
    can tell them apart: each class has its own elevation band."""
    table = parcels({1: 30, 2: 30, 3: 30})
    one = series(table.iloc[:1])
    rows = pd.concat([one.assign(parcel_id=int(i)) for i in table["NewID"]], ignore_index=True)
    declared = table["ori_crop"].astype("int64").map({311: 0.0, 201: 1.0, 60: 2.0})
    rng = np.random.default_rng(3)
    table["elevation"] = 100.0 + 400.0 * declared.to_numpy() + rng.normal(0, 20, len(table))
    table["slope"] = rng.uniform(0, 5, len(table))
    return table, rows


def test_parcel_attributes_are_features_of_every_model() -> None:
    table, rows = _same_series_world()
    with pytest.raises(InputError, match="every L4A feature is constant"):
        classify_crops(rows, table, lut(), fast())  # the series alone tell nothing
    seen = classify_crops(rows, table, lut(), fast(attributes=["elevation", "slope"]))
    assert seen.overall_accuracy > 0.95
    assert {"XX_A_elevation", "XX_A_slope"} <= set(seen.features.features.columns)
    assert seen.features.groups["attributes"] == 2
    # parcels without Sentinel-1 are classified by the S2 model, which has the attributes too
    no_s1 = [3, 33, 63]
    radar = rows["signal"].isin(["AMP_VV", "AMP_VH", "COHE_VV", "COHE_VH"])
    observed = rows[~(radar & rows["parcel_id"].isin(no_s1))]
    fallback = classify_crops(observed, table, lut(), fast(attributes=["elevation"]))
    by_id = fallback.parcels.set_index("NewID")
    assert by_id.loc[no_s1, "Predicted_by"].str.startswith("S2 ").all()
    assert (by_id.loc[no_s1, "CT_pred_1"] == by_id.loc[no_s1, "CT_decl"]).all()
    assert fallback.counts["s2_only"] == 3


def test_parcel_attributes_bad_input_is_named(features_both: FeatureTable, world: World) -> None:
    table, _rows = world
    with pytest.raises(ColumnError, match="lack the attribute columns elevation"):
        classify_features(features_both, table, lut(), fast(attributes=["elevation"]))
    text = table.assign(elevation=["high" if i == 7 else "12.5" for i in table["NewID"]])
    with pytest.raises(InputError, match=r"attribute 'elevation' of parcel NewID 7: 'high'"):
        classify_features(features_both, text, lut(), fast(attributes=["elevation"]))
    infinite = table.assign(elevation=np.where(table["NewID"] == 9, np.inf, 1.0))
    with pytest.raises(InputError, match="NewID 9: inf is not a finite number"):
        classify_features(features_both, infinite, lut(), fast(attributes=["elevation"]))
    empty = table.assign(elevation=np.nan)
    with pytest.raises(InputError, match="'elevation': no parcel has a value"):
        classify_features(features_both, empty, lut(), fast(attributes=["elevation"]))
    with pytest.raises(ValueError, match="empty column name"):
        fast(attributes=["elevation", " "])
    assert fast(attributes=["slope", " slope", "elevation"]).attributes == ["slope", "elevation"]


def test_missing_attribute_values_take_the_median(
    features_both: FeatureTable, world: World
) -> None:
    table, _rows = world
    gappy = table.assign(elevation=np.where(table["NewID"] <= 2, np.nan, table["NewID"] * 1.0))
    result = classify_features(features_both, gappy, lut(), fast(attributes=["elevation"]))
    values = result.features.features["XX_A_elevation"]
    median = float(np.median(np.arange(3, 91)))
    assert values.loc[[1, 2]].tolist() == [median, median]
    assert values.loc[50] == 50.0
    assert any("given the median: elevation (2)" in note for note in result.notes)


def test_attributes_file_joins_on_the_parcel_ids(tmp_path: Any) -> None:
    table = parcels({1: 3, 2: 3})
    csv = tmp_path / "terrain.csv"
    csv.write_text("ori_id;elevation;slope;land\nP1;100;2.5;a\nP2;;1;b\nP9;5;5;c\n")
    joined = read_attributes(csv, table)
    assert joined.names == ("elevation", "slope")  # every numeric column, not the text one
    by_id = joined.parcels.set_index("NewID")
    assert by_id.loc[1, "elevation"] == 100
    assert np.isnan(by_id.loc[2, "elevation"])
    assert np.isnan(by_id.loc[3, "slope"])
    assert joined.notes == (
        "4 parcel(s) not in the attributes file terrain.csv",
        "1 row(s) of the attributes file terrain.csv: not parcels of the run",
    )
    by_new_id = tmp_path / "by-id.parquet"
    pd.DataFrame({"NewID": [6, 5], "elevation": [1.0, 2.0]}).to_parquet(by_new_id)
    joined = read_attributes(by_new_id, table, ["elevation"])
    assert joined.parcels.set_index("NewID").loc[[5, 6], "elevation"].tolist() == [2.0, 1.0]


def test_attributes_file_errors_name_the_file_and_row(tmp_path: Any) -> None:
    table = parcels({1: 3})
    cases = {
        "twice.csv": (
            "ori_id,elevation\nP1,1\nP2,2\nP1,3\n",
            r"row 4: ori_id 'P1' is also in "
            "row 2",
        ),
        "blank.csv": ("ori_id,elevation\nP1,1\n,2\n", r"blank.csv: row 3: empty ori_id"),
        "other.csv": ("ori_id,elevation\nX1,1\n", r"none of its 1 ori_id values is a parcel"),
        "text.csv": ("ori_id,land\nP1,a\n", r"text.csv: no numeric column"),
        "empty.csv": ("ori_id,elevation\n", r"empty.csv: the attributes file has no rows"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=message):
            read_attributes(tmp_path / name, table)
    with pytest.raises(InputError, match=r"missing.csv: attributes file not found"):
        read_attributes(tmp_path / "missing.csv", table)
    (tmp_path / "terrain.xlsx").write_text("x")
    with pytest.raises(InputError, match="CSV or Parquet"):
        read_attributes(tmp_path / "terrain.xlsx", table)


def test_point_parcels_left_out_by_pixel_minimums_are_explained(
    features_both: FeatureTable, world: World
) -> None:
    table, _rows = world
    points = table["NewID"].isin([1, 31, 61])
    surveyed = table.assign(
        Area_meters=table["Area_meters"].where(~points),
        S2Pix=table["S2Pix"].where(~points, 0),
        S1Pix=table["S1Pix"].where(~points, 0),
    )
    result = classify_features(features_both, surveyed, lut(), fast())
    by_id = result.parcels.set_index("NewID")
    assert (by_id.loc[[1, 31, 61], "Classif_r"] == "Not_classified_minS2pix").all()
    assert any(
        note.startswith("3 parcel(s) given as points") and "--min-s2-pix 0" in note
        for note in result.notes
    )
    kept = classify_features(
        features_both, surveyed, lut(), fast(min_s2_pix=0, best_s2_pix=0, min_s1_pix=0)
    )
    assert (
        kept.parcels.set_index("NewID")
        .loc[[1, 31, 61], "Classif_r"]
        .str.startswith("Classified")
        .all()
    )
    assert not any("given as points" in note for note in kept.notes)
