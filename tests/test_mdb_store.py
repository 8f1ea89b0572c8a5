"""The MDB store: atomic per-product files, queries, derived signals."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from capmon.errors import ConflictError, InputError
from capmon.mdb.query import open_mdb
from capmon.mdb.stats import ParcelPixels, parcel_statistics
from capmon.mdb.store import Acquisition, MdbManifest, MdbStore, statistics_table

MANIFEST = MdbManifest(
    site="demo",
    parcel_set="decl-1",
    declaration_set_id=1,
    optical_buffer_m=5.0,
    sar_buffer_m=10.0,
    min_count=2,
    min_valid_fraction=0.1,
    engine_version="1",
)


def _pixels() -> ParcelPixels:
    # 3 parcels on a 4x4 grid: parcel 10 -> 4 pixels, 20 -> 3 pixels, 30 -> 1 pixel
    return ParcelPixels(
        np.array([10, 20, 30]),
        np.array([0, 4, 7, 8]),
        np.array([0, 1, 4, 5, 2, 3, 7, 15]),
        (4, 4),
    )


def _store(tmp_path: Path) -> MdbStore:
    store = MdbStore(tmp_path / "mdb")
    store.initialise(MANIFEST)
    pixels = _pixels()
    band = np.arange(16, dtype=np.float32).reshape(4, 4) / 16
    for day, product in ((3, "S2A_20240503"), (8, "S2B_20240508")):
        acquisition = Acquisition(product, "S2A", date(2024, 5, day), tile="31UFS")
        stats = parcel_statistics(pixels, band * day)
        table = statistics_table(acquisition, "NDVI", stats, stats.kept())
        store.write_product(product, [table])
    for pol, offset in (("VV", -10.0), ("VH", -17.0)):
        acquisition = Acquisition(
            f"S1A_{pol}", "S1A", date(2024, 5, 4), tile="31UFS", orbit=37, orbit_direction="ASC"
        )
        stats = parcel_statistics(pixels, band + offset)
        store.write_product(f"S1A_{pol}", [statistics_table(acquisition, f"AMP_{pol}", stats)])
    return store


def test_write_query_and_incremental(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.has_product("S2A_20240503")
    assert not store.has_product("S2A_20240513")
    mdb = open_mdb(store.root)
    assert mdb.signals() == ["AMP_VH", "AMP_VV", "NDVI"]
    series = mdb.timeseries(parcel_ids=[10], signals=["NDVI"])
    assert list(series["date"]) == [date(2024, 5, 3), date(2024, 5, 8)]
    band = np.arange(16, dtype=np.float32) / 16
    expected = np.mean(band[[0, 1, 4, 5]] * 3)
    assert series["mean"].iloc[0] == pytest.approx(expected, rel=1e-6)
    # parcel 30 has one pixel: never kept (count > 1 rule)
    assert mdb.timeseries(parcel_ids=[30], signals=["NDVI"]).empty
    assert len(mdb.timeseries(start="2024-05-04", end="2024-05-08", signals=["NDVI"])) == 2
    relation = mdb.duckdb()
    assert relation.filter("signal = 'NDVI'").aggregate("count(*)").fetchall() == [(4,)]


def test_add_signal_from_statistics(tmp_path: Path) -> None:
    mdb = open_mdb(_store(tmp_path).root)
    rows = mdb.add_signal("NDVI_CV", "NDVI_stdev / NDVI_mean")
    assert rows == 4
    cv = mdb.timeseries(parcel_ids=[10], signals=["NDVI_CV"])
    ndvi = mdb.timeseries(parcel_ids=[10], signals=["NDVI"])
    assert cv["mean"].to_numpy() == pytest.approx(
        (ndvi["stdev"] / ndvi["mean"]).to_numpy(), rel=1e-6
    )
    # the VV-VH ratio in dB, from two products (one per polarisation)
    assert mdb.add_signal("AMP_VVVH", "AMP_VV_mean - AMP_VH_mean") == 3
    ratio = mdb.timeseries(signals=["AMP_VVVH"])
    assert ratio["mean"].to_numpy() == pytest.approx([7.0, 7.0, 7.0])
    assert ratio["product_id"].iloc[0] == "S1A_VH+S1A_VV"
    with pytest.raises(ConflictError, match="already exists"):
        mdb.add_signal("NDVI_CV", "NDVI_mean")
    assert mdb.add_signal("NDVI_CV", "NDVI_mean * 2", replace=True) == 4
    with pytest.raises(InputError, match="unknown signals"):
        mdb.add_signal("X", "LAI_mean * 2")
    with pytest.raises(InputError, match="references no statistic"):
        mdb.add_signal("Y", "1 + 1")
    with pytest.raises(InputError, match="must be upper case"):
        mdb.add_signal("bad name", "NDVI_mean")
    with pytest.raises(InputError, match="cannot evaluate"):
        mdb.add_signal("Z", "NDVI_mean +* 2")


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    before = sorted(p.name for p in store.observations.iterdir())

    def broken_tables() -> list[pa.Table]:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.write_product("S2A_20240513", broken_tables())
    assert sorted(p.name for p in store.observations.iterdir()) == before


def test_the_temporary_file_of_a_killed_write_is_never_read(tmp_path: Path) -> None:
    """A process killed (SIGKILL) while writing leaves ``.<name>.<uuid>.tmp.parquet``: it is
    not a product, and its rows are not in queries or compaction."""
    store = _store(tmp_path)
    rows = len(open_mdb(store.root).timeseries())
    product = store.product_path("S2A_20240503")
    leftover = product.with_name(f".S2A_20240513.0123abcd.tmp{product.suffix}")
    leftover.write_bytes(product.read_bytes())  # a complete-looking file under the temp name
    assert not store.has_product("S2A_20240513")
    assert all(not name.startswith(".") for name in store.products())
    assert len(open_mdb(store.root).timeseries()) == rows
    store.compact()
    assert len(open_mdb(store.root).timeseries()) == rows


def test_manifest_protects_an_mdb_from_other_settings(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.initialise(MANIFEST)  # same settings: fine
    other = MdbManifest(**{**MANIFEST.to_json(), "optical_buffer_m": 0.0})
    with pytest.raises(InputError, match=r"optical_buffer_m: stored 5\.0, asked 0\.0"):
        store.initialise(other)
    with pytest.raises(InputError, match="not an MDB folder"):
        open_mdb(tmp_path / "nowhere")


def test_sen4cap_wide_export(tmp_path: Path) -> None:
    import struct

    import pyarrow.ipc as ipc

    from capmon.mdb.export import export_long, export_sen4cap

    mdb = open_mdb(_store(tmp_path).root)
    written = export_sen4cap(mdb, tmp_path / "out", "SEN4CAP_MDB1_S1_V20240501_20240531")
    table = ipc.open_file(written.ipc).read_all()
    assert table.column_names[0] == "NewID"
    assert table.schema.field("NewID").type == pa.int32()
    assert "20240503_mean_NDVI" in table.column_names
    assert "20240504_stdev_AMP_VH_037" in table.column_names
    assert "20240504_mean_AMP_VVVH_037" in table.column_names
    row = table.to_pylist()[0]
    assert row["NewID"] == 10
    assert row["20240504_mean_AMP_VVVH_037"] == pytest.approx(7.0)
    assert struct.unpack(">iii", written.index.read_bytes()) == (0, 10, 30)
    assert written.csv.read_text().splitlines()[0].startswith('"NewID"')
    assert export_long(mdb, tmp_path / "all.parquet", "parquet") == 4 + 3 + 3
    with pytest.raises(InputError, match="unknown export format"):
        export_long(mdb, tmp_path / "all.xlsx", "xlsx")


def test_compaction_keeps_every_row_once_and_is_incremental(tmp_path: Path) -> None:
    store = _store(tmp_path)
    before = open_mdb(store.root).timeseries()
    compaction = store.compact(bucket_parcels=16)
    assert compaction.generation == 1
    assert [Path(f).name for f in compaction.files] == [
        "bucket-0000000.parquet",
        "bucket-0000001.parquet",
    ]
    assert not list(store.observations.glob("*.parquet"))  # moved into the buckets
    assert store.has_product("S2A_20240503")
    assert store.products() == ["S1A_VH", "S1A_VV", "S2A_20240503", "S2B_20240508"]
    after = open_mdb(store.root).timeseries()
    cols = list(before.columns)
    pd.testing.assert_frame_equal(
        after.sort_values(cols).reset_index(drop=True),
        before.sort_values(cols).reset_index(drop=True),
    )
    one = open_mdb(store.root).timeseries(parcel_ids=[20])
    pd.testing.assert_frame_equal(
        one.reset_index(drop=True),
        before[before["parcel_id"] == 20].reset_index(drop=True),
    )
    # a new product goes to its own file, queries see both, the next compaction merges it
    pixels = _pixels()
    stats = parcel_statistics(pixels, np.ones((4, 4), dtype=np.float32))
    late = Acquisition("S2C_20240420", "S2C", date(2024, 4, 20), tile="31UFS")
    store.write_product("S2C_20240420", [statistics_table(late, "NDVI", stats, stats.kept())])
    assert len(open_mdb(store.root).timeseries(signals=["NDVI"])) == 6
    second = store.compact(bucket_parcels=16)
    assert second.generation == 2
    assert "S2C_20240420" in second.products
    assert not (store.root / "compacted" / "g1").exists()
    assert len(open_mdb(store.root).timeseries(signals=["NDVI"])) == 6
    assert store.compact(bucket_parcels=16) == second  # nothing new: nothing done


def test_a_crash_during_compaction_changes_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import capmon.mdb.store as store_module

    store = _store(tmp_path)
    before = open_mdb(store.root).timeseries()

    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "atomic_path", crash)  # the manifest is never written
    with pytest.raises(OSError, match="disk full"):
        store.compact(bucket_parcels=16)
    monkeypatch.undo()
    assert (store.root / "compacted" / "g1").exists()  # orphan files, not listed anywhere
    pd.testing.assert_frame_equal(open_mdb(store.root).timeseries(), before)
    store.compact(bucket_parcels=16)  # the next attempt replaces the orphan generation
    assert len(open_mdb(store.root).timeseries()) == len(before)
