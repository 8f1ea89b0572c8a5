"""L4A end to end on real parcels: WorldCereal Flanders 2021 (100 LPIS samples, monthly S2 and
S1 composites), imported with ``capmon.mdb.imports`` and the ``worldcereal-month`` spec.

No quality threshold: these tests check that the pipeline runs on real, gappy data, that every
parcel of a classified class gets an out-of-fold prediction and that the metrics count every
class. The figures are measured by ``benchmarks/l4a.py --real`` (docs/l4a.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capmon
from capmon.mdb.imports import import_statistics, load_spec, parcel_id_map
from capmon.mdb.query import MarkersDatabase
from capmon.processors.l4a import L4AParameters, classify_crops


def _inputs(
    shared_data: Path, tmp_path: Path
) -> tuple[MarkersDatabase, pd.DataFrame, pd.DataFrame]:
    source = shared_data / "worldcereal_dev" / "2021_BEL_flanders_month.parquet"
    if not source.is_file():
        pytest.skip(f"{source} is not present")
    import_statistics([source], tmp_path / "mdb", load_spec("worldcereal-month"))
    ids = parcel_id_map(tmp_path / "mdb")
    assert ids is not None
    raw = pd.read_parquet(source, columns=["sample_id", "ewoc_code", "S1-SIGMA0-VV"])
    labels = raw.groupby("sample_id")["ewoc_code"].first()
    s1 = (raw["S1-SIGMA0-VV"] != 65535).groupby(raw["sample_id"]).sum()
    parcels = pd.DataFrame(
        {
            "NewID": [ids[str(s)] for s in labels.index],
            "ori_crop": labels.astype("int64").to_numpy(),
            "GeomValid": True,
            "Duplic": False,
            "Overlap": False,
            "Area_meters": 10_000.0,
            "S2Pix": 100,  # composites: no pixel count, every parcel counts as observed
            "S1Pix": s1.reindex(labels.index).to_numpy(np.int64),
        }
    )
    codes = sorted(labels.unique())
    lut = pd.DataFrame(
        {
            "ori_crop": codes,
            "lc": 1,
            "ctnuml4a": np.arange(1, len(codes) + 1),
            "ctl4a": [str(c) for c in codes],
        }
    )
    return capmon.open_mdb(tmp_path / "mdb"), parcels, lut


def test_flanders_out_of_fold_predictions_and_honest_metrics(
    shared_data: Path, tmp_path: Path
) -> None:
    mdb, parcels, lut = _inputs(shared_data, tmp_path)
    parameters = L4AParameters(num_trees=50, sample_ratio_l=1.0, jobs=1)
    result = classify_crops(mdb, parcels, lut, parameters)
    sizes = parcels["ori_crop"].value_counts()
    big = set(sizes[sizes >= 10].index)
    assert len(big) == 4
    assert len(result.classes) == 4  # pa_min 10 keeps every class of >= 10
    frame = result.parcels
    in_big = frame["ori_crop"].isin(big).to_numpy()
    # every parcel of a classified class: predicted by a fold model that never saw it
    assert frame.loc[in_big, "Predicted_by"].str.contains("fold").all()
    assert frame.loc[in_big, "CT_pred_1"].notna().all()
    assert result.evaluated == int(in_big.sum()) == 82
    # the other 18 parcels, of 12 small classes, are predicted, listed and counted as errors
    assert frame.loc[~in_big, "CT_pred_1"].notna().all()
    assert len(result.excluded_classes) == 12
    table = result.accuracy.set_index("CTnumL4A")
    assert table.loc["All declared", "Support"] == 100
    correct = round(result.overall_accuracy * 82)
    assert result.overall_accuracy_all_declared == pytest.approx(correct / 100)
    per_class = table.loc[[str(c) for c in result.classes], "F1"].to_numpy(np.float64)
    assert not np.isnan(per_class).any()
    assert result.macro_f1 == pytest.approx(per_class.mean())
    assert result.accuracy_warning is None  # 82 parcels, >= 12 per class


def test_flanders_terrain_and_weather_attributes_reach_the_model(
    shared_data: Path, tmp_path: Path
) -> None:
    """The samples' DEM elevation and slope and AgERA5 weather, as parcel attributes."""
    mdb, parcels, lut = _inputs(shared_data, tmp_path)
    source = shared_data / "worldcereal_dev" / "2021_BEL_flanders_month.parquet"
    raw = pd.read_parquet(source, columns=["sample_id", "elevation", "slope", "AGERA5-PRECIP"])
    ids = parcel_id_map(tmp_path / "mdb")
    assert ids is not None
    means = raw.groupby("sample_id").mean()
    means.index = [ids[str(s)] for s in means.index]
    parcels = parcels.join(means, on="NewID").rename(columns={"AGERA5-PRECIP": "precipitation"})
    parameters = L4AParameters(
        num_trees=50, sample_ratio_l=1.0, jobs=1, attributes=["elevation", "slope", "precipitation"]
    )
    result = classify_crops(mdb, parcels, lut, parameters)
    features = result.features.features
    assert {"XX_A_elevation", "XX_A_slope", "XX_A_precipitation"} <= set(features.columns)
    assert features.loc[parcels["NewID"], "XX_A_elevation"].to_numpy() == pytest.approx(
        parcels["elevation"].to_numpy()
    )
    assert result.evaluated == 82
    assert result.parcels["CT_pred_1"].notna().all()


def test_the_command_line_recipe_on_a_worldcereal_extraction(
    shared_data: Path, tmp_path: Path
) -> None:
    """docs/l4a.md's recipe: benchmarks/worldcereal_inputs.py, ``capmon mdb import`` and
    ``capmon run l4a`` on files classify every sample of the classes with >= 10 samples."""
    from typer.testing import CliRunner

    from capmon.cli.main import app
    from tests.benchmark_scripts import load_benchmark

    source = shared_data / "worldcereal_dev" / "2021_BEL_flanders_month.parquet"
    if not source.is_file():
        pytest.skip(f"{source} is not present")
    paths = load_benchmark("worldcereal_inputs").write_inputs(source, tmp_path / "in")
    lut = pd.read_csv(paths["lut.csv"])
    assert len(lut) == 4
    attributes = pd.read_csv(paths["attributes.csv"])
    assert list(attributes.columns) == ["ori_id", "elevation", "slope", "precipitation",
                                        "temperature"]  # fmt: skip
    assert len(attributes) == 82
    runner = CliRunner()
    mdb = tmp_path / "mdb"
    imported = runner.invoke(
        app, ["mdb", "import", str(source), "--mdb", str(mdb), "--spec", "worldcereal-month"]
    )
    assert imported.exit_code == 0, imported.output
    ran = runner.invoke(
        app,
        ["run", "l4a", "--mdb", str(mdb), "--parcels", str(paths["samples.gpkg"]),
         "--parcel-id-col", "sample_id", "--crop-code-col", "crop", "--lut",
         str(paths["lut.csv"]), "--out", str(tmp_path / "l4a"), "--min-s2-pix", "0",
         "--best-s2-pix", "0", "--min-s1-pix", "0", "--sample-ratio-l", "1",
         "--num-trees", "50", "--jobs", "1", "--attributes-file", str(paths["attributes.csv"])],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    report = json.loads((tmp_path / "l4a" / "l4a.json").read_text())
    assert report["counts"]["evaluated"] == report["counts"]["predicted"] == 82
    features = pd.read_parquet(tmp_path / "l4a" / "features.parquet")
    assert {"XX_A_elevation", "XX_A_precipitation"} <= set(features.columns)
