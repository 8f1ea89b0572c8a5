"""STAC 1.0 documents of the catalogue's products and of the markers databases, and item search.

One collection per catalogue ``product_type`` (ids from :mod:`capmon.service.stac_ids`) plus the
``mdb`` collection, whose items are the MDB folders of each (site, season, declaration set)
(``<home>/mdb/<site>/<season>/declarations-<id>``, see docs/mdb.md); they are not catalogue rows.

Item ids are ``<site short name>.<product name>`` (short names never hold a dot, so the site is
the part before the first one); an MDB's product name is ``mdb_<season>_declarations-<id>``.
Every document only shows the sites the user may read. Asking for an item (or its assets) of a
site the user is not bound to answers 403 whether the item exists or not, as for sites.

Search order: newest first by the item's end time (``acquired_at``; MDB: the season's end),
then by catalogue id, descending; items without a time last. The paging token is that key of
the last item of the page, so paging is stable while products are added. Filters run in SQL
(sites, collections, ids, time, keyset); the spatial filter runs in PostGIS on PostgreSQL and,
on SQLite (no spatial functions), with shapely on the rows SQL selected, read in chunks so
only the rows before the page's end are decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np
import shapely
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from capmon.catalog.models import DeclarationSet, Job, Product, Season, Site
from capmon.errors import InputError, NotFoundError
from capmon.mdb.store import MANIFEST
from capmon.service.auth import Principal
from capmon.service.errors import ForbiddenError
from capmon.service.stac_ids import COLLECTIONS, collection_id, item_id
from capmon.sources.model import ProductType
from capmon.workspace import Workspace

STAC_VERSION = "1.0.0"
DEFAULT_LIMIT = 10
MAX_LIMIT = 200
"""Larger ``limit`` values are served as this one (STAC API item search asks for that): a page
of 1000 items was 10 MB and took seconds; clients follow the ``next`` links."""
MDB_COLLECTION = "mdb"
MDB_PREFIX = "mdb_"
GEOJSON = "application/geo+json"
JSON_TYPE = "application/json"
CONFORMANCE = (
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
)
EXTENSIONS = {
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
}
_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])
WORLD_BBOX = [-180.0, -90.0, 180.0, 90.0]
_SCAN_CHUNK = 2000
_PRODUCT_KIND, _MDB_KIND = 0, 1

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
MEDIA_TYPES = {
    ".tif": "image/tiff; application=geotiff",
    ".tiff": "image/tiff; application=geotiff",
    ".jp2": "image/jp2",
    ".gpkg": "application/geopackage+sqlite3",
    ".parquet": "application/vnd.apache.parquet",
    ".csv": "text/csv",
    ".zip": "application/zip",
    ".json": "application/json",
    ".geojson": GEOJSON,
    ".xml": "application/xml",
    ".safe": "application/xml",
    ".ipc": "application/vnd.apache.arrow.file",
    ".arrow": "application/vnd.apache.arrow.file",
    ".txt": "text/plain",
    ".log": "text/plain",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".shp": "application/vnd.shp",
    ".dbf": "application/vnd.dbf",
    ".shx": "application/vnd.shx",
    ".prj": "text/plain",
    ".cfg": "text/plain",
}
METADATA_SUFFIXES = frozenset({".json", ".xml", ".safe", ".idx", ".txt", ".log", ".prj", ".cfg"})

PLATFORMS = {
    "S2A": ("sentinel-2a", "sentinel-2", "msi"),
    "S2B": ("sentinel-2b", "sentinel-2", "msi"),
    "S2C": ("sentinel-2c", "sentinel-2", "msi"),
    "S1A": ("sentinel-1a", "sentinel-1", "c-sar"),
    "S1B": ("sentinel-1b", "sentinel-1", "c-sar"),
    "S1C": ("sentinel-1c", "sentinel-1", "c-sar"),
    "L8": ("landsat-8", "landsat", "oli"),
    "L9": ("landsat-9", "landsat", "oli"),
}
"""Catalogue ``sensor`` -> (STAC platform, constellation, instrument)."""

LEVELS = {
    ProductType.L2A.value: "L2A",
    ProductType.L2A_MAJA.value: "L2A",
    ProductType.LANDSAT_L2.value: "L2",
    ProductType.S1_AMP.value: "L2",
    ProductType.S1_COHE.value: "L2",
    "s4c_l4a": "L4A",
    "s4c_l4b": "L4B",
    "s4c_l4c": "L4C",
}
INPUT_TYPES = frozenset(t.value for t in ProductType)


# ---------------------------------------------------------------------------------------------
# Request parameters


@dataclass(frozen=True)
class Interval:
    """A closed time interval; a missing end is open."""

    start: datetime | None
    end: datetime | None

    def meets(self, first: datetime | None, last: datetime | None) -> bool:
        """Whether an item covering ``first..last`` (or the instant ``last``) meets it."""
        if last is None:
            return False
        first = first or last
        return (self.start is None or last >= self.start) and (
            self.end is None or first <= self.end
        )


def parse_datetime(text: str | None) -> Interval | None:
    """STAC's ``datetime`` parameter: an instant, or ``start/end`` with ``..`` or nothing for
    an open end. A date alone stands for that whole day."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if "/" not in text:
        return Interval(_parse_instant(text, end=False), _parse_instant(text, end=True))
    if text.count("/") != 1:
        raise InputError(f"datetime {text!r}: give one instant or one interval start/end")
    left, right = text.split("/")
    start = None if left in ("", "..") else _parse_instant(left, end=False)
    end = None if right in ("", "..") else _parse_instant(right, end=True)
    if start is None and end is None:
        raise InputError(f"datetime {text!r}: at least one end of the interval must be given")
    if start is not None and end is not None and end < start:
        raise InputError(f"datetime {text!r}: the interval ends before it starts")
    return Interval(start, end)


