"""Ground-truth tables of the synthetic world, for the evaluation of every processor.

* ``parcels_<year>.csv``: one row per declared parcel: true and declared crop, wrong-declaration
  flag, cover class, grassland age, heterogeneity, main dates, mowing count, catch crop (true
  and declared), LPIS change (split / merged) and parents, pixel count. The previous crop,
  grassland age and cover class describe the parcel's *land* (:func:`land_history`): a merged
  parcel follows its largest parent's, not the first parent's whose crops it is simulated with.
* ``events.csv``: every field operation (sowing, emergence, harvest, mowing, ploughing,
  catch_crop_sowing, catch_crop_destruction, and grazing: the start of a week-long grazing
  round, in a world with grazing) with its date; ``year`` is the crop year it belongs
  to (autumn sowings fall in the previous calendar year); ``part`` is ``main`` or ``patch``.
  The autumn operations of the next crop year are listed for the last year and for parcels not
  declared the next year (split or merged away), as the imagery of their last year shows them.
* ``bare_soil_<year>.csv``: periods of at least 5 days when a parcel is bare soil (green cover
  < 0.15, residue < 0.2) or covered by dry residue/stubble (green < 0.2, residue >= 0.3), with
  the operation that started them.
* ``s2_parcels_<year>.parquet``: per parcel and Sentinel-2 date, the true cover fractions,
  noise-free NDVI (without the unflagged haze) and the clear (cloud/shadow/snow-free) share of
  its pixels.
* ``patches_<year>.gpkg``: the geometry of the second part of heterogeneous parcels.
* ``parcel_changes.csv``: LPIS changes between years.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from capmon.synth.crops import CropType
from capmon.synth.management import EventKind, ParcelSeason, YearPlan
from capmon.synth.phenology import UnitStates

PARCEL_COLUMNS = (
    "parcel_id", "holding_id", "year", "area_ha", "declared_area_ha", "true_crop_code",
    "true_crop_name", "true_ctnuml4a", "declared_crop_code", "declared_crop_name",
    "declared_wrong", "previous_crop_code", "cover_class", "grassland_age", "heterogeneous",
    "heterogeneity_kind", "second_crop_code", "patch_fraction", "vigour", "sowing_date",
    "emergence_date", "harvest_date", "n_mowings", "mowing_dates", "catch_crop",
    "catch_crop_code", "catch_crop_poor", "catch_crop_sowing", "catch_crop_destruction",
    "catch_crop_declared", "fallow", "lpis_change", "parents", "s2_pixels",
)  # fmt: skip
EVENT_COLUMNS = ("parcel_id", "year", "date", "event", "crop_code", "part")
BARE_COLUMNS = ("parcel_id", "year", "cover", "start", "end", "days", "cause")


def _iso(d: date | None) -> str:
    return d.isoformat() if d is not None else ""


@dataclass(frozen=True)
class LandHistory:
    """The truth of one parcel-year's land: previous crop, grassland age and cover class."""

    previous_crop_code: int
    grassland_age: int
    cover_class: str


def land_history(
    seasons_by_year: Sequence[Sequence[ParcelSeason]],
) -> dict[tuple[str, int], LandHistory]:
    """Per (parcel id, year): the previous crop, grassland age and cover class of its land.

    The simulation gives a merged parcel its first parent's crop history, but until the merge
    each parent's land carried its own crops (and the imagery of those years shows them). The
    land of a merged parcel is taken to be that of its largest parent (most of its area; the
    first on a tie), whose crop of the year before and grassland age carry on: a ley sown on
    the first parent five years ago is not five years old on the larger part that was maize
    last year, and permanent grassland on the larger part followed by a crop is a ploughed
    grassland. Every other parcel keeps the simulation's values (split parcels inherit their
    single parent's history, which is the same land).
    """
    out: dict[tuple[str, int], LandHistory] = {}
    before: dict[str, tuple[CropType, int, float]] = {}
    for seasons in seasons_by_year:
        current: dict[str, tuple[CropType, int, float]] = {}
        for season in seasons:
            pid = season.parcel.parcel_id
            plan = season.plan
            parents = season.parcel.parents
            source = before.get(pid)
            if source is None and parents and all(p in before for p in parents):
                source = max((before[p] for p in parents), key=lambda land: land[2])
            if source is None:
                previous, age = season.previous_crop.code, plan.grass_age
            else:
                crop, source_age, _area = source
                previous = crop.code
                age = (source_age + 1 if crop.is_grass else 1) if plan.crop.is_grass else 0
            cover = replace(plan, grass_age=age).cover_class.value
            out[(pid, season.year)] = LandHistory(previous, age, cover)
            current[pid] = (plan.crop, age, season.parcel.area_ha)
        before = current
    return out


