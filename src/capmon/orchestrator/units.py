"""Units of work that run on Dask workers: one product's extraction, one processor run.

They are plain functions of picklable arguments, importable by every worker. Each worker
process keeps the season's parcels (and their home tiles) and one pixel cache per grid group
(tile and sensor family) in memory, so consecutive products of one grid reuse the parcels'
pixels and strip plan; the pixels are also cached as files in the MDB folder.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np

from capmon.catalog.models import ActivityStatus
from capmon.errors import CapmonError
from capmon.mdb.extract import (
    ExtractionSettings,
    ParcelPixelCache,
    ProductRequest,
    TileRanks,
    extract_products,
)
from capmon.mdb.store import MdbStore, missing_signals
from capmon.orchestrator import jobs
from capmon.workspace import Workspace

logger = logging.getLogger(__name__)
TRANSIENT_ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
_CACHES_KEPT = 4


@dataclass(frozen=True)
class ExtractionUnit:
    """One input product to extract into one MDB folder."""

    mdb_root: str
    parcels_file: str
    tiles: tuple[str, ...]
    settings: ExtractionSettings
    product_name: str
    product_path: str
    signals: tuple[str, ...] | None = None
    """The signals to extract (what the MDB lacks); None: every signal the settings ask."""
    replaces: tuple[str, ...] = ()
    """Stored copies of the same acquisition whose rows this product replaces."""


@dataclass(frozen=True)
class UnitOutcome:
    """What a unit did: ``status`` is extracted, empty, already_done, failed or finished."""

    name: str
    status: str
    rows: int = 0
    seconds: float = 0.0
    worker_pid: int = 0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def season_parcels(parcels_file: str | Path) -> gpd.GeoDataFrame:
    """The parcels an MDB is extracted for: not deleted, valid or repaired geometry
    (the same selection as :func:`capmon.mdb.extract.extract_season`)."""
    from capmon.parcels import load_parcels_file

    frame = load_parcels_file(parcels_file)
    frame = frame[~frame["is_deleted"]].reset_index(drop=True)
    usable = frame["GeomValid"].to_numpy(dtype=bool) | frame["repaired"].to_numpy(dtype=bool)
    parcels = frame.loc[usable, ["NewID", "geometry"]].copy()
    parcels["NewID"] = parcels["NewID"].astype(np.int64)
    return parcels


_PARCELS: dict[tuple[str, tuple[str, ...]], tuple[gpd.GeoDataFrame, TileRanks]] = {}
_PIXELS: OrderedDict[tuple[str, str, str], ParcelPixelCache] = OrderedDict()


def _parcels(unit: ExtractionUnit) -> tuple[gpd.GeoDataFrame, TileRanks]:
    key = (unit.parcels_file, unit.tiles)
    if key not in _PARCELS:
        _PARCELS.clear()  # one parcel set at a time per worker
        parcels = season_parcels(unit.parcels_file)
        _PARCELS[key] = (parcels, TileRanks(parcels, unit.tiles))
    return _PARCELS[key]


def _pixel_cache(unit: ExtractionUnit, parcels: gpd.GeoDataFrame, group: str) -> ParcelPixelCache:
    key = (unit.mdb_root, unit.parcels_file, group)
    cache = _PIXELS.get(key)
    if cache is None:
        cache = ParcelPixelCache(parcels, Path(unit.mdb_root) / "pixels")
        _PIXELS[key] = cache
        while len(_PIXELS) > _CACHES_KEPT:
            _PIXELS.popitem(last=False)
    _PIXELS.move_to_end(key)
    return cache


def extract_unit(unit: ExtractionUnit) -> UnitOutcome:
    """Extract one product into the MDB (its file written atomically by the store).

    A product already stored is skipped (idempotent). A bad product (a :class:`CapmonError`)
    is reported as failed; an ``OSError`` (a flaky file system) is retried with backoff, then
    raised so that Dask's own retries (another worker) take over.
    """
    from capmon.signals.bands import sensor_family
    from capmon.sources import open_product

    started = time.perf_counter()
    pid = os.getpid()
    store = MdbStore(Path(unit.mdb_root))
    if not unit.replaces and store.has_product(unit.product_name, unit.signals):
        return UnitOutcome(unit.product_name, "already_done", worker_pid=pid)
    for attempt in range(TRANSIENT_ATTEMPTS):
        try:
            try:
                reader = open_product(unit.product_path)
            except CapmonError as exc:
                return UnitOutcome(unit.product_name, "failed", worker_pid=pid, message=str(exc))
            parcels, ranks = _parcels(unit)
            info = reader.info
            group = f"{info.tile or ''}|{sensor_family(info.sensor) if info.sensor else '?'}"
            cache = _pixel_cache(unit, parcels, group)
            requests = None
            if unit.signals is not None:
                held = store.coverage(unit.product_name).get(unit.product_name)
                missing = missing_signals(held, unit.signals)
                requests = {unit.product_name: ProductRequest(missing, unit.replaces)}
            report = extract_products(
                parcels,
                [reader],
                store,
                unit.settings,
                cache=cache,
                ranks=ranks,
                requests=requests,
            )
            break
        except OSError:
            if attempt + 1 == TRANSIENT_ATTEMPTS:
                raise
            logger.warning("product %s: transient error, retrying", unit.product_name)
            time.sleep(BACKOFF_SECONDS * 2**attempt)
    seconds = time.perf_counter() - started
    if report.failed:
        return UnitOutcome(
            unit.product_name, "failed", 0, seconds, pid, "; ".join(r for _n, r in report.failed)
        )
    if report.empty:
        return UnitOutcome(
            unit.product_name, "empty", 0, seconds, pid, "; ".join(r for _n, r in report.empty)
        )
    if report.already_done:
        return UnitOutcome(unit.product_name, "already_done", 0, seconds, pid)
    return UnitOutcome(unit.product_name, "extracted", report.rows, seconds, pid)


@dataclass(frozen=True)
class ProcessorUnit:
    """One processor run for a season."""

    home: str
    database_url: str
    site: str
    season: str
    processor: str
    parameters: dict[str, Any]
    job_id: int | None = None
    """The season job: the products the run registers are linked to it (``Product.job_id``)."""
    task_id: int | None = None
    """The job's task of this run, set ``running`` when the run starts on a worker."""


