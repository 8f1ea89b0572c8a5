"""Jobs in the catalogue: job -> tasks (a DAG) -> steps, their statuses, progress and logs.

A job is one orchestrated run (``capmon season run``, a product arrival picked up by
``capmon watch``). Its tasks are the stages of the run (the MDB extraction, the compaction,
one task per due processor; ``preceding`` holds the DAG); a task's steps are its units of work
(one step per extracted product, one per processor run). A task's ``output_key`` is the key of
its inputs (:mod:`capmon.orchestrator.plan`): a finished task with the same key means the work
is done. The job's log is a text file ``<home>/jobs/<id>/job.log`` (appended line by line as
the run goes, so it is not written through ``atomic_path``); a step's own log (its summary or
its error) is in the ``step.log`` column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from capmon.catalog.models import ActivityStatus, Job, Season, Site, StartType, Step, Task
from capmon.errors import ConflictError, NotFoundError
from capmon.workspace import Workspace

TERMINAL = frozenset({ActivityStatus.FINISHED, ActivityStatus.CANCELLED, ActivityStatus.ERROR})
ACTIVE = frozenset(
    {
        ActivityStatus.SUBMITTED,
        ActivityStatus.PENDING,
        ActivityStatus.RUNNING,
        ActivityStatus.PAUSED,
    }
)
_ALLOWED: dict[ActivityStatus, frozenset[ActivityStatus]] = {
    ActivityStatus.SUBMITTED: frozenset(
        {ActivityStatus.PENDING, ActivityStatus.RUNNING, ActivityStatus.CANCELLED}
        | {ActivityStatus.ERROR, ActivityStatus.PAUSED}
    ),
    ActivityStatus.PENDING: frozenset(
        {ActivityStatus.RUNNING, ActivityStatus.PAUSED, ActivityStatus.CANCELLED}
        | {ActivityStatus.ERROR}
    ),
    ActivityStatus.RUNNING: frozenset(
        {ActivityStatus.PAUSED, ActivityStatus.FINISHED, ActivityStatus.CANCELLED}
        | {ActivityStatus.ERROR}
    ),
    ActivityStatus.PAUSED: frozenset(
        {ActivityStatus.RUNNING, ActivityStatus.CANCELLED, ActivityStatus.ERROR}
    ),
}
STEP_NAME_LENGTH = 128


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_transition(current: ActivityStatus, wanted: ActivityStatus, what: str) -> None:
    """Refuse a status change that the job model does not allow (e.g. resuming a finished job)."""
    if current == wanted:
        return
    if wanted not in _ALLOWED.get(current, frozenset()):
        raise ConflictError(f"{what} is {current.value}; it cannot become {wanted.value}")


def job_folder(workspace: Workspace, job_id: int) -> Path:
    """Where a job's files (its log) live."""
    return workspace.path(Path("jobs") / str(job_id))


