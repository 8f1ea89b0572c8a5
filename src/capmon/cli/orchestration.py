"""``capmon season run|schedule``, ``capmon jobs ...``, ``capmon watch`` and ``capmon worker``."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from capmon.catalog.models import ActivityStatus, StartType
from capmon.cli.common import (
    console,
    err_console,
    print_json,
    reported_errors,
    split_values,
    state,
)
from capmon.errors import InputError
from capmon.orchestrator import jobs as job_model
from capmon.orchestrator.plan import set_schedule
from capmon.settings import SCHEDULER_ENV

if TYPE_CHECKING:  # imported by the commands that run: `capmon jobs` does not need Dask
    from capmon.orchestrator.execute import ClusterSpec, SeasonRunReport

jobs_app = typer.Typer(
    help="Jobs: orchestrated runs, their tasks, steps and logs.", no_args_is_help=True
)

WorkersOption = Annotated[int, typer.Option("--workers", help="Local Dask worker processes.")]
ThreadsOption = Annotated[int, typer.Option("--threads", help="Threads per local worker.")]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        envvar=SCHEDULER_ENV,
        help="A Dask scheduler (tcp://HOST:PORT) instead of a local cluster.",
        show_default=False,
    ),
]
ProcessorsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--processors",
        help="Processor ids to consider, comma-separated or repeated [default: every enabled one].",
        show_default=False,
    ),
]


def _print_report(report: SeasonRunReport, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "job": report.job_id,
                "status": report.status,
                "until": report.until,
                "ingested": report.ingested,
                "extracted": len(report.extracted),
                "empty": len(report.empty),
                "failed": report.failed,
                "already_done": len(report.already_done),
                "superseded": len(report.superseded),
                "rows": report.rows,
                "processors_run": [p for p, _ in report.processors_run],
                "processors_failed": report.processors_failed,
                "processors_up_to_date": report.processors_up_to_date,
                "processors_not_due": report.processors_not_due,
                "processors_skipped": [
                    {"processor": p, "reason": reason} for p, reason in report.processors_skipped
                ],
                "processors_backing_off": report.processors_backing_off,
                "seconds": round(report.seconds, 3),
                "driver_seconds": round(report.driver_seconds, 3),
            }
        )
        return
    console.print(report.summary())
    for name, reason in report.processors_failed:
        console.print(f"  [red]{name} failed:[/] {reason}", highlight=False)
    for name, reason in report.failed:
        console.print(f"  [yellow]product {name} not extracted:[/] {reason}", highlight=False)
    for name, reason in report.processors_backing_off:
        console.print(f"  [yellow]{name} not retried yet:[/] {reason}", highlight=False)
    for name, reason in report.processors_skipped:
        console.print(f"  {name} skipped: {reason}", highlight=False, markup=False)


class StagePrinter:
    """Progress of a season run on stderr, stage by stage, as it goes: a rich progress bar on
    a terminal, else plain lines (a line per stage and about every tenth of its units), so
    that logs and CI show what the run is doing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.live = enabled and err_console.is_terminal
        self._bar: Progress | None = None
        self._task: Any = None
        self._stage = ""
        self._last = -1

    def __enter__(self) -> StagePrinter:
        if self.live:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=err_console,
                transient=False,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def __call__(self, message: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        stage = message.split(":", 1)[0]
        if self._bar is not None:
            if stage != self._stage or self._task is None:
                if self._task is not None:
                    self._bar.stop_task(self._task)
                self._task = self._bar.add_task(message[:70], total=total or None)
            self._bar.update(self._task, completed=done, description=message[:70])
            self._stage = stage
            return
        step = max(1, total // 10)
        new_stage = stage != self._stage
        if new_stage or total == 0 or done == total or done // step != self._last:
            err_console.print(message, highlight=False, markup=False, soft_wrap=True)
        self._stage = stage
        self._last = done // step


def _run(
    ctx: typer.Context,
    site: str,
    season: str,
    until: dt.datetime | None,
    processors: list[str] | None,
    spec: ClusterSpec,
    start_type: StartType,
    ingest: list[Path],
    as_json: bool,
) -> SeasonRunReport:
    from capmon.orchestrator.execute import run_season

    workspace = state(ctx).workspace()
    with StagePrinter(enabled=not as_json) as printer:
        report = run_season(
            workspace,
            site,
            season,
            until=until.date() if until is not None else None,
            processors=processors,
            cluster=spec,
            start_type=start_type,
            ingest=ingest,
            progress=printer,
        )
    _print_report(report, as_json)
    return report


def season_run(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name or short name.")],
    season: Annotated[str, typer.Argument(help="Season name.")],
    until: Annotated[
        dt.datetime | None,
        typer.Option("--until", formats=["%Y-%m-%d"], help="Run as of this date [default: today]."),
    ] = None,
    processors: ProcessorsOption = None,
    workers: WorkersOption = 2,
    threads: ThreadsOption = 1,
    scheduler: SchedulerOption = None,
    ingest: Annotated[
        list[str] | None,
        typer.Option(
            "--ingest",
            help="Register the products of these folders first (comma-separated or repeated).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run everything due in a season: MDB extraction of new products, then due processors."""
    from capmon.orchestrator.execute import ClusterSpec

    with reported_errors():
        report = _run(
            ctx,
            site,
            season,
            until,
            split_values(processors),
            ClusterSpec(workers, threads, scheduler),
            StartType.REQUESTED,
            [Path(p) for p in split_values(ingest) or []],
            as_json,
        )
    if report.status == ActivityStatus.ERROR.value:
        raise typer.Exit(1)


def season_schedule(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name or short name.")],
    processor: Annotated[str, typer.Argument(help="Processor id (see `capmon run --help`).")],
    season: Annotated[
        str | None,
        typer.Option("--season", help="Only this season [default: every season of the site]."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="on_products, daily, weekly, monthly, every or once.")
    ] = None,
    first: Annotated[str | None, typer.Option(help="Anchor: start, mid or end.")] = None,
    offset_days: Annotated[int | None, typer.Option(help="Days added to the anchor.")] = None,
    every_days: Annotated[int | None, typer.Option(help="Period of kind 'every'.")] = None,
    params: Annotated[
        str | None, typer.Option("--params", help="The processor's parameters as JSON.")
    ] = None,
    disable: Annotated[
        bool, typer.Option("--disable", help="Leave it out of season runs.")
    ] = False,
) -> None:
    """Override a processor's default schedule and parameters for a site or one season."""
    with reported_errors():
        try:
            values: dict[str, Any] = json.loads(params) if params else {}
        except json.JSONDecodeError as exc:
            raise InputError(f"--params is not JSON: {exc}") from exc
        set_schedule(
            state(ctx).workspace(),
            site,
            season,
            processor,
            kind=kind,
            first=first,
            offset_days=offset_days,
            every_days=every_days,
            parameters=values,
            enabled=not disable,
        )
    console.print(
        f"schedule of {processor} set for site {site}" + (f", season {season}" if season else "")
    )


def _percent(progress: float, status: str) -> str:
    """A job's progress in whole percent, rounded down: a job is '100 %' once it ended."""
    if status in {s.value for s in job_model.TERMINAL}:
        return "100 %" if status == ActivityStatus.FINISHED.value else f"{int(100 * progress)} %"
    return f"{min(99, int(100 * progress))} %"


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many jobs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The newest jobs first."""
    with reported_errors():
        wanted = None
        if status is not None:
            try:
                wanted = ActivityStatus(status)
            except ValueError:
                known = ", ".join(s.value for s in ActivityStatus)
                raise InputError(f"--status {status!r} is not one of {known}") from None
        views = job_model.list_jobs(state(ctx).workspace(), site=site, status=wanted, limit=limit)
    if as_json:
        print_json([v.to_json() for v in views])
        return
    table = Table(
        "id", "processor", "site", "season", "start", "status", "progress", "submitted", "message"
    )
    for v in views:
        table.add_row(
            str(v.id), v.processor, v.site or "", v.season or "", v.start_type, v.status,
            _percent(v.progress, v.status), str(v.submitted_at or "")[:19], (v.message or "")[:60],
        )  # fmt: skip
    console.print(table)


@jobs_app.command("show")
def jobs_show(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """A job with its tasks and their steps."""
    with reported_errors():
        view = job_model.show_job(state(ctx).workspace(), job_id)
    if as_json:
        print_json(view.to_json())
        return
    console.print(
        f"job {view.id} ({view.processor}, {view.start_type}) site {view.site} season "
        f"{view.season}: [bold]{view.status}[/] {_percent(view.progress, view.status)}  "
        f"{view.message or ''}",
        highlight=False,
    )
    for task in view.tasks:
        console.print(
            f"  task {task['id']} {task['module']}: {task['status']}, {task['steps']} steps"
            f" ({task['failed_steps']} failed), after {task['preceding']}",
            highlight=False,
        )


@jobs_app.command("logs")
def jobs_logs(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="Job id.")]) -> None:
    """The job's log, then the logs of its failed steps."""
    with reported_errors():
        workspace = state(ctx).workspace()
        view = job_model.show_job(workspace, job_id)
        console.print(job_model.read_log(workspace, job_id), end="", highlight=False, markup=False)
    for task in view.tasks:
        for step in task.get("step_list", []):
            if step["status"] == ActivityStatus.ERROR.value:
                console.print(
                    f"--- {task['module']} / {step['name']} ---", highlight=False, markup=False
                )
                console.print(step["log"] or "", highlight=False, markup=False)


def _request(ctx: typer.Context, job_id: int, wanted: ActivityStatus) -> None:
    with reported_errors():
        view = job_model.request_status(state(ctx).workspace(), job_id, wanted)
    console.print(f"job {view.id}: {view.status}")


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="Job id.")]) -> None:
    """Cancel a job: its driver cancels the queued units and stops."""
    _request(ctx, job_id, ActivityStatus.CANCELLED)


@jobs_app.command("pause")
def jobs_pause(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="Job id.")]) -> None:
    """Pause a job: units in flight finish, no new one starts until it is resumed."""
    _request(ctx, job_id, ActivityStatus.PAUSED)


