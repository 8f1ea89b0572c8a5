"""Season runs on dask.distributed: plan, take the season lock, extract, compact, process.

``run_season`` is what ``capmon season run`` and ``capmon watch`` call. Under the season lock
(:mod:`capmon.orchestrator.lock`) it works out what is due as of ``until``
(:mod:`capmon.orchestrator.plan`): the season's products missing from the MDB, and the
processors whose latest occurrence has no finished task with the same input key. When nothing
is due it returns at once, without a job and without starting a cluster. Otherwise it records a
job (tasks ``mdb``, ``compact``, one per processor; one step per product or run), then:

1. submits one extraction unit per product to the Dask workers (a bounded window of units in
   flight, grid by grid so that each worker reuses its parcels' pixels); each unit writes its
   product's MDB file atomically, so a unit that is lost (worker killed) or retried (Dask
   ``retries``) writes the same file once;
2. compacts the MDB (on the driver);
3. submits the due processors, one unit each, and records each finished one with its key.

Between units it reads the job's status: ``capmon jobs pause`` stops submitting (units in
flight finish), ``resume`` goes on, ``cancel`` cancels what is queued.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from capmon.catalog.models import (
    ActivityStatus,
    DeclarationSet,
    Product,
    Season,
    Site,
    StartType,
)
from capmon.errors import CapmonError, InputError
from capmon.mdb.extract import mdb_folder
from capmon.mdb.store import MdbStore, product_file_name
from capmon.orchestrator import jobs
from capmon.orchestrator.lock import HEARTBEAT_SECONDS, SeasonRunLock
from capmon.orchestrator.plan import (
    SeasonSchedule,
    latest_occurrence,
    processor_key,
    processor_parameters,
    season_schedules,
)
from capmon.orchestrator.units import (
    ExtractionUnit,
    ProcessorUnit,
    UnitOutcome,
    extract_unit,
    run_processor_unit,
)
from capmon.processors.registry import get_processor, missing_inputs
from capmon.settings import SCHEDULER_ENV
from capmon.workspace import Workspace

if TYPE_CHECKING:  # distributed is imported when a run starts (it is slow to import)
    from distributed import Client

logger = logging.getLogger(__name__)
STATUS_POLL_SECONDS = 1.0
RETRY_BACKOFF = dt.timedelta(minutes=10)
"""Scheduled and triggered runs wait this long before retrying a processor run that failed
with the same inputs, doubling after each failure; requested runs always retry."""
MAX_AUTOMATIC_ATTEMPTS = 4
"""After this many failures with the same inputs, only a requested run retries it."""
Progress = Callable[[str, int, int], None]
"""``progress(message, done, total)``: ``message`` is ``"<stage>: <detail>"`` (stages: planning,
ingest, acquisition, extraction, compaction, processors, skipped ...); ``done`` of ``total``
units of the stage (0 of 0 for a stage without units)."""


def _say(progress: Progress | None, message: str, done: int = 0, total: int = 0) -> None:
    if progress is not None:
        progress(message, done, total)


@dataclass
class _JobProgress:
    """How far a season job is, by stage: extraction and the processors weigh alike (a run of
    thousands of products is not '100 %' while its processors have not started), compaction a
    tenth; below 1 until the job ends."""

    units: int
    processors: int
    extracted: int = 0
    compacted: bool = False
    processed: int = 0

    def fraction(self) -> float:
        parts = [(0.1, 1.0 if self.compacted else 0.0)]
        if self.units:
            parts.append((1.0, self.extracted / self.units))
        if self.processors:
            parts.append((1.0, self.processed / self.processors))
        weight = sum(w for w, _ in parts)
        return min(0.99, sum(w * f for w, f in parts) / weight)


@dataclass(frozen=True)
class ClusterSpec:
    """Where the units run: a LocalCluster of ``workers`` processes with ``threads`` each, or
    the scheduler at ``scheduler`` (``tcp://HOST:PORT``; default ``$CAPMON_DASK_SCHEDULER``)."""

    workers: int = 2
    threads: int = 1
    scheduler: str | None = None
    memory_limit: str = "auto"


@contextmanager
def dask_client(spec: ClusterSpec) -> Iterator[Client]:
    """A connected ``distributed.Client`` (the LocalCluster is closed on exit)."""
    from distributed import Client, LocalCluster

    address = spec.scheduler or os.environ.get(SCHEDULER_ENV) or None
    if address:
        with Client(address) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    if spec.workers < 1 or spec.threads < 1:
        raise InputError("--workers and --threads must be at least 1")
    import dask

    nanny = logging.getLogger("distributed.nanny")
    level = nanny.level
    try:
        with (
            # Non-daemonic worker processes: processors may use their own process or thread
            # pools (scikit-learn's n_jobs through joblib falls back to 1 job in a daemonic
            # process).
            dask.config.set({"distributed.worker.daemon": False}),
            LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=spec.workers,
                threads_per_worker=spec.threads,
                processes=True,
                dashboard_address=":0",  # a free port: several clusters may run side by side
                memory_limit=spec.memory_limit,
            ) as cluster,
        ):
            try:
                with Client(cluster) as client:  # type: ignore[no-untyped-call]
                    yield client
            finally:
                # closing kills workers that keep threads (processors' pools) with a warning
                # per worker ("Worker process still alive after 4.0 seconds, killing") that
                # tells the user nothing wrong: errors only while the cluster closes
                nanny.setLevel(logging.ERROR)
    finally:
        nanny.setLevel(level)


