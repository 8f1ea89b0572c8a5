"""The signal catalogue, spyndex indices and compute_signals, including NDVI on real S2 scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spyndex  # type: ignore[import-untyped]

from capmon.errors import InputError
from capmon.signals import (
    SIGNALS,
    ViewingAngles,
    compute_signals,
    get_signal,
    physical_range,
    physical_valid,
    plan_signals,
    sensor_family,
    signal_inputs,
)
from capmon.signals.bands import LANDSAT_BANDS, S2_BANDS, landsat_assets
from capmon.signals.catalogue import REFLECTANCE_RANGE, SPYNDEX_BANDS, spyndex_names

OPTICAL = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def _bands(shape: tuple[int, ...] = (3, 4), seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {band: rng.uniform(0.02, 0.45, shape).astype(np.float32) for band in OPTICAL}


def test_builtin_signals_cover_the_mdb_list() -> None:
    expected = {
        "NDVI",
        "NDWI",
        "BRIGHTNESS",
        "BSI",
        "NDTILL",
        "LAI",
        "FAPAR",
        "FCOVER",
        "AMP_VV",
        "AMP_VH",
        "AMP_VVVH",
        "COHE_VV",
        "COHE_VH",
        *S2_BANDS,
    }
    assert expected <= set(SIGNALS)
    for name, signal in SIGNALS.items():
        assert signal.name == name
        assert signal.sensors
        assert signal.inputs


def test_index_formulas() -> None:
    bands = _bands()
    out = compute_signals(
        ["NDVI", "NDWI", "BRIGHTNESS", "BSI", "NDTILL", "B8A"], bands, sensor="S2"
    )
    b = {k: v.astype(np.float64) for k, v in bands.items()}
    np.testing.assert_allclose(out["NDVI"], (b["B08"] - b["B04"]) / (b["B08"] + b["B04"]), 1e-6)
    np.testing.assert_allclose(out["NDWI"], (b["B11"] - b["B08"]) / (b["B11"] + b["B08"]), 1e-6)
    np.testing.assert_allclose(
        out["BRIGHTNESS"],
        np.sqrt(b["B03"] ** 2 + b["B04"] ** 2 + b["B08"] ** 2 + b["B11"] ** 2),
        1e-6,
    )
    np.testing.assert_allclose(out["NDTILL"], (b["B11"] - b["B12"]) / (b["B11"] + b["B12"]), 1e-6)
    np.testing.assert_array_equal(out["B8A"], bands["B8A"])
    assert all(v.dtype == np.float32 for v in out.values())


def test_bsi_and_ndtill_equal_their_spyndex_indices() -> None:
    bands = _bands()
    out = compute_signals(["BSI", "NDTILL"], bands, sensor="S2")
    params = {key: bands[band] for key, band in SPYNDEX_BANDS.items() if band in bands}
    np.testing.assert_allclose(out["BSI"], spyndex.computeIndex("BI", params=params), rtol=1e-6)
    np.testing.assert_allclose(
        out["NDTILL"], spyndex.computeIndex("NDTillI", params=params), rtol=1e-6
    )
    # NDTI in spyndex is the turbidity index (R − G)/(R + G), not the tillage index.
    ndti = compute_signals(["NDTI"], bands, sensor="S2")["NDTI"]
    b3, b4 = bands["B03"], bands["B04"]
    np.testing.assert_allclose(ndti, (b4 - b3) / (b4 + b3), rtol=1e-6)


def test_division_by_zero_and_nan_give_nan() -> None:
    b8 = np.array([0.0, 0.3, np.nan, 0.1], dtype=np.float32)
    b4 = np.array([0.0, 0.1, 0.1, -0.1], dtype=np.float32)
    ndvi = compute_signals(["NDVI"], {"B08": b8, "B04": b4}, sensor="S2")["NDVI"]
    assert np.isnan(ndvi[0])
    assert np.isnan(ndvi[2])
    assert np.isnan(ndvi[3])
    assert ndvi[1] == pytest.approx(0.5)


def test_spyndex_indices_by_plain_and_prefixed_name() -> None:
    bands = _bands()
    evi = compute_signals(["EVI"], bands, sensor="S2")["EVI"]
    n, r, blue = (bands[k].astype(np.float64) for k in ("B08", "B04", "B02"))
    np.testing.assert_allclose(evi, 2.5 * (n - r) / (n + 6 * r - 7.5 * blue + 1), rtol=1e-5)
    assert get_signal("SPYNDEX:EVI").name == "EVI"
    # A clash with a built-in keeps the prefix: spyndex NDWI is McFeeters' (G − N)/(G + N).
    mcfeeters = get_signal("SPYNDEX:NDWI")
    assert mcfeeters.name == "SPYNDEX:NDWI"
    out = compute_signals(["NDWI", "SPYNDEX:NDWI"], bands, sensor="S2")
    g, nir = bands["B03"], bands["B08"]
    np.testing.assert_allclose(out["SPYNDEX:NDWI"], (g - nir) / (g + nir), rtol=1e-6)
    assert not np.allclose(out["NDWI"], out["SPYNDEX:NDWI"])


def test_every_usable_spyndex_index_computes() -> None:
    bands = _bands((2, 3))
    computed = refused = 0
    for name in sorted(spyndex_names()):
        if name in SIGNALS:
            name = "SPYNDEX:" + name
        try:
            signal = get_signal(name)
        except InputError:
            refused += 1
            continue
        (values,) = compute_signals([name], bands, sensor="S2").values()
        assert values.dtype == np.float32, name
        assert values.shape == (2, 3), name
        if "L8" in signal.sensors:
            landsat = {band: bands[band] for band in LANDSAT_BANDS}
            (values,) = compute_signals([name], landsat, sensor="L8").values()
            assert values.shape == (2, 3), name
        computed += 1
    assert computed > 200
    assert refused < 60


def test_spyndex_index_needing_unavailable_inputs_is_refused() -> None:
    with pytest.raises(InputError, match="NDVIT"):
        get_signal("NDVIT")  # needs a thermal band


def test_unknown_signal_lists_the_known_ones_and_spyndex() -> None:
    with pytest.raises(InputError, match="NDVI") as info:
        get_signal("NOT_A_SIGNAL")
    assert "spyndex" in str(info.value)


def test_signal_inputs_is_the_union_per_sensor() -> None:
    assert signal_inputs(["NDVI", "NDWI", "BRIGHTNESS"], "S2A") == {"B03", "B04", "B08", "B11"}
    assert signal_inputs(["LAI"], "S2") == {
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B11",
        "B12",
    }
    landsat = signal_inputs(["NDVI", "LAI"], "L9")
    assert landsat == {"B03", "B04", "B8A", "B11", "B12"}
    assert set(landsat_assets(landsat).values()) == {"SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"}
    assert signal_inputs(["AMP_VVVH", "COHE_VH"], "S1A") == {"VV", "VH"}
    with pytest.raises(InputError, match="B05"):
        signal_inputs(["B05"], "L8")
    with pytest.raises(InputError, match="not available"):
        signal_inputs(["NDVI"], "S1")


def test_sensor_family() -> None:
    assert sensor_family("s2b") == "S2"
    assert sensor_family("L9") == "L8"
    assert sensor_family("S1C") == "S1"
    with pytest.raises(InputError, match="unknown sensor"):
        sensor_family("MODIS")


def test_compute_signals_checks_bands_and_angles() -> None:
    bands = _bands()
    with pytest.raises(InputError, match=r"NDVI needs band\(s\) B04"):
        compute_signals(["NDVI"], {"B08": bands["B08"]}, sensor="S2")
    with pytest.raises(InputError, match="shape"):
        compute_signals(["NDVI"], {"B08": bands["B08"], "B04": np.zeros((2, 2))}, sensor="S2")
    with pytest.raises(InputError, match="LAI"):
        compute_signals(["LAI"], bands, sensor="S2")


def test_compute_signals_computes_each_signal_once() -> None:
    bands = _bands()
    out = compute_signals(["NDVI", "NDVI", "SPYNDEX:EVI", "EVI"], bands, sensor="S2")
    assert list(out) == ["NDVI", "EVI"]


def test_landsat_uses_one_nir_band_for_both_names() -> None:
    bands = _bands()
    landsat = {"B04": bands["B04"], "B8A": bands["B8A"], "B03": bands["B03"]}
    landsat.update({"B11": bands["B11"], "B12": bands["B12"]})
    angles = ViewingAngles(sun_zenith=35.0, sun_azimuth=150.0, view_zenith=0.0, view_azimuth=0.0)
    out = compute_signals(["NDVI", "LAI"], landsat, sensor="L8", angles=angles)
    b8a, b4 = bands["B8A"], bands["B04"]
    np.testing.assert_allclose(out["NDVI"], (b8a - b4) / (b8a + b4), rtol=1e-6)
    assert out["LAI"].shape == b4.shape


def test_s1_signals() -> None:
    sigma0_vv = np.array([0.1, 0.01, 0.0, np.nan], dtype=np.float32)
    sigma0_vh = np.array([0.01, 0.001, 0.02, 0.02], dtype=np.float32)
    names = ["AMP_VV", "AMP_VH", "AMP_VVVH", "BCK_VV", "BCK_VVVH"]
    out = compute_signals(names, {"VV": sigma0_vv, "VH": sigma0_vh}, sensor="S1B")
    np.testing.assert_allclose(out["BCK_VV"][:2], [-10.0, -20.0], rtol=1e-6)
    np.testing.assert_allclose(out["AMP_VV"][:2], [-5.0, -10.0], rtol=1e-6)
    np.testing.assert_allclose(out["AMP_VVVH"][:2], [5.0, 5.0], rtol=1e-5)
    np.testing.assert_allclose(out["BCK_VVVH"][:2], [10.0, 10.0], rtol=1e-5)
    for name in ("AMP_VV", "AMP_VVVH", "BCK_VV", "BCK_VVVH"):
        assert np.isnan(out[name][2:]).all()
    assert np.isfinite(out["AMP_VH"]).all()
    cohe = compute_signals(["COHE_VV"], {"VV": np.array([0.0, 0.4, 1.2])}, sensor="S1")
    np.testing.assert_array_equal(cohe["COHE_VV"], np.array([np.nan, 0.4, np.nan], np.float32))


@pytest.mark.shared_data
def test_ndvi_equals_the_stored_ndvi_of_real_scenes(shared_data: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    folder = shared_data / "eolearn_testeopatch" / "derived"
    scenes = sorted(folder.glob("S2L1C_TOA_*_13bands.tif"))
    if not scenes:
        pytest.skip(f"no S2L1C scenes in {folder}")
    with rasterio.open(folder / "NDVI_stack_EPSG32633.tif") as stack:
        dates = list(stack.descriptions)
        stored = stack.read()
    for scene in scenes:
        with rasterio.open(scene) as src:
            names = list(src.descriptions)
            assert names == list(S2_BANDS)
            data = src.read()
            acquisition = src.tags()["ACQUISITION"]
        bands = {name: data[i] for i, name in enumerate(names)}
        ndvi = compute_signals(["NDVI"], bands, sensor="S2")["NDVI"]
        reference = stored[dates.index(acquisition)]
        np.testing.assert_array_equal(ndvi, reference)


# --- physical ranges and band variants (issue 15, defects 3 and 4) ---------------------------


def test_every_builtin_signal_has_a_physical_range() -> None:
    for name, signal in SIGNALS.items():
        assert signal.valid_range is not None, name
        low, high = signal.valid_range
        assert low < high, name
        for _, variant in signal.sensor_variants:
            assert variant.valid_range == signal.valid_range, name
    assert physical_range("B04") == REFLECTANCE_RANGE
    assert physical_range("NDVI_B8A") == (-1.0, 1.0)
    assert physical_range("EVI") is None  # spyndex: any finite value (inputs are checked)


def test_fill_values_and_impossible_values_give_nan() -> None:
    """A reflectance outside [-0.2, 1.5] is no data for every signal that uses it; a signal
    outside its range is NaN. Before, NDVI of a 1e20 fill was a plausible -1."""
    b04 = np.array([0.05, 1e20, -0.2, 1.5, 0.1, -0.05, np.inf, 0.1], np.float32)
    b08 = np.array([0.40, 0.40, 0.3, 0.3, 1.6, 0.10, 0.3, -1e20], np.float32)
    out = compute_signals(["B04", "B08", "NDVI", "BRIGHTNESS"], {**_bands((8,)), "B04": b04,
                          "B08": b08}, sensor="S2A")  # fmt: skip
    nan = np.nan
    kept = np.array([0.05, nan, -0.2, 1.5, 0.1, -0.05, nan, 0.1], np.float32)  # bounds kept
    np.testing.assert_array_equal(out["B04"], kept)
    np.testing.assert_array_equal(out["B08"], np.where([0, 0, 0, 0, 1, 0, 0, 1], nan, b08))
    expected = [0.35 / 0.45, nan, 0.5 / 0.1, -1.2 / 1.8, nan, 0.15 / 0.05, nan, nan]
    expected = [v if np.isnan(v) or -1 <= v <= 1 else nan for v in expected]  # 5 and 3: NaN
    np.testing.assert_allclose(out["NDVI"], np.array(expected, np.float32), rtol=1e-6)
    assert np.isnan(out["NDVI"][[1, 2, 4, 5, 6, 7]]).all()
    assert np.isnan(out["BRIGHTNESS"][[1, 4, 6, 7]]).all()
    assert np.isfinite(out["BRIGHTNESS"][[0, 2, 3, 5]]).all()
    angles = ViewingAngles(35.0, 150.0, 5.0, 100.0)
    bands = _bands((4,))
    bands["B11"][1] = 1e20
    lai = compute_signals(["LAI", "EVI"], bands, sensor="S2B", angles=angles)
    assert np.isnan(lai["LAI"][1])
    assert np.isfinite(lai["LAI"][[0, 2, 3]]).all()
    evi_bands = {band: values.copy() for band, values in _bands((4,)).items()}
    evi_bands["B02"][2] = 1e20
    assert np.isnan(compute_signals(["EVI"], evi_bands, sensor="S2B")["EVI"][2])


def test_sar_values_outside_their_range_give_nan() -> None:
    vv = np.array([0.1, 1e-7, 0.1, 5000.0], np.float32)  # 1e-7: -70 dB; 5000: +37 dB
    vh = np.array([0.01, 0.01, 1e-7, 0.01], np.float32)
    out = compute_signals(["BCK_VV", "AMP_VV", "BCK_VVVH", "AMP_VVVH"], {"VV": vv, "VH": vh},
                          sensor="S1A")  # fmt: skip
    np.testing.assert_allclose(out["BCK_VV"], [-10.0, np.nan, -10.0, np.nan], rtol=1e-6)
    np.testing.assert_allclose(out["AMP_VV"], [-5.0, np.nan, -5.0, np.nan], rtol=1e-6)
    np.testing.assert_allclose(out["BCK_VVVH"], [10.0, np.nan, np.nan, np.nan], rtol=1e-5)
    np.testing.assert_allclose(out["AMP_VVVH"], [5.0, np.nan, np.nan, np.nan], rtol=1e-5)


def test_physical_valid() -> None:
    values = np.array([-1.0, 0.3, 1.0, 1.01, np.nan, -np.inf])
    np.testing.assert_array_equal(
        physical_valid("NDVI", values), [True, True, True, False, False, False]
    )
    np.testing.assert_array_equal(physical_valid("LAI", [-0.1, 0.0, 9.0, 11.0]), [0, 1, 1, 0])
    np.testing.assert_array_equal(physical_valid("B8A", [1e20, 0.2]), [False, True])
    np.testing.assert_array_equal(physical_valid("EVI", [12.0, np.nan]), [True, False])
    with pytest.raises(InputError, match="unknown signal"):
        physical_valid("NOPE", [0.0])


def test_b8a_variants() -> None:
    bands = _bands()
    out = compute_signals(["NDVI_B8A", "NDWI_B8A"], bands, sensor="S2C")
    b4, b8a, b11 = bands["B04"], bands["B8A"], bands["B11"]
    np.testing.assert_allclose(out["NDVI_B8A"], (b8a - b4) / (b8a + b4), rtol=1e-6)
    np.testing.assert_allclose(out["NDWI_B8A"], (b11 - b8a) / (b11 + b8a), rtol=1e-6)
    assert signal_inputs(["NDVI_B8A"], "S2A") == {"B04", "B8A"}
    landsat = compute_signals(["NDVI", "NDVI_B8A"], {"B04": b4, "B8A": b8a}, sensor="L9")
    np.testing.assert_array_equal(landsat["NDVI"], landsat["NDVI_B8A"])


def test_plan_signals_skips_what_a_product_cannot_give() -> None:
    plan = plan_signals(["NDVI", "B04", "NDVI_B8A", "LAI", "NDVI"], "S2A", ["B04", "B8A"])
    assert plan.signals == ("B04", "NDVI_B8A")
    assert plan.bands == ("B04", "B8A")
    assert plan.not_for_sensor == ()
    assert plan.missing_bands["NDVI"] == ("B08",)
    assert plan.missing_bands["LAI"] == ("B03", "B05", "B06", "B07", "B08", "B11", "B12")
    assert plan.skipped["NDVI"] == "the product has no band B08"
    everything = plan_signals(["NDVI", "LAI", "B02"], "S2B", S2_BANDS)
    assert everything.signals == ("NDVI", "LAI", "B02")
    assert not everything.skipped
    # Landsat: B08 and B8A are one NIR band; red-edge bands do not exist for the sensor
    landsat = plan_signals(["NDVI", "B05", "B08", "LAI"], "L8", ["B03", "B04", "B8A", "B11"])
    assert landsat.signals == ("NDVI", "B08")
    assert landsat.bands == ("B04", "B8A")
    assert landsat.not_for_sensor == ("B05",)
    assert landsat.skipped == {
        "B05": "not a signal of this sensor",
        "LAI": "the product has no band B12",
    }
    sar = plan_signals(["AMP_VV", "NDVI"], "S1A", ["VV"])
    assert sar.signals == ("AMP_VV",)
    assert sar.not_for_sensor == ("NDVI",)
    with pytest.raises(InputError, match="unknown signal 'NDVJ'"):
        plan_signals(["NDVJ"], "S2A", S2_BANDS)
