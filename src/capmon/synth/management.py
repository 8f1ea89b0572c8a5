"""What farmers do: crop rotations over the years and the dated field operations of each season.

Each parcel has a crop history that starts six years before the first simulated year (so that
the age of temporary grassland and the previous crops are known), continues through the
simulated years and one year beyond (autumn sowings of the following crop fall inside the last
season). Split parcels inherit their parent's history and merged parcels their first parent's.

Rotations follow Belgian loam-region practice: sugar beet or potato then winter wheat, winter
barley before rapeseed, maize often after maize or grassland, leys kept 2-7 years (some 5+ years
and so legally permanent grassland), permanent grassland occasionally ploughed up. After an early
harvest followed by a spring crop most farmers sow a catch crop (mustard, phacelia, fodder
radish) that is destroyed over winter; others plough in autumn (bare soil over winter) or leave
the stubble until spring. Grassland is mown 1-4 times or grazed in week-long rounds (uncut
meadows all season, some mown ones after their last cut), and its green cover senesces from
September; fallow is mulched once in summer. How deep a cut goes, who grazes and how much the
grass senesces come from the world's :class:`~capmon.synth.realism.Realism`.

Every date is drawn with per-parcel variability (sowing spread, vigour), from random streams
keyed by parcel id and year, so a parcel's history does not depend on the other parcels.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum

import numpy as np

from capmon.synth.crops import (
    CATCH_CROPS,
    CROPS_BY_CODE,
    FALLOW,
    FIELD_BEANS,
    FIELD_PEAS,
    GRAIN_MAIZE,
    PERMANENT_GRASS,
    POTATO,
    RAPESEED,
    SILAGE_MAIZE,
    SPRING_BARLEY,
    SUGAR_BEET,
    TEMPORARY_GRASS,
    WINTER_BARLEY,
    WINTER_WHEAT,
    CatchCropType,
    CoverClass,
    CropKind,
    CropType,
)
from capmon.synth.landscape import Landscape, Parcel
from capmon.synth.realism import CALIBRATED, Realism
from capmon.synth.seeding import stream

BURN_IN_YEARS = 6


class EventKind(StrEnum):
    """Field operations. The last three are internal state changes, not listed in the truth;
    a grazing event starts a week-long grazing round (``strength``: share of the green cover
    eaten), an autumn senescence the decline of the grass (``strength``: share that dies)."""

    SOWING = "sowing"
    EMERGENCE = "emergence"
    HARVEST = "harvest"
    MOWING = "mowing"
    PLOUGHING = "ploughing"
    CATCH_CROP_SOWING = "catch_crop_sowing"
    CATCH_CROP_DESTRUCTION = "catch_crop_destruction"
    GRAZING = "grazing"
    FALLOW_START = "fallow_start"
    GRASS_START = "grass_start"
    AUTUMN_SENESCENCE = "autumn_senescence"

    @property
    def exported(self) -> bool:
        return self not in (
            EventKind.FALLOW_START, EventKind.GRASS_START, EventKind.AUTUMN_SENESCENCE
        )  # fmt: skip


class CycleKind(StrEnum):
    CROP = "crop"
    GRASS = "grass"
    CATCH = "catch"
    FALLOW = "fallow"


@dataclass(frozen=True)
class Cycle:
    """Growth parameters of one vegetation cycle started by a sowing (or a fallow/grass start)."""

    kind: CycleKind
    gmax: float
    rate: float
    bmax: float
    emergence: date | None = None
    autumn_cap: float = 0.0
    spring: date | None = None
    senescence: date | None = None
    senescence_days: int = 25
    stubble: float = 0.1
    harvest_roughness: float = 0.4
    ridged: bool = False
    flowering: tuple[date, date] | None = None
    frost_sensitive: bool = False


@dataclass(frozen=True)
class FieldEvent:
    """One dated operation on a parcel; ``year`` is the crop year it belongs to."""

    day: date
    kind: EventKind
    crop_code: int
    year: int
    cycle: Cycle | None = None
    strength: float = 1.0
    until: date | None = None
    """Last day of a gradual change (autumn senescence)."""


@dataclass(frozen=True)
class YearPlan:
    """A parcel's crop and operations for one crop year (events may fall in the previous autumn)."""

    year: int
    crop: CropType
    vigour: float
    grass_age: int
    events: tuple[FieldEvent, ...]
    sowing: date | None = None
    emergence: date | None = None
    harvest: date | None = None
    mowings: tuple[date, ...] = ()
    catch_crop: CatchCropType | None = None
    catch_crop_poor: bool = False
    catch_crop_sowing: date | None = None
    catch_crop_destruction: date | None = None
    closed: bool = False

    @property
    def cover_class(self) -> CoverClass:
        if self.crop is PERMANENT_GRASS:
            return CoverClass.PERMANENT_GRASSLAND
        if self.crop is TEMPORARY_GRASS:
            return (
                CoverClass.PERMANENT_GRASSLAND
                if self.grass_age >= 5
                else CoverClass.TEMPORARY_GRASSLAND
            )
        return CoverClass.ARABLE