def append_log(workspace: Workspace, job_id: int, line: str) -> None:
    """Add a time-stamped line to the job's log file."""
    folder = job_folder(workspace, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = now().strftime("%Y-%m-%dT%H:%M:%SZ")
    with (folder / "job.log").open("a", encoding="utf-8") as handle:
        handle.write(f"{stamp} {line}\n")


def read_log(workspace: Workspace, job_id: int) -> str:
    """The job's log file ('' when the job wrote none)."""
    path = job_folder(workspace, job_id) / "job.log"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def create_job(
    workspace: Workspace,
    processor: str,
    site: Site,
    season: Season | None,
    start_type: StartType,
    parameters: dict[str, Any],
) -> int:
    """A new job, submitted; returns its id."""
    with workspace.session() as session:
        job = Job(
            processor=processor,
            site_id=site.id,
            season_id=season.id if season is not None else None,
            start_type=start_type,
            parameters=parameters,
            status=ActivityStatus.SUBMITTED,
            progress=0.0,
            status_at=now(),
        )
        session.add(job)
        session.flush()
        return job.id


def add_task(
    workspace: Workspace,
    job_id: int,
    module: str,
    parameters: dict[str, Any],
    *,
    preceding: Sequence[int] = (),
    output_key: str | None = None,
) -> int:
    """A pending task of a job; returns its id."""
    with workspace.session() as session:
        task = Task(
            job_id=job_id,
            module=module,
            parameters=parameters,
            status=ActivityStatus.PENDING,
            preceding=list(preceding),
            output_key=output_key,
        )
        session.add(task)
        session.flush()
        return task.id


def job_status(workspace: Workspace, job_id: int) -> ActivityStatus:
    with workspace.session() as session:
        return _job(session, job_id).status


def set_job_status(
    workspace: Workspace,
    job_id: int,
    status: ActivityStatus,
    *,
    message: str | None = None,
    progress: float | None = None,
) -> None:
    """Change a job's status (checked against the allowed transitions) and timings."""
    with workspace.session() as session:
        job = _job(session, job_id)
        check_transition(job.status, status, f"job {job_id}")
        stamp = now()
        if status == ActivityStatus.RUNNING and job.started_at is None:
            job.started_at = stamp
        if status in TERMINAL:
            job.ended_at = stamp
        job.status = status
        job.status_at = stamp
        if message is not None:
            job.message = message
        if progress is not None:
            job.progress = progress


def set_job_progress(
    workspace: Workspace, job_id: int, progress: float, message: str | None = None
) -> None:
    """Record how far a job is (0..1), readable by ``capmon jobs show`` and the API."""
    with workspace.session() as session:
        job = _job(session, job_id)
        job.progress = max(0.0, min(1.0, progress))
        if message is not None:
            job.message = message


def set_task_status(
    workspace: Workspace, task_id: int, status: ActivityStatus, *, output_key: str | None = None
) -> None:
    with workspace.session() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id}")
        stamp = now()
        if status == ActivityStatus.RUNNING and task.started_at is None:
            task.started_at = stamp
        if status in TERMINAL:
            task.ended_at = stamp
        task.status = status
        if output_key is not None:
            task.output_key = output_key


@dataclass(frozen=True)
class StepRecord:
    """A finished unit of work, as the driver records it."""

    name: str
    status: ActivityStatus
    started_at: dt.datetime
    ended_at: dt.datetime
    log: str
    parameters: dict[str, Any]
    exit_code: int = 0


def record_steps(workspace: Workspace, task_id: int, steps: Iterable[StepRecord]) -> None:
    """Insert (or update, on a name already recorded for the task) the steps of a task."""
    with workspace.session() as session:
        existing = {s.name: s for s in session.scalars(select(Step).where(Step.task_id == task_id))}
        for record in steps:
            name = step_name(record.name)
            step = existing.get(name)
            if step is None:
                step = Step(task_id=task_id, name=name)
                session.add(step)
                existing[name] = step
            step.status = record.status
            step.parameters = record.parameters
            step.exit_code = record.exit_code
            step.log = record.log
            step.started_at = record.started_at
            step.ended_at = record.ended_at


def step_name(name: str) -> str:
    """A step name that fits the column (long product names keep their start and a hash)."""
    if len(name) <= STEP_NAME_LENGTH:
        return name
    import hashlib

    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: STEP_NAME_LENGTH - 17]}~{digest}"


def finished_keys(workspace: Workspace, keys: Iterable[str]) -> set[str]:
    """The keys among ``keys`` that a finished task produced (that work is done)."""
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    with workspace.session() as session:
        rows = session.scalars(
            select(Task.output_key).where(
                Task.output_key.in_(wanted), Task.status == ActivityStatus.FINISHED
            )
        )
        return {key for key in rows if key is not None}


@dataclass(frozen=True)
class FailedAttempts:
    """How often the work of one input key failed, and when it last did."""

    count: int
    last_ended_at: dt.datetime


