"""Compute several signals of one product from its bands, each band decoded once by the caller."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from capmon.errors import InputError
from capmon.signals.bands import (
    L8,
    NIR_ALIASES,
    SUN_AZIMUTH,
    SUN_ZENITH,
    VIEW_AZIMUTH,
    VIEW_ZENITH,
    sensor_family,
)
from capmon.signals.biophysical import ViewingAngles
from capmon.signals.catalogue import BAND_RANGES, Signal, get_signal, physical_range, within

FloatArray = npt.NDArray[np.float32]


def _common_bands(bands: Mapping[str, npt.ArrayLike]) -> dict[str, npt.NDArray[np.float32]]:
    arrays: dict[str, npt.NDArray[np.float32]] = {}
    shape: tuple[int, ...] | None = None
    first = ""
    for band, values in bands.items():
        array = np.asarray(values, dtype=np.float32)
        if shape is None:
            shape, first = array.shape, band
        elif array.shape != shape:
            raise InputError(
                f"band {band} has shape {array.shape} but {first} has {shape}: "
                "give all bands at one common resolution"
            )
        arrays[band] = array
    return arrays


def compute_signals(
    names: Iterable[str],
    bands: Mapping[str, npt.ArrayLike],
    *,
    sensor: str,
    angles: ViewingAngles | None = None,
) -> dict[str, FloatArray]:
    """Each requested signal once, keyed by its canonical name (float32, NaN = no data).

    Physical ranges are enforced: an input reflectance outside
    :data:`~capmon.signals.catalogue.REFLECTANCE_RANGE` (a fill value such as 1e20, a
    saturated pixel) is no data for every signal that uses it, and a signal value outside its
    :attr:`~capmon.signals.catalogue.Signal.valid_range` (or not finite) is NaN, so that it
    never enters a statistic.

    ``bands`` maps canonical band names to arrays of one common shape (reflectance 0..1 for
    optical sensors; linear power or coherence for S1, see :mod:`capmon.signals.bands`). For
    Landsat, ``B08`` and ``B8A`` stand for each other when only one is given. ``angles`` is
    required when a biophysical signal (LAI, FAPAR, FCOVER) is requested.
    """
    family = sensor_family(sensor)
    signals: dict[str, Signal] = {}
    for name in names:
        signal = get_signal(name).for_sensor(family)
        signals.setdefault(signal.name, signal)
    arrays: dict[str, npt.NDArray[Any]] = dict(_common_bands(bands))
    if family == L8:
        present = [band for band in NIR_ALIASES if band in arrays]
        if len(present) == 1:
            for band in NIR_ALIASES:
                arrays.setdefault(band, arrays[present[0]])
    needing_angles = [signal.name for signal in signals.values() if signal.needs_angles]
    if needing_angles:
        if angles is None:
            raise InputError(
                f"signal(s) {', '.join(needing_angles)} need the sun and view angles "
                "(angles=ViewingAngles(...))"
            )
        arrays.update(
            {
                SUN_ZENITH: np.asarray(angles.sun_zenith, dtype=np.float64),
                SUN_AZIMUTH: np.asarray(angles.sun_azimuth, dtype=np.float64),
                VIEW_ZENITH: np.asarray(angles.view_zenith, dtype=np.float64),
                VIEW_AZIMUTH: np.asarray(angles.view_azimuth, dtype=np.float64),
            }
        )
    results: dict[str, FloatArray] = {}
    checked: set[str] = set()
    for signal in signals.values():
        missing = [band for band in signal.band_inputs if band not in arrays]
        if missing:
            raise InputError(
                f"signal {signal.name} needs band(s) {', '.join(missing)} for {sensor}, "
                f"not given (given: {', '.join(sorted(bands)) or 'none'})"
            )
        for band in signal.band_inputs:
            if band in BAND_RANGES and band not in checked:
                arrays[band] = within(arrays[band], BAND_RANGES[band])
                checked.add(band)
        values = np.asarray(signal.compute(MappingProxyType(arrays)), dtype=np.float32)
        results[signal.name] = within(values, signal.valid_range)
    return results


def physical_valid(name: str, values: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True where ``values`` of signal (or optical band) ``name`` are finite and inside its
    physical range (:func:`capmon.signals.catalogue.physical_range`).

    :func:`compute_signals` already turns every other value into NaN; this is for values that
    come from elsewhere (stored or imported statistics)."""
    array = np.asarray(values, dtype=np.float64)
    valid_range = physical_range(name)
    valid = np.isfinite(array)
    if valid_range is not None:
        valid &= (array >= valid_range[0]) & (array <= valid_range[1])
    return valid
