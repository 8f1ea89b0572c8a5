"""Sen4CAP's L4B method (``method=sen4cap``): S2 NDVI drops, S1 coherence CFAR, fusion.

Detectors follow ``GrasslandMowing/src_s2/S2_main.py`` and ``src_s1/S1_main.py``
(sen4cap-system.md 6.3-6.5):

* S2: with the two last valid NDVIs ``N0`` (day0) and ``N1`` (day1) and the current one ``N``,
  ``d = max((N0 - N1 - decreasing_abs_th) / N1, 0)`` if the drop is fast enough
  (``decreasing_rate_th``), the following rise is not too fast (``increasing_rate_th``),
  ``N1 < high_abs_th`` and ``N0 > low_abs_th``. The event is [day0, day1] shortened to
  ``no_mowing_after_det`` days; confidence ``1 - 0.5 exp(-d)`` (in [0.5, 1)).
* S1, per orbit and polarisation: a line fitted on the previous ``stat_smpl_n`` coherences
  predicts the current one; ``d = max((c - p) / s - k, 0)`` with ``k = sqrt(2) erfinv(1 - 2
  pfa)`` and ``s`` at least ``sqrt(min_cohe_var / pixels)``; the detection is moved one pair
  back (the pair the cut decorrelated) and its interval is that pair; confidence
  ``0.5 - 0.5 exp(-d)`` (below 0.5). VV, when configured, only raises VH detections.

Detections are *candidates* (with the acquisition that revealed them); :func:`select_events`
turns a parcel's candidates into its events: S2 suppression (45 days), then each orbit's S1
events (28 days, at most 4) fused into them, at most 4 in all. Both detectors are causal, so a
run that keeps the candidates of the previous run up to its last date and adds the new ones
gives the same events as one run over the whole season (the near-real-time state).
"""

from __future__ import annotations

import math
from datetime import datetime, time

import numpy as np
import pandas as pd
from scipy.special import erfinv

from capmon.processors.l4b.config import L4BConfig, S1Settings, S2Settings
from capmon.processors.l4b.fusion import (
    MAX_EVENTS,
    MowingEvent,
    fuse,
    strongest,
    suppress,
)
from capmon.processors.l4b.series import F64, ParcelSeries, SeriesMatrix, own_grids

CANDIDATE_COLUMNS = (
    "parcel_id", "source", "start", "end", "confidence", "mission", "detected_on", "strength",
)  # fmt: skip


def norm_confidence(strength: F64, low: float, high: float) -> F64:
    """Sen4CAP's ``norm_fun`` with alpha 1: ``high - (high - low) exp(-d)``, at most 0.999."""
    out: F64 = np.minimum(high - (high - low) * np.exp(-strength), 0.999)
    return out


def cfar_factor(pfa: float) -> float:
    """``k = sqrt(2) erfinv(1 - 2 pfa)`` (pfa 3e-8 -> 5.42)."""
    return float(math.sqrt(2.0) * erfinv(1.0 - 2.0 * pfa))