def failed_attempts(workspace: Workspace, keys: Iterable[str]) -> dict[str, FailedAttempts]:
    """Failed tasks per input key among ``keys`` (keys that never failed are absent)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    with workspace.session() as session:
        rows = session.execute(
            select(Task.output_key, Task.ended_at, Task.started_at).where(
                Task.output_key.in_(wanted), Task.status == ActivityStatus.ERROR
            )
        ).all()
    out: dict[str, FailedAttempts] = {}
    for key, ended, started in rows:
        if key is None:
            continue
        stamp = ended or started or now()
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        previous = out.get(key)
        if previous is None:
            out[key] = FailedAttempts(1, stamp)
        else:
            out[key] = FailedAttempts(previous.count + 1, max(previous.last_ended_at, stamp))
    return out


def _job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id} (see `capmon jobs list`)")
    return job


@dataclass(frozen=True)
class JobView:
    """A job with its tasks and steps, for the CLI and the API."""

    id: int
    processor: str
    site: str | None
    season: str | None
    start_type: str
    status: str
    progress: float
    message: str | None
    parameters: dict[str, Any]
    submitted_at: dt.datetime | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    tasks: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "processor": self.processor,
            "site": self.site,
            "season": self.season,
            "start_type": self.start_type,
            "status": self.status,
            "progress": round(self.progress, 4),
            "message": self.message,
            "parameters": self.parameters,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "tasks": self.tasks,
        }


def _view(session: Session, job: Job, with_steps: bool) -> JobView:
    site = session.get(Site, job.site_id) if job.site_id is not None else None
    season = session.get(Season, job.season_id) if job.season_id is not None else None
    tasks = []
    for task in sorted(job.tasks, key=lambda t: t.id):
        entry: dict[str, Any] = {
            "id": task.id,
            "module": task.module,
            "status": task.status.value,
            "preceding": list(task.preceding),
            "output_key": task.output_key,
            "parameters": task.parameters,
            "started_at": task.started_at,
            "ended_at": task.ended_at,
            "steps": len(task.steps),
            "failed_steps": sum(s.status == ActivityStatus.ERROR for s in task.steps),
        }
        if with_steps:
            entry["step_list"] = [
                {
                    "name": s.name,
                    "status": s.status.value,
                    "exit_code": s.exit_code,
                    "log": s.log,
                    "seconds": (
                        (s.ended_at - s.started_at).total_seconds()
                        if s.ended_at is not None and s.started_at is not None
                        else None
                    ),
                }
                for s in sorted(task.steps, key=lambda s: s.id)
            ]
        tasks.append(entry)
    return JobView(
        id=job.id,
        processor=job.processor,
        site=site.name if site is not None else None,
        season=season.name if season is not None else None,
        start_type=job.start_type.value,
        status=job.status.value,
        progress=job.progress,
        message=job.message,
        parameters=job.parameters,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        tasks=tasks,
    )


def list_jobs(
    workspace: Workspace,
    *,
    site: str | None = None,
    status: ActivityStatus | None = None,
    limit: int = 50,
) -> list[JobView]:
    """The newest jobs first, optionally of one site or status."""
    from capmon.sites import get_site

    with workspace.session() as session:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if site is not None:
            query = query.where(Job.site_id == get_site(session, site).id)
        if status is not None:
            query = query.where(Job.status == status)
        return [_view(session, job, False) for job in session.scalars(query)]


def show_job(workspace: Workspace, job_id: int) -> JobView:
    """A job with its tasks and steps."""
    with workspace.session() as session:
        return _view(session, _job(session, job_id), True)


def request_status(workspace: Workspace, job_id: int, wanted: ActivityStatus) -> JobView:
    """``capmon jobs cancel|pause|resume``: the running driver sees the new status and acts
    (stops submitting work when paused, cancels what is queued when cancelled)."""
    if wanted not in (ActivityStatus.CANCELLED, ActivityStatus.PAUSED, ActivityStatus.RUNNING):
        raise ConflictError(f"a job cannot be asked to become {wanted.value}")
    with workspace.session() as session:
        job = _job(session, job_id)
        if wanted == ActivityStatus.RUNNING and job.status != ActivityStatus.PAUSED:
            raise ConflictError(f"job {job_id} is {job.status.value}, not paused")
    set_job_status(workspace, job_id, wanted)
    append_log(workspace, job_id, f"{wanted.value} requested")
    return show_job(workspace, job_id)
