"""Per-pixel signals for the markers database: indices, biophysical variables, SAR values, masks.

Pure numpy, float32 in and out, NaN = no data. The readers decode each band of a product once
and :func:`compute_signals` turns them into the requested signals; :func:`signal_inputs` says
which bands to decode and :func:`plan_signals` which requested signals a product's bands can
give (the others are skipped, not the product). Values outside a signal's physical range never
come out of :func:`compute_signals` (NaN). Band naming and the Landsat mapping:
:mod:`capmon.signals.bands`.
"""

from __future__ import annotations

from capmon.signals.bands import LANDSAT_BANDS, sensor_family
from capmon.signals.biophysical import BiophysicalResult, ViewingAngles, fapar, fcover, lai
from capmon.signals.catalogue import (
    SIGNALS,
    Signal,
    SignalPlan,
    get_signal,
    physical_range,
    plan_signals,
    signal_inputs,
)
from capmon.signals.compute import compute_signals, physical_valid

__all__ = [
    "LANDSAT_BANDS",
    "SIGNALS",
    "BiophysicalResult",
    "Signal",
    "SignalPlan",
    "ViewingAngles",
    "compute_signals",
    "fapar",
    "fcover",
    "get_signal",
    "lai",
    "physical_range",
    "physical_valid",
    "plan_signals",
    "sensor_family",
    "signal_inputs",
]
