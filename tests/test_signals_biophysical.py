"""The biophysical networks: packaged weights, hand-computed pixels, validity, plausibility."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest

from capmon.errors import InputError
from capmon.signals.biophysical import (
    INPUT_LIMITS,
    Variable,
    Variant,
    ViewingAngles,
    apply_output_validity,
    biophysical,
    fapar,
    fcover,
    lai,
    load_network,
    parse_weights,
    required_bands,
)

SOIL = {
    "B03": 0.10,
    "B04": 0.14,
    "B05": 0.17,
    "B06": 0.19,
    "B07": 0.20,
    "B08": 0.21,
    "B8A": 0.22,
    "B11": 0.30,
    "B12": 0.25,
}
CANOPY = {
    "B03": 0.06,
    "B04": 0.03,
    "B05": 0.09,
    "B06": 0.30,
    "B07": 0.40,
    "B08": 0.45,
    "B8A": 0.46,
    "B11": 0.20,
    "B12": 0.09,
}
ANGLES = ViewingAngles(sun_zenith=35.0, sun_azimuth=150.0, view_zenith=5.0, view_azimuth=100.0)


def _mixtures(fractions: np.ndarray) -> dict[str, np.ndarray]:
    """Linear mixtures of bare soil (fraction 0) and dense canopy (fraction 1)."""
    return {
        band: ((1 - fractions) * SOIL[band] + fractions * CANOPY[band]).astype(np.float32)
        for band in SOIL
    }


def _by_hand(
    variable: str, variant: str, pixel: dict[str, float], angles: dict[str, float]
) -> float:
    """The network on one pixel, written out neuron by neuron from the parsed weights."""
    net = load_network(variable, variant)
    inputs = {**pixel, **angles}
    x = [inputs[name] for name in net.inputs]
    normalised = [
        2.0 * (value - lo) / (hi - lo) - 1.0
        for value, lo, hi in zip(x, net.input_min, net.input_max, strict=True)
    ]
    output = net.output_bias
    for j in range(len(net.hidden_bias)):
        s = net.hidden_bias[j] + sum(
            w * v for w, v in zip(net.hidden_weights[j], normalised, strict=True)
        )
        output += net.output_weights[j] * (2.0 / (1.0 + math.exp(-2.0 * s)) - 1.0)  # tansig
    return 0.5 * (output + 1.0) * (net.output_max - net.output_min) + net.output_min


def test_weight_files_are_installed_with_their_source() -> None:
    folder = resources.files("capmon.data.biophysical")
    names = {entry.name for entry in folder.iterdir()}
    for stem in ("allbands", "rededge"):
        for variable in ("LAI", "FAPAR", "FCOVER"):
            assert f"Algo_S2_V2.0_SL2T_{stem}_{variable}.txt" in names
    assert {"Algo_LANDSAT8OLI_LAI.txt", "SOURCE_COMMIT", "README.md"} <= names
    assert len(folder.joinpath("SOURCE_COMMIT").read_text().strip()) == 40


@pytest.mark.parametrize("variant", list(Variant))
@pytest.mark.parametrize("variable", list(Variable))
def test_networks_parse_with_their_input_order(variable: Variable, variant: Variant) -> None:
    net = load_network(variable, variant)
    expected_bands = {
        Variant.ALLBANDS: ("B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"),
        Variant.REDEDGE: ("B03", "B04", "B08", "B05", "B06", "B07", "B11"),
        Variant.LANDSAT8: ("B03", "B04", "B8A", "B11", "B12"),
    }[variant]
    assert net.bands == expected_bands
    assert net.inputs[-3:] == ("COS_VIEW_ZENITH", "COS_SUN_ZENITH", "COS_RELATIVE_AZIMUTH")
    assert net.hidden_weights.shape == (5, len(net.inputs))
    assert net.output_weights.shape == (5,)
    assert (net.input_max > net.input_min).all()
    assert set(INPUT_LIMITS[variant]) == set(net.bands)
    limits = {
        Variable.LAI: (0, 8, 0.2),
        Variable.FAPAR: (0, 0.94, 0.1),
        Variable.FCOVER: (0, 1, 0.1),
    }
    assert (net.valid_min, net.valid_max, net.tolerance) == limits[variable]


def test_parser_reads_the_numbers_of_the_file() -> None:
    text = (
        resources.files("capmon.data.biophysical")
        .joinpath("Algo_S2_V2.0_SL2T_allbands_LAI.txt")
        .read_text()
    )
    net = parse_weights(text, variable="LAI", variant="allbands")
    assert net.input_max[0] == pytest.approx(0.24227150564744757)
    assert net.hidden_bias[0] == pytest.approx(-1.2942679301598696)
    assert net.hidden_weights[0, 0] == pytest.approx(-0.3742492703985799)
    assert net.output_bias == pytest.approx(1.468201298006802)
    assert net.output_max == pytest.approx(14.238223860863263)


def test_parser_rejects_broken_files() -> None:
    text = (
        resources.files("capmon.data.biophysical").joinpath("Algo_LANDSAT8OLI_LAI.txt").read_text()
    )
    lines = text.splitlines()
    truncated = "\n".join(line for line in lines if not line.startswith("-0.68"))
    with pytest.raises(InputError, match="data lines"):
        parse_weights(truncated, variable="LAI", variant="landsat8")
    with pytest.raises(InputError, match="header"):
        parse_weights(text.replace("# bias", "# weights"), variable="LAI", variant="landsat8")


@pytest.mark.parametrize("variant", list(Variant))
@pytest.mark.parametrize("variable", list(Variable))
def test_vectorised_network_matches_hand_computation(variable: Variable, variant: Variant) -> None:
    fractions = np.array([0.0, 0.3, 0.7, 1.0])
    bands = _mixtures(fractions)
    sun_zenith = np.array([35.0, 40.0, 50.0, 30.0])
    angles = ViewingAngles(
        sun_zenith=sun_zenith, sun_azimuth=150.0, view_zenith=5.0, view_azimuth=100.0
    )
    result = biophysical(variable, bands, angles, variant=variant)
    net = load_network(variable, variant)
    for i in range(len(fractions)):
        pixel = {band: float(bands[band][i]) for band in net.bands}
        cosines = {
            "COS_VIEW_ZENITH": math.cos(math.radians(5.0)),
            "COS_SUN_ZENITH": math.cos(math.radians(sun_zenith[i])),
            "COS_RELATIVE_AZIMUTH": math.cos(math.radians(50.0)),
        }
        expected = _by_hand(variable, variant, pixel, cosines)
        expected = min(max(expected, net.valid_min), net.valid_max)
        assert result.values[i] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_lai_is_plausible_and_increases_with_canopy_density() -> None:
    fractions = np.linspace(0.0, 1.0, 11)
    for variant in Variant:
        values = lai(_mixtures(fractions), ANGLES, variant=variant)
        assert values[0] < 0.5, variant  # bare soil
        assert values[-1] > 3.0, variant  # dense green canopy
        assert (np.diff(values) > 0).all(), variant
    fa = fapar(_mixtures(fractions), ANGLES)
    fc = fcover(_mixtures(fractions), ANGLES)
    assert (np.diff(fa) > 0).all()
    assert (np.diff(fc) > 0).all()
    assert fa.min() >= 0
    assert fa.max() <= 0.94
    assert fc.min() >= 0
    assert fc.max() <= 1


def test_works_on_images_with_scalar_or_per_pixel_angles() -> None:
    fractions = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    bands = _mixtures(fractions)
    scalar = lai(bands, ANGLES)
    per_pixel = lai(
        bands,
        ViewingAngles(
            sun_zenith=np.full((3, 4), 35.0),
            sun_azimuth=np.full((3, 4), 150.0),
            view_zenith=np.full((3, 4), 5.0),
            view_azimuth=np.full((3, 4), 100.0),
        ),
    )
    assert scalar.shape == (3, 4)
    assert scalar.dtype == np.float32
    np.testing.assert_allclose(scalar, per_pixel, rtol=1e-6, atol=1e-7)
    with pytest.raises(InputError, match="broadcast"):
        lai(bands, ViewingAngles(np.zeros(5), 0.0, 0.0, 0.0))


def test_output_validity_clamps_within_tolerance_and_drops_beyond() -> None:
    net = load_network("LAI")
    raw = np.array([-0.5, -0.1, 0.0, 4.0, 8.0, 8.15, 8.3, np.nan])
    values, flagged = apply_output_validity(raw, net)
    np.testing.assert_array_equal(values, [np.nan, 0.0, 0.0, 4.0, 8.0, 8.0, np.nan, np.nan])
    np.testing.assert_array_equal(flagged, [True, True, False, False, False, True, True, False])


def test_input_domain_is_flagged_and_optionally_masked() -> None:
    bands = _mixtures(np.array([0.5, 0.5, 0.5]))
    bands["B03"][1] = 0.30  # above the B03 limit 0.242
    bands["B12"][2] = np.nan
    result = biophysical("LAI", bands, ANGLES)
    np.testing.assert_array_equal(result.input_out_of_domain, [False, True, True])
    assert np.isfinite(result.values[:2]).all()
    assert np.isnan(result.values[2])
    masked = biophysical("LAI", bands, ANGLES, mask_input_domain=True)
    assert np.isfinite(masked.values[0])
    assert np.isnan(masked.values[1:]).all()


def test_missing_band_and_unknown_variant_are_input_errors() -> None:
    bands = _mixtures(np.array([0.5]))
    del bands["B05"]
    with pytest.raises(InputError, match="B05"):
        lai(bands, ANGLES)
    with pytest.raises(InputError, match="variant"):
        load_network("LAI", "sentinel3")
    assert required_bands("landsat8") == ("B03", "B04", "B8A", "B11", "B12")
