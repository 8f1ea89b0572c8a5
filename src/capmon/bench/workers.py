"""The timed methods, each run in its own spawned process so that its peak memory is its own.

Every worker takes file paths (never arrays), returns a dict of plain figures and adds
``peak_rss_bytes``: the high-water mark of the process's resident memory (``VmHWM``).
"""

from __future__ import annotations

import resource
import statistics
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
from rasterio.windows import Window

from capmon.grid import PixelGrid
from capmon.mdb.labels import parcel_pixels
from capmon.mdb.stats import ParcelPixels, ParcelStatistics, parcel_statistics
from capmon.mdb.strips import (
    RowBuffer,
    StripGroup,
    StripJob,
    StripPlan,
    plan_statistics,
    plan_strips,
    stream_jobs,
)

Figures = dict[str, Any]
STATISTICS = ("count", "mean", "stdev", "min", "max", "median", "p25", "p75")
EXACTEXTRACT_OPS = (
    "count",
    "mean",
    "stdev",
    "min",
    "max",
    "median",
    "quantile(q=0.25)",
    "quantile(q=0.75)",
)
CENTRE_OPS = (("count_half", "count"), ("mean_half", "mean"))
CENTRE_CHECK_PARCELS = 2_000
RASTERSTATS_STATS = "count mean std min max median percentile_25 percentile_75"