def _parse_instant(text: str, *, end: bool) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(), tzinfo=UTC)
            return moment + timedelta(days=1, microseconds=-1) if end else moment
        return to_utc(datetime.fromisoformat(text.replace("z", "Z")))
    except OverflowError:  # beyond datetime's range in UTC (9999-12-31 as an end, year 1 +01:00)
        return (
            datetime.min.replace(tzinfo=UTC) if text < "5000" else datetime.max.replace(tzinfo=UTC)
        )
    except ValueError as exc:
        raise InputError(
            f"datetime {text!r} is not an RFC 3339 date-time (2024-05-01T00:00:00Z)"
        ) from exc


def parse_bbox(values: Sequence[float]) -> BaseGeometry:
    """``[west, south, east, north]`` (or the 6-number 3D form) as a geometry; a box whose west
    is east of its east crosses the antimeridian."""
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4:
        raise InputError(f"bbox needs 4 numbers (west,south,east,north), got {len(values)}")
    west, south, east, north = (float(v) for v in values)
    if not all(np.isfinite([west, south, east, north])):
        raise InputError("bbox values must be finite numbers")
    if south > north:
        raise InputError(f"bbox: south ({south}) is north of north ({north})")
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise InputError("bbox: latitudes must lie in -90..90")
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InputError("bbox: longitudes must lie in -180..180")
    if west <= east:
        return box(west, south, east, north)
    return shapely.MultiPolygon([box(west, south, 180.0, north), box(-180.0, south, east, north)])


def parse_bbox_text(text: str | None) -> BaseGeometry | None:
    if text is None or not text.strip():
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError as exc:
        raise InputError(f"bbox {text!r}: give comma-separated numbers") from exc
    return parse_bbox(values)


def parse_intersects(value: Any) -> BaseGeometry | None:
    """The ``intersects`` parameter: a GeoJSON geometry (object, or its JSON text in a GET)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"intersects is not JSON: {exc}") from exc
    try:
        geometry = shape(value)
    except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.ShapelyError) as exc:
        raise InputError(f"intersects is not a GeoJSON geometry: {exc}") from exc
    if geometry.is_empty:
        raise InputError("intersects is an empty geometry")
    return geometry


def split_list(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated query parameter as a tuple (None when absent)."""
    if text is None or not text.strip():
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class SortKey:
    """Where an item stands in search order; a paging token is the key of a page's last item."""

    end: datetime | None
    kind: int
    first: int
    second: int = 0

    def order(self) -> tuple[Any, ...]:
        """Ascending in output order: newest end first, no end last, then ids descending."""
        stamp = -self.end.timestamp() if self.end is not None else 0.0
        return (self.end is None, stamp, self.kind, -self.first, -self.second)

    def encode(self) -> str:
        end = self.end.isoformat() if self.end is not None else None
        raw = json.dumps([end, self.kind, self.first, self.second]).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, token: str) -> SortKey:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            end, kind, first, second = json.loads(raw)
            if kind not in (_PRODUCT_KIND, _MDB_KIND):
                raise ValueError(kind)
            return cls(
                to_utc(datetime.fromisoformat(end)) if end is not None else None,
                int(kind),
                int(first),
                int(second),
            )
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise InputError(
                f"token {token!r} is not a paging token of this service: follow the 'next' link"
            ) from exc


@dataclass(frozen=True)
class Search:
    """One item search: every filter is optional; ``collections`` None means all."""

    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    geometry: BaseGeometry | None = None
    interval: Interval | None = None
    limit: int = DEFAULT_LIMIT
    after: SortKey | None = None

    @classmethod
    def build(
        cls,
        *,
        collections: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        bbox: BaseGeometry | None = None,
        intersects: BaseGeometry | None = None,
        datetime_text: str | None = None,
        limit: int | None = None,
        token: str | None = None,
    ) -> Search:
        if bbox is not None and intersects is not None:
            raise InputError("give bbox or intersects, not both")
        if limit is not None and limit < 1:
            raise InputError(f"limit must be at least 1, not {limit}")
        return cls(
            collections=tuple(collections) if collections is not None else None,
            ids=tuple(ids) if ids is not None else None,
            geometry=bbox if bbox is not None else intersects,
            interval=parse_datetime(datetime_text),
            limit=min(limit or DEFAULT_LIMIT, MAX_LIMIT),
            after=SortKey.decode(token) if token else None,
        )