@dataclass
class SeasonRunReport:
    """What a season run did."""

    job_id: int | None = None
    status: str = "nothing due"
    until: dt.date | None = None
    ingested: int = 0
    extracted: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    rows: int = 0
    processors_run: list[tuple[str, str]] = field(default_factory=list)
    processors_failed: list[tuple[str, str]] = field(default_factory=list)
    processors_up_to_date: list[str] = field(default_factory=list)
    processors_not_due: list[str] = field(default_factory=list)
    processors_skipped: list[tuple[str, str]] = field(default_factory=list)
    """Processors due but lacking a required input (not failures), with the reason and the
    command that gives the input (:func:`capmon.processors.registry.missing_inputs`)."""
    processors_backing_off: list[tuple[str, str]] = field(default_factory=list)
    """Processors whose last runs with the same inputs failed, not retried yet (and why)."""
    processor_outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    """The outputs (files, product folder) of each processor run, by processor id."""
    workers: dict[int, int] = field(default_factory=dict)
    """Extraction units per worker pid."""
    seconds: float = 0.0
    driver_seconds: float = 0.0
    """Time the driver spent planning and recording (the scheduling overhead)."""
    lock_taken_over_from: str | None = None
    acquisition: str | None = None
    """What the acquisition step did (None: not enabled for the season)."""
    orphans_removed: list[str] = field(default_factory=list)
    """Product folders an interrupted run left unregistered, deleted before this run."""

    @property
    def nothing_due(self) -> bool:
        return self.job_id is None

    def summary(self) -> str:
        if self.job_id is None:
            skipped = (
                f"; skipped: {', '.join(p for p, _ in self.processors_skipped)}"
                if self.processors_skipped
                else ""
            )
            return f"nothing due as of {self.until}{skipped} ({self.seconds:.1f} s)"
        return (
            f"job {self.job_id} {self.status}: {len(self.extracted)} products extracted "
            f"({self.rows} rows), {len(self.empty)} without valid pixels, {len(self.failed)} "
            f"failed, {len(self.already_done)} already in the MDB; processors run: "
            f"{', '.join(p for p, _ in self.processors_run) or 'none'}"
            + (
                f"; failed: {', '.join(p for p, _ in self.processors_failed)}"
                if self.processors_failed
                else ""
            )
            + (
                f"; skipped: {', '.join(p for p, _ in self.processors_skipped)}"
                if self.processors_skipped
                else ""
            )
            + f" ({self.seconds:.1f} s)"
        )


