"""The season lock: one run at a time writes a season's MDB and products.

A row of ``season_lock`` (primary key: the season) names its owner: host, pid and a random
token. Taking the lock is an INSERT, so the database decides who wins, on SQLite and on
PostgreSQL alike (and across machines sharing a PostgreSQL catalogue). The owner refreshes the
row's heartbeat every few seconds from a thread. A lock is *stale*, and taken over by the next
run, when its owner's pid no longer exists on this host (a SIGKILLed run), or when its
heartbeat is older than ``stale_after`` seconds (an owner on another machine that died). The
takeover deletes the row only if it still names the stale owner, so two runs that find the same
stale lock cannot both take it. A live lock makes the second run fail with a
:class:`ConflictError` naming the job that holds it.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid
from types import TracebackType

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from capmon.catalog.models import ActivityStatus, Job, SeasonLock
from capmon.errors import ConflictError
from capmon.workspace import Workspace

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _aware(stamp: dt.datetime) -> dt.datetime:
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


class SeasonRunLock:
    """The lock of one season, held by this process (use as a context manager)."""

    def __init__(
        self,
        workspace: Workspace,
        season_id: int,
        *,
        what: str = "",
        stale_after: float = STALE_AFTER_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.workspace = workspace
        self.season_id = season_id
        self.what = what or f"season {season_id}"
        self.stale_after = stale_after
        self.heartbeat_seconds = heartbeat
        self.host = socket.gethostname()[:128]
        self.pid = os.getpid()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex}"[:128]
        self.taken_over: SeasonLock | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> SeasonRunLock:
        """Take the lock, taking over a stale one; :class:`ConflictError` when it is held."""
        for _attempt in range(3):
            if self._insert():
                break
            holder = self._holder()
            if holder is None:
                continue  # released in between: try again
            if not self._stale(holder):
                age = (dt.datetime.now(dt.UTC) - _aware(holder.heartbeat_at)).total_seconds()
                job = f"job {holder.job_id}" if holder.job_id is not None else "another run"
                raise ConflictError(
                    f"{self.what} is being run by {job} (pid {holder.pid} on {holder.host}, "
                    f"last heartbeat {age:.0f} s ago); wait for it to end or cancel it with "
                    f"`capmon jobs cancel {holder.job_id}`"
                )
            self._take_over(holder)
        else:
            raise ConflictError(f"{self.what}: could not take the season lock (contended)")
        self._thread = threading.Thread(target=self._beat, name="season-lock", daemon=True)
        self._thread.start()
        return self

    def set_job(self, job_id: int) -> None:
        """Name the job that holds the lock (shown to a run that is refused)."""
        with self.workspace.session() as session:
            session.execute(
                update(SeasonLock)
                .where(SeasonLock.season_id == self.season_id, SeasonLock.owner == self.owner)
                .values(job_id=job_id)
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self.workspace.session() as session:
            session.execute(
                delete(SeasonLock).where(
                    SeasonLock.season_id == self.season_id, SeasonLock.owner == self.owner
                )
            )

    def __enter__(self) -> SeasonRunLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _insert(self) -> bool:
        stamp = dt.datetime.now(dt.UTC)
        try:
            with self.workspace.session() as session:
                session.add(
                    SeasonLock(
                        season_id=self.season_id,
                        owner=self.owner,
                        host=self.host,
                        pid=self.pid,
                        acquired_at=stamp,
                        heartbeat_at=stamp,
                    )
                )
        except IntegrityError:
            return False
        return True

    def _holder(self) -> SeasonLock | None:
        with self.workspace.session() as session:
            return session.get(SeasonLock, self.season_id)

    def _stale(self, holder: SeasonLock) -> bool:
        if holder.host == self.host and not _pid_alive(holder.pid):
            return True
        age = (dt.datetime.now(dt.UTC) - _aware(holder.heartbeat_at)).total_seconds()
        return age > self.stale_after

    def _take_over(self, holder: SeasonLock) -> None:
        with self.workspace.session() as session:
            session.execute(
                delete(SeasonLock).where(
                    SeasonLock.season_id == self.season_id, SeasonLock.owner == holder.owner
                )
            )
            if holder.job_id is not None:
                job = session.get(Job, holder.job_id)
                if job is not None and job.status not in (
                    ActivityStatus.FINISHED,
                    ActivityStatus.CANCELLED,
                    ActivityStatus.ERROR,
                ):
                    job.status = ActivityStatus.ERROR
                    job.message = (
                        f"interrupted: its run (pid {holder.pid} on {holder.host}) stopped "
                        "without releasing the season lock"
                    )
                    job.ended_at = job.status_at = dt.datetime.now(dt.UTC)
        self.taken_over = holder

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                with self.workspace.session() as session:
                    session.execute(
                        update(SeasonLock)
                        .where(
                            SeasonLock.season_id == self.season_id,
                            SeasonLock.owner == self.owner,
                        )
                        .values(heartbeat_at=dt.datetime.now(dt.UTC))
                    )
            except Exception:  # a missed heartbeat is retried at the next beat
                continue