def parcels_table(
    seasons: Sequence[ParcelSeason],
    pixels: Sequence[int],
    land: Mapping[tuple[str, int], LandHistory] | None = None,
) -> pd.DataFrame:
    """One truth row per declared parcel of one year; ``land`` from :func:`land_history`
    (without it, the simulation's own previous crop and grassland age)."""
    rows = []
    for season, count in zip(seasons, pixels, strict=True):
        plan = season.plan
        het = season.heterogeneity
        own = LandHistory(season.previous_crop.code, plan.grass_age, plan.cover_class.value)
        history = own if land is None else land.get((season.parcel.parcel_id, season.year), own)
        rows.append(
            {
                "parcel_id": season.parcel.parcel_id,
                "holding_id": season.parcel.holding_id,
                "year": season.year,
                "area_ha": round(season.parcel.area_ha, 4),
                "declared_area_ha": season.declared_area_ha,
                "true_crop_code": plan.crop.code,
                "true_crop_name": plan.crop.english,
                "true_ctnuml4a": plan.crop.ctnuml4a,
                "declared_crop_code": season.declared_crop.code,
                "declared_crop_name": season.declared_crop.english,
                "declared_wrong": int(season.declared_wrong),
                "previous_crop_code": history.previous_crop_code,
                "cover_class": history.cover_class,
                "grassland_age": history.grassland_age,
                "heterogeneous": int(het is not None),
                "heterogeneity_kind": het.kind if het else "",
                "second_crop_code": het.second_crop.code if het and het.second_crop else "",
                "patch_fraction": round(het.fraction, 3) if het else 0.0,
                "vigour": round(plan.vigour, 3),
                "sowing_date": _iso(plan.sowing),
                "emergence_date": _iso(plan.emergence),
                "harvest_date": _iso(plan.harvest),
                "n_mowings": len(plan.mowings) if plan.crop.is_grass else 0,
                "mowing_dates": ";".join(d.isoformat() for d in plan.mowings),
                "catch_crop": int(plan.catch_crop is not None),
                "catch_crop_code": plan.catch_crop.code if plan.catch_crop else "",
                "catch_crop_poor": int(plan.catch_crop_poor),
                "catch_crop_sowing": _iso(plan.catch_crop_sowing),
                "catch_crop_destruction": _iso(plan.catch_crop_destruction),
                "catch_crop_declared": int(season.catch_crop_declared),
                "fallow": int(plan.crop.lut.fallow),
                "lpis_change": season.parcel.change,
                "parents": ";".join(season.parcel.parents),
                "s2_pixels": int(count),
            }
        )
    return pd.DataFrame(rows, columns=list(PARCEL_COLUMNS))


def _event_rows(parcel_id: str, plan: YearPlan, part: str, until: date) -> list[dict[str, object]]:
    return [
        {
            "parcel_id": parcel_id,
            "year": ev.year,
            "date": ev.day.isoformat(),
            "event": ev.kind.value,
            "crop_code": ev.crop_code,
            "part": part,
        }
        for ev in plan.events
        if ev.kind.exported and ev.year == plan.year and ev.day <= until
    ]