@dataclass
class _Plan:
    site: Site
    season: Season
    until: dt.date
    declaration_set_id: int
    mdb_root: Path
    parcels_file: Path
    tiles: tuple[str, ...]
    extraction: SeasonSchedule | None
    units: list[ExtractionUnit]
    compact: bool
    season_products: list[tuple[str, dt.date]]
    """(product name, acquisition date) of the season's products up to ``until``."""
    processors: list[tuple[SeasonSchedule, dt.date]]
    """Season processors with their latest occurrence (not necessarily stale)."""
    automatic: bool = False
    """Scheduled or triggered run: failed processor runs are retried with backoff only."""


def run_season(
    workspace: Workspace,
    site: str,
    season: str,
    *,
    until: dt.date | None = None,
    processors: Sequence[str] | None = None,
    cluster: ClusterSpec | None = None,
    client: Client | None = None,
    start_type: StartType = StartType.REQUESTED,
    ingest: Sequence[Path] = (),
    progress: Progress | None = None,
    on_unit: Callable[[UnitOutcome], None] | None = None,
) -> SeasonRunReport:
    """Run everything due in a season (see the module docstring)."""
    from capmon.sites import get_season, get_site

    started = time.perf_counter()
    report = SeasonRunReport()
    with workspace.session() as session:
        site_row = get_site(session, site)
        season_row = get_season(session, site_row, season)
    what = f"season {season_row.name} of site {site_row.name}"
    lock = SeasonRunLock(workspace, season_row.id, what=what)
    lock.acquire()
    try:
        if lock.taken_over is not None:
            report.lock_taken_over_from = (
                f"job {lock.taken_over.job_id} (pid {lock.taken_over.pid} on "
                f"{lock.taken_over.host})"
            )
            # what the killed run was writing when it stopped: product folders it built but
            # did not register (written before its last heartbeat, so not another run's)
            before = lock.taken_over.heartbeat_at + dt.timedelta(seconds=2 * HEARTBEAT_SECONDS)
            report.orphans_removed = remove_orphan_products(workspace, site_row, before)
        if ingest:
            _say(progress, f"ingest: registering the products of {len(ingest)} folder(s)")
            report.ingested = _ingest(workspace, site_row.name, ingest)
            _say(progress, f"ingest: {report.ingested} new product(s) registered")
        _acquire(workspace, site_row, season_row, until, processors, report)
        if report.acquisition is not None:
            _say(progress, f"acquisition: {report.acquisition}")
        _say(progress, "planning: what is due")
        plan = _plan(workspace, site_row, season_row, until, processors, report, progress)
        plan.automatic = start_type != StartType.REQUESTED
        report.until = plan.until
        due = _due_processors(workspace, plan, _predicted_products(plan), report)
        if not plan.units and not due and not _compaction_pending(plan):
            report.seconds = report.driver_seconds = time.perf_counter() - started
            return report
        job_id = jobs.create_job(
            workspace,
            "season",
            site_row,
            season_row,
            start_type,
            {
                "until": plan.until.isoformat(),
                "processors": list(processors) if processors is not None else None,
                "ingest": [str(p) for p in ingest],
            },
        )
        report.job_id = job_id
        lock.set_job(job_id)
        jobs.set_job_status(workspace, job_id, ActivityStatus.RUNNING, message="starting")
        jobs.append_log(workspace, job_id, f"{what}: run as of {plan.until}")
        if report.lock_taken_over_from:
            jobs.append_log(
                workspace, job_id, f"took over the stale lock of {report.lock_taken_over_from}"
            )
        if report.acquisition is not None:
            jobs.append_log(workspace, job_id, report.acquisition)
        for name, reason in report.processors_skipped:
            jobs.append_log(workspace, job_id, f"skipped {name}: {reason}")
        for orphan in report.orphans_removed:
            jobs.append_log(workspace, job_id, f"removed unregistered product folder {orphan}")
        report.driver_seconds += time.perf_counter() - started
        try:
            if client is not None:
                _execute(workspace, plan, client, job_id, report, progress, on_unit)
            else:
                with dask_client(cluster or ClusterSpec()) as own:
                    _execute(workspace, plan, own, job_id, report, progress, on_unit)
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
            jobs.append_log(workspace, job_id, f"error: {message}")
            if jobs.job_status(workspace, job_id) not in jobs.TERMINAL:
                jobs.set_job_status(workspace, job_id, ActivityStatus.ERROR, message=message)
            raise
    finally:
        lock.release()
    report.seconds = time.perf_counter() - started
    return report


