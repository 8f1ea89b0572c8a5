"""Landing page, conformance (OGC API - Common / Processes Part 1: Core) and tokens.

``/auth/token`` is an OAuth2 token endpoint (RFC 6749): the ``password`` grant (also without a
``grant_type``, as cuiman's "login" mode posts it) and the ``refresh_token`` grant; its errors
are RFC 6749 section 5.2 documents (400 ``invalid_request``, ``invalid_grant``,
``unsupported_grant_type``; 401 ``invalid_client`` only when the client tried to authenticate
itself in a way capmon cannot check). ``/auth/login`` takes the same form as Sen4CAP's login
endpoint (``username``, ``password``) and answers the same document. capmon has no registered
OAuth2 clients: a ``client_id`` is accepted as a public client's.
"""

from __future__ import annotations

import base64
import binascii
from html import escape
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from capmon.errors import CapmonError
from capmon.service.auth import CurrentPrincipal, InvalidGrantError
from capmon.service.links import base_url, link
from capmon.service.state import service_state
from capmon.users import authenticate

router = APIRouter(tags=["Capabilities"])

CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
)


class Link(BaseModel):
    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class LandingPage(BaseModel):
    title: str
    description: str
    links: list[Link]


class Conformance(BaseModel):
    conformsTo: list[str]  # noqa: N815 (the standard's name)


class Token(BaseModel):
    """RFC 6749 section 5.1 (``token`` repeats the access token for Sen4CAP's client)."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    refresh_token: str
    token: str


class OAuthError(BaseModel):
    """RFC 6749 section 5.2."""

    error: Literal["invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type"]
    error_description: str


class Me(BaseModel):
    login: str
    role: str
    sites: list[str]


def _wants_html(request: Request) -> bool:
    """A browser asking for a page (``text/html`` without JSON), or ``?f=html``."""
    if request.query_params.get("f") in ("html", "json"):
        return request.query_params["f"] == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "json" not in accept


def _landing_html(document: dict[str, Any]) -> HTMLResponse:
    items = "".join(
        f'<li><a href="{escape(item["href"])}">{escape(str(item["title"]))}</a></li>'
        for item in document["links"]
        if item["rel"] != "self"
    )
    ui = next(item["href"] for item in document["links"] if item["href"].endswith("/ui/"))
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>capmon</title></head>'
        f'<body><h1>capmon</h1><p><a href="{escape(ui)}">Open the web interface</a></p>'
        f"<p>The API (JSON):</p><ul>{items}</ul></body></html>"
    )


@router.get(
    "/",
    response_model=LandingPage,
    summary="Landing page",
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def landing(request: Request) -> Any:
    """Links to the API definition, conformance, processes, jobs, the STAC catalog and the web
    interface (``/ui/``); a browser (``Accept: text/html``, or ``?f=html``) gets them as a
    page."""
    document = _landing_document(request)
    return _landing_html(document) if _wants_html(request) else document


def _landing_document(request: Request) -> dict[str, Any]:
    base = base_url(request)
    return {
        "title": "capmon",
        "description": "CAP monitoring from Sentinel-1, Sentinel-2 and Landsat",
        "links": [
            link(base, "/", "self", "application/json", "This document"),
            link(
                base,
                "/openapi.json",
                "service-desc",
                "application/vnd.oai.openapi+json;version=3.0",
                "API definition",
            ),
            link(
                base,
                "/conformance",
                "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                "application/json",
                "Conformance classes",
            ),
            link(
                base,
                "/processes",
                "http://www.opengis.net/def/rel/ogc/1.0/processes",
                "application/json",
                "Processes",
            ),
            link(
                base,
                "/jobs",
                "http://www.opengis.net/def/rel/ogc/1.0/job-list",
                "application/json",
                "Jobs",
            ),
            link(base, "/stac", "data", "application/json", "STAC catalog of products"),
            link(base, "/ui/", "alternate", "text/html", "Web interface"),
        ],
    }


@router.get("/conformance", response_model=Conformance, summary="Conformance classes")
def conformance() -> dict[str, list[str]]:
    return {"conformsTo": list(CONFORMANCE)}


class TokenRequestError(CapmonError, ValueError):
    """An RFC 6749 error answer of the token endpoints."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM = "application/x-www-form-urlencoded"


