"""The learned mowing method (``method=capmon``): candidates and features on each parcel's own
observations, models saved, loaded and refused with clear errors, ``capmon train l4b`` on real
plots (skipped without ../shared/data)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from capmon.errors import InputError
from capmon.processors.l4b import learned
from capmon.processors.l4b.processor import L4BParameters
from capmon.processors.l4b.series import build_series

ROOT = Path(__file__).resolve().parents[1]


def _ndvi(parcel: int, values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "parcel_id": parcel,
            "signal": "NDVI",
            "date": pd.to_datetime(list(values)),
            "mean": list(values.values()),
            "count": 40,
            "sensor": "S2",
            "orbit": None,
            "orbit_direction": None,
            "date_first": None,
        }
    )


MEADOW = {
    "2024-04-01": 0.55,
    "2024-04-21": 0.70,
    "2024-05-11": 0.80,
    "2024-05-26": 0.84,
    "2024-06-05": 0.45,
    "2024-06-15": 0.55,
    "2024-06-30": 0.68,
    "2024-07-20": 0.78,
    "2024-08-09": 0.80,
    "2024-08-19": 0.79,
    "2024-09-08": 0.74,
    "2024-10-08": 0.66,
}


def test_candidates_are_the_drops_between_own_observations() -> None:
    """Drops are taken between a parcel's own valid observations (NaN dates of the run's grid
    and values below 0.1 are skipped), with features read on its own series."""
    cloudy = dict(MEADOW) | {"2024-05-31": 0.05}  # a value below 0.1 is not an observation
    rows = pd.concat([_ndvi(1, cloudy), _ndvi(2, {"2024-05-01": 0.7, "2024-05-03": 0.6})])
    series = build_series(rows, [1, 2])
    assert series.optical is not None
    found = learned.ndvi_candidates(series.optical)
    cut = found[(found["parcel_id"] == 1) & (found["end"] == pd.Timestamp("2024-06-05"))]
    assert len(cut) == 1
    row = cut.iloc[0]
    assert row["start"] == pd.Timestamp("2024-05-26")  # not the 0.05 of May 31
    assert row["drop"] == pytest.approx(0.39)
    assert row["gap_days"] == 10
    assert row["next_change"] == pytest.approx(0.10)
    assert row["regrowth_40"] == pytest.approx(0.68 - 0.45)  # June 30; July 20 is 45 days on
    assert row["days_since_green"] == (date(2024, 6, 5) - date(2024, 4, 21)).days
    assert row["season_peak"] == pytest.approx(0.84)
    assert set(found["parcel_id"]) == {1, 2}
    assert list(found.columns[3:]) == list(learned.S2_FEATURES)


def test_a_clear_cut_is_found_and_a_parcel_is_scored_alone() -> None:
    rows = _ndvi(1, MEADOW)
    others = pd.concat(
        [_ndvi(10 + k, {d: v - 0.01 * k for d, v in list(MEADOW.items())[k:]}) for k in range(5)]
    )
    alone = learned.select_events(
        learned.scored_candidates(build_series(rows, [1]), "S2", learned.models_for("S2"), None)
    )
    together = learned.select_events(
        learned.scored_candidates(
            build_series(pd.concat([rows, others]), [1, *range(10, 15)]),
            "S2",
            learned.models_for("S2"),
            None,
        )
    )
    assert alone[1] == together[1]
    assert [e.end.date() for e in alone[1]] == [date(2024, 6, 5)]
    assert alone[1][0].confidence >= 0.5


def test_models_round_trip_and_bad_files_are_named(tmp_path: Path) -> None:
    shipped = learned.shipped_model("S1_S2")
    assert shipped.sensors == "S1_S2"
    assert "cross_validation" in shipped.card
    path = tmp_path / "model.json"
    shipped.save(path)
    again = learned.MowingModel.load(path)
    assert again == shipped
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json"):
        learned.MowingModel.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(InputError, match="not a capmon L4B model"):
        learned.MowingModel.load(tmp_path / "other.json")
    document = json.loads(path.read_text()) | {"features": ["drop", "rainfall"]}
    (tmp_path / "features.json").write_text(json.dumps(document))
    with pytest.raises(InputError, match="rainfall"):
        learned.MowingModel.load(tmp_path / "features.json")
    with pytest.raises(InputError, match="S2 only"):
        learned.models_for("S2", shipped)


def test_training_needs_cuts_and_the_capmon_method_needs_s2() -> None:
    frame = pd.DataFrame({f: np.zeros(30) for f in learned.S2_FEATURES})
    with pytest.raises(InputError, match="at least 10 cuts"):
        learned.train_model(frame, np.zeros(30, dtype=np.int64), "S2")
    with pytest.raises(ValueError, match="sensors S1"):
        L4BParameters(method="capmon", sensors="S1")
    with pytest.raises(ValueError, match="model is for method capmon"):
        L4BParameters(method="sen4cap", model=Path("m.json"))


def test_train_l4b_command_on_real_plots(shared_data: Path, tmp_path: Path) -> None:
    """``capmon train l4b`` on the real plots of one region and year writes a model whose card
    holds cross-validated figures; ``capmon run l4b --model`` reads it."""
    from capmon.cli.main import app
    from capmon.mdb.imports import import_statistics, load_spec

    data = shared_data / "mowing_gmd_dev"
    mdb = tmp_path / "mdb"
    for spec, path in (
        ("gmd-s2", data / "S2" / "ts_LR_GMI_S2_LR_2022.csv"),
        ("gmd-coh", data / "COH" / "ts_LR_GMI_COH_2022.csv"),
    ):
        import_statistics([path], mdb, load_spec(spec), site="gmd", parcel_set="LR")
    model = tmp_path / "model.json"
    runner = CliRunner()
    outcome = runner.invoke(
        app,
        [
            "train",
            "l4b",
            "--reference",
            str(data / "GMI_Long_LR_NB.gpkg"),
            "--mdb",
            str(mdb),
            "--out",
            str(model),
            "--folds",
            "3",
            "--json",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    card = json.loads(outcome.output)
    assert card["seasons"][0]["name"].endswith(":2022")
    assert card["cross_validation"]["parcels"] == card["seasons"][0]["parcels"] > 10
    assert 0 < card["cross_validation"]["f1"] <= 1
    trained = learned.MowingModel.load(model)
    assert trained.sensors == "S1_S2"
    # a reference of parcels the MDB does not hold is an error naming the MDB
    other = tmp_path / "other.csv"
    other.write_text("parcel_id,date\nXX1,2022-06-01\n")
    outcome = runner.invoke(
        app,
        [
            "train",
            "l4b",
            "--reference",
            str(other),
            "--mdb",
            str(mdb),
            "--out",
            str(tmp_path / "m2.json"),
        ],
    )
    assert outcome.exit_code != 0
    assert "none of the 1 reference parcels" in outcome.output
    assert not (tmp_path / "m2.json").exists()


def test_s1_evidence_is_used_only_when_asked_or_brought_by_the_model(tmp_path: Path) -> None:
    """The shipped S1+S2 model did not beat the S2 model on the unseen real region, so an
    S1_S2 run scores with the S2 model unless --s1-evidence is given or --model was trained
    with S1; an S1+S2 model with --no-s1-evidence is a contradiction, said as such."""
    from capmon.cli.main import app

    assert set(learned.models_for("S1_S2")) == {"S2"}
    assert not learned.uses_s1_evidence("S1_S2")
    assert set(learned.models_for("S1_S2", s1_evidence=True)) == {"S2", "S1_S2"}
    assert set(learned.models_for("S2", s1_evidence=True)) == {"S2"}
    with_s1 = learned.shipped_model("S1_S2")
    assert set(learned.models_for("S1_S2", with_s1)) == {"S2", "S1_S2"}
    with pytest.raises(InputError, match="does not use S1 evidence"):
        learned.models_for("S1_S2", with_s1, s1_evidence=False)
    # the CLI's --s1-evidence / --no-s1-evidence reach the parameters; neither leaves None
    assert L4BParameters().s1_evidence is None
    with pytest.raises(ValueError, match="s1_evidence is for method capmon with sensors S1_S2"):
        L4BParameters(sensors="S2", s1_evidence=True)
    runner = CliRunner()
    common = ["run", "l4b", "--mdb", str(tmp_path / "none"), "--out", str(tmp_path / "out")]
    told = runner.invoke(app, [*common, "--sensors", "S2", "--s1-evidence"])
    assert told.exit_code != 0
    assert "s1_evidence is for method capmon" in told.output
    for flags in ([], ["--no-s1-evidence"]):
        quiet = runner.invoke(app, [*common, "--sensors", "S2", *flags])
        assert "s1_evidence is for method capmon" not in quiet.output, flags
