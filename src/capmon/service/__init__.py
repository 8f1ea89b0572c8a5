"""The HTTP service (``capmon serve``): OGC API - Processes, a STAC API, sites and uploads,
markers and map tiles, behind bearer-token authentication. ``create_app`` builds it."""

from capmon.service.app import create_app
from capmon.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]