@dataclass(frozen=True)
class Heterogeneity:
    """A parcel that is not uniform in one year: a second crop on a part, or a failed patch."""

    kind: str  # "split" or "failed_patch"
    fraction: float
    second_crop: CropType | None
    plan: YearPlan


@dataclass(frozen=True)
class ParcelSeason:
    """Everything true about one declared parcel in one year."""

    parcel: Parcel
    year: int
    plan: YearPlan
    declared_crop: CropType
    declared_wrong: bool
    declared_area_ha: float
    previous_crop: CropType
    history: tuple[YearPlan, ...]  # plans year-2 .. year+1 of this parcel's lineage
    heterogeneity: Heterogeneity | None = None
    catch_crop_declared: bool = False

    @property
    def crop(self) -> CropType:
        return self.plan.crop


@dataclass
class Rotation:
    """A parcel lineage's crop history (mutable while the years are generated)."""

    crops: dict[int, CropType] = field(default_factory=dict)
    grass_age: dict[int, int] = field(default_factory=dict)
    plans: dict[int, YearPlan] = field(default_factory=dict)
    pending: dict[int, tuple[tuple[FieldEvent, ...], tuple[date, date] | None]] = field(
        default_factory=dict
    )


_ARABLE_SHARES: dict[int, float] = {
    WINTER_WHEAT.code: 0.28,
    WINTER_BARLEY.code: 0.10,
    SPRING_BARLEY.code: 0.05,
    SILAGE_MAIZE.code: 0.11,
    GRAIN_MAIZE.code: 0.05,
    SUGAR_BEET.code: 0.12,
    RAPESEED.code: 0.04,
    POTATO.code: 0.10,
    FIELD_PEAS.code: 0.03,
    FIELD_BEANS.code: 0.03,
    TEMPORARY_GRASS.code: 0.05,
    FALLOW.code: 0.03,
}
_MAIZE = (SILAGE_MAIZE.code, GRAIN_MAIZE.code)
_LEGUMES = (FIELD_PEAS.code, FIELD_BEANS.code)
_FACTORS: dict[int, dict[int, float]] = {
    WINTER_WHEAT.code: {WINTER_WHEAT.code: 0.35, RAPESEED.code: 1.5},
    WINTER_BARLEY.code: {RAPESEED.code: 3.0, WINTER_WHEAT.code: 0.4, WINTER_BARLEY.code: 0.1},
    SPRING_BARLEY.code: {SPRING_BARLEY.code: 0.2},
    SILAGE_MAIZE.code: {
        SILAGE_MAIZE.code: 1.6, GRAIN_MAIZE.code: 1.3, WINTER_BARLEY.code: 0.0,
        RAPESEED.code: 0.0, WINTER_WHEAT.code: 1.3,
    },
    GRAIN_MAIZE.code: {
        GRAIN_MAIZE.code: 1.3, SILAGE_MAIZE.code: 1.3, WINTER_BARLEY.code: 0.0,
        RAPESEED.code: 0.0, WINTER_WHEAT.code: 1.2,
    },
    SUGAR_BEET.code: {
        SUGAR_BEET.code: 0.0, POTATO.code: 0.2, WINTER_WHEAT.code: 2.5,
        WINTER_BARLEY.code: 0.0, RAPESEED.code: 0.0,
    },
    POTATO.code: {
        POTATO.code: 0.0, SUGAR_BEET.code: 0.3, WINTER_WHEAT.code: 2.5,
        WINTER_BARLEY.code: 0.3, RAPESEED.code: 0.0,
    },
    RAPESEED.code: {RAPESEED.code: 0.0, WINTER_WHEAT.code: 3.0},
    FIELD_PEAS.code: {FIELD_PEAS.code: 0.0, FIELD_BEANS.code: 0.0, WINTER_WHEAT.code: 2.5},
    FIELD_BEANS.code: {FIELD_PEAS.code: 0.0, FIELD_BEANS.code: 0.0, WINTER_WHEAT.code: 2.5},
}  # fmt: skip
_SELF_INTOLERANT = (SUGAR_BEET.code, POTATO.code, RAPESEED.code, *_LEGUMES)