# ---------------------------------------------------------------------------------------------
# What a user can see


@dataclass(frozen=True)
class SeasonView:
    id: int
    name: str
    start: date
    end: date


@dataclass
class SiteView:
    """A readable site: its names, AOI and seasons."""

    id: int
    name: str
    short_name: str
    aoi: BaseGeometry
    seasons: list[SeasonView] = field(default_factory=list)

    def season_of(self, first: date | None, last: date | None, named: Any) -> SeasonView | None:
        """The season a processor product belongs to: the one it names, else the first that
        holds its whole period (none for a product over several seasons)."""
        for season in self.seasons:
            if season.name == named:
                return season
        if last is None:
            return None
        first = first or last
        return next((s for s in self.seasons if s.start <= first and last <= s.end), None)


@dataclass(frozen=True)
class MdbEntry:
    """An MDB folder of a (site, season, declaration set)."""

    site: SiteView
    season: SeasonView
    declaration_set_id: int
    year: int
    version: int
    parcel_count: int
    folder: Path

    @property
    def name(self) -> str:
        return mdb_name(self.season.name, self.declaration_set_id)

    @property
    def first(self) -> datetime:
        return datetime.combine(self.season.start, time(), tzinfo=UTC)

    @property
    def last(self) -> datetime:
        return datetime.combine(self.season.end, time(), tzinfo=UTC)

    @property
    def key(self) -> SortKey:
        return SortKey(self.last, _MDB_KIND, self.declaration_set_id, self.season.id)


def mdb_name(season: str, declaration_set_id: int) -> str:
    """The product name of an MDB in item ids (``mdb_<season>_declarations-<id>``)."""
    return f"{MDB_PREFIX}{season}_declarations-{declaration_set_id}"


def _parse_mdb_name(name: str) -> tuple[str, int] | None:
    if not name.startswith(MDB_PREFIX):
        return None
    season, sep, number = name[len(MDB_PREFIX) :].rpartition("_declarations-")
    if not sep or not season or not number.isdigit():
        return None
    return season, int(number)


