"""Changing and deleting sites and seasons from the service, safely.

* Names given over HTTP must be safe path components (site names name the L4C practice
  folders, season names the MDB folders): letters, digits, ``_``, ``-``, ``.`` and, for sites,
  spaces.
* A season's dates are changed with the rules of :class:`capmon.sites.SeasonDates` and without
  overlapping another season of the site. A season is never renamed (its MDB folder has its
  name).
* Deleting a site or a season that holds data (seasons, declarations, LUTs, products, jobs,
  practices, configs, an MDB) is refused unless forced. Even forced, it is refused while a job
  of the site is active or a run holds a season lock. A forced delete first moves the data's
  folders out of the way (one rename each, inside the workspace), then removes the catalogue
  rows in one transaction (moving the folders back if that fails), then deletes the moved
  folders. Files outside the workspace (input products) are never touched. The site's id is
  removed from every user's site list, so a later site that reuses the id is not visible to
  them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from capmon.catalog.models import (
    CropLut,
    DeclarationSet,
    Job,
    Product,
    ScheduledTask,
    Season,
    SeasonLock,
    Site,
    User,
)
from capmon.errors import ConflictError, StorageError
from capmon.orchestrator.jobs import ACTIVE, job_folder
from capmon.orchestrator.lock import STALE_AFTER_SECONDS
from capmon.processors.l4b.stored import L4B_CONFIG_ROOT
from capmon.service.upload_files import UPLOAD_TMP
from capmon.sites import SeasonDates, get_season
from capmon.workspace import Workspace

log = logging.getLogger("capmon.service")


def site_folders(workspace: Workspace, site: Site) -> list[Path]:
    """The workspace folders that hold a site's data (existing or not)."""
    short = site.short_name
    return [
        workspace.path(Path("parcels") / short),
        workspace.path(Path("luts") / short),
        workspace.path(Path("mdb") / short),
        workspace.path(Path("products") / short),
        workspace.path(Path("practices") / site.name),
        workspace.path(L4B_CONFIG_ROOT / short),
    ]


def season_folder(workspace: Workspace, site: Site, season: str) -> Path:
    """The folder of a season's MDBs (one per declaration set)."""
    return workspace.path(Path("mdb") / site.short_name / season)


@dataclass
class Holdings:
    """What a site or season holds: counts by kind (singular names), folders, busy jobs."""

    counts: dict[str, int] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)
    job_ids: list[int] = field(default_factory=list)
    active_jobs: list[int] = field(default_factory=list)
    live_locks: list[str] = field(default_factory=list)

    def describe(self, home: Path) -> str:
        parts = [f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in self.counts.items() if n]
        if self.folders:
            shown = ", ".join(f"{f.relative_to(home).as_posix()}/" for f in self.folders[:6])
            parts.append(f"files in {shown}")
        return ", ".join(parts) or "nothing"

    @property
    def empty(self) -> bool:
        return not any(self.counts.values()) and not self.folders


def _count(session: Session, model: type[DeclarationSet | CropLut | Product], site: Site) -> int:
    return int(
        session.scalar(select(func.count()).select_from(model).where(model.site_id == site.id)) or 0
    )


def _live_locks(session: Session, season_ids: Sequence[int]) -> list[str]:
    if not season_ids:
        return []
    limit = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=STALE_AFTER_SECONDS)
    out = []
    for lock in session.scalars(select(SeasonLock).where(SeasonLock.season_id.in_(season_ids))):
        beat = lock.heartbeat_at
        beat = beat if beat.tzinfo is not None else beat.replace(tzinfo=dt.UTC)
        if beat >= limit:
            out.append(f"season id {lock.season_id} (job {lock.job_id}, pid {lock.pid})")
    return out


def site_holdings(workspace: Workspace, session: Session, site: Site) -> Holdings:
    jobs = session.execute(select(Job.id, Job.status).where(Job.site_id == site.id)).all()
    holdings = Holdings(
        counts={
            "season": len(site.seasons),
            "declaration set": _count(session, DeclarationSet, site),
            "crop LUT": _count(session, CropLut, site),
            "product": _count(session, Product, site),
            "job": len(jobs),
        },
        folders=[f for f in site_folders(workspace, site) if f.exists()],
        job_ids=[int(j.id) for j in jobs],
        active_jobs=[int(j.id) for j in jobs if j.status in ACTIVE],
        live_locks=_live_locks(session, [s.id for s in site.seasons]),
    )
    jobs_folders = (job_folder(workspace, i) for i in holdings.job_ids)
    holdings.folders += [f for f in jobs_folders if f.exists()]
    return holdings


def season_holdings(workspace: Workspace, session: Session, site: Site, season: Season) -> Holdings:
    jobs = session.execute(select(Job.id, Job.status).where(Job.season_id == season.id)).all()
    folder = season_folder(workspace, site, season.name)
    return Holdings(
        counts={"job": len(jobs)},
        folders=[folder] if folder.exists() else [],
        job_ids=[int(j.id) for j in jobs],
        active_jobs=[int(j.id) for j in jobs if j.status in ACTIVE],
        live_locks=_live_locks(session, [season.id]),
    )


def _refuse_busy(what: str, holdings: Holdings) -> None:
    if holdings.active_jobs:
        listed = ", ".join(str(i) for i in holdings.active_jobs[:10])
        raise ConflictError(
            f"{what} has active jobs ({listed}); cancel them or let them finish first"
        )
    if holdings.live_locks:
        raise ConflictError(f"{what} is being processed: {'; '.join(holdings.live_locks)}")


