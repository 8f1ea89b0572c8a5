"""How rough the synthetic world is: the figures it was calibrated on, in one place.

A world made with :data:`CALIBRATED` (the default of :func:`capmon.synth.generate_world`)
reproduces the distributions measured on real Sentinel series of grassland plots (the GMD
project's Slovak plots in ``../shared/data/mowing_gmd_dev``, 2021-2023: clear S2 NDVI, 12-day
VH coherence, VH backscatter, field-checked cuts; ``benchmarks/synth_vs_real.py``, table in
docs/synthetic-vs-real.md): sparse clear observations, haze that no mask flags (with dates
where every parcel drops), noisy per-parcel NDVI, backscatter and coherence, deep cuts that
recover slowly, autumn senescence, grazing, and radar that says little about a cut.
:data:`CLEAN` is the world as it was before that calibration (smooth, cloud-mask-perfect,
informative radar): only for plumbing tests that must not depend on noise.

Every random draw the calibration adds comes from its own stream (``capmon.synth.seeding``),
so a ``CLEAN`` world is the same as before and the same seed still gives the same world.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Realism:
    """The roughness of a synthetic world (see the module docstring for the sources).

    Shares are fractions 0..1; ranges ``(low, high)`` are drawn uniformly per parcel (per
    cut, per scene) from dedicated random streams.
    """

    name: str
    # --- Sentinel-2 acquisitions ---
    clear_scene_share: float
    """Share of scenes with almost no cloud (the rest: overcast or partly cloudy)."""
    overcast_scene_share: float
    """Share of scenes covered 85-100 %."""
    haze_mean: float
    """Mean opacity of the residual haze of an ordinary scene (thin cloud, aerosol, cloud
    edges) that the cloud masks do not flag; exponential over scenes."""
    haze_spread: float
    """Spatial variability of that haze (relative, blobs of a few hundred metres): what makes
    one parcel's NDVI jump while its neighbour's does not."""
    anomaly_share: float
    """Share of scenes with a scene-wide unflagged haze: dates where every parcel drops."""
    anomaly_haze: tuple[float, float]
    """Opacity range of those anomalies."""
    # --- grassland management and phenology ---
    cut_strength: tuple[float, float]
    """Share of the green cover a cut leaves standing."""
    hay_retention: float
    """Daily share of the cut grass (and other grass litter) still lying on the parcel."""
    regrowth_lag_days: float
    """Days over which regrowth after a cut ramps up to its full rate (0: at once)."""
    autumn_loss: tuple[float, float]
    """Share of the grass's green cover that senesces (turns to standing dead matter) from
    ``autumn_start`` to the end of November, per parcel."""
    autumn_start: tuple[int, int]
    """Day of year when the grass's autumn senescence starts, per parcel."""
    grazed_share: float
    """Share of uncut permanent grassland that is grazed in rotations (and of cut grassland
    grazed after its last cut)."""
    grazing_take: tuple[float, float]
    """Share of the green cover the animals eat over one grazing round of a week."""
    # --- Sentinel-1 ---
    backscatter_noise_db: float
    """Per parcel and acquisition backscatter noise (dB, sd): moisture, wind, speckle of
    small parcels."""
    backscatter_scene_db: float
    """Per acquisition backscatter change shared by the whole scene (dB, sd)."""
    coherence_noise: float
    """Per parcel and pair coherence noise (sd)."""
    coherence_scene: float
    """Per pair coherence change shared by the whole scene (sd): wind, dew, frost."""
    haymaking_days: int
    """Days after a cut on which the swath is turned, raked and baled."""
    haymaking_disturbance: float
    """Surface change (0..1) of each haymaking day, decorrelating the pairs that span it."""
    hay_water_kg: float
    """Radar-visible water content (kg/m²) of lying cut grass per unit of cover."""
    stubble_height: float
    """Relative height (0..1, 1 = full sward) of the grass left by a cut: how much of the
    radar's vegetation volume stays."""


CLEAN = Realism(
    name="clean",
    clear_scene_share=0.37,
    overcast_scene_share=0.23,
    haze_mean=0.0,
    haze_spread=0.0,
    anomaly_share=0.0,
    anomaly_haze=(0.0, 0.0),
    cut_strength=(0.55, 0.7),
    hay_retention=0.8,
    regrowth_lag_days=0.0,
    autumn_loss=(0.0, 0.0),
    autumn_start=(300, 300),
    grazed_share=0.0,
    grazing_take=(0.0, 0.0),
    backscatter_noise_db=0.0,
    backscatter_scene_db=0.0,
    coherence_noise=0.0,
    coherence_scene=0.0,
    haymaking_days=0,
    haymaking_disturbance=0.0,
    hay_water_kg=0.0,
    stubble_height=0.12,
)
"""The generator before its calibration on real series: smooth and informative."""

