"""L4A features: per parcel, from MDB statistics, in Sen4CAP's layout (sen4cap-system.md 5.2).

Sen4CAP computes its features per pixel (temporal resampling, composites, temporal statistics)
and then takes each parcel's mean and stdev of the pixel features. capmon starts from the MDB,
which already holds each parcel's mean and stdev per acquisition, and computes the same
features from those parcel statistics:

* **Optical** (``XX_<YYYY_MM_DD>_s2_{mean,dev}_<band>``, the date the period's first day):
  per calendar period (dekads starting on the 1st, 11th and 21st of each month, or calendar
  months), the mean of the parcel's acquisitions in the period; a period without any is
  interpolated linearly between the nearest periods with one (their middle days; one side
  only: that value). The periods are anchored on the calendar, never on the first acquisition,
  so a series that already is a dekadal or monthly composite keeps its values unchanged
  (``period="auto"``: calendar months when every acquisition is dated on the 1st of a month, as
  composites are, else dekads). Sen4CAP interpolates on a 10-day grid from the first
  acquisition, which drifts off the calendar and re-interpolates composites. When the MDB
  holds percentiles, ``s2_{p25,median,p75}_<index>`` of NDVI, NDWI and BRIGHTNESS too (a
  parcel date without them takes its mean).
* **Temporal descriptors** (``descriptors=True``; ``XX_S_s2_<index>_<descriptor>`` for NDVI
  and NDWI, ``XX_S_<dir>_<VV|VH|RATIO>_<descriptor>`` for backscatter in dB): computed on the
  gap-filled period curve smoothed with weights 1-2-1, so a missing date moves them little:
  maximum, its day, minimum, mean, stdev, amplitude, integral above the minimum, green-up and
  senescence days (the half-amplitude crossings before and after the maximum), the steepest
  rise and fall per day and their days. Days count from 1 January of the first period's year.
* **SAR backscatter**, per orbit direction and polarisation, in Sen4CAP's "AMP dB":
  weekly composites (``XX_W<YYYYWW>_<ASC|DESC>_<VV|VH>_BCK_{MEAN,DEV}``: mean of the week's
  parcel means and stdevs; monthly ones, ``M<YYYYMM>``, when the period is months: a monthly
  composite is not spread over weeks), the weekly VV/VH ratio (``..._RATIO_BCK_MEAN``:
  VV dB - VH dB, the log of the ratio), and per 2-month group the temporal mean and
  coefficient of variation of the linear amplitude
  (``XX_M<YYYYMM>_<dir>_<VV|VH|RATIO>_BCK_{MEAN,CVAR}_MEAN``). Sen4CAP takes these temporal
  statistics per pixel, capmon on the parcel mean series.
* **Coherence**, per polarisation: monthly mean and 10th percentile (R type 4, as Sen4CAP's)
  of the parcel mean coherence of the month's pairs (``XX_M<YYYYMM>_<pol>_COHE_{MEAN,MIN}_MEAN``)
  and the season's temporal stdev (``XX_S_<pol>_COHE_DEV``).

Periods a parcel has no observation in are filled from the nearest period that has one (the
earlier one on a tie), as Sen4CAP's ``gapfill-statistics``. A parcel with no observation at all
in a feature group cannot be filled: its features stay missing and it is reported, not
classified.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from capmon.errors import InputError
from capmon.mdb.query import MarkersDatabase

Mode = Literal["s2-only", "s1-only", "both"]
Period = Literal["auto", "dekad", "month"]
FloatMatrix = npt.NDArray[np.float64]

S2_MAIN = ("B03", "B04", "B08", "B11", "NDVI", "NDWI", "BRIGHTNESS")
S2_RED_EDGE = ("B05", "B06", "B07", "B12")
S1_BACKSCATTER = ("AMP_VV", "AMP_VH")
S1_COHERENCE = ("COHE_VV", "COHE_VH")
_BAND_NAMES = {
    "B03": "b3",
    "B04": "b4",
    "B05": "b5",
    "B06": "b6",
    "B07": "b7",
    "B08": "b8",
    "B11": "b11",
    "B12": "b12",
    "NDVI": "ndvi",
    "NDWI": "ndwi",
    "BRIGHTNESS": "brightness",
}
_ROW_COLUMNS = ("parcel_id", "signal", "date", "orbit_direction", "mean", "stdev")
PERCENTILES = ("p25", "median", "p75")
DESCRIBED_INDICES = ("NDVI", "NDWI")


@dataclass(frozen=True)
class FeatureSettings:
    """Which features to compute: the mode, the time window and the compositing periods."""

    mode: Mode = "both"
    start: date | None = None
    end: date | None = None
    until: date | None = None
    period: Period = "auto"
    radar_weeks: int = 1
    backscatter_months: int = 2
    descriptors: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("s2-only", "s1-only", "both"):
            raise InputError(f"mode must be s2-only, s1-only or both, not {self.mode!r}")
        if self.period not in ("auto", "dekad", "month"):
            raise InputError(f"period must be auto, dekad or month, not {self.period!r}")
        if self.radar_weeks < 1 or self.backscatter_months < 1:
            raise InputError("radar_weeks and backscatter_months must be >= 1")

    @property
    def uses_s2(self) -> bool:
        return self.mode != "s1-only"

    @property
    def uses_s1(self) -> bool:
        return self.mode != "s2-only"

    @property
    def optical_signals(self) -> tuple[str, ...]:
        """Sen4CAP's main bands, plus the red-edge ones when both sensors are used."""
        if not self.uses_s2:
            return ()
        return S2_MAIN + S2_RED_EDGE if self.mode == "both" else S2_MAIN

    @property
    def last_date(self) -> date | None:
        """The last acquisition date used (the earlier of ``until`` and ``end``)."""
        dates = [d for d in (self.until, self.end) if d is not None]
        return min(dates) if dates else None


