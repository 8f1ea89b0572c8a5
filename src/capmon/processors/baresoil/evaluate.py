"""Bare-soil detection against the synthetic world's truth.

The truth of a parcel on a Sentinel-2 date comes from ``truth/s2_parcels_<year>.parquet`` (true
green and dry cover of the parcel's main part), with the definitions of the world's bare-soil
table: bare soil when green < 0.15 and dry < 0.2, residue (senescent crop, straw, stubble) when
green < 0.2 and dry >= 0.3, vegetation otherwise. A dekad is judged on the dates the detector
observed in it (the optical observations of the MDB): its truth is ``BARE`` when most of those
dates are bare soil. A dekad is "senescent" when most of them are residue.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.processors.baresoil.detect import BARE, NO_DATA
from capmon.synth.world import SynthWorld

BARE_GREEN, BARE_DRY = 0.15, 0.2
RESIDUE_GREEN, RESIDUE_DRY = 0.2, 0.3


def truth_states(world: SynthWorld, year: int) -> pd.DataFrame:
    """Per original parcel id and S2 date: ``bare`` and ``residue`` truth flags."""
    if year not in world.truth_signals:
        raise InputError(f"the synthetic world has no year {year} (years: {world.years})")
    truth = pd.read_parquet(world.truth_signals[year])
    return pd.DataFrame(
        {
            "ori_id": truth["parcel_id"].astype(str),
            "date": pd.to_datetime(truth["date"]).astype("datetime64[ns]"),
            "bare": (truth["green"] < BARE_GREEN) & (truth["dry"] < BARE_DRY),
            "residue": (truth["green"] < RESIDUE_GREEN) & (truth["dry"] >= RESIDUE_DRY),
        }
    )


def evaluate_baresoil(product: str | Path, world: SynthWorld, year: int) -> dict[str, float]:
    """Balanced accuracy per dekad on observed dekads, and senescent dekads not called bare.

    ``product`` is a ``baresoil`` product folder (its ``observations.parquet`` and
    ``status.parquet``, which carry the declarations' parcel id ``ori_id``).
    """
    folder = Path(product)
    try:
        obs = pd.read_parquet(folder / "observations.parquet")
        stat = pd.read_parquet(folder / "status.parquet")
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder} is not a complete baresoil product ({exc})") from exc
    truth = truth_states(world, year)
    used = obs[["parcel_id", "ori_id", "date", "dekad"]].assign(
        ori_id=obs["ori_id"].astype(str), date=pd.to_datetime(obs["date"]).astype("datetime64[ns]")
    )
    joined = used.merge(truth, on=["ori_id", "date"], how="inner")
    if joined.empty:
        raise InputError("no observation of the product matches the truth (wrong world or year?)")
    per_dekad = joined.groupby(["parcel_id", "dekad"]).agg(
        bare=("bare", "mean"), residue=("residue", "mean")
    )
    predicted = stat[stat["status"] != NO_DATA].set_index(["parcel_id", "dekad"])
    both = per_dekad.join(predicted[["status"]], how="inner")
    truth_bare = both["bare"].to_numpy() > 0.5
    called_bare = (both["status"] == BARE).to_numpy()
    senescent = both["residue"].to_numpy() > 0.5
    recall_bare = float(called_bare[truth_bare].mean()) if truth_bare.any() else float("nan")
    recall_veg = float((~called_bare[~truth_bare]).mean()) if (~truth_bare).any() else float("nan")
    return {
        "baresoil_dekads_evaluated": float(len(both)),
        "baresoil_dekads_true_bare": float(truth_bare.sum()),
        "baresoil_balanced_accuracy": (recall_bare + recall_veg) / 2,
        "baresoil_recall_bare": recall_bare,
        "baresoil_recall_not_bare": recall_veg,
        "baresoil_precision_bare": (
            float(truth_bare[called_bare].mean()) if called_bare.any() else float("nan")
        ),
        "baresoil_senescent_dekads": float(senescent.sum()),
        "baresoil_senescent_not_bare": (
            float((~called_bare[senescent]).mean()) if senescent.any() else float("nan")
        ),
    }


def truth_labels(
    world: SynthWorld,
    year: int,
    original_ids: Mapping[int, str],
    *,
    fraction: float = 0.2,
    seed: int = 0,
) -> pd.DataFrame:
    """A labelled table (``parcel_id``, ``date``, ``label`` BARE/VEG) drawn from the truth of a
    random ``fraction`` of the parcels, for ``capmon calibrate baresoil`` on synthetic data.
    Ambiguous dates (neither clearly bare nor clearly covered) are left out."""
    truth = truth_states(world, year)
    raw = pd.read_parquet(world.truth_signals[year])
    clear = raw["clear_fraction"].to_numpy() > 0.5
    to_new = {v: k for k, v in original_ids.items()}
    rng = np.random.default_rng(seed)
    ids = sorted(to_new)
    chosen = set(rng.choice(ids, size=max(1, round(fraction * len(ids))), replace=False).tolist())
    green = raw["green"].to_numpy()
    covered = green >= 0.25
    keep = (
        clear
        & truth["ori_id"].isin(chosen).to_numpy()
        & (truth["bare"].to_numpy() | covered | truth["residue"].to_numpy())
    )
    picked = truth[keep]
    return pd.DataFrame(
        {
            "parcel_id": picked["ori_id"].map(to_new).astype(np.int64).to_numpy(),
            "date": picked["date"].dt.date.to_numpy(),
            "label": np.where(picked["bare"].to_numpy(), "BARE", "VEG"),
        }
    )
