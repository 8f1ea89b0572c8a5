"""The timed methods, each run in its own spawned process so that its peak memory is its own.

Every worker takes file paths (never arrays), returns a dict of plain figures and adds
``peak_rss_bytes``: the high-water mark of the process's resident memory (``VmHWM``).
"""

from __future__ import annotations

import resource
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio

from capmon.mdb.labels import PixelGrid, parcel_pixels
from capmon.mdb.stats import ParcelPixels, ParcelStatistics, parcel_statistics

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


def capmon_first_date(
    parcels_path: str, band_path: str, threads: str, buffer_m: float, cache: str, out: str
) -> Figures:
    """First date: read the parcels and the band, find the parcels' pixels, then statistics."""
    started = time.perf_counter()
    parcels = gpd.read_parquet(parcels_path)
    read_parcels = time.perf_counter()
    band, grid = _read_band(band_path, threads)
    read_band = time.perf_counter()
    pixels = parcel_pixels(parcels, grid, buffer_m=buffer_m)
    labelled = time.perf_counter()
    stats = parcel_statistics(pixels, band)
    done = time.perf_counter()
    peak = peak_rss_bytes()
    np.savez(
        cache,
        parcel_ids=pixels.parcel_ids,
        offsets=pixels.offsets,
        pixel_index=pixels.pixel_index,
        shape=np.array(pixels.shape),
    )
    _statistics_frame(stats).to_parquet(out)
    return {
        "seconds": done - started,
        "read_parcels_seconds": read_parcels - started,
        "read_band_seconds": read_band - read_parcels,
        "parcel_pixels_seconds": labelled - read_band,
        "statistics_seconds": done - labelled,
        "parcel_pixels": len(pixels.pixel_index),
        "peak_rss_bytes": peak,
    }


def capmon_next_dates(cache: str, band_paths: list[str], threads: str) -> Figures:
    """Each further date: read the band and take statistics on the cached parcels' pixels."""
    started = time.perf_counter()
    with np.load(cache) as stored:
        pixels = ParcelPixels(
            stored["parcel_ids"],
            stored["offsets"],
            stored["pixel_index"],
            (int(stored["shape"][0]), int(stored["shape"][1])),
        )
    segment = pixels.segment
    load = time.perf_counter() - started
    reads: list[float] = []
    stats_seconds: list[float] = []
    totals: list[float] = []
    for path in band_paths:
        t0 = time.perf_counter()
        band, _grid = _read_band(path, threads)
        t1 = time.perf_counter()
        parcel_statistics(pixels, band, segment=segment)
        t2 = time.perf_counter()
        reads.append(t1 - t0)
        stats_seconds.append(t2 - t1)
        totals.append(t2 - t0)
        del band
    return {
        "seconds": statistics.median(totals),
        "runs": totals,
        "read_band_seconds": statistics.median(reads),
        "statistics_seconds": statistics.median(stats_seconds),
        "load_pixel_cache_seconds": load,
        "dates": len(band_paths),
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
