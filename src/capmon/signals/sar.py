"""Sentinel-1 backscatter conventions, Sen4CAP's "AMP dB", and coherence pairing checks.

Sen4CAP's S1 L2 "AMP" products store the **amplitude** ``A = sqrt(σ⁰)`` (SNAP BandMaths
``sqrt(Sigma0)``), and its markers extraction takes ``10·log10(A)``, which is ``5·log10(σ⁰)``:
**half** the σ⁰ value in dB. Sen4CAP's L4C thresholds (e.g. the VV "> -3" outlier rule, the
VV−VH ratio change) are defined on that scale. capmon keeps both scales explicit:

* :func:`to_sigma0_db` gives the true backscatter in dB (σ⁰, or γ⁰ for a γ⁰ product);
* :func:`sen4cap_db` gives Sen4CAP's "AMP dB" (``10·log10`` of the amplitude), which is what the
  MDB signals ``AMP_VV``/``AMP_VH``/``AMP_VVVH`` hold, so that Sen4CAP thresholds keep their
  meaning.

In the linear and amplitude conventions 0 is no data (Sen4CAP's nodata) and becomes NaN, as do
negative and non-finite values; in the dB conventions only NaN is no data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from itertools import pairwise
from typing import Literal

import numpy as np
import numpy.typing as npt

from capmon.errors import InputError

FloatArray = npt.NDArray[np.float32]

S1_UNITS = frozenset({"S1A", "S1B", "S1C", "S1D"})
REPEAT_CYCLE_DAYS = 12
"""Repeat cycle of one Sentinel-1 unit; two units in the constellation halve it."""


class AmplitudeConvention(StrEnum):
    """What the pixel values of a Sentinel-1 backscatter product are."""

    SEN4CAP_AMPLITUDE = "sen4cap_amplitude"
    """``sqrt(σ⁰)`` linear amplitude, as Sen4CAP's S1 L2 AMP products (nodata 0)."""
    SIGMA0_LINEAR = "sigma0_linear"
    """σ⁰ linear power (nodata 0)."""
    SIGMA0_DB = "sigma0_db"
    """σ⁰ in dB, ``10·log10(σ⁰)``."""
    GAMMA0_LINEAR = "gamma0_linear"
    """γ⁰ (terrain-flattened) linear power (nodata 0)."""
    GAMMA0_DB = "gamma0_db"
    """γ⁰ in dB."""

    @property
    def is_db(self) -> bool:
        """Whether the values are already logarithmic."""
        return self in (AmplitudeConvention.SIGMA0_DB, AmplitudeConvention.GAMMA0_DB)


def parse_convention(value: AmplitudeConvention | str) -> AmplitudeConvention:
    """An :class:`AmplitudeConvention` from its value (``"sigma0_db"``...), or InputError."""
    try:
        return AmplitudeConvention(str(value).lower())
    except ValueError as exc:
        known = ", ".join(member.value for member in AmplitudeConvention)
        raise InputError(f"unknown amplitude convention {value!r}; known: {known}") from exc


def to_linear_power(values: npt.ArrayLike, convention: AmplitudeConvention | str) -> FloatArray:
    """Linear backscatter power (σ⁰ or γ⁰, as the product) as float32, NaN = no data."""
    convention = parse_convention(convention)
    array = np.asarray(values, dtype=np.float64)
    if convention.is_db:
        power = np.power(10.0, array / 10.0)
    else:
        power = np.square(array) if convention is AmplitudeConvention.SEN4CAP_AMPLITUDE else array
        power = np.where((array > 0.0) & np.isfinite(array), power, np.nan)
    return np.asarray(power, dtype=np.float32)


