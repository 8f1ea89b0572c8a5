"""Jobs (OGC API - Processes 1.0 Part 1: Core, job-list and dismiss classes), plus pause,
resume, cancel and the log for the web UI.

A job's status document (``statusInfo``) maps capmon's statuses to OGC's: submitted and
pending -> ``accepted``, running and paused -> ``running``, finished -> ``successful``, error ->
``failed``, cancelled -> ``dismissed``; ``x-capmon-status`` keeps capmon's own. The results of a
successful job link each product it registered to its STAC item. Jobs of sites the user may
not read answer 403; ``/jobs`` lists only jobs of readable sites.

A job's id in URLs (``jobID``) is its random ``Job.uid`` (32 hex digits), never its row id:
SQLite reuses the id of the newest row after it is deleted, so after a dismiss an old job URL
would show the next job.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import PurePath
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, select

from capmon.catalog.models import ActivityStatus, Job, Product, Season, Site, Step, Task
from capmon.errors import ConflictError, InputError, NotFoundError
from capmon.orchestrator import jobs as job_store
from capmon.processors import get_processor
from capmon.service.auth import CurrentPrincipal, Principal, check_site_id, site_for
from capmon.service.errors import CAPMON, NoSuchJobError, ResultNotReadyError, ServiceError
from capmon.service.executor import dismiss_job, job_executor
from capmon.service.links import base_url, link
from capmon.service.stac import mdb_name
from capmon.service.stac_ids import COLLECTIONS, collection_id, item_path
from capmon.service.state import service_state
from capmon.workspace import Workspace

router = APIRouter(tags=["Jobs"])

OGC_STATUS: dict[ActivityStatus, str] = {
    ActivityStatus.SUBMITTED: "accepted",
    ActivityStatus.PENDING: "accepted",
    ActivityStatus.RUNNING: "running",
    ActivityStatus.PAUSED: "running",
    ActivityStatus.FINISHED: "successful",
    ActivityStatus.ERROR: "failed",
    ActivityStatus.CANCELLED: "dismissed",
}
REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
REL_JOB_LIST = "http://www.opengis.net/def/rel/ogc/1.0/job-list"
_JOB_ID = re.compile(r"[0-9a-f]{32}")


class Link(BaseModel):
    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class ExceptionDocument(BaseModel):
    """An OGC API exception (RFC 7807 fields); ``errors`` names the invalid fields."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, str]] | None = None


class StatusInfo(BaseModel):
    """OGC API - Processes ``statusInfo``, plus capmon's own status, site and season."""

    model_config = ConfigDict(populate_by_name=True)

    processID: str | None = None  # noqa: N815 (the standard's names)
    type: Literal["process"] = "process"
    jobID: str  # noqa: N815
    status: Literal["accepted", "running", "successful", "failed", "dismissed"]
    message: str | None = None
    created: dt.datetime | None = None
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    updated: dt.datetime | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    links: list[Link] = Field(default_factory=list)
    capmon_status: str = Field(alias="x-capmon-status", description="capmon's own status.")
    capmon_site: str | None = Field(default=None, alias="x-capmon-site")
    capmon_season: str | None = Field(default=None, alias="x-capmon-season")


class JobList(BaseModel):
    jobs: list[StatusInfo]
    links: list[Link]


