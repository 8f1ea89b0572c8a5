"""Tests of the synthetic season generator (capmon.synth): tiny worlds, fast."""

from __future__ import annotations

import configparser
import csv
import itertools
import re
import zipfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from typer import Typer
from typer.testing import CliRunner

from capmon.errors import InputError
from capmon.synth import SynthWorld, WorldModel, build_world_model, generate_world, truth
from capmon.synth.crops import CROPS, LUT_COLUMNS, CoverClass
from capmon.synth.management import ParcelSeason
from capmon.synth.render import N_BACKGROUND, cumulative_change, render_coherence, render_s2
from capmon.synth.sar import coherence, sigma0
from capmon.synth.sen4cap_files import PRACTICE_COLUMNS, practice_rows
from capmon.synth.spectra import BANDS, DRY, GREEN, SOIL, Substrate, ndtill, ndvi
from capmon.synth.world import YearModel, s1_dates, s2_dates

TINY = {"parcels": 40, "window_km": 1.2, "revisit_days": 30, "s2_format": "cog"}


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    out = tmp_path_factory.mktemp("synth") / "world"
    return generate_world(out, seed=3, wrong_declarations=0.1, defective_parcels=3, **TINY)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model() -> WorldModel:
    return build_world_model(parcels=220, window_km=2.4, seed=1, sentinel1=True)


def _year(model: WorldModel) -> YearModel:
    return model.years[0]


def _clear_s2(ym: YearModel, model: WorldModel, day: date) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    wi = model.weather.index(day)
    moisture = float(model.weather.soil_moisture[wi])
    refl, _scl, _sky = render_s2(
        ym.s2_scene, ym.states, day, moisture, 0.0, 0.0, (40.0, 160.0), rng
    )
    return refl


def _parcel_means(ym: YearModel, image: np.ndarray) -> np.ndarray:
    units = ym.s2_scene.units.ravel()
    n = len(ym.unit_substrate)
    total = np.bincount(units, weights=image.ravel().astype(float), minlength=n)
    count = np.bincount(units, minlength=n)
    means: np.ndarray = total / np.maximum(count, 1)
    return means[N_BACKGROUND : N_BACKGROUND + len(ym.seasons)]


# ------------------------------------------------------------------------------------------
# Spectra, radar physics


def test_endmember_spectra_have_realistic_indices() -> None:
    assert 0.83 < ndvi(GREEN[3], GREEN[7]) < 0.9
    assert 0.12 < ndvi(SOIL[3], SOIL[7]) < 0.18
    assert ndvi(DRY[3], DRY[7]) < 0.25
    # Dry residue has a stronger SWIR1/SWIR2 contrast than bare soil.
    assert ndtill(DRY[10], DRY[11]) > ndtill(SOIL[10], SOIL[11]) + 0.08
    assert BANDS.index("B11") == 10


def test_backscatter_follows_published_ranges() -> None:
    soil = np.array([int(Substrate.SOIL)] * 4)
    biomass = np.array([0.0, 0.5, 1.5, 4.5])
    rough = np.full(4, 0.35)
    vv = 10 * np.log10(sigma0(biomass, rough, 0.45, soil, 38.0, "VV"))
    vh = 10 * np.log10(sigma0(biomass, rough, 0.45, soil, 38.0, "VH"))
    assert -12.5 < vv[1:3].mean() < -8.5
    assert -19.0 < vh[1:3].mean() < -15.0
    ratio = vh - vv  # VH/VV in dB rises with biomass
    assert np.all(np.diff(ratio) > 0)
    gamma_bare = coherence(biomass[:1], biomass[:1], 6, np.ones(1), 0.0, soil[:1], "VV")
    gamma_dense = coherence(biomass[3:], biomass[3:], 6, np.ones(1), 0.0, soil[:1], "VV")
    assert gamma_bare[0] > 0.75
    assert gamma_dense[0] < 0.3
    assert gamma_dense[0] >= 0.2  # estimator bias floor


# ------------------------------------------------------------------------------------------
# Phenology and rendered Sentinel-2 signals


