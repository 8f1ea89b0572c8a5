"""Three sub-parcel heterogeneity methods, benchmarked against each other.

1. **Coefficient of variation** (MDB only, :func:`cv_method`): per parcel and date
   CV = NDVI stdev / mean, on dates where the parcel is at least ``min_valid`` clear and
   vegetated (mean NDVI >= ``min_ndvi``: on bare soil the mean is small and CV meaningless).
   Heterogeneous when CV > ``cv_threshold`` on at least ``persistence`` dates (one cloudy
   edge does not make a parcel heterogeneous). Score: the ``persistence``-th highest CV.
2. **Distribution check** (pixels, :func:`mixture_method`): per parcel and date, a 1- and a
   2-component Gaussian mixture on the parcel's NDVI pixels; the date votes "two populations"
   when the 2-component model wins by BIC by more than ``bic_margin`` per pixel, both
   components hold at least ``min_share`` of the pixels and their means differ by at least
   ``min_difference``. Heterogeneous when ``persistence`` dates vote so.
3. **Clustering by tile** (pixels, :func:`cluster_method`): mini-batch k-means (``k``
   clusters) on the NDVI of every clear pixel of the tile window at a date; per parcel the
   share of each cluster and the NDVI difference between its clusters; the date votes
   "heterogeneous" when two clusters each hold ``min_share`` of the parcel and their mean
   NDVIs differ by more than ``min_difference`` (the webinar showed differences of
   0.07-0.15). Heterogeneous when
   ``persistence`` dates vote so. A window where k-means finds fewer distinct clusters than
   asked (a uniform scene) gives no vote. With ``use_coherence`` the k-means runs on the
   standardised (z-score over the window) NDVI and S1 coherence VV of each pixel (pixels valid
   in both); the vote still compares the clusters' mean NDVIs.

Each function returns one row per parcel: ``<method>_flag``, ``<method>_score`` and
``<method>_dates`` (the dates that voted, ``;``-separated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.cluster import MiniBatchKMeans  # type: ignore[import-untyped]
from sklearn.mixture import GaussianMixture  # type: ignore[import-untyped]

from capmon.errors import InputError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DateImage:
    """NDVI of one acquisition on a product grid and the parcels' pixels on it.

    ``ndvi`` is the full image (NaN = invalid); ``parcels`` maps each parcel id to the flat
    indices of its pixels; ``cohe_vv`` is the S1 coherence VV of a pair close in time on the
    same grid (None when not used or not available).
    """

    day: date
    ndvi: npt.NDArray[np.float32]
    parcels: Mapping[int, npt.NDArray[np.int64]]
    cohe_vv: npt.NDArray[np.float32] | None = None


def _votes_table(
    ids: Sequence[int],
    votes: Mapping[int, list[tuple[date, float]]],
    method: str,
    persistence: int,
) -> pd.DataFrame:
    rows = []
    for pid in ids:
        hits = sorted(votes.get(pid, []), key=lambda v: -v[1])
        score = hits[persistence - 1][1] if len(hits) >= persistence else (
            hits[0][1] * len(hits) / persistence if hits else 0.0
        )  # fmt: skip
        rows.append(
            {
                "parcel_id": pid,
                f"{method}_flag": len(hits) >= persistence,
                f"{method}_score": float(score),
                f"{method}_dates": ";".join(sorted(d.isoformat() for d, _ in hits)),
            }
        )
    return pd.DataFrame(rows)


def cv_method(
    rows: pd.DataFrame,
    parcel_ids: Sequence[int],
    *,
    cv_threshold: float = 0.12,
    min_ndvi: float = 0.3,
    min_valid: float = 0.9,
    persistence: int = 3,
) -> pd.DataFrame:
    """The coefficient-of-variation method on MDB NDVI rows (see the module docstring)."""
    if persistence < 1:
        raise InputError(f"persistence must be >= 1, not {persistence}")
    ndvi = rows[rows["signal"] == "NDVI"]
    # A row's valid share is tested where the MDB knows its count and pixels (an imported MDB
    # may not: null or 0); a CV needs a stdev, so means-only rows and one-pixel rows give no vote.
    count = ndvi["count"].astype(float)
    pixels = ndvi["pixels"].astype(float)
    known = (count > 0) & (pixels > 0)
    share_ok = ~known | (count / pixels.where(known, 1.0) >= min_valid)
    spread = ndvi["stdev"].notna() & ~((count > 0) & (count < 2))
    usable = ndvi[share_ok & (ndvi["mean"] >= min_ndvi) & spread]
    cv = usable["stdev"] / usable["mean"]
    votes: dict[int, list[tuple[date, float]]] = {}
    for pid, day, value in zip(usable["parcel_id"], usable["date"], cv, strict=True):
        if value > cv_threshold:
            votes.setdefault(int(pid), []).append((pd.Timestamp(day).date(), float(value)))
    table = _votes_table(parcel_ids, votes, "cv", persistence)
    dated = usable.assign(_cv=cv).groupby("parcel_id")["_cv"].size()
    table["cv_dates_used"] = table["parcel_id"].map(dated).fillna(0).astype(int)
    return table


def _bic_gain(values: FloatArray, seed: int) -> tuple[float, float, float]:
    """(BIC(1) - BIC(2)) per pixel, smaller component weight, |mean difference|."""
    x = values.reshape(-1, 1)
    one = GaussianMixture(1, random_state=seed).fit(x)
    two = GaussianMixture(2, random_state=seed, n_init=2, reg_covar=1e-5).fit(x)
    gain = (one.bic(x) - two.bic(x)) / len(values)
    weights = two.weights_
    means = two.means_.ravel()
    return float(gain), float(weights.min()), float(abs(means[0] - means[1]))


def mixture_method(
    images: Sequence[DateImage],
    parcel_ids: Sequence[int],
    *,
    bic_margin: float = 0.05,
    min_share: float = 0.08,
    min_difference: float = 0.07,
    min_pixels: int = 20,
    max_pixels: int = 400,
    persistence: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """The 1-vs-2-component mixture method on parcel pixels (see the module docstring)."""
    rng = np.random.default_rng(seed)
    votes: dict[int, list[tuple[date, float]]] = {}
    for image in images:
        flat = image.ndvi.ravel()
        for pid in parcel_ids:
            pixels = image.parcels.get(pid)
            if pixels is None or len(pixels) < min_pixels:
                continue
            values = flat[pixels].astype(np.float64)
            values = values[np.isfinite(values)]
            if len(values) < min_pixels or len(values) < 0.8 * len(pixels):
                continue
            if len(values) > max_pixels:
                values = rng.choice(values, max_pixels, replace=False)
            low, high = np.percentile(values, [100 * min_share, 100 * (1 - min_share)])
            if high - low < min_difference:
                continue  # two parts of min_share each could not differ by min_difference
            gain, share, difference = _bic_gain(values, seed)
            if gain > bic_margin and share >= min_share and difference >= min_difference:
                votes.setdefault(pid, []).append((image.day, difference))
    return _votes_table(parcel_ids, votes, "mixture", persistence)


@dataclass(frozen=True)
class ClusterLabels:
    """The k-means cluster of every pixel of one date (-1 = invalid) and its cluster NDVIs."""

    day: date
    labels: npt.NDArray[np.int16]
    centres: FloatArray


def cluster_image(
    image: DateImage,
    *,
    k: int = 5,
    sample: int = 50000,
    seed: int = 0,
    use_coherence: bool = False,
) -> ClusterLabels | None:
    """Mini-batch k-means of the clear pixels of the window; None when it is too uniform.

    With ``use_coherence`` (and a coherence image) the features are the standardised NDVI and
    coherence VV; ``centres`` are always the clusters' mean NDVIs.
    """
    values = image.ndvi.ravel()
    columns = [values]
    if use_coherence and image.cohe_vv is not None:
        columns.append(image.cohe_vv.ravel())
    stacked = np.column_stack(columns).astype(np.float64)
    valid = np.flatnonzero(np.isfinite(stacked).all(axis=1))
    if len(valid) < 10 * k:
        return None
    x = stacked[valid]
    if x.shape[1] > 1:
        spread = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    rng = np.random.default_rng(seed)
    fit_on = x if len(x) <= sample else x[rng.choice(len(x), sample, replace=False)]
    distinct = len(np.unique(np.round(fit_on, 3), axis=0))
    if distinct < k:
        return None  # one cluster only (a uniform window): nothing to compare
    model = MiniBatchKMeans(k, random_state=seed, n_init=3, batch_size=4096).fit(fit_on)
    predicted = model.predict(x).astype(np.int16)
    labels = np.full(values.shape, -1, dtype=np.int16)
    labels[valid] = predicted
    counts = np.bincount(predicted, minlength=k)
    sums = np.bincount(predicted, weights=values[valid].astype(np.float64), minlength=k)
    centres = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return ClusterLabels(image.day, labels.reshape(image.ndvi.shape), centres)


def cluster_method(
    images: Sequence[DateImage],
    parcel_ids: Sequence[int],
    *,
    k: int = 5,
    min_share: float = 0.1,
    min_difference: float = 0.07,
    persistence: int = 2,
    seed: int = 0,
    use_coherence: bool = False,
) -> tuple[pd.DataFrame, list[ClusterLabels]]:
    """The clustering-by-tile method (see the module docstring) and the cluster images."""
    votes: dict[int, list[tuple[date, float]]] = {}
    clustered = []
    for image in images:
        clusters = cluster_image(image, k=k, seed=seed, use_coherence=use_coherence)
        if clusters is None:
            continue
        clustered.append(clusters)
        labels = clusters.labels.ravel()
        flat = image.ndvi.ravel()
        for pid in parcel_ids:
            pixels = image.parcels.get(pid)
            if pixels is None or len(pixels) == 0:
                continue
            own = labels[pixels]
            own_ndvi = flat[pixels]
            own_ndvi, own = own_ndvi[own >= 0], own[own >= 0]
            if len(own) < 0.8 * len(pixels) or len(own) < 10:
                continue
            counts = np.bincount(own, minlength=k)
            large = np.flatnonzero(counts >= min_share * len(own))
            if len(large) < 2:
                continue
            means = [float(np.mean(own_ndvi[own == c])) for c in large]
            difference = max(means) - min(means)
            if difference > min_difference:
                votes.setdefault(pid, []).append((image.day, difference))
    return _votes_table(parcel_ids, votes, "cluster", persistence), clustered