@dataclass(frozen=True)
class FeatureTable:
    """Per parcel features (index ``NewID``, float32 columns ``XX_*``) and what is missing."""

    features: pd.DataFrame
    missing: pd.Series
    optical_dates: tuple[date, ...] = ()
    first_acquisition: date | None = None
    last_acquisition: date | None = None
    groups: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def complete(self) -> pd.Series:
        """True for parcels with every feature (no missing group)."""
        return self.missing.isna()

    def write(self, path: str) -> None:
        """Store the features as Parquet (``NewID`` column + one column per feature)."""
        self.features.reset_index().to_parquet(path, index=False)


SeriesSource = MarkersDatabase | pd.DataFrame


def available_signals(source: SeriesSource) -> set[str]:
    """The signals a source holds."""
    if isinstance(source, MarkersDatabase):
        return set(source.signals())
    if "signal" not in source.columns:
        raise InputError("the parcel time series have no 'signal' column (MDB row layout)")
    return {str(s) for s in source["signal"].unique()}


def _rows(
    source: SeriesSource,
    signals: Sequence[str],
    start: date | None,
    end: date | None,
    extra: Sequence[str] = (),
) -> pd.DataFrame:
    """The MDB rows of ``signals`` between ``start`` and ``end`` (inclusive), few columns, plus
    the ``extra`` statistics (NaN when the source has no such column)."""
    if isinstance(source, MarkersDatabase):
        quoted = ", ".join(f"'{s}'" for s in signals)
        condition = f"signal IN ({quoted})"
        if start is not None:
            condition += f" AND date >= DATE '{start.isoformat()}'"
        if end is not None:
            condition += f" AND date <= DATE '{end.isoformat()}'"
        relation = source.duckdb()
        held = [c for c in extra if c in relation.columns]
        relation = relation.filter(condition).project(", ".join([*_ROW_COLUMNS, *held]))
        frame: pd.DataFrame = relation.df()
    else:
        missing = [c for c in _ROW_COLUMNS if c not in source.columns and c != "orbit_direction"]
        if missing:
            raise InputError(f"the parcel time series lack the MDB columns {missing}")
        frame = source[source["signal"].isin(list(signals))]
        if "orbit_direction" not in frame.columns:
            frame = frame.assign(orbit_direction=None)
        frame = frame[[*_ROW_COLUMNS, *(c for c in extra if c in frame.columns)]]
        days = pd.to_datetime(frame["date"])
        keep = np.ones(len(frame), dtype=bool)
        if start is not None:
            keep &= (days >= pd.Timestamp(start)).to_numpy()
        if end is not None:
            keep &= (days <= pd.Timestamp(end)).to_numpy()
        frame = frame[keep]
    for column in extra:
        if column not in frame.columns:
            frame = frame.assign(**{column: np.nan})
    frame = frame.assign(date=pd.to_datetime(frame["date"]).dt.normalize())
    return frame.reset_index(drop=True)


_INDEX_BANDS = ("NDVI", "NDWI", "BRIGHTNESS")
_BANDS_OF_INDICES = ("B03", "B04", "B08", "B11")


