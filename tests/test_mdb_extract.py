"""Season extraction end to end on a tiny synthetic world: values, reruns, resume, bad products."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rasterio import features
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.mdb.extract import ExtractionSettings, SeasonExtraction, extract_season
from capmon.mdb.query import open_mdb
from capmon.parcels import import_lut, load_parcels
from capmon.sites import SeasonDates, create_season, create_site, get_site
from capmon.sources import ingest_products, open_product
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import Workspace, open_workspace

runner = CliRunner()
SIGNALS = ("NDVI", "LAI", "B04")


def _tiny(folder: Path, *, sentinel1: bool) -> SynthWorld:
    return generate_world(
        folder / "w",
        parcels=40,
        window_km=1.2,
        revisit_days=30,
        s2_format="jp2",
        s1_repeat_days=12,
        sentinel1=sentinel1,
        seed=5,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    """A tiny world with Sentinel-1 (a year of 12-day pairs: about 240 files)."""
    return _tiny(tmp_path_factory.mktemp("world"), sentinel1=True)


@pytest.fixture(scope="module")
def optical_world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    """The same tiny world without Sentinel-1, for the tests about reruns and failures."""
    return _tiny(tmp_path_factory.mktemp("optical"), sentinel1=False)


def _workspace(world: SynthWorld, home: Path) -> Workspace:
    workspace = open_workspace(home)
    year = world.years[0]
    with workspace.session() as session:
        site = create_site(session, "tiny", world.aoi)
        create_season(session, site, "S", SeasonDates.parse(f"{year}-02-01", f"{year}-11-30"))
    import_lut(workspace, "tiny", year, world.lut)
    import_world_declarations(
        workspace,
        "tiny",
        year,
        world.declarations[year],
    )
    with workspace.session() as session:
        ingest_products(
            session, get_site(session, "tiny"), [p for p in (world.s2_dir, world.s1_dir) if p]
        )
    return workspace


@pytest.fixture(scope="module")
def extracted(
    world: SynthWorld, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Workspace, SeasonExtraction]:
    """The tiny world with Sentinel-1, extracted once for the tests that only read it."""
    workspace = _workspace(world, tmp_path_factory.mktemp("extracted") / "ws")
    result = extract_season(workspace, "tiny", "S", ExtractionSettings(optical_signals=SIGNALS))
    return workspace, result


def _rows(mdb: Path) -> pd.DataFrame:
    frame = open_mdb(mdb).timeseries()
    return frame.sort_values(["parcel_id", "signal", "date", "product_id"]).reset_index(drop=True)


def test_extraction_matches_a_direct_computation(
    world: SynthWorld, extracted: tuple[Workspace, SeasonExtraction]
) -> None:
    workspace, result = extracted
    report = result.report
    assert not report.failed
    assert report.extracted
    rows = _rows(result.mdb_path)
    assert {"NDVI", "LAI", "B04", "AMP_VV", "AMP_VH", "COHE_VV", "COHE_VH"} <= set(rows["signal"])
    assert (rows["count"] > 1).all()
    assert (rows["count"] > 0.1 * rows["pixels"]).all()
    assert not rows.duplicated(["parcel_id", "signal", "date", "sensor", "orbit"]).any()

    # One product, one parcel: the same number straight from the files with plain numpy.
    ndvi = rows[rows["signal"] == "NDVI"].sort_values("count").iloc[-1]
    assert world.s2_dir is not None
    product = next(p for p in world.s2_dir.iterdir() if p.name.startswith(ndvi["product_id"]))
    reader = open_product(product)
    parcels = load_parcels(workspace, "tiny", world.years[0])
    parcel = parcels[parcels["NewID"] == ndvi["parcel_id"]].to_crs(reader.grid(10).crs)
    grid = reader.grid(10)
    inside = features.rasterize(
        [(parcel.geometry.iloc[0].buffer(-5), 1)], out_shape=grid.shape, transform=grid.transform
    ).astype(bool)
    red, nir = reader.read("B04", 10), reader.read("B08", 10)
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = (nir - red) / (nir + red)
    valid = inside & reader.valid_mask(10) & np.isfinite(direct)
    assert ndvi["count"] == valid.sum()
    assert ndvi["pixels"] == inside.sum()
    assert ndvi["mean"] == pytest.approx(float(np.mean(direct[valid].astype(np.float64))), rel=1e-5)
    assert ndvi["median"] == pytest.approx(float(np.median(direct[valid])), rel=1e-5)


def test_rerun_does_nothing_and_resume_gives_the_same_mdb(
    optical_world: SynthWorld, tmp_path: Path
) -> None:
    workspace = _workspace(optical_world, tmp_path / "ws")
    settings = ExtractionSettings(optical_signals=SIGNALS)
    first = extract_season(workspace, "tiny", "S", settings, compact=False)
    complete = _rows(first.mdb_path)
    files = sorted((first.mdb_path / "observations").glob("*.parquet"))
    stamps = {f.name: f.stat().st_mtime_ns for f in files}

    again = extract_season(workspace, "tiny", "S", settings, compact=False)
    assert again.report.extracted == []
    assert len(again.report.already_done) == len(files)
    assert {f.name: f.stat().st_mtime_ns for f in files} == stamps

    # A run killed half-way leaves some products without their file (never a partial one):
    for lost in files[::3]:
        lost.unlink()
    shutil.rmtree(first.mdb_path / "pixels")
    resumed = extract_season(workspace, "tiny", "S", settings, compact=False)
    assert len(resumed.report.extracted) + len(resumed.report.empty) == len(files[::3])
    pd.testing.assert_frame_equal(_rows(first.mdb_path), complete)
    # compaction keeps every row once, and a rerun after it still does nothing
    extract_season(workspace, "tiny", "S", settings)
    assert not list((first.mdb_path / "observations").glob("*.parquet"))
    pd.testing.assert_frame_equal(_rows(first.mdb_path), complete)
    assert extract_season(workspace, "tiny", "S", settings).report.extracted == []
    workspace.dispose()


def test_a_corrupted_product_is_reported_and_the_others_are_extracted(
    optical_world: SynthWorld, tmp_path: Path
) -> None:
    copy = tmp_path / "world"
    shutil.copytree(optical_world.root, copy)
    broken_world = SynthWorld.load(copy)
    assert broken_world.s2_dir is not None
    victim = sorted(broken_world.s2_dir.iterdir())[2]
    band = next(victim.rglob("*B04_10m.jp2"))
    workspace = _workspace(broken_world, tmp_path / "ws")
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 3])
    result = extract_season(workspace, "tiny", "S", ExtractionSettings(optical_signals=SIGNALS))
    failed = dict(result.report.failed)
    assert list(failed) == [victim.name.removesuffix(".SAFE")]
    assert "B04" in failed[victim.name.removesuffix(".SAFE")]
    assert result.report.extracted
    assert not (result.mdb_path / "observations" / f"{victim.stem}.parquet").exists()
    workspace.dispose()


def test_extraction_errors(optical_world: SynthWorld, tmp_path: Path) -> None:
    workspace = open_workspace(tmp_path / "ws")
    with workspace.session() as session:
        site = create_site(session, "empty", optical_world.aoi)
        create_season(session, site, "S", SeasonDates.parse("2024-02-01", "2024-11-30"))
    with pytest.raises(ValueError, match="has no declarations for 2024"):
        extract_season(workspace, "empty", "S")
    with pytest.raises(ValueError, match="unknown signal 'NOT_A_SIGNAL'"):
        ExtractionSettings(optical_signals=("NOT_A_SIGNAL",))
    workspace.dispose()


def test_cli_run_extract_info_and_export(optical_world: SynthWorld, tmp_path: Path) -> None:
    workspace = _workspace(optical_world, tmp_path / "ws")
    workspace.dispose()
    home = ["--home", str(tmp_path / "ws")]
    bad = runner.invoke(app, [*home, "run", "mdb", "tiny", "S", "--signals", "NOPE"])
    assert bad.exit_code == 2
    assert "NOPE" in bad.output
    bad_buffer = runner.invoke(app, [*home, "mdb", "extract", "tiny", "S", "--sar-buffer-m", "-1"])
    assert bad_buffer.exit_code == 2
    assert "--sar-buffer-m" in bad_buffer.output
    result = runner.invoke(
        app, [*home, "mdb", "extract", "tiny", "S", "--signals", "NDVI", "--no-sar"]
    )
    assert result.exit_code == 0, result.output
    mdb = next((tmp_path / "ws" / "mdb").rglob("mdb.json")).parent
    info = runner.invoke(app, [*home, "mdb", "info", str(mdb), "--json"])
    assert info.exit_code == 0, info.output
    assert [row["signal"] for row in json.loads(info.output)] == ["NDVI"]
    exported = runner.invoke(app, [*home, "mdb", "export", str(mdb), str(tmp_path / "out")])
    assert exported.exit_code == 0, exported.output
    csv = next((tmp_path / "out").glob("SEN4CAP_MDB1_*.csv"))
    header = csv.read_text().splitlines()[0]
    assert header.startswith('"NewID"')
    assert "_mean_NDVI" in header


def test_an_entirely_masked_product_is_a_named_skip(
    optical_world: SynthWorld, tmp_path: Path
) -> None:
    from capmon.mdb.extract import extract_products
    from capmon.mdb.store import MdbManifest, MdbStore
    from capmon.sources import ProductReader

    class Clouded(ProductReader):
        """A real product whose every pixel is cloudy."""

        def __init__(self, reader: ProductReader) -> None:
            self._reader = reader
            self.info = reader.info
            self.bands = reader.bands

        def grid(self, resolution: float | None = None):  # type: ignore[no-untyped-def]
            return self._reader.grid(resolution)

        def read(self, band, resolution=None, rows=None):  # type: ignore[no-untyped-def]
            return self._reader.read(band, resolution, rows)

        def valid_mask(self, resolution=None, config=None, rows=None):  # type: ignore[no-untyped-def]
            shape = self._reader.grid(resolution).shape
            return np.zeros(shape if rows is None else (rows[1] - rows[0], shape[1]), dtype=bool)

        def angles(self):  # type: ignore[no-untyped-def]
            return self._reader.angles()

        def check(self) -> None:
            self._reader.check()

        @property
        def mask_source(self) -> str | None:
            return self._reader.mask_source

    workspace = _workspace(optical_world, tmp_path / "ws")
    parcels = load_parcels(workspace, "tiny", optical_world.years[0])[["NewID", "geometry"]]
    assert optical_world.s2_dir is not None
    product = sorted(optical_world.s2_dir.iterdir())[0]
    store = MdbStore(tmp_path / "mdb")
    store.initialise(MdbManifest("tiny", "x", None, 5.0, 10.0, 2, 0.1, "1"))
    report = extract_products(
        parcels.astype({"NewID": "int64"}),
        [Clouded(open_product(product))],
        store,
        ExtractionSettings(optical_signals=("NDVI",)),
    )
    assert report.extracted == []
    assert [name for name, _reason in report.empty] == [product.name.removesuffix(".SAFE")]
    assert "no parcel has enough valid pixels" in report.empty[0][1]
    assert store.has_product(product.name.removesuffix(".SAFE"))  # done: a rerun skips it
    assert open_mdb(store.root).timeseries().empty
    workspace.dispose()


def test_coherence_gaps_are_reported() -> None:
    from datetime import date, timedelta

    from capmon.mdb.extract import CoherenceProduct, coherence_report

    start = date(2024, 3, 1)
    pairs = [(start + timedelta(days=6 * i), start + timedelta(days=6 * (i + 1))) for i in range(8)]
    del pairs[3:5]  # two pairs lost
    products = [CoherenceProduct("S1A", 37, "VV", a, b, True) for a, b in pairs]
    products.append(CoherenceProduct("S1C", 37, "VV", None, start, False))  # amplitude
    lines = coherence_report(products)
    assert lines == ["orbit 37 VV: 2 pair(s) missing at 6 days, 2024-03-19 to 2024-04-06 (18 days)"]
    # one unit only: 12-day pairs are regular
    twelve = [CoherenceProduct("S1A", 37, "VH", start, start + timedelta(days=12), True)]
    twelve.append(
        CoherenceProduct(
            "S1A", 37, "VH", start + timedelta(days=12), start + timedelta(days=24), True
        )
    )
    assert coherence_report(twelve) == []
    # no unit named (Sen4CAP V1 names): the usual interval of the pairs is expected
    unnamed = [CoherenceProduct(None, 88, "VV", a, b, True) for a, b in pairs]
    assert len(coherence_report(unnamed)) == 1


def test_s1_cut_to_s2_tile_grids(
    world: SynthWorld, extracted: tuple[Workspace, SeasonExtraction], tmp_path: Path
) -> None:
    rows = _rows(extracted[1].mdb_path)
    s1 = rows[rows["signal"] == "COHE_VV"]
    assert s1["tile"].isna().all()  # whole-swath V1 products: no tile
    other = tmp_path / "ws2"
    workspace2 = _workspace(world, other)
    cut = extract_season(
        workspace2, "tiny", "S", ExtractionSettings(optical_signals=("NDVI",), s1_tile_grids=True)
    )
    tiled = _rows(cut.mdb_path)
    tiled_s1 = tiled[tiled["signal"] == "COHE_VV"]
    assert set(tiled_s1["tile"]) == {world.tile}
    # same parcels and dates; values close (bilinear resampling of a 20 m grid onto another)
    merged = s1.merge(tiled_s1, on=["parcel_id", "date", "orbit"], suffixes=("", "_cut"))
    assert len(merged) > 0.8 * len(s1)
    assert np.median(np.abs(merged["mean"] - merged["mean_cut"])) < 0.02
    workspace2.dispose()
