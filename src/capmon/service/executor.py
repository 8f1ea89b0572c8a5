"""The service's job executor: processor runs requested over OGC API - Processes, on Dask.

One long-lived ``distributed.Client`` per app (``service_state(request).resources["executor"]``),
connected on the first execution to a LocalCluster of ``ServiceConfig.cluster`` (non-daemonic
worker processes, as ``capmon season run``) or to ``cluster.scheduler``, closed when the app
stops; each worker imports the processors as soon as it is connected. A job is a catalogue
job (start type ``requested``) with one task; its unit (:func:`run_job_unit`) runs the
processor on a worker:

* the worker sets the job ``running`` when it starts, and the processor's progress callback
  records progress (at most once a second) and obeys the job's status at every call: paused ->
  it waits, cancelled or dismissed -> it stops;
* after the run, the worker links the products the run registered to the job
  (``Product.job_id``, found by the paths the processor returned); when the job was cancelled or
  dismissed meanwhile it deletes them instead;
* a watcher thread in the service waits for the unit and records its step (summary or
  traceback, timings, worker pid), the task and the job's final status (finished, error,
  cancelled) and the job's log.

Status requests go through the catalogue (:func:`capmon.orchestrator.jobs.request_status`), so
they work from any service process sharing the workspace; cancelling also cancels the Dask
future when this process submitted it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select

from capmon.catalog.models import ActivityStatus, Job, Product, Season, Site, StartType
from capmon.errors import CapmonError, CatalogError, ConflictError, NotFoundError, StorageError
from capmon.orchestrator import jobs
from capmon.orchestrator.execute import ClusterSpec
from capmon.orchestrator.units import UnitOutcome
from capmon.processors import Processor
from capmon.settings import SCHEDULER_ENV
from capmon.workspace import Workspace, open_workspace

if TYPE_CHECKING:  # distributed is imported when the first job starts (slow to import)
    from distributed import Client, Future
    from fastapi import Request

log = logging.getLogger("capmon.service")

EXECUTOR = "executor"
"""Key of the executor in ``ServiceState.resources``."""
PROGRESS_SECONDS = 1.0
"""A running job's progress is written at most this often."""
PAUSE_POLL_SECONDS = 0.5
"""A paused job reads its status this often."""
LOCK_POLL_SECONDS = 1.0
"""A job waiting for another run of its processor on its site reads its status this often."""
CLOSE_SECONDS = 30.0
"""How long closing the executor waits for the cluster and the watchers."""
_NOT_STARTED = frozenset({ActivityStatus.SUBMITTED, ActivityStatus.PENDING})


@dataclass(frozen=True)
class JobUnit:
    """One processor run of a service job, as sent to a Dask worker (picklable)."""

    home: str
    database_url: str
    job_id: int
    task_id: int
    site: str
    season: str | None
    processor: str
    parameters: dict[str, Any]
    """The parameters given by the user (the worker validates them again)."""


class JobCancelledError(BaseException):
    """The job was cancelled or dismissed: the run stops at its next progress report.

    A ``BaseException`` (as ``asyncio.CancelledError``) so that a processor's ``except
    Exception`` around a step does not swallow it; ``atomic_path`` still removes what the run
    was writing."""


_WORKSPACES: dict[tuple[str, str], Workspace] = {}
_WORKSPACES_LOCK = threading.Lock()


def _worker_workspace(home: str, database_url: str) -> Workspace:
    """The workspace of a unit, opened once per worker process."""
    with _WORKSPACES_LOCK:
        key = (home, database_url)
        if key not in _WORKSPACES:
            _WORKSPACES[key] = open_workspace(home, database_url)
        return _WORKSPACES[key]