ACQUIRE = "acquire"


def _acquire(
    workspace: Workspace,
    site: Site,
    season: Season,
    until: dt.date | None,
    processors: Sequence[str] | None,
    report: SeasonRunReport,
) -> None:
    """Fetch and register the season's new products first, when the ``acquire`` processor is
    enabled for the season and a data source is configured (see docs/acquisition.md).

    A source that is down does not stop the run: the season goes on with what it has, and the
    report (and the job's log) says what failed."""
    from capmon.processors.registry import RunContext

    schedule = next(
        (
            s
            for s in season_schedules(workspace, site, season, processors)
            if s.processor == ACQUIRE
        ),
        None,
    )
    if schedule is None or not schedule.enabled:
        return
    as_of = min(until or dt.date.today(), season.end_date)
    if as_of < season.start_date:
        return
    processor = get_processor(ACQUIRE)
    parameters = processor.parse_parameters({**schedule.parameters, "until": as_of.isoformat()})
    try:
        result = processor.run(RunContext(workspace, site, season), parameters)
    except CapmonError as exc:
        report.acquisition = f"acquisition failed, going on with the products at hand: {exc}"
        return
    report.acquisition = result.summary


def _ingest(workspace: Workspace, site: str, folders: Sequence[Path]) -> int:
    from capmon.sites import get_site
    from capmon.sources import IngestStatus, ingest_products

    with workspace.session() as session:
        result = ingest_products(session, get_site(session, site), list(folders))
    return result.count(IngestStatus.REGISTERED)


def _plan(
    workspace: Workspace,
    site: Site,
    season: Season,
    until: dt.date | None,
    processors: Sequence[str] | None,
    report: SeasonRunReport,
    progress: Progress | None = None,
) -> _Plan:
    from capmon.mdb.extract import catalogue_info, plan_products
    from capmon.parcels.store import latest_row
    from capmon.processors.mdb_extract import MdbExtractParameters
    from capmon.sources import ProductType, list_products

    as_of = min(until or dt.date.today(), season.end_date)
    schedules = season_schedules(workspace, site, season, processors)
    extraction = next((s for s in schedules if s.processor == "mdb" and s.enabled), None)
    # the acquisition ran before planning (``_acquire``), so that what it fetched is extracted
    others = [s for s in schedules if s.processor not in ("mdb", ACQUIRE) and s.enabled]
    year = season.year
    with workspace.session() as session:
        declarations = latest_row(session, DeclarationSet, site, year)
        if declarations is None:
            raise InputError(
                f"site {site.name!r} has no declarations for {year} (season {season.name}); "
                "import them first with `capmon declarations import`"
            )
        declaration_id = declarations.id
        parcels_file = workspace.path(declarations.parcels_path)
        parcel_set = f"{site.short_name}/{year}/v{declarations.version}"
        rows = [
            p
            for p in list_products(session, site)
            if p.acquired_at is not None
            and season.start_date <= p.acquired_at.date() <= as_of
            and p.product_type in {t.value for t in ProductType}
        ]
        in_season = [(p.name, Path(p.path), _day(p.acquired_at)) for p in rows]
        infos = [catalogue_info(p) for p in rows]
    root = mdb_folder(workspace, site.short_name, season.name, declaration_id)
    units: list[ExtractionUnit] = []
    compact = False
    if extraction is not None:
        parameters = MdbExtractParameters.model_validate(dict(extraction.parameters))
        settings = parameters.settings()
        compact = parameters.compact
        store = MdbStore(root)
        store.initialise(
            settings.manifest(site.short_name, parcel_set, declaration_id),
            rebuild=f"capmon mdb extract {site.name} {season.name} --rebuild",
        )
        remove_partial_files(root)
        requests, planned = plan_products(infos, store.coverage(), settings)
        report.already_done.extend(planned.already_done)
        report.superseded = planned.superseded
        # grid by grid (tile, sensor), as extract_products, so workers reuse their pixel cache
        ordered = sorted(
            (info for info in infos if info.name in requests),
            key=lambda info: (info.tile or "", info.sensor or "", info.name),
        )
        units = [
            ExtractionUnit(
                str(root),
                str(parcels_file),
                tuple(site.tiles),
                settings,
                info.name,
                str(info.path),
                tuple(sorted(requests[info.name].signals)),
                requests[info.name].replaces,
            )
            for info in ordered
        ]
    due: list[tuple[SeasonSchedule, dt.date]] = []
    for schedule in others:
        occurrence = latest_occurrence(schedule.schedule, season, as_of)
        if occurrence is None:
            report.processors_not_due.append(schedule.processor)
            continue
        missing = missing_inputs(
            get_processor(schedule.processor), workspace, site, season, schedule.parameters
        )
        if missing:
            reason = "; ".join(str(m) for m in missing)
            report.processors_skipped.append((schedule.processor, reason))
            _say(progress, f"skipped {schedule.processor}: {reason}")
        else:
            due.append((schedule, occurrence))
    return _Plan(
        site=site,
        season=season,
        until=as_of,
        declaration_set_id=declaration_id,
        mdb_root=root,
        parcels_file=parcels_file,
        tiles=tuple(site.tiles),
        extraction=extraction,
        units=units,
        compact=compact,
        season_products=[(name, day) for name, _path, day in in_season],
        processors=due,
    )


