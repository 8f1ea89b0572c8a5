"""Mowing detections against reference mowing dates: ``capmon eval mowing`` and the demo.

A detected event is dated by the end of its interval (the first acquisition after the cut: the
earliest date a product can say "mown"). It matches a reference mowing on the same parcel when
``end - reference`` lies in the tolerance window (default [-3, +20] days); each reference and
each event matches at most once (optimal assignment per parcel, closest dates first).
Precision = matched events / events, recall = matched references / references. The delay of a
match is ``end - reference`` (``mean_delay_days``); when the events carry the acquisition that
revealed them (``detected_on``), ``mean_availability_delay_days`` is the near-real-time delay.

Reference files:

* a simple CSV with a parcel id column (``parcel_id``, ``parcel``, ``NewID``, ``ori_id``,
  ``id``, ``FIELD_ID``) and a date column (``date``, ``mowing_date``, ``mow_date``); a row with
  an empty date lists a parcel known not to be mown;
* the synthetic world's truth ``truth/events.csv`` (``parcel_id, year, date, event, ...``):
  only ``event == mowing`` rows are used.

The parcels evaluated are those of the product (the declared grassland). Reference ids are
matched to the product's ``Ori_id`` (declared parcel ids; the synthetic world's truth uses
them) or to ``NewID``, whichever matches more (or as ``id_column`` says). A product parcel
without reference rows counts as not mown; reference rows of parcels outside the product are
counted in ``reference_outside_product`` and left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from capmon.errors import ColumnError, InputError, NotFoundError

ID_COLUMNS = ("parcel_id", "parcel", "newid", "ori_id", "id", "field_id")
DATE_COLUMNS = ("date", "mowing_date", "mow_date", "mowing")
IdColumn = Literal["auto", "ori_id", "NewID"]


@dataclass(frozen=True)
class MowingEvaluation:
    """Detection scores of one product against a reference."""

    parcels: int
    reference_events: int
    detected_events: int
    matched: int
    precision: float
    recall: float
    f1: float
    mean_delay_days: float
    median_delay_days: float
    mean_availability_delay_days: float
    count_mae: float
    count_bias: float
    count_exact: float
    tolerance_days: tuple[int, int]
    id_column: str
    reference_outside_product: int

    def figures(self, prefix: str = "") -> dict[str, Any]:
        """Flat figures (for the demo and JSON)."""
        out = asdict(self)
        out["tolerance_days"] = list(self.tolerance_days)
        return {f"{prefix}{key}": value for key, value in out.items()}


def _normalise(name: str) -> str:
    return name.strip().lower()


def load_reference(
    path: str | Path, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """Reference mowings: ``ref_id`` (text) and ``date`` (NaT: listed, not mown)."""
    source = Path(path)
    if not source.is_file():
        raise NotFoundError(f"reference file {source} not found")
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{source}: not a readable CSV ({exc})") from exc
    columns = {_normalise(c): c for c in table.columns}
    if "event" in columns:  # the synthetic world's truth/events.csv
        table = table[table[columns["event"]].str.strip().str.lower() == "mowing"]
    id_column = next((columns[c] for c in ID_COLUMNS if c in columns), None)
    date_column = next((columns[c] for c in DATE_COLUMNS if c in columns), None)
    if id_column is None or date_column is None:
        raise ColumnError(
            f"{source}: a reference needs a parcel id column ({', '.join(ID_COLUMNS)}) and a "
            f"date column ({', '.join(DATE_COLUMNS)}); it has {', '.join(table.columns)}"
        )
    raw_dates = table[date_column].str.strip()
    dates = pd.to_datetime(raw_dates.where(raw_dates != ""), errors="coerce", format="mixed")
    bad = dates.isna() & (raw_dates != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise InputError(
            f"{source}, line {row}: {date_column} = {raw_dates[bad].iloc[0]!r} is not a date"
        )
    reference = pd.DataFrame(
        {"ref_id": table[id_column].str.strip().to_numpy(), "date": dates.dt.normalize()}
    )
    if (reference["ref_id"] == "").any():
        row = int(np.flatnonzero((reference["ref_id"] == "").to_numpy())[0]) + 2
        raise InputError(f"{source}, line {row}: empty parcel id in {id_column}")
    if start is not None:
        reference = reference[reference["date"].isna() | (reference["date"] >= pd.Timestamp(start))]
    if end is not None:
        reference = reference[reference["date"].isna() | (reference["date"] <= pd.Timestamp(end))]
    return reference.reset_index(drop=True)


def _product_tables(product: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(parcels: NewID, Ori_id, proc; events: NewID, end, detected_on) of an L4B product."""
    from capmon.processors.l4b.outputs import read_product

    return read_product(Path(product))


def _ids(
    parcels: pd.DataFrame, reference: pd.DataFrame, id_column: IdColumn
) -> tuple[str, dict[str, int]]:
    by_ori = dict(zip(parcels["Ori_id"].astype(str).str.strip(), parcels["NewID"].astype(int),
                      strict=False))  # fmt: skip
    by_new = {str(int(n)): int(n) for n in parcels["NewID"]}
    refs = set(reference["ref_id"])
    if id_column == "ori_id":
        return "ori_id", by_ori
    if id_column == "NewID":
        return "NewID", by_new
    if len(refs & set(by_ori)) >= len(refs & set(by_new)):
        return "ori_id", by_ori
    return "NewID", by_new


