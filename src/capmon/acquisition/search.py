"""Searching a STAC API for a site's products of a season.

``POST <url>/search`` with the collection, the bounding box of the site's AOI, the season
interval (``start - look_back_days`` to the end of ``until`` or of the season) and a page
size; the pages are followed through their ``next`` links (GET, or POST with the link's
``body``, merged into the previous body when ``merge`` is true, as the STAC API spec says).
The items are then kept when their footprint meets the AOI itself (not only its box), and, for
Sentinel-2, when their MGRS tile is one of the site's tiles (and a collection's own ``tiles`` /
``orbits`` filters). Cloud cover is not filtered here: items over the limit are recorded as
*ignored* in the download history, so the history says why they were not downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import shapely.geometry
from shapely.geometry.base import BaseGeometry

from capmon.acquisition.http import SourceClient, SourceUnavailableError
from capmon.acquisition.sources import CollectionConfig, DataSource
from capmon.errors import InputError
from capmon.sources.model import sensor_code
from capmon.sources.stac import _number, _relative_orbit, _tile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """An item a source offers for the site and season."""

    source: DataSource
    collection: CollectionConfig
    item: dict[str, Any]
    name: str
    acquired_at: datetime
    sensor: str | None
    tile: str | None
    relative_orbit: int | None
    cloud_cover: float | None
    footprint: BaseGeometry

    @property
    def acquisition_key(self) -> tuple[str, str, str, str]:
        """What identifies the acquisition across sources: kind, sensor, tile or orbit, and
        the acquisition time to the minute (two providers' copies of one scene share it)."""
        where = self.tile or (str(self.relative_orbit) if self.relative_orbit is not None else "")
        minute = self.acquired_at.strftime("%Y%m%dT%H%M")
        return (self.collection.kind, self.sensor or "", where, minute)


def search_interval(
    start: date, end: date, until: date | None, look_back_days: int
) -> tuple[datetime, datetime]:
    """The search interval: ``start - look_back_days`` 00:00 to the end of ``min(end, until)``."""
    if look_back_days < 0:
        raise InputError(f"look_back_days must be >= 0, not {look_back_days}")
    first = date.fromordinal(start.toordinal() - look_back_days)
    last = min(end, until) if until is not None else end
    if last < first:
        raise InputError(
            f"nothing to search: the interval ends ({last}) before it starts ({first})"
        )
    return (
        datetime.combine(first, time(), tzinfo=UTC),
        datetime.combine(last, time(23, 59, 59), tzinfo=UTC),
    )


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def search(
    client: SourceClient,
    collection: CollectionConfig,
    aoi: BaseGeometry,
    site_tiles: Sequence[str],
    interval: tuple[datetime, datetime],
) -> list[Candidate]:
    """The items of ``collection`` meeting ``aoi`` in ``interval`` (see the module docstring),
    by acquisition time then name. Raises SourceUnavailableError when the source cannot answer."""
    source = client.source
    url = source.url.rstrip("/") + "/search"
    body: dict[str, Any] = {
        "collections": [collection.id],
        "bbox": [round(v, 7) for v in aoi.bounds],
        "datetime": f"{_rfc3339(interval[0])}/{_rfc3339(interval[1])}",
        "limit": source.page_size,
    }
    method = "POST"
    found: dict[str, Candidate] = {}
    seen_pages: set[str] = set()
    for _page in range(source.max_pages):
        page = client.request_json(method, url, json_body=body if method == "POST" else None)
        if not isinstance(page, dict) or not isinstance(page.get("features"), list):
            raise SourceUnavailableError(
                f"source {source.name}: the search of {collection.id} did not answer a STAC "
                "ItemCollection"
            )
        for item in page["features"]:
            candidate = _candidate(source, collection, item)
            if candidate is not None and _wanted(candidate, aoi, site_tiles):
                found.setdefault(candidate.name, candidate)
        link = _next_link(page)
        if link is None:
            break
        href = str(link.get("href", ""))
        method = str(link.get("method", "GET")).upper()
        key = f"{method} {href} {link.get('body')}"
        if not href or key in seen_pages:
            break
        seen_pages.add(key)
        url = href
        if method == "POST":
            next_body = link.get("body")
            if isinstance(next_body, dict):
                body = {**body, **next_body} if link.get("merge") else dict(next_body)
    else:
        logger.warning(
            "source %s: stopped after %d pages of %s; narrow the season or raise max_pages",
            source.name,
            source.max_pages,
            collection.id,
        )
    return sorted(found.values(), key=lambda c: (c.acquired_at, c.name))


def _next_link(page: dict[str, Any]) -> dict[str, Any] | None:
    for link in page.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next":
            return link
    return None


def _candidate(source: DataSource, collection: CollectionConfig, item: object) -> Candidate | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        logger.warning("source %s: an item of %s has no id; skipped", source.name, collection.id)
        return None
    properties = item.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    name = item["id"]
    when = _when(properties)
    footprint = _footprint(item)
    if when is None or footprint is None:
        logger.warning("source %s: item %s has no datetime or geometry; skipped", source.name, name)
        return None
    platform = properties.get("platform")
    sensor = None
    if isinstance(platform, str) and platform:
        try:
            sensor = sensor_code(platform)
        except InputError:
            sensor = None
    return Candidate(
        source=source,
        collection=collection,
        item=item,
        name=name,
        acquired_at=when,
        sensor=sensor,
        tile=_tile(properties),
        relative_orbit=_relative_orbit(properties),
        cloud_cover=_number(properties.get("eo:cloud_cover")),
        footprint=footprint,
    )


def _when(properties: dict[str, Any]) -> datetime | None:
    text = properties.get("datetime") or properties.get("start_datetime")
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _footprint(item: dict[str, Any]) -> BaseGeometry | None:
    geometry = item.get("geometry")
    if isinstance(geometry, dict):
        try:
            shape = shapely.geometry.shape(geometry)
        except (ValueError, TypeError, AttributeError, KeyError):
            shape = None
        if shape is not None and not shape.is_empty:
            return shape
    bbox = item.get("bbox")
    if isinstance(bbox, list) and len(bbox) >= 4:
        return shapely.geometry.box(bbox[0], bbox[1], bbox[-2], bbox[-1])
    return None


def _wanted(candidate: Candidate, aoi: BaseGeometry, site_tiles: Sequence[str]) -> bool:
    if not candidate.footprint.intersects(aoi):
        return False
    collection = candidate.collection
    if (
        collection.kind == "s2_l2a"
        and site_tiles
        and candidate.tile is not None
        and candidate.tile not in site_tiles
    ):
        return False
    if collection.tiles and candidate.tile not in collection.tiles:
        return False
    return not (collection.orbits and candidate.relative_orbit not in collection.orbits)
