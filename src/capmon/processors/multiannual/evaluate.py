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
* False flags: flagged parcel-years without a truth case, as a share of the flags.
* Declared class contradictions: wrong declarations that change the grass/arable group
  (fallow left out), against ``class_contradiction``.
* Links: truth splits and merges (``parcel_changes.csv``) found with that relation.
"""

from __future__ import annotations

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
    plough = events[(events["event"] == "ploughing") & (events["part"] == "main")].copy()
    plough["day"] = pd.to_datetime(plough["date"])
    in_window = (plough["day"] >= pd.Timestamp(first, 2, 1)) & (
        plough["day"] <= pd.Timestamp(last, 11, 30)
    )
    plough = plough[in_window]
    cover = truth.set_index(["parcel_id", "year"])
    cases: set[tuple[str, int]] = set()
    accepted: set[tuple[str, int]] = set()
    case_keys: dict[tuple[str, int], set[tuple[str, int]]] = {}
    unobservable = 0
    for pid, crop_year, day in zip(plough["parcel_id"], plough["year"], plough["day"], strict=True):
        if day >= pd.Timestamp(int(crop_year), 6, 1):
            continue  # stubble tillage after the new crop's harvest, not the grassland's end
        before = (pid, int(crop_year) - 1)
        current = (pid, int(crop_year))
        owners = [pid]
        if before not in cover.index and current in cover.index:
            parents = cover.loc[current, "parents"]
            if isinstance(parents, str) and parents:
                owners = [*parents.split(";"), pid]  # a new parcel: its history is its parent's
                before = (owners[0], int(crop_year) - 1)
        if int(crop_year) - 1 < first:
            continue  # the year before the first analysed year is not known
        if before in cover.index:
            row = cover.loc[before]
            if row["cover_class"] != "permanent_grassland":
                continue
            if (
                int(row["true_crop_code"]) != PERMANENT_GRASS_CODE
                and int(crop_year) - 1 - first + 1 < 5
            ):
                unobservable += 1  # a ley whose 5 years started before the first year
                continue
        elif current in cover.index:
            if int(cover.loc[current, "previous_crop_code"]) != PERMANENT_GRASS_CODE:
                continue
        else:
            continue
        case = (pid, int(day.year))
        cases.add(case)
        keys = {(owner, int(day.year)) for owner in owners}
        if day.month in (12, 1) or (day.month == 11 and day.day > 20):
            keys |= {(owner, int(day.year) + (1 if day.month >= 11 else 0)) for owner in owners}
        accepted |= keys
        case_keys[case] = keys
    figures["ma_pg_ploughed_unobservable"] = float(unobservable)
    ploughed = history[history["pg_ploughed"].astype(bool)]
    pg_pred = set(zip(ploughed["ori_id"], ploughed["year"], strict=True))
    found = {c for c in cases if case_keys[c] & pg_pred}
    figures["ma_pg_ploughed_cases"] = float(len(cases))
    figures["ma_pg_ploughed_recall"] = len(found) / len(cases) if cases else np.nan
    matched_pred = pg_pred & accepted
    figures["ma_pg_ploughed_false_flag_share"] = (
        len(pg_pred - matched_pred) / len(pg_pred) if pg_pred else 0.0
    )
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