@jobs_app.command("resume")
def jobs_resume(ctx: typer.Context, job_id: Annotated[int, typer.Argument(help="Job id.")]) -> None:
    """Resume a paused job."""
    _request(ctx, job_id, ActivityStatus.RUNNING)


def watch(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name or short name.")],
    folders: Annotated[list[Path], typer.Argument(help="Folders where new products arrive.")],
    season: Annotated[str, typer.Option("--season", help="The season to keep up to date.")],
    interval: Annotated[float, typer.Option(help="Seconds between two looks.")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="Look once, run what is due, stop.")] = False,
    until: Annotated[
        dt.datetime | None,
        typer.Option("--until", formats=["%Y-%m-%d"], help="As of this date [default: today]."),
    ] = None,
    processors: ProcessorsOption = None,
    workers: WorkersOption = 2,
    threads: ThreadsOption = 1,
    scheduler: SchedulerOption = None,
) -> None:
    """Pick up new products as they arrive: register them, extract only what is new and run
    the processors that are due (a product dated before a processor's last run makes it run
    again). Runs until interrupted (service mode), or once with --once.

    With --once the exit status is 1 when the run ended in error. In service mode an error is
    reported and the next look tries again; a processor that failed is retried with backoff."""
    from capmon.orchestrator.execute import ClusterSpec

    spec = ClusterSpec(workers, threads, scheduler)
    while True:
        try:
            with reported_errors():
                report = _run(
                    ctx,
                    site,
                    season,
                    until,
                    split_values(processors),
                    spec,
                    StartType.TRIGGERED,
                    folders,
                    False,
                )
        except typer.Exit:
            if once:
                raise
            err_console.print(f"will look again in {interval:g} s")
        else:
            if once:
                if report.status == ActivityStatus.ERROR.value:
                    raise typer.Exit(1)
                return
        time.sleep(interval)


def worker(
    scheduler: Annotated[str, typer.Argument(help="The scheduler's address, tcp://HOST:PORT.")],
    nthreads: Annotated[int, typer.Option("--threads", help="Threads of this worker.")] = 1,
    name: Annotated[str | None, typer.Option(help="Worker name.")] = None,
) -> None:
    """Start a Dask worker for a scheduler (a wrapper of ``dask worker``); the worker needs
    capmon installed and the workspace's files at the same paths (a shared file system)."""
    import asyncio

    from distributed import Worker

    async def serve() -> None:
        async with Worker(scheduler, nthreads=nthreads, name=name) as running:
            await running.finished()

    asyncio.run(serve())


def register(app: typer.Typer, season_app: typer.Typer) -> None:
    """Wire the commands into the ``capmon`` app."""
    season_app.command("run")(season_run)
    season_app.command("schedule")(season_schedule)
    app.add_typer(jobs_app, name="jobs")
    app.command("watch")(watch)
    app.command("worker")(worker)
