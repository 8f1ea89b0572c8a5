"""Daily canopy state of every simulated unit (a parcel, or the second part of a parcel).

A small state machine runs day by day, vectorised over all units. Each unit is in one mode
(bare soil, stubble/residue, crop, catch crop, grass, fallow); field operations switch modes
and change the state at once (a cut removes part of the green cover and leaves it lying,
ploughing buries the residue and roughens the soil...). Between operations the state follows
growth laws driven by temperature: logistic growth toward the cycle's maximum cover, winter
dormancy, senescence that turns green cover into standing dry matter, regrowth of grass toward
a seasonal potential after a cut, grazing rounds, the grass's autumn senescence, slow decay of
residues. How deep cuts go, how fast grass regrows, how long hay lies and how the haymaking
days disturb the surface come from the world's :class:`~capmon.synth.realism.Realism`.

State per unit and day (fractions of the ground):
``green`` green vegetation cover, ``dry`` senescent vegetation or residue (standing or lying),
``stand`` the standing part of ``dry``, ``flower`` the share of the green cover in yellow
flowers (rapeseed), ``rough`` soil roughness 0..1 (1 just after ploughing), ``biomass`` the
vegetation water content in kg/m² seen by the radar, ``disturbance`` the strength (0..1) of
the surface change made on that day, which decorrelates radar coherence pairs spanning it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from capmon.synth.crops import CROPS_BY_CODE, CropKind, CropType
from capmon.synth.management import Cycle, CycleKind, EventKind, FieldEvent
from capmon.synth.realism import CALIBRATED, Realism
from capmon.synth.weather import Weather

F32 = npt.NDArray[np.float32]

BARE, STUBBLE, CROP, CATCH, GRASS, FALLOW = range(6)
NEVER = 10**7

DISTURBANCE: dict[EventKind, float] = {
    EventKind.PLOUGHING: 0.9,
    EventKind.SOWING: 0.75,
    EventKind.HARVEST: 0.7,
    EventKind.MOWING: 0.5,
    EventKind.CATCH_CROP_SOWING: 0.75,
    EventKind.CATCH_CROP_DESTRUCTION: 0.6,
}


@dataclass(frozen=True)
class UnitStates:
    """Daily state arrays of shape (units, days) from ``start``."""

    start: date
    green: F32
    dry: F32
    stand: F32
    flower: F32
    rough: F32
    biomass: F32
    disturbance: F32

    def index(self, day: date) -> int:
        return (day - self.start).days

    @property
    def bare(self) -> F32:
        out: F32 = np.clip(1.0 - self.green - self.dry, 0.0, 1.0).astype(np.float32)
        return out


def grass_potential(doy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Seasonal potential green cover of grass (1 in late spring, about 0.7 in winter)."""

    def smooth(x: npt.NDArray[np.float64], a: float, b: float) -> npt.NDArray[np.float64]:
        t = np.clip((x - a) / (b - a), 0.0, 1.0)
        return t * t * (3 - 2 * t)

    return 0.7 + 0.3 * (smooth(doy, 55.0, 125.0) - smooth(doy, 290.0, 350.0))


@dataclass
class _Params:
    gmax: npt.NDArray[np.float64]
    rate: npt.NDArray[np.float64]
    bmax: npt.NDArray[np.float64]
    emergence: npt.NDArray[np.int64]
    autumn_cap: npt.NDArray[np.float64]
    spring: npt.NDArray[np.int64]
    senescence: npt.NDArray[np.int64]
    sen_days: npt.NDArray[np.float64]
    stubble: npt.NDArray[np.float64]
    harvest_rough: npt.NDArray[np.float64]
    ridged: npt.NDArray[np.bool_]
    flower_start: npt.NDArray[np.int64]
    flower_end: npt.NDArray[np.int64]
    frost: npt.NDArray[np.bool_]

    @classmethod
    def empty(cls, n: int) -> _Params:
        def f(v: float) -> npt.NDArray[np.float64]:
            return np.full(n, v, dtype=np.float64)

        def i(v: int) -> npt.NDArray[np.int64]:
            return np.full(n, v, dtype=np.int64)

        return cls(
            f(0.9), f(0.1), f(1.0), i(-NEVER), f(0.3), i(-NEVER), i(NEVER), f(25.0), f(0.1),
            f(0.4), np.zeros(n, bool), i(NEVER), i(NEVER), np.zeros(n, bool),
        )  # fmt: skip

    def set(self, k: int, cycle: Cycle, start: date) -> None:
        def idx(d: date | None, default: int) -> int:
            return default if d is None else (d - start).days

        self.gmax[k] = max(cycle.gmax, 0.02)
        self.rate[k] = cycle.rate
        self.bmax[k] = cycle.bmax
        self.emergence[k] = idx(cycle.emergence, -NEVER)
        self.autumn_cap[k] = max(cycle.autumn_cap, 0.02)
        self.spring[k] = idx(cycle.spring, -NEVER)
        self.senescence[k] = idx(cycle.senescence, NEVER)
        self.sen_days[k] = cycle.senescence_days
        self.stubble[k] = cycle.stubble
        self.harvest_rough[k] = cycle.harvest_roughness
        self.ridged[k] = cycle.ridged
        self.flower_start[k] = idx(cycle.flowering[0] if cycle.flowering else None, NEVER)
        self.flower_end[k] = idx(cycle.flowering[1] if cycle.flowering else None, NEVER)
        self.frost[k] = cycle.frost_sensitive