async def _form(request: Request) -> dict[str, str]:
    """The form fields of a token request (each at most once, RFC 6749 section 3.2)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise TokenRequestError("invalid_request", f"the request body must be {_FORM}")
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        raise TokenRequestError("invalid_request", "the form cannot be read") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise TokenRequestError("invalid_request", f"{name!r} is given more than once")
        fields[name] = value
    return fields


def _check_client(request: Request) -> None:
    """Client authentication capmon cannot check: 401 ``invalid_client``. A public client
    sends no Authorization header (``client_id`` in the form is enough)."""
    header = request.headers.get("authorization")
    if header is None:
        return
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise TokenRequestError(
            "invalid_client", "clients authenticate with HTTP Basic or not at all", 401
        )
    try:
        base64.b64decode(value.strip(), validate=True).decode("utf-8").split(":", 1)[1]
    except (binascii.Error, UnicodeDecodeError, IndexError):
        raise TokenRequestError(
            "invalid_client", "the client credentials cannot be read", 401
        ) from None


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise TokenRequestError("invalid_request", f"{name!r} is required")
    return value


def _token_answer(request: Request, fields: dict[str, str], grants: frozenset[str]) -> Any:
    state = service_state(request)
    grant = fields.get("grant_type") or "password"
    if grant not in grants:
        raise TokenRequestError(
            "unsupported_grant_type",
            f"grant_type {grant!r} is not supported (one of {', '.join(sorted(grants))})",
        )
    try:
        if grant == "password":
            login = _required(fields, "username")
            password = _required(fields, "password")
            user = authenticate(state.workspace, login, password)
            if user is None:
                raise TokenRequestError("invalid_grant", "wrong login or password")
            issued = state.tokens.issue(user.login)
        else:
            issued = state.tokens.refresh(_required(fields, "refresh_token"))
    except InvalidGrantError as exc:
        raise TokenRequestError("invalid_grant", str(exc)) from None
    return {
        "access_token": issued.access_token,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "token": issued.access_token,
    }


def _oauth_error(failure: TokenRequestError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if failure.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="capmon"'
    return JSONResponse(
        {"error": failure.error, "error_description": failure.description},
        failure.status,
        headers=headers,
    )


def _form_body(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                _FORM: {
                    "schema": {"type": "object", "properties": fields}
                    | ({"required": required} if required else {})
                }
            },
        }
    }


_TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthError, "description": "RFC 6749 error (invalid_grant...)"},
    401: {"model": OAuthError, "description": "invalid_client"},
}
_TEXT = {"type": "string"}


@router.post(
    "/auth/token",
    response_model=Token,
    tags=["Authentication"],
    summary="Get a token (OAuth2)",
    responses=_TOKEN_ERRORS,
    openapi_extra=_form_body(
        {
            "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
            "username": _TEXT,
            "password": {"type": "string", "format": "password"},
            "refresh_token": _TEXT,
            "client_id": _TEXT,
            "scope": _TEXT,
        },
        [],
    ),
)
async def token(request: Request) -> Any:
    """OAuth2 token endpoint: ``grant_type=password`` (the default) with ``username`` and
    ``password``, or ``grant_type=refresh_token`` with a ``refresh_token`` (spent: use the new
    one of the answer). Errors per RFC 6749 section 5.2."""
    try:
        _check_client(request)
        fields = await _form(request)
        answer = _token_answer(request, fields, frozenset({"password", "refresh_token"}))
    except TokenRequestError as failure:
        return _oauth_error(failure)
    return JSONResponse(answer, headers=_NO_STORE)


@router.post(
    "/auth/login",
    response_model=Token,
    tags=["Authentication"],
    summary="Log in (Sen4CAP client)",
    responses=_TOKEN_ERRORS,
    openapi_extra=_form_body(
        {
            "username": {"type": "string", "minLength": 1},
            "password": {"type": "string", "format": "password", "minLength": 1},
        },
        ["username", "password"],
    ),
)
async def login_form(request: Request) -> Any:
    """Sen4CAP's login: ``username`` and ``password`` as a form; the token is in
    ``access_token`` and ``token``, to send as a bearer token or in ``X-Auth-Token``."""
    try:
        fields = await _form(request)
        answer = _token_answer(request, fields, frozenset({"password"}))
    except TokenRequestError as failure:
        return _oauth_error(failure)
    return JSONResponse(answer, headers=_NO_STORE)


@router.get("/auth/me", response_model=Me, tags=["Authentication"], summary="The token's user")
def me(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    from capmon.users import get_user

    user = get_user(service_state(request).workspace, principal.login)
    return {"login": user.login, "role": user.role.value, "sites": list(user.sites)}
