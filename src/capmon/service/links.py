"""Absolute links in answers (OGC and STAC documents link everything)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request


def base_url(request: Request) -> str:
    """The service's base URL without a trailing slash (``public_url`` when configured)."""
    from capmon.service.state import service_state

    configured = service_state(request).config.public_url
    return (configured or str(request.base_url)).rstrip("/")


def link(
    base: str, path: str, rel: str, media_type: str | None = None, title: str | None = None
) -> dict[str, Any]:
    """A link object ``{href, rel, type, title}`` to ``base + path``."""
    out: dict[str, Any] = {"href": f"{base}{path}", "rel": rel}
    if media_type is not None:
        out["type"] = media_type
    if title is not None:
        out["title"] = title
    return out


def utc(stamp: dt.datetime | None) -> dt.datetime | None:
    """A catalogue time stamp with its time zone (SQLite returns UTC times without one), so
    that answers carry RFC 3339 ``date-time`` values."""
    if stamp is None:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)