class JobGate:
    """The processor's progress callback on the worker: records progress and obeys the job's
    status (waits while paused, raises :class:`JobCancelledError` when cancelled or gone)."""

    def __init__(self, workspace: Workspace, job_id: int) -> None:
        self._workspace = workspace
        self._job_id = job_id
        self._written = float("-inf")

    def check(self) -> None:
        """Return when the job may go on; wait while it is paused."""
        while True:
            try:
                status = jobs.job_status(self._workspace, self._job_id)
            except NotFoundError:
                raise JobCancelledError("the job was dismissed") from None
            if status in jobs.TERMINAL:  # cancelled, or ended by the service (stopped)
                raise JobCancelledError(f"the job was {status.value}")
            if status != ActivityStatus.PAUSED:
                return
            time.sleep(PAUSE_POLL_SECONDS)

    def progress(self, fraction: float, message: str) -> None:
        self.check()
        now = time.monotonic()
        if now - self._written >= PROGRESS_SECONDS:
            try:
                jobs.set_job_progress(self._workspace, self._job_id, fraction, message)
            except NotFoundError:
                raise JobCancelledError("the job was dismissed") from None
            self._written = now


def run_job_unit(unit: JobUnit) -> UnitOutcome:
    """Run a service job's processor on a Dask worker (see the module docstring).

    The processor's error becomes a failed outcome with its traceback (not retried: a bug does
    not go away); ``details["input_error"]`` says whether it was a capmon error about the
    inputs or data (400 over HTTP) rather than a bug or an infrastructure failure (500)."""
    from capmon.processors import RunContext, get_processor
    from capmon.sites import get_season, get_site

    started = time.perf_counter()
    pid = os.getpid()

    def outcome(status: str, message: str, details: dict[str, Any] | None = None) -> UnitOutcome:
        seconds = time.perf_counter() - started
        return UnitOutcome(unit.processor, status, 0, seconds, pid, message, details or {})

    try:
        workspace = _worker_workspace(unit.home, unit.database_url)
        gate = JobGate(workspace, unit.job_id)
        with _one_run_per_site(unit, gate, workspace):
            try:
                # a job paused before its worker got here stays paused (the gate waits)
                if jobs.job_status(workspace, unit.job_id) in _NOT_STARTED:
                    jobs.set_job_status(
                        workspace, unit.job_id, ActivityStatus.RUNNING, message="running"
                    )
                jobs.set_task_status(workspace, unit.task_id, ActivityStatus.RUNNING)
            except (ConflictError, NotFoundError) as exc:  # cancelled or dismissed just now
                raise JobCancelledError(str(exc)) from exc
            gate.check()
            log_line(workspace, unit.job_id, f"{unit.processor} started (worker pid {pid})")
            processor = get_processor(unit.processor)
            with workspace.session() as session:
                site = get_site(session, unit.site)
                season = get_season(session, site, unit.season) if unit.season else None
            parameters = processor.parse_parameters(unit.parameters)
            result = processor.run(RunContext(workspace, site, season, gate.progress), parameters)
    except JobCancelledError as exc:
        return outcome("cancelled", str(exc))
    except Exception as exc:  # reported in the job's step and status
        text = "".join(traceback.format_exception(exc))
        input_error = isinstance(exc, CapmonError) and not isinstance(
            exc, StorageError | CatalogError
        )
        return outcome(
            "failed",
            f"{exc}\n{text}",
            {"error_type": type(exc).__name__, "input_error": input_error},
        )
    details = json.loads(
        json.dumps({"figures": result.figures, "outputs": result.outputs}, default=str)
    )
    if not link_products(workspace, unit.job_id, site.id, result.outputs.values()):
        return outcome("cancelled", "the job was cancelled as it ended: its products were removed")
    return outcome("finished", result.summary, details)


@contextlib.contextmanager
def _one_run_per_site(unit: JobUnit, gate: JobGate, workspace: Workspace) -> Iterator[None]:
    """Hold the cluster-wide lock of the unit's processor and site while it runs.

    Two runs of a processor on a site at once would build the same product folder (processors
    name products by site and creation second) and the second would fail; they also compete
    for the same inputs. A waiting job stays ``accepted`` and obeys pause and cancel."""
    from distributed import Lock

    lock = Lock(f"capmon:{unit.home}:{unit.site}:{unit.processor}")  # type: ignore[no-untyped-call]
    gate.check()
    waiting = False
    while not lock.acquire(timeout=LOCK_POLL_SECONDS):  # type: ignore[no-untyped-call]
        gate.check()
        if not waiting:
            waiting = True
            with contextlib.suppress(NotFoundError):
                jobs.set_job_progress(
                    workspace,
                    unit.job_id,
                    0.0,
                    f"waiting for another {unit.processor} run on site {unit.site} to end",
                )
    try:
        yield
    finally:
        lock.release()  # type: ignore[no-untyped-call]


