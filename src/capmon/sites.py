"""Sites (named AOIs with their Sentinel-2 tiles) and their seasons, stored in the catalogue."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.orm import Session

from capmon.catalog.models import Season, Site
from capmon.errors import ConflictError, GeometryError, InputError, NotFoundError

_MAX_PROBLEM_ROWS = 10


def short_name(name: str) -> str:
    """Sen4CAP's short name: lower case, every non-word character replaced by ``_``."""
    return re.sub(r"\W", "_", name.strip().lower())


def read_aoi(path: str | Path, layer: str | None = None) -> MultiPolygon:
    """The union of the polygons of an AOI file, in EPSG:4326.

    Every feature must be a valid polygon or multipolygon; anything else is an error that
    names the rows, because a silently dropped or repaired AOI part changes the site's tiles.
    """
    from capmon.vector import read_vector  # geopandas: only when an AOI file is read

    vector = read_vector(path, layer)
    frame = vector.frame
    types = frame.geometry.geom_type
    wrong = [i for i, t in enumerate(types) if t not in ("Polygon", "MultiPolygon")]
    if wrong:
        shown = ", ".join(f"row {i} ({types.iloc[i]})" for i in wrong[:_MAX_PROBLEM_ROWS])
        raise GeometryError(f"{vector.source}: the AOI must be made of polygons; found {shown}")
    geometries = frame.geometry.to_numpy()
    invalid = [i for i, valid in enumerate(shapely.is_valid(geometries)) if not valid]
    if invalid:
        shown = "; ".join(
            f"row {i}: {shapely.is_valid_reason(geometries[i])}"
            for i in invalid[:_MAX_PROBLEM_ROWS]
        )
        raise GeometryError(f"{vector.source}: invalid AOI geometry ({shown})")
    wgs84 = frame.to_crs(4326).geometry.to_numpy()
    union = shapely.union_all(wgs84)
    if union.is_empty or union.area == 0:
        raise GeometryError(f"{vector.source}: the AOI has no area")
    return _as_multipolygon(union)


def _as_multipolygon(geometry: BaseGeometry) -> MultiPolygon:
    if isinstance(geometry, MultiPolygon):
        return geometry
    if isinstance(geometry, Polygon):
        return MultiPolygon([geometry])
    parts = [g for g in shapely.get_parts(geometry) if isinstance(g, Polygon)]
    return MultiPolygon(parts)


SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,127}$")
SEASON_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_site_name(name: str) -> str:
    """A new site's name (stripped), or InputError: it becomes part of folder names."""
    cleaned = name.strip()
    if not SITE_NAME.match(cleaned) or cleaned.endswith("."):
        raise InputError(
            f"site name {name!r} is not allowed: use 1 to 128 letters, digits, spaces, '_', "
            "'-' or '.', starting with a letter or digit"
        )
    return cleaned


def check_season_name(name: str) -> str:
    """A new season's name, or InputError: it names the season's MDB folder."""
    cleaned = name.strip()
    if not SEASON_NAME.match(cleaned) or cleaned.endswith("."):
        raise InputError(
            f"season name {name!r} is not allowed: use 1 to 64 letters, digits, '_', '-' or "
            "'.', starting with a letter or digit (e.g. 2024)"
        )
    return cleaned


def create_site(
    session: Session, name: str, aoi: str | Path | BaseGeometry, *, layer: str | None = None
) -> Site:
    """Create a site from an AOI file (any vector format and CRS) or an EPSG:4326 geometry."""
    if not name.strip():
        raise InputError("the site name is empty")
    name = check_site_name(name)
    if isinstance(aoi, BaseGeometry):
        if not aoi.is_valid:
            raise GeometryError(f"invalid AOI geometry: {shapely.is_valid_reason(aoi)}")
        area = _as_multipolygon(aoi)
        if area.is_empty:
            raise GeometryError("the AOI must be made of polygons")
    else:
        area = read_aoi(aoi, layer)
    short = short_name(name)
    clash = session.scalar(select(Site).where((Site.name == name) | (Site.short_name == short)))
    if clash is not None:
        raise ConflictError(f"a site named {clash.name!r} already exists")
    from capmon.grid import tiles_for_aoi  # pyproj: only when a site is created

    tiles = [tile.name for tile in tiles_for_aoi(area)]
    site = Site(name=name, short_name=short, aoi=area, tiles=tiles, enabled=True)
    session.add(site)
    session.flush()
    return site


def get_site(session: Session, name: str) -> Site:
    """The site called ``name`` (or with that short name)."""
    site = session.scalar(select(Site).where((Site.name == name) | (Site.short_name == name)))
    if site is None:
        known = ", ".join(session.scalars(select(Site.name).order_by(Site.name))) or "none"
        raise NotFoundError(f"no site {name!r} (sites: {known})")
    return site


def list_sites(session: Session) -> Sequence[Site]:
    return session.scalars(select(Site).order_by(Site.name)).all()


@dataclass(frozen=True)
class SeasonDates:
    """Start, mid and end of a season; mid-season starts L4A's schedule as in Sen4CAP."""

    start: date
    mid: date
    end: date

    @classmethod
    def parse(
        cls, start: str | date, end: str | date, mid: str | date | None = None
    ) -> SeasonDates:
        start_d = _date(start, "start")
        end_d = _date(end, "end")
        if end_d <= start_d:
            raise InputError(f"season end {end_d} must be after its start {start_d}")
        mid_d = _date(mid, "mid") if mid is not None else start_d + (end_d - start_d) / 2
        if not start_d <= mid_d <= end_d:
            raise InputError(f"season mid {mid_d} must lie between start {start_d} and end {end_d}")
        return cls(start_d, mid_d, end_d)


def _date(value: str | date, label: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InputError(f"season {label} {value!r} is not a date (YYYY-MM-DD)") from exc


def create_season(session: Session, site: Site, name: str, dates: SeasonDates) -> Season:
    """Add a season to ``site``; seasons of one site may not overlap."""
    if not name.strip():
        raise InputError("the season name is empty")
    name = check_season_name(name)
    for other in site.seasons:
        if other.name == name:
            raise ConflictError(f"site {site.name!r} already has a season {name!r}")
        if other.start_date <= dates.end and dates.start <= other.end_date:
            raise ConflictError(
                f"season {name!r} ({dates.start} to {dates.end}) overlaps season "
                f"{other.name!r} ({other.start_date} to {other.end_date}) of site {site.name!r}"
            )
    season = Season(
        site=site,
        name=name,
        start_date=dates.start,
        mid_date=dates.mid,
        end_date=dates.end,
        enabled=True,
    )
    session.add(season)
    session.flush()
    return season


def get_season(session: Session, site: Site, name: str) -> Season:
    for season in site.seasons:
        if season.name == name:
            return season
    known = ", ".join(s.name for s in site.seasons) or "none"
    raise NotFoundError(f"site {site.name!r} has no season {name!r} (seasons: {known})")


def list_seasons(session: Session, site: Site | None = None) -> Sequence[Season]:
    query = select(Season).join(Site).order_by(Site.name, Season.start_date)
    if site is not None:
        query = query.where(Season.site_id == site.id)
    return session.scalars(query).all()