def test_crop_mix_and_counts(model: WorldModel) -> None:
    ym = _year(model)
    assert len(ym.seasons) == 220
    crops = {s.crop.code for s in ym.seasons}
    assert len(crops) >= 9
    shares = pd.Series([s.crop.english for s in ym.seasons]).value_counts(normalize=True)
    assert shares.index[0] in ("Winter wheat", "Permanent grassland")
    assert 0.1 < shares.get("Winter wheat", 0.0) < 0.45


def test_wheat_is_green_in_june_and_bare_parcels_are_not(model: WorldModel) -> None:
    ym = _year(model)
    refl = _clear_s2(ym, model, date(2024, 6, 4))
    parcel_ndvi = _parcel_means(ym, ndvi(refl["B04"], refl["B08"]))
    wheat = [k for k, s in enumerate(ym.seasons) if s.crop.code == 311]
    assert wheat
    assert parcel_ndvi[wheat].mean() > 0.6
    day = date(2024, 5, 10)
    refl = _clear_s2(ym, model, day)
    parcel_ndvi = _parcel_means(ym, ndvi(refl["B04"], refl["B08"]))
    i = ym.states.index(day)
    green = ym.states.green[N_BACKGROUND : N_BACKGROUND + len(ym.seasons), i]
    dry = ym.states.dry[N_BACKGROUND : N_BACKGROUND + len(ym.seasons), i]
    bare = (green < 0.1) & (dry < 0.2)
    assert bare.sum() >= 3
    assert parcel_ndvi[bare].mean() < 0.3


def test_residue_has_higher_ndtill_than_bare_soil(model: WorldModel) -> None:
    ym = _year(model)
    sl = slice(N_BACKGROUND, N_BACKGROUND + len(ym.seasons))
    residue_ndtill: list[float] = []
    bare_ndtill: list[float] = []
    for day in (date(2024, 8, 9), date(2024, 8, 24), date(2024, 11, 2)):
        refl = _clear_s2(ym, model, day)
        index = _parcel_means(ym, ndtill(refl["B11"], refl["B12"]))
        veg = _parcel_means(ym, ndvi(refl["B04"], refl["B08"]))
        i = ym.states.index(day)
        green, dry = ym.states.green[sl, i], ym.states.dry[sl, i]
        residue = (green < 0.15) & (dry > 0.35)
        bare = (green < 0.15) & (dry < 0.12)
        assert veg[residue | bare].mean() < 0.35
        residue_ndtill.extend(index[residue])
        bare_ndtill.extend(index[bare])
    assert len(residue_ndtill) >= 3
    assert len(bare_ndtill) >= 3
    assert np.mean(residue_ndtill) > np.mean(bare_ndtill) + 0.05


def test_mowing_drops_ndvi_then_grass_regrows(model: WorldModel) -> None:
    ym = _year(model)
    drops, recoveries = [], []
    for k, season in enumerate(ym.seasons):
        if not season.crop.is_grass or season.heterogeneity is not None:
            continue
        for cut in season.plan.mowings:
            values = []
            for offset in (-3, 2, 21):
                day = cut + timedelta(days=offset)
                refl = _clear_s2(ym, model, day)
                values.append(_parcel_means(ym, ndvi(refl["B04"], refl["B08"]))[k])
            drops.append(values[0] - values[1])
            recoveries.append(values[2] - values[1])
            break
        if len(drops) >= 6:
            break
    assert len(drops) >= 3
    assert 0.12 < float(np.mean(drops)) < 0.4
    assert float(np.mean(recoveries)) > 0.1


@pytest.fixture(scope="module")
def clean_model() -> WorldModel:
    return build_world_model(parcels=220, window_km=2.4, seed=1, sentinel1=True, realism="clean")


