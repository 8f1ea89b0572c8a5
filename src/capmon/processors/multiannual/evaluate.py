"""The multi-annual product against the synthetic world's truth.

* 5-year temporary grassland: a parcel-year is positive when its true crop is temporary
  grassland aged 5 years or more. Only years with 5 analysed years up to them can show five
  grass years (declarations before the first year are not known); positives in earlier
  years are counted in ``ma_tg5_unobservable``, not in the recall.
* Permanent grassland ploughed: a ploughing event (``events.csv``) before June of its crop
  year (later ones are stubble tillage after the new crop's harvest) of a parcel that was
  permanent grassland the crop year before (truth cover class, or previous crop = permanent
  grassland), dated inside the observed seasons; matched by a ``pg_ploughed`` flag of that
  parcel in the calendar year of the event (or the next one for a December/January ploughing
  first seen in February). Leys that became permanent by age before the first analysed year
  cannot be known from the declarations: ``ma_pg_ploughed_unobservable``, not in the recall.
  A merged parcel's land is its largest parent's (:func:`ploughing_cases`). A flag on a parcel
  declared permanent grassland that year or the year before, in a calendar year with a real
  ploughing of it, is right about the declaration even when the truth says the parcel is a ley
  (a wrong declaration): counted in ``ma_pg_ploughed_declared_only``, neither a case nor false.
* False flags: flagged parcel-years without a truth case, as a share of the flags.
* Declared class contradictions: wrong declarations that change the grass/arable group
  (fallow left out), against ``class_contradiction``.
* Links: truth splits and merges (``parcel_changes.csv``) found with that relation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.synth.world import SynthWorld

PERMANENT_GRASS_CODE = 60
TEMPORARY_GRASS_CODE = 63
FALLOW_CODE = 82
GRASS_CODES = (PERMANENT_GRASS_CODE, TEMPORARY_GRASS_CODE)


def _truth_parcels(world: SynthWorld, years: list[int]) -> pd.DataFrame:
    frames = []
    for year in years:
        if year not in world.truth_parcels:
            raise InputError(f"the synthetic world has no year {year} (years: {world.years})")
        frames.append(pd.read_csv(world.truth_parcels[year], dtype={"parcel_id": str}))
    return pd.concat(frames, ignore_index=True)


def _rates(predicted: set[tuple[str, int]], truth: set[tuple[str, int]]) -> tuple[float, float]:
    recall = len(predicted & truth) / len(truth) if truth else float("nan")
    false = len(predicted - truth) / len(predicted) if predicted else 0.0
    return recall, false


@dataclass
class PloughingTruth:
    """Permanent grassland ploughings of the truth: each case (parcel, calendar year) with the
    (parcel, year) flags that find it, every accepted flag, and the flags explained by a
    permanent grassland declaration with a real ploughing (a ley declared as permanent)."""

    keys: dict[tuple[str, int], set[tuple[str, int]]] = field(default_factory=dict)
    accepted: set[tuple[str, int]] = field(default_factory=set)
    declared_permanent: set[tuple[str, int]] = field(default_factory=set)
    unobservable: int = 0


def ploughing_cases(
    truth: pd.DataFrame, events: pd.DataFrame, first: int, last: int
) -> PloughingTruth:
    """The ploughings of permanent grassland in the seasons ``first``..``last`` (see the module
    docstring). ``truth`` is the world's ``parcels_<year>.csv`` rows of those years, ``events``
    its ``events.csv``.

    A merged parcel's land before the merge is its largest parent's (the truth's
    :func:`capmon.synth.truth.land_history`). When that is not the first parent, whose
    operations the merged parcel is simulated with, an operation before the merge year was done
    on the first parent's land only: the larger part changes at the merge, first seen in the
    merge year's imagery.
    """
    out = PloughingTruth()
    plough = events[(events["event"] == "ploughing") & (events["part"] == "main")].copy()
    plough["day"] = pd.to_datetime(plough["date"])
    in_window = (plough["day"] >= pd.Timestamp(first, 2, 1)) & (
        plough["day"] <= pd.Timestamp(last, 11, 30)
    )
    plough = plough[in_window]
    cover = truth.set_index(["parcel_id", "year"])
    for pid, crop_year, day in zip(plough["parcel_id"], plough["year"], plough["day"], strict=True):
        year = int(crop_year)
        if day >= pd.Timestamp(year, 6, 1):
            continue  # stubble tillage after the new crop's harvest, not the grassland's end
        declared = [(pid, y) for y in (year - 1, year) if (pid, y) in cover.index]
        if any(int(cover.loc[k, "declared_crop_code"]) == PERMANENT_GRASS_CODE for k in declared):
            out.declared_permanent.add((pid, int(day.year)))
        before = (pid, year - 1)
        current = (pid, year)
        owners = [pid]
        seen = int(day.year)
        if before not in cover.index and current in cover.index:
            parents = cover.loc[current, "parents"]
            if isinstance(parents, str) and parents:
                names = parents.split(";")
                owners = [*names, pid]  # a new parcel: its history is its parents'
                main = _largest(cover, names, year - 1)
                before = (main, year - 1)
                if main != names[0] and day < pd.Timestamp(year, 1, 1):
                    seen = year  # the larger part changes at the merge
        if year - 1 < first:
            continue  # the year before the first analysed year is not known
        if before in cover.index:
            row = cover.loc[before]
            if row["cover_class"] != "permanent_grassland":
                continue
            if int(row["true_crop_code"]) != PERMANENT_GRASS_CODE and year - 1 - first + 1 < 5:
                out.unobservable += 1  # a ley whose 5 years started before the first year
                continue
        elif current in cover.index:
            if int(cover.loc[current, "previous_crop_code"]) != PERMANENT_GRASS_CODE:
                continue
        else:
            continue
        keys = {(owner, seen) for owner in owners}
        if seen == int(day.year) and (day.month in (12, 1) or (day.month == 11 and day.day > 20)):
            keys |= {(owner, seen + (1 if day.month >= 11 else 0)) for owner in owners}
        out.keys.setdefault((pid, seen), set()).update(keys)
        out.accepted |= keys
    return out


def _largest(cover: pd.DataFrame, parents: list[str], year: int) -> str:
    """The parent with the largest area in ``year`` (the first on a tie or when unknown)."""
    keys = pd.MultiIndex.from_tuples([(p, year) for p in parents])
    areas = cover["area_ha"].reindex(keys).fillna(-1.0).to_numpy(np.float64)
    return parents[int(np.argmax(areas))]


def evaluate_multiannual(product: str | Path, world: SynthWorld) -> dict[str, float]:
    """Recall and false-flag shares of the product's flags (see the module docstring)."""
    folder = Path(product)
    try:
        history = pd.read_csv(folder / "history.csv", dtype={"ori_id": str})
        links = pd.read_csv(folder / "links.csv", dtype={"ori_id_from": str, "ori_id_to": str})
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder} is not a complete multiannual product ({exc})") from exc
    years = sorted(int(y) for y in history["year"].unique())
    first, last = years[0], years[-1]
    truth = _truth_parcels(world, years)
    figures: dict[str, float] = {"ma_years": float(len(years))}

    # 5-year temporary grassland
    tg = truth[(truth["true_crop_code"] == TEMPORARY_GRASS_CODE) & (truth["grassland_age"] >= 5)]
    # Seen as grass for 5 years only when those 5 years are all analysed.
    visible = tg["year"] - first + 1 >= 5
    tg_truth = set(zip(tg.loc[visible, "parcel_id"], tg.loc[visible, "year"], strict=True))
    permanent = truth[truth["cover_class"] == "permanent_grassland"]
    tg_any = set(zip(permanent["parcel_id"], permanent["year"], strict=True))
    flagged = history[history["tg_5_years"].astype(bool)]
    tg_pred = set(zip(flagged["ori_id"], flagged["year"], strict=True))
    figures["ma_tg5_cases"] = float(len(tg_truth))
    figures["ma_tg5_unobservable"] = float((~visible).sum())
    figures["ma_tg5_recall"] = len(tg_pred & tg_truth) / len(tg_truth) if tg_truth else np.nan
    figures["ma_tg5_false_flag_share"] = len(tg_pred - tg_any) / len(tg_pred) if tg_pred else 0.0

    # permanent grassland ploughed
    events = pd.read_csv(world.truth_events, dtype={"parcel_id": str})
    ploughing = ploughing_cases(truth, events, first, last)
    figures["ma_pg_ploughed_unobservable"] = float(ploughing.unobservable)
    ploughed = history[history["pg_ploughed"].astype(bool)]
    pg_pred = set(zip(ploughed["ori_id"], ploughed["year"], strict=True))
    found = {c for c, keys in ploughing.keys.items() if keys & pg_pred}
    cases = set(ploughing.keys)
    figures["ma_pg_ploughed_cases"] = float(len(cases))
    figures["ma_pg_ploughed_recall"] = len(found) / len(cases) if cases else np.nan
    matched_pred = pg_pred & ploughing.accepted
    declared_only = (pg_pred - matched_pred) & ploughing.declared_permanent
    figures["ma_pg_ploughed_declared_only"] = float(len(declared_only))
    figures["ma_pg_ploughed_false_flag_share"] = (
        len(pg_pred - matched_pred - declared_only) / len(pg_pred) if pg_pred else 0.0
    )
    matched_pred |= declared_only
    parcel_years = len(history)
    figures["ma_false_flag_rate"] = (len(tg_pred - tg_any) + len(pg_pred - matched_pred)) / max(
        parcel_years, 1
    )

    # declared class contradictions
    wrong = truth[truth["declared_wrong"] == 1]
    declared_grass = wrong["declared_crop_code"].isin(GRASS_CODES)
    true_grass = wrong["true_crop_code"].isin(GRASS_CODES)
    no_fallow = (wrong["declared_crop_code"] != FALLOW_CODE) & (
        wrong["true_crop_code"] != FALLOW_CODE
    )
    contradictions = wrong[(declared_grass != true_grass) & no_fallow]
    c_truth = set(zip(contradictions["parcel_id"], contradictions["year"], strict=True))
    flagged_c = history[history["class_contradiction"].astype(bool)]
    c_pred = set(zip(flagged_c["ori_id"], flagged_c["year"], strict=True))
    recall, false = _rates(c_pred, c_truth)
    figures["ma_contradiction_cases"] = float(len(c_truth))
    figures["ma_contradiction_recall"] = recall
    figures["ma_contradiction_false_flag_share"] = false

    # links
    changes = pd.read_csv(world.truth_changes, dtype={"parcel_id": str, "parents": str})
    changes = changes[changes["year"].between(first + 1, last)]
    linked = links.dropna(subset=["ori_id_from", "ori_id_to"])
    pairs = set(zip(linked["ori_id_from"], linked["ori_id_to"], linked["relation"], strict=True))
    expected = {"split": "split", "merged": "merge"}
    hits = 0
    for child, change, parents in zip(
        changes["parcel_id"], changes["change"], changes["parents"], strict=True
    ):
        relation = expected.get(str(change))
        if relation is None:
            continue
        if all(
            (p, child, relation) in pairs or (p, child, "split+merge") in pairs
            for p in str(parents).split(";")
        ):
            hits += 1
    figures["ma_lpis_changes"] = float(len(changes))
    figures["ma_lpis_changes_linked"] = hits / len(changes) if len(changes) else np.nan
    return figures