def _choose(rng: np.random.Generator, weights: dict[int, float]) -> CropType:
    codes = sorted(weights)
    w = np.array([max(0.0, weights[c]) for c in codes])
    return CROPS_BY_CODE[codes[int(rng.choice(len(codes), p=w / w.sum()))]]


def next_crop(
    rng: np.random.Generator, previous: CropType, before: CropType | None, grass_age: int
) -> CropType:
    """The crop that follows ``previous`` (and ``before`` it) on a parcel."""
    if previous is PERMANENT_GRASS:
        if rng.random() < 0.97:
            return PERMANENT_GRASS
        return SILAGE_MAIZE if rng.random() < 0.6 else WINTER_WHEAT
    if previous is TEMPORARY_GRASS:
        keep = 0.9 if grass_age < 2 else (0.62 if grass_age < 4 else 0.72)
        if rng.random() < keep:
            return TEMPORARY_GRASS
        return _choose(rng, {SILAGE_MAIZE.code: 0.5, WINTER_WHEAT.code: 0.3, POTATO.code: 0.2})
    if previous is FALLOW:
        if rng.random() < 0.35:
            return FALLOW
        return WINTER_WHEAT if rng.random() < 0.6 else SPRING_BARLEY
    weights = dict(_ARABLE_SHARES)
    for code, factor in _FACTORS.get(previous.code, {}).items():
        weights[code] *= factor
    if before is not None and before.code in _SELF_INTOLERANT:
        weights[before.code] *= 0.2
    return _choose(rng, weights)


def _initial_crop(rng: np.random.Generator, affinity: float) -> tuple[CropType, int]:
    if rng.random() < 0.06 + 0.55 * affinity:
        return PERMANENT_GRASS, 10
    crop = _choose(rng, _ARABLE_SHARES)
    return crop, (int(rng.integers(1, 4)) if crop is TEMPORARY_GRASS else 0)


def _on(year: int, md: tuple[int, int], shift: float = 0.0) -> date:
    return date(year, md[0], md[1]) + timedelta(days=round(shift))


def _uniform_day(rng: np.random.Generator, first: date, last: date) -> date:
    span = max(0, (last - first).days)
    return first + timedelta(days=int(rng.integers(0, span + 1)))


def _crop_cycle(crop: CropType, year: int, sowing: date, emergence: date, vigour: float) -> Cycle:
    shift = (sowing - _on(sowing.year, crop.sow)).days if crop.kind is CropKind.SPRING else 0
    senescence = None
    if crop.senescence is not None:
        senescence = _on(year, crop.senescence, 0.35 * shift)
    flowering = None
    if crop.flowering is not None:
        flowering = (_on(year, crop.flowering[0]), _on(year, crop.flowering[1]))
    return Cycle(
        kind=CycleKind.CROP,
        gmax=min(0.975, crop.gmax * vigour),
        rate=crop.growth_rate * (0.9 + 0.2 * vigour - 0.1),
        bmax=crop.bmax * vigour,
        emergence=emergence,
        autumn_cap=crop.autumn_cap * vigour,
        spring=date(year, 2, 15) if crop.kind is CropKind.WINTER else None,
        senescence=senescence,
        senescence_days=crop.senescence_days,
        stubble=crop.stubble,
        harvest_roughness=crop.harvest_roughness,
        ridged=crop.ridged,
        flowering=flowering,
    )