def test_s1_coherence_after_cut_exceeds_dense_canopy(clean_model: WorldModel) -> None:
    # The coherence model itself, on the clean world: a mown meadow (little volume) is more
    # coherent than a dense canopy. The calibrated world adds the haymaking days and the
    # noise that make real coherence say little about a cut (tests/test_synth_realism.py).
    ym = _year(clean_model)
    scene = ym.s1_scene
    assert scene is not None
    change = cumulative_change(ym.states)
    rng = np.random.default_rng(1)
    units = scene.units.ravel()
    n = len(ym.unit_substrate)
    count = np.bincount(units, minlength=n)

    def parcel_coherence(first: date, second: date) -> np.ndarray:
        gamma = render_coherence(
            scene, ym.states, change, first, second, 0.0, ym.unit_substrate, "VH", rng
        )
        total = np.bincount(units, weights=gamma.ravel().astype(float), minlength=n)
        out: np.ndarray = total / np.maximum(count, 1)
        return out

    after_cut, dense = [], []
    for k, season in enumerate(ym.seasons):
        unit = N_BACKGROUND + k
        if season.crop.is_grass and season.plan.mowings and count[unit] > 5:
            cut = season.plan.mowings[0]
            after_cut.append(parcel_coherence(cut + timedelta(1), cut + timedelta(7))[unit])
        if season.crop.code in (201, 202, 91) and count[unit] > 5:
            dense.append(parcel_coherence(date(2024, 7, 20), date(2024, 7, 26))[unit])
    assert len(after_cut) >= 3
    assert len(dense) >= 3
    assert np.mean(after_cut) > np.mean(dense) + 0.2
    assert 0.15 < np.mean(dense) < 0.45


def test_truth_dates_are_consistent(model: WorldModel) -> None:
    for season in _year(model).seasons:
        plan = season.plan
        if plan.sowing is not None and plan.harvest is not None:
            assert plan.sowing < plan.emergence <= plan.harvest  # type: ignore[operator]
            if season.crop.code in (311, 321, 4111):
                assert plan.sowing.year == season.year - 1
        if plan.catch_crop_sowing is not None:
            assert plan.harvest is not None
            assert plan.catch_crop_sowing > plan.harvest
        cuts = plan.mowings
        assert all(b > a for a, b in itertools.pairwise(cuts))
        if season.crop.is_grass:
            assert len(cuts) <= 4


def test_practice_csv_lists_a_catch_crop_that_is_missing(model: WorldModel) -> None:
    seasons = _year(model).seasons
    rows = practice_rows(seasons, "CC")
    by_id = {s.parcel.parcel_id: s for s in seasons}
    assert rows
    assert any(by_id[r["FIELD_ID"]].plan.catch_crop is None for r in rows)
    assert any(by_id[r["FIELD_ID"]].plan.catch_crop is not None for r in rows)
    assert all(r["PRACTICE"] == "CatchCrop" for r in rows)


@pytest.fixture(scope="module")
def three_years() -> WorldModel:
    return build_world_model(parcels=400, years=3, window_km=3.6, seed=5, sentinel1=False)


def test_multi_year_lpis_changes_and_rotations(three_years: WorldModel) -> None:
    world = three_years
    ids = [{s.parcel.parcel_id for s in ym.seasons} for ym in world.years]
    changed = [s for ym in world.years[1:] for s in ym.seasons if s.parcel.change]
    assert {s.parcel.change for s in changed} == {"split", "merged"}
    for s in changed:
        year_index = s.year - world.first_year
        assert s.parcel.parcel_id not in ids[year_index - 1]
        assert set(s.parcel.parents) <= ids[year_index - 1]
    stable = ids[0] & ids[1] & ids[2]
    assert len(stable) > 0.85 * len(ids[0])
    first = {s.parcel.parcel_id: s for s in world.years[0].seasons}
    second = {s.parcel.parcel_id: s for s in world.years[1].seasons}
    rotated = sum(first[p].crop is not second[p].crop for p in stable)
    assert rotated > 0.4 * len(stable)
    covers = {s.plan.cover_class for ym in world.years for s in ym.seasons}
    assert covers >= {CoverClass.ARABLE, CoverClass.PERMANENT_GRASSLAND}
    old_leys = [
        s for ym in world.years for s in ym.seasons if s.crop.code == 63 and s.plan.grass_age >= 5
    ]
    assert all(s.plan.cover_class is CoverClass.PERMANENT_GRASSLAND for s in old_leys)