def warm_worker() -> int:
    """Import the processors (a few seconds) on a worker that just started."""
    from capmon.processors import all_processors

    return len(all_processors())


def log_line(workspace: Workspace, job_id: int, line: str) -> None:
    """Append to the log of a job whose folder exists (made when it was submitted): a job
    dismissed meanwhile keeps no folder."""
    if jobs.job_folder(workspace, job_id).is_dir():
        jobs.append_log(workspace, job_id, line)


def link_products(workspace: Workspace, job_id: int, site_id: int, outputs: Iterable[Any]) -> bool:
    """Set ``Product.job_id`` on the products a run registered (their folders are among the
    run's ``outputs``). When the job ended meanwhile (cancelled, dismissed, or stopped with
    the service), delete them (rows and folders) instead and return False."""
    paths = sorted({str(path) for path in outputs})
    removed: list[str] = []
    with workspace.session() as session:
        products = (
            session.scalars(
                select(Product).where(
                    Product.site_id == site_id,
                    Product.path.in_(paths),
                    Product.job_id.is_(None),
                )
            ).all()
            if paths
            else []
        )
        job = session.get(Job, job_id)
        if job is not None and job.status not in jobs.TERMINAL:
            for product in products:
                product.job_id = job_id
            return True
        for product in products:
            removed.append(product.path)
            session.delete(product)
    for path in removed:
        remove_product_folder(workspace, path)
    return False


def remove_product_folder(workspace: Workspace, path: str) -> None:
    """Delete a processor product's folder (only under ``<home>/products/``)."""
    folder = Path(path).resolve()
    root = workspace.path("products").resolve()
    if folder.is_relative_to(root) and folder != root:
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            folder.unlink(missing_ok=True)


@dataclass
class _Running:
    unit: JobUnit
    done: threading.Event = field(default_factory=threading.Event)
    future: Future[UnitOutcome] | None = None
    cancelled: bool = False
    dismissed: bool = False
    watcher: threading.Thread | None = None