def _with_indices(
    source: SeriesSource, indices: Sequence[str], available: set[str], settings: FeatureSettings
) -> pd.DataFrame:
    """The source's rows plus ``indices`` (NDVI, NDWI, BRIGHTNESS, as in
    :mod:`capmon.signals.catalogue`) computed from the parcel mean bands of each date, for
    sources such as imported composites that hold bands only (no stdev: it stays missing)."""
    rows = _rows(source, sorted(available), settings.start, settings.end)
    bands = rows[rows["signal"].isin(_BANDS_OF_INDICES)]
    wide = bands.pivot_table(index=["parcel_id", "date"], columns="signal", values="mean")
    wide = wide.dropna()
    with np.errstate(invalid="ignore", divide="ignore"):
        formulas: dict[str, pd.Series] = {
            "NDVI": (wide["B08"] - wide["B04"]) / (wide["B08"] + wide["B04"]),
            "NDWI": (wide["B11"] - wide["B08"]) / (wide["B11"] + wide["B08"]),
            "BRIGHTNESS": (
                wide["B03"] ** 2 + wide["B04"] ** 2 + wide["B08"] ** 2 + wide["B11"] ** 2
            )
            ** 0.5,
        }
    derived = [
        pd.DataFrame(
            {
                "parcel_id": wide.index.get_level_values("parcel_id"),
                "signal": name,
                "date": wide.index.get_level_values("date"),
                "orbit_direction": None,
                "mean": formulas[name].to_numpy(np.float64),
                "stdev": np.nan,
            }
        )
        for name in indices
    ]
    return pd.concat([rows, *derived], ignore_index=True)


def _day_numbers(values: pd.Series | pd.DatetimeIndex) -> npt.NDArray[np.int64]:
    stamps = pd.DatetimeIndex(values).as_unit("s")
    return np.asarray(stamps.asi8 // 86400, dtype=np.int64)


def _as_date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=int(day))


