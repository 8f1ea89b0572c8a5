"""capmon's mowing method (``method=capmon``, the default): Sentinel-1 first, weather-corrected,
with per-parcel thresholds, amplitude and NDVI as evidence, and a vegetation and regrowth check.

Why (what limits Sen4CAP's method, see docs/l4b.md for the figures):

* Rain and frost change the coherence of every parcel of a scene at once; Sen4CAP's trend test
  takes the recovery after such a dip for a cut (its most frequent false alarm). Here each
  orbit's series is first corrected by the scene's median at each date (the *common mode*,
  over every parcel of the run), so only parcel-specific changes remain.
* One threshold does not fit every parcel: small or heterogeneous parcels are noisier. The
  noise of each parcel and orbit is measured on its own corrected series (robust spread of
  its successive differences) and a jump is scored in units of that noise.
* A cut shows in three ways: the coherence of the pair spanning the cut drops and the next
  pair is much more coherent (short grass is stable); the VH backscatter falls by about 1 dB
  (less vegetation volume) at the first acquisition after the cut; NDVI falls. Coherence is
  the reference evidence; a cut needs a strong coherence jump, or a moderate one confirmed by
  another orbit, the amplitude or NDVI. Without any Sentinel-1 series, NDVI drops alone are
  used (stricter thresholds, and the drop must be followed by regrowth).
* A cut happens on grass: the NDVI before the event must show vegetation (not a ploughed or
  harvested field), and after the event the grass regrows (the coherence falls back, or NDVI
  rises); an event with later observations that show no regrowth is dropped.
* Events of the same sensor overlap in time when seen from two orbits; their intervals are
  intersected, which dates the cut to 3 days with two orbits.

Every detector is causal up to the regrowth check, which looks at most ``regrowth_days``
ahead; the near-real-time state keeps the events of the previous run as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import numpy as np
import pandas as pd

from capmon.processors.l4b.config import L4BConfig
from capmon.processors.l4b.fusion import MAX_EVENTS, MowingEvent, fused_confidence
from capmon.processors.l4b.sen4cap import (
    CANDIDATE_COLUMNS,
    _at,
    _clock,
    _pair_first_dates,
    _typed,
    empty_candidates,
    s1_clock,
)
from capmon.processors.l4b.series import F64, ParcelSeries, SeriesMatrix, own_grids


@dataclass(frozen=True)
class CapmonSettings:
    """Thresholds of the capmon method (defaults tuned on physical grounds, see docs/l4b.md)."""

    coherence_z: float = 4.0  # jump, in units of the parcel's own noise
    coherence_jump: float = 0.08  # and in coherence units
    strong_z: float = 7.0  # a jump this strong needs no other evidence
    amplitude_z: float = 3.0
    amplitude_drop_db: float = 0.4  # AMP dB (half sigma0 dB)
    ndvi_drop: float = 0.06
    ndvi_z: float = 3.0
    ndvi_only_drop: float = 0.1  # S2-only parcels
    ndvi_rebound: float = 0.03  # a dip gone at the next date is a cloud residual, not a cut
    rebound_days: int = 15  # "the next date": the parcel's next valid NDVI, within this
    baseline_samples: int = 4
    min_scene_parcels: int = 10
    vegetation_ndvi: float = 0.45
    vegetation_days: int = 45
    post_cut_ndvi: float = 0.35  # a mown meadow stays green; a ploughed field does not
    regrowth_days: int = 30
    min_interval_days: int = 25
    noise_floor_coherence: float = 0.015
    noise_floor_amplitude_db: float = 0.1
    noise_floor_ndvi: float = 0.02


def _scene_corrected(matrix: SeriesMatrix, minimum: int) -> F64:
    """Values minus the scene median at each date (plus the median level, to keep units)."""
    values = matrix.values
    if values.size == 0:
        return values.copy()
    valid = np.isfinite(values).sum(axis=0)
    with np.errstate(all="ignore"):
        median = np.nanmedian(np.where(np.isfinite(values), values, np.nan), axis=0)
    level = np.nanmedian(median) if np.isfinite(median).any() else 0.0
    offset = np.where((valid >= minimum) & np.isfinite(median), median - level, 0.0)
    out: F64 = values - offset[None, :]
    return out


def _robust_noise(values: F64, floor: float) -> F64:
    """Per-row noise: 1.4826 MAD of successive differences / sqrt(2), at least ``floor``."""
    out = np.full(values.shape[0], floor)
    for i, row in enumerate(values):
        x = row[np.isfinite(row)]
        if len(x) < 4:
            continue
        d = np.diff(x)
        mad = 1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0)
        out[i] = max(floor, float(mad))
    return out


def _baseline(values: F64, t: int, samples: int) -> F64:
    """Median of the ``samples`` values before ``t - 1`` (the pair before the dip)."""
    window = values[:, max(0, t - 1 - samples) : max(0, t - 1)]
    if window.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    with np.errstate(all="ignore"):
        out: F64 = np.nanmedian(window, axis=1)
    return out


def coherence_jumps(matrix: SeriesMatrix, config: L4BConfig, s: CapmonSettings) -> pd.DataFrame:
    """Coherence jumps of one orbit: pair ``t`` much more coherent than the parcel's baseline
    while pair ``t - 1`` was not; the cut is in pair ``t - 1`` (``t`` counts the parcel's own
    pairs, never the columns of the run's shared date grid)."""
    corrected = _scene_corrected(matrix, s.min_scene_parcels)
    all_noise = _robust_noise(corrected, s.noise_floor_coherence)
    all_firsts = _pair_first_dates(matrix, config.s1)
    clock = s1_clock(matrix.direction, config.s1)
    records = []
    for rows, columns in own_grids(corrected):
        values, noise = corrected[np.ix_(rows, columns)], all_noise[rows]
        dates, firsts = matrix.dates[columns], all_firsts[columns]
        for t in range(2, values.shape[1]):
            base = _baseline(values, t, s.baseline_samples)
            jump = values[:, t] - base
            dip = values[:, t - 1] - base
            with np.errstate(invalid="ignore"):
                z = jump / noise
                hit = (z >= s.coherence_z) & (jump >= s.coherence_jump) & (dip < 0.5 * jump)
            for i in np.flatnonzero(hit):
                records.append(
                    (int(matrix.parcel_ids[rows[i]]), f"COHE_{matrix.signal[-2:]}:{matrix.orbit}",
                     _at(firsts[t - 1], clock), _at(dates[t - 1], clock), 0.0, "S1",
                     _at(dates[t], clock), float(z[i]))
                )  # fmt: skip
    return _frame(records)


def amplitude_drops(matrix: SeriesMatrix, config: L4BConfig, s: CapmonSettings) -> pd.DataFrame:
    """VH backscatter drops of one orbit: acquisition ``t`` well below the parcel's baseline;
    the cut is between the parcel's acquisitions ``t - 1`` and ``t``."""
    corrected = _scene_corrected(matrix, s.min_scene_parcels)
    all_noise = _robust_noise(corrected, s.noise_floor_amplitude_db)
    clock = s1_clock(matrix.direction, config.s1)
    records = []
    for rows, columns in own_grids(corrected):
        values, noise = corrected[np.ix_(rows, columns)], all_noise[rows]
        dates = matrix.dates[columns]
        for t in range(1, values.shape[1]):
            window = values[:, max(0, t - s.baseline_samples) : t]
            with np.errstate(all="ignore"):
                base = np.nanmedian(window, axis=1)
                drop = base - values[:, t]
                z = drop / noise
                hit = (z >= s.amplitude_z) & (drop >= s.amplitude_drop_db)
            for i in np.flatnonzero(hit):
                records.append(
                    (int(matrix.parcel_ids[rows[i]]), f"{matrix.signal}:{matrix.orbit}",
                     _at(dates[t - 1], clock), _at(dates[t], clock), 0.0, "S1",
                     _at(dates[t], clock), float(z[i]))
                )  # fmt: skip
    return _frame(records)


def ndvi_drops(matrix: SeriesMatrix, config: L4BConfig, s: CapmonSettings) -> pd.DataFrame:
    """NDVI drops between successive valid observations, scored against the parcel's noise."""
    clock = _clock(config.s2.acq_time)
    values = matrix.values.astype(np.float64, copy=True)
    values[~(values >= config.s2.corrupted_th)] = np.nan
    noise = _robust_noise(values, s.noise_floor_ndvi)
    days = matrix.days()
    records = []
    for i, row in enumerate(values):
        valid = np.flatnonzero(np.isfinite(row))
        for k in range(1, len(valid)):
            a, b = int(valid[k - 1]), int(valid[k])
            first = int(valid[max(0, k - 2)])  # the drop is from the higher of the 2 before
            before = float(np.nanmax(row[first : a + 1]))
            drop = before - row[b]
            z = drop / noise[i]
            # the parcel's own next observation (never a column of the run's shared date grid)
            after = int(valid[k + 1]) if k + 1 < len(valid) else -1
            rebound = (
                after >= 0 and days[after] - days[b] <= s.rebound_days
                and float(row[after]) >= before - s.ndvi_rebound
            )  # fmt: skip
            if drop >= s.ndvi_drop and z >= s.ndvi_z and before >= s.vegetation_ndvi \
                    and not rebound:  # fmt: skip
                records.append(
                    (int(matrix.parcel_ids[i]), "NDVI", _at(matrix.dates[a], clock),
                     _at(matrix.dates[b], clock), 0.0, "S2",
                     _at(matrix.dates[valid[valid > b][0]] if (valid > b).any()
                         else matrix.dates[b], clock), float(drop))
                )  # fmt: skip
    return _frame(records)


def _frame(records: Sequence[tuple[object, ...]]) -> pd.DataFrame:
    if not records:
        return empty_candidates()
    return _typed(pd.DataFrame(records, columns=list(CANDIDATE_COLUMNS)))


def detect_candidates(
    series: ParcelSeries,
    config: L4BConfig,
    settings: CapmonSettings | None = None,
    use_s1: bool = True,
    use_s2: bool = True,
) -> pd.DataFrame:
    """Every coherence, amplitude and NDVI candidate of the parcels of ``series``."""
    s = settings or CapmonSettings()
    parts = []
    if use_s1:
        for pol in ("VH", "VV"):
            for m in series.coherence.get(pol, []):
                if not config.s1_orbits or m.orbit in config.s1_orbits:
                    parts.append(coherence_jumps(m, config, s))
        for m in series.amplitude.get("VH", []):
            if not config.s1_orbits or m.orbit in config.s1_orbits:
                parts.append(amplitude_drops(m, config, s))
    if use_s2 and series.optical is not None and not series.optical.empty:
        parts.append(ndvi_drops(series.optical, config, s))
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else empty_candidates()


@dataclass
class _Cluster:
    start: datetime
    end: datetime
    detected_on: datetime
    sources: dict[str, float]

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return max(self.start, start) <= min(self.end, end) + timedelta(hours=12)

    def add(self, start: datetime, end: datetime, source: str, score: float,
            seen: datetime, narrow: bool) -> None:  # fmt: skip
        low, high = max(self.start, start), min(self.end, end)
        if narrow and low <= high:  # every source saw the cut inside its interval
            self.start, self.end = low, high
        self.sources[source] = max(self.sources.get(source, 0.0), score)
        if narrow:
            self.detected_on = min(self.detected_on, seen)


def _rows(candidates: pd.DataFrame) -> list[tuple[datetime, datetime, str, float, datetime]]:
    ordered = candidates.sort_values(["end", "start"], kind="stable")
    return [
        (pd.Timestamp(r["start"]).to_pydatetime(), pd.Timestamp(r["end"]).to_pydatetime(),
         str(r["source"]), float(r["strength"]), pd.Timestamp(r["detected_on"]).to_pydatetime())
        for r in ordered.to_dict("records")
    ]  # fmt: skip


def _clusters(candidates: pd.DataFrame) -> list[_Cluster]:
    """Coherence candidates grouped by overlapping intervals (intersected: the cut is in every
    one), then the amplitude and NDVI candidates attached to the cluster they overlap; those
    overlapping none form their own clusters (used for parcels without coherence)."""
    rows = _rows(candidates)
    out: list[_Cluster] = []
    for start, end, source, score, seen in rows:
        if not source.startswith("COHE"):
            continue
        for cluster in reversed(out):
            if cluster.overlaps(start, end):
                cluster.add(start, end, source, score, seen, narrow=True)
                break
        else:
            out.append(_Cluster(start, end, seen, {source: score}))
    coherent = len(out)
    for start, end, source, score, seen in rows:
        if source.startswith("COHE"):
            continue
        for k, cluster in enumerate(out):
            if cluster.overlaps(start, end):
                cluster.add(start, end, source, score, seen, narrow=k >= coherent)
                break
        else:
            out.append(_Cluster(start, end, seen, {source: score}))
    return sorted(out, key=lambda c: c.end)


def _source_confidence(source: str, score: float, s: CapmonSettings) -> float:
    if source.startswith("COHE"):
        return 1.0 - float(np.exp(-score / s.coherence_z))
    if source.startswith("AMP"):
        return 0.5 * (1.0 - float(np.exp(-score / s.amplitude_z)))
    return 0.5 * (1.0 - float(np.exp(-score / s.ndvi_drop)))


def _accepted(cluster: _Cluster, has_s1: bool, s: CapmonSettings) -> bool:
    coherence = [v for k, v in cluster.sources.items() if k.startswith("COHE")]
    others = [k for k in cluster.sources if not k.startswith("COHE")]
    if not has_s1:
        return cluster.sources.get("NDVI", 0.0) >= s.ndvi_only_drop
    if not coherence:
        return False
    return max(coherence) >= s.strong_z or len(coherence) >= 2 or bool(others)


def _ndvi_at(series: SeriesMatrix | None, row: int, start: datetime, end: datetime) -> F64:
    if series is None or series.empty:
        return np.array([])
    dates = series.dates.astype("datetime64[s]")
    mask = (dates >= np.datetime64(start, "s")) & (dates <= np.datetime64(end, "s"))
    values = series.values[row, mask]
    out: F64 = values[np.isfinite(values) & (values >= 0.1)]
    return out


def _vegetated(optical: SeriesMatrix | None, row: int, c: _Cluster, s: CapmonSettings) -> bool:
    before = _ndvi_at(optical, row, c.start - timedelta(days=s.vegetation_days), c.start)
    return len(before) == 0 or float(before.max()) >= s.vegetation_ndvi


def _regrows(series: ParcelSeries, row: int, c: _Cluster, s: CapmonSettings) -> bool:
    """Still grass after the event, and regrowing; False only when later observations say so.

    NDVI after the event (up to ``regrowth_days``) must not stay at bare-soil level (a ploughed
    or harvested field); without NDVI, the coherence must fall back after its jump (a bare,
    ploughed field stays coherent).
    """
    horizon = c.end + timedelta(days=s.regrowth_days)
    after = _ndvi_at(series.optical, row, c.end + timedelta(hours=1), horizon)
    if len(after):
        return float(after.max()) >= s.post_cut_ndvi
    for m in series.coherence.get("VH", []):
        dates = m.dates.astype("datetime64[s]")
        mask = (dates > np.datetime64(c.end, "s")) & (dates <= np.datetime64(horizon, "s"))
        values = m.values[row, mask]
        values = values[np.isfinite(values)]
        if len(values) >= 3 and float(values[0]) - float(np.median(values[1:])) < 0.03:
            return False
    return True


def select_events(
    candidates: pd.DataFrame,
    series: ParcelSeries,
    row: int,
    settings: CapmonSettings | None = None,
    use_s1: bool = True,
) -> list[MowingEvent]:
    """One parcel's events from its candidates (``row``: its index in ``series``)."""
    s = settings or CapmonSettings()
    has_s1 = use_s1 and bool(np.isfinite(np.concatenate(
        [m.values[row] for ms in series.coherence.values() for m in ms] or [np.array([])]
    )).any())  # fmt: skip
    events: list[MowingEvent] = []
    for cluster in _clusters(candidates):
        if not _accepted(cluster, has_s1, s) or not _vegetated(series.optical, row, cluster, s):
            continue
        if not _regrows(series, row, cluster, s):
            continue
        confidence = fused_confidence(
            _source_confidence(k, v, s) for k, v in cluster.sources.items()
        )
        missions = sorted({"S2" if k == "NDVI" else "S1" for k in cluster.sources}, reverse=True)
        events.append(MowingEvent(cluster.start, cluster.end, round(confidence, 4),
                                  "/".join(missions), cluster.detected_on))  # fmt: skip
    kept: list[MowingEvent] = []
    for event in sorted(events, key=lambda e: (-e.confidence, e.end)):
        if all(abs((event.end - k.end) / timedelta(days=1)) >= s.min_interval_days for k in kept):
            kept.append(event)
    best = sorted(kept, key=lambda e: (-e.confidence, e.end))[:MAX_EVENTS]
    return sorted(best, key=lambda e: e.start)


def select_all(
    candidates: pd.DataFrame,
    series: ParcelSeries,
    settings: CapmonSettings | None = None,
    use_s1: bool = True,
) -> dict[int, list[MowingEvent]]:
    """Events of every parcel of ``series`` that has candidates."""
    position = {int(p): i for i, p in enumerate(series.parcel_ids)}
    out: dict[int, list[MowingEvent]] = {}
    for key, group in candidates.groupby("parcel_id"):
        parcel_id = int(cast(int, key))
        events = select_events(group, series, position[parcel_id], settings, use_s1)
        if events:
            out[parcel_id] = events
    return out


def parcels_with_s1(series: ParcelSeries) -> Sequence[int]:
    """Parcels with at least one coherence value."""
    mask = np.zeros(len(series.parcel_ids), dtype=bool)
    for matrices in series.coherence.values():
        for m in matrices:
            mask |= np.isfinite(m.values).any(axis=1)
    return [int(p) for p in series.parcel_ids[mask]]