class ResultLink(BaseModel):
    """An output of a job: a link to the STAC item of the product (or collection) it made."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class JobFailedError(ServiceError):
    """The results of a job that failed: its error, 400 when the processor refused its inputs
    or data, 500 for a bug or an infrastructure failure."""

    type = CAPMON + "job-failed"
    title = "Job failed"

    def __init__(self, message: str, input_error: bool) -> None:
        super().__init__(message)
        self.status = 400 if input_error else 500


def _utc(stamp: dt.datetime | None) -> dt.datetime | None:
    if stamp is None:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


def status_info(base: str, job: Job, site: str | None, season: str | None) -> dict[str, Any]:
    """The ``statusInfo`` document of a job."""
    status = ActivityStatus(job.status)
    ogc = OGC_STATUS[status]
    uid = public_id(job)
    links = [
        link(base, f"/jobs/{uid}", "self", "application/json", "This job's status"),
        link(base, f"/jobs/{uid}/logs", "log", "text/plain", "This job's log"),
        link(base, "/jobs", "up", "application/json", "The job list"),
    ]
    if ogc == "successful":
        links.insert(
            1,
            link(base, f"/jobs/{uid}/results", REL_RESULTS, "application/json", "Results"),
        )
    return {
        "processID": job.processor,
        "type": "process",
        "jobID": uid,
        "status": ogc,
        "message": job.message,
        "created": _utc(job.submitted_at),
        "started": _utc(job.started_at),
        "finished": _utc(job.ended_at),
        "updated": _utc(job.status_at),
        "progress": round(100 * max(0.0, min(1.0, job.progress or 0.0))),
        "links": links,
        "x-capmon-status": status.value,
        "x-capmon-site": site,
        "x-capmon-season": season,
    }


def _with_names() -> Select[Job, str, str]:
    return (
        select(Job, Site.name, Season.name)
        .outerjoin(Site, Job.site_id == Site.id)
        .outerjoin(Season, Job.season_id == Season.id)
    )


def public_id(job: Job) -> str:
    """The job's id in URLs (its uid; the row id only for a row older than uids)."""
    return job.uid or str(job.id)


def job_id_of(workspace: Workspace, text: str) -> int:
    """The row id of the job ``text`` names in a path (404 no-such-job for anything else)."""
    if not _JOB_ID.fullmatch(text):
        raise NoSuchJobError(f"no job {text!r}")
    with workspace.session() as session:
        number = session.scalar(select(Job.id).where(Job.uid == text))
    if number is None:
        raise NoSuchJobError(f"no job {text!r}")
    return number


def job_document(
    workspace: Workspace, principal: Principal, job_id: int, base: str, *, write: bool = False
) -> dict[str, Any]:
    """The status document of a job the principal may see (or change, with ``write``)."""
    with workspace.session() as session:
        row = session.execute(_with_names().where(Job.id == job_id)).first()
        if row is None:
            raise NoSuchJobError("no such job (dismissed meanwhile)")
        job, site, season = row
        check_site_id(principal, job.site_id, write=write)
        return status_info(base, job, site, season)


JobID = Annotated[str, Path(alias="jobID", description="The job's id.")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ExceptionDocument, "description": "Not allowed for your role or sites"},
    404: {"model": ExceptionDocument, "description": "No such job (no-such-job)"},
}


_STATUS_NAMES = "|".join(
    "".join(f"[{c}{c.upper()}]" for c in name)  # any case, in ECMA-262 regex (no inline flags)
    for name in sorted(set(OGC_STATUS.values()) | {s.value for s in ActivityStatus})
)
_STATUS_LIST = rf"^\s*$|^\s*({_STATUS_NAMES})\s*(,\s*({_STATUS_NAMES})\s*)*$"
"""The ``status`` filter: a comma-separated list of OGC's or capmon's statuses (empty: all)."""


def _parse_statuses(text: str | None) -> set[ActivityStatus] | None:
    if text is None or not text.strip():
        return None
    wanted: set[ActivityStatus] = set()
    by_ogc: dict[str, set[ActivityStatus]] = {}
    for capmon, ogc in OGC_STATUS.items():
        by_ogc.setdefault(ogc, set()).add(capmon)
    for name in (part.strip().lower() for part in text.split(",")):
        if name in by_ogc:
            wanted |= by_ogc[name]
        elif name in {s.value for s in ActivityStatus}:
            wanted.add(ActivityStatus(name))
        else:
            known = sorted(set(by_ogc) | {s.value for s in ActivityStatus})
            raise InputError(f"status: unknown status {name!r} (one of {', '.join(known)})")
    return wanted