def _clock(text: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        return time(0, 0)


def _at(day: np.datetime64, clock: time) -> datetime:
    base = pd.Timestamp(day).to_pydatetime().replace(tzinfo=None)
    return datetime.combine(base.date(), clock)


def empty_candidates() -> pd.DataFrame:
    frame = pd.DataFrame({c: [] for c in CANDIDATE_COLUMNS})
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame["parcel_id"] = frame["parcel_id"].astype("int64")
    for column in ("start", "end", "detected_on"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    for column in ("confidence", "strength"):
        frame[column] = frame[column].astype("float64")
    for column in ("source", "mission"):
        frame[column] = frame[column].astype(str)
    return frame


def s2_drop_strength(matrix: SeriesMatrix, s2: S2Settings) -> tuple[F64, F64, F64, F64]:
    """Sen4CAP's S2 detection value at each date, with the memory dates it used.

    Returns ``(strength, day0, day1, ndvi)`` arrays (parcels x dates); ``strength[i, t] > 0``
    means a drop between ``day0`` and ``day1`` (days since 1970), revealed at date ``t``.
    """
    ndvi = matrix.values.astype(np.float64, copy=True)
    ndvi[~(ndvi >= s2.corrupted_th)] = np.nan
    days = matrix.days()
    n_parcels, n_dates = ndvi.shape
    n0 = np.full(n_parcels, np.nan)
    n1 = np.full(n_parcels, np.nan)
    d0 = np.full(n_parcels, np.nan)
    d1 = np.full(n_parcels, np.nan)
    strength = np.zeros_like(ndvi)
    day0 = np.full_like(ndvi, np.nan)
    day1 = np.full_like(ndvi, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        for t in range(n_dates):
            current = ndvi[:, t]
            value = np.maximum((n0 - n1 - s2.decreasing_abs_th) / n1, 0.0)
            ok = (n1 - n0) / (d1 - d0) < s2.decreasing_rate_th
            ok &= (current - n1) / (days[t] - d1) < s2.increasing_rate_th
            ok &= n1 < s2.high_abs_th
            ok &= n0 > s2.low_abs_th
            value = np.where(ok & np.isfinite(value), value, 0.0)
            strength[:, t] = value
            day0[:, t], day1[:, t] = d0, d1
            valid = np.isfinite(current)
            n0[valid], d0[valid] = n1[valid], d1[valid]
            n1[valid], d1[valid] = current[valid], days[t]
    return strength, day0, day1, ndvi


def s2_candidates(matrix: SeriesMatrix, s2: S2Settings) -> pd.DataFrame:
    """S2 NDVI-drop candidates of every parcel of ``matrix``."""
    if matrix.empty:
        return empty_candidates()
    strength, day0, day1, _ndvi = s2_drop_strength(matrix, s2)
    rows, cols = np.nonzero(strength > 0)
    clock = _clock(s2.acq_time)
    epoch = np.datetime64("1970-01-01", "D")
    records = []
    for i, t in zip(rows.tolist(), cols.tolist(), strict=True):
        end_day = epoch + np.timedelta64(int(day1[i, t]), "D")
        start_day = epoch + np.timedelta64(int(day0[i, t]), "D")
        shortest = end_day - np.timedelta64(s2.no_mowing_after_det, "D")
        start_day = max(start_day, shortest)
        records.append(
            (int(matrix.parcel_ids[i]), "S2", _at(start_day, clock), _at(end_day, clock),
             float(norm_confidence(np.array(strength[i, t]), 0.5, 1.0)), "S2",
             _at(matrix.dates[t], clock), float(strength[i, t]))
        )  # fmt: skip
    if not records:
        return empty_candidates()
    return _typed(pd.DataFrame(records, columns=list(CANDIDATE_COLUMNS)))


def linear_trend(values: F64, times: F64, samples: int) -> tuple[F64, F64]:
    """Sen4CAP's ``temporal_linear_fit``: for each date ``t >= samples``, a line fitted on the
    ``samples`` previous values gives the prediction (at the previous date) and the residual
    standard deviation. NaN where the window has a missing value."""
    prediction = np.full_like(values, np.nan)
    spread = np.full_like(values, np.nan)
    for t in range(samples, values.shape[1]):
        x = times[t - samples : t][None, :]
        y = values[:, t - samples : t]
        s = float(samples)
        sx, sy = x.sum(axis=1), y.sum(axis=1)
        sxx, sxy = (x**2).sum(axis=1), (x * y).sum(axis=1)
        delta = s * sxx - sx**2
        if not np.all(delta != 0):
            continue
        a = (sxx * sy - sx * sxy) / delta
        b = (s * sxy - sx * sy) / delta
        prediction[:, t] = a + b * times[t - 1]
        spread[:, t] = np.std(y - a[:, None] - b[:, None] * x, axis=1)
    return prediction, spread


def cfar_strength(matrix: SeriesMatrix, s1: S1Settings) -> F64:
    """Sen4CAP's coherence CFAR detection value, already moved one pair back.

    The trend window and the move back step through each parcel's own pairs (Sen4CAP's raster
    stack gives every parcel the same dates; a run's shared date grid does not).
    """
    values = matrix.values
    out = np.zeros_like(values)
    all_times = _pair_first_days(matrix, s1)
    floor = np.zeros(len(values))
    if s1.saturate_sigma:
        pixels = _parcel_pixels(matrix)
        with np.errstate(divide="ignore", invalid="ignore"):
            floor = np.sqrt(s1.min_cohe_var / pixels)
        floor = np.where(np.isfinite(floor), floor, 0.0)
    k = cfar_factor(s1.pfa)
    for rows, columns in own_grids(values):
        if len(columns) <= s1.stat_smpl_n:
            continue
        own = values[np.ix_(rows, columns)]
        times = all_times[columns]
        prediction, spread = linear_trend(own, times - times[0], s1.stat_smpl_n)
        spread = np.maximum(spread, floor[rows, None])
        spread = np.maximum(spread, 1e-6)
        with np.errstate(invalid="ignore"):
            strength = np.maximum((own - prediction) / spread - k, 0.0)
        strength = np.where(np.isfinite(strength), strength, 0.0)
        moved = np.roll(strength, -1, axis=1)
        moved[:, -1] = 0.0
        out[np.ix_(rows, columns)] = moved
    return out


def _on_dates(values: F64, dates: np.ndarray, wanted: np.ndarray) -> F64:
    """``values`` (parcels x ``dates``) on the columns ``wanted`` (0 where a date is absent)."""
    out = np.zeros((values.shape[0], len(wanted)))
    position = {d: j for j, d in enumerate(dates.astype("datetime64[D]").tolist())}
    for j, day in enumerate(wanted.astype("datetime64[D]").tolist()):
        if day in position:
            out[:, j] = values[:, position[day]]
    return out


def _pair_first_days(matrix: SeriesMatrix, s1: S1Settings) -> F64:
    if matrix.first_dates is not None and not np.isnat(matrix.first_dates).any():
        first: F64 = matrix.first_dates.astype("datetime64[D]").astype(np.int64).astype(float)
        return first
    out: F64 = matrix.days() - s1.time_interval
    return out


def _pair_first_dates(matrix: SeriesMatrix, s1: S1Settings) -> np.ndarray:
    if matrix.first_dates is not None and not np.isnat(matrix.first_dates).any():
        return matrix.first_dates
    return matrix.dates - np.timedelta64(s1.time_interval, "D")


def _parcel_pixels(matrix: SeriesMatrix) -> F64:
    # counts of 0 or NaN are unknown (an imported MDB of means): such parcels get 0 (no floor)
    counts = np.where(matrix.counts > 0, matrix.counts, np.nan)
    out: F64 = np.zeros(len(counts))
    known = np.isfinite(counts).any(axis=1) if counts.shape[1] else np.zeros(len(counts), bool)
    if known.any():
        out[known] = np.nanmedian(counts[known], axis=1)
    return out


def s1_clock(direction: str | None, s1: S1Settings) -> time:
    """Local acquisition time of an orbit direction (``locAcqTimeASC``/``DESC``)."""
    return _clock(s1.acq_time_desc if (direction or "").upper().startswith("D") else
                  s1.acq_time_asc)  # fmt: skip


def s1_candidates(
    series: ParcelSeries, s1: S1Settings, orbits: tuple[int, ...] = ()
) -> pd.DataFrame:
    """S1 coherence candidates, one source per orbit (VH, raised by VV where configured)."""
    if "COHE" not in s1.data_types:
        return empty_candidates()
    records = []
    main = "VH" if "VH" in s1.pol_types else s1.pol_types[0]
    others = [p for p in s1.pol_types if p != main]
    for matrix in series.coherence.get(main, []):
        if orbits and matrix.orbit not in orbits:
            continue
        confidence = np.zeros_like(matrix.values)
        strength = cfar_strength(matrix, s1)
        hit = strength > 0
        confidence[hit] = norm_confidence(strength[hit], 0.0, 0.5)
        for pol in others:
            for other in series.coherence.get(pol, []):
                if other.orbit != matrix.orbit:
                    continue
                extra = _on_dates(cfar_strength(other.rows(matrix.parcel_ids), s1),
                                  other.dates, matrix.dates)  # fmt: skip
                boost = np.zeros_like(extra)
                boost[extra > 0] = norm_confidence(extra[extra > 0], 0.0, 0.5)
                confidence[hit] = np.maximum(confidence[hit], boost[hit])
        clock = s1_clock(matrix.direction, s1)
        firsts = _pair_first_dates(matrix, s1)
        source = f"S1:{matrix.orbit}"
        observed = np.isfinite(matrix.values)
        for i, t in zip(*np.nonzero(hit), strict=True):
            later = np.flatnonzero(observed[i, t + 1 :])  # the parcel's own next pair
            revealed = matrix.dates[t + 1 + int(later[0])] if len(later) else matrix.dates[t]
            records.append(
                (int(matrix.parcel_ids[i]), source, _at(firsts[t], clock),
                 _at(matrix.dates[t], clock), float(confidence[i, t]), "S1",
                 _at(revealed, clock), float(strength[i, t]))
            )  # fmt: skip
    if not records:
        return empty_candidates()
    return _typed(pd.DataFrame(records, columns=list(CANDIDATE_COLUMNS)))


def detect_candidates(
    series: ParcelSeries, config: L4BConfig, use_s1: bool = True, use_s2: bool = True
) -> pd.DataFrame:
    """Every S2 and S1 candidate of the parcels of ``series``."""
    parts = []
    if use_s2 and series.optical is not None:
        parts.append(s2_candidates(series.optical, config.s2))
    if use_s1:
        parts.append(s1_candidates(series, config.s1, config.s1_orbits))
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else empty_candidates()


def to_events(candidates: pd.DataFrame) -> list[MowingEvent]:
    """Candidate rows -> events."""
    return [
        MowingEvent(
            pd.Timestamp(r["start"]).to_pydatetime(),
            pd.Timestamp(r["end"]).to_pydatetime(),
            float(r["confidence"]),
            str(r["mission"]),
            pd.Timestamp(r["detected_on"]).to_pydatetime(),
        )
        for r in candidates.to_dict("records")
    ]


def select_events(candidates: pd.DataFrame, config: L4BConfig) -> list[MowingEvent]:
    """One parcel's events from its candidates, in Sen4CAP's order: S2 first, then each orbit's
    S1 events fused into them."""
    s2 = candidates[candidates["source"] == "S2"]
    events = strongest(
        suppress(to_events(s2), config.s2.non_overlap_interval_days, "interval"), MAX_EVENTS
    )
    s1_gap = config.s1.non_overlap_interval_days
    for source in sorted(set(candidates["source"]) - {"S2"}):
        orbit = candidates[candidates["source"] == source]
        new = strongest(suppress(to_events(orbit), s1_gap, "end"), MAX_EVENTS)
        events = strongest(suppress(fuse([*events, *new]), s1_gap, "end"), MAX_EVENTS)
    return events