def to_utc(value: datetime) -> datetime:
    """An aware UTC datetime (the SQLite catalogue gives naive UTC values back)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return to_utc(value).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# Assets


@dataclass(frozen=True)
class AssetRoot:
    """The files an item serves: a product folder (or single file), or an MDB folder."""

    path: Path
    is_mdb: bool = False

    def files(self) -> list[tuple[str, Path]]:
        """(relative POSIX path, file) of every asset, in name order."""
        root = self.path
        if root.is_file():
            return [(root.name, root)]
        if not root.is_dir():
            return []
        out: list[tuple[str, Path]] = []
        base = root.resolve()
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                path = Path(folder) / name
                relative = path.relative_to(root).as_posix()
                if not self.allows(relative) or not path.is_file():
                    continue
                if path.is_symlink() and not path.resolve().is_relative_to(base):
                    continue
                out.append((relative, path))
        return sorted(out)

    def allows(self, relative: str) -> bool:
        """Whether a relative path may be an asset (no hidden or temporary file; an MDB's
        pixel caches are not part of it)."""
        parts = PurePosixPath(relative).parts
        if not parts or any(part.startswith(".") for part in parts):
            return False
        if self.is_mdb:
            return len(parts) == 1 or parts[0] in ("observations", "compacted", "derived")
        return True

    def file(self, relative: str) -> Path:
        """The file of one asset; :class:`NotFoundError` for anything that is not an asset of
        this item, including paths that leave the folder (``..``, absolute, links)."""
        missing = NotFoundError(f"no asset {relative!r} in this item")
        if not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative:
            raise missing
        parts = PurePosixPath(relative).parts
        if ".." in parts or not self.allows(relative):
            raise missing
        root = self.path.resolve()
        if root.is_file():
            if relative != root.name and relative != self.path.name:
                raise missing
            return root
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise missing
        return target


def media_type(path: Path) -> str:
    """The media type of an asset file, by extension (a GeoTIFF is a COG when GDAL's COG
    layout marker is in its header)."""
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        try:
            stat = path.stat()
        except OSError:
            return MEDIA_TYPES[suffix]
        return COG if _is_cog(str(path), stat.st_mtime_ns, stat.st_size) else MEDIA_TYPES[suffix]
    known = MEDIA_TYPES.get(suffix)
    if known is not None:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


@lru_cache(maxsize=65536)
def _is_cog(path: str, _mtime_ns: int, _size: int) -> bool:
    try:
        with open(path, "rb") as handle:
            header = handle.read(512)
    except OSError:
        return False
    return b"LAYOUT=IFDS_BEFORE_DATA" in header


def asset_roles(path: Path) -> list[str]:
    return ["metadata"] if path.suffix.lower() in METADATA_SUFFIXES else ["data"]


# ---------------------------------------------------------------------------------------------
# The catalogue as STAC


class StacCatalog:
    """The STAC view of a workspace for one user; one per request."""

    def __init__(self, workspace: Workspace, principal: Principal, base: str) -> None:
        self.workspace = workspace
        self.principal = principal
        self.base = base
        self.postgis = workspace.engine.dialect.name == "postgresql"
        self.sites = self._load_sites()
        self._job_uids: dict[int, str] = {}

    # -- sites and collections ----------------------------------------------------------------

    def _load_sites(self) -> dict[int, SiteView]:
        query = select(Site.id, Site.name, Site.short_name, Site.aoi)
        if not self.principal.is_admin:
            query = query.where(Site.id.in_(sorted(self.principal.site_ids)))
        with self.workspace.session() as session:
            sites = {
                row.id: SiteView(row.id, row.name, row.short_name, row.aoi or shapely.Polygon())
                for row in session.execute(query)
            }
            seasons = session.scalars(
                select(Season).where(Season.site_id.in_(list(sites))).order_by(Season.start_date)
            ).all()
        for season in seasons:
            sites[season.site_id].seasons.append(
                SeasonView(season.id, season.name, season.start_date, season.end_date)
            )
        return sites

    def site_of_item(self, iid: str) -> SiteView:
        """The site of an item id; 403 for a site the user cannot read, existing or not."""
        short, sep, _name = iid.partition(".")
        for site in self.sites.values():
            if sep and site.short_name == short:
                return site
        if self.principal.is_admin:
            raise NotFoundError(f"no item {iid!r}: no site has the short name {short!r}")
        raise ForbiddenError(f"you have no access to item {iid!r}")

    def _visible(self, query: _Query) -> _Query:
        return query.where(Product.site_id.in_(list(self.sites)))

    def product_types(self) -> dict[str, set[str]]:
        """Collection id -> catalogue product types: every known collection, plus those of
        other product types the user's sites have."""
        out: dict[str, set[str]] = {}
        for product_type, (cid, _title) in COLLECTIONS.items():
            if cid != MDB_COLLECTION:
                out.setdefault(cid, set()).add(product_type)
        with self.workspace.session() as session:
            present = session.scalars(self._visible(select(Product.product_type).distinct()))
            for product_type in present:
                out.setdefault(collection_id(product_type), set()).add(product_type)
        out.setdefault(MDB_COLLECTION, set())
        return out

    def collection_ids(self) -> list[str]:
        return sorted(self.product_types(), key=_collection_order)

    def collections(self) -> list[dict[str, Any]]:
        types = self.product_types()
        extents = self._extents(types)
        return [
            self._collection_document(cid, extents.get(cid))
            for cid in sorted(types, key=_collection_order)
        ]

    def collection(self, cid: str) -> dict[str, Any]:
        types = self.product_types()
        self.require_collection(cid, types)
        return self._collection_document(cid, self._extents({cid: types[cid]}).get(cid))

    def require_collection(self, cid: str, types: dict[str, set[str]] | None = None) -> None:
        """:class:`NotFoundError` naming the collections when ``cid`` is not one of them."""
        types = self.product_types() if types is None else types
        if cid not in types:
            raise NotFoundError(f"no collection {cid!r} (collections: {', '.join(sorted(types))})")

    def _collection_document(self, cid: str, extent: _Extent | None) -> dict[str, Any]:
        title = next((t for c, t in COLLECTIONS.values() if c == cid), cid)
        base = self.base
        bbox = list(extent.bounds) if extent is not None and extent.bounds else WORLD_BBOX
        interval = [extent.first, extent.last] if extent is not None else [None, None]
        return {
            "type": "Collection",
            "stac_version": STAC_VERSION,
            "stac_extensions": [],
            "id": cid,
            "title": title,
            "description": f"{title}, as registered in capmon's catalogue.",
            "license": "various",
            "keywords": ["CAP", "agriculture", "capmon"],
            "providers": [{"name": "capmon", "roles": ["processor", "host"]}],
            "extent": {
                "spatial": {"bbox": [bbox]},
                "temporal": {"interval": [[rfc3339(interval[0]), rfc3339(interval[1])]]},
            },
            "links": [
                _link(base, f"/stac/collections/{cid}", "self", JSON_TYPE),
                _link(base, "/stac", "root", JSON_TYPE),
                _link(base, "/stac", "parent", JSON_TYPE),
                _link(base, f"/stac/collections/{cid}/items", "items", GEOJSON),
            ],
        }

    def _extents(self, types: dict[str, set[str]]) -> dict[str, _Extent]:
        """Bounds and time span of each collection's items that the user can see."""
        wanted = {t: cid for cid, kinds in types.items() for t in kinds}
        out: dict[str, _Extent] = {}
        if wanted:
            for product_type, extent in self._product_extents(sorted(wanted)).items():
                cid = wanted[product_type]
                out[cid] = out[cid].merge(extent) if cid in out else extent
        if MDB_COLLECTION in types:
            entries = self.mdb_entries()
            if entries:
                bounds = _union_bounds(
                    [e.site.aoi.bounds for e in entries if not e.site.aoi.is_empty]
                )
                out[MDB_COLLECTION] = _Extent(
                    bounds, min(e.first for e in entries), max(e.last for e in entries)
                )
        return out

    def _product_extents(self, product_types: list[str]) -> dict[str, _Extent]:
        start = func.min(func.coalesce(Product.acquired_first_at, Product.acquired_at))
        times = self._visible(
            select(Product.product_type, start, func.max(Product.acquired_at))
            .where(Product.product_type.in_(product_types))
            .group_by(Product.product_type)
        )
        bounds: dict[str, tuple[float, float, float, float] | None] = {}
        with self.workspace.session() as session:
            spans = {row[0]: (row[1], row[2]) for row in session.execute(times)}
            if self.postgis:
                geometry = func.coalesce(Product.footprint, Site.aoi)
                query = self._visible(
                    select(
                        Product.product_type,
                        func.ST_XMin(func.ST_Extent(geometry)),
                        func.ST_YMin(func.ST_Extent(geometry)),
                        func.ST_XMax(func.ST_Extent(geometry)),
                        func.ST_YMax(func.ST_Extent(geometry)),
                    )
                    .join(Site, Site.id == Product.site_id)
                    .where(Product.product_type.in_(product_types))
                    .group_by(Product.product_type)
                )
                for row in session.execute(query):
                    bounds[row[0]] = None if row[1] is None else (row[1], row[2], row[3], row[4])
            else:
                query = self._visible(
                    select(Product.product_type, Product.site_id, _raw_footprint()).where(
                        Product.product_type.in_(product_types)
                    )
                )
                bounds = self._scan_bounds(session.execute(query).all())
        return {
            kind: _Extent(
                bounds.get(kind),
                to_utc(first) if first is not None else None,
                to_utc(last) if last is not None else None,
            )
            for kind, (first, last) in spans.items()
        }

    def _scan_bounds(
        self, rows: Sequence[Any]
    ) -> dict[str, tuple[float, float, float, float] | None]:
        """Per product type, the union of the footprints' bounds (a product without a
        footprint counts with its site's AOI)."""
        by_type: dict[str, list[tuple[float, float, float, float]]] = {}
        wkb = [row[2] for row in rows if row[2] is not None]
        footprint_bounds = iter(shapely.bounds(shapely.from_wkb(wkb)).tolist() if wkb else [])
        for row in rows:
            if row[2] is not None:
                bounds = tuple(next(footprint_bounds))
            else:
                aoi = self.sites[row[1]].aoi
                if aoi.is_empty:
                    continue
                bounds = aoi.bounds
            by_type.setdefault(row[0], []).append(bounds)
        return {kind: _union_bounds(values) for kind, values in by_type.items()}

    # -- MDBs -----------------------------------------------------------------------------------

    def mdb_entries(self, site_ids: Iterable[int] | None = None) -> list[MdbEntry]:
        """The MDB folders (with their ``mdb.json``) of the readable sites' seasons."""
        wanted = [self.sites[s] for s in (site_ids or self.sites) if s in self.sites]
        found: list[tuple[SiteView, SeasonView, int, Path]] = []
        for site in wanted:
            seasons = {season.name: season for season in site.seasons}
            site_folder = self.workspace.path(Path("mdb") / site.short_name)
            if not site_folder.is_dir():
                continue
            for season_folder in sorted(site_folder.iterdir()):
                season = seasons.get(season_folder.name)
                if season is None or not season_folder.is_dir():
                    continue
                for folder in sorted(season_folder.glob("declarations-*")):
                    number = folder.name.removeprefix("declarations-")
                    if number.isdigit() and (folder / MANIFEST).is_file():
                        found.append((site, season, int(number), folder))
        if not found:
            return []
        with self.workspace.session() as session:
            sets = {
                row.id: row
                for row in session.scalars(
                    select(DeclarationSet).where(
                        DeclarationSet.id.in_(sorted({f[2] for f in found}))
                    )
                )
            }
        return [
            MdbEntry(site, season, ds_id, ds.year, ds.version, ds.parcel_count, folder)
            for site, season, ds_id, folder in found
            if (ds := sets.get(ds_id)) is not None and ds.site_id == site.id
        ]

    def _mdb_entry(self, site: SiteView, name: str) -> MdbEntry | None:
        parsed = _parse_mdb_name(name)
        if parsed is None:
            return None
        for entry in self.mdb_entries([site.id]):
            if (entry.season.name, entry.declaration_set_id) == parsed:
                return entry
        return None

    # -- items ----------------------------------------------------------------------------------

    def item(self, cid: str, iid: str) -> dict[str, Any]:
        """One item of a collection (403 for another site's, 404 when missing)."""
        site = self.site_of_item(iid)
        name = iid.partition(".")[2]
        if cid == MDB_COLLECTION:
            entry = self._mdb_entry(site, name)
            if entry is None:
                raise NotFoundError(f"no item {iid!r} in collection {cid!r}")
            return self.mdb_item(entry)
        with self.workspace.session() as session:
            product = session.scalar(
                select(Product).where(Product.site_id == site.id, Product.name == name)
            )
            if product is None or collection_id(product.product_type) != cid:
                raise NotFoundError(f"no item {iid!r} in collection {cid!r}")
            return self.product_item(product)

    def asset_root(self, iid: str) -> AssetRoot:
        """Where the asset files of an item are (403 for another site's, 404 when missing)."""
        site = self.site_of_item(iid)
        name = iid.partition(".")[2]
        with self.workspace.session() as session:
            path = session.scalar(
                select(Product.path).where(Product.site_id == site.id, Product.name == name)
            )
        if path is not None:
            return AssetRoot(self._product_path(path))
        entry = self._mdb_entry(site, name)
        if entry is None:
            raise NotFoundError(f"no item {iid!r}")
        return AssetRoot(entry.folder, is_mdb=True)

    def _product_path(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.workspace.path(path)

    def product_item(self, product: Product) -> dict[str, Any]:
        """The STAC item of a catalogue product."""
        site = self.sites[product.site_id]
        iid = item_id(site.short_name, product.name)
        cid = collection_id(product.product_type)
        geometry = product.footprint if product.footprint is not None else site.aoi
        last = to_utc(product.acquired_at) if product.acquired_at is not None else None
        first = to_utc(product.acquired_first_at) if product.acquired_first_at else None
        is_input = product.product_type in INPUT_TYPES
        extensions: set[str] = {"file"}
        properties: dict[str, Any] = {}
        if first is not None and last is not None:
            properties["datetime"] = rfc3339(last) if is_input else None
            properties["start_datetime"] = rfc3339(first)
            properties["end_datetime"] = rfc3339(last)
        else:
            properties["datetime"] = rfc3339(last or product.created_at)
        if product.created_at is not None:
            properties["created"] = rfc3339(product.created_at)
        platform = PLATFORMS.get(product.sensor or "")
        if platform is not None:
            properties["platform"], properties["constellation"] = platform[:2]
            properties["instruments"] = [platform[2]]
        if product.relative_orbit is not None:
            properties["sat:relative_orbit"] = product.relative_orbit
            extensions.add("sat")
        if product.orbit_direction in ("ASC", "DESC"):
            state = "ascending" if product.orbit_direction == "ASC" else "descending"
            properties["sat:orbit_state"] = state
            extensions.add("sat")
        if product.tile:
            if product.product_type in (ProductType.L2A.value, ProductType.L2A_MAJA.value):
                properties["s2:mgrs_tile"] = product.tile
                properties["grid:code"] = f"MGRS-{product.tile}"
                extensions.add("grid")
            elif product.product_type == ProductType.LANDSAT_L2.value:
                properties["grid:code"] = f"WRS2-{product.tile}"
                extensions.add("grid")
            else:
                properties["capmon:tile"] = product.tile
        level = LEVELS.get(product.product_type)
        if level is not None:
            properties["processing:level"] = level
            extensions.add("processing")
        stored = product.properties or {}
        cloud_cover = stored.get("cloud_cover")
        if isinstance(cloud_cover, int | float):
            properties["eo:cloud_cover"] = float(cloud_cover)
            extensions.add("eo")
        properties["capmon:site"] = site.name
        properties["capmon:product_type"] = product.product_type
        properties["capmon:product_id"] = product.id
        if is_input:
            if product.processing_baseline:
                properties["capmon:processing_baseline"] = product.processing_baseline
            if stored.get("polarisation"):
                properties["capmon:polarisation"] = stored["polarisation"]
            if stored.get("bands"):
                properties["capmon:bands"] = list(stored["bands"])
        else:
            season = site.season_of(
                first.date() if first else None, last.date() if last else None,
                stored.get("season"),
            )  # fmt: skip
            if season is not None:
                properties["capmon:season"] = season.name
            properties["capmon:processor"] = self._processor_of(product)
        if product.job_id is not None:
            properties["capmon:job_id"] = self._job_uid(product.job_id)
        root = AssetRoot(self._product_path(product.path))
        return self._item_document(
            iid, cid, geometry, properties, extensions, self._assets(iid, root)
        )

    def _job_uid(self, job_id: int) -> str:
        """The public id (as in ``/jobs/{jobID}``) of the job that made a product."""
        if job_id not in self._job_uids:
            with self.workspace.session() as session:
                uid = session.scalar(select(Job.uid).where(Job.id == job_id))
            self._job_uids[job_id] = uid or str(job_id)
        return self._job_uids[job_id]

    def _processor_of(self, product: Product) -> str:
        path = self._product_path(product.path)
        products = self.workspace.path("products")
        if path.parent.parent.parent == products:
            return path.parent.name
        return product.product_type.removeprefix("s4c_")

    def mdb_item(self, entry: MdbEntry) -> dict[str, Any]:
        """The STAC item of an MDB folder."""
        iid = item_id(entry.site.short_name, entry.name)
        properties = {
            "datetime": None,
            "start_datetime": rfc3339(entry.first),
            "end_datetime": rfc3339(entry.last),
            "capmon:site": entry.site.name,
            "capmon:season": entry.season.name,
            "capmon:product_type": MDB_COLLECTION,
            "capmon:declaration_set": entry.declaration_set_id,
            "capmon:declarations_year": entry.year,
            "capmon:declarations_version": entry.version,
            "capmon:parcels": entry.parcel_count,
        }
        root = AssetRoot(entry.folder, is_mdb=True)
        return self._item_document(
            iid, MDB_COLLECTION, entry.site.aoi, properties, {"file"}, self._assets(iid, root)
        )

    def _assets(self, iid: str, root: AssetRoot) -> dict[str, Any]:
        assets: dict[str, Any] = {}
        for relative, path in root.files():
            try:
                size = path.stat().st_size
            except OSError:
                continue
            assets[relative] = {
                "href": f"{self.base}/stac/assets/{quote(iid, safe='')}/{quote(relative)}",
                "type": media_type(path),
                "title": relative,
                "roles": asset_roles(path),
                "file:size": size,
            }
        return assets

    def _item_document(
        self,
        iid: str,
        cid: str,
        geometry: BaseGeometry,
        properties: dict[str, Any],
        extensions: set[str],
        assets: dict[str, Any],
    ) -> dict[str, Any]:
        base = self.base
        empty = geometry is None or geometry.is_empty
        return {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": [EXTENSIONS[name] for name in sorted(extensions)],
            "id": iid,
            "collection": cid,
            "geometry": None if empty else mapping(geometry),
            **({} if empty else {"bbox": list(geometry.bounds)}),
            "properties": properties,
            "links": [
                _link(
                    base, f"/stac/collections/{cid}/items/{quote(iid, safe='')}", "self", GEOJSON
                ),
                _link(base, f"/stac/collections/{cid}", "parent", JSON_TYPE),
                _link(base, f"/stac/collections/{cid}", "collection", JSON_TYPE),
                _link(base, "/stac", "root", JSON_TYPE),
            ],
            "assets": assets,
        }

    # -- search ---------------------------------------------------------------------------------

    def search(self, request: Search) -> tuple[list[dict[str, Any]], SortKey | None]:
        """The page of items matching ``request`` after its token, and the key to continue
        from (None on the last page)."""
        types = self.product_types()
        wanted = request.collections if request.collections is not None else tuple(types)
        unknown = [cid for cid in wanted if cid not in types]
        if unknown:
            raise InputError(
                f"unknown collection(s) {', '.join(map(repr, unknown))} "
                f"(collections: {', '.join(sorted(types))})"
            )
        product_types = sorted({t for cid in wanted for t in types[cid]})
        candidates: list[tuple[SortKey, Product | MdbEntry]] = []
        with self.workspace.session() as session:
            if product_types:
                products = self._search_products(session, request, product_types)
                candidates.extend((SortKey(_end(p), _PRODUCT_KIND, p.id), p) for p in products)
            if MDB_COLLECTION in wanted:
                candidates.extend((e.key, e) for e in self._search_mdb(request))
            candidates.sort(key=lambda pair: pair[0].order())
            page = candidates[: request.limit]
            features = [
                self.product_item(found) if isinstance(found, Product) else self.mdb_item(found)
                for _key, found in page
            ]
        more = len(candidates) > request.limit
        return features, (page[-1][0] if more and page else None)

    def _search_mdb(self, request: Search) -> list[MdbEntry]:
        site_ids: set[int] | None = None
        names: dict[int, set[str]] = {}
        if request.ids is not None:
            for site, name in self._resolve_ids(request.ids):
                names.setdefault(site.id, set()).add(name)
            site_ids = set(names)
        geometry = _prepared(request.geometry)
        after = request.after.order() if request.after is not None else None
        out = []
        for entry in self.mdb_entries(site_ids if site_ids is not None else None):
            if site_ids is not None and entry.name not in names.get(entry.site.id, ()):
                continue
            if request.interval is not None and not request.interval.meets(entry.first, entry.last):
                continue
            if geometry is not None and not shapely.intersects(geometry, entry.site.aoi):
                continue
            if after is not None and entry.key.order() <= after:
                continue
            out.append(entry)
        return out

    def _resolve_ids(self, ids: Iterable[str]) -> list[tuple[SiteView, str]]:
        """(site, product name) of the ids that name a readable site; others match nothing."""
        by_short = {site.short_name: site for site in self.sites.values()}
        out = []
        for iid in ids:
            short, sep, name = iid.partition(".")
            if sep and short in by_short and name:
                out.append((by_short[short], name))
        return out

    def _product_filters(
        self, request: Search, product_types: list[str]
    ) -> list[ColumnElement[bool]]:
        filters: list[ColumnElement[bool]] = [
            Product.site_id.in_(list(self.sites)),
            Product.product_type.in_(product_types),
        ]
        if request.ids is not None:
            names: dict[int, set[str]] = {}
            for site, name in self._resolve_ids(request.ids):
                names.setdefault(site.id, set()).add(name)
            filters.append(
                or_(
                    literal(False),
                    *(
                        and_(Product.site_id == site_id, Product.name.in_(sorted(wanted)))
                        for site_id, wanted in names.items()
                    ),
                )
            )
        if request.interval is not None:
            end = func.coalesce(Product.acquired_at, Product.created_at)
            start = func.coalesce(Product.acquired_first_at, end)
            if request.interval.start is not None:
                filters.append(end >= request.interval.start)
            if request.interval.end is not None:
                filters.append(start <= request.interval.end)
        if request.after is not None:
            filters.append(_after(request.after))
        return filters

    def _search_products(
        self, session: Session, request: Search, product_types: list[str]
    ) -> list[Product]:
        """Up to ``limit + 1`` products after the token, in search order."""
        filters = self._product_filters(request, product_types)
        order = (Product.acquired_at.desc().nulls_last(), Product.id.desc())
        wanted = request.limit + 1
        if request.geometry is None or self.postgis:
            query = select(Product).where(*filters)
            if request.geometry is not None:
                shape_wkb = literal(shapely.to_wkb(request.geometry), LargeBinary)
                query = query.join(Site, Site.id == Product.site_id).where(
                    func.ST_Intersects(
                        func.coalesce(Product.footprint, Site.aoi),
                        func.ST_GeomFromWKB(shape_wkb, 4326),
                    )
                )
            return list(session.scalars(query.order_by(*order).limit(wanted)))
        ids = self._scan_spatial(session, filters, order, request.geometry, wanted)
        if not ids:
            return []
        found = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))}
        return [found[i] for i in ids if i in found]

    def _scan_spatial(
        self,
        session: Session,
        filters: list[ColumnElement[bool]],
        order: tuple[Any, ...],
        geometry: BaseGeometry,
        wanted: int,
    ) -> list[int]:
        """The ids of the first ``wanted`` products, in order, whose footprint (or site AOI)
        meets ``geometry``; rows are decoded chunk by chunk and the scan stops when enough
        matched."""
        prepared = _prepared(geometry)
        assert prepared is not None
        site_meets = {
            sid: bool(shapely.intersects(prepared, s.aoi)) for sid, s in self.sites.items()
        }
        query = (
            select(Product.id, Product.site_id, _raw_footprint())
            .where(*filters)
            .order_by(*order)
            .execution_options(yield_per=_SCAN_CHUNK)
        )
        out: list[int] = []
        for chunk in session.execute(query).partitions(_SCAN_CHUNK):
            wkb = [row[2] for row in chunk]
            has = np.array([w is not None for w in wkb], dtype=bool)
            meets = np.zeros(len(chunk), dtype=bool)
            if has.any():
                shapes = shapely.from_wkb([w for w in wkb if w is not None])
                meets[has] = shapely.intersects(prepared, shapes)
            for n, row in enumerate(chunk):
                if meets[n] if has[n] else site_meets.get(row[1], False):
                    out.append(row[0])
                    if len(out) >= wanted:
                        return out
        return out


