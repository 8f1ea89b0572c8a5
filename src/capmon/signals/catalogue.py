"""The catalogue of per-pixel signals the markers database is built from.

A :class:`Signal` names its sensors, its input bands (capmon's canonical names, see
:mod:`capmon.signals.bands`) and a pure numpy ``compute`` (float32 in, float32 out, NaN = no
data). Built-in signals (:data:`SIGNALS`):

=============  =========  ==========================================  ==========================
name           sensors    formula                                     inputs
=============  =========  ==========================================  ==========================
NDVI           S2, L8     (B08 − B04) / (B08 + B04)                   B08 B04
NDVI_B8A       S2, L8     (B8A − B04) / (B8A + B04)                   B8A B04
NDWI           S2, L8     (B11 − B08) / (B11 + B08) (Sen4CAP L4A)     B11 B08
NDWI_B8A       S2, L8     (B11 − B8A) / (B11 + B8A)                   B11 B8A
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
B07 B8A B11 B12, for Landsat B03 B04 B8A B11 B12. NDVI_B8A and NDWI_B8A are the variants for
products without B08 (20 m-only products); on Landsat they equal NDVI and NDWI.

**Physical ranges.** Every built-in signal has a ``valid_range``; a pixel outside it, or whose
input reflectance is outside :data:`REFLECTANCE_RANGE`, is NaN and never enters a statistic
(a fill value such as 1e20 that no metadata declared, a saturated pixel):

====================================  ==============  ============================================
signals                               range           why
====================================  ==============  ============================================
bands B01..B12, B8A (and every        −0.2 .. 1.5     −0.2 is the lowest value Landsat C2 L2 can
optical input)                                        encode (Sen2Cor −0.1); 1.5 is above the
                                                      brightest natural surfaces
NDVI, NDVI_B8A, NDWI, NDWI_B8A,       −1 .. 1         normalised differences
BSI, NDTILL
BRIGHTNESS                            0 .. 3          four reflectances of at most 1.5
LAI                                   0 .. 10 m²/m²   densest crops (the SNAP network gives 0..8)
FAPAR, FCOVER                         0 .. 1          fractions
BCK_VV/VH                             −60 .. 30 dB    far below the S1 noise floor .. above the
                                                      strongest point targets
AMP_VV/VH                             −30 .. 15       half the BCK range (Sen4CAP's AMP dB)
BCK_VVVH, AMP_VVVH                    ±90, ±45        difference of two in-range values (each
                                                      polarisation checked first)
COHE_VV/VH                            0 .. 1          coherence (0 is Sen4CAP's no data)
spyndex indices                       any finite      their inputs are range-checked
====================================  ==============  ============================================

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
from dataclasses import dataclass, field
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
    valid_range: tuple[float, float] | None = None
    """The physically possible values ``(low, high)``, both included: a pixel outside (or not
    finite) never enters a statistic. None: any finite value (spyndex indices)."""

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


def _ndvi_b8a(bands: Bands) -> FloatArray:
    return normalized_difference(bands["B8A"], bands["B04"])


def _ndwi_b8a(bands: Bands) -> FloatArray:
    return normalized_difference(bands["B11"], bands["B8A"])


def _brightness(bands: Bands) -> FloatArray:
    total = sum(np.square(_f32(bands[name])) for name in ("B03", "B04", "B08", "B11"))
    return _f32(np.sqrt(total))


def _bsi(bands: Bands) -> FloatArray:
    wet = _f32(bands["B11"]) + _f32(bands["B04"])
    green = _f32(bands["B08"]) + _f32(bands["B02"])
    return normalized_difference(wet, green)


def _ndtill(bands: Bands) -> FloatArray:
    return normalized_difference(bands["B11"], bands["B12"])


def within(values: npt.ArrayLike, valid_range: tuple[float, float] | None) -> FloatArray:
    """``values`` as float32 with NaN wherever a value is not finite or outside
    ``valid_range`` (both bounds included; None: only non-finite values become NaN).

    The input is returned as it is (no copy) when nothing has to change."""
    array = _f32(values)
    if array.size == 0:
        return array
    low, high = valid_range if valid_range is not None else (-np.inf, np.inf)
    # fast path, no temporary array: the extremes of the non-NaN values
    smallest, largest = np.fmin.reduce(array, axis=None), np.fmax.reduce(array, axis=None)
    if np.isnan(smallest) or (
        low <= smallest and largest <= high and np.isfinite(smallest) and np.isfinite(largest)
    ):
        return array
    bad = (array < low) | (array > high) | np.isinf(array)  # NaN compares False: stays NaN
    return np.where(bad, np.float32(np.nan), array)


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
    return sar.ratio_db(
        within(sar.sen4cap_db(bands["VV"], linear), AMPLITUDE_DB_RANGE),
        within(sar.sen4cap_db(bands["VH"], linear), AMPLITUDE_DB_RANGE),
    )


def _bck(pol: str) -> Compute:
    def compute(bands: Bands) -> FloatArray:
        return sar.to_sigma0_db(bands[pol], sar.AmplitudeConvention.SIGMA0_LINEAR)

    return compute


def _bck_ratio(bands: Bands) -> FloatArray:
    linear = sar.AmplitudeConvention.SIGMA0_LINEAR
    return sar.ratio_db(
        within(sar.to_sigma0_db(bands["VV"], linear), BACKSCATTER_DB_RANGE),
        within(sar.to_sigma0_db(bands["VH"], linear), BACKSCATTER_DB_RANGE),
    )


def _cohe(pol: str) -> Compute:
    def compute(bands: Bands) -> FloatArray:
        return sar.coherence(bands[pol])

    return compute


# --- the registry -----------------------------------------------------------------------------

_OPTICAL = frozenset({S2, L8})
_ANGLES = (SUN_ZENITH, SUN_AZIMUTH, VIEW_ZENITH, VIEW_AZIMUTH)

# Physically possible values (both bounds included); see the module docstring for the reasons.
REFLECTANCE_RANGE = (-0.2, 1.5)
"""Surface reflectance: down to -0.2 (the lowest value Landsat C2 L2 can encode; Sen2Cor keeps
negative values down to -0.1 since baseline 04.00), up to 1.5 (above the brightest natural
surfaces; larger values are saturation or fill)."""
INDEX_RANGE = (-1.0, 1.0)
"""Normalised differences of two non-negative sums."""
BRIGHTNESS_RANGE = (0.0, 3.0)
"""sqrt of four squared reflectances, each at most 1.5."""
LAI_RANGE = (0.0, 10.0)
"""Leaf area of the densest crops stays below 10 m²/m² (SNAP's network outputs 0..8)."""
FRACTION_RANGE = (0.0, 1.0)
BACKSCATTER_DB_RANGE = (-60.0, 30.0)
"""σ⁰/γ⁰ in dB: -60 dB is far below Sentinel-1's noise floor (about -25 dB), +30 dB above the
strongest point targets; outside is a numeric artefact or fill."""
AMPLITUDE_DB_RANGE = (BACKSCATTER_DB_RANGE[0] / 2, BACKSCATTER_DB_RANGE[1] / 2)
"""Sen4CAP's AMP dB is half the σ⁰ dB."""
COHERENCE_RANGE = (0.0, 1.0)

_BIO_UNITS = {
    bio.Variable.LAI: ("m²/m²", "leaf area index", LAI_RANGE),
    bio.Variable.FAPAR: (
        "fraction",
        "fraction of absorbed photosynthetically active radiation",
        FRACTION_RANGE,
    ),
    bio.Variable.FCOVER: ("fraction", "fraction of green vegetation cover", FRACTION_RANGE),
}


def _biophysical_signal(variable: bio.Variable) -> Signal:
    unit, what, valid_range = _BIO_UNITS[variable]
    landsat = Signal(
        name=variable.value,
        sensors=frozenset({L8}),
        inputs=bio.required_bands(bio.Variant.LANDSAT8) + _ANGLES,
        unit=unit,
        description=f"{what}, SNAP/Sen4CAP neural network, Landsat 8 OLI variant",
        compute=_biophysical(variable, bio.Variant.LANDSAT8),
        valid_range=valid_range,
    )
    return Signal(
        name=variable.value,
        sensors=_OPTICAL,
        inputs=bio.required_bands(bio.Variant.ALLBANDS) + _ANGLES,
        unit=unit,
        description=f"{what}, SNAP/Sen4CAP neural network (S2 'allbands': 9 bands + angles)",
        compute=_biophysical(variable, bio.Variant.ALLBANDS),
        sensor_variants=((L8, landsat),),
        valid_range=valid_range,
    )


def _index(name: str, inputs: tuple[str, ...], description: str, compute: Compute) -> Signal:
    return Signal(name, _OPTICAL, inputs, "1", description, compute, valid_range=INDEX_RANGE)


def _builtin_signals() -> dict[str, Signal]:
    signals = [
        _index("NDVI", ("B08", "B04"), "(B08 − B04) / (B08 + B04)", _ndvi),
        _index(
            "NDVI_B8A",
            ("B8A", "B04"),
            "NDVI from the narrow NIR band (20 m): (B8A − B04) / (B8A + B04), for products "
            "without B08",
            _ndvi_b8a,
        ),
        _index(
            "NDWI",
            ("B11", "B08"),
            "Sen4CAP L4A water index (B11 − B08) / (B11 + B08) (SWIR/NIR form)",
            _ndwi,
        ),
        _index(
            "NDWI_B8A",
            ("B11", "B8A"),
            "NDWI from the narrow NIR band (both 20 m): (B11 − B8A) / (B11 + B8A)",
            _ndwi_b8a,
        ),
        Signal(
            "BRIGHTNESS",
            _OPTICAL,
            ("B03", "B04", "B08", "B11"),
            "reflectance (0..1); Sen4CAP used reflectance × 10000",
            "sqrt(B03² + B04² + B08² + B11²)",
            _brightness,
            valid_range=BRIGHTNESS_RANGE,
        ),
        _index(
            "BSI",
            ("B11", "B04", "B08", "B02"),
            "Bare Soil Index (spyndex BI): "
            "((B11 + B04) − (B08 + B02)) / ((B11 + B04) + (B08 + B02))",
            _bsi,
        ),
        _index(
            "NDTILL",
            ("B11", "B12"),
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
                valid_range=REFLECTANCE_RANGE,
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
                valid_range=AMPLITUDE_DB_RANGE,
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
                valid_range=BACKSCATTER_DB_RANGE,
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
                valid_range=COHERENCE_RANGE,
            )
        )
    amp_low, amp_high = AMPLITUDE_DB_RANGE
    bck_low, bck_high = BACKSCATTER_DB_RANGE
    signals.append(
        Signal(
            "AMP_VVVH",
            s1,
            ("VV", "VH"),
            "dB (Sen4CAP amplitude scale)",
            "AMP_VV − AMP_VH: the VV/VH ratio on Sen4CAP's AMP dB scale (its MDB2 and L4C ratio)",
            _amp_ratio,
            valid_range=(amp_low - amp_high, amp_high - amp_low),
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
            valid_range=(bck_low - bck_high, bck_high - bck_low),
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


BAND_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {band: REFLECTANCE_RANGE for band in S2_BANDS}
)
"""The physically possible values of each optical input band (surface reflectance)."""


def physical_range(name: str) -> tuple[float, float] | None:
    """The physically possible values of signal (or optical band) ``name``, None when any
    finite value is possible (spyndex indices)."""
    signal = SIGNALS.get(name)
    if signal is None and name in BAND_RANGES:
        return BAND_RANGES[name]
    return get_signal(name).valid_range


# --- which signals a product can give ---------------------------------------------------------


@dataclass(frozen=True)
class SignalPlan:
    """Which of the requested signals one product can give, and why the others are skipped.

    ``signals`` keeps the requested names (in order) that the product can give and ``bands``
    the bands to read for them (each once). ``not_for_sensor`` are signals that do not exist
    for the product's sensor (e.g. B05 on Landsat: not a defect of the product);
    ``missing_bands`` maps each other skipped signal to the bands the product lacks.
    """

    signals: tuple[str, ...]
    bands: tuple[str, ...]
    not_for_sensor: tuple[str, ...] = ()
    missing_bands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def skipped(self) -> dict[str, str]:
        """Every requested signal the product cannot give -> why, as readable text."""
        reasons = {name: "not a signal of this sensor" for name in self.not_for_sensor}
        for name, bands in self.missing_bands.items():
            reasons[name] = f"the product has no band {', '.join(bands)}"
        return reasons


def plan_signals(names: Iterable[str], sensor: str, available_bands: Iterable[str]) -> SignalPlan:
    """The requested signals that a product of ``sensor`` with ``available_bands`` can give.

    A signal missing an input band is skipped, never the whole product; an unknown signal name
    is still an error (a mistake in the request, not in the product). For Landsat, ``B08``
    and ``B8A`` stand for each other (one NIR band).
    """
    family = sensor_family(sensor)
    available = set(available_bands)
    if family == L8 and available & {"B08", "B8A"}:
        available |= {"B08", "B8A"}
    usable: list[str] = []
    bands: set[str] = set()
    not_for_sensor: list[str] = []
    missing_bands: dict[str, tuple[str, ...]] = {}
    for name in dict.fromkeys(names):
        signal = get_signal(name)
        if family not in signal.sensors:
            not_for_sensor.append(name)
            continue
        inputs = signal_inputs([name], family)
        missing = tuple(sorted(inputs - available))
        if missing:
            missing_bands[name] = missing
            continue
        usable.append(name)
        bands |= inputs
    return SignalPlan(
        tuple(usable), tuple(sorted(bands)), tuple(not_for_sensor), MappingProxyType(missing_bands)
    )
