"""Landing page, conformance, tokens (OGC API - Common / Processes Part 1: Core)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from capmon.service.auth import CurrentPrincipal
from capmon.service.errors import UnauthorizedError
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
    access_token: str
    token_type: str
    expires_in: int


class Me(BaseModel):
    login: str
    role: str
    sites: list[str]


@router.get("/", response_model=LandingPage, summary="Landing page")
def landing(request: Request) -> dict[str, Any]:
    """Links to the API definition, conformance, processes, jobs and the STAC catalog."""
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


@router.post("/auth/token", response_model=Token, tags=["Authentication"], summary="Get a token")
def token(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> dict[str, Any]:
    """OAuth2 password flow: a bearer token for the login and password given as a form."""
    state = service_state(request)
    user = authenticate(state.workspace, form.username, form.password)
    if user is None:
        raise UnauthorizedError("wrong login or password")
    issued = state.tokens.issue(user.login)
    return {
        "access_token": issued.access_token,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
    }


@router.get("/auth/me", response_model=Me, tags=["Authentication"], summary="The token's user")
def me(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    from capmon.users import get_user

    user = get_user(service_state(request).workspace, principal.login)
    return {"login": user.login, "role": user.role.value, "sites": list(user.sites)}