_MODE_OF_CYCLE = {
    CycleKind.CROP: CROP,
    CycleKind.GRASS: GRASS,
    CycleKind.CATCH: CATCH,
    CycleKind.FALLOW: FALLOW,
}


def _initial_mode(crop: CropType) -> tuple[int, float, float]:
    """(mode, green, dry) of a unit on the first simulated day, from its crop of that year."""
    if crop.kind is CropKind.GRASS:
        return GRASS, 0.6, 0.05
    if crop.kind is CropKind.FALLOW:
        return FALLOW, 0.4, 0.2
    if crop.kind is CropKind.WINTER:
        return CROP, 0.2, 0.05
    return STUBBLE, 0.05, 0.3


def simulate_units(
    unit_events: list[list[FieldEvent]],
    unit_first_crop: list[int],
    weather: Weather,
    start: date,
    end: date,
    keep_from: date,
    realism: Realism = CALIBRATED,
) -> UnitStates:
    """Run the daily model from ``start`` to ``end`` (inclusive) and keep days from ``keep_from``.

    ``unit_events`` are each unit's operations (any order; those before ``start`` only set the
    mode and the growth parameters); ``unit_first_crop`` is the crop code of each unit's crop
    year that contains ``start``.
    """
    n = len(unit_events)
    days = (end - start).days + 1
    keep0 = (keep_from - start).days
    kept = days - keep0
    p = _Params.empty(n)
    mode = np.empty(n, dtype=np.int64)
    g = np.empty(n)
    dry = np.empty(n)
    for k, code in enumerate(unit_first_crop):
        mode[k], g[k], dry[k] = _initial_mode(CROPS_BY_CODE[code])
    stand = np.zeros(n)
    rough = np.full(n, 0.35)
    height = np.full(n, 0.6)
    by_day: dict[int, list[tuple[int, FieldEvent]]] = {}
    for k, events in enumerate(unit_events):
        for ev in sorted(events, key=lambda e: (e.day, _ORDER[e.kind])):
            i = (ev.day - start).days
            if i < 0:
                if ev.cycle is not None:
                    p.set(k, ev.cycle, start)
                    mode[k] = _MODE_OF_CYCLE[ev.cycle.kind]
                elif ev.kind is EventKind.HARVEST:
                    mode[k] = STUBBLE
                elif ev.kind is EventKind.PLOUGHING:
                    mode[k] = BARE
                elif ev.kind is EventKind.CATCH_CROP_DESTRUCTION:
                    mode[k] = STUBBLE
                continue
            if i < days:
                by_day.setdefault(i, []).append((k, ev))

    out = {name: np.zeros((n, kept), dtype=np.float32) for name in _OUTPUTS}
    w0 = weather.index(start)
    growth = weather.growth_factor[w0 : w0 + days]
    temperature = weather.temperature[w0 : w0 + days]
    rain = weather.rain_mm[w0 : w0 + days]
    moisture = weather.soil_moisture[w0 : w0 + days]
    doy = np.array(
        [date.fromordinal(start.toordinal() + i).timetuple().tm_yday for i in range(days)],
        dtype=float,
    )
    gpot = grass_potential(doy)
    disturbance = np.zeros(n)
    since_cut = np.full(n, float(NEVER))
    graze_left = np.zeros(n)
    graze_rate = np.zeros(n)
    sen_start = np.full(n, NEVER, dtype=np.int64)
    sen_end = np.full(n, NEVER, dtype=np.int64)
    sen_loss = np.zeros(n)
    lag = realism.regrowth_lag_days
    for i in range(days):
        disturbance[:] = 0.0
        for k, ev in by_day.get(i, ()):
            disturbance[k] = max(disturbance[k], DISTURBANCE.get(ev.kind, 0.0))
            if ev.kind is EventKind.GRAZING:
                graze_left[k] = 7.0
                graze_rate[k] = 1.0 - (1.0 - min(ev.strength, 0.95)) ** (1.0 / 7.0)
                continue
            if ev.kind is EventKind.AUTUMN_SENESCENCE:
                sen_start[k] = i
                sen_end[k] = i + max(1, ((ev.until or ev.day) - ev.day).days)
                sen_loss[k] = ev.strength
                continue
            _apply(ev, k, mode, g, dry, stand, rough, height, p, start)
            if ev.kind is EventKind.MOWING:
                since_cut[k] = 0.0
                height[k] = realism.stubble_height
        if realism.haymaking_days > 0:
            haymaking = (mode == GRASS) & (since_cut >= 1) & (since_cut <= realism.haymaking_days)
            disturbance[haymaking] = np.maximum(
                disturbance[haymaking], realism.haymaking_disturbance
            )
        t = growth[i]
        cold = temperature[i] < -2.0
        # Crops and catch crops: logistic growth to the cap, then senescence to standing straw.
        is_crop = (mode == CROP) | (mode == CATCH)
        emerged = is_crop & (i >= p.emergence)
        starting = emerged & (g < 0.03) & (i - p.emergence < 3)
        g[starting] = 0.03
        autumn = i < p.spring
        cap = np.where(autumn, p.autumn_cap, p.gmax)
        rate = np.where(autumn, 2.0 * p.rate * max(t, 0.3), p.rate * t)
        growing = emerged & (i < p.senescence)
        dg = np.where(g < cap, rate * g * (1.0 - g / cap), -0.01 * (g - cap))
        g = np.where(growing, g + dg, g)
        senescing = emerged & (i >= p.senescence)
        loss = np.where(senescing, g * np.minimum(1.0, 4.0 / p.sen_days), 0.0)
        if cold:
            loss = loss + np.where((mode == CATCH) & p.frost, 0.08 * g, 0.0)
            loss = loss + np.where(mode == CROP, 0.004 * g, 0.0)
        g = g - loss
        dry = dry + 0.95 * loss
        stand = stand + np.where(mode == CROP, 0.95 * loss, 0.0)
        dry = np.where(is_crop & ~emerged, dry * (1 - 1 / 80), dry)
        # Grass: relaxation toward the seasonal potential (slow for a while after a cut, lower
        # as the grass senesces in autumn); cut grass dries and is removed; animals graze.
        is_grass = mode == GRASS
        grass_on = is_grass & (i >= p.emergence)
        g[grass_on & (g < 0.03)] = 0.03
        ageing = sen_loss * _smoothstep((i - sen_start) / np.maximum(sen_end - sen_start, 1))
        ageing[i > sen_end + 31] = 0.0  # the new year's grass starts afresh
        gcap = p.gmax * gpot[i] * (1.0 - ageing)
        rate = p.rate if lag <= 0 else p.rate * np.clip(since_cut / lag, 0.05, 1.0)
        dg = np.where(g < gcap, rate * t * (gcap - g), 0.03 * (gcap - g))
        if moisture[i] < 0.15 and 180 <= doy[i] <= 250:
            dg = dg - 0.004 * g
        g = np.where(grass_on, g + dg, g)
        grazing = is_grass & (graze_left > 0)
        g = np.where(grazing, g * (1.0 - graze_rate), g)
        height = np.where(grazing, height * (1.0 - graze_rate), height)
        graze_left = np.maximum(graze_left - 1.0, 0.0)
        litter = 0.03 + 0.7 * ageing * p.gmax * gpot[i]
        hay = np.where(is_grass, np.maximum(dry - litter, 0.0), 0.0)
        dry = np.where(is_grass, litter + (dry - litter) * realism.hay_retention, dry)
        height = np.where(is_grass, height + 0.035 * t * (1.0 - height), height)
        since_cut += 1.0
        # Fallow: spontaneous vegetation that partly dries in summer.
        is_fallow = mode == FALLOW
        fcap = p.gmax * gpot[i]
        dg = np.where(g < fcap, p.rate * t * (fcap - g), 0.02 * (fcap - g))
        g = np.where(is_fallow, g + dg, g)
        if 185 <= doy[i] <= 260:
            floss = np.where(is_fallow, 0.006 * g, 0.0)
            g, dry = g - floss, dry + floss
        dry = np.where(is_fallow, dry * (1 - 1 / 120), dry)
        # Stubble and bare soil: a few volunteers or weeds, residue decays.
        is_stubble = mode == STUBBLE
        is_bare = mode == BARE
        vcap = np.where(is_stubble, 0.12, 0.05) * min(t, 1.0)
        low = is_stubble | is_bare
        g = np.where(low, g + np.where(g < vcap, 0.02 * t, -0.03) * np.abs(vcap - g), g)
        dry = np.where(is_stubble, dry * (1 - 1 / 160), np.where(is_bare, dry * (1 - 1 / 80), dry))
        stand = np.where(low, stand * (1 - 1 / 30), stand)
        # Soil roughness settles with time and rain (potato ridges stay until harvest).
        base = np.where((mode == CROP) & p.ridged, 0.72, 0.3)
        rough = rough + (base - rough) * (1 / 70 + rain[i] / 500)
        np.clip(g, 0.0, 0.985, out=g)
        dry = np.clip(dry, 0.0, 1.0 - g)
        stand = np.minimum(stand, dry)
        j = i - keep0
        if j < 0:
            continue
        flowering = (mode == CROP) & (i >= p.flower_start) & (i <= p.flower_end)
        phase = np.clip((i - p.flower_start) / np.maximum(p.flower_end - p.flower_start, 1), 0, 1)
        out["flower"][:, j] = np.where(flowering, 0.4 * np.sin(math.pi * phase), 0.0)
        out["green"][:, j] = g
        out["dry"][:, j] = dry
        out["stand"][:, j] = stand
        out["rough"][:, j] = rough
        out["disturbance"][:, j] = disturbance
        ratio = np.clip(g / p.gmax, 0.0, 1.2)
        biomass = np.select(
            [is_crop, is_grass, is_fallow],
            [
                p.bmax * ratio**1.3 + 0.5 * p.bmax * stand,
                p.bmax * g * height + realism.hay_water_kg * hay,
                p.bmax * g + 0.3 * dry,
            ],
            0.25 * g + 0.05 * dry,
        )
        out["biomass"][:, j] = biomass
    return UnitStates(keep_from, **out)


