"""The catalogue of per-pixel signals the markers database is built from.

A :class:`Signal` names its sensors, its input bands (capmon's canonical names, see
:mod:`capmon.signals.bands`) and a pure numpy ``compute`` (float32 in, float32 out, NaN = no
data). Built-in signals (:data:`SIGNALS`):

=============  =========  ==========================================  ==========================
name           sensors    formula                                     inputs
=============  =========  ==========================================  ==========================
NDVI           S2, L8     (B08 − B04) / (B08 + B04)                   B08 B04
NDWI           S2, L8     (B11 − B08) / (B11 + B08) (Sen4CAP L4A)     B11 B08
BRIGHTNESS     S2, L8     sqrt(B03² + B04² + B08² + B11²)             B03 B04 B08 B11
BSI            S2, L8     spyndex ``BI``: ((B11+B04) − (B08+B02)) /   B11 B04 B08 B02
                          ((B11+B04) + (B08+B02))
NDTILL         S2, L8     spyndex ``NDTillI``: (B11 − B12)/(B11+B12)  B11 B12
B01..B12, B8A  S2 (L8*)   the band's reflectance                      the band
LAI            S2, L8     biophysical network (S2 ``allbands``,       see below
FAPAR                     Landsat ``landsat8`` variant)
FCOVER
AMP_VV/VH      S1         Sen4CAP "AMP dB" = 5·log10(σ⁰)              VV / VH (linear power)
AMP_VVVH       S1         AMP_VV − AMP_VH                             VV VH
BCK_VV/VH      S1         true backscatter dB = 10·log10(σ⁰)          VV / VH (linear power)
BCK_VVVH       S1         BCK_VV − BCK_VH                             VV VH
COHE_VV/VH     S1         coherence, linear 0..1 (0 = no data)        VV / VH (coherence)
=============  =========  ==========================================  ==========================

(*) Landsat has B01 B02 B03 B04 B08(=B8A) B11 B12. BRIGHTNESS is on reflectance 0..1; Sen4CAP
computed it on reflectance × 10000, i.e. 10000 times larger. NDTILL is the *tillage* index, not
spyndex's/OTB's ``NDTI`` (the turbidity index (R − G)/(R + G)). The biophysical signals need the
angles (:data:`capmon.signals.bands.ANGLE_INPUTS`); for S2 their inputs are B03 B04 B08 B05 B06
B07 B8A B11 B12, for Landsat B03 B04 B8A B11 B12.

**Any spyndex index by name.** :func:`get_signal` also accepts every index of the Awesome Spectral
Indices catalogue bundled with spyndex: by its plain name (``EVI``, ``SAVI``, ``NDTI``...) when
that name is not a built-in signal, or always as ``SPYNDEX:<name>`` (``SPYNDEX:NDWI`` is
McFeeters' (G − N)/(G + N), while ``NDWI`` is Sen4CAP's). The canonical name of the signal is
the plain name unless it clashes with a built-in, then the prefixed one. spyndex bands map to
canonical bands as :data:`SPYNDEX_BANDS` (A→B01, B→B02, G→B03, R→B04, RE1..RE3→B05..B07,
N→B08, N2→B8A, WV→B09, S1→B11, S2→B12); constants (L, g, C1, C2...) take spyndex's defaults and
wavelength constants the sensor's band centres. Indices that need other inputs (thermal or
radar bands, kernels, PAR) are refused with an :class:`~capmon.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import spyndex  # type: ignore[import-untyped]

from capmon.errors import InputError
from capmon.signals import biophysical as bio
from capmon.signals import sar
from capmon.signals.bands import (
    ANGLE_INPUTS,
    L8,
    LANDSAT_BANDS,
    S1,
    S2,
    S2_BANDS,
    SUN_AZIMUTH,
    SUN_ZENITH,
    VIEW_AZIMUTH,
    VIEW_ZENITH,
    sensor_family,
)

FloatArray = npt.NDArray[np.float32]
Bands = Mapping[str, npt.NDArray[Any]]
Compute = Callable[[Bands], FloatArray]

SPYNDEX_PREFIX = "SPYNDEX:"


@dataclass(frozen=True)
class Signal:
    """A per-pixel signal: what it needs and how to compute it.

    ``inputs`` and ``compute`` are those of the first sensor family; ``sensor_variants`` holds
    the signals to use instead for other families whose inputs differ (e.g. LAI on Landsat).
    """

    name: str
    sensors: frozenset[str]
    inputs: tuple[str, ...]
    unit: str
    description: str
    compute: Compute
    sensor_variants: tuple[tuple[str, Signal], ...] = ()

    @property
    def band_inputs(self) -> tuple[str, ...]:
        """The inputs that are bands to read (the angle pseudo-bands excluded)."""
        return tuple(name for name in self.inputs if name not in ANGLE_INPUTS)

    @property
    def needs_angles(self) -> bool:
        """Whether the sun/view angles must be given (biophysical signals)."""
        return any(name in ANGLE_INPUTS for name in self.inputs)

    def for_sensor(self, sensor: str) -> Signal:
        """The signal as computed for ``sensor`` (a family or platform name such as ``S2B``)."""
        family = sensor_family(sensor)
        if family not in self.sensors:
            raise InputError(
                f"signal {self.name} is not available for {sensor}; "
                f"it is for {', '.join(sorted(self.sensors))}"
            )
        return dict(self.sensor_variants).get(family, self)


# --- formulas ---------------------------------------------------------------------------------


def _f32(array: npt.ArrayLike) -> FloatArray:
    return np.asarray(array, dtype=np.float32)


def _finite(values: npt.NDArray[Any]) -> FloatArray:
    """float32 with every non-finite value (inf from a division by zero) turned into NaN."""
    result = _f32(values)
    return np.where(np.isfinite(result), result, np.float32(np.nan))


def normalized_difference(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """``(a − b) / (a + b)`` in float32; NaN where ``a + b == 0`` or an input is NaN."""
    x, y = _f32(a), _f32(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _finite((x - y) / (x + y))


def _ndvi(bands: Bands) -> FloatArray:
    return normalized_difference(bands["B08"], bands["B04"])


def _ndwi(bands: Bands) -> FloatArray:
    return normalized_difference(bands["B11"], bands["B08"])


def _brightness(bands: Bands) -> FloatArray:
    total = sum(np.square(_f32(bands[name])) for name in ("B03", "B04", "B08", "B11"))
    return _f32(np.sqrt(total))


def _bsi(bands: Bands) -> FloatArray:
    wet = _f32(bands["B11"]) + _f32(bands["B04"])
    green = _f32(bands["B08"]) + _f32(bands["B02"])
    return normalized_difference(wet, green)


def _ndtill(bands: Bands) -> FloatArray:
    return normalized_difference(bands["B11"], bands["B12"])


def _band(name: str) -> Compute:
    def compute(bands: Bands) -> FloatArray:
        return _f32(bands[name]).copy()

    return compute


def _angles(bands: Bands) -> bio.ViewingAngles:
    return bio.ViewingAngles(
        sun_zenith=bands[SUN_ZENITH],
        sun_azimuth=bands[SUN_AZIMUTH],
        view_zenith=bands[VIEW_ZENITH],
        view_azimuth=bands[VIEW_AZIMUTH],
    )


def _biophysical(variable: bio.Variable, variant: bio.Variant) -> Compute:
    def compute(bands: Bands) -> FloatArray:
        return bio.biophysical(variable, bands, _angles(bands), variant=variant).values

    return compute


def _amp(pol: str) -> Compute:
    def compute(bands: Bands) -> FloatArray:
        return sar.sen4cap_db(bands[pol], sar.AmplitudeConvention.SIGMA0_LINEAR)

    return compute


def _amp_ratio(bands: Bands) -> FloatArray:
    linear = sar.AmplitudeConvention.SIGMA0_LINEAR
    return sar.ratio_db(sar.sen4cap_db(bands["VV"], linear), sar.sen4cap_db(bands["VH"], linear))


def _bck(pol: str) -> Compute:
    def compute(bands: Bands) -> FloatArray:
        return sar.to_sigma0_db(bands[pol], sar.AmplitudeConvention.SIGMA0_LINEAR)

    return compute


def _bck_ratio(bands: Bands) -> FloatArray:
    linear = sar.AmplitudeConvention.SIGMA0_LINEAR
    return sar.ratio_db(
        sar.to_sigma0_db(bands["VV"], linear), sar.to_sigma0_db(bands["VH"], linear)
    )


def _cohe(pol: str) -> Compute:
    def compute(bands: Bands) -> FloatArray:
        return sar.coherence(bands[pol])

    return compute


# --- the registry -----------------------------------------------------------------------------

_OPTICAL = frozenset({S2, L8})
_ANGLES = (SUN_ZENITH, SUN_AZIMUTH, VIEW_ZENITH, VIEW_AZIMUTH)
_BIO_UNITS = {
    bio.Variable.LAI: ("m²/m²", "leaf area index"),
    bio.Variable.FAPAR: ("fraction", "fraction of absorbed photosynthetically active radiation"),
    bio.Variable.FCOVER: ("fraction", "fraction of green vegetation cover"),
}


def _biophysical_signal(variable: bio.Variable) -> Signal:
    unit, what = _BIO_UNITS[variable]
    landsat = Signal(
        name=variable.value,
        sensors=frozenset({L8}),
        inputs=bio.required_bands(bio.Variant.LANDSAT8) + _ANGLES,
        unit=unit,
        description=f"{what}, SNAP/Sen4CAP neural network, Landsat 8 OLI variant",
        compute=_biophysical(variable, bio.Variant.LANDSAT8),
    )
    return Signal(
        name=variable.value,
        sensors=_OPTICAL,
        inputs=bio.required_bands(bio.Variant.ALLBANDS) + _ANGLES,
        unit=unit,
        description=f"{what}, SNAP/Sen4CAP neural network (S2 'allbands': 9 bands + angles)",
        compute=_biophysical(variable, bio.Variant.ALLBANDS),
        sensor_variants=((L8, landsat),),
    )


def _builtin_signals() -> dict[str, Signal]:
    signals = [
        Signal("NDVI", _OPTICAL, ("B08", "B04"), "1", "(B08 − B04) / (B08 + B04)", _ndvi),
        Signal(
            "NDWI",
            _OPTICAL,
            ("B11", "B08"),
            "1",
            "Sen4CAP L4A water index (B11 − B08) / (B11 + B08) (SWIR/NIR form)",
            _ndwi,
        ),
        Signal(
            "BRIGHTNESS",
            _OPTICAL,
            ("B03", "B04", "B08", "B11"),
            "reflectance (0..1); Sen4CAP used reflectance × 10000",
            "sqrt(B03² + B04² + B08² + B11²)",
            _brightness,
        ),
        Signal(
            "BSI",
            _OPTICAL,
            ("B11", "B04", "B08", "B02"),
            "1",
            "Bare Soil Index (spyndex BI): "
            "((B11 + B04) − (B08 + B02)) / ((B11 + B04) + (B08 + B02))",
            _bsi,
        ),
        Signal(
            "NDTILL",
            _OPTICAL,
            ("B11", "B12"),
            "1",
            "Normalized Difference Tillage Index (spyndex NDTillI): (B11 − B12) / (B11 + B12)",
            _ndtill,
        ),
    ]
    for band in S2_BANDS:
        sensors = _OPTICAL if band in LANDSAT_BANDS else frozenset({S2})
        signals.append(
            Signal(
                band,
                sensors,
                (band,),
                "reflectance (0..1)",
                f"surface reflectance {band}",
                _band(band),
            )
        )
    signals.extend(_biophysical_signal(variable) for variable in bio.Variable)
    s1 = frozenset({S1})
    for pol in ("VV", "VH"):
        signals.append(
            Signal(
                f"AMP_{pol}",
                s1,
                (pol,),
                "dB (Sen4CAP amplitude: 10·log10(√σ⁰), half the σ⁰ dB)",
                f"{pol} backscatter on Sen4CAP's AMP dB scale, as its L4C thresholds expect",
                _amp(pol),
            )
        )
        signals.append(
            Signal(
                f"BCK_{pol}",
                s1,
                (pol,),
                "dB (10·log10 σ⁰, or γ⁰ for a γ⁰ product)",
                f"{pol} backscatter in true dB",
                _bck(pol),
            )
        )
        signals.append(
            Signal(
                f"COHE_{pol}",
                s1,
                (pol,),
                "1 (linear coherence 0..1)",
                f"{pol} interferometric coherence of a 6- or 12-day pair",
                _cohe(pol),
            )
        )
    signals.append(
        Signal(
            "AMP_VVVH",
            s1,
            ("VV", "VH"),
            "dB (Sen4CAP amplitude scale)",
            "AMP_VV − AMP_VH: the VV/VH ratio on Sen4CAP's AMP dB scale (its MDB2 and L4C ratio)",
            _amp_ratio,
        )
    )
    signals.append(
        Signal(
            "BCK_VVVH",
            s1,
            ("VV", "VH"),
            "dB",
            "BCK_VV − BCK_VH: the VV/VH ratio in true dB",
            _bck_ratio,
        )
    )
    return {signal.name: signal for signal in signals}


SIGNALS: Mapping[str, Signal] = MappingProxyType(_builtin_signals())
"""The built-in signals by name (spyndex indices are added on demand by :func:`get_signal`)."""


# --- spyndex ---------------------------------------------------------------------------------

SPYNDEX_BANDS: Mapping[str, str] = MappingProxyType(
    {
        "A": "B01",
        "B": "B02",
        "G": "B03",
        "R": "B04",
        "RE1": "B05",
        "RE2": "B06",
        "RE3": "B07",
        "N": "B08",
        "N2": "B8A",
        "WV": "B09",
        "S1": "B11",
        "S2": "B12",
    }
)
"""spyndex standard band name -> capmon canonical band."""

_WAVELENGTHS: Mapping[str, Mapping[str, float]] = {
    S2: {
        "lambdaG": 560.0,
        "lambdaR": 665.0,
        "lambdaN": 842.0,
        "lambdaN2": 865.0,
        "lambdaS1": 1610.0,
        "lambdaS2": 2190.0,
    },
    L8: {
        "lambdaG": 561.0,
        "lambdaR": 655.0,
        "lambdaN": 865.0,
        "lambdaN2": 865.0,
        "lambdaS1": 1609.0,
        "lambdaS2": 2201.0,
    },
}
"""Band centre wavelengths (nm) for the spyndex wavelength constants."""


def spyndex_names() -> frozenset[str]:
    """The names of the spectral indices spyndex bundles."""
    return frozenset(str(name) for name in spyndex.indices)


def _spyndex_compute(
    index: str, params: Mapping[str, str], constants: Mapping[str, float]
) -> Compute:
    def compute(bands: Bands) -> FloatArray:
        values: dict[str, Any] = {key: _f32(bands[band]) for key, band in params.items()}
        values.update(constants)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            result = spyndex.computeIndex(index, params=values)
        return _finite(np.asarray(result))

    return compute


def _spyndex_signal(index: str, name: str) -> Signal:
    entry = spyndex.indices[index]
    band_params: dict[str, str] = {}
    constants: dict[str, float] = {}
    wavelengths: list[str] = []
    unsupported: list[str] = []
    for param in entry.bands:
        if param in SPYNDEX_BANDS:
            band_params[param] = SPYNDEX_BANDS[param]
        elif param in _WAVELENGTHS[S2]:
            wavelengths.append(param)
        elif param in spyndex.constants and spyndex.constants[param].default is not None:
            constants[param] = float(spyndex.constants[param].default)
        else:
            unsupported.append(param)
    if unsupported:
        raise InputError(
            f"spyndex index {index} needs {', '.join(unsupported)}, which capmon cannot provide "
            "(thermal/radar bands, kernels or constants without a default)"
        )
    inputs = tuple(dict.fromkeys(band_params.values()))
    landsat_ok = all(band in LANDSAT_BANDS for band in inputs)
    description = f"spyndex {index}: {entry.long_name}; {entry.formula}"

    def variant(family: str) -> Compute:
        family_constants = dict(constants)
        family_constants.update({key: _WAVELENGTHS[family][key] for key in wavelengths})
        return _spyndex_compute(index, band_params, family_constants)

    landsat_variants: tuple[tuple[str, Signal], ...] = ()
    if landsat_ok and wavelengths:
        landsat = Signal(name, frozenset({L8}), inputs, "1", description, variant(L8))
        landsat_variants = ((L8, landsat),)
    return Signal(
        name=name,
        sensors=_OPTICAL if landsat_ok else frozenset({S2}),
        inputs=inputs,
        unit="1",
        description=description,
        compute=variant(S2),
        sensor_variants=landsat_variants,
    )


@cache
def _spyndex_by_name(index: str) -> Signal:
    canonical = SPYNDEX_PREFIX + index if index in SIGNALS else index
    return _spyndex_signal(index, canonical)


def get_signal(name: str) -> Signal:
    """The signal called ``name``: a built-in, a spyndex index, or ``SPYNDEX:<index>``."""
    signal = SIGNALS.get(name)
    if signal is not None:
        return signal
    index = name[len(SPYNDEX_PREFIX) :] if name.upper().startswith(SPYNDEX_PREFIX) else name
    if index in spyndex.indices:
        return _spyndex_by_name(index)
    raise InputError(
        f"unknown signal {name!r}; built-in signals: {', '.join(SIGNALS)}; any spyndex index can "
        f"also be used by name (e.g. EVI, SAVI) or as {SPYNDEX_PREFIX}<index> "
        f"({len(spyndex_names())} indices)"
    )


def signal_inputs(names: Iterable[str], sensor: str) -> set[str]:
    """The union of the bands to read for ``names`` on ``sensor`` (each decoded once).

    For Landsat the NIR band is reported once, as ``B8A`` (``B08`` is the same OLI band 5;
    :func:`capmon.signals.compute_signals` gives it under both names).
    """
    family = sensor_family(sensor)
    bands: set[str] = set()
    for name in names:
        bands.update(get_signal(name).for_sensor(family).band_inputs)
    if family == L8 and "B08" in bands:
        bands.discard("B08")
        bands.add("B8A")
    return bands
