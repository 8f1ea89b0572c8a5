"""What the markers and map routes keep between requests, and how they find a season's data.

One :class:`MapData` per app (``ServiceState.resources["map_data"]``) holds:

* season views (site, season, newest declaration set and LUT of the season's year, the
  products feeding its layers, its MDB folder), looked up in the catalogue and kept
  :data:`VIEW_SECONDS` seconds, so a new product or declarations import shows within that;
* parcel indexes (EPSG:3857 geometries + STRtree) per declaration set file version;
* product tables per product id, layer tables per (parcels, products, LUT) version;
* vector-tile geometries per (parcels, tile) and encoded tiles per (parcels, layer, its
  products, period, tile), in byte-bounded LRU caches, so every key names the versions of its
  inputs and nothing needs invalidating;
* a few open MDB readers per MDB folder (a DuckDB connection serves one thread at a time).

Builds of a missing entry run once per key (other requests for that key wait for it).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd
from fastapi import Request
from sqlalchemy import select

from capmon.catalog.models import CropLut, DeclarationSet, Product, Season, Site
from capmon.errors import NotFoundError, StorageError
from capmon.mdb.extract import mdb_folder
from capmon.mdb.query import MarkersDatabase, open_mdb
from capmon.mdb.store import COMPACTION_MANIFEST, DERIVED, MANIFEST, OBSERVATIONS
from capmon.parcels.store import latest_row
from capmon.service.layers import (
    PRODUCT_SOURCES,
    LayerValues,
    ProductRef,
    ProductTables,
    SeasonProducts,
    build_layers,
    read_product_tables,
    year_rows,
)
from capmon.service.mvt import TileGeometries
from capmon.service.parcel_index import ParcelIndex
from capmon.service.state import service_state
from capmon.workspace import Workspace

VIEW_SECONDS = 5.0
"""How long a season's catalogue lookup is reused."""
TILE_CACHE_BYTES = 256 * 2**20
GEOMETRY_CACHE_BYTES = 256 * 2**20
MDB_READERS = 4
"""Open MDB readers per MDB folder (concurrent time-series queries)."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A thread-safe LRU cache bounded by entries and, with ``size``, by bytes.

    :meth:`get_or_build` builds a missing value once per key: concurrent callers of the same
    key wait for the first one's result instead of building it again."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int | None = None,
        size: Callable[[V], int] | None = None,
    ) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._sizes: dict[K, int] = {}
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._size = size
        self._lock = threading.Lock()
        self._building: dict[K, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return value

    def put(self, key: K, value: V) -> None:
        size = self._size(value) if self._size is not None else 0
        with self._lock:
            if key in self._entries:
                self._bytes -= self._sizes.pop(key, 0)
            self._entries[key] = value
            self._entries.move_to_end(key)
            self._sizes[key] = size
            self._bytes += size
            while len(self._entries) > self._max_entries or (
                self._max_bytes is not None
                and self._bytes > self._max_bytes
                and len(self._entries) > 1
            ):
                old, _ = self._entries.popitem(last=False)
                self._bytes -= self._sizes.pop(old, 0)

    def get_or_build(self, key: K, build: Callable[[], V]) -> V:
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            lock = self._building.setdefault(key, threading.Lock())
        try:
            with lock:
                value = self.get(key)
                if value is None:
                    with self._lock:
                        self.misses += 1
                    value = build()
                    self.put(key, value)
        finally:
            with self._lock:
                self._building.pop(key, None)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self._bytes,
                "hits": self.hits,
                "misses": self.misses,
            }


@dataclass(frozen=True)
class SeasonView:
    """A season of a site and the versions of what its markers and map are built from."""

    site_id: int
    site_name: str
    site_short_name: str
    season_id: int
    season_name: str
    start: date
    end: date
    year: int
    declaration_set_id: int | None
    parcels_path: Path | None
    lut_path: Path | None
    products: tuple[ProductRef, ...]
    mdb_folder: Path | None

    @property
    def parcels_key(self) -> tuple[Any, ...]:
        """Names the declaration set file version (changes when it is replaced)."""
        if self.parcels_path is None:
            raise NotFoundError(
                f"site {self.site_name!r} has no declarations for {self.year} "
                f"(season {self.season_name})"
            )
        try:
            status = self.parcels_path.stat()
        except OSError as exc:
            raise StorageError(
                f"{self.parcels_path}: the parcels file of the declaration set is missing"
            ) from exc
        return (self.declaration_set_id, str(self.parcels_path), status.st_mtime_ns)

    @property
    def products_key(self) -> tuple[int, ...]:
        return tuple(p.id for p in self.products)

    def require_mdb(self) -> Path:
        if self.mdb_folder is None or not (self.mdb_folder / MANIFEST).exists():
            raise NotFoundError(
                f"no markers database for site {self.site_name!r}, season {self.season_name}: "
                "extract it first (capmon run mdb)"
            )
        return self.mdb_folder


def _season_products(
    rows: list[Product], start: date, end: date, year: int
) -> tuple[ProductRef, ...]:
    """The newest product of each type ending in the season (L4C: per practice; multi-annual:
    the newest whose years include ``year``). ``rows`` are newest first."""
    chosen: dict[tuple[str, str | None], ProductRef] = {}
    for product in rows:
        properties = product.properties or {}
        if product.product_type == "s4c_multiannual":
            years = properties.get("years") or []
            if year not in years:
                continue
        elif product.acquired_at is None or not start <= product.acquired_at.date() <= end:
            continue
        practice = properties.get("practice") if product.product_type == "s4c_l4c" else None
        key = (product.product_type, str(practice) if practice is not None else None)
        if key not in chosen:
            chosen[key] = ProductRef(
                product.id,
                product.name,
                product.product_type,
                Path(product.path),
                str(practice) if practice is not None else None,
            )
    order = list(PRODUCT_SOURCES)
    return tuple(
        sorted(chosen.values(), key=lambda p: (order.index(p.product_type), p.practice or ""))
    )


class MdbPool:
    """A few open readers of one MDB folder, each used by one thread at a time."""

    def __init__(self, folder: Path, size: int = MDB_READERS) -> None:
        self.folder = folder
        self._idle: queue.LifoQueue[MarkersDatabase] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def reader(self) -> Iterator[MarkersDatabase]:
        with self._slots:
            try:
                database = self._idle.get_nowait()
            except queue.Empty:
                database = open_mdb(self.folder)
            try:
                yield database
            finally:
                self._idle.put(database)


def mdb_version(folder: Path) -> tuple[Any, ...]:
    """Changes whenever rows are added to the MDB (compaction, new products, derived
    signals)."""
    parts: list[Any] = []
    manifest = folder / COMPACTION_MANIFEST
    parts.append(manifest.stat().st_mtime_ns if manifest.exists() else None)
    for sub in (OBSERVATIONS, DERIVED):
        path = folder / sub
        if path.is_dir():
            with os.scandir(path) as entries:
                parts.extend(sorted((e.name, e.stat().st_mtime_ns) for e in entries if e.is_file()))
    return tuple(parts)


class MapData:
    """The caches of the markers and map routes for one workspace (see the module doc)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._views: dict[tuple[int, str], tuple[float, SeasonView]] = {}
        self._views_lock = threading.Lock()
        self.parcels: LruCache[tuple[Any, ...], ParcelIndex] = LruCache(4)
        self.product_tables: LruCache[tuple[Any, ...], ProductTables] = LruCache(32)
        self.layers: LruCache[tuple[Any, ...], dict[str, LayerValues]] = LruCache(8)
        self.luts: LruCache[tuple[Any, ...], pd.DataFrame] = LruCache(8)
        self.geometries: LruCache[tuple[Any, ...], TileGeometries] = LruCache(
            100_000, GEOMETRY_CACHE_BYTES, lambda g: g.size
        )
        self.tiles: LruCache[tuple[Any, ...], bytes] = LruCache(
            100_000, TILE_CACHE_BYTES, lambda t: len(t) + 200
        )
        self.signals: LruCache[tuple[Any, ...], list[dict[str, Any]]] = LruCache(16)
        self._pools: dict[Path, MdbPool] = {}
        self._pools_lock = threading.Lock()

    # --- catalogue ---------------------------------------------------------------------------

    def season(self, site: Site, season_name: str) -> SeasonView:
        """The view of ``season_name`` of ``site`` (NotFoundError naming the known seasons)."""
        key = (site.id, season_name)
        now = time.monotonic()
        with self._views_lock:
            cached = self._views.get(key)
        if cached is not None and now - cached[0] < VIEW_SECONDS:
            return cached[1]
        view = self._lookup(site, season_name)
        with self._views_lock:
            self._views[key] = (now, view)
        return view

    def _lookup(self, site: Site, season_name: str) -> SeasonView:
        workspace = self.workspace
        with workspace.session() as session:
            seasons = session.scalars(select(Season).where(Season.site_id == site.id)).all()
            season = next((s for s in seasons if s.name == season_name), None)
            if season is None:
                known = ", ".join(sorted(s.name for s in seasons)) or "none"
                raise NotFoundError(
                    f"site {site.name!r} has no season {season_name!r} (seasons: {known})"
                )
            year = season.year
            declarations = latest_row(session, DeclarationSet, site, year)
            lut = latest_row(session, CropLut, site, year)
            rows = list(
                session.scalars(
                    select(Product)
                    .where(
                        Product.site_id == site.id,
                        Product.product_type.in_(list(PRODUCT_SOURCES)),
                    )
                    .order_by(Product.created_at.desc(), Product.id.desc())
                ).all()
            )
            products = _season_products(rows, season.start_date, season.end_date, year)
            return SeasonView(
                site_id=site.id,
                site_name=site.name,
                site_short_name=site.short_name,
                season_id=season.id,
                season_name=season.name,
                start=season.start_date,
                end=season.end_date,
                year=year,
                declaration_set_id=declarations.id if declarations is not None else None,
                parcels_path=(
                    workspace.path(declarations.parcels_path) if declarations is not None else None
                ),
                lut_path=workspace.path(lut.lut_path) if lut is not None else None,
                products=products,
                mdb_folder=(
                    mdb_folder(workspace, site.short_name, season.name, declarations.id)
                    if declarations is not None
                    else None
                ),
            )

    # --- parcels and layers ----------------------------------------------------------------

    def parcel_index(self, view: SeasonView) -> ParcelIndex:
        key = view.parcels_key
        path = view.parcels_path
        assert path is not None
        return self.parcels.get_or_build(key, lambda: ParcelIndex.from_file(key, path))

    def _lut(self, view: SeasonView) -> pd.DataFrame | None:
        path = view.lut_path
        if path is None or not path.is_file():
            return None
        key = (str(path), path.stat().st_mtime_ns)
        return self.luts.get_or_build(key, lambda: pd.read_parquet(path))

    def _tables(self, product: ProductRef) -> ProductTables:
        return self.product_tables.get_or_build(
            (product.id, str(product.path)), lambda: read_product_tables(product)
        )

    def _year_tables(self, ref: ProductRef, tables: ProductTables, year: int) -> ProductTables:
        return self.product_tables.get_or_build(
            (ref.id, str(ref.path), year), lambda: year_rows(tables, year)
        )

    def season_products(self, view: SeasonView) -> SeasonProducts:
        """The parcels, LUT and product tables of the season (multi-annual cut to its year)."""
        products = []
        for ref in view.products:
            tables = self._tables(ref)
            if ref.source == "multiannual":
                tables = self._year_tables(ref, tables, view.year)
            products.append((ref, tables))
        return SeasonProducts(self.parcel_index(view), self._lut(view), view.year, tuple(products))

    def layers_key(self, view: SeasonView) -> tuple[Any, ...]:
        lut = view.lut_path
        lut_version = (str(lut), lut.stat().st_mtime_ns) if lut and lut.is_file() else None
        return (view.parcels_key, view.products_key, lut_version, view.year)

    def season_layers(self, view: SeasonView) -> dict[str, LayerValues]:
        """Every layer of the season, by id (cached per parcels, products and LUT version)."""
        return self.layers.get_or_build(
            self.layers_key(view), lambda: build_layers(self.season_products(view))
        )

    # --- MDB -------------------------------------------------------------------------------

    def mdb(self, view: SeasonView) -> MdbPool:
        folder = view.require_mdb()
        with self._pools_lock:
            pool = self._pools.get(folder)
            if pool is None:
                pool = self._pools[folder] = MdbPool(folder)
            return pool

    def close(self) -> None:
        for cache in (
            self.parcels,
            self.product_tables,
            self.layers,
            self.geometries,
            self.tiles,
            self.signals,
            self.luts,
        ):
            cache.clear()
        with self._pools_lock:
            self._pools.clear()


_CREATE = threading.Lock()


def app_resource(request: Request, name: str, make: Callable[[], Any]) -> Any:
    """The app's long-lived object ``name`` (``ServiceState.resources``), made on first use;
    its ``close`` runs at shutdown."""
    state = service_state(request)
    found = state.resources.get(name)
    if found is not None:
        return found
    with _CREATE:
        found = state.resources.get(name)
        if found is None:
            found = state.resources[name] = make()
            state.on_shutdown.append(found.close)
        return found


def map_data(request: Request) -> MapData:
    """The app's :class:`MapData`."""
    data = app_resource(request, "map_data", lambda: MapData(service_state(request).workspace))
    assert isinstance(data, MapData)
    return data