def _matrix(
    rows: pd.DataFrame, parcels: pd.Index, days: npt.NDArray[np.int64], column: str
) -> FloatMatrix:
    """Parcel x date matrix of ``column`` (the mean of several rows of one day), NaN if none."""
    out = np.full((len(parcels), len(days)), np.nan)
    if rows.empty:
        return out
    p = parcels.get_indexer(pd.Index(rows["parcel_id"].to_numpy(np.int64)))
    d = np.searchsorted(days, _day_numbers(rows["date"]))
    values = rows[column].to_numpy(np.float64)
    keep = (p >= 0) & np.isfinite(values)
    cell = p[keep] * len(days) + d[keep]
    size = out.size
    sums = np.bincount(cell, weights=values[keep], minlength=size)
    counts = np.bincount(cell, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return flat.reshape(out.shape)


def _neighbours(valid: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Per cell, the column of the last valid cell at or before it (-1: none) and of the first
    valid cell at or after it (n: none)."""
    n = valid.shape[1]
    columns = np.arange(n)
    previous = np.maximum.accumulate(np.where(valid, columns, -1), axis=1)
    following = np.minimum.accumulate(np.where(valid, columns, n)[:, ::-1], axis=1)[:, ::-1]
    return previous, following


def interpolate_to_grid(
    values: FloatMatrix, days: npt.NDArray[Any], grid: npt.NDArray[Any]
) -> FloatMatrix:
    """Linear interpolation of each row (NaN = no acquisition) at the ``grid`` days.

    Between the nearest valid acquisitions before and after each grid day; with only one of
    them, its value; with none, NaN. No limit on how far the acquisitions are.
    """
    rows, n = values.shape
    if n == 0 or rows == 0:
        return np.full((rows, len(grid)), np.nan)
    previous, following = _neighbours(~np.isnan(values))
    last = np.searchsorted(days, grid, side="right") - 1  # last acquisition day <= grid day
    before = np.where(last >= 0, previous[:, np.clip(last, 0, n - 1)], -1)
    after_column = last + 1
    after = np.where(after_column < n, following[:, np.clip(after_column, 0, n - 1)], n)
    has_before = before >= 0
    has_after = after < n
    b = np.clip(before, 0, n - 1)
    a = np.clip(after, 0, n - 1)
    value_before = np.take_along_axis(values, b, axis=1)
    value_after = np.take_along_axis(values, a, axis=1)
    day_before = days[b].astype(np.float64)
    day_after = days[a].astype(np.float64)
    span = np.where(day_after > day_before, day_after - day_before, 1.0)
    weight = np.clip((grid[np.newaxis, :] - day_before) / span, 0.0, 1.0)
    both = value_before + weight * (value_after - value_before)
    return np.where(
        has_before & has_after,
        both,
        np.where(has_before, value_before, np.where(has_after, value_after, np.nan)),
    )


def fill_nearest(values: FloatMatrix) -> FloatMatrix:
    """Each missing cell takes the value of the nearest column with one (earlier on a tie)."""
    rows, n = values.shape
    if n == 0 or rows == 0:
        return values.copy()
    valid = ~np.isnan(values)
    previous, following = _neighbours(valid)
    columns = np.arange(n)[np.newaxis, :]
    distance_before = np.where(previous >= 0, columns - previous, np.iinfo(np.int64).max)
    distance_after = np.where(following < n, following - columns, np.iinfo(np.int64).max)
    source = np.where(distance_before <= distance_after, previous, following)
    source = np.clip(source, 0, n - 1)
    filled = np.take_along_axis(values, source, axis=1)
    return np.where(valid, values, filled)


def _group_reduce(
    values: FloatMatrix, groups: npt.NDArray[np.int64], count: int, how: str
) -> FloatMatrix:
    """Reduce the columns of ``values`` by group (column -> group index), ignoring NaN."""
    out = np.full((values.shape[0], count), np.nan)
    for g in range(count):
        block = values[:, groups == g]
        if block.shape[1] == 0:
            continue
        present = ~np.isnan(block)
        has = present.any(axis=1)
        if not has.any():
            continue
        chosen = block[has]
        if how == "mean":
            result = np.nanmean(chosen, axis=1)
        elif how == "std":
            result = np.nanstd(chosen, axis=1)
        elif how == "p10":
            result = np.nanquantile(chosen, 0.1, axis=1, method="interpolated_inverted_cdf")
        else:
            raise ValueError(f"unknown reduction {how}")
        out[has, g] = result
    return out


def period_of(when: date, period: Literal["dekad", "month"]) -> date:
    """The first day of the calendar dekad (1st, 11th, 21st) or month holding ``when``."""
    if period == "month":
        return when.replace(day=1)
    return when.replace(day=min((when.day - 1) // 10, 2) * 10 + 1)


def _next_period(start: date, period: Literal["dekad", "month"]) -> date:
    if period == "dekad" and start.day < 21:
        return start.replace(day=start.day + 10)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def resolved_period(period: Period, days: npt.NDArray[np.int64]) -> Literal["dekad", "month"]:
    """``auto``: months when every acquisition is dated on the 1st of a month (composites),
    else dekads."""
    if period != "auto":
        return period
    monthly = all(_as_date(int(d)).day == 1 for d in days)
    return "month" if monthly and len(days) else "dekad"


@dataclass(frozen=True)
class CalendarPeriods:
    """The calendar periods from the first acquisition's to the last one's, and for each
    acquisition day (column) its period."""

    starts: tuple[date, ...]
    middle_days: npt.NDArray[np.float64]
    of_day: npt.NDArray[np.int64]

    @classmethod
    def of(cls, days: npt.NDArray[np.int64], period: Literal["dekad", "month"]) -> CalendarPeriods:
        first = period_of(_as_date(int(days.min())), period)
        last = period_of(_as_date(int(days.max())), period)
        starts = [first]
        while starts[-1] < last:
            starts.append(_next_period(starts[-1], period))
        ends = [_next_period(start, period) for start in starts]
        epoch = date(1970, 1, 1)
        middle = np.array(
            [((a - epoch).days + (b - epoch).days) / 2.0 for a, b in zip(starts, ends, strict=True)]
        )
        lookup = {start: i for i, start in enumerate(starts)}
        of_day = np.array([lookup[period_of(_as_date(int(d)), period)] for d in days], np.int64)
        return cls(tuple(starts), middle, of_day)

    def composite(self, values: FloatMatrix) -> FloatMatrix:
        """Per parcel and period, the mean of its acquisitions in the period; a period
        without any interpolated between the nearest ones with one (edges: the nearest)."""
        means = _group_reduce(values, self.of_day, len(self.starts), "mean")
        return interpolate_to_grid(means, self.middle_days, self.middle_days)


DESCRIPTORS = (
    "max", "max_day", "min", "mean", "std", "amplitude", "integral", "greenup_day",
    "senescence_day", "rise", "rise_day", "fall", "fall_day",
)  # fmt: skip


def smooth(curve: FloatMatrix) -> FloatMatrix:
    """Weights 1-2-1 over neighbouring periods (an edge period stands in for its missing
    neighbour)."""
    if curve.shape[1] < 3:
        return curve.copy()
    padded = np.concatenate([curve[:, :1], curve, curve[:, -1:]], axis=1)
    smoothed: FloatMatrix = (padded[:, :-2] + 2.0 * padded[:, 1:-1] + padded[:, 2:]) / 4.0
    return smoothed


def temporal_descriptors(curve: FloatMatrix, days: npt.ArrayLike) -> dict[str, FloatMatrix]:
    """The :data:`DESCRIPTORS` of each row of a gap-free ``curve`` sampled at ``days``
    (increasing), smoothed first; a row with a NaN gives NaN."""
    x = np.asarray(days, dtype=np.float64)
    rows, n = curve.shape
    missing = np.isnan(curve).any(axis=1) if n else np.ones(rows, dtype=bool)
    y = smooth(np.nan_to_num(curve, nan=0.0))
    out: dict[str, FloatMatrix] = {}
    if n == 0:
        return {name: np.full((rows, 1), np.nan) for name in DESCRIPTORS}
    every = np.arange(rows)
    peak = np.argmax(y, axis=1)
    top = y[every, peak]
    low = y.min(axis=1)
    out["max"], out["max_day"], out["min"] = top, x[peak], low
    out["mean"], out["std"], out["amplitude"] = y.mean(axis=1), y.std(axis=1), top - low
    widths = np.diff(x)
    out["integral"] = (
        (((y[:, 1:] + y[:, :-1]) / 2.0 - low[:, None]) * widths[None, :]).sum(axis=1)
        if n > 1
        else np.zeros(rows)
    )
    columns = np.arange(n)[None, :]
    before = columns <= peak[:, None]
    after = columns >= peak[:, None]
    low_before = np.where(before, y, np.inf).min(axis=1)
    low_after = np.where(after, y, np.inf).min(axis=1)
    out["greenup_day"] = _crossing(y, x, (low_before + top) / 2.0, peak, rising=True)
    out["senescence_day"] = _crossing(y, x, (low_after + top) / 2.0, peak, rising=False)
    if n > 1:
        slope = np.diff(y, axis=1) / widths[None, :]
        centre = (x[1:] + x[:-1]) / 2.0
        up, down = np.argmax(slope, axis=1), np.argmin(slope, axis=1)
        out["rise"], out["rise_day"] = slope[every, up], centre[up]
        out["fall"], out["fall_day"] = slope[every, down], centre[down]
    else:
        zero = np.zeros(rows)
        out["rise"], out["rise_day"], out["fall"], out["fall_day"] = zero, x[peak], zero, x[peak]
    return {
        name: np.where(missing, np.nan, np.asarray(out[name], dtype=np.float64))[:, None]
        for name in DESCRIPTORS
    }


def _crossing(
    y: FloatMatrix,
    x: npt.NDArray[np.float64],
    level: npt.NDArray[np.float64],
    peak: npt.NDArray[np.intp],
    *,
    rising: bool,
) -> npt.NDArray[np.float64]:
    """The day the curve crosses ``level``: the last rise through it before the peak
    (``rising``) or the first fall through it after the peak, interpolated linearly; the
    first (last) day when it never is below the level on that side."""
    rows, n = y.shape
    columns = np.arange(n)[None, :]
    below = y < level[:, None]
    every = np.arange(rows)
    if rising:
        side = below & (columns < peak[:, None])
        found = side.any(axis=1)
        i = np.where(found, n - 1 - np.argmax(side[:, ::-1], axis=1), 0)
        j = np.minimum(i + 1, n - 1)
        default = np.full(rows, x[0])
    else:
        side = below & (columns > peak[:, None])
        found = side.any(axis=1)
        j = np.where(found, np.argmax(side, axis=1), n - 1)
        i = np.maximum(j - 1, 0)
        default = np.full(rows, x[-1])
    y_i, y_j = y[every, i], y[every, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(y_j != y_i, (level - y_i) / (y_j - y_i), 0.0)
    day = x[i] + np.clip(t, 0.0, 1.0) * (x[j] - x[i])
    return np.where(found, day, default)


def _describe(
    builder: _Builder, group: str, key: str, curve: FloatMatrix, days: npt.ArrayLike
) -> None:
    for name, column in temporal_descriptors(curve, days).items():
        builder.add(group, [f"XX_S_{key}_{name}"], column)


def _season_days(middle_days: npt.NDArray[np.float64], first: date) -> npt.NDArray[np.float64]:
    """Day numbers (since 1970) as days since 1 January of ``first``'s year."""
    return middle_days - float((date(first.year, 1, 1) - date(1970, 1, 1)).days)


def _weeks(days: npt.NDArray[np.int64], weeks_per_period: int) -> list[tuple[int, int]]:
    """Sen4CAP's week of each day: (year, %W clamped to 1..52), grouped by ``weeks_per_period``."""
    out = []
    for day in days:
        when = _as_date(int(day))
        week = min(max(int(when.strftime("%W")), 1), 52)
        first = (week - 1) // weeks_per_period * weeks_per_period + 1
        out.append((when.year, first))
    return out


def _months(days: npt.NDArray[np.int64], months_per_period: int) -> list[tuple[int, int]]:
    out = []
    for day in days:
        when = _as_date(int(day))
        first = (when.month - 1) // months_per_period * months_per_period + 1
        out.append((when.year, first))
    return out


def _period_index(
    keys: list[tuple[int, int]],
) -> tuple[npt.NDArray[np.int64], list[tuple[int, int]]]:
    """Column -> period index, and the periods that have an acquisition, in order (taken over all
    parcels, so that the columns do not depend on which parcel has which acquisition)."""
    periods = sorted(set(keys))
    lookup = {key: i for i, key in enumerate(periods)}
    return np.array([lookup[k] for k in keys], dtype=np.int64), periods


@dataclass
class _Builder:
    """Accumulates feature columns and per parcel missing groups."""

    parcels: pd.Index
    columns: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)
    missing: list[tuple[npt.NDArray[np.bool_], str]] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)

    def add(self, group: str, names: Iterable[str], matrix: FloatMatrix) -> None:
        names = list(names)
        for j, name in enumerate(names):
            self.columns[name] = matrix[:, j].astype(np.float32)
        self.groups[group] = self.groups.get(group, 0) + len(names)

    def require(self, present: npt.ArrayLike, reason: str) -> None:
        self.missing.append((~np.asarray(present, dtype=bool), reason))

    def table(self, **extra: object) -> FeatureTable:
        features = pd.DataFrame(self.columns, index=self.parcels)
        features.index.name = "NewID"
        reasons = pd.Series(pd.NA, index=self.parcels, dtype="string")
        for absent, reason in self.missing:
            fill = absent & reasons.isna().to_numpy()
            reasons[fill] = reason
        reasons.index.name = "NewID"
        return FeatureTable(features, reasons, groups=dict(self.groups), **extra)  # type: ignore[arg-type]


