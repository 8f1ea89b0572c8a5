"""Parcel time series for L4B: MDB rows -> one matrix (parcels x dates) per sensor and orbit.

Sen4CAP stacks the season's rasters and takes each parcel's mean per date (sen4cap-system.md
6.2); the MDB already holds those means. Optical rows become one matrix (a date with several
rows, e.g. two tiles, keeps the row with most pixels, as Sen4CAP's ``aggregate('first')`` after
sorting by count); Sentinel-1 rows become one matrix per relative orbit, because Sen4CAP runs
its coherence detector orbit by orbit. A missing observation is NaN, never 0.

Pixel counts: L4B uses a row whatever its pixel count, on purpose. ``count`` 0 means *unknown*
(an imported MDB of means, :data:`capmon.mdb.imports.UNKNOWN_COUNT`) and ``count`` 1 a
one-pixel mean (a small parcel; the MDB's extraction ``min_count`` of 2 would have dropped it,
an import keeps it). Each method weighs such values itself: Sen4CAP's coherence floor
``sqrt(min_cohe_var / pixels)`` is widest for one pixel (0.155 for 1 pixel) and absent for
an unknown count; capmon's method scores every change against the parcel's own measured
noise. ``min_count`` of :func:`build_series` drops known counts below it (unknown ones stay).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from capmon.mdb.query import MarkersDatabase

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Days = npt.NDArray[np.datetime64]


@dataclass(frozen=True)
class SeriesMatrix:
    """One signal of one sensor (and orbit): ``values[i, j]`` of parcel ``i`` at ``dates[j]``.

    ``counts`` are the pixel counts behind each mean; ``first_dates`` is the first date of each
    coherence pair (``None`` for optical and amplitude series).
    """

    signal: str
    parcel_ids: I64
    dates: Days
    values: F64
    counts: F64
    first_dates: Days | None = None
    orbit: int | None = None
    direction: str | None = None

    @property
    def empty(self) -> bool:
        return self.values.size == 0

    def days(self) -> F64:
        """Dates as days since 1970-01-01 (floats, for rates and fits)."""
        days: F64 = self.dates.astype("datetime64[D]").astype(np.int64).astype(np.float64)
        return days

    def rows(self, parcel_ids: Sequence[int] | I64) -> SeriesMatrix:
        """The same matrix for ``parcel_ids`` (absent parcels get all-NaN rows)."""
        wanted = np.asarray(parcel_ids, dtype=np.int64)
        position = {int(p): i for i, p in enumerate(self.parcel_ids)}
        index = np.array([position.get(int(p), -1) for p in wanted], dtype=np.int64)
        values = np.full((len(wanted), len(self.dates)), np.nan)
        counts = np.zeros((len(wanted), len(self.dates)))
        found = index >= 0
        values[found] = self.values[index[found]]
        counts[found] = self.counts[index[found]]
        return SeriesMatrix(self.signal, wanted, self.dates, values, counts, self.first_dates,
                            self.orbit, self.direction)  # fmt: skip


@dataclass(frozen=True)
class ParcelSeries:
    """Every series L4B uses for a set of parcels."""

    parcel_ids: I64
    optical: SeriesMatrix | None
    coherence: dict[str, list[SeriesMatrix]]  # polarisation -> one matrix per orbit
    amplitude: dict[str, list[SeriesMatrix]]  # polarisation -> one matrix per orbit

    @property
    def has_s1(self) -> bool:
        return any(m for m in self.coherence.values())

    @property
    def has_s2(self) -> bool:
        return self.optical is not None and not self.optical.empty


def own_grids(values: F64) -> Iterator[tuple[I64, I64]]:
    """``(rows, columns)``: parcels grouped by the dates they have a value for.

    A run's matrix shares one date grid between all its parcels; detectors that step from one
    observation to the next must step through each parcel's *own* observations, or a parcel's
    result would depend on the dates of the other parcels of the run. Parcels with the same
    observed dates (the usual case) are processed together, on those columns only.
    """
    if values.size == 0:
        return
    observed = np.isfinite(values)
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    for k, pattern in enumerate(patterns):
        if not pattern.any():
            continue
        rows = np.flatnonzero(inverse.reshape(-1) == k).astype(np.int64)
        yield rows, np.flatnonzero(pattern).astype(np.int64)


def _empty_days() -> Days:
    return np.array([], dtype="datetime64[D]")


def matrix(
    rows: pd.DataFrame, signal: str, parcel_ids: I64, orbit: int | None = None,
    direction: str | None = None,
) -> SeriesMatrix:  # fmt: skip
    """Pivot long MDB rows of one signal (and orbit) into a parcels x dates matrix."""
    if rows.empty:
        nothing = np.zeros((len(parcel_ids), 0))
        return SeriesMatrix(signal, parcel_ids, _empty_days(), nothing + np.nan, nothing, None,
                            orbit, direction)  # fmt: skip
    frame = rows.assign(day=pd.to_datetime(rows["date"]).dt.normalize())
    frame = frame.sort_values(["parcel_id", "day", "count"], ascending=[True, True, False])
    frame = frame.drop_duplicates(["parcel_id", "day"], keep="first")
    days = np.sort(frame["day"].unique()).astype("datetime64[D]")
    column = np.searchsorted(days, frame["day"].to_numpy().astype("datetime64[D]"))
    position = pd.Index(parcel_ids)
    row = position.get_indexer(pd.Index(frame["parcel_id"].to_numpy(np.int64)))
    keep = row >= 0
    values = np.full((len(parcel_ids), len(days)), np.nan)
    counts = np.zeros((len(parcel_ids), len(days)))
    values[row[keep], column[keep]] = frame["mean"].to_numpy(np.float64)[keep]
    counts[row[keep], column[keep]] = frame["count"].to_numpy(np.float64)[keep]
    first: Days | None = None
    if "date_first" in frame.columns and frame["date_first"].notna().any():
        firsts = pd.to_datetime(frame["date_first"]).dt.normalize()
        by_day = pd.Series(firsts.to_numpy(), index=frame["day"].to_numpy()).groupby(level=0).min()
        first = by_day.reindex(pd.DatetimeIndex(days)).to_numpy().astype("datetime64[D]")
    return SeriesMatrix(signal, parcel_ids, days, values, counts, first, orbit, direction)


def _by_orbit(rows: pd.DataFrame, signal: str, parcel_ids: I64) -> list[SeriesMatrix]:
    if rows.empty:
        return []
    orbit = rows["orbit"].fillna(-1).astype(np.int64)
    direction = rows["orbit_direction"].fillna("").astype(str)
    out = []
    for key, group in rows.groupby([orbit, direction], sort=True):
        number, way = cast(tuple[int, str], key)
        out.append(matrix(group, signal, parcel_ids, int(number), str(way) or None))
    return out


def build_series(
    rows: pd.DataFrame,
    parcel_ids: Sequence[int] | I64,
    optical_signal: str = "NDVI",
    polarisations: Iterable[str] = ("VV", "VH"),
    min_count: int = 1,
) -> ParcelSeries:
    """The series of ``parcel_ids`` from long MDB rows (as ``MarkersDatabase.timeseries``).

    Rows with a known pixel count below ``min_count`` are left out; a count of 0 (unknown)
    or a missing count is always kept (see the module docstring).
    """
    ids = np.asarray(parcel_ids, dtype=np.int64)
    if min_count > 1 and not rows.empty and "count" in rows.columns:
        count = pd.to_numeric(rows["count"], errors="coerce")
        rows = rows[~((count > 0) & (count < min_count))]
    signals = rows["signal"].astype(str) if not rows.empty else pd.Series([], dtype=str)
    optical_rows = rows[signals == optical_signal]
    optical = matrix(optical_rows, optical_signal, ids) if not optical_rows.empty else None
    coherence: dict[str, list[SeriesMatrix]] = {}
    amplitude: dict[str, list[SeriesMatrix]] = {}
    for pol in polarisations:
        coherence[pol] = _by_orbit(rows[signals == f"COHE_{pol}"], f"COHE_{pol}", ids)
        amplitude[pol] = _by_orbit(rows[signals == f"AMP_{pol}"], f"AMP_{pol}", ids)
    return ParcelSeries(ids, optical, coherence, amplitude)


def series_signals(optical_signal: str, polarisations: Iterable[str] = ("VV", "VH")) -> list[str]:
    """The MDB signals :func:`read_series` asks for."""
    pols = list(polarisations)
    return [optical_signal, *(f"COHE_{p}" for p in pols), *(f"AMP_{p}" for p in pols)]


def read_series(
    mdb: MarkersDatabase,
    parcel_ids: Sequence[int] | I64,
    start: date | None,
    end: date | None,
    optical_signal: str = "NDVI",
    chunk: int = 20_000,
    min_count: int = 1,
) -> Iterator[ParcelSeries]:
    """The parcels' series from an MDB, ``chunk`` parcels at a time (memory stays bounded)."""
    ids = np.asarray(parcel_ids, dtype=np.int64)
    signals = series_signals(optical_signal)
    for first in range(0, len(ids), chunk):
        part = ids[first : first + chunk]
        rows = mdb.timeseries(part.tolist(), signals, start, end)
        yield build_series(rows, part, optical_signal, min_count=min_count)