def _establishment(
    rng: np.random.Generator,
    crop: CropType,
    year: int,
    earliest: date,
    vigour: float,
    *,
    autumn: bool | None = None,
) -> tuple[list[FieldEvent], date, date]:
    """Ploughing, sowing and emergence of ``crop`` (crop year ``year``), not before ``earliest``.

    Grass leys are sown at the end of summer before their first crop year (``autumn``) or
    in spring of it.
    """
    in_autumn = crop.sown_previous_year if autumn is None else autumn
    sow_year = year - 1 if in_autumn else year
    usual = crop.sow if (in_autumn or not crop.is_grass) else (4, 5)
    sowing = _on(sow_year, usual, rng.uniform(-crop.sow_jitter, crop.sow_jitter))
    if sowing < earliest + timedelta(days=4):
        sowing = earliest + timedelta(days=int(rng.integers(4, 12)))
    late = max(0, (sowing - _on(sow_year, usual)).days)
    delay = late // 3 if crop.sown_previous_year else 0
    emergence = sowing + timedelta(days=crop.emergence_days + int(rng.integers(-2, 4)) + delay)
    plough = sowing - timedelta(days=int(rng.integers(1, 14)))
    if plough <= earliest:
        plough = earliest + timedelta(days=1)
    cycle = _crop_cycle(crop, year, sowing, emergence, vigour)
    if crop.is_grass:
        cycle = Cycle(CycleKind.GRASS, min(0.97, crop.gmax * vigour), crop.growth_rate,
                      crop.bmax * vigour, emergence=emergence)  # fmt: skip
    events = [
        FieldEvent(plough, EventKind.PLOUGHING, crop.code, year),
        FieldEvent(sowing, EventKind.SOWING, crop.code, year, cycle),
        FieldEvent(emergence, EventKind.EMERGENCE, crop.code, year),
    ]
    return events, sowing, emergence


def _harvest_date(rng: np.random.Generator, crop: CropType, year: int, cycle: Cycle) -> date:
    assert crop.harvest is not None
    shift = 0.0
    if crop.kind is CropKind.SPRING and cycle.emergence is not None:
        shift = 0.4 * (cycle.emergence - _on(year, crop.sow) - timedelta(crop.emergence_days)).days
    harvest = _on(
        year, crop.harvest, shift + rng.uniform(-crop.harvest_jitter, crop.harvest_jitter)
    )
    if cycle.senescence is not None:
        ripe = cycle.senescence + timedelta(days=round(0.8 * cycle.senescence_days))
        harvest = max(harvest, ripe + timedelta(days=int(rng.integers(0, 6))))
    return harvest


def _mowing_dates(
    rng: np.random.Generator, crop: CropType, year: int, late_start: bool
) -> list[date]:
    if crop is TEMPORARY_GRASS:
        n = int(rng.choice([1, 2, 3, 4], p=[0.05, 0.2, 0.4, 0.35]))
    else:
        n = int(rng.choice([0, 1, 2, 3, 4], p=[0.2, 0.15, 0.25, 0.25, 0.15]))
    if late_start:
        n = min(n, 2)
    if n == 0:
        return []
    first = {4: (5, 2), 3: (5, 14), 2: (5, 30), 1: (6, 22)}[n]
    day = _on(year, first, rng.normal(0.0, 6.0 if n > 1 else 12.0))
    if late_start:
        day = max(day, date(year, 6, 20))
    out = [day]
    for _ in range(n - 1):
        day = day + timedelta(days=int(rng.integers(36, 52)))
        if day > date(year, 10, 15):
            break
        out.append(day)
    return out