def _day(moment: dt.datetime | None) -> dt.date:
    """The date of a catalogue acquisition time (the rows planned always have one)."""
    if moment is None:
        raise InputError("a product without an acquisition time cannot be planned")
    return moment.date()


def remove_partial_files(mdb_root: Path) -> int:
    """Delete the temporary files a killed writer left in the MDB folder.

    ``atomic_path`` writes ``.<name>.<uuid>.tmp.parquet`` next to the final file; a process
    killed before the rename leaves it behind, and ``Path.glob("*.parquet")`` (the store's and
    the reader's listing) matches it. Only called under the season lock, when no writer runs.
    """
    removed = 0
    for folder in (mdb_root / "observations", mdb_root / "pixels", mdb_root / "derived"):
        if folder.exists():
            for path in folder.glob(".*.tmp.*"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def remove_orphan_products(workspace: Workspace, site: Site, before: dt.datetime) -> list[str]:
    """Delete the product folders of ``site`` that no catalogue row names, modified before
    ``before``: temporary folders of an interrupted write, and folders renamed into place by
    a run killed before it registered them. Returns their paths relative to the home."""
    root = workspace.path(Path("products") / site.short_name)
    if not root.is_dir():
        return []
    with workspace.session() as session:
        registered = {
            Path(p).resolve()
            for p in session.scalars(select(Product.path).where(Product.site_id == site.id))
        }
    limit = (before if before.tzinfo else before.replace(tzinfo=dt.UTC)).timestamp()
    removed = []
    for processor_folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for entry in sorted(processor_folder.iterdir()):
            if entry.resolve() in registered or entry.stat().st_mtime > limit:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(workspace.relative(entry) if entry.is_absolute() else str(entry))
    return removed


def _mdb_products(plan: _Plan, stems: set[str]) -> list[tuple[str, dt.date]]:
    return [
        (name, day)
        for name, day in plan.season_products
        if product_file_name(name).removesuffix(".parquet") in stems
    ]


def _stored_stems(plan: _Plan) -> set[str]:
    return set(MdbStore(plan.mdb_root).products()) if plan.mdb_root.exists() else set()


def _predicted_products(plan: _Plan) -> list[tuple[str, dt.date]]:
    stems = _stored_stems(plan) | {
        product_file_name(u.product_name).removesuffix(".parquet") for u in plan.units
    }
    return _mdb_products(plan, stems)


def _compaction_pending(plan: _Plan) -> bool:
    if not plan.compact or not plan.mdb_root.exists():
        return False
    return any((plan.mdb_root / "observations").glob("*.parquet"))


def _due_processors(
    workspace: Workspace,
    plan: _Plan,
    products: list[tuple[str, dt.date]],
    report: SeasonRunReport,
) -> list[tuple[SeasonSchedule, dt.date, str, dict[str, Any]]]:
    """The processors whose latest occurrence has no finished task with its input key.

    In automatic runs, a run that failed with the same key waits for its backoff
    (:data:`RETRY_BACKOFF` doubled per failure) and stops after :data:`MAX_AUTOMATIC_ATTEMPTS`.
    """
    candidates = []
    for schedule, occurrence in plan.processors:
        processor = get_processor(schedule.processor)
        parameters = processor_parameters(processor, schedule.parameters, occurrence)
        key = processor_key(
            processor, parameters, plan.season, plan.declaration_set_id, occurrence, products
        )
        candidates.append((schedule, occurrence, key, parameters))
    keys = [c[2] for c in candidates]
    done = jobs.finished_keys(workspace, keys)
    due = [c for c in candidates if c[2] not in done]
    if not plan.automatic:
        return due
    failures = jobs.failed_attempts(workspace, keys)
    moment = jobs.now()
    kept = []
    report.processors_backing_off = []
    for candidate in due:
        failed = failures.get(candidate[2])
        if failed is None:
            kept.append(candidate)
            continue
        retry_at = failed.last_ended_at + RETRY_BACKOFF * 2 ** (failed.count - 1)
        if failed.count >= MAX_AUTOMATIC_ATTEMPTS:
            why = f"failed {failed.count} times with these inputs: run it with `capmon season run`"
        elif moment < retry_at:
            why = f"failed {failed.count} time(s); next retry after {retry_at:%Y-%m-%d %H:%M} UTC"
        else:
            kept.append(candidate)
            continue
        report.processors_backing_off.append((candidate[0].processor, why))
    return kept


class _CancelledError(Exception):
    pass


def _execute(
    workspace: Workspace,
    plan: _Plan,
    client: Client,
    job_id: int,
    report: SeasonRunReport,
    progress: Progress | None,
    on_unit: Callable[[UnitOutcome], None] | None,
) -> None:
    tracker = _JobProgress(len(plan.units), len(plan.processors))
    count = len(plan.units)

    def extracted(outcome: UnitOutcome, done: int) -> str:
        tracker.extracted = done
        message = f"extraction: {done}/{count} products ({outcome.name})"
        _say(progress, message, done, count)
        return message

    tasks: list[int] = []
    failed_processors = False
    try:
        if plan.extraction is not None:
            tick = time.perf_counter()
            extract_task = jobs.add_task(
                workspace,
                job_id,
                "mdb",
                {"products": len(plan.units), "mdb": str(plan.mdb_root)},
            )
            tasks.append(extract_task)
            report.driver_seconds += time.perf_counter() - tick
            if plan.units:
                _say(progress, f"extraction: {count} products to extract", 0, count)
            outcomes = _run_units(
                workspace,
                client,
                job_id,
                extract_task,
                [(u.product_name, extract_unit, u) for u in plan.units],
                report,
                extracted,
                on_unit,
                tracker.fraction,
            )
            for outcome in outcomes:
                if outcome.status == "extracted":
                    report.extracted.append(outcome.name)
                    report.rows += outcome.rows
                elif outcome.status == "empty":
                    report.empty.append(outcome.name)
                elif outcome.status == "already_done":
                    report.already_done.append(outcome.name)
                else:
                    report.failed.append((outcome.name, outcome.message))
                report.workers[outcome.worker_pid] = report.workers.get(outcome.worker_pid, 0) + 1
            remove_partial_files(plan.mdb_root)  # left by workers killed during this run
            jobs.set_task_status(workspace, extract_task, ActivityStatus.FINISHED)
            jobs.append_log(
                workspace,
                job_id,
                f"MDB: {len(report.extracted)} extracted, {len(report.empty)} empty, "
                f"{len(report.failed)} failed",
            )
            if plan.compact:
                _say(progress, "compaction: rewriting the MDB into parcel buckets")
                compact_task = jobs.add_task(
                    workspace, job_id, "compact", {}, preceding=[extract_task]
                )
                tasks.append(compact_task)
                jobs.set_task_status(workspace, compact_task, ActivityStatus.RUNNING)
                began = jobs.now()
                compaction = MdbStore(plan.mdb_root).compact()
                jobs.record_steps(
                    workspace,
                    compact_task,
                    [
                        jobs.StepRecord(
                            "compact",
                            ActivityStatus.FINISHED,
                            began,
                            jobs.now(),
                            f"generation {compaction.generation}, {len(compaction.files)} files",
                            {},
                        )
                    ],
                )
                jobs.set_task_status(workspace, compact_task, ActivityStatus.FINISHED)
        tracker.compacted = True
        _check_status(workspace, job_id)
        tick = time.perf_counter()
        due = _due_processors(workspace, plan, _mdb_products(plan, _stored_stems(plan)), report)
        due_ids = {schedule.processor for schedule, *_ in due}
        report.processors_up_to_date = [
            s.processor for s, _occ in plan.processors if s.processor not in due_ids
        ]
        units: list[tuple[str, Callable[[Any], UnitOutcome], Any]] = []
        task_of: dict[str, tuple[int, str]] = {}
        for schedule, occurrence, key, parameters in due:
            # pending until its unit starts on a worker (which sets it running)
            task_id = jobs.add_task(
                workspace,
                job_id,
                schedule.processor,
                {"occurrence": occurrence.isoformat(), "parameters": parameters},
                preceding=list(tasks),
            )
            task_of[schedule.processor] = (task_id, key)
            units.append(
                (
                    schedule.processor,
                    run_processor_unit,
                    ProcessorUnit(
                        str(workspace.home),
                        workspace.engine.url.render_as_string(hide_password=False),
                        plan.site.name,
                        plan.season.name,
                        schedule.processor,
                        parameters,
                        job_id=job_id,
                        task_id=task_id,
                    ),
                )
            )
        tracker.processors = len(units)
        names = ", ".join(name for name, *_ in units)
        started_message = f"processors: 0/{len(units)} done, queued {names}"
        jobs.set_job_progress(
            workspace, job_id, tracker.fraction(), started_message if units else "compacted"
        )
        if units:
            _say(progress, f"processors: running {names}", 0, len(units))
        report.driver_seconds += time.perf_counter() - tick

        def processed(outcome: UnitOutcome, done: int) -> str:
            tracker.processed = done
            verb = "finished" if outcome.status == "finished" else "failed"
            message = f"processors: {done}/{len(units)} done ({outcome.name} {verb})"
            _say(progress, message, done, len(units))
            return message

        for outcome in _run_units_per_task(
            workspace, client, job_id, task_of, units, report, processed, on_unit, tracker.fraction
        ):
            task_id, key = task_of[outcome.name]
            if outcome.status == "finished":
                jobs.set_task_status(workspace, task_id, ActivityStatus.FINISHED, output_key=key)
                report.processors_run.append((outcome.name, outcome.message))
                outputs = outcome.details.get("outputs", {})
                report.processor_outputs[outcome.name] = {k: str(v) for k, v in outputs.items()}
                jobs.append_log(workspace, job_id, f"{outcome.name}: {outcome.message}")
            else:
                failed_processors = True
                jobs.set_task_status(workspace, task_id, ActivityStatus.ERROR, output_key=key)
                first_line = outcome.message.splitlines()[0] if outcome.message else "failed"
                report.processors_failed.append((outcome.name, first_line))
                jobs.append_log(workspace, job_id, f"{outcome.name} failed: {first_line}")
    except _CancelledError:
        report.status = ActivityStatus.CANCELLED.value
        jobs.append_log(workspace, job_id, "cancelled")
        return
    status = ActivityStatus.ERROR if failed_processors else ActivityStatus.FINISHED
    report.status = status.value
    jobs.set_job_status(
        workspace, job_id, status, message=report.summary().split(": ", 1)[-1], progress=1.0
    )
    jobs.append_log(workspace, job_id, f"{status.value}")


def _check_status(workspace: Workspace, job_id: int) -> ActivityStatus:
    """The job's status; waits while it is paused; raises when it was cancelled."""
    while True:
        status = jobs.job_status(workspace, job_id)
        if status == ActivityStatus.CANCELLED:
            raise _CancelledError
        if status != ActivityStatus.PAUSED:
            return status
        time.sleep(STATUS_POLL_SECONDS)


def _run_units_per_task(
    workspace: Workspace,
    client: Client,
    job_id: int,
    task_of: dict[str, tuple[int, str]],
    units: list[tuple[str, Callable[[Any], UnitOutcome], Any]],
    report: SeasonRunReport,
    advance: Callable[[UnitOutcome, int], str],
    on_unit: Callable[[UnitOutcome], None] | None,
    fraction: Callable[[], float],
) -> list[UnitOutcome]:
    if not units:
        return []
    # processors run side by side, one step each in their own task
    collected = _run_units(
        workspace, client, job_id, None, units, report, advance, on_unit, fraction
    )
    for outcome in collected:
        task_id, _key = task_of[outcome.name]
        jobs.record_steps(workspace, task_id, [_step(outcome)])
    return collected


def _step(outcome: UnitOutcome) -> jobs.StepRecord:
    ended = jobs.now()
    ok = outcome.status in ("extracted", "empty", "already_done", "finished")
    return jobs.StepRecord(
        outcome.name,
        ActivityStatus.FINISHED if ok else ActivityStatus.ERROR,
        ended - dt.timedelta(seconds=outcome.seconds),
        ended,
        outcome.message or outcome.status,
        {"status": outcome.status, "rows": outcome.rows, "worker_pid": outcome.worker_pid}
        | ({"details": outcome.details} if outcome.details else {}),
        0 if ok else 1,
    )


def _run_units(
    workspace: Workspace,
    client: Client,
    job_id: int,
    task_id: int | None,
    units: list[tuple[str, Callable[[Any], UnitOutcome], Any]],
    report: SeasonRunReport,
    advance: Callable[[UnitOutcome, int], str],
    on_unit: Callable[[UnitOutcome], None] | None,
    fraction: Callable[[], float],
) -> list[UnitOutcome]:
    """Submit ``units`` in a bounded window, collect their outcomes, record their steps (in
    batches, at most once a second) and follow the job's status; ``advance(outcome, done)``
    gives the job's message, ``fraction()`` its progress."""
    from distributed import as_completed

    if not units:
        return []
    window = max(2, 2 * sum(client.nthreads().values()))  # type: ignore[no-untyped-call]
    queue = list(units)
    outcomes: list[UnitOutcome] = []
    pending_steps: list[jobs.StepRecord] = []
    last_flush = time.perf_counter()
    futures = as_completed()  # type: ignore[no-untyped-call]
    submitted = 0

    def submit_more() -> None:
        nonlocal submitted
        while queue and futures.count() < window:  # type: ignore[no-untyped-call]
            name, function, argument = queue.pop(0)
            futures.add(  # type: ignore[no-untyped-call]
                client.submit(
                    function, argument, key=f"capmon-{job_id}-{submitted}-{name}", retries=2
                )
            )
            submitted += 1

    if task_id is not None:
        jobs.set_task_status(workspace, task_id, ActivityStatus.RUNNING)
    submit_more()
    for future in futures:
        outcome: UnitOutcome = future.result()
        outcomes.append(outcome)
        message = advance(outcome, len(outcomes))
        if on_unit is not None:
            on_unit(outcome)
        pending_steps.append(_step(outcome))
        now = time.perf_counter()
        if now - last_flush >= STATUS_POLL_SECONDS or (not queue and futures.count() == 0):  # type: ignore[no-untyped-call]
            tick = time.perf_counter()
            if task_id is not None:
                jobs.record_steps(workspace, task_id, pending_steps)
                pending_steps = []
            jobs.set_job_progress(workspace, job_id, fraction(), message)
            last_flush = time.perf_counter()
            report.driver_seconds += last_flush - tick
            try:
                _check_status(workspace, job_id)
            except _CancelledError:
                for remaining in futures.futures:
                    remaining.cancel()
                queue.clear()
                if task_id is not None:
                    jobs.record_steps(workspace, task_id, pending_steps)
                    jobs.set_task_status(workspace, task_id, ActivityStatus.CANCELLED)
                raise
        submit_more()
    if task_id is not None and pending_steps:
        jobs.record_steps(workspace, task_id, pending_steps)
    return outcomes
