"""Reruns and the one-observation rule on real-format products: a rerun adds nothing, a better
copy replaces the stored one, a date that only the parcel's other tile has is kept, restricted
extractions do not hide products, and the MDB remembers its settings (issue 15, defects 1, 2,
4, 5, 6)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import pytest
from affine import Affine
from shapely.geometry import box
from typer.testing import CliRunner

from capmon.cli.main import app
from capmon.errors import InputError
from capmon.mdb.extract import (
    ExtractionSettings,
    ParcelPixelCache,
    TileRanks,
    extract_products,
    extract_season,
)
from capmon.mdb.query import open_mdb
from capmon.mdb.store import MdbStore, read_compaction, read_manifest
from capmon.parcels import import_declarations, load_parcels
from capmon.signals.masks import SclMaskConfig
from capmon.sites import SeasonDates, create_season, create_site, get_site
from capmon.sources import MaskConfig, ingest_products, open_product
from capmon.synth.formats import write_s1_amplitude
from capmon.workspace import Workspace, open_workspace
from tests.test_sources_helpers import S1_EPSG, SENSING, TILE, s1_values, sen2cor_product

AOI = box(4.40, 51.40, 4.50, 51.46)  # around the 60 x 60 px test window, in tiles 31UES and 31UFS
SITE = "t"
runner = CliRunner()


def _parcels_file(folder: Path) -> Path:
    """Four 150 m squares inside the test window (which lies in the overlap of 31UES/31UFS)."""
    x0, y0 = TILE.ulx + 600, TILE.uly - 1200
    squares = [
        box(x0 + 40 + 160 * i, y0 - 40 - 160 * j - 150, x0 + 190 + 160 * i, y0 - 40 - 160 * j)
        for i, j in ((0, 0), (1, 0), (0, 1), (1, 1))
    ]
    frame = gpd.GeoDataFrame(
        {"parcel": ["A", "B", "C", "D"], "crop": ["1"] * 4, "geometry": squares},
        crs=f"EPSG:{TILE.epsg}",
    )
    path = folder / "parcels.gpkg"
    frame.to_file(path)
    return path


def _workspace(tmp_path: Path) -> Workspace:
    workspace = open_workspace(tmp_path / "ws")
    with workspace.session() as session:
        site = create_site(session, SITE, AOI)
        assert {"31UES", "31UFS"} <= set(site.tiles)
        create_season(session, site, "2024", SeasonDates.parse("2024-01-01", "2024-12-31"))
    import_declarations(
        workspace,
        SITE,
        2024,
        _parcels_file(tmp_path),
        parcel_id_cols=["parcel"],
        crop_code_col="crop",
    )
    return workspace


def _ingest(workspace: Workspace, *folders: Path) -> None:
    with workspace.session() as session:
        ingest_products(session, get_site(session, SITE), list(folders))


def _rows(workspace: Workspace, result_path: Path) -> pd.DataFrame:
    return open_mdb(result_path).timeseries()


def _assert_one_row_per_observation(rows: pd.DataFrame) -> None:
    key = ["parcel_id", "signal", "sensor", "date", "orbit"]
    assert not rows.duplicated(key).any(), rows[rows.duplicated(key, keep=False)]


def test_a_rerun_adds_nothing_and_a_better_copy_replaces_the_stored_one(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    inputs = tmp_path / "inputs"
    official = sen2cor_product(inputs, fmt="cog", processing_baseline="05.10").path
    sen2cor_product(inputs, fmt="cog", processing_baseline="99.99")  # a reprocessing placeholder
    sen2cor_product(inputs, fmt="cog", sensing_time=SENSING + timedelta(days=10))
    _ingest(workspace, inputs)
    settings = ExtractionSettings(optical_signals=("NDVI", "B04"), sar=False)

    first = extract_season(workspace, SITE, "2024", settings)
    assert len(first.report.extracted) == 2
    assert len(first.report.superseded) == 1
    before = _rows(workspace, first.mdb_path)
    _assert_one_row_per_observation(before)
    assert official.stem in set(before["product_id"])

    second = extract_season(workspace, SITE, "2024", settings)  # the rerun of defect 1
    assert second.report.extracted == []
    assert second.report.rows == 0
    assert sorted(second.report.already_done) == sorted(first.report.extracted)
    pd.testing.assert_frame_equal(_rows(workspace, second.mdb_path), before)

    # A newer processing of the first acquisition arrives: its rows replace the stored ones.
    newer = sen2cor_product(tmp_path / "later", fmt="cog", processing_baseline="05.11").path
    _ingest(workspace, tmp_path / "later")
    third = extract_season(workspace, SITE, "2024", settings, compact=False)
    assert third.report.replaced == [(newer.stem, official.stem)]
    after = _rows(workspace, third.mdb_path)
    _assert_one_row_per_observation(after)
    assert official.stem not in set(after["product_id"])
    assert len(after) == len(before)
    # and compaction drops the replaced rows for good
    MdbStore(third.mdb_path).compact()
    compaction = read_compaction(third.mdb_path)
    assert official.stem in compaction.retired
    stored = pq.read_table(next(third.mdb_path / f for f in compaction.files)).to_pandas()
    assert official.stem not in set(stored["product_id"])
    pd.testing.assert_frame_equal(_rows(workspace, third.mdb_path), after)
    assert extract_season(workspace, SITE, "2024", settings).report.rows == 0


def test_a_date_only_on_the_other_tile_is_kept(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    inputs = tmp_path / "inputs"
    later = SENSING + timedelta(days=10)
    # the parcels' home tile (name order); its 60 m grid is 40 m off 31UFS's
    sen2cor_product(inputs, fmt="cog", tile="31UES", ulx=TILE.ulx + 560)
    sen2cor_product(inputs, fmt="cog", tile="31UFS")
    only_other = sen2cor_product(inputs, fmt="cog", tile="31UFS", sensing_time=later).path
    _ingest(workspace, inputs)
    result = extract_season(workspace, SITE, "2024", ExtractionSettings(optical_signals=("NDVI",)))
    assert not result.report.empty, result.report.empty  # no false "no valid pixels"
    rows = _rows(workspace, result.mdb_path)
    _assert_one_row_per_observation(rows)
    parcels = load_parcels(workspace, SITE, 2024)
    assert TileRanks(parcels, ["31UES", "31UFS"]).home(parcels["NewID"].to_numpy()) == ["31UES"] * 4
    for day, tile in ((SENSING.date(), "31UES"), (later.date(), "31UFS")):
        on_day = rows[rows["date"] == day]
        assert sorted(on_day["parcel_id"]) == sorted(parcels["NewID"]), day
        assert set(on_day["tile"]) == {tile}
    assert set(rows.loc[rows["date"] == later.date(), "product_id"]) == {only_other.stem}


def s1_amplitude(out: Path) -> Path:
    """A Sen4CAP S1 amplitude product (20 m, EPSG:3035) over the parcels."""
    return write_s1_amplitude(
        out,
        site_id=7,
        polarisation="VV",
        relative_orbit=88,
        time=SENSING + timedelta(days=1),
        time_pair=SENSING - timedelta(days=5),
        amplitude=s1_values(),
        transform=Affine(20.0, 0.0, 3_935_000.0, 0.0, -20.0, 3_161_600.0),
        epsg=S1_EPSG,
        naming="v1",
        spacecraft="S1A",
        orbit_direction="ASC",
    )


def test_a_sar_free_run_does_not_hide_the_sentinel1_products(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    inputs = tmp_path / "inputs"
    sen2cor_product(inputs, fmt="cog")
    s1_amplitude(inputs)
    _ingest(workspace, inputs)
    optical = extract_season(
        workspace, SITE, "2024", ExtractionSettings(optical_signals=("NDVI",), sar=False)
    )
    assert len(optical.report.not_requested) == 1
    assert "AMP_VV" not in set(_rows(workspace, optical.mdb_path)["signal"])
    full = extract_season(workspace, SITE, "2024", ExtractionSettings(optical_signals=("NDVI",)))
    assert len(full.report.extracted) == 1
    assert full.report.already_done == optical.report.extracted
    rows = _rows(workspace, full.mdb_path)
    assert {"NDVI", "AMP_VV"} <= set(rows["signal"])


def test_a_rerun_with_more_signals_extracts_just_those(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    inputs = tmp_path / "inputs"
    sen2cor_product(inputs, fmt="cog")
    _ingest(workspace, inputs)
    first = extract_season(workspace, SITE, "2024", ExtractionSettings(optical_signals=("NDVI",)))
    ndvi = _rows(workspace, first.mdb_path)
    assert set(ndvi["signal"]) == {"NDVI"}
    assert read_manifest(first.mdb_path).signals == ("NDVI",)

    more = extract_season(
        workspace, SITE, "2024", ExtractionSettings(optical_signals=("NDVI", "B04"))
    )
    assert len(more.report.extracted) == 1
    rows = _rows(workspace, more.mdb_path)
    assert set(rows["signal"]) == {"NDVI", "B04"}
    pd.testing.assert_frame_equal(
        rows[rows["signal"] == "NDVI"].reset_index(drop=True), ndvi.reset_index(drop=True)
    )
    assert read_manifest(more.mdb_path).signals == ("NDVI", "B04")
    assert extract_season(
        workspace, SITE, "2024", ExtractionSettings(optical_signals=("B04",))
    ).report.already_done

    # other masks or buffers: refused, naming the command that rebuilds
    stricter = MaskConfig(scl=SclMaskConfig.from_valid_classes({4, 5, 6, 7}))
    with pytest.raises(InputError, match=r"mask.*--rebuild"):
        extract_season(
            workspace, SITE, "2024", ExtractionSettings(optical_signals=("NDVI",), mask=stricter)
        )
    with pytest.raises(InputError, match=r"optical_buffer_m: stored 5\.0, asked 0\.0"):
        extract_season(
            workspace,
            SITE,
            "2024",
            ExtractionSettings(optical_signals=("NDVI",), optical_buffer_m=0.0),
        )
    rebuilt = extract_season(
        workspace,
        SITE,
        "2024",
        ExtractionSettings(optical_signals=("NDVI",), mask=stricter),
        rebuild=True,
    )
    assert read_manifest(rebuilt.mdb_path).signals == ("NDVI",)
    counts = _rows(workspace, rebuilt.mdb_path).set_index("parcel_id")["count"]
    assert (counts <= ndvi.set_index("parcel_id")["count"]).all()
    assert (counts < ndvi.set_index("parcel_id")["count"]).any()


class _WithoutBand:
    """A real reader that hides one band (a 20 m-only product has no B08)."""

    def __init__(self, path: Path, hidden: str) -> None:
        self._reader = open_product(path)
        self.bands = tuple(b for b in self._reader.bands if b != hidden)

    def __getattr__(self, name: str) -> object:
        return getattr(self._reader, name)


def test_signals_a_product_cannot_give_are_skipped_and_the_others_extracted(
    tmp_path: Path,
) -> None:
    path = sen2cor_product(tmp_path / "inputs", fmt="cog").path
    parcels = (
        gpd.read_file(_parcels_file(tmp_path))
        .drop(columns=["crop"])
        .rename(columns={"parcel": "NewID"})
    )
    parcels["NewID"] = range(1, 5)
    store = MdbStore(tmp_path / "mdb")
    settings = ExtractionSettings(optical_signals=("NDVI", "B04"))
    store.initialise(settings.manifest("t", "x", None))
    reader = _WithoutBand(path, "B08")
    report = extract_products(
        parcels,
        [reader],  # type: ignore[list-item]
        store,
        settings,
        cache=ParcelPixelCache(parcels, None),
    )
    assert report.extracted == [path.stem]
    assert [(s, why) for _p, s, why in report.skipped_signals] == [
        ("NDVI", "the product has no band B08")
    ]
    assert set(open_mdb(store.root).timeseries()["signal"]) == {"B04"}
    again = extract_products(parcels, [reader], store, settings)  # type: ignore[list-item]
    assert again.already_done == [path.stem]
    info = runner.invoke(app, ["mdb", "info", str(store.root)])
    assert info.exit_code == 0, info.output
    assert "not given by 1 products: NDVI (the product has no band B08)" in info.output


def test_cli_json_and_valid_scl(tmp_path: Path) -> None:
    workspace = _workspace(tmp_path)
    sen2cor_product(tmp_path / "inputs", fmt="cog")
    _ingest(workspace, tmp_path / "inputs")
    home = ["--home", str(workspace.home)]
    result = runner.invoke(
        app,
        [
            *home,
            "mdb",
            "extract",
            SITE,
            "2024",
            "--signals",
            "NDVI,B04",
            "--valid-scl",
            "4,5",
            "--no-sar",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["figures"]["extracted"] == 1
    mdb = Path(payload["outputs"]["mdb"])
    assert set(open_mdb(mdb).signals()) == {"NDVI", "B04"}
    assert read_manifest(mdb).mask is not None
    assert read_manifest(mdb).mask["scl"]["invalid_classes"] == [  # type: ignore[index]
        c for c in range(12) if c not in (4, 5)
    ]


def test_season_runs_follow_the_same_rule(tmp_path: Path) -> None:
    """`season run` (units on Dask workers) adds nothing on a rerun and lets a better copy
    replace the stored one, as `mdb extract` does."""
    from capmon.orchestrator.execute import ClusterSpec, dask_client, run_season

    workspace = _workspace(tmp_path)
    inputs = tmp_path / "inputs"
    official = sen2cor_product(inputs, fmt="cog", processing_baseline="05.10").path
    sen2cor_product(inputs, fmt="cog", processing_baseline="99.99")
    _ingest(workspace, inputs)
    with dask_client(ClusterSpec(workers=1, threads=1)) as client:
        first = run_season(workspace, SITE, "2024", processors=["mdb"], client=client)
        assert first.extracted == [official.stem]
        mdb = next((workspace.home / "mdb" / SITE / "2024").iterdir())
        before = open_mdb(mdb).timeseries()
        second = run_season(workspace, SITE, "2024", processors=["mdb"], client=client)
        assert second.extracted == []
        assert second.rows == 0
        pd.testing.assert_frame_equal(open_mdb(mdb).timeseries(), before)
        newer = sen2cor_product(tmp_path / "later", fmt="cog", processing_baseline="05.11").path
        _ingest(workspace, tmp_path / "later")
        third = run_season(workspace, SITE, "2024", processors=["mdb"], client=client)
        assert third.extracted == [newer.stem]
    after = open_mdb(mdb).timeseries()
    _assert_one_row_per_observation(after)
    assert set(after["product_id"]) == {newer.stem}
    assert len(after) == len(before)