_WORKSPACES: dict[tuple[str, str], Workspace] = {}


def _workspace(home: str, database_url: str) -> Workspace:
    from capmon.workspace import open_workspace

    key = (home, database_url)
    if key not in _WORKSPACES:
        _WORKSPACES[key] = open_workspace(home, database_url)
    return _WORKSPACES[key]


def run_processor_unit(unit: ProcessorUnit) -> UnitOutcome:
    """Run a registered processor on a worker; its error becomes a failed outcome (with the
    traceback) rather than an exception, so that a processor's bug is not retried."""
    import json

    from capmon.processors import RunContext, get_processor
    from capmon.sites import get_season, get_site

    started = time.perf_counter()
    pid = os.getpid()
    try:
        workspace = _workspace(unit.home, unit.database_url)
        processor = get_processor(unit.processor)
        with workspace.session() as session:
            site = get_site(session, unit.site)
            season = get_season(session, site, unit.season)
        if unit.task_id is not None:
            jobs.set_task_status(workspace, unit.task_id, ActivityStatus.RUNNING)
        result = processor.run(
            RunContext(workspace, site, season), processor.parse_parameters(unit.parameters)
        )
        if unit.job_id is not None:
            link_job_products(workspace, unit.job_id, site.id, result.outputs.values())
    except Exception as exc:  # reported in the task's step log
        text = "".join(traceback.format_exception(exc))
        return UnitOutcome(
            unit.processor, "failed", 0, time.perf_counter() - started, pid, f"{exc}\n{text}"
        )
    details = json.loads(
        json.dumps({"figures": result.figures, "outputs": result.outputs}, default=str)
    )
    return UnitOutcome(
        unit.processor,
        "finished",
        0,
        time.perf_counter() - started,
        pid,
        result.summary,
        details,
    )


def link_job_products(
    workspace: Workspace, job_id: int, site_id: int, outputs: Iterable[object]
) -> int:
    """Set ``Product.job_id`` on the products of ``site_id`` a run registered (their folders
    are among the run's ``outputs``) and that no job claims yet; returns how many."""
    from sqlalchemy import select

    from capmon.catalog.models import Product

    paths = sorted({str(path) for path in outputs})
    if not paths:
        return 0
    with workspace.session() as session:
        products = session.scalars(
            select(Product).where(
                Product.site_id == site_id, Product.path.in_(paths), Product.job_id.is_(None)
            )
        ).all()
        for product in products:
            product.job_id = job_id
        return len(products)