def _plan_year(
    rng: np.random.Generator,
    crop: CropType,
    year: int,
    grass_age: int,
    previous: YearPlan | None,
    pre_events: list[FieldEvent],
    pre_sowing: tuple[date, date] | None,
    realism: Realism = CALIBRATED,
    grass_rng: np.random.Generator | None = None,
) -> YearPlan:
    """The in-season operations of ``crop`` in ``year``; establishment may already be given.

    ``grass_rng`` draws the grazing and senescence of grass (its own stream, so that the other
    draws do not depend on the realism profile)."""
    vigour = float(np.clip(rng.normal(1.0, 0.07), 0.78, 1.1))
    events = list(pre_events)
    sowing = emergence = harvest = None
    mowings: list[date] = []
    earliest = date(year, 1, 1)
    if previous is not None:
        for ev in previous.events:
            if ev.day >= earliest and ev.year == previous.year:
                earliest = max(earliest, ev.day)
    if crop.is_arable_crop:
        if pre_sowing is None:
            est, sowing, emergence = _establishment(rng, crop, year, earliest, vigour)
            if any(e.kind is EventKind.PLOUGHING for e in events):  # ploughed in the autumn
                est = [e for e in est if e.kind is not EventKind.PLOUGHING]
            events.extend(est)
        else:
            sowing, emergence = pre_sowing
        cycle = next(e.cycle for e in events if e.kind is EventKind.SOWING and e.cycle is not None)
        harvest = _harvest_date(rng, crop, year, cycle)
        events.append(FieldEvent(harvest, EventKind.HARVEST, crop.code, year))
    elif crop.is_grass:
        new_ley = previous is not None and not previous.crop.is_grass
        if new_ley and pre_sowing is None:
            est, sowing, emergence = _establishment(
                rng, crop, year, max(earliest, date(year, 3, 20)), vigour, autumn=False
            )
            events.extend(est)
        elif new_ley and pre_sowing is not None:
            sowing, emergence = pre_sowing
        else:
            cycle = Cycle(CycleKind.GRASS, min(0.97, crop.gmax * vigour), crop.growth_rate,
                          crop.bmax * vigour)  # fmt: skip
            events.append(
                FieldEvent(date(year, 1, 1), EventKind.GRASS_START, crop.code, year, cycle)
            )
        late = new_ley and pre_sowing is None
        mowings = _mowing_dates(rng, crop, year, late)
        events.extend(
            FieldEvent(
                d,
                EventKind.MOWING,
                crop.code,
                year,
                strength=float(rng.uniform(*realism.cut_strength)),
            )
            for d in mowings
        )
        if grass_rng is not None:
            events.extend(_grass_realism(grass_rng, crop, year, mowings, realism))
    else:  # fallow: spontaneous vegetation, mulched once in summer
        cycle = Cycle(
            CycleKind.FALLOW, min(0.8, 0.75 * vigour), crop.growth_rate, crop.bmax * vigour
        )
        events.append(FieldEvent(date(year, 1, 1), EventKind.FALLOW_START, crop.code, year, cycle))
        if rng.random() < 0.85:
            mulch = _uniform_day(rng, date(year, 7, 1), date(year, 8, 31))
            mowings = [mulch]
            events.append(FieldEvent(mulch, EventKind.MOWING, crop.code, year, strength=0.45))
    return YearPlan(year, crop, vigour, grass_age, tuple(events), sowing, emergence, harvest,
                    tuple(mowings))  # fmt: skip


def _grass_realism(
    rng: np.random.Generator, crop: CropType, year: int, mowings: list[date], realism: Realism
) -> list[FieldEvent]:
    """Grazing rounds and the autumn senescence of a grass parcel in ``year``."""
    out: list[FieldEvent] = []
    loss = float(rng.uniform(*realism.autumn_loss))
    start = int(rng.integers(realism.autumn_start[0], realism.autumn_start[1] + 1))
    if loss > 0:
        out.append(
            FieldEvent(date(year, 1, 1) + timedelta(days=start - 1), EventKind.AUTUMN_SENESCENCE,
                       crop.code, year, strength=loss, until=date(year, 11, 30))
        )  # fmt: skip
    grazed = rng.random() < realism.grazed_share
    if not grazed or realism.grazing_take[1] <= 0:
        return out
    if mowings:
        first = mowings[-1] + timedelta(days=int(rng.integers(25, 40)))
    elif crop is PERMANENT_GRASS:
        first = date(year, 4, 15) + timedelta(days=int(rng.integers(0, 25)))
    else:
        return out
    period = int(rng.integers(28, 42))  # rotation: back on the parcel every 4-6 weeks
    day = first
    while day <= date(year, 10, 20):
        take = float(rng.uniform(*realism.grazing_take))
        out.append(FieldEvent(day, EventKind.GRAZING, crop.code, year, strength=take))
        day += timedelta(days=period + int(rng.integers(-4, 5)))
    return out


def _after_harvest(
    rng: np.random.Generator, plan: YearPlan, following: CropType
) -> tuple[YearPlan, list[FieldEvent], tuple[date, date] | None]:
    """Post-harvest operations of ``plan`` and the establishment of ``following`` in the autumn.

    Returns the completed plan, the autumn events of the following crop year and its
    (sowing, emergence) when it is sown in the autumn.
    """
    plan = replace(plan, closed=True)
    year = plan.year
    crop = plan.crop
    end = plan.harvest or (max(plan.mowings) if plan.mowings else date(year, 8, 15))
    vigour_next = float(np.clip(rng.normal(1.0, 0.07), 0.78, 1.1))
    extra: list[FieldEvent] = []
    stubble_tillage = None
    if plan.harvest is not None and plan.harvest <= date(year, 9, 1) and rng.random() < 0.35:
        # Stubble cultivation soon after an early harvest: bare soil in summer.
        stubble_tillage = plan.harvest + timedelta(days=int(rng.integers(4, 21)))
    if stubble_tillage is not None and following.kind is not CropKind.FALLOW:
        tillage = FieldEvent(stubble_tillage, EventKind.PLOUGHING, crop.code, year)
        plan = replace(plan, events=(*plan.events, tillage))
        end = stubble_tillage
    if following.kind is CropKind.WINTER:
        est, sowing, emergence = _establishment(rng, following, year + 1, end, vigour_next)
        return plan, est, (sowing, emergence)
    if following is TEMPORARY_GRASS and crop is not TEMPORARY_GRASS and end < date(year, 9, 5):
        est, sowing, emergence = _establishment(
            rng, following, year + 1, end, vigour_next, autumn=True
        )
        return plan, est, (sowing, emergence)
    if following.is_grass or following is FALLOW or crop.is_grass or crop is FALLOW:
        # Grass or fallow followed by a spring crop is ploughed in spring by its establishment.
        return plan, extra, None
    # A spring crop follows an arable crop.
    early = plan.harvest is not None and plan.harvest <= date(year, 9, 12)
    if early and rng.random() < (0.45 if stubble_tillage else 0.75):
        species = CATCH_CROPS[int(rng.integers(len(CATCH_CROPS)))]
        sow = end + timedelta(days=int(rng.integers(3, 19)))
        poor = bool(rng.random() < 0.1)
        gmax = float(rng.uniform(0.18, 0.32)) if poor else species.gmax * plan.vigour
        cycle = Cycle(
            CycleKind.CATCH, min(0.95, gmax), species.growth_rate, 1.3 * gmax,
            emergence=sow + timedelta(days=int(rng.integers(6, 10))),
            frost_sensitive=species.frost_sensitive,
        )  # fmt: skip
        destroy = _uniform_day(rng, date(year, 11, 20), date(year + 1, 2, 20))
        extra = [
            FieldEvent(sow, EventKind.CATCH_CROP_SOWING, species.code, year, cycle),
            FieldEvent(destroy, EventKind.CATCH_CROP_DESTRUCTION, species.code, year),
        ]
        plan = replace(
            plan, events=plan.events + tuple(extra), catch_crop=species, catch_crop_poor=poor,
            catch_crop_sowing=sow, catch_crop_destruction=destroy,
        )  # fmt: skip
        return plan, [], None
    if rng.random() < 0.5:
        first = max(end + timedelta(days=5), date(year, 10, 10))
        plough = _uniform_day(rng, first, max(first, date(year, 12, 15)))
        autumn = FieldEvent(plough, EventKind.PLOUGHING, following.code, year + 1)
        return plan, [autumn], None
    return plan, [], None


