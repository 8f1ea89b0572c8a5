"""From parcels and daily unit states to Sentinel-2 and Sentinel-1 images of one date.

A *unit* is something with one canopy state: the five background covers (verge, road, built-up,
forest, water), every parcel, and the second part of every heterogeneous parcel. Units are
rasterised once per year and grid (10 m UTM for Sentinel-2, 20 m EPSG:3035 for Sentinel-1);
each date then only looks the unit states up by label and adds per-pixel texture and noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import numpy.typing as npt
import pyproj
import rasterio.features
import shapely
from affine import Affine
from shapely.geometry.base import BaseGeometry

from capmon.synth.clouds import Sky, apply_sky, make_sky, scene_classification, smooth_noise
from capmon.synth.landscape import Background, Landscape
from capmon.synth.phenology import UnitStates, grass_potential
from capmon.synth.sar import Polarisation, coherence, coherence_noise, sigma0, speckle
from capmon.synth.spectra import BANDS, Substrate, mix

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]

N_BACKGROUND = len(Background)
BACKGROUND_SUBSTRATE = {
    Background.VERGE: Substrate.SOIL,
    Background.ROAD: Substrate.ASPHALT,
    Background.BUILT: Substrate.ROOF,
    Background.FOREST: Substrate.LITTER,
    Background.WATER: Substrate.WATER,
}


@dataclass(frozen=True)
class UnitShape:
    """A unit's geometry (tile UTM CRS) and label."""

    label: int
    geometry: BaseGeometry


@dataclass(frozen=True)
class Grid:
    """A pixel grid: CRS, transform and shape."""

    epsg: int
    transform: Affine
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


@dataclass(frozen=True)
class Scene:
    """Labels and static per-pixel texture of one grid in one year."""

    grid: Grid
    units: I32
    substrate: npt.NDArray[np.int8]
    vigour: F32
    dryness: F32
    brightness: F32

    @property
    def water(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.substrate == Substrate.WATER)