class JobExecutor:
    """The service's Dask client and the jobs this process submitted."""

    def __init__(self, workspace: Workspace, spec: ClusterSpec) -> None:
        self._workspace = workspace
        self._spec = spec
        self._client: Client | None = None
        self._cluster: Any = None
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._running: dict[int, _Running] = {}
        self._warming: list[Future[int]] = []
        self._closing = False

    def client(self) -> Client:
        """The Dask client, connected (and the LocalCluster started) on first use."""
        with self._connect_lock:
            if self._closing:
                raise ConflictError("the service is stopping: no new jobs")
            if self._client is None:
                self._client, self._cluster = _connect(self._spec)
                # every worker imports the processors now, not when its first job arrives
                self._warming = [
                    self._client.submit(warm_worker, workers=[address], pure=False)
                    for address in self._client.scheduler_info()["workers"]
                ]
            return self._client

    def submit(self, unit: JobUnit) -> None:
        """Send ``unit`` to the workers (from a watcher thread, which starts the cluster on
        the first job, so the request does not wait) and record its end."""
        if self._closing:
            raise ConflictError("the service is stopping: no new jobs")
        running = _Running(unit)
        running.watcher = threading.Thread(
            target=self._watch, args=(running,), name=f"capmon-job-{unit.job_id}", daemon=True
        )
        with self._lock:
            self._running[unit.job_id] = running
        running.watcher.start()

    def wait(self, job_id: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a job of this process to end (and be recorded);
        True when it has. Jobs of other processes are read from the catalogue."""
        with self._lock:
            running = self._running.get(job_id)
        if running is None:
            return jobs.job_status(self._workspace, job_id) in jobs.TERMINAL
        return running.done.wait(max(0.0, timeout))

    def cancel(self, job_id: int, *, dismissed: bool = False) -> None:
        """Cancel the job's Dask future (when this process runs it). A dismissed job's end is
        not recorded: its rows are being deleted."""
        with self._lock:
            running = self._running.get(job_id)
            if running is None:
                return
            running.cancelled = True
            running.dismissed = running.dismissed or dismissed
            future = running.future
        if future is not None:
            future.cancel()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop: jobs still running end as errors ("the service stopped"), the cluster closes."""
        with self._lock:
            self._closing = True
            running = list(self._running.values())
        for entry in running:
            self.cancel(entry.unit.job_id)
        for entry in running:
            if entry.watcher is not None:
                entry.watcher.join(timeout=CLOSE_SECONDS)
        with self._connect_lock:
            client, cluster = self._client, self._cluster
        if client is None:
            return

        def shut() -> None:
            try:
                client.close()  # type: ignore[no-untyped-call]
                if cluster is not None:
                    cluster.close()
            except Exception:  # closing must not stop the service's shutdown
                log.warning("closing the Dask cluster failed", exc_info=True)

        # the lifespan runs in the server's event loop: close from a thread of our own
        closer = threading.Thread(target=shut, name="capmon-executor-close")
        closer.start()
        closer.join(timeout=CLOSE_SECONDS)

    def _outcome(self, running: _Running) -> UnitOutcome:
        """Submit the unit and wait for its outcome (cancelled, or a failure of the cluster,
        become outcomes too)."""
        unit = running.unit
        try:
            client = self.client()
            with self._lock:
                if running.cancelled:
                    raise concurrent.futures.CancelledError
                running.future = client.submit(
                    run_job_unit,
                    unit,
                    key=f"capmon-job-{unit.job_id}-{uuid.uuid4().hex[:8]}",
                    pure=False,
                )
            outcome: UnitOutcome = running.future.result()
        except concurrent.futures.CancelledError:
            outcome = UnitOutcome(unit.processor, "cancelled", message="cancelled")
        except Exception as exc:  # the cluster did not start, a worker was lost...
            outcome = UnitOutcome(unit.processor, "failed", message=f"{type(exc).__name__}: {exc}")
        if self._closing and outcome.status != "finished":
            outcome = UnitOutcome(
                unit.processor, "failed", message="interrupted: the service stopped"
            )
        return outcome

    def _watch(self, running: _Running) -> None:
        job_id = running.unit.job_id
        try:
            outcome = self._outcome(running)
            if not running.dismissed:
                record_outcome(self._workspace, job_id, running.unit.task_id, outcome)
        except NotFoundError:
            pass  # dismissed meanwhile
        except Exception:
            if not running.dismissed:
                log.exception("recording the end of job %s failed", job_id)
        finally:
            running.done.set()
            with self._lock:
                self._running.pop(job_id, None)


def _connect(spec: ClusterSpec) -> tuple[Client, Any]:
    """A client of ``spec.scheduler`` (or ``$CAPMON_DASK_SCHEDULER``), or of a new LocalCluster
    (non-daemonic worker processes: processors may use their own process pools)."""
    import dask
    from distributed import Client, LocalCluster

    address = spec.scheduler or os.environ.get(SCHEDULER_ENV) or None
    if address:
        return Client(address), None  # type: ignore[no-untyped-call]
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=spec.workers,
            threads_per_worker=spec.threads,
            processes=True,
            dashboard_address=":0",
            memory_limit=spec.memory_limit,
        )
    return Client(cluster), cluster  # type: ignore[no-untyped-call]