class _MovedFolders:
    """Folders moved aside into one trash folder; put back or deleted afterwards."""

    def __init__(self, workspace: Workspace) -> None:
        self.trash = workspace.path(UPLOAD_TMP / f"deleted-{uuid.uuid4().hex}")
        self.moved: list[tuple[Path, Path]] = []

    def move(self, folders: Sequence[Path]) -> None:
        self.trash.mkdir(parents=True, exist_ok=True)
        try:
            for number, folder in enumerate(folders):
                target = self.trash / f"{number}-{folder.name}"
                os.replace(folder, target)
                self.moved.append((folder, target))
        except OSError as exc:
            self.restore()
            raise StorageError(f"cannot move {folder} aside to delete it: {exc}") from exc

    def restore(self) -> None:
        for original, target in reversed(self.moved):
            try:
                original.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, original)
            except OSError:
                log.exception("could not put %s back from %s", original, target)
        self.moved = []
        shutil.rmtree(self.trash, ignore_errors=True)

    def purge(self) -> None:
        shutil.rmtree(self.trash, ignore_errors=True)
        if self.trash.exists():
            log.error("could not remove %s; delete it by hand", self.trash)


def delete_site(workspace: Workspace, site_id: int, *, force: bool) -> None:
    """Delete a site (see the module docstring for what ``force`` allows)."""
    with workspace.session() as session:
        site = session.get(Site, site_id)
        if site is None:
            return
        name = site.name
        holdings = site_holdings(workspace, session, site)
    if not holdings.empty and not force:
        raise ConflictError(
            f"site {name!r} holds {holdings.describe(workspace.home)}; delete it with force=true "
            "to remove them and their files"
        )
    with workspace.session() as session:
        site = session.get(Site, site_id)
        if site is None:
            return
        _refuse_busy(f"site {name!r}", site_holdings(workspace, session, site))
    moved = _MovedFolders(workspace)
    moved.move(holdings.folders)
    try:
        with workspace.session() as session:
            site = session.get(Site, site_id)
            if site is not None:
                holdings = site_holdings(workspace, session, site)
                _refuse_busy(f"site {name!r}", holdings)
                for user in session.scalars(select(User)):
                    if site_id in (user.sites or []):
                        user.sites = [s for s in user.sites if s != site_id]
                for model in (ScheduledTask, Product, DeclarationSet, CropLut):
                    session.execute(delete(model).where(model.site_id == site_id))
                for job in session.scalars(select(Job).where(Job.site_id == site_id)):
                    session.delete(job)
                session.delete(site)
    except BaseException:
        moved.restore()
        raise
    moved.purge()
    log.info("deleted site %s (%s)", name, holdings.describe(workspace.home))


def update_season(
    site: Site,
    season: Season,
    *,
    start: date | None = None,
    mid: date | None = None,
    end: date | None = None,
    enabled: bool | None = None,
) -> Season:
    """Change a season's dates (validated, no overlap) or its enabled flag."""
    if start is not None or mid is not None or end is not None:
        new_start = start or season.start_date
        new_end = end or season.end_date
        new_mid = mid
        if new_mid is None and new_start <= season.mid_date <= new_end:
            new_mid = season.mid_date
        dates = SeasonDates.parse(new_start, new_end, new_mid)
        for other in site.seasons:
            if other.id == season.id:
                continue
            if other.start_date <= dates.end and dates.start <= other.end_date:
                raise ConflictError(
                    f"season {season.name!r} ({dates.start} to {dates.end}) would overlap "
                    f"season {other.name!r} ({other.start_date} to {other.end_date}) of site "
                    f"{site.name!r}"
                )
        season.start_date, season.mid_date, season.end_date = dates.start, dates.mid, dates.end
    if enabled is not None:
        season.enabled = enabled
    return season


def delete_season(workspace: Workspace, site_id: int, season_name: str, *, force: bool) -> None:
    """Delete a season; with data (an MDB, jobs) only when forced. Products stay (they belong
    to the site and are listed by date); jobs stay in the history without their season."""
    with workspace.session() as session:
        site = session.get(Site, site_id)
        if site is None:
            return
        season = get_season(session, site, season_name)
        holdings = season_holdings(workspace, session, site, season)
        what = f"season {season.name!r} of site {site.name!r}"
    if not holdings.empty and not force:
        jobs = holdings.counts.get("job", 0)
        held = [f"{jobs} job{'' if jobs == 1 else 's'}"] if jobs else []
        held += ["an extracted MDB"] if holdings.folders else []
        raise ConflictError(
            f"{what} holds {' and '.join(held)}; delete it with force=true to remove its MDB "
            "(jobs are kept without their season)"
        )
    _refuse_busy(what, holdings)
    moved = _MovedFolders(workspace)
    moved.move(holdings.folders)
    try:
        with workspace.session() as session:
            site = session.get(Site, site_id)
            if site is not None:
                season = get_season(session, site, season_name)
                latest = season_holdings(workspace, session, site, season)
                _refuse_busy(what, latest)
                session.execute(delete(ScheduledTask).where(ScheduledTask.season_id == season.id))
                session.execute(delete(SeasonLock).where(SeasonLock.season_id == season.id))
                for job in session.scalars(select(Job).where(Job.season_id == season.id)):
                    job.season_id = None
                session.delete(season)
    except BaseException:
        moved.restore()
        raise
    moved.purge()


def publish_site(workspace: Workspace, site_name: str, published: bool = True) -> None:
    """Open (or close) anonymous read of a site's processor products over the service's STAC
    items and assets, for agencies that share them openly (``capmon site publish``). Input
    products, MDBs, declarations and every other route still need a token."""
    from capmon.sites import get_site

    with workspace.session() as session:
        get_site(session, site_name).published = published