_OUTPUTS = ("green", "dry", "stand", "flower", "rough", "biomass", "disturbance")
_ORDER = {
    EventKind.HARVEST: 0,
    EventKind.CATCH_CROP_DESTRUCTION: 1,
    EventKind.PLOUGHING: 2,
    EventKind.FALLOW_START: 3,
    EventKind.GRASS_START: 3,
    EventKind.SOWING: 4,
    EventKind.CATCH_CROP_SOWING: 4,
    EventKind.EMERGENCE: 5,
    EventKind.MOWING: 6,
    EventKind.GRAZING: 7,
    EventKind.AUTUMN_SENESCENCE: 7,
}


def _smoothstep(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    t = np.clip(x, 0.0, 1.0)
    out: npt.NDArray[np.float64] = t * t * (3.0 - 2.0 * t)
    return out


def _apply(
    ev: FieldEvent,
    k: int,
    mode: npt.NDArray[np.int64],
    g: npt.NDArray[np.float64],
    dry: npt.NDArray[np.float64],
    stand: npt.NDArray[np.float64],
    rough: npt.NDArray[np.float64],
    height: npt.NDArray[np.float64],
    p: _Params,
    start: date,
) -> None:
    """Apply one field operation to unit ``k`` (in place)."""
    kind = ev.kind
    if kind is EventKind.PLOUGHING:
        mode[k] = BARE
        g[k], dry[k], stand[k], rough[k] = 0.0, dry[k] * 0.08, 0.0, 1.0
    elif kind in (EventKind.SOWING, EventKind.CATCH_CROP_SOWING) and ev.cycle is not None:
        p.set(k, ev.cycle, start)
        mode[k] = _MODE_OF_CYCLE[ev.cycle.kind]
        g[k], stand[k], height[k] = 0.0, 0.0, 0.2
        dry[k] *= 0.4 if kind is EventKind.CATCH_CROP_SOWING else 0.5
        rough[k] = 0.78 if ev.cycle.ridged else 0.5
    elif kind is EventKind.HARVEST:
        mode[k] = STUBBLE
        green_left = 0.06 if p.senescence[k] >= NEVER else 0.02
        dry[k] = p.stubble[k] * (0.8 + 0.25 * min(1.0, g[k] + dry[k]))
        g[k], stand[k], rough[k] = green_left, 0.0, p.harvest_rough[k]
    elif kind is EventKind.MOWING:
        removed = g[k] * (1.0 - ev.strength)
        g[k] -= removed
        dry[k] = min(1.0 - g[k], dry[k] + 0.6 * removed)
        stand[k], height[k] = 0.0, 0.12
    elif kind is EventKind.CATCH_CROP_DESTRUCTION:
        mode[k] = STUBBLE
        dry[k] = min(1.0, dry[k] + 0.85 * g[k])
        g[k], stand[k] = 0.0, 0.0
        rough[k] = max(rough[k], 0.45)
    elif kind in (EventKind.FALLOW_START, EventKind.GRASS_START) and ev.cycle is not None:
        p.set(k, ev.cycle, start)
        mode[k] = _MODE_OF_CYCLE[ev.cycle.kind]