def test_truth_of_merged_and_vanishing_parcels(three_years: WorldModel) -> None:
    """A merged parcel's truth history is its larger parent's land (the simulation gives it
    the first parent's crops); a parcel not declared the next year keeps its autumn events."""
    by_year = [ym.seasons for ym in three_years.years]
    land = truth.land_history(by_year)
    before: dict[str, ParcelSeason] = {}
    other_parent = 0
    for seasons in by_year:
        for season in seasons:
            key = (season.parcel.parcel_id, season.year)
            if season.parcel.change == "merged":
                parents = [before[p] for p in season.parcel.parents]
                larger = max(parents, key=lambda p: p.parcel.area_ha)
                assert land[key].previous_crop_code == larger.crop.code
                grass = season.crop.is_grass and larger.crop.is_grass
                if grass:
                    assert (
                        land[key].grassland_age
                        == land[(larger.parcel.parcel_id, larger.year)].grassland_age + 1
                    )
                other_parent += larger is not parents[0] and larger.crop is not parents[0].crop
            elif season.parcel.parcel_id in before:  # the parcel's own land
                assert land[key].previous_crop_code == season.previous_crop.code
            if season.year == three_years.first_year:
                assert land[key].grassland_age == season.plan.grass_age
                assert land[key].cover_class == season.plan.cover_class.value
        before = {s.parcel.parcel_id: s for s in seasons}
    assert other_parent > 0
    merged = next(s for s in by_year[1] if s.parcel.change == "merged")
    table = truth.parcels_table(by_year[1], [1] * len(by_year[1]), land).set_index("parcel_id")
    assert table.loc[merged.parcel.parcel_id, "previous_crop_code"] == (
        land[(merged.parcel.parcel_id, merged.year)].previous_crop_code
    )
    events = truth.events_table(by_year)
    listed = set(
        zip(events["parcel_id"], events["year"], events["date"], events["event"], strict=True)
    )
    declared = {(s.parcel.parcel_id, s.year) for seasons in by_year for s in seasons}
    autumn = 0
    for season in by_year[0] + by_year[1]:
        if (season.parcel.parcel_id, season.year + 1) in declared:
            continue
        for event in season.history[-1].events:
            next_year = event.kind.exported and event.year == season.year + 1
            if next_year and event.day <= date(season.year, 12, 31):
                autumn += 1
                row = (season.parcel.parcel_id, event.year, event.day.isoformat(), event.kind.value)
                assert row in listed
    assert autumn > 0


def test_wrong_declarations_fraction() -> None:
    world = build_world_model(
        parcels=100, window_km=1.8, seed=2, wrong_declarations=0.2, sentinel1=False
    )
    seasons = world.years[0].seasons
    wrong = [s for s in seasons if s.declared_wrong]
    assert len(wrong) == 20
    assert all(s.declared_crop is not s.crop for s in wrong)
    assert all(s.declared_crop is s.crop for s in seasons if not s.declared_wrong)


# ------------------------------------------------------------------------------------------
# Written world


def test_world_manifest_round_trip(tiny_world: SynthWorld) -> None:
    again = SynthWorld.load(tiny_world.root)
    assert again == tiny_world
    assert tiny_world.parcel_counts == {2024: 40}
    assert tiny_world.s2_products == len(s2_dates(2024, 30))
    assert (tiny_world.root / "world.json").is_file()


