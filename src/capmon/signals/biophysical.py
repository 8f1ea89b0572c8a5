"""LAI, FAPAR and FCOVER from the SNAP S2-Toolbox neural networks, as Sen4CAP's L3B computes them.

Each network (one file in :mod:`capmon.data.biophysical`) has one hidden layer of 5 ``tansig``
neurons and one linear output. Inputs are surface reflectances (0..1) and the cosines of the view
zenith, sun zenith and relative azimuth angles; each is normalised to [-1, 1] with
``x' = 2 (x - min) / (max - min) - 1`` and the output is denormalised with
``y = 0.5 (y' + 1) (max - min) + min``.

Variants (:class:`Variant`):

* ``allbands`` (Sen4CAP's default): B03 B04 B08 B05 B06 B07 B8A B11 B12 + 3 angles;
* ``rededge``: B03 B04 B08 B05 B06 B07 B11 + 3 angles;
* ``landsat8``: Landsat 8/9 OLI green, red, NIR, SWIR1, SWIR2 (canonical B03 B04 B8A B11 B12).

Validity (Sen4CAP ``GenerateDomainQualityFlags``, output limits as SNAP): an output within its
range widened by the tolerance (LAI [0, 8] ± 0.2, FAPAR [0, 0.94] ± 0.1, FCOVER [0, 1] ± 0.1) is
clamped to the range; an output beyond the tolerance becomes NaN. (Sen4CAP's own masking functor
instead clamps the values *beyond* the tolerance and keeps those within it, which looks like an
inverted test; capmon follows SNAP.) The input domain is checked against Sen4CAP's per-band
reflectance limits (:data:`INPUT_LIMITS`, all with minimum 0): like Sen4CAP, out-of-domain pixels
keep their value and are reported in ``BiophysicalResult.input_out_of_domain``; pass
``mask_input_domain=True`` to turn them into NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from capmon.errors import InputError

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
AngleValue = float | npt.ArrayLike

COS_VIEW_ZENITH = "COS_VIEW_ZENITH"
COS_SUN_ZENITH = "COS_SUN_ZENITH"
COS_RELATIVE_AZIMUTH = "COS_RELATIVE_AZIMUTH"
_ANGLE_TERMS = (COS_VIEW_ZENITH, COS_SUN_ZENITH, COS_RELATIVE_AZIMUTH)

_CHUNK = 1 << 20
"""Pixels evaluated at once: bounds the float64 work arrays to ~100 MB for any image size."""


class Variable(StrEnum):
    """The biophysical variable a network estimates."""

    LAI = "LAI"
    FAPAR = "FAPAR"
    FCOVER = "FCOVER"


class Variant(StrEnum):
    """The band set of a network."""

    ALLBANDS = "allbands"
    REDEDGE = "rededge"
    LANDSAT8 = "landsat8"


_FILES: Mapping[Variant, str] = {
    Variant.ALLBANDS: "Algo_S2_V2.0_SL2T_allbands_{}.txt",
    Variant.REDEDGE: "Algo_S2_V2.0_SL2T_rededge_{}.txt",
    Variant.LANDSAT8: "Algo_LANDSAT8OLI_{}.txt",
}

_HEADER_NAMES: Mapping[str, str] = {
    "B3": "B03",
    "B4": "B04",
    "B5": "B05",
    "B6": "B06",
    "B7": "B07",
    "B8": "B08",
    "B8A": "B8A",
    "B11": "B11",
    "B12": "B12",
    "Green": "B03",
    "Red": "B04",
    "NIR": "B8A",
    "SWIR1": "B11",
    "SWIR2": "B12",
    "cos(View_Zenith)": COS_VIEW_ZENITH,
    "cos(Sun_Zenith)": COS_SUN_ZENITH,
    "cos(Rel_Azimuth)": COS_RELATIVE_AZIMUTH,
}
"""Input names in the weight files' ``# bias ...`` header -> capmon's canonical names."""

INPUT_LIMITS: Mapping[Variant, Mapping[str, float]] = {
    Variant.ALLBANDS: {
        "B03": 0.242,
        "B04": 0.292,
        "B08": 0.790,
        "B05": 0.335,
        "B06": 0.608,
        "B07": 0.759,
        "B8A": 0.776,
        "B11": 0.495,
        "B12": 0.494,
    },
    Variant.REDEDGE: {
        "B03": 0.242,
        "B04": 0.292,
        "B08": 0.790,
        "B05": 0.335,
        "B06": 0.608,
        "B07": 0.759,
        "B11": 0.495,
    },
    Variant.LANDSAT8: {"B03": 0.3, "B04": 0.266, "B8A": 0.788, "B11": 0.476, "B12": 0.504},
}
"""Upper reflectance limit of the input domain per band (Sen4CAP's S2/L8 validation limits)."""


@dataclass(frozen=True)
class ViewingAngles:
    """Sun and view angles of an acquisition, in degrees: scene means (floats) or per-pixel arrays.

    Arrays must be broadcastable to the bands' shape (resample the 5 km angle grids first).
    """

    sun_zenith: AngleValue
    sun_azimuth: AngleValue
    view_zenith: AngleValue
    view_azimuth: AngleValue

    def cosines(self) -> dict[str, npt.NDArray[np.float64]]:
        """cos(view zenith), cos(sun zenith), cos(relative azimuth = |sun az - view az|)."""
        sun_zenith = np.asarray(self.sun_zenith, dtype=np.float64)
        view_zenith = np.asarray(self.view_zenith, dtype=np.float64)
        relative = np.abs(
            np.asarray(self.sun_azimuth, dtype=np.float64)
            - np.asarray(self.view_azimuth, dtype=np.float64)
        )
        return {
            COS_VIEW_ZENITH: np.cos(np.radians(view_zenith)),
            COS_SUN_ZENITH: np.cos(np.radians(sun_zenith)),
            COS_RELATIVE_AZIMUTH: np.cos(np.radians(relative)),
        }


@dataclass(frozen=True, eq=False)
class NeuralNetwork:
    """One parsed network: ``tansig`` hidden layer, linear output, (de)normalisation, validity."""

    variable: Variable
    variant: Variant
    inputs: tuple[str, ...]
    input_min: npt.NDArray[np.float64]
    input_max: npt.NDArray[np.float64]
    hidden_weights: npt.NDArray[np.float64]
    hidden_bias: npt.NDArray[np.float64]
    output_weights: npt.NDArray[np.float64]
    output_bias: float
    output_min: float
    output_max: float
    valid_min: float
    valid_max: float
    tolerance: float

    @property
    def bands(self) -> tuple[str, ...]:
        """The reflectance inputs, in network order (the angle terms excluded)."""
        return tuple(name for name in self.inputs if name not in _ANGLE_TERMS)

    def evaluate(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Raw network output for inputs ``x`` of shape (n_inputs, n_pixels); NaN propagates."""
        span = (self.input_max - self.input_min)[:, None]
        normalised = 2.0 * (x - self.input_min[:, None]) / span - 1.0
        hidden = np.tanh(self.hidden_weights @ normalised + self.hidden_bias[:, None])
        out = self.output_weights @ hidden + self.output_bias
        result: npt.NDArray[np.float64] = (
            0.5 * (out + 1.0) * (self.output_max - self.output_min) + self.output_min
        )
        return result


@dataclass(frozen=True, eq=False)
class BiophysicalResult:
    """Values (float32, NaN = no data or beyond tolerance) and Sen4CAP's two domain flags."""

    values: FloatArray
    input_out_of_domain: BoolArray
    """Some reflectance input is NaN, negative or above its limit in :data:`INPUT_LIMITS`."""
    output_out_of_range: BoolArray
    """The raw output was outside the valid range (it was clamped, or NaN beyond tolerance)."""


def _numbers(line: str, what: str) -> list[float]:
    try:
        return [float(token) for token in line.split()]
    except ValueError as exc:
        raise InputError(f"biophysical weights: bad {what} line {line!r}") from exc


def parse_weights(text: str, *, variable: Variable | str, variant: Variant | str) -> NeuralNetwork:
    """Parse one weight file in the Sen2Agri/Sen4CAP text layout (see the data README)."""
    variable = Variable(variable)
    variant = Variant(variant)
    lines = [line.strip() for line in text.splitlines()]
    header = next((line for line in lines if line.startswith("# bias")), None)
    if header is None:
        raise InputError("biophysical weights: no '# bias <inputs>' header line")
    header_names = header.split()[2:]
    unknown = [name for name in header_names if name not in _HEADER_NAMES]
    if unknown:
        raise InputError(f"biophysical weights: unknown input names {unknown}")
    inputs = tuple(_HEADER_NAMES[name] for name in header_names)
    n_inputs = len(inputs)
    data = [line for line in lines if line and not line.startswith("#")]
    architecture = data[0].split() if data else []
    if (
        len(architecture) != 4
        or architecture[0] != "tansig"
        or architecture[2] != "purelin"
        or architecture[3] != "1"
    ):
        raise InputError(f"biophysical weights: unsupported architecture {data[:1]}")
    n_hidden = int(architecture[1])
    expected_lines = 1 + 1 + n_hidden + 1 + 1 + 1
    if len(data) != expected_lines:
        raise InputError(
            f"biophysical weights: {len(data)} data lines, expected {expected_lines} "
            f"for {n_inputs} inputs and {n_hidden} hidden neurons"
        )
    bounds = _numbers(data[1], "normalisation")
    if len(bounds) != 2 * n_inputs:
        raise InputError(
            f"biophysical weights: {len(bounds)} normalisation values for {n_inputs} inputs"
        )
    hidden = [_numbers(line, "hidden layer") for line in data[2 : 2 + n_hidden]]
    if any(len(row) != n_inputs + 1 for row in hidden):
        raise InputError("biophysical weights: a hidden neuron has the wrong number of weights")
    output = _numbers(data[2 + n_hidden], "output layer")
    if len(output) != n_hidden + 1:
        raise InputError("biophysical weights: the output neuron has the wrong number of weights")
    denorm = _numbers(data[3 + n_hidden], "denormalisation")
    validity = _numbers(data[4 + n_hidden], "validity")
    if len(denorm) != 2 or len(validity) != 3:
        raise InputError("biophysical weights: bad denormalisation or validity line")
    hidden_matrix = np.array(hidden, dtype=np.float64)
    return NeuralNetwork(
        variable=variable,
        variant=variant,
        inputs=inputs,
        input_min=np.array(bounds[0::2], dtype=np.float64),
        input_max=np.array(bounds[1::2], dtype=np.float64),
        hidden_weights=hidden_matrix[:, 1:],
        hidden_bias=hidden_matrix[:, 0],
        output_weights=np.array(output[1:], dtype=np.float64),
        output_bias=output[0],
        output_min=denorm[0],
        output_max=denorm[1],
        valid_min=validity[0],
        valid_max=validity[1],
        tolerance=validity[2],
    )


@cache
def load_network(
    variable: Variable | str, variant: Variant | str = Variant.ALLBANDS
) -> NeuralNetwork:
    """The packaged network for a variable and variant (parsed once per process)."""
    try:
        variable = Variable(variable)
        variant = Variant(variant)
    except ValueError as exc:
        raise InputError(
            f"unknown biophysical variable/variant {variable!r}/{variant!r}; variables: "
            f"{', '.join(Variable)}; variants: {', '.join(Variant)}"
        ) from exc
    name = _FILES[variant].format(variable.value)
    text = resources.files("capmon.data.biophysical").joinpath(name).read_text(encoding="utf-8")
    return parse_weights(text, variable=variable, variant=variant)


def required_bands(variant: Variant | str = Variant.ALLBANDS) -> tuple[str, ...]:
    """The canonical reflectance bands a variant needs, in network order."""
    return load_network(Variable.LAI, variant).bands


def _fold(
    network: NeuralNetwork, constants: Mapping[str, float]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Hidden-layer weights and bias acting on raw (unnormalised) inputs, constants folded in.

    ``W (2 (x − min) / (max − min) − 1) + b = (W · scale) x + (b − W (scale · min + 1))`` with
    ``scale = 2 / (max − min)``; the columns of constant inputs are then added to the bias.
    """
    scale = 2.0 / (network.input_max - network.input_min)
    weights = network.hidden_weights * scale[None, :]
    bias = network.hidden_bias - network.hidden_weights @ (scale * network.input_min + 1.0)
    keep = []
    for column, name in enumerate(network.inputs):
        if name in constants:
            bias = bias + weights[:, column] * constants[name]
        else:
            keep.append(column)
    return weights[:, keep], bias


def biophysical(
    variable: Variable | str,
    bands: Mapping[str, npt.ArrayLike],
    angles: ViewingAngles,
    *,
    variant: Variant | str = Variant.ALLBANDS,
    mask_input_domain: bool = False,
) -> BiophysicalResult:
    """Evaluate a network on every pixel of ``bands`` (surface reflectance 0..1, same shape)."""
    network = load_network(variable, variant)
    missing = [band for band in network.bands if band not in bands]
    if missing:
        raise InputError(
            f"{network.variable} ({network.variant}) needs band(s) {', '.join(missing)}, "
            f"not given (given: {', '.join(sorted(bands)) or 'none'})"
        )
    arrays = {band: np.asarray(bands[band], dtype=np.float32) for band in network.bands}
    shape = arrays[network.bands[0]].shape
    for band, array in arrays.items():
        if array.shape != shape:
            raise InputError(
                f"{network.variable}: band {band} has shape {array.shape}, expected {shape}"
            )
    cosines = angles.cosines()
    try:
        broadcast = np.broadcast_shapes(shape, *(value.shape for value in cosines.values()))
    except ValueError:
        broadcast = ()
    if broadcast != shape:
        raise InputError(
            f"{network.variable}: the angles cannot be broadcast to the bands' shape {shape}"
        )
    # Scene-mean angles are constant inputs: fold them, and the normalisation, into the hidden
    # layer's weights so that only the per-pixel inputs are stacked for each chunk.
    constants = {name: float(value) for name, value in cosines.items() if value.ndim == 0}
    variable_inputs = [name for name in network.inputs if name not in constants]
    weights, bias = _fold(network, constants)
    size = math.prod(shape)
    flat: dict[str, npt.NDArray[Any]] = {name: array.reshape(-1) for name, array in arrays.items()}
    flat.update(
        {
            name: np.broadcast_to(value, shape).reshape(-1)
            for name, value in cosines.items()
            if name not in constants
        }
    )
    raw = np.empty(size, dtype=np.float64)
    for start in range(0, size, _CHUNK):
        stop = min(start + _CHUNK, size)
        x = np.empty((len(variable_inputs), stop - start), dtype=np.float64)
        for row, name in enumerate(variable_inputs):
            x[row] = flat[name][start:stop]
        hidden = np.tanh(weights @ x + bias[:, None])
        out = network.output_weights @ hidden + network.output_bias
        raw[start:stop] = (
            0.5 * (out + 1.0) * (network.output_max - network.output_min) + network.output_min
        )

    limits = INPUT_LIMITS[network.variant]
    in_domain = np.ones(size, dtype=np.bool_)
    for band in network.bands:
        values = flat[band]
        in_domain &= (values >= 0.0) & (values <= limits[band])  # NaN compares False
    values, out_of_range = apply_output_validity(raw, network)
    if mask_input_domain:
        values[~in_domain] = np.nan
    return BiophysicalResult(
        values=values.astype(np.float32).reshape(shape),
        input_out_of_domain=(~in_domain).reshape(shape),
        output_out_of_range=out_of_range.reshape(shape),
    )


def apply_output_validity(
    raw: npt.NDArray[np.float64], network: NeuralNetwork
) -> tuple[npt.NDArray[np.float64], BoolArray]:
    """Clamp outputs within the tolerance to the valid range, NaN beyond it.

    Returns the values and the flag of outputs that were outside the range (Sen4CAP's output
    domain flag).
    """
    low, high, tolerance = network.valid_min, network.valid_max, network.tolerance
    out_of_range: BoolArray = (raw < low) | (raw > high)
    beyond = (raw < low - tolerance) | (raw > high + tolerance)
    values = np.clip(raw, low, high)
    values[beyond] = np.nan
    return values, out_of_range


def lai(
    bands: Mapping[str, npt.ArrayLike],
    angles: ViewingAngles,
    *,
    variant: Variant | str = Variant.ALLBANDS,
) -> FloatArray:
    """Leaf area index (m²/m²), valid range [0, 8]."""
    return biophysical(Variable.LAI, bands, angles, variant=variant).values


def fapar(
    bands: Mapping[str, npt.ArrayLike],
    angles: ViewingAngles,
    *,
    variant: Variant | str = Variant.ALLBANDS,
) -> FloatArray:
    """Fraction of absorbed photosynthetically active radiation, valid range [0, 0.94]."""
    return biophysical(Variable.FAPAR, bands, angles, variant=variant).values


def fcover(
    bands: Mapping[str, npt.ArrayLike],
    angles: ViewingAngles,
    *,
    variant: Variant | str = Variant.ALLBANDS,
) -> FloatArray:
    """Fraction of vegetation cover, valid range [0, 1]."""
    return biophysical(Variable.FCOVER, bands, angles, variant=variant).values