def record_outcome(workspace: Workspace, job_id: int, task_id: int, outcome: UnitOutcome) -> None:
    """Record a unit's end: its step, the task's and the job's final status, the log."""
    finished = outcome.status == "finished"
    cancelled = outcome.status == "cancelled"
    status = (
        ActivityStatus.FINISHED
        if finished
        else ActivityStatus.CANCELLED
        if cancelled
        else ActivityStatus.ERROR
    )
    ended = jobs.now()
    first_line = (outcome.message.splitlines() or [outcome.status])[0]
    jobs.record_steps(
        workspace,
        task_id,
        [
            jobs.StepRecord(
                outcome.name,
                status,
                ended - dt.timedelta(seconds=outcome.seconds),
                ended,
                outcome.message or outcome.status,
                {"status": outcome.status, "worker_pid": outcome.worker_pid}
                | ({"details": outcome.details} if outcome.details else {}),
                0 if finished or cancelled else 1,
            )
        ],
    )
    jobs.set_task_status(workspace, task_id, status)
    current = jobs.job_status(workspace, job_id)
    if current in jobs.TERMINAL and current != status:
        log_line(workspace, job_id, f"the run ended ({outcome.status}) after the job was "
                        f"{current.value}: {first_line}")  # fmt: skip
        return
    if finished and current == ActivityStatus.PAUSED:  # paused after its last progress report
        jobs.set_job_status(workspace, job_id, ActivityStatus.RUNNING)
    jobs.set_job_status(
        workspace, job_id, status, message=first_line, progress=1.0 if finished else None
    )
    log_line(workspace, job_id, f"{status.value}: {first_line}")


def start_job(
    workspace: Workspace,
    executor: JobExecutor,
    processor: Processor,
    site: Site,
    season: Season | None,
    parameters: BaseModel,
    requested_by: str,
) -> int:
    """Record a requested job for ``processor`` and submit its unit; returns the job id."""
    given = parameters.model_dump(mode="json", exclude_unset=True)
    values = parameters.model_dump(mode="json")
    job_id = jobs.create_job(
        workspace,
        processor.id,
        site,
        season,
        StartType.REQUESTED,
        {"inputs": values, "requested_by": requested_by},
    )
    task_id = jobs.add_task(workspace, job_id, processor.id, values)
    where = f"{site.name}/{season.name}" if season is not None else site.name
    jobs.append_log(workspace, job_id, f"{processor.id} on {where} requested by {requested_by}")
    unit = JobUnit(
        str(workspace.home),
        workspace.engine.url.render_as_string(hide_password=False),
        job_id,
        task_id,
        site.name,
        season.name if season is not None else None,
        processor.id,
        given,
    )
    try:
        executor.submit(unit)
    except ConflictError as exc:
        jobs.append_log(workspace, job_id, str(exc))
        jobs.set_job_status(workspace, job_id, ActivityStatus.ERROR, message=str(exc))
        raise
    return job_id


def dismiss_job(workspace: Workspace, executor: JobExecutor, job_id: int) -> None:
    """OGC dismiss: cancel the job if it is active, then delete the products it registered
    (rows and folders), its folder (log) and its row (tasks and steps with it)."""
    if jobs.job_status(workspace, job_id) in jobs.ACTIVE:
        with contextlib.suppress(ConflictError):  # it ended meanwhile
            jobs.set_job_status(workspace, job_id, ActivityStatus.CANCELLED, message="dismissed")
    executor.cancel(job_id, dismissed=True)
    with workspace.session() as session:
        products = session.scalars(select(Product).where(Product.job_id == job_id)).all()
        paths = [product.path for product in products]
        for product in products:
            session.delete(product)
        job = session.get(Job, job_id)
        if job is not None:
            session.delete(job)
    for path in paths:
        remove_product_folder(workspace, path)
    shutil.rmtree(jobs.job_folder(workspace, job_id), ignore_errors=True)


_EXECUTOR_LOCK = threading.Lock()


def job_executor(request: Request) -> JobExecutor:
    """The app's executor (created on first use, closed when the app stops; its Dask client
    connects on the first submission)."""
    from capmon.service.state import service_state

    state = service_state(request)
    with _EXECUTOR_LOCK:
        executor = state.resources.get(EXECUTOR)
        if executor is None:
            executor = JobExecutor(state.workspace, state.config.cluster)
            state.resources[EXECUTOR] = executor
            state.on_shutdown.append(executor.close)
    assert isinstance(executor, JobExecutor)
    return executor