@router.get(
    "/jobs",
    response_model=JobList,
    response_model_exclude_none=True,
    summary="List jobs",
    responses={
        400: {"model": ExceptionDocument, "description": "Invalid query parameter"},
        404: {"model": ExceptionDocument, "description": "No such site (admins)"},
    },
)
def list_jobs(
    request: Request,
    principal: CurrentPrincipal,
    site: Annotated[str | None, Query(description="Only jobs of this site.")] = None,
    status: Annotated[
        str | None,
        Query(
            pattern=_STATUS_LIST,
            description=(
                "Only jobs with these statuses (comma-separated; OGC's accepted, running, "
                "successful, failed, dismissed or capmon's submitted, paused, finished...)."
            ),
        ),
    ] = None,
    process_id: Annotated[
        str | None, Query(alias="processID", description="Only jobs of this process.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Jobs per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31, description="Jobs skipped (paging).")] = 0,
) -> dict[str, Any]:
    """The jobs of the sites you may read, newest first, with ``next``/``prev`` links."""
    workspace = service_state(request).workspace
    statuses = _parse_statuses(status)
    query = _with_names().order_by(Job.id.desc())
    if site is not None:
        query = query.where(Job.site_id == site_for(workspace, principal, site).id)
    elif not principal.is_admin:
        query = query.where(Job.site_id.in_(sorted(principal.site_ids)))
    if statuses is not None:
        query = query.where(Job.status.in_(sorted(statuses)))
    if process_id is not None:
        query = query.where(Job.processor == process_id)
    base = base_url(request)
    with workspace.session() as session:
        rows = session.execute(query.offset(offset).limit(limit + 1)).all()
        documents = [status_info(base, job, s, season) for job, s, season in rows[:limit]]
    given = {
        key: value
        for key, value in (("site", site), ("status", status), ("processID", process_id))
        if value is not None
    }

    def page(start: int) -> str:
        return "/jobs?" + urlencode({**given, "limit": limit, "offset": start})

    links = [link(base, page(offset), "self", "application/json", "This page")]
    if len(rows) > limit:
        links.append(link(base, page(offset + limit), "next", "application/json", "Next page"))
    if offset > 0:
        links.append(
            link(base, page(max(0, offset - limit)), "prev", "application/json", "Previous page")
        )
    return {"jobs": documents, "links": links}


@router.get(
    "/jobs/{jobID}",
    response_model=StatusInfo,
    response_model_exclude_none=True,
    summary="A job's status",
    responses=_ERRORS,
)
def get_job(request: Request, principal: CurrentPrincipal, job_id: JobID) -> dict[str, Any]:
    """Status, progress (0-100) and links (results when successful, log) of a job."""
    workspace = service_state(request).workspace
    return job_document(workspace, principal, job_id_of(workspace, job_id), base_url(request))


def _job_for_results(workspace: Workspace, principal: Principal, job_id: int) -> Job:
    with workspace.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NoSuchJobError("no such job (dismissed meanwhile)")
        check_site_id(principal, job.site_id)
        return job


def job_failure(workspace: Workspace, job: Job) -> JobFailedError:
    """The error of a failed job, from its failed step (400 when it was about the inputs)."""
    with workspace.session() as session:
        steps = session.scalars(
            select(Step)
            .join(Task, Step.task_id == Task.id)
            .where(Task.job_id == job.id, Step.status == ActivityStatus.ERROR)
            .order_by(Step.id)
        ).all()
    input_error = bool(steps) and all(
        bool(step.parameters.get("details", {}).get("input_error")) for step in steps
    )
    message = job.message or "the job failed"
    return JobFailedError(f"job {public_id(job)} failed: {message}", input_error)


def results_document(workspace: Workspace, job: Job, base: str) -> dict[str, Any]:
    """The results of a successful job: each output, a link to its product's STAC item; an
    MDB output links to the item of the MDB folder the job wrote; an output whose product type
    is a STAC collection but registered no product links to the collection; other outputs are
    left out."""
    with workspace.session() as session:
        rows = session.execute(
            select(Product, Site.short_name)
            .join(Site, Product.site_id == Site.id)
            .where(Product.job_id == job.id)
            .order_by(Product.id)
        ).all()
        products = [(p.product_type, p.name, short) for p, short in rows]
    try:
        outputs = [(o.name, o.product_type) for o in get_processor(job.processor).outputs]
    except NotFoundError:  # a season run or a processor no longer registered
        outputs = []
    names = {product_type: name for name, product_type in outputs}
    results: dict[str, Any] = {}
    for product_type, name, short in products:
        output = names.get(product_type, product_type)
        key = output if output not in results else f"{output}:{name}"
        results[key] = {
            "href": base + item_path(product_type, short, name),
            "rel": "item",
            "type": "application/geo+json",
            "title": name,
        }
    made = {product_type for product_type, _name, _short in products}
    written = _step_outputs(workspace, job.id)
    for name, product_type in outputs:
        own = _mdb_item(workspace, written.get(name)) if product_type == "mdb" else None
        if own is not None and name not in results:
            short, season, declarations = own
            item = mdb_name(season, declarations)
            results[name] = {
                "href": base + item_path(product_type, short, item),
                "rel": "item",
                "type": "application/geo+json",
                "title": item,
            }
        elif product_type not in made and name not in results and product_type in COLLECTIONS:
            results[name] = {
                "href": f"{base}/stac/collections/{collection_id(product_type)}",
                "rel": "collection",
                "type": "application/json",
                "title": f"The {product_type} collection (this job registered no product)",
            }
    return results


def _step_outputs(workspace: Workspace, job_id: int) -> dict[str, str]:
    """The outputs (name -> path) the job's steps recorded when they finished."""
    outputs: dict[str, str] = {}
    with workspace.session() as session:
        for parameters in session.scalars(
            select(Step.parameters).join(Task, Step.task_id == Task.id).where(Task.job_id == job_id)
        ):
            details = (parameters or {}).get("details") or {}
            for name, path in (details.get("outputs") or {}).items():
                outputs[str(name)] = str(path)
    return outputs


def _mdb_item(workspace: Workspace, path: str | None) -> tuple[str, str, int] | None:
    """(site short name, season, declaration set) of an MDB folder the job wrote
    (``<home>/mdb/<site>/<season>/declarations-<id>``), when it is one."""
    if path is None:
        return None
    try:
        parts = PurePath(os.path.realpath(path)).relative_to(workspace.path("mdb").resolve()).parts
    except ValueError:
        return None
    if len(parts) != 3 or not parts[2].startswith("declarations-"):
        return None
    number = parts[2].removeprefix("declarations-")
    return (parts[0], parts[1], int(number)) if number.isdigit() else None


@router.get(
    "/jobs/{jobID}/results",
    response_model=dict[str, ResultLink],
    response_model_exclude_none=True,
    summary="A job's results",
    responses={
        **_ERRORS,
        400: {"model": ExceptionDocument, "description": "The job failed on its inputs"},
        500: {"model": ExceptionDocument, "description": "The job failed"},
    },
)
def get_results(request: Request, principal: CurrentPrincipal, job_id: JobID) -> dict[str, Any]:
    """Links to the STAC items of the products a successful job registered; 404
    result-not-ready while it runs; the job's error when it failed."""
    workspace = service_state(request).workspace
    job = _job_for_results(workspace, principal, job_id_of(workspace, job_id))
    status = ActivityStatus(job.status)
    if status == ActivityStatus.ERROR:
        raise job_failure(workspace, job)
    if status != ActivityStatus.FINISHED:
        raise ResultNotReadyError(f"job {job_id} is {status.value}: no results (yet)")
    return results_document(workspace, job, base_url(request))


@router.delete(
    "/jobs/{jobID}",
    response_model=StatusInfo,
    response_model_exclude_none=True,
    summary="Dismiss a job",
    responses={
        **_ERRORS,
        409: {"model": ExceptionDocument, "description": "A season run: cancel it instead"},
    },
)
def dismiss(request: Request, principal: CurrentPrincipal, job_id: JobID) -> dict[str, Any]:
    """Cancel the job if it runs, then delete its products, log and record. Answers its last
    status as ``dismissed``; the job is gone afterwards (404)."""
    state = service_state(request)
    number = job_id_of(state.workspace, job_id)
    document = job_document(state.workspace, principal, number, base_url(request), write=True)
    try:
        get_processor(document["processID"])
    except NotFoundError:
        raise ConflictError(
            f"job {job_id} is a {document['processID']} run, not a process execution: cancel "
            f"it with POST /jobs/{job_id}/cancel (its record says what is up to date)"
        ) from None
    dismiss_job(state.workspace, job_executor(request), number)
    document["status"] = "dismissed"
    document["message"] = "dismissed: its products, log and record are deleted"
    document["updated"] = job_store.now()
    document["links"] = [entry for entry in document["links"] if entry["rel"] == "up"]
    return document


def _request(request: Request, principal: Principal, job_id: str, wanted: ActivityStatus) -> Any:
    state = service_state(request)
    number = job_id_of(state.workspace, job_id)
    job_document(state.workspace, principal, number, base_url(request), write=True)
    job_store.request_status(state.workspace, number, wanted)
    if wanted == ActivityStatus.CANCELLED:
        job_executor(request).cancel(number)
    return job_document(state.workspace, principal, number, base_url(request))


_CONTROL: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"model": ExceptionDocument, "description": "The job's status does not allow it"},
}


