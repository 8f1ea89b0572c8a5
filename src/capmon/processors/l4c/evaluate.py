"""L4C products against the synthetic world's truth: harvest weeks and catch-crop compliance.

:func:`evaluate_practices` takes Sen4CAP L4C CSVs (or their rows) and the truth parcels table
(``truth/parcels_<year>.csv``); rows are matched by ``ORIG_ID`` = the truth ``parcel_id``.

* Harvest: over the truth parcels harvested in the year that appear in any product, the share
  whose ``H_W_START`` (Sen4CAP's ``H_WEEK``, the confirmation week) is within one week of the
  week of the true harvest date (a ``NO-HARVEST`` is a miss), the share in the same week, and
  the mean lag in weeks (``l4c_harvest_*``); the same for capmon's estimate
  ``HARVEST_W_EST_START`` (``l4c_harvest_est_*``, an ``NR`` is a miss), also over its ``HIGH``
  confidence estimates. The estimate is read from the ``Capmon_..._HarvestEstimate.csv`` next
  to each Sen4CAP CSV, or from the ``HARVEST_W_EST_START``/``HARVEST_EST_CONF`` columns of a
  product given as a table.
* Catch crops (rows of ``CatchCrop`` products): the share STRONG/MODERATE among parcels that
  have a catch crop (also without the deliberately poor catch crops), and the share WEAK/POOR
  among declared ones that have none. NR counts as a failure in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from capmon.errors import InputError

COMPLIANT = ("STRONG", "MODERATE")
NOT_COMPLIANT = ("WEAK", "POOR")


ESTIMATE_FIELDS = ["HARVEST_W_EST_START", "HARVEST_EST_CONF"]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False)


def estimate_file(csv: Path) -> Path:
    """The capmon harvest estimate file written next to a Sen4CAP L4C CSV."""
    stem = csv.name.removeprefix("Sen4CAP_L4C_").removesuffix("_CSV.csv")
    return csv.with_name(f"Capmon_L4C_{stem}_HarvestEstimate.csv")


def _rows(product: Path | str | pd.DataFrame) -> pd.DataFrame:
    if isinstance(product, pd.DataFrame):
        return product
    path = Path(product)
    if not path.is_file():
        raise InputError(f"L4C CSV {path} does not exist")
    rows = _read(path)
    estimates = estimate_file(path)
    if estimates.is_file() and not set(ESTIMATE_FIELDS) <= set(rows.columns):
        extra = _read(estimates)[["ORIG_ID", *ESTIMATE_FIELDS]].drop_duplicates("ORIG_ID")
        rows = rows.merge(extra, on="ORIG_ID", how="left")
    return rows


def _week_figures(prefix: str, found: pd.Series, true_week: pd.Series) -> dict[str, float]:
    lag = (found - true_week).dt.days / 7.0
    return {
        f"{prefix}_detected": _share(found.notna()),
        f"{prefix}_week_within_1": _share(lag.abs() <= 1.0),
        f"{prefix}_week_exact": _share(lag == 0.0),
        f"{prefix}_mean_lag_weeks": float(lag.mean()) if lag.notna().any() else np.nan,
    }


def _share(mask: pd.Series) -> float:
    return float(mask.mean()) if len(mask) else float("nan")


def evaluate_practices(
    products: Sequence[Path | str | pd.DataFrame], truth_parcels: Path | str | pd.DataFrame
) -> dict[str, float]:
    """Harvest-week accuracy and catch-crop C_INDEX rates (see the module docstring)."""
    if not products:
        raise InputError("evaluate_practices needs at least one L4C product CSV")
    truth = (
        truth_parcels.copy()
        if isinstance(truth_parcels, pd.DataFrame)
        else pd.read_csv(truth_parcels, dtype={"parcel_id": str})
    )
    frames = [_rows(p).astype({"ORIG_ID": str}) for p in products]
    rows = pd.concat(frames, ignore_index=True)
    figures: dict[str, float] = {}

    harvest_rows = rows.drop_duplicates("ORIG_ID")
    merged = harvest_rows.merge(truth, left_on="ORIG_ID", right_on="parcel_id", how="inner")
    harvested = merged[merged["harvest_date"].notna() & (merged["harvest_date"] != "")]
    true_day = pd.to_datetime(harvested["harvest_date"])
    true_week = true_day - pd.to_timedelta(true_day.dt.day_of_week, unit="D")
    found = pd.to_datetime(harvested["H_W_START"], errors="coerce", format="%Y-%m-%d")
    figures["l4c_harvest_parcels"] = float(len(harvested))
    figures |= _week_figures("l4c_harvest", found, true_week)
    if "HARVEST_W_EST_START" in harvested.columns:
        start = harvested["HARVEST_W_EST_START"]
        estimated = pd.to_datetime(start, errors="coerce", format="%Y-%m-%d")
        figures |= _week_figures("l4c_harvest_est", estimated, true_week)
        confidence = harvested.get("HARVEST_EST_CONF", pd.Series("", index=harvested.index))
        high = (confidence == "HIGH").to_numpy()
        figures["l4c_harvest_est_high_share"] = _share(pd.Series(high))
        figures["l4c_harvest_est_high_within_1"] = _week_figures(
            "high", estimated[high], true_week[high]
        )["high_week_within_1"]

    catch = rows[rows["PRACTICE"] == "CatchCrop"].merge(
        truth, left_on="ORIG_ID", right_on="parcel_id", how="inner"
    )
    if len(catch):
        present = catch[catch["catch_crop"].astype(int) == 1]
        good = present[present["catch_crop_poor"].astype(int) == 0]
        absent = catch[
            (catch["catch_crop"].astype(int) == 0) & (catch["catch_crop_declared"].astype(int) == 1)
        ]
        figures["l4c_catch_crop_parcels"] = float(len(present))
        figures["l4c_catch_crop_compliant"] = _share(present["C_INDEX"].isin(COMPLIANT))
        figures["l4c_catch_crop_compliant_not_poor"] = _share(good["C_INDEX"].isin(COMPLIANT))
        figures["l4c_catch_crop_absent_parcels"] = float(len(absent))
        figures["l4c_catch_crop_absent_flagged"] = _share(absent["C_INDEX"].isin(NOT_COMPLIANT))
    return figures
