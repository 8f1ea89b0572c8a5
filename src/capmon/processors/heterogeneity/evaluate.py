"""Heterogeneity flags against a truth table (the synthetic world's, or any CSV).

The truth is one row per parcel with the declarations' parcel id and a 0/1 heterogeneity flag:
the synthetic world's ``truth/parcels_<year>.csv`` (``parcel_id``, ``heterogeneous``) or a CSV
with the same two columns. Each method's flag (and the majority flag) gets precision, recall
and F1 over the parcels present in both tables.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from capmon.errors import ColumnError, InputError
from capmon.processors.heterogeneity.processor import METHODS


def read_truth(path: str | Path) -> pd.DataFrame:
    """``parcel_id`` (text) and ``heterogeneous`` (bool) from a truth CSV."""
    file = Path(path)
    try:
        table = pd.read_csv(file, dtype={"parcel_id": str})
    except FileNotFoundError as exc:
        raise InputError(f"truth table {file} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{file}: not a readable CSV ({exc})") from exc
    missing = [c for c in ("parcel_id", "heterogeneous") if c not in table.columns]
    if missing:
        present = ", ".join(map(str, table.columns))
        raise ColumnError(f"{file}: no {', '.join(missing)} column (columns: {present})")
    return pd.DataFrame(
        {"parcel_id": table["parcel_id"], "heterogeneous": table["heterogeneous"].astype(bool)}
    )


def evaluate_heterogeneity(product: str | Path, truth: str | Path) -> dict[str, float]:
    """Precision, recall and F1 of each method of a heterogeneity product against ``truth``."""
    folder = Path(product)
    try:
        flags = pd.read_csv(folder / "heterogeneity.csv", dtype={"ori_id": str})
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder} is not a complete heterogeneity product ({exc})") from exc
    reference = read_truth(truth).rename(
        columns={"parcel_id": "truth_parcel_id", "heterogeneous": "truth_heterogeneous"}
    )
    joined = flags.merge(reference, left_on="ori_id", right_on="truth_parcel_id", how="inner")
    if joined.empty:
        raise InputError(f"no parcel of {folder} is in the truth table {truth}")
    actual = joined["truth_heterogeneous"].to_numpy(bool)
    figures: dict[str, float] = {
        "het_parcels": float(len(joined)),
        "het_true": float(actual.sum()),
    }
    columns: dict[str, str] = {m: f"{m}_flag" for m in METHODS if f"{m}_flag" in joined}
    columns["majority"] = "heterogeneous"
    best = 0.0
    for name, column in columns.items():
        predicted = joined[column].fillna(False).astype(bool).to_numpy()
        tp = int((predicted & actual).sum())
        precision = tp / predicted.sum() if predicted.any() else 0.0
        recall = tp / actual.sum() if actual.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        figures[f"het_{name}_precision"] = precision
        figures[f"het_{name}_recall"] = recall
        figures[f"het_{name}_f1"] = f1
        best = max(best, f1)
    figures["het_best_f1"] = best
    return figures
