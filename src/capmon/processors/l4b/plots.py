"""PNG plots of parcels' NDVI series with detected and reference mowings (``capmon eval
mowing --plots DIR``), so an agency can see on its own field checks why the marker says what
it says.

One PNG per parcel: the NDVI observations (dots and line), each detected event as a shaded
interval [start, end] (green when matched to a reference mowing, red when a false alarm), and
each reference mowing as a dashed vertical line (solid when detected). matplotlib runs with the
headless ``Agg`` backend; files are written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.processors.l4b.evaluate import IdColumn, _ids, _match
from capmon.workspace import atomic_path


def _x(day: object) -> float:
    """A date as a matplotlib axis value."""
    from matplotlib.dates import date2num

    # matplotlib's date2num is not annotated; it returns days since matplotlib's epoch
    return float(date2num(pd.Timestamp(str(day)).to_pydatetime()))  # type: ignore[no-untyped-call]


def sample_parcels(
    parcels: pd.DataFrame, events: pd.DataFrame, reference: pd.DataFrame, count: int,
    seed: int = 0,
) -> list[int]:  # fmt: skip
    """``count`` NewIDs, half among parcels with reference mowings, the rest among parcels
    with detections only (false alarms), then any; reproducible for a ``seed``."""
    rng = np.random.default_rng(seed)
    _used, mapping = _ids(parcels, reference, "auto")
    dated = reference[reference["date"].notna()]
    with_truth = sorted({int(mapping[r]) for r in dated["ref_id"] if r in mapping})
    detected = set(events["NewID"].astype(int)) if not events.empty else set()
    alarms_only = sorted(detected - set(with_truth))
    chosen: list[int] = []
    for pool, share in ((with_truth, (count + 1) // 2), (alarms_only, count)):
        left = [p for p in pool if p not in chosen]
        take = min(len(left), share, count - len(chosen))
        chosen += [int(p) for p in rng.choice(left, size=take, replace=False)] if take else []
    rest = [int(p) for p in parcels["NewID"] if int(p) not in chosen]
    take = min(len(rest), count - len(chosen))
    chosen += [int(p) for p in rng.choice(rest, size=take, replace=False)] if take else []
    return sorted(chosen)


def plot_parcels(
    folder: Path,
    ndvi: pd.DataFrame,
    parcels: pd.DataFrame,
    events: pd.DataFrame,
    reference: pd.DataFrame,
    new_ids: Sequence[int],
    tolerance_days: tuple[int, int] = (-3, 20),
    id_column: IdColumn = "auto",
) -> list[Path]:
    """One PNG per parcel of ``new_ids`` in ``folder``; returns the files written.

    ``ndvi``: long MDB rows (``parcel_id`` = NewID, ``date``, ``mean``); ``events``: NewID,
    start, end; ``reference``: ref_id, date (as :func:`load_reference`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not new_ids:
        raise InputError("no parcel to plot")
    folder.mkdir(parents=True, exist_ok=True)
    _used, mapping = _ids(parcels, reference, id_column)
    names = dict(zip(parcels["NewID"].astype(int), parcels["Ori_id"].astype(str), strict=False))
    truth = reference.assign(NewID=reference["ref_id"].map(mapping)).dropna(subset=["NewID"])
    written: list[Path] = []
    for new_id in new_ids:
        own = ndvi[ndvi["parcel_id"] == new_id].sort_values("date")
        own_events = events[events["NewID"] == new_id] if not events.empty else events
        dates = np.sort(
            truth.loc[truth["NewID"] == new_id, "date"].dropna().to_numpy().astype("datetime64[D]")
        )
        ends = pd.to_datetime(own_events["end"]).to_numpy().astype("datetime64[D]") \
            if len(own_events) else np.array([], dtype="datetime64[D]")  # fmt: skip
        pairs = _match(ends, dates, *tolerance_days)
        hit_events, hit_truth = {e for e, _ in pairs}, {r for _, r in pairs}
        figure, axis = plt.subplots(figsize=(9, 3.2))
        axis.plot(pd.to_datetime(own["date"]), own["mean"], "o-", color="0.3", ms=3, lw=0.8,
                  label="NDVI")  # fmt: skip
        for k, row in enumerate(own_events.to_dict("records")):
            colour = "tab:green" if k in hit_events else "tab:red"
            axis.axvspan(_x(row["start"]), _x(row["end"]), color=colour,
                         alpha=0.25, label="detected (matched)" if k in hit_events
                         else "detected (false alarm)")  # fmt: skip
        for k, day in enumerate(dates):
            found = k in hit_truth
            axis.axvline(_x(day), color="tab:blue", ls="-" if found else "--",
                         label="reference (found)" if found else "reference (missed)")  # fmt: skip
        handles, labels = axis.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        axis.legend(unique.values(), unique.keys(), fontsize=7, loc="lower left")
        axis.set_ylim(-0.1, 1.0)
        axis.set_ylabel("NDVI")
        axis.set_title(f"parcel {names.get(new_id, new_id)} (NewID {new_id})", fontsize=9)
        figure.autofmt_xdate()
        figure.tight_layout()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in names.get(new_id, ""))
        target = folder / f"mowing_{new_id}_{safe}.png"
        with atomic_path(target) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
        plt.close(figure)
        written.append(target)
    return written
