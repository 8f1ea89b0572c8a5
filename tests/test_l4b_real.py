"""The real-data L4B benchmark (benchmarks/l4b_real.py) on one region-year of the GMD
development plots (../shared/data/mowing_gmd_dev, skipped when absent): import with the
shipped specs, run every method and the naive rule, score against the field references; the
learned method with a model trained on the *other* region (leave one region out)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from tests.benchmark_scripts import load_benchmark


def test_real_plots_of_one_region_year_are_scored(shared_data: Path, tmp_path: Path) -> None:
    data = shared_data / "mowing_gmd_dev"
    bench = load_benchmark("l4b_real")
    models = bench.train_models(data, ["LR"], [2021, 2022, 2023], tmp_path, tmp_path / "models")
    run = bench.run_region_year(data, "NB", 2022, tmp_path, models)
    checks = gpd.read_file(data / "GMI_Long_LR_NB.gpkg")
    checks = checks[(checks["id"] == "NB") & (checks["year"] == 2022)]
    exported = set(run.parcels["Ori_id"])
    cuts = checks[(checks["type"] == "k") & checks["PLOTID"].isin(exported)]
    assert len(run.parcels) == 46  # every plot of the export is run
    rows = {}
    for method in bench.METHODS:
        for sensors in bench.SENSOR_SETS:
            if (method, sensors) in run.events:  # --s1-evidence runs with S1 only
                rows[(method, sensors)] = bench.pooled_scores([run], method, sensors)
    assert ("capmon --s1-evidence", "S1_S2") in rows
    naive = rows[("naive", "S2")]
    same = rows[("naive", "S1_S2")]  # the naive rule reads NDVI only
    assert (naive["detected_events"], naive["matched"]) == (
        same["detected_events"],
        same["matched"],
    )
    for figures in rows.values():
        # scored: the plots the field checks list that year (k or n rows), their k dates
        assert figures["parcels"] == len(set(checks["PLOTID"]) & exported)
        assert figures["reference_events"] == len(cuts)
        assert 0 <= figures["matched"] <= min(figures["detected_events"], len(cuts))
    # the pipeline (import, look-back, detection, id map, matching) works on real series:
    # each S2 method finds most cuts within [-3, +20] days
    for method in ("naive", "sen4cap", "capmon"):
        assert rows[(method, "S2")]["recall"] >= 0.6, (method, rows[(method, "S2")])
    # the learned method, trained on the other region only, beats the naive rule on plots,
    # a year and a region it never saw (S2 clearly; S1 features cost a little on NB)
    capmon = rows[("capmon", "S2")]
    assert capmon["f1"] >= naive["f1"] + 0.05, (capmon, naive)
    assert capmon["precision"] >= 0.7, capmon
    both = rows[("capmon", "S1_S2")]
    # by default S1 evidence is not used: the S2 model scores, the same events as S2 only
    assert (both["detected_events"], both["matched"]) == (
        capmon["detected_events"],
        capmon["matched"],
    )
    fused = rows[("capmon --s1-evidence", "S1_S2")]
    assert fused["f1"] > naive["f1"], (fused, naive)
    assert fused["precision"] > naive["precision"] + 0.1, (fused, naive)
    table = bench.table([{"region": "NB", "sensors": s, "method": m, **f}
                         for (m, s), f in rows.items()])  # fmt: skip
    assert table.count("\n") == 1 + len(rows)
    assert isinstance(run.reference, pd.DataFrame)
