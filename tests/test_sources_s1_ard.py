"""Sentinel-1 analysis-ready products: ASF HyP3 RTC (γ⁰/σ⁰, power/dB/amplitude) and InSAR
coherence, CEOS-ARD NRB and Copernicus CARD-BS folders, single-polarisation STAC items; their
conventions in the catalogue and the MDB (values checked against hand-computed dB)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.parquet as pq
import pytest
from affine import Affine
from shapely.geometry import box, mapping

from capmon.errors import InputError
from capmon.grid import s2_tile
from capmon.mdb.extract import ExtractionSettings, extract_products
from capmon.mdb.query import open_mdb
from capmon.mdb.store import MdbManifest, MdbStore, parquet_files
from capmon.sites import create_site
from capmon.sources import ProductType, find_products, ingest_products, open_product
from capmon.sources._sar_file import direction_from_local_time, relative_orbit
from capmon.synth.formats import write_s1_amplitude
from capmon.workspace import open_workspace
from tests.test_sources_helpers import write_tif

TILE = s2_tile("31UFS")
EPSG = TILE.epsg
PIXEL = 20.0
SIZE = 20
TRANSFORM = Affine(PIXEL, 0.0, TILE.ulx + 2000, 0.0, -PIXEL, TILE.uly - 2000)
# linear power of the four quadrants (top-left, top-right, bottom-left, bottom-right)
POWER = (0.1, 0.05, 0.02, 0.2)
WHEN = datetime(2024, 5, 3, 17, 24, 5, tzinfo=UTC)
GRANULE = "S1A_IW_GRDH_1SDV_20240503T172405_20240503T172430_053691_0685A1_1A2B"
RTC = "S1A_IW_20240503T172405_DVP_RTC20_G_{rad}{scale}uned_1A2B"


def _quadrants(values: tuple[float, float, float, float]) -> npt.NDArray[np.float32]:
    grid = np.empty((SIZE, SIZE), np.float32)
    half = SIZE // 2
    grid[:half, :half], grid[:half, half:], grid[half:, :half], grid[half:, half:] = values
    return grid


def _tif(path: Path, values: npt.NDArray[Any], nodata: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tif(path, values, TRANSFORM, EPSG, nodata)
    return path


def _hyp3_rtc(root: Path, rad: str = "g", scale: str = "p") -> Path:
    """A HyP3 RTC product folder (VV, VH and the annotation files of a standard product)."""
    base = RTC.format(rad=rad, scale=scale)
    folder = root / base
    power = _quadrants(POWER)
    stored = {"p": power, "d": 10 * np.log10(power), "a": np.sqrt(power)}[scale]
    _tif(folder / f"{base}_VV.tif", stored.astype(np.float32), nodata=None if scale == "d" else 0)
    _tif(folder / f"{base}_VH.tif", (stored / 4 if scale != "d" else stored - 6).astype(np.float32))
    for extra in ("dem", "inc_map", "ls_map", "area"):
        _tif(folder / f"{base}_{extra}.tif", np.ones((SIZE, SIZE), np.float32))
    (folder / f"{base}.README.md.txt").write_text(
        "ASF RTC Data Package (GAMMA)\n\nThe source granule used to generate the products "
        f"contained in this folder is:\n{GRANULE}\n"
    )
    (folder / f"{base}.log").write_text("log\n")
    return folder


def test_orbit_helpers() -> None:
    assert relative_orbit("S1A", 53691) == 69  # (53691 - 73) mod 175 + 1
    assert relative_orbit("S1B", 27) == 1
    assert relative_orbit("S1C", 1000) is None
    point = box(4.4, 51.0, 4.5, 51.1)
    assert direction_from_local_time(WHEN, point) == "ASC"  # 17:24 UTC = 17:42 local
    morning = datetime(2024, 5, 3, 5, 50, tzinfo=UTC)
    assert direction_from_local_time(morning, point) == "DESC"


def test_hyp3_rtc_gamma0_power_folder(tmp_path: Path) -> None:
    folder = _hyp3_rtc(tmp_path)
    base = folder.name
    found = find_products([tmp_path])
    assert [p.name for p in found] == [f"{base}_VH.tif", f"{base}_VV.tif"]
    reader = open_product(folder / f"{base}_VV.tif")
    info = reader.info
    assert info.name == f"{base}_VV"
    assert info.product_type is ProductType.S1_AMP
    assert (info.sensor, info.polarisation, info.relative_orbit) == ("S1A", "VV", 69)
    assert info.acquired_at == WHEN
    assert info.orbit_direction == "ASC"
    properties = dict(info.properties)
    assert properties["format"] == "HYP3_RTC"
    assert properties["backscatter"] == "gamma0"
    assert properties["stored_scale"] == "power"
    assert properties["amplitude_convention"] == "gamma0_linear"
    assert properties["absolute_orbit"] == 53691
    assert properties["orbit_direction_from"] == "local_time"
    assert reader.grid().resolution == (PIXEL, PIXEL)
    np.testing.assert_allclose(reader.read("VV"), _quadrants(POWER))
    with pytest.raises(InputError, match="SAR product"):
        reader.angles()


@pytest.mark.parametrize(
    ("rad", "scale", "convention"),
    [("g", "d", "gamma0_db"), ("g", "a", "gamma0_linear"), ("s", "p", "sigma0_linear")],
)
def test_hyp3_rtc_scales_and_radiometry(
    tmp_path: Path, rad: str, scale: str, convention: str
) -> None:
    folder = _hyp3_rtc(tmp_path, rad, scale)
    reader = open_product(folder / f"{folder.name}_VV.tif")
    assert reader.info.properties["amplitude_convention"] == convention
    assert reader.info.properties["backscatter"] == ("gamma0" if rad == "g" else "sigma0")
    expected = 10 * np.log10(_quadrants(POWER)) if scale == "d" else _quadrants(POWER)
    np.testing.assert_allclose(reader.read("VV"), expected, rtol=1e-5)  # amplitude squared


def test_hyp3_insar_and_burst_coherence(tmp_path: Path) -> None:
    coherence = _quadrants((0.2, 0.4, 0.6, 0.8))
    gamma = tmp_path / "S1AA_20240421T172404_20240503T172405_VVP012_INT80_G_ueF_5C3D"
    path = _tif(gamma / f"{gamma.name}_corr.tif", coherence, nodata=0)
    _tif(gamma / f"{gamma.name}_unw_phase.tif", coherence)
    _tif(gamma / f"{gamma.name}_amp.tif", coherence)
    burst = _tif(
        tmp_path / "burst" / "S1_136231_IW2_20240421_20240503_VV_INT80_7E4F_corr.tif", coherence
    )
    assert find_products([tmp_path]) == [path.resolve(), burst.resolve()]
    info = open_product(path).info
    assert info.product_type is ProductType.S1_COHE
    assert info.acquired_at == WHEN
    assert info.acquired_first_at == datetime(2024, 4, 21, 17, 24, 4, tzinfo=UTC)
    assert (info.sensor, info.polarisation) == ("S1A", "VV")
    assert info.properties["value_convention"] == "coherence_linear"
    assert info.properties["pair_days"] == 12
    burst_info = open_product(burst).info
    assert burst_info.properties["burst_id"] == 136231
    assert burst_info.acquired_first_at is not None
    assert burst_info.acquired_first_at.day == 21
    np.testing.assert_allclose(open_product(path).read("VV"), coherence)


def _nrb(root: Path) -> Path:
    folder = root / "S1A_IW_NRB__1SDV_20240503T172405_053691_0685A1_31UFS_8090"
    stem = "s1a-iw-nrb-20240503t172405-053691-0685a1-31ufs"
    power = _quadrants(POWER)
    _tif(folder / "measurement" / f"{stem}-vv-g-lin.tif", power, nodata=float("nan"))
    _tif(folder / "measurement" / f"{stem}-vv-g-log.tif", 10 * np.log10(power))
    _tif(folder / "measurement" / f"{stem}-vh-g-lin.tif", power / 4, nodata=float("nan"))
    for layer in ("dm", "li", "gs", "id"):
        _tif(folder / "annotation" / f"{stem}-{layer}.tif", np.ones((SIZE, SIZE), np.float32))
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": folder.name,
        "geometry": mapping(box(4.4, 51.0, 4.5, 51.1)),
        "bbox": [4.4, 51.0, 4.5, 51.1],
        "properties": {
            "datetime": "2024-05-03T17:24:05Z",
            "platform": "sentinel-1a",
            "sat:orbit_state": "descending",
            "sat:relative_orbit": 161,
        },
        "links": [],
        "assets": {
            "vv-g-lin": {"href": f"./measurement/{stem}-vv-g-lin.tif", "roles": ["backscatter"],
                         "sar:polarizations": ["VV"]},
            "vh-g-lin": {"href": f"./measurement/{stem}-vh-g-lin.tif", "roles": ["backscatter"],
                         "sar:polarizations": ["VH"]},
        },
    }  # fmt: skip
    (folder / f"{folder.name}.json").write_text(json.dumps(item))
    return folder


def test_ceos_ard_nrb_folder(tmp_path: Path) -> None:
    folder = _nrb(tmp_path)
    found = find_products([tmp_path])
    assert [p.name.split("-")[-3] for p in found] == ["vh", "vv"]  # g-lin only, no annotations
    info = open_product(found[1]).info
    assert info.name == f"{folder.name}_VV"
    assert (info.tile, info.orbit_direction, info.relative_orbit) == ("31UFS", "DESC", 161)
    assert info.properties["format"] == "CEOS_ARD_NRB"
    assert info.properties["amplitude_convention"] == "gamma0_linear"
    # the dB copy of the same polarisation is not a second product
    with pytest.raises(InputError, match="not a product capmon reads"):
        open_product(folder / "measurement" / found[1].name.replace("g-lin", "g-log"))


def test_copernicus_card_bs_folder(tmp_path: Path) -> None:
    folder = tmp_path / f"{GRANULE}_CARD_BS"
    power = _quadrants(POWER)
    _tif(folder / "Gamma0_VV.tif", power, nodata=0)
    _tif(folder / "Gamma0_VH.tif", power / 4, nodata=0)
    _tif(folder / "Gamma0_VV_dB.tif", 10 * np.log10(power))
    _tif(folder / "LIA.tif", np.ones((SIZE, SIZE), np.float32))
    _tif(folder / "mask_VV.tif", np.ones((SIZE, SIZE), np.float32))
    found = find_products([tmp_path])
    assert [p.name for p in found] == ["Gamma0_VH.tif", "Gamma0_VV.tif"]
    info = open_product(found[1]).info
    assert info.name == f"{folder.name}_VV"
    assert (info.sensor, info.relative_orbit, info.acquired_at) == ("S1A", 69, WHEN)
    assert info.properties["format"] == "CARD_BS"
    assert info.properties["backscatter"] == "gamma0"
    assert info.properties["amplitude_convention"] == "gamma0_linear"


def _s1_item(path: Path, assets: dict[str, Any], convention: str | None) -> Path:
    properties: dict[str, Any] = {
        "datetime": "2024-05-03T17:24:05Z",
        "platform": "sentinel-1a",
        "sat:orbit_state": "ascending",
        "sat:relative_orbit": 88,
    }
    if convention is not None:
        properties["capmon:backscatter_convention"] = convention
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": path.stem,
        "geometry": mapping(box(4.4, 51.0, 4.5, 51.1)),
        "bbox": [4.4, 51.0, 4.5, 51.1],
        "properties": properties,
        "links": [],
        "assets": assets,
    }
    path.write_text(json.dumps(item))
    return path


def test_single_polarisation_stac_items(tmp_path: Path) -> None:
    _tif(tmp_path / "vv.tif", _quadrants(POWER), nodata=0)
    _tif(tmp_path / "vh.tif", _quadrants(POWER) / 4, nodata=0)
    item = _s1_item(tmp_path / "scene_VV.json", {"vv": {"href": "./vv.tif"}}, "gamma0_linear")
    reader = open_product(item)
    assert reader.info.name == "scene_VV"
    assert (reader.info.polarisation, reader.info.relative_orbit) == ("VV", 88)
    assert reader.info.orbit_direction == "ASC"
    assert reader.info.properties["backscatter"] == "gamma0"
    np.testing.assert_allclose(reader.read("VV"), _quadrants(POWER))
    both = _s1_item(
        tmp_path / "multi.json", {"vv": {"href": "./vv.tif"}, "vh": {"href": "./vh.tif"}}, None
    )
    unstated = _s1_item(tmp_path / "plain_VH.json", {"vh": {"href": "./vh.tif"}}, None)
    # the folder: the single-polarisation items are products, their files are not others
    assert {p.name for p in find_products([tmp_path])} == {"scene_VV.json", "plain_VH.json"}
    with pytest.raises(InputError, match="not a product capmon reads"):
        open_product(both)
    with pytest.raises(InputError, match=r"plain_VH.json does not state whether its values"):
        open_product(unstated)


def _parcels() -> gpd.GeoDataFrame:
    """One parcel inside each quadrant (160 m squares, 20 m from its edges)."""
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    half = SIZE // 2 * PIXEL
    shapes = [
        box(x0 + dx + 20, y0 - dy - half + 20, x0 + dx + half - 20, y0 - dy - 20)
        for dy in (0, half)
        for dx in (0, half)
    ]
    return gpd.GeoDataFrame({"NewID": np.arange(1, 5, dtype=np.int64)}, geometry=shapes, crs=EPSG)


def test_mdb_rows_state_the_backscatter_and_hold_hand_computed_db(tmp_path: Path) -> None:
    hyp3_power = _hyp3_rtc(tmp_path / "p", "g", "p")
    hyp3_db = _hyp3_rtc(tmp_path / "d", "g", "d")
    hyp3_amplitude = _hyp3_rtc(tmp_path / "a", "g", "a")
    sen4cap = write_s1_amplitude(
        tmp_path / "sen4cap",
        site_id=1,
        polarisation="VV",
        relative_orbit=88,
        time=datetime(2024, 5, 9, 17, 24, 5, tzinfo=UTC),
        time_pair=datetime(2024, 5, 3, 17, 24, 5, tzinfo=UTC),
        amplitude=np.sqrt(_quadrants(POWER)),
        transform=TRANSFORM,
        epsg=EPSG,
        spacecraft="S1A",
        orbit_direction="ASC",
    )
    coherence = _tif(
        tmp_path / "c" / "S1AA_20240421T172404_20240503T172405_VVP012_INT80_G_ueF_5C3D_corr.tif",
        _quadrants((0.2, 0.4, 0.6, 0.8)),
        nodata=0,
    )
    paths = [
        *(f / f"{f.name}_VV.tif" for f in (hyp3_power, hyp3_db, hyp3_amplitude)),
        sen4cap,
        coherence,
    ]
    readers = [open_product(p) for p in paths]
    store = MdbStore(tmp_path / "mdb")
    store.initialise(MdbManifest("t", "x", None, 5.0, 10.0, 2, 0.1, "1"))
    report = extract_products(_parcels(), readers, store, ExtractionSettings(optical_signals=()))
    assert not report.failed
    assert len(report.extracted) == 5
    # the three HyP3 files are one acquisition: readers show one of them (one observation per
    # parcel and acquisition), so each product's rows are checked in its own file
    rows = pd.concat(
        [pq.read_table(p).to_pandas() for p in parquet_files(store.observations)],
        ignore_index=True,
    )
    assert len(open_mdb(store.root).timeseries(signals=["AMP_VV"])) == 2 * 4
    expected = {i + 1: 5 * math.log10(p) for i, p in enumerate(POWER)}  # AMP dB = 5 log10(power)
    for reader in readers[:4]:
        amp = rows[rows["product_id"] == reader.info.name].set_index("parcel_id")
        assert list(amp["signal"].unique()) == ["AMP_VV"]
        np.testing.assert_allclose(amp["mean"].sort_index(), list(expected.values()), atol=1e-5)
        assert (amp["count"] > 30).all()
        quantity = "sigma0" if reader is readers[3] else "gamma0"
        assert set(amp["backscatter"]) == {quantity}
    cohe = rows[rows["signal"] == "COHE_VV"].set_index("parcel_id")["mean"].sort_index()
    np.testing.assert_allclose(cohe, [0.2, 0.4, 0.6, 0.8], atol=1e-6)
    assert rows.loc[rows["signal"] == "COHE_VV", "backscatter"].isna().all()
    # derived signals and compaction keep the column
    mdb = open_mdb(store.root)
    mdb.add_signal("AMP_VV_X2", "2 * AMP_VV_mean")
    store.compact()
    again = open_mdb(store.root).timeseries(signals=["AMP_VV"])
    assert sorted(set(again["backscatter"])) == ["gamma0", "sigma0"]
    assert open_mdb(store.root).timeseries(signals=["AMP_VV_X2"])["backscatter"].isna().all()


def test_ingestion_records_the_convention(tmp_path: Path) -> None:
    folder = _hyp3_rtc(tmp_path / "data")
    workspace = open_workspace(tmp_path / "ws")
    try:
        with workspace.session() as session:
            reader = open_product(folder / f"{folder.name}_VV.tif")
            site = create_site(session, "ard", reader.info.footprint.buffer(0.01))
            report = ingest_products(session, site, [folder])
            assert report.summary["registered"] == 2
        with workspace.session() as session:
            from capmon.catalog.models import Product

            products = {p.name: p for p in session.query(Product).all()}
            vv = products[f"{folder.name}_VV"]
            assert vv.product_type == "s1_amp"
            assert vv.properties["polarisation"] == "VV"
            assert vv.properties["backscatter"] == "gamma0"
            assert vv.properties["amplitude_convention"] == "gamma0_linear"
            assert vv.relative_orbit == 69
            assert vv.orbit_direction == "ASC"
    finally:
        workspace.dispose()
