"""Errors as HTTP answers: one table from exception class to status code and exception type.

Every error answer is an OGC API exception document (RFC 7807 fields): ``type``, ``title``,
``status``, ``detail`` and ``instance``. Request validation errors become 400 with the
offending fields, as OGC API - Processes asks (FastAPI's default is 422).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from capmon.errors import (
    CapmonError,
    CatalogError,
    ConflictError,
    InputError,
    NotFoundError,
    StorageError,
)

log = logging.getLogger("capmon.service")

OGC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
CAPMON = "https://capmon.eu/errors/"


class ServiceError(CapmonError):
    """An error that only exists over HTTP; ``status`` and ``type`` say how to answer."""

    status: int = 500
    type: str = CAPMON + "internal"
    title: str = "Internal error"


class UnauthorizedError(ServiceError, PermissionError):
    status = 401
    type = CAPMON + "unauthorized"
    title = "Authentication required"


class ForbiddenError(ServiceError, PermissionError):
    status = 403
    type = CAPMON + "forbidden"
    title = "Not allowed"


class NoSuchProcessError(ServiceError, NotFoundError):
    status = 404
    type = OGC + "no-such-process"
    title = "No such process"


class NoSuchJobError(ServiceError, NotFoundError):
    status = 404
    type = OGC + "no-such-job"
    title = "No such job"


class ResultNotReadyError(ServiceError, ConflictError):
    status = 404
    type = OGC + "result-not-ready"
    title = "Result not ready"


class PayloadTooLargeError(ServiceError, InputError):
    status = 413
    type = CAPMON + "payload-too-large"
    title = "Upload too large"


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    type: str
    title: str


ERROR_TABLE: tuple[tuple[type[Exception], ErrorAnswer], ...] = (
    (NotFoundError, ErrorAnswer(404, CAPMON + "not-found", "Not found")),
    (ConflictError, ErrorAnswer(409, CAPMON + "conflict", "Conflict")),
    (InputError, ErrorAnswer(400, OGC + "invalid-parameter", "Invalid input")),
    (StorageError, ErrorAnswer(500, CAPMON + "storage", "Storage error")),
    (CatalogError, ErrorAnswer(503, CAPMON + "catalogue", "Catalogue unavailable")),
    (CapmonError, ErrorAnswer(500, CAPMON + "internal", "Internal error")),
)
"""Checked in order: the first class the error is an instance of gives the answer."""

_STATUS_TITLES = {
    400: ("invalid-parameter", "Invalid input"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Upload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def answer_for(exc: Exception) -> ErrorAnswer:
    """The status, type and title of the answer to ``exc``."""
    if isinstance(exc, ServiceError):
        return ErrorAnswer(exc.status, exc.type, exc.title)
    for cls, answer in ERROR_TABLE:
        if isinstance(exc, cls):
            return answer
    return ErrorAnswer(500, CAPMON + "internal", "Internal error")


def exception_document(
    answer: ErrorAnswer, detail: str, instance: str, **extra: Any
) -> dict[str, Any]:
    return {
        "type": answer.type,
        "title": answer.title,
        "status": answer.status,
        "detail": detail,
        "instance": instance,
        **extra,
    }


def error_response(
    answer: ErrorAnswer, detail: str, request: Request, **extra: Any
) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if answer.status == 401 else None
    return JSONResponse(
        exception_document(answer, detail, request.url.path, **extra),
        status_code=answer.status,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with an exception document."""

    @app.exception_handler(CapmonError)
    async def capmon_error(request: Request, exc: CapmonError) -> JSONResponse:
        answer = answer_for(exc)
        if answer.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        return error_response(answer, str(exc), request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in exc.errors()]
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        answer = ErrorAnswer(400, OGC + "invalid-parameter", "Invalid input")
        return error_response(answer, detail, request, errors=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind, title = _STATUS_TITLES.get(exc.status_code, ("http", "HTTP error"))
        answer = ErrorAnswer(exc.status_code, CAPMON + kind, title)
        response = error_response(answer, str(exc.detail), request)
        for name, value in (exc.headers or {}).items():  # e.g. Allow of a 405
            response.headers.setdefault(name, value)
        if exc.status_code == 405 and (methods := allowed_methods(request)):
            response.headers["Allow"] = ", ".join(methods)
        return response

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        answer = ErrorAnswer(500, CAPMON + "internal", "Internal error")
        return error_response(answer, f"{type(exc).__name__}: {exc}", request)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the request's path answers: Starlette's own 405 names only
    those of the first route that matched the path (GET /sites/{site} hid its PATCH and
    DELETE). Each method is tried on the routes (included routers answer as one route); a
    path only a mount matches is the web UI's files: GET and HEAD."""
    routes = request.app.router.routes
    found = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in routes
            if not isinstance(route, Mount)
        )
    ]
    mounted = any(r.matches(request.scope)[0] != Match.NONE for r in routes if isinstance(r, Mount))
    return found or (["GET", "HEAD"] if mounted else [])


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _problem(error: Any) -> dict[str, str]:
    location = [str(part) for part in error.get("loc", ()) if part != "body"]
    return {"field": ".".join(location) or "request", "message": str(error.get("msg", ""))}