def _match(ends: np.ndarray, truths: np.ndarray, low: int, high: int) -> list[tuple[int, int]]:
    """Optimal one-to-one matches (event index, reference index) within [low, high] days."""
    if len(ends) == 0 or len(truths) == 0:
        return []
    delta = (ends[:, None] - truths[None, :]).astype("timedelta64[D]").astype(np.int64)
    feasible = (delta >= low) & (delta <= high)
    if not feasible.any():
        return []
    cost = np.where(feasible, np.abs(delta), 10_000)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if feasible[r, c]]


def score_events(
    parcels: pd.DataFrame,
    events: pd.DataFrame,
    reference: pd.DataFrame,
    tolerance_days: tuple[int, int] = (-3, 20),
    id_column: IdColumn = "auto",
) -> MowingEvaluation:
    """Score ``events`` (NewID, end[, detected_on]) of ``parcels`` (NewID, Ori_id) against
    ``reference`` (ref_id, date)."""
    low, high = int(tolerance_days[0]), int(tolerance_days[1])
    if low > high:
        raise InputError(f"tolerance window [{low}, {high}]: the first bound exceeds the second")
    used, mapping = _ids(parcels, reference, id_column)
    new_ids = reference["ref_id"].map(mapping)
    outside = int(new_ids.isna().sum())
    inside = reference.assign(NewID=new_ids)[new_ids.notna()]
    inside = inside[inside["date"].notna()]
    truth_by_parcel = {
        int(cast(int, k)): np.sort(g["date"].to_numpy().astype("datetime64[D]"))
        for k, g in inside.groupby("NewID")
    }
    has_detected_on = "detected_on" in events.columns
    event_groups = {int(cast(int, k)): g for k, g in events.groupby("NewID")}
    matched = 0
    delays: list[int] = []
    availability: list[int] = []
    count_errors: list[int] = []
    for new_id in parcels["NewID"].astype(int):
        truths = truth_by_parcel.get(new_id, np.array([], dtype="datetime64[D]"))
        group = event_groups.get(new_id)
        ends = (
            np.array([], dtype="datetime64[D]") if group is None
            else pd.to_datetime(group["end"]).to_numpy().astype("datetime64[D]")
        )  # fmt: skip
        pairs = _match(ends, truths, low, high)
        matched += len(pairs)
        for e, r in pairs:
            delays.append(int((ends[e] - truths[r]).astype(np.int64)))
            if has_detected_on and group is not None:
                seen = pd.Timestamp(group["detected_on"].iloc[e])
                if not pd.isna(seen):
                    availability.append(
                        int((np.datetime64(seen.date(), "D") - truths[r]).astype(np.int64))
                    )
        count_errors.append(len(ends) - len(truths))
    n_ref = sum(
        len(v) for k, v in truth_by_parcel.items() if k in set(parcels["NewID"].astype(int))
    )
    n_det = int(events["NewID"].isin(parcels["NewID"]).sum()) if not events.empty else 0
    precision = matched / n_det if n_det else float("nan")
    recall = matched / n_ref if n_ref else float("nan")
    f1 = (
        2 * precision * recall / (precision + recall)
        if n_det and n_ref and (precision + recall) > 0 else 0.0
    )  # fmt: skip
    errors = np.array(count_errors, dtype=float)
    return MowingEvaluation(
        parcels=len(parcels),
        reference_events=n_ref,
        detected_events=n_det,
        matched=matched,
        precision=round(precision, 4),
        recall=round(recall, 4),
        f1=round(f1, 4),
        mean_delay_days=round(float(np.mean(delays)), 2) if delays else float("nan"),
        median_delay_days=float(np.median(delays)) if delays else float("nan"),
        mean_availability_delay_days=(
            round(float(np.mean(availability)), 2) if availability else float("nan")
        ),
        count_mae=round(float(np.abs(errors).mean()), 4) if len(errors) else float("nan"),
        count_bias=round(float(errors.mean()), 4) if len(errors) else float("nan"),
        count_exact=round(float((errors == 0).mean()), 4) if len(errors) else float("nan"),
        tolerance_days=(low, high),
        id_column=used,
        reference_outside_product=outside,
    )


def evaluate_mowing(
    product: str | Path,
    reference: str | Path | pd.DataFrame,
    *,
    tolerance_days: tuple[int, int] = (-3, 20),
    start: date | None = None,
    end: date | None = None,
    id_column: IdColumn = "auto",
) -> MowingEvaluation:
    """Score an L4B product folder against reference mowing dates (see the module docstring).

    ``start``/``end`` restrict the reference dates (e.g. to the season).
    """
    parcels, events = _product_tables(product)
    if isinstance(reference, pd.DataFrame):
        table = reference
    else:
        table = load_reference(reference, start, end)
    return score_events(parcels, events, table, tolerance_days, id_column)
