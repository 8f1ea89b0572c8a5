"""Per-parcel statistics of one raster band, computed for all parcels in one vectorised pass.

The parcels' pixels come as :class:`ParcelPixels` (flat pixel indices grouped by parcel, built
once per grid and parcel set by :mod:`capmon.mdb.labels`). For every date and signal, one gather
of the band's values, a few ``bincount`` calls and one sort of 64-bit keys (parcel rank in the
high bits, the value's order-preserving bits in the low bits) give count, mean, sample standard
deviation, min, max and the 25th/50th/75th percentiles of every parcel (numpy's default
"linear" percentile definition).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from capmon.errors import InputError

STATISTICS = ("count", "mean", "stdev", "min", "max", "median", "p25", "p75")
_SIGN = np.uint32(0x80000000)


@dataclass(frozen=True, eq=False)
class ParcelPixels:
    """Which pixels of a grid belong to which parcel.

    ``pixel_index[offsets[i]:offsets[i+1]]`` are the flat (row-major) indices of the pixels of
    parcel ``parcel_ids[i]``. A pixel may belong to several parcels when parcels overlap.
    """

    parcel_ids: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]
    pixel_index: npt.NDArray[np.int64]
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        if self.offsets.shape != (len(self.parcel_ids) + 1,):
            raise InputError("offsets must have one entry more than parcel_ids")
        if len(self.pixel_index) != int(self.offsets[-1]):
            raise InputError("offsets[-1] must equal the number of pixel indices")

    @property
    def pixels(self) -> npt.NDArray[np.int64]:
        """Number of pixels of each parcel."""
        return np.diff(self.offsets)

    @property
    def segment(self) -> npt.NDArray[np.int32]:
        """For each entry of ``pixel_index``, the position of its parcel in ``parcel_ids``."""
        return np.repeat(np.arange(len(self.parcel_ids), dtype=np.int32), self.pixels)


@dataclass(frozen=True)
class ParcelStatistics:
    """Statistics of one band for every parcel of a :class:`ParcelPixels` (same order).

    ``count`` is the number of valid pixels, ``pixels`` the number of parcel pixels; the other
    arrays are float64 and NaN where a parcel has too few valid pixels for the statistic.
    """

    parcel_ids: npt.NDArray[np.int64]
    pixels: npt.NDArray[np.int64]
    count: npt.NDArray[np.int64]
    mean: npt.NDArray[np.float64]
    stdev: npt.NDArray[np.float64]
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    median: npt.NDArray[np.float64]
    p25: npt.NDArray[np.float64]
    p75: npt.NDArray[np.float64]

    def kept(self, min_count: int = 2, min_valid_fraction: float = 0.1) -> npt.NDArray[np.bool_]:
        """Sen4CAP's rule: a parcel/date is kept when count > 1 and count > 10 % of its pixels.

        ``min_count`` and ``min_valid_fraction`` make it configurable (count >= min_count and
        count > min_valid_fraction * pixels).
        """
        return (self.count >= min_count) & (self.count > min_valid_fraction * self.pixels)


def _order_keys(values: npt.NDArray[np.float32]) -> npt.NDArray[np.uint32]:
    """Unsigned keys that sort like the float32 values (for finite values)."""
    bits = values.view(np.uint32)
    negative = (bits & _SIGN) != 0
    return np.where(negative, ~bits, bits | _SIGN).astype(np.uint32)


def _values_from_keys(keys: npt.NDArray[np.uint32]) -> npt.NDArray[np.float32]:
    positive = (keys & _SIGN) != 0
    bits = np.where(positive, keys & ~_SIGN, ~keys).astype(np.uint32)
    return bits.view(np.float32)


def _sorted_keys(
    seg: npt.NDArray[np.int32], values: npt.NDArray[Any], n: int
) -> tuple[
    npt.NDArray[np.unsignedinteger[Any]], Callable[[npt.NDArray[Any]], npt.NDArray[np.float64]]
]:
    """Keys (parcel rank in the high bits, value order in the low bits), sorted, and a decoder.

    Integer values use ``value - min`` as the low bits, so the keys often fit in 32 bits (twice
    as fast to sort as 64); float values use the order-preserving bits of their float32.
    """
    if values.dtype.kind in "iu":
        low = int(values.min()) if len(values) else 0
        span = int(values.max()) - low if len(values) else 0
        value_bits = max(span.bit_length(), 1)
        kind: type[np.unsignedinteger[Any]] = (
            np.uint32 if max(n - 1, 1).bit_length() + value_bits <= 32 else np.uint64
        )
        keys: npt.NDArray[Any] = seg.astype(kind)
        keys <<= kind(value_bits)
        shifted: npt.NDArray[Any] = values.astype(kind)
        shifted -= np.array(low).astype(kind)  # modular: exact for values >= low
        keys |= shifted
        del shifted
        keys.sort()
        mask = kind((1 << value_bits) - 1)

        def decode_integers(selected: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
            integers: npt.NDArray[np.int64] = (selected & mask).astype(np.int64)
            return (integers + low).astype(np.float64)

        return keys, decode_integers

    wide = seg.astype(np.uint64)
    wide <<= np.uint64(32)
    wide |= _order_keys(values)
    wide.sort()

    def decode_floats(selected: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        low_bits = (selected & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        return _values_from_keys(low_bits).astype(np.float64)

    return wide, decode_floats


def parcel_statistics(
    parcels: ParcelPixels,
    band: npt.NDArray[np.floating] | npt.NDArray[np.integer],
    valid: npt.NDArray[np.bool_] | None = None,
    *,
    segment: npt.NDArray[np.int32] | None = None,
) -> ParcelStatistics:
    """Statistics of ``band`` for every parcel; non-finite values and ``~valid`` are ignored.

    ``band`` is converted to float32 (reflectances, indices and dB values all fit); pass the
    precomputed ``parcels.segment`` when calling this for many bands of one grid.
    """
    if band.shape != parcels.shape:
        raise InputError(f"band shape {band.shape} differs from the grid shape {parcels.shape}")
    if valid is not None and valid.shape != parcels.shape:
        raise InputError(f"mask shape {valid.shape} differs from the grid shape {parcels.shape}")
    n = len(parcels.parcel_ids)
    seg = parcels.segment if segment is None else segment
    # Gather first, convert after: only the parcels' pixels are converted, not the whole tile.
    gathered = np.take(np.ascontiguousarray(band).ravel(), parcels.pixel_index)
    values: npt.NDArray[Any]
    ok: npt.NDArray[np.bool_] | None = None
    if gathered.dtype.kind in "iu" and gathered.dtype.itemsize <= 2:
        values = gathered  # 8/16-bit integers are exact in float32 and always finite
    else:
        values = gathered.astype(np.float32)
        ok = np.isfinite(values)
    del gathered
    if valid is not None:
        inside = np.take(np.ascontiguousarray(valid).ravel(), parcels.pixel_index)
        ok = inside.astype(bool, copy=False) if ok is None else ok & inside
    if ok is not None and not ok.all():
        # The pixels stay grouped by parcel: valid counts from a running sum.
        running = np.zeros(len(ok) + 1, dtype=np.int64)
        np.cumsum(ok, out=running[1:])
        count = running[parcels.offsets[1:]] - running[parcels.offsets[:-1]]
        seg_ok, values_ok = seg[ok], values[ok]
    else:
        seg_ok, values_ok = seg, values
        count = parcels.pixels.astype(np.int64)
    del values, ok
    # Each parcel's values are contiguous: sums by reduceat over the non-empty parcels (much
    # faster than a scattered bincount); empty parcels get NaN.
    has = count > 0
    counted = count[has]
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(count, out=starts[1:])
    first = starts[:-1][has]
    mean = np.full(n, np.nan)
    stdev = np.full(n, np.nan)
    if len(first):
        # float64 sums of the values as they are (no float64 copy of them)
        mean[has] = np.add.reduceat(values_ok, first, dtype=np.float64) / counted
        deviation = np.subtract(values_ok, np.repeat(mean[has], counted), dtype=np.float64)
        np.square(deviation, out=deviation)
        m2 = np.add.reduceat(deviation, first)
        del deviation
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.sqrt(m2 / np.maximum(counted - 1, 1))
        stdev[has] = np.where(counted > 1, spread, np.nan)

    # Only 7 values per parcel are read from the sorted keys: decode just those.
    keys, decode = _sorted_keys(seg_ok, values_ok, n)
    del values_ok
    minimum = np.full(n, np.nan)
    maximum = np.full(n, np.nan)
    minimum[has] = decode(keys[first])
    maximum[has] = decode(keys[first + counted - 1])

    def percentile(q: float) -> npt.NDArray[np.float64]:
        out = np.full(n, np.nan)
        position = (counted - 1) * q
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, counted - 1)
        fraction = position - low
        v_low = decode(keys[first + low])
        v_high = decode(keys[first + high])
        # numpy's "linear" method: lerp written as it computes it, for identical results
        out[has] = np.where(
            fraction >= 0.5,
            v_high - (v_high - v_low) * (1 - fraction),
            v_low + (v_high - v_low) * fraction,
        )
        return out

    return ParcelStatistics(
        parcel_ids=parcels.parcel_ids,
        pixels=parcels.pixels,
        count=count,
        mean=mean,
        stdev=stdev,
        min=minimum,
        max=maximum,
        median=percentile(0.5),
        p25=percentile(0.25),
        p75=percentile(0.75),
    )
