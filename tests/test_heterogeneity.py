"""Sub-parcel heterogeneity: the three methods on hand-made data, and ``capmon run
heterogeneity`` + ``capmon eval heterogeneity`` on a small synthetic world."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.errors import ColumnError, InputError
from capmon.parcels import import_declarations, import_lut
from capmon.processors import RunContext, get_processor
from capmon.processors.heterogeneity.evaluate import evaluate_heterogeneity, read_truth
from capmon.processors.heterogeneity.methods import (
    DateImage,
    cluster_image,
    cluster_method,
    cv_method,
    mixture_method,
)
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.sources import ingest_products
from capmon.synth import SynthWorld, generate_world
from capmon.workspace import Workspace, open_workspace

runner = CliRunner()


def ndvi_rows(series: dict[int, list[tuple[float, float]]]) -> pd.DataFrame:
    """MDB NDVI rows: per parcel a list of (mean, stdev), one per date from 1 May, 5 days apart."""
    rows = []
    for pid, values in series.items():
        for k, (mean, stdev) in enumerate(values):
            rows.append({"parcel_id": pid, "signal": "NDVI",
                         "date": date(2024, 5, 1 + 5 * k), "mean": mean, "stdev": stdev,
                         "count": 100, "pixels": 100})  # fmt: skip
    return pd.DataFrame(rows)


def test_cv_method_persistence_and_bare_dates() -> None:
    rows = ndvi_rows(
        {
            1: [(0.7, 0.15)] * 4,  # CV 0.21 on 4 dates: heterogeneous
            2: [(0.7, 0.02), (0.7, 0.2), (0.7, 0.02), (0.7, 0.02)],  # one odd date only
            3: [(0.15, 0.05)] * 4,  # bare soil: CV high but meaningless
        }
    )
    table = cv_method(rows, [1, 2, 3, 4], cv_threshold=0.12, persistence=3).set_index("parcel_id")
    assert table.loc[1, "cv_flag"]
    assert str(table.loc[1, "cv_dates"]).count(";") == 3
    assert not table.loc[2, "cv_flag"]
    assert not table.loc[3, "cv_flag"]
    assert table.loc[3, "cv_dates_used"] == 0
    assert not table.loc[4, "cv_flag"]  # no row at all: not flagged, score 0
    assert table.loc[4, "cv_score"] == 0.0
    with pytest.raises(InputError, match="persistence"):
        cv_method(rows, [1], persistence=0)


def two_part_image(day: date, seed: int, uniform: bool = False) -> DateImage:
    """A 40x40 window: parcel 1 (rows 0-19) half 0.8 half 0.55, parcel 2 (rows 20-39) 0.8."""
    rng = np.random.default_rng(seed)
    ndvi = np.full((40, 40), 0.8, dtype=np.float32)
    if not uniform:
        ndvi[:20, :12] = 0.55
    ndvi += rng.normal(0, 0.01, ndvi.shape).astype(np.float32)
    ndvi[39, 39] = np.nan
    index = np.arange(1600).reshape(40, 40)
    return DateImage(day, ndvi, {1: index[:20].ravel(), 2: index[20:].ravel()})


def test_mixture_method_finds_two_populations() -> None:
    images = [two_part_image(date(2024, 6, d), d) for d in (1, 11)]
    table = mixture_method(images, [1, 2, 3], persistence=2).set_index("parcel_id")
    assert table.loc[1, "mixture_flag"]
    assert table.loc[1, "mixture_score"] == pytest.approx(0.25, abs=0.02)
    assert not table.loc[2, "mixture_flag"]
    assert not table.loc[3, "mixture_flag"]  # a parcel without pixels
    one_date = mixture_method(images[:1], [1], persistence=2).set_index("parcel_id")
    assert not one_date.loc[1, "mixture_flag"]


def test_cluster_method_and_a_uniform_window() -> None:
    images = [two_part_image(date(2024, 6, d), d) for d in (1, 11)]
    table, clustered = cluster_method(images, [1, 2], k=3, persistence=2)
    flags = table.set_index("parcel_id")["cluster_flag"]
    assert flags[1]
    assert not flags[2]
    assert len(clustered) == 2
    flat = np.full((40, 40), 0.6, dtype=np.float32)
    uniform = DateImage(date(2024, 6, 1), flat, {1: np.arange(400)})
    assert cluster_image(uniform, k=3) is None  # one cluster only: no vote, no error
    table, clustered = cluster_method([uniform], [1], k=3, persistence=1)
    assert not table["cluster_flag"].any()
    assert clustered == []


def test_read_truth_errors(tmp_path: Path) -> None:
    bad = tmp_path / "truth.csv"
    bad.write_text("parcel_id,flag\nA,1\n", encoding="utf-8")
    with pytest.raises(ColumnError, match="heterogeneous"):
        read_truth(bad)
    with pytest.raises(InputError, match="does not exist"):
        read_truth(tmp_path / "none.csv")


SITE = "het"


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, SynthWorld]]:
    root = tmp_path_factory.mktemp("heterogeneity")
    world = generate_world(
        root / "world", parcels=70, window_km=1.6, sentinel1=False, s2_format="cog",
        revisit_days=10, seed=11,
    )  # fmt: skip
    workspace = open_workspace(root / "home")
    year = world.years[0]
    with workspace.session() as session:
        site = create_site(session, SITE, world.aoi)
        create_season(session, site, str(year), SeasonDates.parse(f"{year}-02-01", f"{year}-11-30"))
    import_lut(workspace, SITE, year, world.lut)
    import_declarations(
        workspace, SITE, year, world.declarations[year], parcel_id_cols=["PARCEL_ID"],
        holding_id_cols=["HOLDING_ID"], crop_code_col="CROP_CODE",
    )  # fmt: skip
    with workspace.session() as session:
        assert world.s2_dir is not None
        ingest_products(session, get_site(session, SITE), [world.s2_dir])
    mdb = get_processor("mdb")
    with workspace.session() as session:
        site_row = get_site(session, SITE)
        season_row = get_season(session, site_row, str(year))
    mdb.run(
        RunContext(workspace, site_row, season_row),
        mdb.parse_parameters({"signals": ["NDVI"], "sar": False}),
    )
    yield workspace, world
    workspace.dispose()


def test_heterogeneity_processor_and_eval(season: tuple[Workspace, SynthWorld]) -> None:
    workspace, world = season
    year = world.years[0]
    outcome = runner.invoke(app, ["--home", str(workspace.home), "run", "heterogeneity", SITE,
                                  str(year)])  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    folder = next(workspace.path("products").rglob("heterogeneity.csv")).parent
    table = pd.read_csv(folder / "heterogeneity.csv")
    assert len(table) == world.parcel_counts[year]
    for method in ("cv", "mixture", "cluster"):
        assert {f"{method}_flag", f"{method}_score", f"{method}_dates"} <= set(table.columns)
    assert set(table["agreement"]) <= {"all", "partial"}
    figures = evaluate_heterogeneity(folder, world.truth_parcels[year])
    assert figures["het_parcels"] == world.parcel_counts[year]
    truth = pd.read_csv(world.truth_parcels[year])
    if truth["heterogeneous"].sum() >= 2:
        assert figures["het_best_f1"] >= 0.5
    outcome = runner.invoke(
        app, ["eval", "heterogeneity", str(folder), "--truth", str(world.truth_parcels[year])]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "het_cv_f1" in outcome.output
    if (table[["cv_flag", "mixture_flag", "cluster_flag"]].any(axis=1)).any():
        assert (folder / "clusters.gpkg").exists()


def test_heterogeneity_cv_only_and_errors(season: tuple[Workspace, SynthWorld]) -> None:
    workspace, world = season
    processor = get_processor("heterogeneity")
    with workspace.session() as session:
        site = get_site(session, SITE)
        season_row = get_season(session, site, str(world.years[0]))
    result = processor.run(
        RunContext(workspace, site, season_row), processor.parse_parameters({"methods": ["cv"]})
    )
    table = pd.read_csv(Path(result.outputs["product"]) / "heterogeneity.csv")
    assert "mixture_flag" not in table.columns
    with pytest.raises(InputError, match="at least one"):
        processor.run(
            RunContext(workspace, site, season_row), processor.parse_parameters({"methods": []})
        )
    with pytest.raises(ValueError, match="methods"):
        processor.parse_parameters({"methods": ["kmeans"]})