CALIBRATED = Realism(
    name="calibrated",
    # Figures as "10 % / median / 90 %" of the real GMD plots (mowing_gmd_dev, 2021-2023, 155
    # plot-years) -> the quick demo world with this profile (docs/synthetic-vs-real.md).
    # Clear NDVI observations per plot-season, March-November: real 18 / 29 / 38 -> 26 / 31 /
    # 37 (clean world 34 / 38 / 43).
    clear_scene_share=0.25,
    overcast_scene_share=0.40,
    # NDVI noise (1.4826 MAD of successive differences): real 0.037 / 0.058 / 0.092 -> 0.044 /
    # 0.066 / 0.100 (clean 0.015 / 0.024 / 0.037); the rest of the cuts' drops, grazing and
    # senescence come from the haze varying between parcels.
    haze_mean=0.006,
    haze_spread=0.8,
    # Dates where the median plot drops by more than 0.1: real 3.6 % (0-8 % per season) ->
    # 3.7 % (clean 0).
    anomaly_share=0.05,
    anomaly_haze=(0.05, 0.1),
    # Cut NDVI drop: real 0.14 / 0.28 / 0.44 -> 0.15 / 0.30 / 0.41 (clean 0.05 / 0.12 / 0.18);
    # regrowth 15-35 days after: real -0.02 / 0.14 / 0.31 -> 0.09 / 0.21 / 0.33 (clean 0.06 /
    # 0.12 / 0.19: slower would starve the synthetic Belgian meadows, mown up to 4 times).
    cut_strength=(0.2, 0.7),
    hay_retention=0.9,
    regrowth_lag_days=60.0,
    # Autumn fall (July-August highest NDVI minus October-November mean): real -0.02 / 0.10 /
    # 0.28 -> 0.02 / 0.09 / 0.19 (clean 0.01 / 0.02 / 0.04).
    autumn_loss=(0.05, 0.9),
    autumn_start=(245, 285),
    # Grazing: 89 of the 123 GMD plots are grazed (GrazingPre); their NDVI noise is lower than
    # that of mown plots (0.047 vs 0.059): grazing takes the grass down over days, not at once.
    grazed_share=0.7,
    grazing_take=(0.1, 0.3),
    # VH backscatter of one orbit in the MDB's "AMP dB" (half the sigma0 dB; the noise set here
    # is in sigma0 dB): successive-difference spread real 1.3 / 1.9 / 2.5 -> 1.3 / 1.8 / 2.6
    # (clean 0.14 / 0.25 / 0.34).
    backscatter_noise_db=2.6,
    backscatter_scene_db=0.8,
    # VH 12-day coherence spread: real 0.14 / 0.18 / 0.25 -> 0.11 / 0.18 / 0.26 (clean 0.03 /
    # 0.06 / 0.09); summer level real 0.24 / 0.29 / 0.38 -> 0.23 / 0.29 / 0.34.
    coherence_noise=0.095,
    coherence_scene=0.04,
    # After a cut, coherence change: real -0.18 / +0.01 / +0.19 -> -0.18 / 0.00 / +0.18 (clean
    # +0.04 / +0.14 / +0.23); VH change (AMP dB): real -2.2 / -0.2 / +1.6 -> -2.4 / -0.4 / +1.9
    # (clean -1.5 / -1.1 / -0.6): stubble, swath and haymaking keep radar where it was.
    haymaking_days=6,
    haymaking_disturbance=0.3,
    hay_water_kg=2.0,
    stubble_height=0.6,
)
"""Calibrated on the real GMD grassland series (docs/synthetic-vs-real.md); the default."""

PROFILES: dict[str, Realism] = {profile.name: profile for profile in (CALIBRATED, CLEAN)}


def realism_profile(name: str | Realism) -> Realism:
    """The profile called ``name`` (``calibrated`` or ``clean``), or ``name`` itself."""
    from capmon.errors import InputError

    if isinstance(name, Realism):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(f"realism must be one of {', '.join(PROFILES)}, not {name!r}") from None