def _log10_positive(power: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """log10 of positive finite values, NaN elsewhere, without warnings."""
    valid = (power > 0.0) & np.isfinite(power)
    out = np.full(power.shape, np.nan, dtype=np.float64)
    np.log10(power, out=out, where=valid)
    return out


def to_sigma0_db(values: npt.ArrayLike, convention: AmplitudeConvention | str) -> FloatArray:
    """True backscatter in dB, ``10·log10(σ⁰)`` (γ⁰ for a γ⁰ product), float32, NaN = no data."""
    convention = parse_convention(convention)
    if convention.is_db:
        return np.asarray(values, dtype=np.float32)
    power = to_linear_power(values, convention).astype(np.float64)
    return (10.0 * _log10_positive(power)).astype(np.float32)


def sen4cap_db(values: npt.ArrayLike, convention: AmplitudeConvention | str) -> FloatArray:
    """Sen4CAP's "AMP dB": ``10·log10(sqrt(σ⁰)) = 5·log10(σ⁰)``, half the true dB value."""
    convention = parse_convention(convention)
    if convention.is_db:
        return (0.5 * np.asarray(values, dtype=np.float64)).astype(np.float32)
    if convention is AmplitudeConvention.SEN4CAP_AMPLITUDE:
        amplitude = np.asarray(values, dtype=np.float64)
        return (10.0 * _log10_positive(amplitude)).astype(np.float32)
    power = to_linear_power(values, convention).astype(np.float64)
    return (5.0 * _log10_positive(power)).astype(np.float32)


def ratio_db(vv_db: npt.ArrayLike, vh_db: npt.ArrayLike) -> FloatArray:
    """The VV/VH ratio in dB, ``VV_dB − VH_dB`` (both on the same dB scale), NaN = no data."""
    vv = np.asarray(vv_db, dtype=np.float32)
    vh = np.asarray(vh_db, dtype=np.float32)
    if vv.shape != vh.shape:
        raise InputError(f"VV shape {vv.shape} and VH shape {vh.shape} differ")
    return np.asarray(vv - vh, dtype=np.float32)


def coherence(values: npt.ArrayLike) -> FloatArray:
    """Coherence (linear, 0..1) as float32; 0 (Sen4CAP's nodata), NaN and values outside
    [0, 1] become NaN."""
    array = np.asarray(values, dtype=np.float32)
    valid = (array > 0.0) & (array <= 1.0)  # NaN compares False
    return np.where(valid, array, np.float32(np.nan)).astype(np.float32)


@dataclass(frozen=True)
class CoherencePair:
    """Two acquisitions of the same relative orbit whose coherence is computed.

    The MDB dates a coherence value by the *later* acquisition (``second``).
    """

    first: date
    second: date
    orbit: int | None = None
    polarisation: str | None = None

    def __post_init__(self) -> None:
        if self.second <= self.first:
            raise InputError(
                f"coherence pair: the second date {self.second} must follow the first {self.first}"
            )

    @property
    def interval_days(self) -> int:
        """Days between the two acquisitions (6 or 12 in a regular series)."""
        return (self.second - self.first).days


def expected_interval_days(sensors_flying: Iterable[str]) -> int:
    """The coherence interval: 6 days when two Sentinel-1 units fly, 12 with one.

    Sen4CAP paired S1A with S1B (6 days) and, after S1B failed in December 2021, S1A with itself
    (12 days). S1C restores 6-day pairs with S1A.
    """
    units = {sensor.upper() for sensor in sensors_flying}
    unknown = sorted(units - S1_UNITS)
    if unknown:
        raise InputError(
            f"unknown Sentinel-1 unit(s) {', '.join(unknown)}; known: {', '.join(sorted(S1_UNITS))}"
        )
    if not units:
        raise InputError("no Sentinel-1 unit flying: there is no coherence interval")
    return REPEAT_CYCLE_DAYS // min(len(units), 2)


@dataclass(frozen=True)
class CoherenceGap:
    """A hole in a coherence series.

    ``kind`` is ``"long_pair"`` for a pair spanning more than the expected interval (``start``,
    ``end`` = its dates), or ``"missing_pairs"`` when consecutive pairs' later dates are more than
    one interval apart (``start``, ``end`` = those later dates; ``missing`` = how many pairs are
    absent).
    """

    kind: Literal["long_pair", "missing_pairs"]
    start: date
    end: date
    days: int
    missing: int


def coherence_gaps(
    pair_dates: Sequence[tuple[date, date]], expected_days: int, *, tolerance_days: int = 1
) -> list[CoherenceGap]:
    """Gaps in a coherence series of one orbit and polarisation, sorted by date.

    A pair is regular when ``|interval − expected| ≤ tolerance_days`` (Sen4CAP's S1 report uses a
    one-day tolerance); longer pairs are reported, and so are missing pairs between consecutive
    later dates. Duplicated pairs count once.
    """
    if expected_days <= 0:
        raise InputError(f"expected_days must be positive, got {expected_days}")
    pairs = sorted(
        {CoherencePair(first, second) for first, second in pair_dates},
        key=lambda pair: (pair.second, pair.first),
    )
    gaps: list[CoherenceGap] = []
    limit = expected_days + tolerance_days
    for pair in pairs:
        if pair.interval_days > limit:
            gaps.append(CoherenceGap("long_pair", pair.first, pair.second, pair.interval_days, 0))
    later_dates = sorted({pair.second for pair in pairs})
    for previous, current in pairwise(later_dates):
        days = (current - previous).days
        if days > limit:
            missing = max(1, round(days / expected_days) - 1)
            gaps.append(CoherenceGap("missing_pairs", previous, current, days, missing))
    gaps.sort(key=lambda gap: (gap.start, gap.end, gap.kind))
    return gaps