def required_signals(settings: FeatureSettings) -> tuple[str, ...]:
    """The signals a mode cannot do without (coherence is used when present)."""
    signals = settings.optical_signals
    if settings.uses_s1:
        signals += S1_BACKSCATTER
    return signals


def build_features(
    source: SeriesSource,
    parcel_ids: Sequence[int],
    settings: FeatureSettings,
    *,
    available: set[str] | None = None,
) -> FeatureTable:
    """The L4A features of ``parcel_ids`` from an MDB or a frame in the MDB row layout.

    ``available``: the source's signals when the caller has listed them already (listing them
    scans the whole MDB). Raises InputError when the source is empty, lacks the signals the
    mode needs, or has no acquisition up to ``settings.until``.
    """
    available = set(available_signals(source) if available is None else available)
    if not available:
        raise InputError("the markers database is empty: no observation of any signal")
    needed = required_signals(settings)
    notes: list[str] = []
    derivable = [s for s in _INDEX_BANDS if s in needed and s not in available]
    if derivable and set(_BANDS_OF_INDICES) <= available:
        source = _with_indices(source, derivable, available, settings)
        available |= set(derivable)
        notes.append(
            f"{', '.join(derivable)} computed from the parcel mean bands (the MDB has no "
            "such signal): the index of the mean, not the mean of the pixel indices"
        )
    absent = [s for s in needed if s not in available]
    if absent:
        raise InputError(
            f"the markers database lacks the signals {', '.join(absent)} needed in mode "
            f"{settings.mode} (it has: {', '.join(sorted(available))})"
        )
    parcels = pd.Index(np.asarray(parcel_ids, dtype=np.int64), name="NewID")
    last_day = settings.last_date
    everything = _rows(source, list(needed), settings.start, settings.end)
    if everything.empty:
        raise InputError(
            f"the markers database has no {', '.join(needed)} observation in the season "
            f"({settings.start} to {settings.end})"
        )
    first = everything["date"].min().date()
    if settings.until is not None and settings.until < first:
        raise InputError(
            f"until {settings.until} is before the first acquisition ({first}); "
            "early-season classification needs at least one acquisition"
        )
    del everything
    builder = _Builder(parcels)
    optical_dates: tuple[date, ...] = ()
    last_acquisition = first
    if settings.uses_s2:
        optical_dates, last_s2 = _optical_features(source, builder, settings, last_day)
        last_acquisition = max(last_acquisition, last_s2)
    if settings.uses_s1:
        last_s1 = _sar_features(source, builder, settings, last_day, available, notes)
        last_acquisition = max(last_acquisition, last_s1)
    return builder.table(
        optical_dates=optical_dates,
        first_acquisition=first,
        last_acquisition=last_acquisition,
        notes=tuple(notes),
    )


