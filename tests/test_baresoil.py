"""Bare-soil detection: the index model, dekads, periods, compliance, calibration, and the
``baresoil`` processor end to end on a small synthetic world against its truth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.errors import ColumnError, InputError, NotFoundError
from capmon.mdb.query import open_mdb
from capmon.parcels import import_lut, load_parcels
from capmon.processors import RunContext, get_processor
from capmon.processors.baresoil.calibration import (
    calibrate,
    label_features,
    read_labels,
)
from capmon.processors.baresoil.detect import (
    BARE,
    COMPLIANT,
    NO_DATA,
    NOT_COMPLIANT,
    VEG,
    CoverWindow,
    bare_periods,
    cover_compliance,
    dekad_end,
    dekad_start,
    dekads_between,
    detect_bare_soil,
    optical_observations,
    period_status,
)
from capmon.processors.baresoil.evaluate import evaluate_baresoil, truth_labels
from capmon.processors.baresoil.model import RadarEvidence, ThresholdModel, load_model
from capmon.processors.common import season_mdb_folder
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.sources import ingest_products
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import Workspace, open_workspace

runner = CliRunner()
SOIL = (0.15, 0.08, 0.20)  # NDVI, NDTILL, BSI of bare loam
STUBBLE = (0.20, 0.21, 0.20)  # senescent crop / straw: soil-like NDVI, high NDTILL
GREEN = (0.80, 0.35, -0.30)


def mdb_rows(observations: list[tuple[int, str, tuple[float, float, float]]]) -> pd.DataFrame:
    """Long MDB rows (NDVI, NDTILL, BSI) of hand-made observations (parcel, date, indices)."""
    rows = []
    for parcel, day, values in observations:
        for signal, value in zip(("NDVI", "NDTILL", "BSI"), values, strict=True):
            rows.append(
                {
                    "parcel_id": parcel,
                    "signal": signal,
                    "date": date.fromisoformat(day),
                    "mean": value,
                    "count": 40,
                    "pixels": 50,
                }
            )
    return pd.DataFrame(rows)


def test_expert_model_separates_soil_stubble_and_green() -> None:
    model = ThresholdModel()
    values = np.array([SOIL, STUBBLE, GREEN, (0.28, 0.12, 0.15)])
    p = model.probability(values[:, 0], values[:, 1], values[:, 2])
    assert p[0] > 0.9
    assert p[1] < 0.05  # NDVI alone would call stubble bare; NDTILL does not
    assert p[2] < 0.01
    assert 0.05 < p[3] < 0.95  # near both thresholds: uncertain
    missing = model.probability(np.array([np.nan]), np.array([0.1]), np.array([0.2]))
    assert np.isnan(missing[0])


def test_dekads() -> None:
    starts = dekad_start(pd.to_datetime(["2024-02-01", "2024-02-10", "2024-02-11", "2024-02-29"]))
    assert [d.day for d in starts] == [1, 1, 11, 21]
    ends = dekad_end(starts)
    assert [d.day for d in ends] == [10, 10, 20, 29]  # 2024 is a leap year
    assert dekad_end(pd.Series(pd.to_datetime(["2023-01-21"]))).iloc[0].day == 31
    assert len(dekads_between(date(2024, 2, 1), date(2024, 11, 30))) == 30
    with pytest.raises(InputError, match="ends"):
        dekads_between(date(2024, 3, 1), date(2024, 2, 1))


def test_period_status_no_data_weighting_and_confidence() -> None:
    rows = mdb_rows(
        [
            (1, "2024-03-02", SOIL),
            (1, "2024-03-07", SOIL),
            (1, "2024-03-25", GREEN),
            (2, "2024-03-05", STUBBLE),
        ]
    )
    observations = optical_observations(rows, ThresholdModel())
    status = period_status(observations, [1, 2, 3], date(2024, 3, 1), date(2024, 3, 31))
    table = status.set_index(["parcel_id", "dekad"])
    assert len(status) == 9  # 3 parcels x 3 dekads, including parcel 3 without observation
    first = table.loc[(1, pd.Timestamp("2024-03-01")), :]
    assert first["status"] == BARE
    assert first["observations"] == 2
    assert first["confidence"] > 0.9
    assert table.loc[(1, pd.Timestamp("2024-03-11")), "status"] == NO_DATA
    assert table.loc[(1, pd.Timestamp("2024-03-11")), "confidence"] == 0.0
    assert table.loc[(1, pd.Timestamp("2024-03-21")), "status"] == VEG
    assert table.loc[(2, pd.Timestamp("2024-03-01")), "status"] == VEG  # stubble is not bare
    assert (status.loc[status["parcel_id"] == 3, "status"] == NO_DATA).all()
    assert status["confidence"].between(0, 1).all()


def test_radar_evidence_nudges_but_never_decides_alone() -> None:
    radar = RadarEvidence(weight=1.0)
    q = radar.probability(np.array([-9.5, -7.5, np.nan]), np.array([0.8, 0.3, np.nan]))
    assert q[0] > 0.9
    assert q[1] < 0.1
    assert np.isnan(q[2])
    combined = radar.combine(np.array([0.5, 0.5, np.nan]), q)
    assert combined[0] > 0.5 > combined[1]
    assert np.isnan(combined[2])  # no optical probability: stays missing (NO_DATA)


def status_table(parcel: int, codes: str, start: str = "2024-10-01") -> pd.DataFrame:
    """A status table from a string of B (bare), V (veg), N (no data), one letter a dekad."""
    dekads = dekads_between(date.fromisoformat(start), date(2026, 1, 1))[: len(codes)]
    names = {"B": BARE, "V": VEG, "N": NO_DATA}
    return pd.DataFrame(
        {
            "parcel_id": parcel,
            "dekad": dekads,
            "dekad_end": dekad_end(pd.Series(dekads)).to_numpy(),
            "status": [names[c] for c in codes],
            "confidence": [0.0 if c == "N" else 0.8 for c in codes],
        }
    )


def test_bare_periods_bridge_short_gaps_only() -> None:
    status = pd.concat(
        [status_table(1, "VBBNBVBNNB"), status_table(2, "BBVV"), status_table(3, "VVNV")]
    )
    periods = bare_periods(status, max_gap=1)
    one = periods[periods["parcel_id"] == 1].reset_index(drop=True)
    # B B N B bridged into one period; the two-dekad gap before the last B is not bridged
    assert len(one) == 3
    assert one.loc[0, "start"] == pd.Timestamp("2024-10-11")
    assert one.loc[0, "end"] == pd.Timestamp("2024-11-20")
    assert one.loc[0, "days"] == 41
    assert one.loc[0, "bare_dekads"] == 3
    assert one.loc[0, "no_data_dekads"] == 1
    two = periods[periods["parcel_id"] == 2].reset_index(drop=True)
    assert len(two) == 1
    assert two.loc[0, "start"] == pd.Timestamp("2024-10-01")
    assert (periods["parcel_id"] != 3).all()
    assert len(bare_periods(status, max_gap=0)[lambda t: t["parcel_id"] == 1]) == 4
    with pytest.raises(InputError, match="max_gap"):
        bare_periods(status, max_gap=-1)


def test_cover_compliance_window_across_the_new_year() -> None:
    window = CoverWindow.parse("11-01", "02-15")
    assert window.instances(date(2024, 2, 1), date(2024, 11, 30)) == [
        (date(2023, 11, 1), date(2024, 2, 15)),
        (date(2024, 11, 1), date(2025, 2, 15)),
    ]
    status = pd.concat(
        [
            status_table(1, "VVVVBVVV"),  # bare in the dekad of 11 November
            status_table(2, "BBBVVVVV"),  # bare in October only: compliant
            status_table(3, "BBBNNNNN"),  # nothing observed in the window
        ]
    )
    table = cover_compliance(status, window, date(2024, 10, 1), date(2024, 12, 20)).set_index(
        "parcel_id"
    )
    assert table.loc[1, "compliance"] == NOT_COMPLIANT
    assert table.loc[1, "first_bare"] == pd.Timestamp("2024-11-11")
    assert table.loc[2, "compliance"] == COMPLIANT
    assert table.loc[3, "compliance"] == NO_DATA
    assert table.loc[3, "confidence"] == 0.0
    assert table.loc[1, "analysed_end"] == pd.Timestamp("2024-12-20")
    for bad in (("13-01", "02-15"), ("11-01", "02-30"), ("november", "02-15")):
        with pytest.raises(InputError, match="MM-DD"):
            CoverWindow.parse(*bad)


def test_detect_bare_soil_without_any_observation_says_so() -> None:
    empty = mdb_rows([])
    empty = pd.DataFrame(columns=["parcel_id", "signal", "date", "mean", "count", "pixels"])
    result = detect_bare_soil(
        empty, [5, 6], date(2024, 3, 1), date(2024, 3, 31), model=ThresholdModel()
    )
    assert (result.status["status"] == NO_DATA).all()
    assert len(result.status) == 6
    assert result.periods.empty
    assert any("no optical observation" in note for note in result.notes)


def test_read_labels_errors(tmp_path: Path) -> None:
    good = tmp_path / "labels.csv"
    good.write_text("NewID,Date,Label\n1,2024-03-02,bare\n2,2024-03-05,VEG\n", encoding="utf-8")
    table = read_labels(good)
    assert table["bare"].tolist() == [1, 0]
    assert table["parcel_id"].tolist() == [1, 2]
    bad = tmp_path / "bad.csv"
    bad.write_text("parcel_id,date,label\n1,2024-03-02,BARE\n2,2024-03-05,GRASS\n", "utf-8")
    with pytest.raises(InputError, match=r"line 3: invalid label"):
        read_labels(bad)
    no_date = tmp_path / "nodate.csv"
    no_date.write_text("parcel_id,label\n1,BARE\n", encoding="utf-8")
    with pytest.raises(ColumnError, match="no date column"):
        read_labels(no_date)
    with pytest.raises(InputError, match="does not exist"):
        read_labels(tmp_path / "missing.csv")


def test_calibration_recovers_a_shifted_threshold() -> None:
    rng = np.random.default_rng(0)
    n = 400
    ndvi = rng.uniform(0.1, 0.5, n)
    ndtill = rng.uniform(0.05, 0.25, n)
    bsi = np.full(n, 0.2)
    bare = ((ndvi < 0.25) & (ndtill < 0.17)).astype(np.int8)  # a region with other thresholds
    matched = pd.DataFrame(
        {"parcel_id": np.arange(n) // 4, "NDVI": ndvi, "NDTILL": ndtill, "BSI": bsi, "bare": bare}
    )
    result = calibrate(matched, method="thresholds", folds=4)
    assert result.cross_validation["balanced_accuracy"] > 0.93
    assert result.cross_validation["balanced_accuracy"] > result.expert["balanced_accuracy"]
    assert isinstance(result.model, ThresholdModel)
    assert abs(result.model.ndtill_max - 0.17) < 0.02
    assert abs(result.model.ndvi_max - 0.25) < 0.03
    logistic = calibrate(matched, method="logistic", folds=4)
    assert logistic.cross_validation["balanced_accuracy"] > 0.85
    with pytest.raises(InputError, match="both BARE and VEG"):
        calibrate(matched.assign(bare=1))
    with pytest.raises(InputError, match="no label matches"):
        calibrate(matched.iloc[:0])


# ------------------------------------------------------------------------------------------
# End to end on a small synthetic world

SITE = "bs"


@pytest.fixture(scope="module")
def season_workspace(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Workspace, SynthWorld]]:
    """A one-year synthetic world imported, ingested and extracted (S2 only)."""
    root = tmp_path_factory.mktemp("baresoil")
    world = generate_world(
        root / "world", parcels=70, window_km=1.6, sentinel1=False, s2_format="cog", seed=3
    )
    workspace = open_workspace(root / "home")
    year = world.years[0]
    with workspace.session() as session:
        site = create_site(session, SITE, world.aoi)
        create_season(session, site, str(year), SeasonDates.parse(f"{year}-02-01", f"{year}-11-30"))
    import_lut(workspace, SITE, year, world.lut)
    import_world_declarations(
        workspace, SITE, year, world.declarations[year],
    )  # fmt: skip
    with workspace.session() as session:
        assert world.s2_dir is not None
        ingest_products(session, get_site(session, SITE), [world.s2_dir])
    run_processor(workspace, "mdb", {"signals": ["NDVI", "NDTILL", "BSI"], "sar": False})
    yield workspace, world
    workspace.dispose()


def run_processor(workspace: Workspace, name: str, values: dict[str, Any]) -> Any:
    processor = get_processor(name)
    with workspace.session() as session:
        site = get_site(session, SITE)
        season = get_season(session, site, site.seasons[0].name)
    return processor.run(RunContext(workspace, site, season), processor.parse_parameters(values))


def test_baresoil_processor_against_the_truth(
    season_workspace: tuple[Workspace, SynthWorld],
) -> None:
    workspace, world = season_workspace
    result = run_processor(workspace, "baresoil", {})
    folder = Path(result.outputs["product"])
    for name in ("status.parquet", "observations.parquet", "periods.csv", "compliance.csv"):
        assert (folder / name).exists()
    status = pd.read_parquet(folder / "status.parquet")
    parcels = load_parcels(workspace, SITE, world.years[0])
    assert set(status["parcel_id"]) == set(parcels["NewID"].astype(int))
    assert set(status["status"]) <= {BARE, VEG, NO_DATA}
    assert (status["status"] == NO_DATA).any()
    assert (status["status"] == BARE).any()
    figures = evaluate_baresoil(folder, world, world.years[0])
    assert figures["baresoil_balanced_accuracy"] >= 0.9
    assert figures["baresoil_senescent_not_bare"] >= 0.9
    periods = pd.read_csv(folder / "periods.csv")
    assert (periods["days"] >= 10).all()
    assert periods["ori_id"].notna().all()
    compliance = pd.read_csv(folder / "compliance.csv")
    assert set(compliance["compliance"]) <= {COMPLIANT, NOT_COMPLIANT, NO_DATA}


def test_calibrate_cli_and_calibrated_run(
    season_workspace: tuple[Workspace, SynthWorld], tmp_path: Path
) -> None:
    workspace, world = season_workspace
    year = world.years[0]
    parcels = load_parcels(workspace, SITE, year)
    ids = dict(zip(parcels["NewID"].astype(int), parcels["ori_id"], strict=True))
    labels = truth_labels(world, year, ids, fraction=0.5)
    labels_csv = tmp_path / "labels.csv"
    labels.to_csv(labels_csv, index=False)
    model_file = tmp_path / "model.json"
    outcome = runner.invoke(
        app,
        ["--home", str(workspace.home), "calibrate", "baresoil", str(labels_csv), "--site",
         SITE, "--season", str(year), "--folds", "3", "--out", str(model_file)],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    assert "cross-validation" in outcome.output
    assert isinstance(load_model(model_file), ThresholdModel)
    result = run_processor(workspace, "baresoil", {"model": str(model_file)})
    figures = evaluate_baresoil(Path(result.outputs["product"]), world, year)
    assert figures["baresoil_balanced_accuracy"] >= 0.9
    mdb_folder = Path(result.outputs["product"])  # any folder without an MDB
    outcome = runner.invoke(
        app, ["calibrate", "baresoil", str(labels_csv), "--mdb", str(mdb_folder / "x")]
    )
    assert outcome.exit_code != 0


def test_label_matching_tolerance(season_workspace: tuple[Workspace, SynthWorld]) -> None:
    workspace, world = season_workspace
    year = world.years[0]
    parcels = load_parcels(workspace, SITE, year)
    mdb_path = workspace.path("mdb")
    folder = next(p for p in mdb_path.rglob("mdb.json")).parent
    pid = int(parcels["NewID"].iloc[0])
    labels = pd.DataFrame(
        {
            "parcel_id": [pid, pid],
            "date": pd.to_datetime([f"{year}-06-01", f"{year}-12-25"]),
            "bare": [0, 1],
        }
    )
    matched, unmatched = label_features(labels, open_mdb(folder), tolerance_days=3)
    assert len(matched) == 1
    assert unmatched == 1


def test_baresoil_errors(season_workspace: tuple[Workspace, SynthWorld], tmp_path: Path) -> None:
    workspace, _world = season_workspace
    with pytest.raises(InputError, match="end"):
        run_processor(workspace, "baresoil", {"start": "2024-06-01", "end": "2024-05-01"})
    with pytest.raises(InputError, match="not an MDB folder"):
        run_processor(workspace, "baresoil", {"mdb": str(tmp_path / "nothing")})
    with workspace.session() as session:
        site = get_site(session, SITE)
    with pytest.raises(NotFoundError, match="no declarations for 2031"):
        season_mdb_folder(workspace, site, "2031", 2031)
    with pytest.raises(InputError, match="does not exist"):
        run_processor(workspace, "baresoil", {"model": str(tmp_path / "none.json")})
