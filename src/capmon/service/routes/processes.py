"""Processes (OGC API - Processes 1.0 Part 1: Core), generated from the processor registry.

Each registered processor is a process: its inputs are ``site`` and ``season`` plus one input
per field of its parameter model (JSON schema, title, description, default; ``minOccurs`` 0
when the field has a default), its outputs the registry's. ``POST /processes/{id}/execution``
runs it as a job on the service's Dask executor (:mod:`capmon.service.executor`).

Execution mode: processes advertise ``async-execute`` only (processor runs take minutes to
hours), so by OGC API - Processes 1.0 (``/req/core/process-execute-default-execution-mode``)
a request without ``Prefer`` runs asynchronously: 201, ``Location`` of the job and its status
document, which is what cuiman expects. ``Prefer: respond-async`` changes nothing (and is
acknowledged); ``Prefer: wait=N`` (RFC 7240) delays the same 201 answer until the job ends or N
seconds (at most ``ServiceConfig.sync_wait_seconds``) pass, so that a short job's status may
already be final. Running a process needs the operator role on the site (or admin).
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from capmon import __version__
from capmon.catalog.models import Role, Season, Site
from capmon.errors import NotFoundError
from capmon.processors import Processor, all_processors, get_processor
from capmon.processors.labels import parameter_label
from capmon.service.auth import CurrentPrincipal, Principal, site_for
from capmon.service.errors import ForbiddenError, NoSuchProcessError
from capmon.service.executor import job_executor, start_job
from capmon.service.links import base_url, link
from capmon.service.openapi import to_openapi30
from capmon.service.routes.jobs import (
    REL_JOB_LIST,
    ExceptionDocument,
    Link,
    StatusInfo,
    job_document,
)
from capmon.service.state import service_state
from capmon.workspace import Workspace

router = APIRouter(tags=["Processes"])

JOB_CONTROL = ["async-execute", "dismiss"]
"""No ``sync-execute``: see the module docstring."""
REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"
REL_PROCESSES = "http://www.opengis.net/def/rel/ogc/1.0/processes"
SITE_INPUT, SEASON_INPUT = "site", "season"
_QUALIFIED_KEYS = {"value", "mediaType", "encoding", "schema"}


class ProcessSummary(BaseModel):
    id: str
    title: str
    description: str
    version: str
    jobControlOptions: list[str]  # noqa: N815 (the standard's names)
    outputTransmission: list[str]  # noqa: N815
    links: list[Link]


class InputDescription(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    title: str | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    minOccurs: int = 1  # noqa: N815
    maxOccurs: int = 1  # noqa: N815


class OutputDescription(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    title: str | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")


class ProcessDescription(ProcessSummary):
    inputs: dict[str, InputDescription]
    outputs: dict[str, OutputDescription]


class ProcessList(BaseModel):
    processes: list[ProcessSummary]
    links: list[Link]


def _name_input(what: str, *, optional: bool = False) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "pattern": r"\S", "description": what}
    qualified = {"type": "object", "required": ["value"], "properties": {"value": text}}
    return {"anyOf": [text, qualified, *([{"type": "null"}] if optional else [])]}


_INPUTS_SCHEMA: dict[str, Any] = {
    "required": [SITE_INPUT],
    "properties": {
        SITE_INPUT: _name_input("The site's name (every process)"),
        SEASON_INPUT: _name_input(
            "The season's name (every process but multiannual)", optional=True
        ),
    },
}
"""What every process's inputs share: the site (and, but for multi-annual, the season), as
a value or a qualified value; the rest depends on the process (its description)."""


class Execute(BaseModel):
    """An execute request: the process's inputs by id (``site``, ``season`` and parameters).
    An input may be given as a qualified value ``{"value": ...}``; ``outputs``, ``response``
    and ``subscriber`` are accepted and ignored (outputs are always links, in a document)."""

    model_config = ConfigDict(json_schema_extra={"required": ["inputs"]})

    inputs: dict[str, Any] = Field(default_factory=dict, json_schema_extra=_INPUTS_SCHEMA)
    outputs: dict[str, Any] | None = None
    response: str | None = None
    subscriber: dict[str, Any] | None = None


def _summary(processor: Processor, base: str) -> dict[str, Any]:
    return {
        "id": processor.id,
        "title": processor.title,
        "description": processor.description,
        "version": __version__,
        "jobControlOptions": JOB_CONTROL,
        "outputTransmission": ["reference"],
        "links": [
            link(
                base,
                f"/processes/{processor.id}",
                "self",
                "application/json",
                f"Description of {processor.id}",
            )
        ],
    }


def _inline(schema: Any, definitions: dict[str, Any]) -> Any:
    """``schema`` with its ``$ref``s to ``$defs`` replaced by the definitions."""
    if isinstance(schema, list):
        return [_inline(s, definitions) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = _inline(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {**target, **{k: _inline(v, definitions) for k, v in schema.items() if k != "$ref"}}
    return {k: _inline(v, definitions) for k, v in schema.items()}


@functools.cache
def _inputs(processor_id: str) -> dict[str, dict[str, Any]]:
    """The process inputs of a processor: site, season and its parameters (OpenAPI 3.0
    schemas, as the rest of the API)."""
    processor = get_processor(processor_id)
    model_schema = processor.parameters.model_json_schema()
    definitions = model_schema.get("$defs", {})
    required = set(model_schema.get("required", []))
    inputs: dict[str, dict[str, Any]] = {
        SITE_INPUT: {
            "title": "Site",
            "description": "Name of the site to run on (you must be its operator).",
            "schema": {"type": "string"},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        SEASON_INPUT: {
            "title": "Season",
            "description": "Name of the site's season."
            + ("" if processor.needs_season else " Optional for this process."),
            "schema": {"type": "string"},
            "minOccurs": 1 if processor.needs_season else 0,
            "maxOccurs": 1,
        },
    }
    for name, schema in model_schema.get("properties", {}).items():
        if name in inputs:
            raise RuntimeError(
                f"processor {processor_id}: parameter {name!r} clashes with an input"
            )
        converted = to_openapi30({"components": {"schemas": {"x": _inline(schema, definitions)}}})
        field_schema = dict(converted["components"]["schemas"]["x"])
        title = field_schema.pop("title", name)
        description = field_schema.pop("description", None)
        label = parameter_label(processor_id, name)  # the human title and unit, if known
        if label is not None:
            title = label.title
            if label.unit:
                field_schema["x-unit"] = label.unit
        inputs[name] = {
            "title": title,
            "description": description,
            "schema": field_schema,
            "minOccurs": 1 if name in required else 0,
            "maxOccurs": 1,
        }
    return inputs


def _description(processor: Processor, base: str) -> dict[str, Any]:
    document = _summary(processor, base)
    document["links"] += [
        link(
            base,
            f"/processes/{processor.id}/execution",
            REL_EXECUTE,
            "application/json",
            "Execute (POST)",
        ),
        link(base, "/jobs?" + f"processID={processor.id}", REL_JOB_LIST, "application/json"),
    ]
    document["inputs"] = copy.deepcopy(_inputs(processor.id))
    document["outputs"] = {
        output.name: {
            "title": output.name,
            "description": f"{output.description} A link to the product's STAC item "
            f"(product type {output.product_type}, files {output.media_type}).",
            "schema": {"type": "string", "format": "uri"},
        }
        for output in processor.outputs
    }
    return document


def _process(process_id: str) -> Processor:
    try:
        return get_processor(process_id)
    except NotFoundError as exc:
        raise NoSuchProcessError(str(exc)) from None


ProcessID = Annotated[str, PathParameter(alias="processID", description="The process id.")]


@router.get("/processes", response_model=ProcessList, summary="List processes")
def list_processes(request: Request, _principal: CurrentPrincipal) -> dict[str, Any]:
    """Every processor of the registry, as an OGC process summary."""
    base = base_url(request)
    return {
        "processes": [_summary(p, base) for p in all_processors()],
        "links": [
            link(base, "/processes", "self", "application/json", "This document"),
            link(base, "/processes", REL_PROCESSES, "application/json", "Processes"),
        ],
    }


@router.get(
    "/processes/{processID}",
    response_model=ProcessDescription,
    summary="Describe a process",
    responses={404: {"model": ExceptionDocument, "description": "No such process"}},
)
def describe_process(
    request: Request, _principal: CurrentPrincipal, process_id: ProcessID
) -> dict[str, Any]:
    """Inputs (with their JSON schemas and defaults), outputs and execution modes."""
    return _description(_process(process_id), base_url(request))


def _invalid(field: str, message: str) -> RequestValidationError:
    """A 400 exception document naming ``inputs.<field>``."""
    return RequestValidationError(
        [{"loc": ("body", "inputs", field), "msg": message, "type": "value_error"}]
    )


def _plain(name: str, value: Any) -> Any:
    """An input's value: qualified values ``{"value": ...}`` are unwrapped; references
    (``{"href": ...}``) are refused."""
    if isinstance(value, dict):
        if "href" in value and "value" not in value:
            raise _invalid(name, "inputs by reference (href) are not supported: give the value")
        if "value" in value and set(value) <= _QUALIFIED_KEYS:
            return value["value"]
    return value


def _text_input(inputs: dict[str, Any], name: str, required: bool) -> str | None:
    value = _plain(name, inputs.get(name))
    if value is None:
        if required:
            raise _invalid(name, "this input is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid(name, "must be a non-empty string")
    return value


def _site_and_season(
    workspace: Workspace,
    principal: Principal,
    processor: Processor,
    inputs: dict[str, Any],
) -> tuple[Site, Season | None]:
    site_name = _text_input(inputs, SITE_INPUT, True)
    assert site_name is not None
    season_name = _text_input(inputs, SEASON_INPUT, processor.needs_season)
    try:
        site = site_for(workspace, principal, site_name, write=True)
    except NotFoundError:
        raise _invalid(SITE_INPUT, f"no site named {site_name!r}") from None
    if season_name is None:
        return site, None
    from capmon.sites import get_season, get_site

    with workspace.session() as session:
        try:
            return site, get_season(session, get_site(session, site.name), season_name)
        except NotFoundError:
            raise _invalid(
                SEASON_INPUT, f"site {site.name!r} has no season {season_name!r}"
            ) from None


def _parameters(processor: Processor, inputs: dict[str, Any]) -> BaseModel:
    values = {
        name: _plain(name, value)
        for name, value in inputs.items()
        if name not in (SITE_INPUT, SEASON_INPUT)
    }
    try:
        return processor.parse_parameters(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = [str(part) for part in error.get("loc", ())]
            message = str(error.get("msg", "invalid"))
            if error.get("type") == "extra_forbidden":
                message = f"{processor.id} has no input {location[0]!r}" if location else message
            problems.append(
                {
                    "loc": ("body", "inputs", *location),
                    "msg": message,
                    "type": str(error.get("type", "value_error")),
                }
            )
        raise RequestValidationError(problems) from None


def _site_folders_only(workspace: Workspace, site: Site, parameters: BaseModel) -> None:
    """Non-admins may only name files of their site: every path among the parameters (a
    ``Path`` field, or a string with a path separator such as ``YEAR=/path``) must resolve
    into a ``<home>/<area>/<site>/`` folder of the workspace."""
    home = workspace.home.resolve()

    def allowed(text: str) -> bool:
        path = Path(text).expanduser().resolve()
        if not path.is_relative_to(home):
            return False
        parts = path.relative_to(home).parts
        return len(parts) >= 2 and parts[1] == site.short_name

    for name in type(parameters).model_fields:
        value = getattr(parameters, name)
        for entry in value if isinstance(value, list | tuple) else [value]:
            if isinstance(entry, Path):
                candidates = [str(entry)]
            elif isinstance(entry, str) and ("/" in entry or os.sep in entry):
                candidates = [entry.split("=", 1)[1] if "=" in entry else entry]
            else:
                continue
            for candidate in candidates:
                if not allowed(candidate.strip()):
                    raise ForbiddenError(
                        f"input {name!r}: {candidate.strip()!r} is not a file of site "
                        f"{site.name!r} in the workspace (only admins may name other files)"
                    )


def _preferences(prefer: str | None) -> dict[str, str]:
    """RFC 7240 preferences: ``respond-async, wait=10`` -> {respond-async: '', wait: '10'}."""
    found: dict[str, str] = {}
    for part in (prefer or "").split(","):
        token = part.split(";", 1)[0].strip()
        if not token:
            continue
        name, _sep, value = token.partition("=")
        found[name.strip().lower()] = value.strip().strip('"')
    return found


def _wait_seconds(preferences: dict[str, str], limit: float) -> float | None:
    """How long to wait for the job to end before answering (None: answer at once)."""
    if "wait" not in preferences:
        return None
    asked = preferences["wait"]
    if asked.isdigit() and len(asked) < 10:
        return min(float(asked), limit)
    return limit


@router.post(
    "/processes/{processID}/execution",
    status_code=201,
    summary="Execute a process",
    response_model=None,
    responses={
        201: {
            "model": StatusInfo,
            "description": "The job was created (asynchronous execution): its status",
            "headers": {"Location": {"description": "The job's URL", "schema": {"type": "string"}}},
        },
        400: {"model": ExceptionDocument, "description": "Invalid input (named)"},
        403: {"model": ExceptionDocument, "description": "Not an operator of the site"},
        404: {"model": ExceptionDocument, "description": "No such process"},
    },
)
def execute(
    request: Request,
    principal: CurrentPrincipal,
    process_id: ProcessID,
    body: Execute,
    prefer: Annotated[
        str | None,
        Header(
            alias="Prefer",
            description=(
                "respond-async (the only mode, acknowledged), wait=SECONDS: answer when the "
                "job ends or after that long, whichever comes first."
            ),
        ),
    ] = None,
) -> JSONResponse:
    """Run the process as a job (asynchronously): 201 with the job's status and
    ``Location``; with ``Prefer: wait=N`` after the job ends or N seconds."""
    state = service_state(request)
    workspace = state.workspace
    processor = _process(process_id)
    if principal.role is Role.VIEWER:
        raise ForbiddenError("viewers cannot run processes")
    site, season = _site_and_season(workspace, principal, processor, body.inputs)
    parameters = _parameters(processor, body.inputs)
    if not principal.is_admin:
        _site_folders_only(workspace, site, parameters)
    preferences = _preferences(prefer)
    wait = _wait_seconds(preferences, state.config.sync_wait_seconds)
    executor = job_executor(request)
    job_id = start_job(workspace, executor, processor, site, season, parameters, principal.login)
    base = base_url(request)
    location = f"{base}/jobs/{job_document(workspace, principal, job_id, base)['jobID']}"
    headers = {"Location": location}
    applied = ["respond-async"] if "respond-async" in preferences else []
    if wait is not None:
        executor.wait(job_id, wait)
        applied.append(f"wait={round(wait)}")
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    document = StatusInfo.model_validate(job_document(workspace, principal, job_id, base))
    return JSONResponse(
        document.model_dump(mode="json", by_alias=True, exclude_none=True), 201, headers=headers
    )
