"""The download history (Sen4CAP ``downloader_history``): one row per (site, source, product).

Statuses (:class:`~capmon.catalog.models.DownloadStatus`): ``queued`` (found, waiting: in
this run's queue or over a daily quota), ``downloading``, ``downloaded``, ``failed`` (with the
reason, the next run tries again), ``ignored`` (not wanted: cloud cover over the limit, the
same acquisition from another source; with the reason). ``retries`` counts the retried
requests of the last attempt; ``product_id`` is the catalogue product the download became.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from capmon.acquisition.search import Candidate
from capmon.catalog.models import DownloadHistory, DownloadStatus, Season, Site
from capmon.errors import InputError
from capmon.workspace import Workspace


def now() -> datetime:
    return datetime.now(UTC)


def rows_of(session: Session, site: Site) -> dict[tuple[str, str], DownloadHistory]:
    """The history rows of ``site`` by (source, product name)."""
    rows = session.scalars(select(DownloadHistory).where(DownloadHistory.site_id == site.id))
    return {(row.source, row.product_name): row for row in rows}


def record(
    session: Session,
    site: Site,
    season: Season | None,
    candidate: Candidate,
    status: DownloadStatus,
    reason: str | None = None,
    existing: DownloadHistory | None = None,
) -> DownloadHistory:
    """Insert or update the row of ``candidate`` (in ``session``'s transaction)."""
    row = existing
    if row is None:
        row = DownloadHistory(
            site_id=site.id,
            source=candidate.source.name,
            product_name=candidate.name,
            retries=0,
        )
        session.add(row)
    row.season_id = season.id if season is not None else row.season_id
    row.collection = candidate.collection.id
    row.kind = candidate.collection.kind
    row.acquired_at = candidate.acquired_at
    row.tile = candidate.tile
    row.relative_orbit = candidate.relative_orbit
    row.cloud_cover = candidate.cloud_cover
    row.status = status
    row.reason = reason
    row.updated_at = now()
    return row


def update(
    workspace: Workspace,
    row_id: int,
    status: DownloadStatus,
    *,
    reason: str | None = None,
    retries: int | None = None,
    size_bytes: int | None = None,
    path: str | None = None,
) -> None:
    """Set the status (and what goes with it) of one row, in its own transaction (download
    threads call this)."""
    with workspace.session() as session:
        row = session.get(DownloadHistory, row_id)
        if row is None:
            raise InputError(f"no download history row {row_id}")
        row.status = status
        row.reason = reason
        if retries is not None:
            row.retries = retries
        if size_bytes is not None:
            row.size_bytes = size_bytes
        if path is not None:
            row.path = path
        row.updated_at = now()
        if status is DownloadStatus.DOWNLOADED:
            row.downloaded_at = row.updated_at


def link_products(workspace: Workspace, links: dict[int, int]) -> None:
    """Record the catalogue product of each downloaded row (``row id -> product id``)."""
    if not links:
        return
    with workspace.session() as session:
        for row_id, product_id in links.items():
            row = session.get(DownloadHistory, row_id)
            if row is not None:
                row.product_id = product_id


def downloaded_today(session: Session, source: str) -> tuple[int, int]:
    """(products, bytes) downloaded from ``source`` since 00:00 UTC today, all sites (provider
    quotas are per account)."""
    midnight = datetime.combine(now().date(), time(), tzinfo=UTC)
    count, size = session.execute(
        select(
            func.count(DownloadHistory.id), func.coalesce(func.sum(DownloadHistory.size_bytes), 0)
        ).where(
            DownloadHistory.source == source,
            DownloadHistory.status == DownloadStatus.DOWNLOADED,
            DownloadHistory.downloaded_at >= midnight,
        )
    ).one()
    return int(count or 0), int(size or 0)


def list_history(
    session: Session,
    site: Site,
    season: Season | None = None,
    status: str | DownloadStatus | None = None,
) -> Sequence[DownloadHistory]:
    """The rows of ``site`` (and ``season``, and ``status``), by acquisition time then name."""
    query = select(DownloadHistory).where(DownloadHistory.site_id == site.id)
    if season is not None:
        query = query.where(DownloadHistory.season_id == season.id)
    if status is not None:
        try:
            wanted = DownloadStatus(str(status))
        except ValueError:
            known = ", ".join(s.value for s in DownloadStatus)
            raise InputError(f"unknown download status {status!r}; known: {known}") from None
        query = query.where(DownloadHistory.status == wanted)
    return session.scalars(
        query.order_by(DownloadHistory.acquired_at, DownloadHistory.product_name)
    ).all()


def history_json(row: DownloadHistory) -> dict[str, object]:
    """A row as JSON (``capmon acquire status --json``)."""
    return {
        "product": row.product_name,
        "source": row.source,
        "collection": row.collection,
        "kind": row.kind,
        "status": str(row.status),
        "reason": row.reason,
        "retries": row.retries,
        "acquired_at": row.acquired_at.isoformat() if row.acquired_at else None,
        "tile": row.tile,
        "relative_orbit": row.relative_orbit,
        "cloud_cover": row.cloud_cover,
        "size_bytes": row.size_bytes,
        "path": row.path,
        "product_id": row.product_id,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }
