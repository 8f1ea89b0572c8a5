"""The calibrated synthetic world is as rough as the real series it was calibrated on.

Each test measures one figure of docs/synthetic-vs-real.md on a small world (the canopy
states, the renderers, no files) and checks it falls in the real range, where the clean
world (the generator before its calibration) did not.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import pytest

from capmon.errors import InputError
from capmon.synth import WorldModel, build_world_model
from capmon.synth.clouds import SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM, residual_haze, scene_cloud_cover
from capmon.synth.realism import CALIBRATED, CLEAN, PROFILES, Realism, realism_profile
from capmon.synth.render import N_BACKGROUND, cumulative_change, render_s2
from capmon.synth.sar import coherence, sigma0
from capmon.synth.seeding import stream
from capmon.synth.spectra import mixed_ndvi, ndvi
from capmon.synth.world import _s1_unit_noise, s2_dates

WORLD = {"parcels": 160, "window_km": 2.8, "seed": 2}


@pytest.fixture(scope="module")
def calibrated() -> WorldModel:
    return build_world_model(**WORLD)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clean() -> WorldModel:
    return build_world_model(realism="clean", **WORLD)  # type: ignore[arg-type]


def _grass(model: WorldModel) -> list[int]:
    return [k for k, s in enumerate(model.years[0].seasons) if s.crop.is_grass]


def _ndvi(model: WorldModel, k: int) -> np.ndarray:
    states = model.years[0].states
    unit = N_BACKGROUND + k
    out: np.ndarray = mixed_ndvi(states.green[unit].astype(float), states.dry[unit].astype(float))
    return out


def _cut_drops(model: WorldModel) -> list[float]:
    """Highest NDVI of the 30 days before a cut minus the NDVI 5 days after it."""
    states = model.years[0].states
    drops = []
    for k in _grass(model):
        series = _ndvi(model, k)
        for cut in model.years[0].seasons[k].plan.mowings:
            i = states.index(cut)
            drops.append(float(series[i - 30 : i].max() - series[i + 5]))
    return drops


def test_the_default_world_is_the_calibrated_one(calibrated: WorldModel) -> None:
    assert calibrated.realism is CALIBRATED
    assert realism_profile("clean") is CLEAN
    assert set(PROFILES) == {"calibrated", "clean"}
    with pytest.raises(InputError, match="realism must be one of calibrated, clean"):
        realism_profile("smooth")
    with pytest.raises(dataclasses.FrozenInstanceError):
        CALIBRATED.haze_mean = 0.0  # type: ignore[misc]


def test_cuts_are_as_deep_as_real_ones(calibrated: WorldModel, clean: WorldModel) -> None:
    # real cut NDVI drop (GMD plots): 10 % / median / 90 % = 0.14 / 0.28 / 0.44
    drops = _cut_drops(calibrated)
    assert len(drops) >= 20
    assert 0.2 <= float(np.median(drops)) <= 0.42
    assert float(np.median(_cut_drops(clean))) < 0.14  # the old, too shallow cuts


def test_grass_senesces_in_autumn(calibrated: WorldModel, clean: WorldModel) -> None:
    # real autumn fall (July-August highest NDVI minus October-November mean): median 0.10
    def falls(model: WorldModel) -> list[float]:
        states = model.years[0].states
        jul, sep = states.index(date(2024, 7, 1)), states.index(date(2024, 9, 1))
        octo, dec = states.index(date(2024, 10, 1)), states.index(date(2024, 12, 1))
        return [
            float(s[jul:sep].max() - s[octo:dec].mean())
            for s in (_ndvi(model, k) for k in _grass(model))
        ]

    assert float(np.median(falls(calibrated))) > 0.05
    assert float(np.quantile(falls(calibrated), 0.9)) > 0.12
    assert float(np.median(falls(clean))) < 0.03


def test_grazing_is_in_the_truth_and_takes_grass_down(calibrated: WorldModel) -> None:
    seasons = calibrated.years[0].seasons
    grazed = [
        k for k, s in enumerate(seasons)
        if any(e.kind.value == "grazing" for e in s.plan.events)
    ]  # fmt: skip
    assert grazed
    states = calibrated.years[0].states
    losses = []
    for k in grazed:
        for event in seasons[k].plan.events:
            if event.kind.value == "grazing" and event.day < date(2024, 10, 1):
                i = states.index(event.day)
                green = states.green[N_BACKGROUND + k]
                losses.append(float(green[i - 1] - green[i + 7]))
    assert float(np.median(losses)) > 0.03


def test_same_date_anomalies_drop_every_parcel_unflagged(calibrated: WorldModel) -> None:
    ym = calibrated.years[0]
    shape = ym.s2_scene.grid.shape
    dates = s2_dates(2024, 5)
    levels = []
    for day in dates:
        haze = residual_haze(stream(calibrated.seed, "haze", 2024, day.toordinal()), shape,
                             CALIBRATED)  # fmt: skip
        assert haze is not None
        levels.append(float(haze.mean()))
    # real: the median plot drops by more than 0.1 on 3.6 % of dates (0-8 % per season)
    anomalies = [d for d, level in zip(dates, levels, strict=True) if level > 0.035]
    assert 1 <= len(anomalies) <= 0.15 * len(dates)
    assert residual_haze(np.random.default_rng(0), shape, CLEAN) is None
    day = dates[int(np.argmax(levels))]
    haze = residual_haze(stream(calibrated.seed, "haze", 2024, day.toordinal()), shape, CALIBRATED)
    units = ym.s2_scene.units.ravel()
    n = len(ym.unit_substrate)

    def parcel_ndvi(veil: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        refl, scl, _sky = render_s2(ym.s2_scene, ym.states, day, 0.4, 0.0, 0.0, (40.0, 160.0),
                                    np.random.default_rng(1), veil)  # fmt: skip
        image = ndvi(refl["B04"], refl["B08"]).ravel()
        means = np.bincount(units, image, n) / np.maximum(np.bincount(units, minlength=n), 1)
        return means[N_BACKGROUND : N_BACKGROUND + len(ym.seasons)], scl

    clear, _ = parcel_ndvi(None)
    hazy, scl = parcel_ndvi(haze)
    vegetated = clear > 0.5
    assert float(np.median((clear - hazy)[vegetated])) > 0.1
    assert not np.isin(scl, (SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH)).any()  # no mask sees it


def test_fewer_clear_scenes_than_the_clean_world() -> None:
    def clear_share(profile: Realism) -> float:
        covers = [scene_cloud_cover(stream(0, "s2", j), 0.35, profile) for j in range(400)]
        return float(np.mean(np.array(covers) < 0.05))

    assert clear_share(CALIBRATED) < clear_share(CLEAN) - 0.05


def _cut_pairs(model: WorldModel) -> tuple[list[float], list[float]]:
    """Expected (noise-free) VH coherence and backscatter change of each cut: the 12-day pairs
    starting 0-11 days after it minus the pair ending just before it; the backscatter after
    minus before (sigma0 dB)."""
    ym = model.years[0]
    states = ym.states
    change = cumulative_change(states)
    soil = np.zeros(1, dtype=np.int8)
    coherence_changes, vh_changes = [], []

    def gamma(k: int, first: date) -> float:
        i1, i2 = states.index(first), states.index(first + timedelta(12))
        unit = N_BACKGROUND + k
        pair = np.exp(change[unit : unit + 1, i2] - change[unit : unit + 1, i1])
        value = coherence(states.biomass[unit : unit + 1, i1].astype(float),
                          states.biomass[unit : unit + 1, i2].astype(float), 12, pair, 0.0,
                          soil, "VH")  # fmt: skip
        return float(value[0])

    def vh(k: int, day: date) -> float:
        unit, i = N_BACKGROUND + k, states.index(day)
        biomass = states.biomass[unit : unit + 1, i].astype(float)
        rough = states.rough[unit : unit + 1, i].astype(float)
        value = sigma0(biomass, rough, 0.4, soil, 38.0, "VH")
        return float(10 * np.log10(value[0]))

    for k in _grass(model):
        for cut in ym.seasons[k].plan.mowings:
            before = gamma(k, cut - timedelta(14))
            after = [gamma(k, cut + timedelta(d)) for d in range(12)]
            coherence_changes.append(float(np.mean(after)) - before)
            vh_changes.append(vh(k, cut + timedelta(4)) - vh(k, cut - timedelta(4)))
    return coherence_changes, vh_changes


def test_radar_says_little_about_a_cut(calibrated: WorldModel, clean: WorldModel) -> None:
    # real: VH coherence after a cut -0.18 / +0.01 / +0.19, VH backscatter -0.2 dB (AMP dB,
    # half the sigma0 dB) median; the clean world: coherence +0.14, VH always about -1 dB
    coherence_changes, vh_changes = _cut_pairs(calibrated)
    assert abs(float(np.median(coherence_changes))) < 0.06
    assert float(np.median(vh_changes)) > -1.2
    old_coherence, old_vh = _cut_pairs(clean)
    assert float(np.median(old_coherence)) > 0.08
    assert float(np.median(old_vh)) < -1.2


def test_radar_has_per_parcel_noise() -> None:
    rng = stream(0, "s1-units", 2024, 88, 1)
    noise_db, noise_gamma = _s1_unit_noise(rng, 2000, CALIBRATED)
    assert noise_db is not None
    assert noise_gamma is not None
    # real VH: successive differences spread 1.9 AMP dB = 3.8 sigma0 dB, coherence 0.18
    assert 2.0 < float(np.std(noise_db)) < 3.5
    assert 0.08 < float(np.std(noise_gamma)) < 0.15
    assert _s1_unit_noise(rng, 10, CLEAN) == (None, None)


def test_same_seed_same_rough_world(calibrated: WorldModel) -> None:
    again = build_world_model(**WORLD)  # type: ignore[arg-type]
    for name in ("green", "dry", "biomass", "disturbance"):
        assert np.array_equal(getattr(again.years[0].states, name),
                              getattr(calibrated.years[0].states, name)), name  # fmt: skip
    shape = calibrated.years[0].s2_scene.grid.shape
    day = date(2024, 6, 1).toordinal()
    first = residual_haze(stream(2, "haze", 2024, day), shape, CALIBRATED)
    second = residual_haze(stream(2, "haze", 2024, day), shape, CALIBRATED)
    assert first is not None
    assert second is not None
    assert np.array_equal(first, second)