# ---------------------------------------------------------------------------------------------
# Small pieces


@dataclass(frozen=True)
class _Extent:
    bounds: tuple[float, float, float, float] | None
    first: datetime | None
    last: datetime | None

    def merge(self, other: _Extent) -> _Extent:
        boxes = [b for b in (self.bounds, other.bounds) if b is not None]
        return _Extent(
            _union_bounds(boxes),
            _min_or_none(self.first, other.first),
            _max_or_none(self.last, other.last),
        )


def _min_or_none(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(x for x in (a, b) if x is not None) if (a or b) else None


def _max_or_none(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


def _union_bounds(
    boxes: Sequence[tuple[float, float, float, float]],
) -> tuple[float, float, float, float] | None:
    if not boxes:
        return None
    array = np.asarray(boxes, dtype=float)
    return (
        float(array[:, 0].min()),
        float(array[:, 1].min()),
        float(array[:, 2].max()),
        float(array[:, 3].max()),
    )


def _raw_footprint() -> Any:
    """The footprint column as stored (WKB bytes on SQLite), decoded in bulk by shapely
    rather than row by row."""
    return type_coerce(Product.footprint, LargeBinary)


def _end(product: Product) -> datetime | None:
    return to_utc(product.acquired_at) if product.acquired_at is not None else None


def _after(key: SortKey) -> ColumnElement[bool]:
    """SQL for "a product comes after ``key`` in search order"."""
    acquired = Product.acquired_at
    if key.end is None:
        if key.kind != _PRODUCT_KIND:
            return literal(False)
        return and_(acquired.is_(None), Product.id < key.first)
    same_time = and_(acquired == key.end, Product.id < key.first)
    later = [acquired.is_(None), acquired < key.end]
    if key.kind == _PRODUCT_KIND:
        later.append(same_time)
    return or_(*later)


def _prepared(geometry: BaseGeometry | None) -> BaseGeometry | None:
    if geometry is None:
        return None
    shapely.prepare(geometry)
    return geometry


def _link(base: str, path: str, rel: str, media: str) -> dict[str, Any]:
    return {"href": f"{base}{path}", "rel": rel, "type": media}


def _collection_order(cid: str) -> tuple[int, str]:
    known = [c for c, _t in COLLECTIONS.values()]
    return (known.index(cid), cid) if cid in known else (len(known), cid)
