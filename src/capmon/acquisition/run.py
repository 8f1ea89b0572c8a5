"""Acquiring a season: search every source, download what is missing, register it.

:func:`acquire_season` searches each enabled source's collections for the site's AOI and the
season (plus ``look_back_days``, up to ``until``), then, in the sources' order:

1. items over ``max_cloud`` are *ignored* (history says so), as are items of an acquisition
   already in the workspace or offered by a source listed earlier (same sensor, tile or orbit
   and minute: two providers' copies of one scene);
2. items whose product folder is complete are *already there* (a rerun downloads nothing);
3. the others are *queued*, then downloaded in parallel (``concurrency`` threads per source)
   within the source's daily quota (over it they stay queued for the next day's run), laid out
   in the workspace (:mod:`.layout`) and recorded in the download history;
4. the complete products are registered in the catalogue (``capmon products ingest``).

A source that cannot be reached, refuses the credentials or rate-limits for too long is
reported by name and the other sources go on; a product that fails is recorded with its
reason and the others go on. The report says whether the acquisition is complete or partial.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from capmon.acquisition import history, layout
from capmon.acquisition.download import RemoteFile, fetch
from capmon.acquisition.http import SourceClient, SourceUnavailableError, redact
from capmon.acquisition.search import Candidate, search, search_interval
from capmon.acquisition.sources import DataSource, load_sources, select_sources
from capmon.catalog.models import DownloadHistory, DownloadStatus, Product, Season, Site
from capmon.errors import CapmonError, InputError
from capmon.workspace import Workspace

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
"""``progress(bytes done, bytes expected, product name)`` while downloading."""


@dataclass
class AcquisitionReport:
    """What :func:`acquire_season` did (names are STAC item ids)."""

    site: str
    season: str
    start: str
    end: str
    dry_run: bool = False
    found: dict[str, int] = field(default_factory=dict)
    """Items found per source (after the AOI / tile / orbit filters)."""
    downloaded: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    """What a dry run would download."""
    queued: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    source_errors: list[tuple[str, str]] = field(default_factory=list)
    skipped_sources: list[tuple[str, str]] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    ingest_failed: list[tuple[str, str]] = field(default_factory=list)
    bytes_downloaded: int = 0
    retries: int = 0
    seconds: float = 0.0

    @property
    def partial(self) -> bool:
        """Whether something could not be done (a source, a product or its registration)."""
        return bool(self.failed or self.source_errors or self.ingest_failed)

    def summary(self) -> str:
        verb = "would download" if self.dry_run else "downloaded"
        count = len(self.planned) if self.dry_run else len(self.downloaded)
        text = (
            f"{sum(self.found.values())} products found, {verb} {count} "
            f"({self.bytes_downloaded / 1e6:.1f} MB), {len(self.already_there)} already there, "
            f"{len(self.ignored)} ignored, {len(self.queued)} queued, {len(self.failed)} failed, "
            f"{len(self.registered)} registered"
        )
        if self.source_errors:
            text += "; unavailable sources: " + ", ".join(name for name, _ in self.source_errors)
        if self.skipped_sources:
            text += "; skipped sources: " + ", ".join(name for name, _ in self.skipped_sources)
        return text + (" (partial)" if self.partial else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "season": self.season,
            "interval": [self.start, self.end],
            "dry_run": self.dry_run,
            "complete": not self.partial,
            "found": dict(self.found),
            "downloaded": list(self.downloaded),
            "already_there": list(self.already_there),
            "planned": list(self.planned),
            "queued": [list(q) for q in self.queued],
            "ignored": [list(i) for i in self.ignored],
            "failed": [list(f) for f in self.failed],
            "source_errors": [list(e) for e in self.source_errors],
            "skipped_sources": [list(s) for s in self.skipped_sources],
            "registered": list(self.registered),
            "ingest_failed": [list(f) for f in self.ingest_failed],
            "bytes_downloaded": self.bytes_downloaded,
            "retries": self.retries,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class _Job:
    """A product to download."""

    candidate: Candidate
    folder: Path
    files: list[RemoteFile]
    row_id: int = 0


class _Quota:
    """A source's daily quota (products and bytes), shared by its download threads."""

    def __init__(self, source: DataSource, products: int, size: int) -> None:
        self._lock = threading.Lock()
        self.products = products
        self.size = size
        self._source = source

    def take(self) -> str | None:
        """None when one more product may start, else why not."""
        with self._lock:
            limit = self._source.quota_products_per_day
            if limit is not None and self.products >= limit:
                return f"daily quota of source {self._source.name} reached ({limit} products)"
            gigabytes = self._source.quota_gb_per_day
            if gigabytes is not None and self.size >= gigabytes * 1e9:
                return f"daily quota of source {self._source.name} reached ({gigabytes:g} GB)"
            self.products += 1
            return None

    def give_back(self) -> None:
        with self._lock:
            self.products -= 1

    def add_bytes(self, size: int) -> None:
        with self._lock:
            self.size += size