def events_table(seasons_by_year: Sequence[Sequence[ParcelSeason]]) -> pd.DataFrame:
    """Every exported operation of every declared parcel-year (see the module docstring)."""
    rows: list[dict[str, object]] = []
    last = max(s.year for seasons in seasons_by_year for s in seasons)
    declared = {(s.parcel.parcel_id, s.year) for seasons in seasons_by_year for s in seasons}
    for seasons in seasons_by_year:
        for season in seasons:
            pid = season.parcel.parcel_id
            rows.extend(_event_rows(pid, season.plan, "main", date(last, 12, 31)))
            if season.heterogeneity is not None and season.heterogeneity.kind == "split":
                rows.extend(
                    _event_rows(pid, season.heterogeneity.plan, "patch", date(last, 12, 31))
                )
            if season.year == last or (pid, season.year + 1) not in declared:
                # The next crop year's autumn operations are in this year's imagery; a parcel
                # split or merged away has no next-year row to list them under.
                following = season.history[-1]
                rows.extend(_event_rows(pid, following, "main", date(season.year, 12, 31)))
    table = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    order = {kind.value: n for n, kind in enumerate(EventKind)}
    table["_order"] = table["event"].map(order)
    table = table.sort_values(["year", "parcel_id", "part", "date", "_order"], kind="stable")
    return table.drop(columns="_order").drop_duplicates().reset_index(drop=True)


def bare_soil_table(
    seasons: Sequence[ParcelSeason], states: UnitStates, first_unit: int, year: int
) -> pd.DataFrame:
    """Bare-soil and residue periods of each parcel's main part within ``year``."""
    i0, i1 = states.index(date(year, 1, 1)), states.index(date(year, 12, 31)) + 1
    rows = []
    for k, season in enumerate(seasons):
        g = states.green[first_unit + k, i0:i1]
        d = states.dry[first_unit + k, i0:i1]
        events = sorted(
            (ev for plan in season.history for ev in plan.events if ev.kind.exported),
            key=lambda ev: ev.day,
        )
        for cover, mask in (
            ("bare_soil", (g < 0.15) & (d < 0.2)),
            ("residue", (g < 0.2) & (d >= 0.3)),
        ):
            for start, stop in _runs(mask):
                if stop - start < 5:
                    continue
                first = date(year, 1, 1) + timedelta(days=int(start))
                cause = ""
                for ev in events:
                    if ev.day <= first and ev.kind in _CAUSES:
                        cause = ev.kind.value
                if cover == "residue" and cause in ("sowing", "emergence"):
                    cause = "senescence"
                rows.append(
                    {
                        "parcel_id": season.parcel.parcel_id,
                        "year": year,
                        "cover": cover,
                        "start": first.isoformat(),
                        "end": (date(year, 1, 1) + timedelta(days=int(stop) - 1)).isoformat(),
                        "days": int(stop - start),
                        "cause": cause,
                    }
                )
    return pd.DataFrame(rows, columns=list(BARE_COLUMNS))


_CAUSES = (
    EventKind.PLOUGHING,
    EventKind.HARVEST,
    EventKind.SOWING,
    EventKind.EMERGENCE,
    EventKind.CATCH_CROP_DESTRUCTION,
    EventKind.MOWING,
)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def changes_table(seasons_by_year: Sequence[Sequence[ParcelSeason]]) -> pd.DataFrame:
    rows = [
        {
            "year": s.year,
            "parcel_id": s.parcel.parcel_id,
            "change": s.parcel.change,
            "parents": ";".join(s.parcel.parents),
        }
        for seasons in seasons_by_year
        for s in seasons
        if s.parcel.change
    ]
    return pd.DataFrame(rows, columns=["year", "parcel_id", "change", "parents"])


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    """Deterministic CSV bytes (Unix line ends, fixed float format)."""
    text: str = table.to_csv(index=False, lineterminator="\n", float_format="%.4f")
    return text.encode("utf-8")