def test_products_have_sen4cap_and_esa_names(tiny_world: SynthWorld) -> None:
    assert tiny_world.s2_dir is not None
    assert tiny_world.s1_dir is not None
    safes = sorted(tiny_world.s2_dir.iterdir())
    assert len(safes) == tiny_world.s2_products
    pattern = re.compile(r"^S2[ABC]_MSIL2A_2024\d{4}T104621_N0510_R051_T31UFS_\d{8}T\d{6}\.SAFE$")
    assert all(pattern.match(p.name) for p in safes)
    assert all((p / "MTD_MSIL2A.xml").is_file() for p in safes)
    s1 = sorted(p.name for p in tiny_world.s1_dir.iterdir())
    s1_pattern = re.compile(
        r"^SEN4CAP_L2A_S1_V\d{8}T\d{6}_\d{8}T\d{6}_(VV|VH)_(088|037)_(AMP|COHE)\.tif$"
    )
    assert all(s1_pattern.match(name) for name in s1)
    expected = sum(len(s1_dates(2024, a, 6)) - 1 for a in (date(2017, 1, 3), date(2017, 1, 5)))
    assert len(s1) == tiny_world.s1_products == 4 * expected
    for kind in ("VV_088_AMP", "VH_037_COHE"):
        assert any(kind in name for name in s1)