def _optical_features(
    source: SeriesSource, builder: _Builder, settings: FeatureSettings, last_day: date | None
) -> tuple[tuple[date, ...], date]:
    signals = settings.optical_signals
    rows = _rows(source, signals, settings.start, last_day, extra=PERCENTILES)
    if rows.empty:
        raise InputError(
            f"no Sentinel-2 observation of {', '.join(signals)} up to {last_day or 'the end'}"
        )
    days = np.unique(_day_numbers(rows["date"]))
    periods = CalendarPeriods.of(days, resolved_period(settings.period, days))
    labels = [d.strftime("%Y_%m_%d") for d in periods.starts]
    season_days = _season_days(periods.middle_days, periods.starts[0])
    by_signal = dict(tuple(rows.groupby("signal", sort=False)))
    for signal in signals:
        band = _BAND_NAMES[signal]
        part = by_signal.get(signal, rows.iloc[:0])
        means = _matrix(part, builder.parcels, days, "mean")
        devs = _matrix(part, builder.parcels, days, "stdev")
        present = ~np.isnan(means).all(axis=1)
        builder.require(present, f"no Sentinel-2 {signal} observation")
        # a parcel's stdev is missing only with its mean; a single-pixel stdev is 0
        devs = np.where(np.isnan(devs) & ~np.isnan(means), 0.0, devs)
        mean_curve = periods.composite(means)
        builder.add("s2", (f"XX_{label}_s2_mean_{band}" for label in labels), mean_curve)
        builder.add(
            "s2", (f"XX_{label}_s2_dev_{band}" for label in labels), periods.composite(devs)
        )
        if signal in _INDEX_BANDS:
            for statistic in PERCENTILES:
                if not part[statistic].notna().any():
                    continue
                values = _matrix(part, builder.parcels, days, statistic)
                values = np.where(np.isnan(values), means, values)
                builder.add(
                    "s2_percentiles",
                    (f"XX_{label}_s2_{statistic}_{band}" for label in labels),
                    periods.composite(values),
                )
        if settings.descriptors and signal in DESCRIBED_INDICES:
            _describe(builder, "s2_descriptors", f"s2_{band}", mean_curve, season_days)
    return periods.starts, _as_date(int(days[-1]))


