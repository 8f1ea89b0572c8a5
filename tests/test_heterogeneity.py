"""Sub-parcel heterogeneity: the three methods on hand-made data, and ``capmon run
heterogeneity`` + ``capmon eval heterogeneity`` on a small synthetic world."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.errors import ColumnError, InputError
from capmon.grid import PixelGrid
from capmon.parcels import import_lut
from capmon.processors import RunContext, get_processor
from capmon.processors.heterogeneity.evaluate import evaluate_heterogeneity, read_truth
from capmon.processors.heterogeneity.methods import (
    DateImage,
    cluster_image,
    cluster_method,
    cv_method,
    mixture_method,
)
from capmon.processors.heterogeneity.pixels import coherence_on_grid
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.sources import ingest_products
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
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


def coherence_window(day: date) -> DateImage:
    """Parcel 1 (rows 0-19): two parts of NDVI 0.70 and 0.78 (a difference k-means on NDVI
    does not separate in a window spanning 0.1-0.95) with coherence 0.15 and 0.75; the rest of
    the window is spread over NDVI 0.1, 0.4, 0.95 with coherence 0.3."""
    rng = np.random.default_rng(day.day)
    ndvi = np.full((40, 40), 0.70, dtype=np.float32)
    ndvi[:20, 20:] = 0.78
    ndvi[20:27], ndvi[27:34], ndvi[34:] = 0.1, 0.4, 0.95
    cohe = np.full((40, 40), 0.3, dtype=np.float32)
    cohe[:20, :20], cohe[:20, 20:] = 0.15, 0.75
    ndvi += rng.normal(0, 0.005, ndvi.shape).astype(np.float32)
    cohe += rng.normal(0, 0.005, cohe.shape).astype(np.float32)
    index = np.arange(1600).reshape(40, 40)
    return DateImage(day, ndvi, {1: index[:20].ravel()}, cohe_vv=cohe)


def test_cluster_method_with_coherence() -> None:
    images = [coherence_window(date(2024, 6, d)) for d in (1, 11)]
    ndvi_only, _ = cluster_method(images, [1], k=3, persistence=2)
    with_cohe, clustered = cluster_method(images, [1], k=3, persistence=2, use_coherence=True)
    assert not ndvi_only["cluster_flag"].iloc[0]
    assert with_cohe["cluster_flag"].iloc[0]
    assert with_cohe["cluster_score"].iloc[0] == pytest.approx(0.08, abs=0.01)
    centres = clustered[0].centres  # mean NDVIs of the clusters, not z-scores
    assert centres.min() == pytest.approx(0.25, abs=0.01)  # NDVI 0.1 and 0.4 together
    assert centres.max() < 0.96


def write_cohe(folder: Path, transform: Affine, values: np.ndarray) -> Path:
    path = folder / "SEN4CAP_L2A_S1_V20240610T173310_20240604T173310_VV_088_COHE.tif"
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0],
                       count=1, dtype="float32", crs=CRS.from_epsg(32631),
                       transform=transform, nodata=0) as dst:  # fmt: skip
        dst.write(values.astype(np.float32), 1)
    return path


def test_coherence_on_the_optical_grid(tmp_path: Path) -> None:
    values = np.arange(1, 17, dtype=np.float32).reshape(4, 4) / 20  # 20 m pixels
    path = write_cohe(tmp_path, Affine(20, 0, 600000, 0, -20, 5600000), values)
    # aligned: 10 m grid starting one 10 m pixel inside, one row and column beyond
    aligned = PixelGrid(CRS.from_epsg(32631), Affine(10, 0, 600010, 0, -10, 5599990), 8, 8)
    cohe = coherence_on_grid(path, aligned)
    assert cohe.shape == (8, 8)
    assert cohe[0, 0] == pytest.approx(values[0, 0])  # replicated, not interpolated
    assert cohe[0, 1] == pytest.approx(values[0, 1])
    assert cohe[1, 1] == pytest.approx(values[1, 1])
    assert np.isnan(cohe[7]).all()  # below the product: no data
    # shifted by 5 m: bilinear reprojection, values between the neighbours'
    shifted = PixelGrid(CRS.from_epsg(32631), Affine(10, 0, 600015, 0, -10, 5599985), 6, 6)
    warped = coherence_on_grid(path, shifted)
    assert np.isfinite(warped[1:4, 1:4]).all()
    assert values.min() <= np.nanmin(warped)
    assert np.nanmax(warped) <= values.max()
    assert not np.isin(np.round(warped[2, 2], 4), np.round(values, 4))


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
    import_world_declarations(
        workspace, SITE, year, world.declarations[year],
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


def test_coherence_option_without_s1(season: tuple[Workspace, SynthWorld]) -> None:
    """A season without S1: the option is ignored with a note (NR), not a crash."""
    workspace, world = season
    processor = get_processor("heterogeneity")
    with workspace.session() as session:
        site = get_site(session, SITE)
        season_row = get_season(session, site, str(world.years[0]))
    parameters = processor.parse_parameters(
        {"methods": ["cluster"], "cluster_features": ["ndvi", "cohe_vv"]}
    )
    result = processor.run(RunContext(workspace, site, season_row), parameters)
    report = json.loads((Path(result.outputs["product"]) / "report.json").read_text("utf-8"))
    assert report["cluster_features"] == ["ndvi"]
    assert any("cohe_vv ignored (NR)" in note for note in report["notes"])
    with pytest.raises(InputError, match="must include ndvi"):
        processor.run(
            RunContext(workspace, site, season_row),
            processor.parse_parameters({"cluster_features": ["cohe_vv"]}),
        )
