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
    sensor_family,
    signal_inputs,
)
from capmon.signals.bands import LANDSAT_BANDS, S2_BANDS, landsat_assets
from capmon.signals.catalogue import SPYNDEX_BANDS, spyndex_names

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