def plan_rotations(
    landscape: Landscape, first_year: int, seed: int, realism: Realism = CALIBRATED
) -> dict[str, Rotation]:
    """The crop history of every parcel id of every year (burn-in years included)."""
    rotations: dict[str, Rotation] = {}
    last_year = first_year + len(landscape.parcels_by_year) - 1
    for year_index, parcels in enumerate(landscape.parcels_by_year):
        year = first_year + year_index
        for parcel in parcels:
            if parcel.parcel_id in rotations:
                continue
            if parcel.parents:
                parent = rotations[parcel.parents[0]]
                rot = Rotation(
                    {y: c for y, c in parent.crops.items() if y <= year},
                    {y: a for y, a in parent.grass_age.items() if y <= year},
                    {y: p for y, p in parent.plans.items() if y < year},
                    {y: p for y, p in parent.pending.items() if y <= year},
                )
            else:
                rot = Rotation()
                rng = stream(seed, "history", parcel.parcel_id)
                crop, age = _initial_crop(rng, landscape.grass_affinity[parcel.block])
                start = first_year - BURN_IN_YEARS
                rot.crops[start] = crop
                rot.grass_age[start] = age
            _extend(rot, parcel.parcel_id, last_year + 1, seed, realism)
            rotations[parcel.parcel_id] = rot
    return rotations


def _extend(rot: Rotation, key: str, until: int, seed: int, realism: Realism) -> None:
    """Draw crops and plans of ``rot`` up to year ``until``."""
    start = min(rot.crops)
    for y in range(start + 1, until + 1):
        if y in rot.crops:
            continue
        rng = stream(seed, "crop", key, y)
        prev = rot.crops[y - 1]
        crop = next_crop(rng, prev, rot.crops.get(y - 2), rot.grass_age[y - 1])
        rot.crops[y] = crop
        if crop.is_grass:
            rot.grass_age[y] = rot.grass_age[y - 1] + 1 if prev.is_grass else 1
        else:
            rot.grass_age[y] = 0
    for y in range(start, until + 1):
        if y in rot.plans:
            continue
        previous = rot.plans.get(y - 1)
        if previous is not None and not previous.closed:
            closed, events, sowing = _after_harvest(
                stream(seed, "autumn", key, y - 1), previous, rot.crops[y]
            )
            rot.plans[y - 1] = closed
            rot.pending[y] = (tuple(events), sowing)
            previous = closed
        events_before, sowing_before = rot.pending.get(y, ((), None))
        rot.plans[y] = _plan_year(
            stream(seed, "plan", key, y), rot.crops[y], y, rot.grass_age[y], previous,
            list(events_before), sowing_before, realism, stream(seed, "grass", key, y),
        )  # fmt: skip


_CONFUSIONS: dict[int, tuple[int, ...]] = {
    WINTER_WHEAT.code: (WINTER_BARLEY.code, SPRING_BARLEY.code, RAPESEED.code),
    WINTER_BARLEY.code: (WINTER_WHEAT.code, SPRING_BARLEY.code),
    SPRING_BARLEY.code: (WINTER_BARLEY.code, WINTER_WHEAT.code),
    SILAGE_MAIZE.code: (GRAIN_MAIZE.code, SUGAR_BEET.code, POTATO.code),
    GRAIN_MAIZE.code: (SILAGE_MAIZE.code, SUGAR_BEET.code),
    SUGAR_BEET.code: (POTATO.code, SILAGE_MAIZE.code),
    POTATO.code: (SUGAR_BEET.code, SILAGE_MAIZE.code),
    RAPESEED.code: (WINTER_WHEAT.code, WINTER_BARLEY.code),
    FIELD_PEAS.code: (FIELD_BEANS.code, SPRING_BARLEY.code),
    FIELD_BEANS.code: (FIELD_PEAS.code, SUGAR_BEET.code),
    PERMANENT_GRASS.code: (TEMPORARY_GRASS.code, FALLOW.code),
    TEMPORARY_GRASS.code: (PERMANENT_GRASS.code, FALLOW.code, SILAGE_MAIZE.code),
    FALLOW.code: (TEMPORARY_GRASS.code, PERMANENT_GRASS.code),
}

