"""What is due in a season as of a date: the schedules, their occurrences and the input keys.

Each processor of the registry declares a default :class:`Schedule` (Sen4CAP's
``default_scheduled_tasks``); a ``scheduled_task`` row overrides it, and the processor's
parameters, for a whole site (``season_id`` null) or one season, or disables it.

The occurrences of a schedule are dates of the season up to ``until``: ``daily``/``weekly``/
``every`` repeat every 1/7/``every_days`` days from the anchor (season start, mid or end, plus
``offset_days``); ``monthly`` runs at the anchor, then at each month end (Sen4CAP's "day 31");
``once`` at the anchor; ``on_products`` (the MDB) whenever products are missing.

Only the latest occurrence is run (a past season runs offline in one go: earlier occurrences
would be superseded anyway). Its *input key* hashes what the run reads: the processor id and
version, its parameters, capmon's version, the season, the declaration set, the occurrence date
and the MDB products acquired on or before that date. A finished task with the same key means
the product is up to date; a product that arrives late (dated before the occurrence) changes
the key, so the processor runs again, while a product dated after it does not.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from capmon import __version__
from capmon.catalog.models import ScheduledTask, Season, Site
from capmon.errors import InputError
from capmon.processors.registry import Processor, Schedule, all_processors, get_processor
from capmon.workspace import Workspace

SCHEDULE_KINDS = ("on_products", "daily", "weekly", "monthly", "every", "once")
ANCHORS = ("start", "mid", "end")


@dataclass(frozen=True)
class SeasonSchedule:
    """A processor's effective schedule and parameters in one season."""

    processor: str
    schedule: Schedule
    parameters: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True


def _anchor(schedule: Schedule, season: Season) -> dt.date:
    base = {"start": season.start_date, "mid": season.mid_date, "end": season.end_date}
    return base[schedule.first] + dt.timedelta(days=schedule.offset_days)


def occurrences(schedule: Schedule, season: Season, until: dt.date) -> list[dt.date]:
    """The dates a processor is due in ``season`` up to ``until`` (and the season end)."""
    last = min(until, season.end_date)
    anchor = _anchor(schedule, season)
    if anchor > last:
        return []
    if schedule.kind == "once":
        return [anchor]
    if schedule.kind == "monthly":
        dates = [anchor]
        year, month = anchor.year, anchor.month
        while True:
            end = dt.date(year, month, calendar.monthrange(year, month)[1])
            if end > last:
                break
            if end > anchor:
                dates.append(end)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return dates
    step = {"on_products": 1, "daily": 1, "weekly": 7}.get(schedule.kind, schedule.every_days)
    if step is None or step < 1:
        raise InputError(f"schedule {schedule.kind!r} needs every_days >= 1, not {step}")
    count = (last - anchor).days // step + 1
    return [anchor + dt.timedelta(days=step * k) for k in range(count)]


def latest_occurrence(schedule: Schedule, season: Season, until: dt.date) -> dt.date | None:
    dates = occurrences(schedule, season, until)
    return dates[-1] if dates else None


def season_schedules(
    workspace: Workspace, site: Site, season: Season, processors: Sequence[str] | None = None
) -> list[SeasonSchedule]:
    """Every season processor with its schedule and parameters, overrides applied.

    ``processors`` restricts the list to those ids (in that order), enabled or not.
    """
    with workspace.session() as session:
        overrides = list(
            session.scalars(
                select(ScheduledTask).where(
                    ScheduledTask.site_id == site.id,
                    (ScheduledTask.season_id == season.id) | ScheduledTask.season_id.is_(None),
                )
            )
        )
    # a season's row wins over the site's row
    by_processor: dict[str, ScheduledTask] = {}
    for override in sorted(overrides, key=lambda r: r.season_id is not None):
        by_processor[override.processor] = override
    chosen: list[Processor]
    if processors is None:
        chosen = [p for p in all_processors() if p.needs_season]
    else:
        chosen = [get_processor(name) for name in processors]
    result = []
    for processor in chosen:
        row = by_processor.get(processor.id)
        schedule = processor.schedule
        parameters: dict[str, Any] = {}
        enabled = True
        if row is not None:
            schedule = Schedule(
                kind=row.kind or schedule.kind,  # type: ignore[arg-type]
                first=row.first or schedule.first,  # type: ignore[arg-type]
                offset_days=row.offset_days
                if row.offset_days is not None
                else schedule.offset_days,
                every_days=row.every_days if row.every_days is not None else schedule.every_days,
            )
            parameters = dict(row.parameters)
            enabled = row.enabled or processors is not None
        result.append(SeasonSchedule(processor.id, schedule, parameters, enabled))
    return result


def set_schedule(
    workspace: Workspace,
    site: str,
    season: str | None,
    processor: str,
    *,
    kind: str | None = None,
    first: str | None = None,
    offset_days: int | None = None,
    every_days: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    enabled: bool = True,
) -> None:
    """Override a processor's schedule/parameters for a site (``season`` None) or a season."""
    from capmon.sites import get_season, get_site

    target = get_processor(processor)
    if kind is not None and kind not in SCHEDULE_KINDS:
        raise InputError(f"schedule kind {kind!r} is not one of {', '.join(SCHEDULE_KINDS)}")
    if first is not None and first not in ANCHORS:
        raise InputError(f"schedule anchor {first!r} is not one of {', '.join(ANCHORS)}")
    if kind == "every" and (every_days or 0) < 1:
        raise InputError("a schedule of kind 'every' needs --every-days >= 1")
    values = dict(parameters or {})
    target.parse_parameters(values)  # bad parameters fail now, naming the field
    with workspace.session() as session:
        site_row = get_site(session, site)
        season_id = get_season(session, site_row, season).id if season is not None else None
        row = session.scalar(
            select(ScheduledTask).where(
                ScheduledTask.site_id == site_row.id,
                ScheduledTask.season_id.is_(None)
                if season_id is None
                else ScheduledTask.season_id == season_id,
                ScheduledTask.processor == processor,
            )
        )
        if row is None:
            row = ScheduledTask(site_id=site_row.id, season_id=season_id, processor=processor)
            session.add(row)
        row.kind, row.first, row.offset_days, row.every_days = kind, first, offset_days, every_days
        row.parameters = values
        row.enabled = enabled


def input_key(parts: Mapping[str, Any]) -> str:
    """The hex SHA-256 of a canonical JSON of ``parts`` (what a task's output depends on)."""
    text = json.dumps({**parts, "capmon": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def processor_key(
    processor: Processor,
    parameters: Mapping[str, Any],
    season: Season,
    declaration_set_id: int,
    occurrence: dt.date,
    mdb_products: Iterable[tuple[str, dt.date]],
) -> str:
    """The input key of a processor's run for one occurrence (see the module docstring)."""
    used = sorted(name for name, day in mdb_products if day <= occurrence)
    return input_key(
        {
            "processor": processor.id,
            "version": processor.version,
            "parameters": dict(parameters),
            "season": season.id,
            "declarations": declaration_set_id,
            "occurrence": occurrence.isoformat(),
            "products": used,
        }
    )


def processor_parameters(
    processor: Processor, parameters: Mapping[str, Any], occurrence: dt.date
) -> dict[str, Any]:
    """The parameters of a scheduled run: a processor with an ``until`` parameter gets the
    occurrence date unless one is given."""
    values = dict(parameters)
    if "until" in processor.parameters.model_fields and "until" not in values:
        values["until"] = occurrence.isoformat()
    processor.parse_parameters(values)
    return values