def peak_rss_bytes() -> int:
    """The high-water mark of this process's resident memory."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _read_band(path: str, threads: str) -> tuple[npt.NDArray[Any], PixelGrid]:
    with rasterio.Env(GDAL_NUM_THREADS=threads), rasterio.open(path) as src:
        band = src.read(1)
        grid = PixelGrid(src.crs, src.transform, src.width, src.height)
    return band, grid


def raw_decode(path: str, threads: str, repeats: int) -> Figures:
    """Decode the whole band ``repeats`` times (a fresh dataset each time: no block cache)."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        band, _grid = _read_band(path, threads)
        seconds.append(time.perf_counter() - started)
        del band
    return {
        "seconds": statistics.median(seconds),
        "runs": seconds,
        "threads": threads,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def _statistics_frame(stats: ParcelStatistics) -> pd.DataFrame:
    columns: dict[str, Any] = {"NewID": stats.parcel_ids, "pixels": stats.pixels}
    columns |= {name: getattr(stats, name) for name in STATISTICS}
    return pd.DataFrame(columns)


def _grid(path: str) -> PixelGrid:
    with rasterio.open(path) as src:
        return PixelGrid(src.crs, src.transform, src.width, src.height)


def _band_job(plan: StripPlan, band_path: str, threads: str) -> tuple[StripJob, Figures]:
    """The engine's path for one band file: read strip by strip (file kept open in the reading
    thread), statistics of each group of parcels as soon as its rows are read."""
    dataset: Any = None
    parts: list[ParcelStatistics] = []
    figures: Figures = {"measure_seconds": 0.0, "parts": parts}

    @contextmanager
    def opened() -> Iterator[None]:
        nonlocal dataset
        with rasterio.Env(GDAL_NUM_THREADS=threads), rasterio.open(band_path) as src:
            dataset = src
            yield

    def read(start: int, stop: int) -> RowBuffer:
        window = Window(0, start, dataset.width, stop - start)
        return RowBuffer(start, stop, {"band": dataset.read(1, window=window)})

    def measure(rows: RowBuffer, group: StripGroup) -> None:
        started = time.perf_counter()
        band: npt.NDArray[np.uint16] = np.asarray(rows.layers["band"])
        parts.append(parcel_statistics(group.pixels, band, segment=group.segment))
        figures["measure_seconds"] += time.perf_counter() - started

    return StripJob(plan, read, measure, opened), figures


def _streamed(
    plan: StripPlan, band_paths: list[str], threads: str
) -> tuple[list[ParcelStatistics], Figures]:
    """Stream the bands one after the other (as a season's products are: the next one is
    decoded while the last parcels of the current one are measured)."""
    prepared = [_band_job(plan, path, threads) for path in band_paths]
    started = time.perf_counter()
    for outcome in stream_jobs([job for job, _figures in prepared]):
        if outcome is not None:
            raise outcome
    total = time.perf_counter() - started
    stats = [plan_statistics(plan, figures["parts"]) for _job, figures in prepared]
    measure = sum(figures["measure_seconds"] for _job, figures in prepared)
    return stats, {"seconds": total, "measure_seconds": measure}


def capmon_first_date(
    parcels_path: str, band_path: str, threads: str, buffer_m: float, cache: str, out: str
) -> Figures:
    """First date: read the parcels, find their pixels on the band's grid, plan the strips,
    then stream the band (as the extraction engine does)."""
    started = time.perf_counter()
    parcels = gpd.read_parquet(parcels_path)
    read_parcels = time.perf_counter()
    pixels = parcel_pixels(parcels, _grid(band_path), buffer_m=buffer_m)
    labelled = time.perf_counter()
    np.savez(
        cache,
        parcel_ids=pixels.parcel_ids,
        offsets=pixels.offsets,
        pixel_index=pixels.pixel_index,
        shape=np.array(pixels.shape),
    )
    saved = time.perf_counter()
    plan = plan_strips(pixels)
    del pixels
    planned = time.perf_counter()
    (stats,), streamed = _streamed(plan, [band_path], threads)
    done = time.perf_counter()
    peak = peak_rss_bytes()
    _statistics_frame(stats).to_parquet(out)
    return {
        "seconds": done - started - (saved - labelled),
        "read_parcels_seconds": read_parcels - started,
        "parcel_pixels_seconds": labelled - read_parcels,
        "plan_seconds": planned - saved,
        "stream_seconds": streamed["seconds"],
        "statistics_seconds": streamed["measure_seconds"],
        "parcel_pixels": int(plan.pixel_count),
        "strip_rows": plan.strip_rows,
        "peak_rss_bytes": peak,
    }


def capmon_next_dates(cache: str, band_paths: list[str], threads: str) -> Figures:
    """Further dates: the bands streamed one after the other through the cached pixels' strip
    plan, as a season's products are; seconds per date = total / dates."""
    started = time.perf_counter()
    with np.load(cache) as stored:
        pixels = ParcelPixels(
            stored["parcel_ids"],
            stored["offsets"],
            stored["pixel_index"],
            (int(stored["shape"][0]), int(stored["shape"][1])),
        )
    plan = plan_strips(pixels)
    del pixels
    load = time.perf_counter() - started
    _stats, figures = _streamed(plan, band_paths, threads)
    dates = len(band_paths)
    return {
        "seconds": figures["seconds"] / dates,
        "statistics_seconds": figures["measure_seconds"] / dates,
        "load_pixel_cache_seconds": load,
        "dates": len(band_paths),
        "strip_rows": plan.strip_rows,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def exactextract_in_memory(parcels_path: str, band_path: str, threads: str, out: str) -> Figures:
    """exactextract on the band read into memory first, with the same statistics."""
    from exactextract import exact_extract
    from exactextract.feature import GeoPandasFeatureSource
    from exactextract.raster import NumPyRasterSource

    parcels = gpd.read_parquet(parcels_path)
    started = time.perf_counter()
    band, grid = _read_band(band_path, threads)
    read = time.perf_counter()
    west, north = grid.transform.c, grid.transform.f
    east = west + grid.width * grid.transform.a
    south = north + grid.height * grid.transform.e
    raster = NumPyRasterSource(band, west, south, east, north, nodata=0, srs_wkt=grid.crs.to_wkt())
    result = exact_extract(
        raster,
        GeoPandasFeatureSource(parcels),
        list(EXACTEXTRACT_OPS),
        include_cols=["NewID"],
        output="pandas",
    )
    done = time.perf_counter()
    peak = peak_rss_bytes()
    frame = pd.DataFrame(result).rename(columns={"quantile_25": "p25", "quantile_75": "p75"})
    # Untimed: pixels at least half covered, unweighted (close to capmon's pixel-centre rule).
    centre = exact_extract(
        raster,
        GeoPandasFeatureSource(parcels.iloc[:CENTRE_CHECK_PARCELS]),
        [f"{name}={op}(min_coverage_frac=0.5,coverage_weight=none)" for name, op in CENTRE_OPS],
        include_cols=["NewID"],
        output="pandas",
    )
    frame = frame.merge(pd.DataFrame(centre), on="NewID", how="left")
    frame.to_parquet(out)
    return {
        "seconds": done - started,
        "read_band_seconds": read - started,
        "extract_seconds": done - read,
        "columns": [str(c) for c in frame.columns],
        "peak_rss_bytes": peak,
    }


def rasterstats_subset(parcels_path: str, band_path: str, count: int, seed: int) -> Figures:
    """rasterstats (reading the band file per parcel) on ``count`` random parcels."""
    from rasterstats import zonal_stats

    parcels = gpd.read_parquet(parcels_path)
    rng = np.random.default_rng(seed)
    subset = parcels.iloc[np.sort(rng.choice(len(parcels), size=count, replace=False))]
    started = time.perf_counter()
    with warnings.catch_warnings():
        # rasterstats 0.21 multiplies Affine transforms with `*` (affine >= 3 prefers `@`)
        warnings.filterwarnings(
            "ignore", message="Use `@` matmul", category=PendingDeprecationWarning
        )
        result = zonal_stats(list(subset.geometry), band_path, stats=RASTERSTATS_STATS)
    done = time.perf_counter()
    return {
        "seconds_subset": done - started,
        "subset": count,
        "rows": len(result),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def mdb_query(root: str, queries: int, seed: int) -> Figures:
    """One-parcel time series: warm-up, then ``queries`` random parcels on an open MDB."""
    from capmon.mdb.query import open_mdb

    started = time.perf_counter()
    database = open_mdb(root)
    opened = time.perf_counter() - started
    ids = [int(r[0]) for r in database.duckdb().aggregate("parcel_id", "parcel_id").fetchall()]
    rng = np.random.default_rng(seed)
    chosen = [int(i) for i in rng.choice(ids, size=queries + 1, replace=True)]
    database.timeseries(parcel_ids=[chosen[0]])  # warm-up
    seconds: list[float] = []
    rows: list[int] = []
    for pid in chosen[1:]:
        t0 = time.perf_counter()
        frame = database.timeseries(parcel_ids=[pid])
        seconds.append(time.perf_counter() - t0)
        rows.append(len(frame))
    cold: list[float] = []
    for pid in chosen[1:6]:
        t0 = time.perf_counter()
        open_mdb(root).timeseries(parcel_ids=[pid])
        cold.append(time.perf_counter() - t0)
    return {
        "median_seconds": statistics.median(seconds),
        "p95_seconds": float(np.percentile(seconds, 95)),
        "open_seconds": opened,
        "open_and_query_median_seconds": statistics.median(cold),
        "queries": queries,
        "rows_per_query": statistics.median(rows),
        "peak_rss_bytes": peak_rss_bytes(),
    }