def _sar_features(
    source: SeriesSource,
    builder: _Builder,
    settings: FeatureSettings,
    last_day: date | None,
    available: set[str],
    notes: list[str],
) -> date:
    coherence = tuple(s for s in S1_COHERENCE if s in available)
    if len(coherence) < len(S1_COHERENCE):
        notes.append(
            "no coherence features for " + ", ".join(sorted(set(S1_COHERENCE) - set(coherence)))
        )
    rows = _rows(source, S1_BACKSCATTER + coherence, settings.start, last_day)
    backscatter = rows[rows["signal"].isin(S1_BACKSCATTER)]
    if backscatter.empty:
        raise InputError(f"no Sentinel-1 backscatter observation up to {last_day or 'the end'}")
    directions = sorted(str(d) for d in backscatter["orbit_direction"].dropna().unique())
    if not directions:
        directions = ["ANY"]
        backscatter = backscatter.assign(orbit_direction="ANY")
    last = _as_date(int(_day_numbers(rows["date"]).max()))
    for direction in directions:
        of_direction = backscatter[backscatter["orbit_direction"] == direction]
        days = np.unique(_day_numbers(of_direction["date"]))
        period = resolved_period(settings.period, days)
        if period == "month":  # composites: one column per month, not spread over weeks
            week_of_day, weeks = _period_index(_months(days, 1))
            week_labels = [f"M{year}{month:02d}" for year, month in weeks]
        else:
            week_of_day, weeks = _period_index(_weeks(days, settings.radar_weeks))
            week_labels = [f"W{year}{week:02d}" for year, week in weeks]
        month_of_day, months = _period_index(_months(days, settings.backscatter_months))
        periods = CalendarPeriods.of(days, period)
        season_days = _season_days(periods.middle_days, periods.starts[0])
        month_labels = [f"M{year}{month:02d}" for year, month in months]
        db: dict[str, FloatMatrix] = {}
        for signal in S1_BACKSCATTER:
            pol = signal.removeprefix("AMP_")
            part = of_direction[of_direction["signal"] == signal]
            means = _matrix(part, builder.parcels, days, "mean")
            devs = _matrix(part, builder.parcels, days, "stdev")
            devs = np.where(np.isnan(devs) & ~np.isnan(means), 0.0, devs)
            db[pol] = means
            builder.require(
                ~np.isnan(means).all(axis=1), f"no Sentinel-1 {direction} {signal} observation"
            )
            weekly = fill_nearest(_group_reduce(means, week_of_day, len(weeks), "mean"))
            weekly_dev = fill_nearest(_group_reduce(devs, week_of_day, len(weeks), "mean"))
            builder.add("s1_weekly", (f"XX_{w}_{direction}_{pol}_BCK_MEAN" for w in week_labels),
                        weekly)  # fmt: skip
            builder.add("s1_weekly", (f"XX_{w}_{direction}_{pol}_BCK_DEV" for w in week_labels),
                        weekly_dev)  # fmt: skip
            _temporal(builder, np.power(10.0, means / 10.0), month_of_day, month_labels,
                      f"{direction}_{pol}")  # fmt: skip
            if settings.descriptors:
                _describe(builder, "s1_descriptors", f"{direction}_{pol}",
                          periods.composite(means), season_days)  # fmt: skip
        ratio_db = db["VV"] - db["VH"]
        weekly_ratio = fill_nearest(_group_reduce(ratio_db, week_of_day, len(weeks), "mean"))
        builder.add("s1_weekly", (f"XX_{w}_{direction}_RATIO_BCK_MEAN" for w in week_labels),
                    weekly_ratio)  # fmt: skip
        _temporal(builder, np.power(10.0, ratio_db / 10.0), month_of_day, month_labels,
                  f"{direction}_RATIO")  # fmt: skip
        if settings.descriptors:
            _describe(builder, "s1_descriptors", f"{direction}_RATIO",
                      periods.composite(ratio_db), season_days)  # fmt: skip
    for signal in coherence:
        pol = signal.removeprefix("COHE_")
        part = rows[(rows["signal"] == signal) & (rows["mean"] > 0)]
        if part.empty:
            notes.append(f"no {signal} observation up to {last_day or 'the end'}")
            continue
        days = np.unique(_day_numbers(part["date"]))
        month_of_day, months = _period_index(_months(days, 1))
        labels = [f"M{year}{month:02d}" for year, month in months]
        means = _matrix(part, builder.parcels, days, "mean")
        builder.require(~np.isnan(means).all(axis=1), f"no Sentinel-1 {signal} observation")
        monthly = fill_nearest(_group_reduce(means, month_of_day, len(months), "mean"))
        low = fill_nearest(_group_reduce(means, month_of_day, len(months), "p10"))
        builder.add("s1_coherence", (f"XX_{m}_{pol}_COHE_MEAN_MEAN" for m in labels), monthly)
        builder.add("s1_coherence", (f"XX_{m}_{pol}_COHE_MIN_MEAN" for m in labels), low)
        season = _group_reduce(means, np.zeros(len(days), dtype=np.int64), 1, "std")
        builder.add("s1_coherence", [f"XX_S_{pol}_COHE_DEV"], season)
    return last


def _temporal(
    builder: _Builder,
    linear: FloatMatrix,
    groups: npt.NDArray[np.int64],
    labels: Sequence[str],
    key: str,
) -> None:
    """Per period, the temporal mean and coefficient of variation (0 when the mean is <= 0)."""
    mean = _group_reduce(linear, groups, len(labels), "mean")
    std = _group_reduce(linear, groups, len(labels), "std")
    with np.errstate(invalid="ignore", divide="ignore"):
        cvar = np.where(mean > 0, std / np.where(mean > 0, mean, 1.0), 0.0)
    cvar = np.where(np.isnan(mean), np.nan, cvar)
    builder.add("s1_temporal", (f"XX_{m}_{key}_BCK_MEAN_MEAN" for m in labels), fill_nearest(mean))
    builder.add("s1_temporal", (f"XX_{m}_{key}_BCK_CVAR_MEAN" for m in labels), fill_nearest(cvar))