_SPLIT_SECOND: tuple[CropType, ...] = (
    SILAGE_MAIZE, SUGAR_BEET, POTATO, SPRING_BARLEY, FIELD_PEAS, FIELD_BEANS,
)  # fmt: skip


def _heterogeneity(
    rng: np.random.Generator, plan: YearPlan, seed: int, key: str
) -> Heterogeneity | None:
    """About 6 % of arable parcels: a second spring crop on part of it, or a failed patch."""
    if not plan.crop.is_arable_crop or rng.random() >= 0.06:
        return None
    if plan.crop.kind is CropKind.SPRING and rng.random() < 0.6:
        options = [c for c in _SPLIT_SECOND if c is not plan.crop]
        second = options[int(rng.integers(len(options)))]
        prng = stream(seed, "split-plan", key, plan.year)
        est, sowing, emergence = _establishment(prng, second, plan.year, date(plan.year, 3, 1),
                                                plan.vigour)  # fmt: skip
        cycle = next(e.cycle for e in est if e.cycle is not None)
        harvest = _harvest_date(prng, second, plan.year, cycle)
        events = (*est, FieldEvent(harvest, EventKind.HARVEST, second.code, plan.year))
        second_plan = YearPlan(
            plan.year, second, plan.vigour, 0, events, sowing, emergence, harvest
        )
        return Heterogeneity("split", float(rng.uniform(0.3, 0.5)), second, second_plan)
    failed = float(rng.uniform(0.15, 0.35))
    events = tuple(
        replace(e, cycle=replace(e.cycle, gmax=e.cycle.gmax * failed, bmax=e.cycle.bmax * failed,
                                 autumn_cap=e.cycle.autumn_cap * failed))
        if e.cycle is not None and e.kind is EventKind.SOWING and e.year == plan.year
        else e
        for e in plan.events
    )  # fmt: skip
    patch_plan = replace(plan, events=events, vigour=plan.vigour * failed)
    return Heterogeneity("failed_patch", float(rng.uniform(0.08, 0.25)), None, patch_plan)


def parcel_seasons(
    landscape: Landscape,
    rotations: dict[str, Rotation],
    first_year: int,
    seed: int,
    wrong_declarations: float,
) -> list[list[ParcelSeason]]:
    """One :class:`ParcelSeason` per parcel and simulated year."""
    out: list[list[ParcelSeason]] = []
    for year_index, parcels in enumerate(landscape.parcels_by_year):
        year = first_year + year_index
        n = len(parcels)
        drng = stream(seed, "declarations", year)
        n_wrong = round(wrong_declarations * n)
        wrong = (
            set(int(i) for i in drng.choice(n, size=n_wrong, replace=False)) if n_wrong else set()
        )
        seasons = []
        for k, parcel in enumerate(parcels):
            rot = rotations[parcel.parcel_id]
            plan = rot.plans[year]
            prng = stream(seed, "declare", parcel.parcel_id, year)
            declared = plan.crop
            if k in wrong:
                options = _CONFUSIONS[plan.crop.code]
                declared = CROPS_BY_CODE[options[int(prng.integers(len(options)))]]
            area = parcel.area_ha * float(prng.normal(1.0, 0.008))
            if prng.random() < 0.02:
                area *= float(prng.uniform(1.05, 1.15))
            cc_declared = plan.catch_crop is not None and prng.random() < 0.92
            if (
                plan.catch_crop is None
                and plan.harvest is not None
                and plan.harvest <= date(year, 9, 12)
                and rot.crops[year + 1].kind is CropKind.SPRING
                and prng.random() < 0.3
            ):
                cc_declared = True  # declared but never sown: a non-compliant parcel
            history = tuple(rot.plans[y] for y in range(year - 2, year + 2))
            het = _heterogeneity(stream(seed, "heterogeneity", parcel.parcel_id, year), plan, seed,
                                 parcel.parcel_id)  # fmt: skip
            seasons.append(
                ParcelSeason(
                    parcel, year, plan, declared, k in wrong, round(area, 2),
                    rot.crops[year - 1], history, het, cc_declared,
                )
            )  # fmt: skip
        out.append(seasons)
    return out