def acquire_season(
    workspace: Workspace,
    site: str,
    season: str,
    *,
    sources: Sequence[DataSource] | None = None,
    source_names: Sequence[str] | None = None,
    collections: Sequence[str] | None = None,
    max_cloud: float = 100.0,
    dry_run: bool = False,
    until: date | None = None,
    look_back_days: int = 0,
    ingest: bool = True,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> AcquisitionReport:
    """Search, download and register the season's products (see the module docstring).

    ``sources`` defaults to the workspace's ``sources.toml`` or the built-in sources;
    ``source_names`` / ``collections`` (ids or kinds) narrow them. Credentials come from
    ``environ`` (``os.environ`` by default). Never raises for a source or a product that fails:
    the report lists them (``report.partial``).
    """
    from capmon.sites import get_season, get_site

    started = time.perf_counter()
    if not 0 <= max_cloud <= 100:
        raise InputError(f"max_cloud must be a percentage in [0, 100], not {max_cloud}")
    configured = list(sources) if sources is not None else load_sources(workspace.home)
    chosen = select_sources(configured or [], source_names, collections)
    with workspace.session() as session:
        site_row = get_site(session, site)
        season_row = get_season(session, site_row, season)
    interval = search_interval(season_row.start_date, season_row.end_date, until, look_back_days)
    report = AcquisitionReport(
        site=site_row.name,
        season=season_row.name,
        start=interval[0].isoformat(),
        end=interval[1].isoformat(),
        dry_run=dry_run,
    )
    clients: dict[str, SourceClient] = {}
    try:
        candidates = _search_all(chosen, site_row, interval, clients, report, environ)
        jobs = _plan(workspace, site_row, season_row, candidates, max_cloud, report)
        if dry_run:
            report.planned = [job.candidate.name for job in jobs]
        elif jobs:
            _download(workspace, jobs, clients, report, progress)
    finally:
        for client in clients.values():
            client.close()
    if ingest and not dry_run:
        _ingest(workspace, site_row, candidates, report)
    report.seconds = time.perf_counter() - started
    logger.info("acquisition of %s/%s: %s", site_row.name, season_row.name, report.summary())
    return report


def _search_all(
    sources: Sequence[DataSource],
    site: Site,
    interval: tuple[Any, Any],
    clients: dict[str, SourceClient],
    report: AcquisitionReport,
    environ: Mapping[str, str] | None,
) -> list[Candidate]:
    found: list[Candidate] = []
    for source in sources:
        credentials = source.credentials(environ)
        missing = source.missing_credentials(credentials)
        if missing is not None:
            reason = f"no credentials: {missing}"
            logger.info("source %s skipped: %s", source.name, reason)
            report.skipped_sources.append((source.name, reason))
            continue
        client = SourceClient(source, credentials)
        clients[source.name] = client
        items: list[Candidate] = []
        try:
            for collection in source.collections:
                items.extend(search(client, collection, site.aoi, list(site.tiles), interval))
        except CapmonError as exc:
            reason = client.redact(str(exc))
            logger.warning("source %s unavailable: %s", source.name, reason)
            report.source_errors.append((source.name, reason))
            continue
        report.found[source.name] = len(items)
        found.extend(items)
    return found


def _plan(
    workspace: Workspace,
    site: Site,
    season: Season,
    candidates: Sequence[Candidate],
    max_cloud: float,
    report: AcquisitionReport,
) -> list[_Job]:
    """Classify the candidates, record them in the history (not in a dry run), and return
    the products to download."""
    home = workspace.home
    complete: dict[tuple[str, str, str, str], Candidate] = {}
    for candidate in candidates:
        folder = layout.product_folder(home, site.short_name, candidate)
        if layout.is_complete(folder, candidate):
            complete.setdefault(candidate.acquisition_key, candidate)
    taken: dict[tuple[str, str, str, str], Candidate] = dict(complete)
    decisions: list[tuple[Candidate, DownloadStatus, str | None]] = []
    jobs: list[_Job] = []
    for candidate in candidates:
        key = candidate.acquisition_key
        first = taken.get(key)
        if complete.get(key) is candidate:
            report.already_there.append(candidate.name)
            decisions.append((candidate, DownloadStatus.DOWNLOADED, None))
            continue
        cloud = candidate.cloud_cover
        if cloud is not None and cloud > max_cloud:
            reason = f"cloud cover {cloud:g}% over the limit {max_cloud:g}%"
            report.ignored.append((candidate.name, reason))
            decisions.append((candidate, DownloadStatus.IGNORED, reason))
            continue
        if first is not None and first is not candidate:
            reason = f"same acquisition as {first.name} from source {first.source.name}"
            report.ignored.append((candidate.name, reason))
            decisions.append((candidate, DownloadStatus.IGNORED, reason))
            continue
        taken[key] = candidate
        folder = layout.product_folder(home, site.short_name, candidate)
        try:
            files = layout.remote_files(candidate, folder)
        except CapmonError as exc:
            reason = redact(str(exc))
            report.failed.append((candidate.name, reason))
            decisions.append((candidate, DownloadStatus.FAILED, reason))
            continue
        jobs.append(_Job(candidate, folder, files))
        decisions.append((candidate, DownloadStatus.QUEUED, None))
    if report.dry_run:
        return jobs
    with workspace.session() as session:
        site_row = session.get(Site, site.id)
        season_row = session.get(Season, season.id)
        assert site_row is not None
        rows = history.rows_of(session, site_row)
        recorded: dict[str, DownloadHistory] = {}
        for candidate, status, why in decisions:
            existing = rows.get((candidate.source.name, candidate.name))
            if (
                status is DownloadStatus.DOWNLOADED
                and existing is not None
                and existing.status is DownloadStatus.DOWNLOADED
            ):
                recorded[candidate.name] = existing
                continue
            row = history.record(session, site_row, season_row, candidate, status, why, existing)
            if status is DownloadStatus.DOWNLOADED:
                folder = layout.product_folder(home, site.short_name, candidate)
                row.path = workspace.relative(folder)
            recorded[candidate.name] = row
        session.flush()
        for job in jobs:
            job.row_id = recorded[job.candidate.name].id
    return jobs


def _download(
    workspace: Workspace,
    jobs: Sequence[_Job],
    clients: Mapping[str, SourceClient],
    report: AcquisitionReport,
    progress: Progress | None,
) -> None:
    lock = threading.Lock()
    expected = sum(f.size or 0 for job in jobs for f in job.files)
    done = 0
    unavailable: dict[str, str] = {}

    def advance(name: str) -> Callable[[int], None]:
        def add(size: int) -> None:
            nonlocal done
            with lock:
                done += size
                if progress is not None:
                    progress(done, max(expected, done), name)

        return add

    def run(job: _Job, client: SourceClient, quota: _Quota) -> None:
        candidate = job.candidate
        name = candidate.name
        source = candidate.source.name
        if source in unavailable:
            reason = f"not tried: source {source} became unavailable ({unavailable[source]})"
            history.update(workspace, job.row_id, DownloadStatus.QUEUED, reason=reason)
            with lock:
                report.queued.append((name, reason))
            return
        over = quota.take()
        if over is not None:
            history.update(workspace, job.row_id, DownloadStatus.QUEUED, reason=over)
            with lock:
                report.queued.append((name, over))
            return
        history.update(workspace, job.row_id, DownloadStatus.DOWNLOADING)
        retries = 0
        size = 0
        try:
            for remote in job.files:
                fetched = fetch(client, remote, advance(name))
                retries += fetched.retries
                size += fetched.size
            layout.write_items(candidate, job.folder, job.files)
        except (CapmonError, OSError) as exc:
            reason = client.redact(str(exc))
            if isinstance(exc, SourceUnavailableError):
                with lock:
                    unavailable.setdefault(source, reason)
            quota.give_back()
            logger.warning("product %s from %s failed: %s", name, source, reason)
            history.update(
                workspace, job.row_id, DownloadStatus.FAILED, reason=reason, retries=retries
            )
            with lock:
                report.failed.append((name, reason))
                report.retries += retries
            return
        quota.add_bytes(size)
        history.update(
            workspace,
            job.row_id,
            DownloadStatus.DOWNLOADED,
            retries=retries,
            size_bytes=size,
            path=workspace.relative(job.folder),
        )
        logger.info(
            "product %s downloaded from %s (%d bytes, %d retries)", name, source, size, retries
        )
        with lock:
            report.downloaded.append(name)
            report.bytes_downloaded += size
            report.retries += retries

    by_source: dict[str, list[_Job]] = {}
    for job in jobs:
        by_source.setdefault(job.candidate.source.name, []).append(job)
    for source_name, source_jobs in by_source.items():
        client = clients[source_name]
        with workspace.session() as session:
            products, size = history.downloaded_today(session, source_name)
        quota = _Quota(client.source, products, size)
        with ThreadPoolExecutor(
            max_workers=client.source.concurrency, thread_name_prefix=f"acquire-{source_name}"
        ) as pool:
            for future in [pool.submit(run, job, client, quota) for job in source_jobs]:
                future.result()
        if source_name in unavailable:
            report.source_errors.append((source_name, unavailable[source_name]))
    order = {job.candidate.name: i for i, job in enumerate(jobs)}
    report.downloaded.sort(key=lambda n: order.get(n, 0))
    report.failed.sort(key=lambda f: order.get(f[0], 0))


def _ingest(
    workspace: Workspace, site: Site, candidates: Sequence[Candidate], report: AcquisitionReport
) -> None:
    """Register the complete products whose history row has no catalogue product yet."""
    from capmon.sources import IngestStatus, ingest_product

    home = workspace.home
    links: dict[int, int] = {}
    with workspace.session() as session:
        site_row = session.get(Site, site.id)
        assert site_row is not None
        rows = history.rows_of(session, site_row)
        for candidate in candidates:
            row = rows.get((candidate.source.name, candidate.name))
            if row is None or row.status is not DownloadStatus.DOWNLOADED or row.product_id:
                continue
            folder = layout.product_folder(home, site.short_name, candidate)
            if not layout.is_complete(folder, candidate):
                continue
            product_ids = []
            for path in layout.item_files(folder, candidate):
                outcome = ingest_product(session, site_row, path)
                if outcome.status in (IngestStatus.REGISTERED, IngestStatus.KNOWN):
                    if outcome.status is IngestStatus.REGISTERED:
                        report.registered.append(outcome.name or path.name)
                    product_id = session.scalar(
                        select(Product.id).where(
                            Product.site_id == site_row.id, Product.name == outcome.name
                        )
                    )
                    if product_id is not None:
                        product_ids.append(product_id)
                else:
                    report.ingest_failed.append(
                        (outcome.name or path.name, f"{outcome.status}: {outcome.reason}")
                    )
            if product_ids:
                links[row.id] = product_ids[0]
    history.link_products(workspace, links)