@router.post(
    "/jobs/{jobID}/pause",
    response_model=StatusInfo,
    response_model_exclude_none=True,
    summary="Pause a job",
    responses=_CONTROL,
)
def pause(request: Request, principal: CurrentPrincipal, job_id: JobID) -> Any:
    """The job waits at its next progress report until resumed (operator of its site)."""
    return _request(request, principal, job_id, ActivityStatus.PAUSED)


@router.post(
    "/jobs/{jobID}/resume",
    response_model=StatusInfo,
    response_model_exclude_none=True,
    summary="Resume a paused job",
    responses=_CONTROL,
)
def resume(request: Request, principal: CurrentPrincipal, job_id: JobID) -> Any:
    return _request(request, principal, job_id, ActivityStatus.RUNNING)


@router.post(
    "/jobs/{jobID}/cancel",
    response_model=StatusInfo,
    response_model_exclude_none=True,
    summary="Cancel a job",
    responses=_CONTROL,
)
def cancel(request: Request, principal: CurrentPrincipal, job_id: JobID) -> Any:
    """The job stops at its next progress report; what it wrote is not registered. Unlike
    DELETE, the job's record and log stay."""
    return _request(request, principal, job_id, ActivityStatus.CANCELLED)


@router.get(
    "/jobs/{jobID}/logs",
    response_class=PlainTextResponse,
    summary="A job's log",
    responses={**_ERRORS, 200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def logs(request: Request, principal: CurrentPrincipal, job_id: JobID) -> PlainTextResponse:
    """The job's log, then the log of each of its steps (a summary, or an error's traceback)."""
    workspace = service_state(request).workspace
    number = job_id_of(workspace, job_id)
    job_document(workspace, principal, number, base_url(request))
    parts = [job_store.read_log(workspace, number).rstrip("\n")]
    with workspace.session() as session:
        steps = session.execute(
            select(Task.module, Step.name, Step.status, Step.log)
            .join(Task, Step.task_id == Task.id)
            .where(Task.job_id == number)
            .order_by(Step.id)
        ).all()
    for module, name, status, text in steps:
        parts.append(f"--- step {module}/{name} ({ActivityStatus(status).value})\n{text or ''}")
    return PlainTextResponse("\n".join(p for p in parts if p).rstrip("\n") + "\n")
