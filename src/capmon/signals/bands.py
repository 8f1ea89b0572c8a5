"""Sensor families and capmon's canonical band names, shared by every signal.

Canonical names are Sentinel-2's (``B01``..``B12``, ``B8A``), surface reflectance in 0..1.
Landsat 8/9 OLI Collection 2 surface-reflectance bands are given the name of the Sentinel-2 band
they match (:data:`LANDSAT_BANDS`), so one formula serves both sensors:

==========  ===========  =====================================================
canonical   Landsat C2   note
==========  ===========  =====================================================
``B01``     ``SR_B1``    coastal/aerosol (443 nm)
``B02``     ``SR_B2``    blue
``B03``     ``SR_B3``    green
``B04``     ``SR_B4``    red
``B08``     ``SR_B5``    NIR (865 nm); the same OLI band as ``B8A``
``B8A``     ``SR_B5``    NIR narrow (865 nm): OLI band 5 matches S2 B8A best
``B11``     ``SR_B6``    SWIR 1 (1610 nm)
``B12``     ``SR_B7``    SWIR 2 (2200 nm)
==========  ===========  =====================================================

OLI has one NIR band, so for Landsat ``B08`` and ``B8A`` are the same array (NDVI on Landsat is
``(SR_B5 - SR_B4) / (SR_B5 + SR_B4)``); the reader decodes ``SR_B5`` once and may pass it under
either name. Landsat has no red-edge bands (``B05``-``B07``), so signals that need them are
Sentinel-2 only.

Sentinel-1 inputs are named by polarisation, ``VV`` and ``VH``: from a backscatter product they
hold linear power (σ⁰ or γ⁰, see :func:`capmon.signals.sar.to_linear_power`), from a coherence
product the coherence in 0..1.

The biophysical networks also take the acquisition angles, passed in the band mapping under
:data:`ANGLE_INPUTS` (degrees, scalars or arrays broadcastable to the bands).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from capmon.errors import InputError

S2 = "S2"
L8 = "L8"
S1 = "S1"
SENSOR_FAMILIES = frozenset({S2, L8, S1})
"""``S2`` = Sentinel-2 MSI, ``L8`` = Landsat 8 and 9 OLI (same bands), ``S1`` = Sentinel-1 C-SAR."""

_SENSOR_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "S2": S2,
        "S2A": S2,
        "S2B": S2,
        "S2C": S2,
        "S2D": S2,
        "L8": L8,
        "L9": L8,
        "LC08": L8,
        "LC09": L8,
        "S1": S1,
        "S1A": S1,
        "S1B": S1,
        "S1C": S1,
        "S1D": S1,
    }
)

S2_BANDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
"""Sentinel-2 bands in the order of the L1C/L2A products (B8A after B08)."""

LANDSAT_BANDS: Mapping[str, str] = MappingProxyType(
    {
        "B01": "SR_B1",
        "B02": "SR_B2",
        "B03": "SR_B3",
        "B04": "SR_B4",
        "B08": "SR_B5",
        "B8A": "SR_B5",
        "B11": "SR_B6",
        "B12": "SR_B7",
    }
)
"""Canonical band name -> Landsat 8/9 Collection 2 Level-2 surface-reflectance asset."""

NIR_ALIASES = ("B08", "B8A")
"""On Landsat both canonical NIR names are OLI band 5."""

S1_BANDS = ("VV", "VH")

SUN_ZENITH = "SUN_ZENITH"
SUN_AZIMUTH = "SUN_AZIMUTH"
VIEW_ZENITH = "VIEW_ZENITH"
VIEW_AZIMUTH = "VIEW_AZIMUTH"
ANGLE_INPUTS = (SUN_ZENITH, SUN_AZIMUTH, VIEW_ZENITH, VIEW_AZIMUTH)
"""Pseudo-bands carrying the acquisition angles (degrees) to the biophysical signals."""

SENSOR_BANDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        S2: frozenset(S2_BANDS),
        L8: frozenset(LANDSAT_BANDS),
        S1: frozenset(S1_BANDS),
    }
)
"""The canonical bands each sensor family can provide."""


def sensor_family(sensor: str) -> str:
    """The family (``S2``, ``L8`` or ``S1``) of a sensor or platform name (``S2B``, ``L9``...)."""
    family = _SENSOR_ALIASES.get(sensor.upper())
    if family is None:
        known = ", ".join(sorted(_SENSOR_ALIASES))
        raise InputError(f"unknown sensor {sensor!r}; known: {known}")
    return family


def landsat_assets(bands: set[str] | frozenset[str]) -> dict[str, str]:
    """The Landsat C2 asset to read for each canonical band (``B08`` and ``B8A`` share one)."""
    unknown = sorted(set(bands) - set(LANDSAT_BANDS))
    if unknown:
        raise InputError(
            f"Landsat 8/9 OLI has no band matching {', '.join(unknown)}; "
            f"available: {', '.join(LANDSAT_BANDS)}"
        )
    return {band: LANDSAT_BANDS[band] for band in sorted(bands)}
