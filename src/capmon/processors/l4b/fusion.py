"""Mowing events, their fusion across sensors and runs, and the non-maximum suppression.

Sen4CAP (sen4cap-system.md 6.5): events whose intervals overlap are fused, with confidence
``1 - 1 / sum(1 / (1 - c_i))``; the interval of the more confident event is kept and the
missions are joined (``S2/S1``). S2 events suppress each other when their intervals are closer
than ``non_overlap_interval_days`` (45); S1 events when their end dates are closer than 28
days. At most four events are kept, the most confident, then re-sorted by time.

Two choices where Sen4CAP's code is not explicit: a fusion of S1-only events stays at most 0.5
(the S1 confidence bound), and "the most confident four" are kept (``S2_gmd.fuse_dets`` sorts
ascending and would keep the least confident; the documented intent is the most confident).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import pandas as pd

MAX_EVENTS = 4
EVENT_COLUMNS = ("parcel_id", "start", "end", "confidence", "mission", "detected_on")


@dataclass(frozen=True)
class MowingEvent:
    """A mowing between ``start`` and ``end``, seen by ``mission`` ("S1", "S2", "S2/S1"...).

    ``detected_on`` is the acquisition that made the event known (near-real-time delay).
    """

    start: datetime
    end: datetime
    confidence: float
    mission: str
    detected_on: datetime

    def overlaps(self, other: MowingEvent) -> bool:
        return max(self.start, other.start) <= min(self.end, other.end)

    def gap_days(self, other: MowingEvent) -> float:
        """Days between the two intervals (0 when they overlap)."""
        gap = max(self.start, other.start) - min(self.end, other.end)
        return max(0.0, gap / timedelta(days=1))


def fused_confidence(confidences: Iterable[float]) -> float:
    """Sen4CAP's ``fuse_conf``: ``1 - 1 / sum(1 / (1 - c))``, below 1."""
    total = sum(1.0 / max(1e-9, 1.0 - c) for c in confidences)
    return min(0.999, 1.0 - 1.0 / total) if total > 0 else 0.0


def _missions(*names: str) -> str:
    seen: list[str] = []
    for name in names:
        for part in name.split("/"):
            if part and part not in seen:
                seen.append(part)
    return "/".join(seen)


def fuse(events: Sequence[MowingEvent]) -> list[MowingEvent]:
    """Fuse overlapping events: the more confident interval, fused confidence, joined missions."""
    fused: list[tuple[MowingEvent, list[float]]] = []
    for event in sorted(events, key=lambda e: (-e.confidence, e.end)):
        for k, (kept, confidences) in enumerate(fused):
            if kept.overlaps(event):
                confidences.append(event.confidence)
                missions = _missions(kept.mission, event.mission)
                confidence = fused_confidence(confidences)
                if all(m == "S1" for m in missions.split("/")):
                    confidence = min(confidence, 0.5)
                fused[k] = (
                    replace(kept, confidence=confidence, mission=missions,
                            detected_on=min(kept.detected_on, event.detected_on)),
                    confidences,
                )  # fmt: skip
                break
        else:
            fused.append((event, [event.confidence]))
    return sorted((e for e, _ in fused), key=lambda e: e.start)


def suppress(
    events: Sequence[MowingEvent], days: float, rule: Literal["interval", "end"]
) -> list[MowingEvent]:
    """Non-maximum suppression: the most confident first; a later one closer than ``days``
    to a kept one (interval gap for S2, end-to-end distance for S1) is dropped."""
    kept: list[MowingEvent] = []
    for event in sorted(events, key=lambda e: (-e.confidence, e.end)):
        if rule == "interval":
            close = any(event.gap_days(k) < days for k in kept)
        else:
            close = any(abs((event.end - k.end) / timedelta(days=1)) < days for k in kept)
        if not close:
            kept.append(event)
    return sorted(kept, key=lambda e: e.start)


def strongest(events: Sequence[MowingEvent], limit: int = MAX_EVENTS) -> list[MowingEvent]:
    """The ``limit`` most confident events, by time."""
    best = sorted(events, key=lambda e: (-e.confidence, e.end))[:limit]
    return sorted(best, key=lambda e: e.start)


def events_frame(events: dict[int, list[MowingEvent]]) -> pd.DataFrame:
    """Long table: one row per (parcel, event)."""
    rows = [
        (pid, e.start, e.end, e.confidence, e.mission, e.detected_on)
        for pid, parcel_events in events.items()
        for e in parcel_events
    ]
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["parcel_id"] = frame["parcel_id"].astype("int64")
    for column in ("start", "end", "detected_on"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    frame["confidence"] = frame["confidence"].astype("float64")
    frame["mission"] = frame["mission"].astype(str)
    return frame.sort_values(["parcel_id", "start"], kind="stable").reset_index(drop=True)


def events_by_parcel(frame: pd.DataFrame) -> dict[int, list[MowingEvent]]:
    """The inverse of :func:`events_frame`."""
    out: dict[int, list[MowingEvent]] = {}
    for row in frame.to_dict("records"):
        out.setdefault(int(row["parcel_id"]), []).append(
            MowingEvent(
                pd.Timestamp(row["start"]).to_pydatetime(),
                pd.Timestamp(row["end"]).to_pydatetime(),
                float(row["confidence"]),
                str(row["mission"]),
                pd.Timestamp(row["detected_on"]).to_pydatetime(),
            )
        )
    return out
