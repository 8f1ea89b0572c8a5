"""Mowing detections against reference mowing dates: ``capmon eval mowing`` and the demo.

A detected event is dated by the end of its interval (the first acquisition after the cut: the
earliest date a product can say "mown"). It matches a reference mowing on the same parcel when
``end - reference`` lies in the tolerance window (default [-3, +20] days); each reference and
each event matches at most once (optimal assignment per parcel, closest dates first).
Precision = matched events / events, recall = matched references / references. The delay of a
match is ``end - reference`` (``mean_delay_days``; its absolute value is the date error,
``median_abs_date_error_days``); when the events carry the acquisition that revealed them
(``detected_on``), ``mean_availability_delay_days`` is the near-real-time delay. Unmatched
events are false alarms, counted by the month of their end (``false_alarms_by_month``).

:func:`naive_drop_events` is the reference baseline every method must beat: an event wherever
NDVI drops by at least 0.12 between two successive observations from at least 0.45.

Reference files:

* a simple CSV with a parcel id column (``parcel_id``, ``parcel``, ``NewID``, ``ori_id``,
  ``id``, ``FIELD_ID``, ``PLOTID``) and a date column (``date``, ``mowing_date``,
  ``mow_date``); a row with an empty date lists a parcel known not to be mown;
* the synthetic world's truth ``truth/events.csv`` (``parcel_id, year, date, event, ...``):
  only ``event == mowing`` rows are used;
* a vector or Parquet file (``.gpkg``, ``.shp``, ``.geojson``, ``.parquet``) with the same
  columns, e.g. points of field checks (the geometry is ignored); a ``type`` column keeps only
  its ``mowing_types`` rows for dates (``k`` = mowing in the GMD project's files), other rows
  list their parcel as checked, not mown.

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

ID_COLUMNS = ("parcel_id", "parcel", "newid", "ori_id", "plotid", "id", "field_id")
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
    mean_abs_date_error_days: float
    median_abs_date_error_days: float
    false_alarms: int
    false_alarms_by_month: dict[str, int]
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
        out["false_alarms_by_month"] = dict(self.false_alarms_by_month)
        return {f"{prefix}{key}": value for key, value in out.items()}


def _normalise(name: str) -> str:
    return name.strip().lower()


VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".parquet", ".geoparquet")


def _read_table(source: Path) -> pd.DataFrame:
    """Every column of a CSV, vector or Parquet reference as text ('' for missing)."""
    if source.suffix.lower() not in VECTOR_SUFFIXES:
        try:
            return pd.read_csv(source, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"{source}: not a readable CSV ({exc})") from exc
    try:
        if source.suffix.lower() in (".parquet", ".geoparquet"):
            frame = pd.read_parquet(source)
        else:
            import pyogrio

            frame = pyogrio.read_dataframe(source, read_geometry=False)
    except Exception as exc:  # any reader failure (pyogrio, pyarrow) is a bad input file
        raise InputError(f"{source}: not a readable table ({exc})") from exc
    frame = frame.drop(columns=[c for c in ("geometry",) if c in frame.columns])
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            text = values.dt.strftime("%Y-%m-%d")
        else:
            text = values.astype(object).where(values.notna(), "").astype(str)
        out[str(column)] = text.fillna("")
    return out


def load_reference(
    path: str | Path,
    start: date | None = None,
    end: date | None = None,
    mowing_types: tuple[str, ...] = ("k", "mowing", "m"),
) -> pd.DataFrame:
    """Reference mowings: ``ref_id`` (text) and ``date`` (NaT: listed, not mown), and ``year``
    when the table has a year column (the year a parcel was checked)."""
    source = Path(path)
    if not source.is_file():
        raise NotFoundError(f"reference file {source} not found")
    table = _read_table(source)
    columns = {_normalise(c): c for c in table.columns}
    if "event" in columns:  # the synthetic world's truth/events.csv
        table = table[table[columns["event"]].str.strip().str.lower() == "mowing"]
    if "type" in columns and "event" not in columns:
        # e.g. the GMD field checks: k = mowing, n = checked, not mown
        kinds = table[columns["type"]].str.strip().str.lower()
        other = ~kinds.isin([t.lower() for t in mowing_types])
        date_name = next((columns[c] for c in DATE_COLUMNS if c in columns), None)
        if date_name is not None and other.any():
            table = table.copy()
            table.loc[other, date_name] = ""
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
    if "year" in columns:  # the field-check year (the GMD table's rows of checked, not mown)
        years = pd.to_numeric(table[columns["year"]].str.strip(), errors="coerce")
        reference["year"] = years.astype("Int64").to_numpy()
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
    false_alarm_months: list[str] = []
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
        hit = {e for e, _ in pairs}
        false_alarm_months += [str(ends[e])[:7] for e in range(len(ends)) if e not in hit]
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
    absolute = np.abs(np.array(delays, dtype=float))
    by_month = pd.Series(false_alarm_months, dtype=str).value_counts().sort_index()
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
        mean_abs_date_error_days=(
            round(float(absolute.mean()), 2) if len(absolute) else float("nan")
        ),
        median_abs_date_error_days=float(np.median(absolute)) if len(absolute) else float("nan"),
        false_alarms=len(false_alarm_months),
        false_alarms_by_month={str(k): int(v) for k, v in by_month.items()},
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


NAIVE_DROP = 0.12
NAIVE_LEVEL = 0.45


def naive_drop_events(
    rows: pd.DataFrame,
    drop: float = NAIVE_DROP,
    level: float = NAIVE_LEVEL,
    start: date | None = None,
    end: date | None = None,
) -> pd.DataFrame:
    """The naive baseline: an event (``NewID``, ``end``) at each NDVI observation at least
    ``drop`` below the parcel's previous observation, when that one was at least ``level``.

    ``rows``: long MDB rows of one optical signal (``parcel_id``, ``date``, ``mean``); several
    rows of one parcel and day keep the first. Values below 0.1 are not observations (as
    Sen4CAP's ``corrupted_th``). Events are kept when their date is in [``start``, ``end``];
    earlier observations still serve as the previous value.
    """
    frame = pd.DataFrame(
        {
            "NewID": rows["parcel_id"].astype("int64"),
            "end": pd.to_datetime(rows["date"]).dt.normalize(),
            "ndvi": pd.to_numeric(rows["mean"], errors="coerce"),
        }
    )
    frame = frame[frame["ndvi"] >= 0.1].drop_duplicates(["NewID", "end"], keep="first")
    frame = frame.sort_values(["NewID", "end"], kind="stable")
    previous = frame.groupby("NewID")["ndvi"].shift(1)
    hit = (previous >= level) & (previous - frame["ndvi"] >= drop)
    if start is not None:
        hit &= frame["end"] >= pd.Timestamp(start)
    if end is not None:
        hit &= frame["end"] <= pd.Timestamp(end)
    return frame.loc[hit, ["NewID", "end"]].reset_index(drop=True)