def test_snow_episode_is_classified_as_snow(model: WorldModel) -> None:
    ym = _year(model)
    snowy = [i for i, v in enumerate(model.weather.snow_cover) if v > 0.6]
    day = model.weather.start + timedelta(days=snowy[len(snowy) // 2])
    if day.year != 2024:
        day = next(
            model.weather.start + timedelta(days=i)
            for i in snowy
            if (model.weather.start + timedelta(days=i)).year == 2024
        )
    depth = float(model.weather.snow_cover[model.weather.index(day)])
    _refl, scl, _sky = render_s2(
        ym.s2_scene, ym.states, day, 0.5, depth, 0.0, (60.0, 160.0), np.random.default_rng(2)
    )
    assert (scl == 11).mean() > 0.3


def test_scl_has_vegetation_soil_and_clouds(tiny_world: SynthWorld) -> None:
    assert tiny_world.s2_dir is not None
    seen: set[int] = set()
    for safe in sorted(tiny_world.s2_dir.iterdir()):
        scl = next(safe.rglob("*_SCL_20m.*"))
        with rasterio.open(scl) as ds:
            seen |= {int(v) for v in np.unique(ds.read(1))}
    assert {4, 5} <= seen
    assert seen & {8, 9}


def test_s1_files_have_published_statistics(tiny_world: SynthWorld) -> None:
    assert tiny_world.s1_dir is not None
    vv, vh, coh = [], [], []
    for path in sorted(tiny_world.s1_dir.glob("*_2024070*_*.tif")):
        with rasterio.open(path) as ds:
            assert ds.crs.to_epsg() == 3035
            assert ds.res == (20.0, 20.0)
            values = ds.read(1)
        values = values[values > 0]
        if path.name.endswith("VV_088_AMP.tif") or path.name.endswith("VV_037_AMP.tif"):
            vv.append(np.mean(20 * np.log10(values)))
        elif "_VH_" in path.name and path.name.endswith("AMP.tif"):
            vh.append(np.mean(20 * np.log10(values)))
        else:
            coh.append(values)
    assert vv
    assert vh
    assert coh
    assert -13.0 < np.mean(vv) < -7.0
    assert -20.0 < np.mean(vh) < -13.0
    all_coh = np.concatenate(coh)
    assert all_coh.min() >= 0.0
    assert all_coh.max() <= 1.0
    assert 0.2 < np.median(all_coh) < 0.9


def test_declarations_zip_reads_with_a_national_crs(tiny_world: SynthWorld) -> None:
    path = tiny_world.declarations[2024]
    with zipfile.ZipFile(path) as archive:
        assert {Path(n).suffix for n in archive.namelist()} >= {".shp", ".shx", ".dbf", ".prj"}
    frame = pyogrio.read_dataframe(f"/vsizip/{path}")
    assert frame.crs is not None
    assert frame.crs.to_epsg() == 31370
    assert {"PARCEL_ID", "HOLDING_ID", "CROP_CODE", "CROP_NAME", "AREA_HA"} <= set(frame.columns)
    assert len(frame) == 40 + 3  # plus the defective rows
    assert frame["PARCEL_ID"].str.match(r"^BE-").all()
    assert not frame.geometry.is_valid.all()  # the bow-tie defect
    truth = pd.read_csv(tiny_world.truth_parcels[2024])
    merged = frame.merge(truth, left_on="PARCEL_ID", right_on="parcel_id")
    assert len(merged) == 40
    assert (merged["declared_crop_code"] == merged["CROP_CODE"]).all()
    assert merged["declared_wrong"].sum() == 4
    assert (merged.loc[merged["declared_wrong"] == 1, "true_crop_code"] != merged.loc[
        merged["declared_wrong"] == 1, "CROP_CODE"]).all()  # fmt: skip
    area = merged.geometry.area / 10_000
    assert np.allclose(area, merged["area_ha"], rtol=0.01)


def test_lut_has_exactly_the_sen4cap_columns(tiny_world: SynthWorld) -> None:
    with tiny_world.lut.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == LUT_COLUMNS
    assert len(rows) - 1 == len(CROPS)
    lut = pd.read_csv(tiny_world.lut)
    assert lut["ori_crop"].is_unique
    assert lut["ctnum"].is_unique
    truth = pd.read_csv(tiny_world.truth_parcels[2024])
    assert set(truth["declared_crop_code"]) <= set(lut["ori_crop"])


def test_configs_parse_like_the_sen4cap_samples(tiny_world: SynthWorld) -> None:
    l4b = configparser.ConfigParser()
    l4b.read(tiny_world.l4b_configs[2024], encoding="utf-8")
    assert l4b["S2_processing"]["decreasing_abs_th"] == "0.12"
    assert l4b["S1_processing"]["pfa"] == "3.0e-8"
    ctnums = [int(v) for v in l4b["GENERAL_CONFIG"]["CTNUM_FILTER"].split(",")]
    lut = pd.read_csv(tiny_world.lut)
    assert set(ctnums) == set(lut.loc[(lut["pgrass"] == 1) | (lut["tgrass"] == 1), "ctnum"])
    codes = [c.strip() for c in l4b["compliancy"]["crop_codes"].split(",")]
    assert len(codes) == len(l4b["compliancy"]["crop_time_intervals"].split("),"))
    l4c = configparser.ConfigParser()
    l4c.read(tiny_world.l4c_configs[2024], encoding="utf-8")
    assert l4c["DEFAULT_TIME_SERIES_ANALYSIS_PARAMS"]["OPTTHRVEGCYCLE"] == "350"
    assert l4c["CC_TIME_SERIES_ANALYSIS_PARAMS"]["CC_CATCHPERIODSTART"] == '"2024-07-15"'
    assert tiny_world.l4c_configs[2024].name == "S4C_L4C_Config_BEL_2024.cfg"


def test_practice_csvs_have_sen4cap_header(tiny_world: SynthWorld) -> None:
    assert set(tiny_world.practices[2024]) == {"CC", "FL", "NFC", "NA"}
    ids = set(pd.read_csv(tiny_world.truth_parcels[2024])["parcel_id"])
    for practice, path in tiny_world.practices[2024].items():
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert tuple(frame.columns) == PRACTICE_COLUMNS
        assert set(frame["FIELD_ID"]) <= ids
        if practice == "NA":
            assert len(frame) > 0
            assert (frame["P_START"] == "NA").all()
        for column in ("VEG_START", "H_START", "H_END"):
            assert frame[column].str.match(r"^\d{4}-\d{2}-\d{2}$").all()


def test_truth_tables(tiny_world: SynthWorld) -> None:
    parcels = pd.read_csv(tiny_world.truth_parcels[2024])
    assert len(parcels) == 40
    assert parcels["parcel_id"].is_unique
    assert set(parcels["cover_class"]) <= {c.value for c in CoverClass}
    assert (parcels["s2_pixels"] > 0).all()
    events = pd.read_csv(tiny_world.truth_events)
    assert set(events["event"]) <= {
        "sowing", "emergence", "harvest", "mowing", "ploughing", "catch_crop_sowing",
        "catch_crop_destruction", "grazing",
    }  # fmt: skip
    assert {"sowing", "harvest", "mowing", "ploughing"} <= set(events["event"])
    mown = parcels[parcels["n_mowings"] > 0]
    for _, row in mown.iterrows():
        cuts = events[(events["parcel_id"] == row["parcel_id"]) & (events["event"] == "mowing")]
        assert len(cuts) == row["n_mowings"]
    bare = pd.read_csv(tiny_world.truth_bare_soil[2024])
    assert set(bare["cover"]) == {"bare_soil", "residue"}
    assert (bare["days"] >= 5).all()
    signals = pd.read_parquet(tiny_world.truth_signals[2024])
    assert len(signals) == 40 * tiny_world.s2_products
    assert signals["clear_fraction"].between(0, 1).all()


def test_same_seed_same_world(tiny_world: SynthWorld, tmp_path: Path) -> None:
    again = generate_world(
        tmp_path / "again",
        seed=3,
        wrong_declarations=0.1,
        defective_parcels=3,
        sentinel1=False,
        **TINY,  # type: ignore[arg-type]
    )
    names = (
        "truth/parcels_2024.csv",
        "truth/events.csv",
        "truth/bare_soil_2024.csv",
        "lut.csv",
        "declarations/declarations_2024.zip",
        "practices/2024/L4C_CC_2024.csv",
    )
    for name in names:
        assert (again.root / name).read_bytes() == (tiny_world.root / name).read_bytes(), name
    assert tiny_world.s2_dir is not None
    assert again.s2_dir is not None
    first = sorted(tiny_world.s2_dir.iterdir())[2]
    band = next(first.rglob("*_B04_10m.*")).relative_to(first)
    with rasterio.open(first / band) as a, rasterio.open(again.s2_dir / first.name / band) as b:
        assert np.array_equal(a.read(1), b.read(1))
    other = build_world_model(parcels=40, window_km=1.2, seed=4, sentinel1=False)
    assert [s.crop.code for s in other.years[0].seasons] != [
        int(c) for c in pd.read_csv(tiny_world.truth_parcels[2024])["true_crop_code"]
    ]


# ------------------------------------------------------------------------------------------
# Bad input and CLI


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"parcels": 0}, "parcels"),
        ({"years": 0}, "years"),
        ({"parcels": 5000, "window_km": 1.2}, "parcels"),
        ({"tile": "99ZZZ"}, "99ZZZ"),
        ({"window_km": 0.0}, "window_km"),
        ({"wrong_declarations": 1.5}, "wrong_declarations"),
        ({"s1_repeat_days": 7}, "s1_repeat_days"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict[str, object], word: str) -> None:
    arguments: dict[str, object] = {**TINY, **kwargs}
    with pytest.raises(InputError, match=word):
        generate_world(tmp_path / "w", **arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "w").exists()


def test_non_empty_folder_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "w"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="overwrite"):
        generate_world(out, sentinel1=False, **TINY)  # type: ignore[arg-type]
    world = generate_world(out, sentinel1=False, overwrite=True, **TINY)  # type: ignore[arg-type]
    assert not (out / "keep.txt").exists()
    assert world.s1_dir is None
    assert (out / "world.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["w"]


@pytest.fixture
def app() -> Typer:
    from capmon.cli.synth import register

    application = Typer()
    register(application)

    @application.callback()
    def _root() -> None:
        """Group so that the sub-command name is required."""

    return application


def test_cli_generates_and_reports_errors(app: Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        [
            "synth",
            str(out),
            "--parcels",
            "30",
            "--window-km",
            "1.2",
            "--no-s1",
            "--format",
            "cog",
            "--seed",
            "9",
            "--revisit-days",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Sentinel-2 products" in result.output
    assert SynthWorld.load(out).parcel_counts == {2024: 30}
    bad = runner.invoke(app, ["synth", str(out), "--parcels", "30", "--window-km", "1.2"])
    assert bad.exit_code == 2
    assert "overwrite" in bad.output