def s1_grid(landscape: Landscape) -> Grid:
    """The EPSG:3035 20 m grid that covers the window (snapped outward to 20 m)."""
    to_laea = pyproj.Transformer.from_crs(landscape.window.epsg, 3035, always_xy=True)
    west, south, east, north = landscape.window.bounds
    xs, ys = to_laea.transform([west, east, east, west], [south, south, north, north])
    x0, x1 = math.floor(min(xs) / 20) * 20, math.ceil(max(xs) / 20) * 20
    y0, y1 = math.floor(min(ys) / 20) * 20, math.ceil(max(ys) / 20) * 20
    return Grid(
        3035, Affine(20.0, 0.0, x0, 0.0, -20.0, y1), int((y1 - y0) // 20), int((x1 - x0) // 20)
    )


def s2_grid(landscape: Landscape) -> Grid:
    w = landscape.window
    return Grid(w.epsg, w.transform(10), w.width, w.width)


def build_scene(
    landscape: Landscape,
    shapes: list[UnitShape],
    unit_substrate: npt.NDArray[np.int8],
    grid: Grid,
    rng: np.random.Generator,
) -> Scene:
    """Rasterise background and units (pixel centre inside) and draw the static texture."""
    project = _projector(landscape.window.epsg, grid.epsg)
    burn: list[tuple[BaseGeometry, int]] = []
    for kind, geom in landscape.background:
        burn.append((project(geom), int(kind)))
    if not landscape.roads.is_empty:
        burn.append((project(landscape.roads), int(Background.ROAD)))
    burn.extend((project(s.geometry), s.label) for s in shapes)
    units: I32 = rasterio.features.rasterize(
        burn, out_shape=grid.shape, transform=grid.transform, fill=int(Background.VERGE),
        dtype="int32",
    )  # fmt: skip
    scale = 6.0 if grid.epsg != 3035 else 3.0
    vigour = (
        1.0
        + 0.05 * smooth_noise(rng, grid.shape, scale)
        + 0.02 * rng.standard_normal(grid.shape, dtype=np.float32)
    )
    dryness = 1.0 + 0.08 * smooth_noise(rng, grid.shape, scale)
    brightness = 1.0 + 0.05 * smooth_noise(rng, grid.shape, 5 * scale)
    return Scene(
        grid, units, unit_substrate[units], vigour.astype(np.float32),
        dryness.astype(np.float32), brightness.astype(np.float32),
    )  # fmt: skip


def _projector(epsg_from: int, epsg_to: int) -> _Project:
    return _Project(epsg_from, epsg_to)


class _Project:
    def __init__(self, epsg_from: int, epsg_to: int) -> None:
        self._t = (
            None
            if epsg_from == epsg_to
            else pyproj.Transformer.from_crs(epsg_from, epsg_to, always_xy=True)
        )

    def __call__(self, geom: BaseGeometry) -> BaseGeometry:
        if self._t is None:
            return geom
        t = self._t
        return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def background_states(start: date, days: int) -> dict[str, F32]:
    """Daily states (5 background units x days) of verge, road, built-up, forest and water."""
    doy = np.array(
        [date.fromordinal(start.toordinal() + i).timetuple().tm_yday for i in range(days)],
        dtype=float,
    )
    gpot = grass_potential(doy)

    def smooth(a: float, b: float) -> npt.NDArray[np.float64]:
        t = np.clip((doy - a) / (b - a), 0.0, 1.0)
        return t * t * (3 - 2 * t)

    leaf = smooth(105, 140) - smooth(285, 325)
    zero = np.zeros(days)
    green = np.stack([0.8 * gpot, zero + 0.02, 0.3 * gpot, 0.25 + 0.7 * leaf, zero])
    dry = np.stack(
        [zero + 0.06, zero, zero + 0.05, np.minimum(0.7 - 0.6 * leaf, 1 - green[3]), zero]
    )
    biomass = np.stack([zero + 0.7, zero, zero + 0.3, 5.0 + 3.0 * leaf, zero])
    rough = np.stack([zero + 0.3, zero, zero, zero + 0.3, zero])
    return {
        "green": green.astype(np.float32),
        "dry": dry.astype(np.float32),
        "stand": np.zeros((5, days), np.float32),
        "flower": np.zeros((5, days), np.float32),
        "rough": rough.astype(np.float32),
        "biomass": biomass.astype(np.float32),
        "disturbance": np.zeros((5, days), np.float32),
    }


def render_s2(
    scene: Scene,
    states: UnitStates,
    day: date,
    moisture: float,
    snow_depth: float,
    cover: float,
    sun: tuple[float, float],
    rng: np.random.Generator,
    haze: F32 | None = None,
) -> tuple[dict[str, F32], npt.NDArray[np.uint8], Sky]:
    """Reflectances (10 m), SCL (20 m) and sky of one Sentinel-2 scene; ``haze`` is the
    residual haze no mask flags (:func:`capmon.synth.clouds.residual_haze`)."""
    i = states.index(day)
    u = scene.units
    green = np.clip(states.green[:, i][u] * scene.vigour, 0.0, 0.985)
    dry = np.minimum(states.dry[:, i][u] * scene.dryness, 1.0 - green)
    flower = states.flower[:, i][u]
    surface = mix(green, dry, flower, scene.substrate, moisture, scene.brightness)
    sky = make_sky(rng, scene.grid.shape, cover, sun[0], sun[1], snow_depth, 1.0 - green)
    if haze is not None:
        sky = replace(sky, haze=haze)
    observed = apply_sky(surface, sky)
    noise = rng.standard_normal((len(BANDS), *scene.grid.shape), dtype=np.float32)
    for b, band in enumerate(BANDS):
        value = observed[band]
        observed[band] = np.clip(value + noise[b] * (0.012 * value + 0.002), 1e-4, 1.5)
    scl = scene_classification(observed, sky, scene.water, rng)
    return observed, scl, sky


def render_sigma0(
    scene: Scene,
    states: UnitStates,
    day: date,
    moisture: float,
    snow_depth: float,
    unit_substrate: npt.NDArray[np.int8],
    unit_offset_db: npt.NDArray[np.float64],
    incidence: float,
    pol: Polarisation,
    rng: np.random.Generator,
    unit_noise_db: npt.NDArray[np.float64] | None = None,
) -> F32:
    """Linear σ⁰ with speckle on the Sentinel-1 grid; ``unit_noise_db`` is a per-unit change
    of the acquisition (moisture, wind, the speckle of small real parcels)."""
    i = states.index(day)
    unit_sigma = sigma0(
        states.biomass[:, i].astype(float), states.rough[:, i].astype(float), moisture,
        unit_substrate, incidence, pol, snow_depth,
    )  # fmt: skip
    unit_sigma = unit_sigma * 10.0 ** (unit_offset_db / 10.0)
    if unit_noise_db is not None:
        unit_sigma = unit_sigma * 10.0 ** (unit_noise_db / 10.0)
    pixels = unit_sigma.astype(np.float32)[scene.units] * scene.brightness
    return np.maximum(speckle(rng, pixels), np.float32(1e-5))


def render_coherence(
    scene: Scene,
    states: UnitStates,
    cumulative_change: npt.NDArray[np.float64],
    first: date,
    second: date,
    rain_mm: float,
    unit_substrate: npt.NDArray[np.int8],
    pol: Polarisation,
    rng: np.random.Generator,
    unit_noise: npt.NDArray[np.float64] | None = None,
) -> F32:
    """Coherence of the pair (first, second) on the Sentinel-1 grid; ``unit_noise`` is a
    per-unit change of the pair (wind, dew, the estimation noise of small real parcels)."""
    i1, i2 = states.index(first), states.index(second)
    change = np.exp(cumulative_change[:, i2] - cumulative_change[:, i1])
    unit_gamma = coherence(
        states.biomass[:, i1].astype(float), states.biomass[:, i2].astype(float), i2 - i1,
        change, rain_mm, unit_substrate, pol,
    )  # fmt: skip
    if unit_noise is not None:
        unit_gamma = np.clip(unit_gamma + unit_noise, 0.05, 0.95)
    return coherence_noise(rng, unit_gamma.astype(np.float32)[scene.units])


def cumulative_change(states: UnitStates) -> npt.NDArray[np.float64]:
    """Cumulative log of (1 − 0.95·disturbance) per unit and day, for coherence pairs."""
    out: npt.NDArray[np.float64] = np.cumsum(
        np.log1p(-0.95 * states.disturbance.astype(float)), axis=1
    )
    return out


def solar_position(when_utc: tuple[date, float], lon: float, lat: float) -> tuple[float, float]:
    """(zenith, azimuth) in degrees of the sun at ``when_utc`` = (day, UTC hour) (NOAA formulas)."""
    day, hour = when_utc
    n = day.timetuple().tm_yday
    g = 2 * math.pi / 365.0 * (n - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (
        0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g)
    )  # fmt: skip
    decl = (
        0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g)
    )  # fmt: skip
    true_solar = hour * 60 + eqtime + 4 * lon
    ha = math.radians(true_solar / 4 - 180)
    phi = math.radians(lat)
    cos_z = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zenith = math.degrees(math.acos(max(-1.0, min(1.0, cos_z))))
    az = math.degrees(
        math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi))
    )
    return zenith, (az + 180.0) % 360.0
