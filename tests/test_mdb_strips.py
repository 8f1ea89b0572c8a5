"""Strip-by-strip statistics give exactly the whole-grid statistics; windowed band reads give
exactly the rows of whole reads."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS

from capmon.errors import InputError
from capmon.mdb.stats import STATISTICS, ParcelPixels, ParcelStatistics, parcel_statistics
from capmon.mdb.strips import (
    RowBuffer,
    StripGroup,
    StripJob,
    plan_statistics,
    plan_strips,
    stream_jobs,
    stream_strips,
)
from capmon.sources.raster import BandFiles, BandSource, Calibration

UTM31 = CRS.from_epsg(32631)


def _random_pixels(rng: np.random.Generator, shape: tuple[int, int], n: int) -> ParcelPixels:
    """Parcels of random rectangles (some tall, some empty, some overlapping)."""
    height, width = shape
    index: list[npt.NDArray[np.int64]] = []
    for _ in range(n):
        if rng.random() < 0.1:
            index.append(np.zeros(0, dtype=np.int64))
            continue
        r0 = int(rng.integers(0, height))
        r1 = int(rng.integers(r0 + 1, min(height, r0 + int(rng.integers(1, height + 1))) + 1))
        c0 = int(rng.integers(0, width))
        c1 = int(rng.integers(c0 + 1, width + 1))
        rows, cols = np.mgrid[r0:r1, c0:c1]
        flat = (rows * width + cols).ravel().astype(np.int64)
        keep = rng.random(len(flat)) > 0.2
        index.append(flat[keep] if keep.any() else flat[:1])
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(i) for i in index], out=offsets[1:])
    return ParcelPixels(
        np.arange(100, 100 + n, dtype=np.int64),
        offsets,
        np.concatenate(index) if index else np.zeros(0, dtype=np.int64),
        shape,
    )


def _streamed(
    pixels: ParcelPixels,
    band: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    strip_rows: int,
    prefetch: bool,
) -> ParcelStatistics:
    plan = plan_strips(pixels, strip_rows)
    parts: list[ParcelStatistics] = []

    def read(start: int, stop: int) -> RowBuffer:
        return RowBuffer(start, stop, {"band": band[start:stop], "valid": valid[start:stop]})

    def measure(rows: RowBuffer, group: StripGroup) -> None:
        assert rows.stop - rows.start == group.pixels.shape[0]
        values = np.asarray(rows.layers["band"], dtype=np.float32)
        mask = np.asarray(rows.layers["valid"], dtype=bool)
        parts.append(parcel_statistics(group.pixels, values, mask, segment=group.segment))

    stream_strips(plan, read, measure, prefetch=prefetch)
    return plan_statistics(plan, parts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    height=st.integers(1, 60),
    width=st.integers(1, 30),
    n=st.integers(1, 25),
    strip_rows=st.integers(1, 70),
    prefetch=st.booleans(),
)
def test_strips_give_exactly_the_whole_grid_statistics(
    seed: int, height: int, width: int, n: int, strip_rows: int, prefetch: bool
) -> None:
    rng = np.random.default_rng(seed)
    pixels = _random_pixels(rng, (height, width), n)
    band = np.round(rng.normal(0.5, 0.3, size=(height, width)) * 8).astype(np.float32)
    band[rng.random((height, width)) < 0.05] = np.nan
    valid = rng.random((height, width)) > 0.2
    whole = parcel_statistics(pixels, band, valid)
    streamed = _streamed(pixels, band, valid, strip_rows, prefetch)
    np.testing.assert_array_equal(streamed.parcel_ids, whole.parcel_ids)
    np.testing.assert_array_equal(streamed.pixels, whole.pixels)
    for name in STATISTICS:
        np.testing.assert_array_equal(getattr(streamed, name), getattr(whole, name), name)


def test_plan_keeps_only_the_rows_later_parcels_need() -> None:
    shape = (100, 4)
    # parcel 1: rows 0-9; parcel 2: rows 5-54 (tall, crosses two strips); parcel 3: rows 90-99
    rows = {1: range(0, 10), 2: range(5, 55), 3: range(90, 100)}
    index = [np.array([r * 4 for r in span], dtype=np.int64) for span in rows.values()]
    offsets = np.array([0, 10, 60, 70], dtype=np.int64)
    pixels = ParcelPixels(np.array([1, 2, 3]), offsets, np.concatenate(index), shape)
    plan = plan_strips(pixels, 20)
    assert [list(g.pixels.parcel_ids) for g in plan.groups] == [[1], [], [2], [], [3]]
    assert (plan.groups[2].first_row, plan.groups[2].end_row) == (5, 60)
    # after strips 0 and 1, parcel 2 still needs rows from 5; after strip 2, none before row 60
    assert plan.keep_from == (5, 5, 60, 80, 100)


def test_a_failing_read_stops_the_stream_and_names_the_strip() -> None:
    pixels = _random_pixels(np.random.default_rng(1), (50, 10), 8)
    plan = plan_strips(pixels, 10)
    before = threading.active_count()

    def read(start: int, stop: int) -> RowBuffer:
        if start == 20:
            raise InputError(f"band B04 of product P is truncated at row {start}")
        return RowBuffer(start, stop, {"band": np.zeros((stop - start, 10), np.float32)})

    for prefetch in (True, False):
        with pytest.raises(InputError, match="truncated at row 20"):
            stream_strips(plan, read, lambda rows, group: None, prefetch=prefetch)
    assert threading.active_count() == before


def test_a_failing_measure_stops_the_reading_thread() -> None:
    pixels = _random_pixels(np.random.default_rng(2), (50, 10), 8)
    plan = plan_strips(pixels, 5)
    reads: list[int] = []
    before = threading.active_count()

    def read(start: int, stop: int) -> RowBuffer:
        reads.append(start)
        return RowBuffer(start, stop, {"band": np.zeros((stop - start, 10), np.float32)})

    def measure(rows: RowBuffer, group: StripGroup) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        stream_strips(plan, read, measure)
    assert threading.active_count() == before
    assert len(reads) < 10  # it did not read the whole product


def _write(path: Path, values: npt.NDArray[np.generic], res: float, blocks: bool) -> Path:
    profile = {
        "driver": "GTiff",
        "width": values.shape[1],
        "height": values.shape[0],
        "count": 1,
        "dtype": str(values.dtype),
        "crs": UTM31,
        "transform": Affine(res, 0, 600_000, 0, -res, 5_700_020),
    }
    if blocks:
        profile |= {"tiled": True, "blockxsize": 16, "blockysize": 16, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
    return path


@pytest.mark.parametrize("blocks", [False, True])
def test_windowed_reads_equal_the_rows_of_whole_reads(tmp_path: Path, blocks: bool) -> None:
    rng = np.random.default_rng(3)
    b10 = _write(tmp_path / "b10.tif", rng.integers(1, 9000, (66, 42), dtype=np.uint16), 10, blocks)
    b20 = _write(tmp_path / "b20.tif", rng.integers(0, 9000, (33, 21), dtype=np.uint16), 20, blocks)
    b60 = _write(tmp_path / "b60.tif", rng.integers(1, 9000, (11, 7), dtype=np.uint16), 60, blocks)
    scl = _write(tmp_path / "scl.tif", rng.integers(0, 12, (33, 21), dtype=np.uint8), 20, blocks)
    calibration = Calibration(quantification=10000, nodata=0)
    files = BandFiles(
        "P",
        {
            "B04": [BandSource(b10, calibration)],
            "B11": [BandSource(b20, calibration)],
            "B01": [BandSource(b60, calibration)],
            "SCL": [BandSource(scl)],
        },
    )
    grid10 = files.grid(10, ["B04"])
    grid20 = files.grid(20, ["B11"])

    def decode(layer: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        return np.asarray(layer > 3, dtype=np.bool_)

    with files.kept_open():
        for grid in (grid10, grid20):
            for name in ("B04", "B11", "B01"):
                whole = files.read(name, grid)
                for start, stop in [
                    (0, 1),
                    (0, 7),
                    (5, 13),
                    (3, grid.height),
                    (grid.height - 1, grid.height),
                ]:
                    part = files.read(name, grid, (start, stop))
                    np.testing.assert_array_equal(part, whole[start:stop], f"{name} {start}:{stop}")
            mask = files.read_mask("SCL", grid, decode)
            for start, stop in [(0, 5), (7, 8), (1, grid.height)]:
                np.testing.assert_array_equal(
                    files.read_mask("SCL", grid, decode, (start, stop)), mask[start:stop]
                )
        with pytest.raises(InputError, match="rows 60:70 are outside"):
            files.read("B04", grid10, (60, 70))


def test_a_product_streamed_in_strips_equals_the_whole_product(tmp_path: Path) -> None:
    """The extraction of a real synthetic product does not depend on the strip height."""
    from capmon.mdb.extract import ExtractionSettings, extract_products
    from capmon.mdb.query import open_mdb
    from capmon.mdb.store import MdbManifest, MdbStore
    from capmon.sources import open_product
    from capmon.synth.world import generate_world

    world = generate_world(
        tmp_path / "world",
        parcels=30,
        window_km=1.0,
        revisit_days=60,
        s2_format="cog",
        sentinel1=True,
    )
    from capmon.synth.world import SynthWorld

    assert isinstance(world, SynthWorld)
    import geopandas as gpd

    declared = gpd.read_file(world.declarations[world.years[0]])
    parcels = gpd.GeoDataFrame(
        {"NewID": np.arange(1, len(declared) + 1, dtype=np.int64)},
        geometry=declared.geometry.values,
        crs=declared.crs,
    )
    products = sorted(
        p for d in (world.s2_dir, world.s1_dir) if d is not None for p in d.iterdir()
    )[:6]
    tables = {}
    for strip_rows, prefetch in ((10_000, False), (7, True), (1, False)):
        store = MdbStore(tmp_path / f"mdb-{strip_rows}")
        store.initialise(MdbManifest("t", "x", None, 5.0, 10.0, 2, 0.1, "1"))
        settings_ = ExtractionSettings(
            optical_signals=("NDVI", "B11", "LAI"), strip_rows=strip_rows, prefetch=prefetch
        )
        report = extract_products(parcels, [open_product(p) for p in products], store, settings_)
        assert not report.failed
        tables[strip_rows] = (
            open_mdb(store.root)
            .timeseries()
            .sort_values(["parcel_id", "signal", "date"])
            .reset_index(drop=True)
        )
    assert len(tables[10_000]) > 50
    for strip_rows in (7, 1):
        assert tables[strip_rows].equals(tables[10_000])


@pytest.mark.parametrize("prefetch", [True, False])
def test_a_failing_product_does_not_stop_the_next_ones(prefetch: bool) -> None:
    rng = np.random.default_rng(4)
    shape = (40, 12)
    pixels = _random_pixels(rng, shape, 10)
    band = rng.normal(size=shape).astype(np.float32)
    valid = np.ones(shape, dtype=bool)
    plan = plan_strips(pixels, 8)
    measured: dict[str, list[ParcelStatistics]] = {"a": [], "b": [], "c": []}

    def job(name: str, fail_read_at: int | None = None, fail_measure: bool = False) -> StripJob:
        def read(start: int, stop: int) -> RowBuffer:
            if start == fail_read_at:
                raise InputError(f"product {name}: strip {start} is corrupt")
            return RowBuffer(start, stop, {"band": band[start:stop], "valid": valid[start:stop]})

        def measure(rows: RowBuffer, group: StripGroup) -> None:
            if fail_measure:
                raise InputError(f"product {name}: cannot measure")
            values = np.asarray(rows.layers["band"], dtype=np.float32)
            measured[name].append(parcel_statistics(group.pixels, values, segment=group.segment))

        return StripJob(plan, read, measure)

    jobs: list[StripJob | BaseException | None] = [
        job("a", fail_read_at=16),
        InputError("product p: cannot be opened"),
        job("b", fail_measure=True),
        None,
        job("c"),
    ]
    outcomes = list(stream_jobs(jobs, prefetch=prefetch))
    assert [str(o) if o else None for o in outcomes] == [
        "product a: strip 16 is corrupt",
        "product p: cannot be opened",
        "product b: cannot measure",
        None,
        None,
    ]
    whole = parcel_statistics(pixels, band)
    np.testing.assert_array_equal(plan_statistics(plan, measured["c"]).mean, whole.mean)
