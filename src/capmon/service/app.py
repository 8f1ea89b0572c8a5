"""``create_app``: the FastAPI application of ``capmon serve``.

The routes live in ``service/routes/``, one module per group, each exposing ``router``;
``ROUTE_MODULES`` lists them in the order they appear in the OpenAPI document. The web UI's
built assets (``capmon/service/web/``, built from ``web/``) are served at ``/ui/``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from capmon import __version__
from capmon.service.auth import TokenAuthority, load_secret
from capmon.service.config import ServiceConfig
from capmon.service.errors import install_error_handlers
from capmon.service.openapi import install_openapi
from capmon.service.state import ServiceState
from capmon.workspace import open_workspace

log = logging.getLogger("capmon.service")

ROUTE_MODULES = (
    "landing",
    "sites",
    "uploads",
    "processes",
    "jobs",
    "stac",
    "markers",
    "tiles",
)
WEB_ASSETS = Path(__file__).with_name("web")


def create_app(config: ServiceConfig) -> FastAPI:
    """The service for the workspace of ``config`` (opened and migrated here)."""
    workspace = open_workspace(config.home, config.database_url)
    tokens = TokenAuthority(
        workspace,
        load_secret(workspace, config.secret_key),
        config.token_ttl_seconds,
        config.refresh_ttl_seconds,
    )
    state = ServiceState(config, workspace, tokens)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="capmon",
        version=__version__,
        summary="CAP monitoring from Sentinel-1, Sentinel-2 and Landsat",
        description=(
            "OGC API - Processes for capmon's processors, a STAC API of its products, sites, "
            "seasons and uploads, parcels' markers and map tiles. Every route except the "
            "landing page, /conformance, the token endpoints and this document needs a "
            "token from /auth/token (OAuth2) or /auth/login, sent as a bearer token or in "
            "X-Auth-Token."
        ),
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN
        redoc_url=None,
        license_info={"name": "GPL-3.0-or-later", "identifier": "GPL-3.0-or-later"},
    )
    app.state.capmon = state
    install_error_handlers(app)
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"capmon.service.routes.{name}")
        app.include_router(module.router)
    if (WEB_ASSETS / "index.html").is_file():
        app.mount("/ui", StaticFiles(directory=WEB_ASSETS, html=True), name="ui")

        @app.get("/ui", include_in_schema=False)
        def ui_root() -> RedirectResponse:
            return RedirectResponse("/ui/")

    install_openapi(app)
    return app
