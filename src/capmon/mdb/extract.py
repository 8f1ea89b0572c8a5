"""Extraction: from input products and a parcel set to MDB rows, one product at a time.

For each product: the bands the requested signals need are decoded once, the signals are
computed once, the product's validity mask is applied, and per-parcel statistics are taken on
the parcels' pixels of the product's grid (inward buffer -5 m on optical 10 m grids, -10 m on
SAR 20 m grids by default). The parcels' pixels depend only on (grid, parcel set, buffer): they
are computed once and cached in the MDB folder, so every further date on the same grid costs
one decode and one pass of grouped statistics.

Dedup, one observation per parcel and acquisition:

* among the copies of one acquisition (processing baselines), one product is used
  (:func:`capmon.sources.select_observations`), chosen among every copy the season has,
  stored or not (:func:`plan_products`): a rerun adds nothing, and a better copy that arrives
  later replaces the stored copy's rows (its part names them, see :mod:`capmon.mdb.store`);
* a parcel in the overlap of two Sentinel-2 tiles gets rows from every tile that has the
  acquisition, each marked with the tile's rank in the parcel's preference (:class:`TileRanks`:
  its *home tile* first, the first in name order that contains it whole, else its centroid);
  readers and compaction keep the row of the best tile present, so a date that exists only on
  the other tile is never lost.

A product is extracted only for the signals the MDB does not hold yet (a rerun with more
signals adds just those); signals a product cannot give (a missing band) are skipped for it
and reported, the others are extracted.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import rasterio.transform
import rasterio.warp
import shapely
import shapely.geometry
from affine import Affine
from pyproj import CRS
from shapely.geometry import box

from capmon.errors import CapmonError, InputError
from capmon.grid import PixelGrid, s2_tile
from capmon.mdb.labels import parcel_pixels
from capmon.mdb.stats import ParcelPixels, ParcelStatistics, parcel_statistics
from capmon.mdb.store import (
    Acquisition,
    Coverage,
    MdbManifest,
    MdbStore,
    ProductPart,
    missing_signals,
    statistics_table,
)
from capmon.mdb.strips import (
    DEFAULT_STRIP_ROWS,
    RowBuffer,
    StripGroup,
    StripJob,
    StripPlan,
    plan_statistics,
    plan_strips,
    stream_jobs,
)
from capmon.signals.bands import sensor_family
from capmon.signals.biophysical import ViewingAngles
from capmon.signals.catalogue import get_signal, plan_signals, signal_inputs
from capmon.signals.compute import compute_signals
from capmon.signals.sar import (
    coherence_gaps,
    expected_interval_days,
    parse_convention,
    to_linear_power,
)
from capmon.sources import (
    DEFAULT_MASK_CONFIG,
    MaskConfig,
    ProductInfo,
    ProductReader,
    ProductType,
)
from capmon.workspace import Workspace, atomic_path

logger = logging.getLogger(__name__)

ENGINE_VERSION = "1"
DEFAULT_OPTICAL_SIGNALS = (
    "NDVI",
    "NDWI",
    "BRIGHTNESS",
    "BSI",
    "NDTILL",
    "LAI",
    "FAPAR",
    "FCOVER",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B11",
    "B12",
)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExtractionSettings:
    """What to extract and how (defaults are Sen4CAP's)."""

    optical_signals: tuple[str, ...] = DEFAULT_OPTICAL_SIGNALS
    sar: bool = True
    optical_buffer_m: float = 5.0
    sar_buffer_m: float = 10.0
    optical_resolution: float = 10.0
    min_count: int = 2
    min_valid_fraction: float = 0.1
    mask: MaskConfig = DEFAULT_MASK_CONFIG
    s1_tile_grids: bool = False
    """Cut Sentinel-1 products to the site's S2 tile grids (20 m, tile UTM, bilinear) before
    taking statistics, as Sen4CAP's per-tile S1 products; rows then carry the S2 tile."""
    strip_rows: int = DEFAULT_STRIP_ROWS
    """Rows of the product grid read at a time (see :mod:`capmon.mdb.strips`)."""
    prefetch: bool = True
    """Decode the next strip in a second thread while the statistics of one are taken."""

    def __post_init__(self) -> None:
        for name in self.optical_signals:
            signal = get_signal(name)  # unknown names fail here, naming the known ones
            if not signal.sensors & {"S2", "L8"}:
                raise InputError(f"signal {name} is not an optical signal")
        if self.optical_buffer_m < 0 or self.sar_buffer_m < 0:
            raise InputError("buffers are inward distances in metres and must be >= 0")
        if not 0 <= self.min_valid_fraction < 1:
            raise InputError("min_valid_fraction must be in [0, 1)")
        if self.strip_rows < 1:
            raise InputError(f"strip_rows must be at least 1, not {self.strip_rows}")

    def manifest(self, site: str, parcel_set: str, declaration_set_id: int | None) -> MdbManifest:
        """What an MDB folder extracted with these settings records (see ``MdbStore``)."""
        return MdbManifest(
            site=site,
            parcel_set=parcel_set,
            declaration_set_id=declaration_set_id,
            optical_buffer_m=self.optical_buffer_m,
            sar_buffer_m=self.sar_buffer_m,
            min_count=self.min_count,
            min_valid_fraction=self.min_valid_fraction,
            engine_version=ENGINE_VERSION,
            # products extracted unmasked on purpose are marked in their parts, not here
            mask=_jsonable({k: v for k, v in asdict(self.mask).items() if k != "allow_unmasked"}),
            optical_resolution=self.optical_resolution,
            s1_tile_grids=self.s1_tile_grids,
            signals=tuple(get_signal(n).name for n in self.optical_signals),
        )


def _jsonable(value: Any) -> Any:
    """``value`` with sets as sorted lists and tuples as lists (JSON-comparable)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


@dataclass
class ExtractionReport:
    """What an extraction did."""

    extracted: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    empty: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    """Copies of an acquisition left out because a better copy is used."""
    replaced: list[tuple[str, str]] = field(default_factory=list)
    """(better copy, stored copy whose rows it replaced)."""
    not_requested: list[str] = field(default_factory=list)
    """Products none of whose signals was asked for (Sentinel-1 with ``sar=False``)."""
    skipped_signals: list[tuple[str, str, str]] = field(default_factory=list)
    """(product, signal, reason): signals a product cannot give."""
    coherence_gaps: list[str] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ProductRequest:
    """What to extract from one product: the signals the MDB lacks, the stored copies of the
    same acquisition that it replaces."""

    signals: frozenset[str]
    replaces: tuple[str, ...] = ()


class ParcelPixelCache:
    """The parcels' pixels per (grid, buffer), in memory and as files in the MDB folder, and
    their strip plans (in memory, one grid at a time: a tile's pixels are large)."""

    def __init__(self, parcels: gpd.GeoDataFrame, folder: Path | None) -> None:
        self.parcels = parcels
        self.folder = folder
        self._memory: dict[str, tuple[ParcelPixels, npt.NDArray[np.int32]]] = {}
        self._plans: dict[tuple[str, int], StripPlan] = {}

    @staticmethod
    def key(grid: PixelGrid, buffer_m: float) -> str:
        text = "|".join(
            [grid.crs.to_wkt(), repr(tuple(grid.transform)[:6]), repr(grid.shape), repr(buffer_m)]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def pixels(self, grid: PixelGrid, buffer_m: float) -> ParcelPixels:
        """The parcels' pixels on ``grid``: from the file cache, or computed and stored."""
        key = self.key(grid, buffer_m)
        if key in self._memory:
            return self._memory[key][0]
        path = self.folder / f"{key}.npz" if self.folder is not None else None
        if path is not None and path.exists():
            with np.load(path) as stored:
                return ParcelPixels(
                    stored["parcel_ids"],
                    stored["offsets"],
                    stored["pixel_index"],
                    (int(stored["shape"][0]), int(stored["shape"][1])),
                )
        pixels = parcel_pixels(self.parcels, grid, buffer_m=buffer_m)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, tmp.open("wb") as handle:
                np.savez(
                    handle,
                    parcel_ids=pixels.parcel_ids,
                    offsets=pixels.offsets,
                    pixel_index=pixels.pixel_index,
                    shape=np.array(pixels.shape),
                )
        return pixels

    def get(self, grid: PixelGrid, buffer_m: float) -> tuple[ParcelPixels, npt.NDArray[np.int32]]:
        """The parcels' pixels on ``grid`` and their segment array, kept in memory."""
        key = self.key(grid, buffer_m)
        if key not in self._memory:
            pixels = self.pixels(grid, buffer_m)
            self._memory = {key: (pixels, pixels.segment)}
        return self._memory[key]

    def plan(self, grid: PixelGrid, buffer_m: float, strip_rows: int) -> StripPlan:
        """The strip plan of the parcels' pixels on ``grid``, kept in memory."""
        key = (self.key(grid, buffer_m), strip_rows)
        if key not in self._plans:
            self._plans = {}  # one grid at a time
            self._memory = {}
            self._plans[key] = plan_strips(self.pixels(grid, buffer_m), strip_rows)
        return self._plans[key]


class TileRanks:
    """Each parcel's order of preference among the site's Sentinel-2 tiles: first the tiles
    that contain it whole, then those that contain its centroid, then those that meet it,
    each group in name order (rank 0 is the parcel's *home tile*)."""

    def __init__(self, parcels: gpd.GeoDataFrame, tiles: Iterable[str]) -> None:
        if parcels.crs is None:
            raise InputError("the parcels have no CRS")
        self.tiles = tuple(sorted(set(tiles)))
        ids = parcels["NewID"].to_numpy(dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        self._ids = ids[order]
        levels = np.full((len(self.tiles), len(ids)), 3, dtype=np.int64)
        for index, name in enumerate(self.tiles):
            tile = s2_tile(name)
            local = parcels.geometry.to_crs(tile.epsg).to_numpy()[order]
            area = box(*tile.bounds)
            level = np.where(shapely.intersects(local, area), 2, 3)
            level[shapely.within(shapely.centroid(local), area)] = 1
            level[shapely.within(local, area)] = 0
            levels[index] = level
        keys = levels * max(len(self.tiles), 1) + np.arange(len(self.tiles))[:, None]
        self._ranks = np.argsort(np.argsort(keys, axis=0), axis=0).astype(np.int16)

    def of(
        self, tile: str | None, parcel_ids: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int16] | None:
        """The rank of ``tile`` for each of ``parcel_ids`` (None: the tile is not a site tile)."""
        if tile is None or tile not in self.tiles or not len(self._ids):
            return None
        row = self._ranks[self.tiles.index(tile)]
        where = np.clip(np.searchsorted(self._ids, parcel_ids), 0, len(self._ids) - 1)
        known = self._ids[where] == parcel_ids
        return np.where(known, row[where], len(self.tiles)).astype(np.int16)

    def home(self, parcel_ids: npt.NDArray[np.int64]) -> list[str | None]:
        """The home tile of each parcel (None when no site tile meets it)."""
        homes: list[str | None] = []
        for pid in parcel_ids:
            where = int(np.searchsorted(self._ids, pid))
            column = self._ranks[:, where]
            best = int(np.argmin(column)) if len(column) else -1
            homes.append(self.tiles[best] if best >= 0 else None)
        return homes


def wanted_signals(info: ProductInfo, settings: ExtractionSettings) -> frozenset[str]:
    """The MDB signals ``settings`` ask of a product (canonical names; a Sentinel-1 product
    gives one, by its type and polarisation)."""
    if info.product_type in (ProductType.S1_AMP, ProductType.S1_COHE):
        if not settings.sar:
            return frozenset()
        kind = "AMP" if info.product_type is ProductType.S1_AMP else "COHE"
        return frozenset({f"{kind}_{info.polarisation}"})
    sensor = info.sensor or ""
    return frozenset(get_signal(n).name for n in settings.optical_signals if _available(n, sensor))


def plan_products(
    products: Sequence[ProductInfo], coverage: Mapping[str, Coverage], settings: ExtractionSettings
) -> tuple[dict[str, ProductRequest], ExtractionReport]:
    """What to extract from a season's products, given what the MDB holds (``coverage``).

    One copy per acquisition is chosen among *every* copy, stored or not; a chosen copy that
    is not stored yet replaces the stored copies of its acquisition. Returns the requests by
    product name and a report with ``already_done``, ``superseded`` and ``not_requested``.
    """
    from capmon.sources import select_observations
    from capmon.sources.dedup import acquisition_key

    report = ExtractionReport()
    chosen = select_observations(products)
    chosen_names = {info.name for info in chosen}
    copies: dict[object, list[str]] = {}
    for info in products:
        copies.setdefault(acquisition_key(info), []).append(info.name)
    report.superseded = sorted(info.name for info in products if info.name not in chosen_names)
    requests: dict[str, ProductRequest] = {}
    for info in chosen:
        wanted = wanted_signals(info, settings)
        stored = [
            name for name in copies[acquisition_key(info)] if name != info.name and name in coverage
        ]
        missing = missing_signals(coverage.get(info.name), wanted)
        if not wanted and not stored:
            report.not_requested.append(info.name)
        elif not missing and not stored:
            report.already_done.append(info.name)
        else:
            requests[info.name] = ProductRequest(missing, tuple(sorted(stored)))
    return requests, report


def extract_products(
    parcels: gpd.GeoDataFrame,
    readers: Sequence[ProductReader],
    store: MdbStore,
    settings: ExtractionSettings,
    *,
    site_tiles: Sequence[str] = (),
    progress: Progress | None = None,
    cache: ParcelPixelCache | None = None,
    ranks: TileRanks | None = None,
    requests: Mapping[str, ProductRequest] | None = None,
) -> ExtractionReport:
    """Extract from each product the signals the MDB lacks; a bad product is reported and the
    others go on.

    ``requests`` (from :func:`plan_products`) say what to extract from each product and which
    stored copies it replaces; without them, each product's missing signals are found from
    the store. ``cache`` and ``ranks`` (the parcels' pixels and :class:`TileRanks`) may be
    given by a caller that extracts one product at a time (the orchestrator's workers).
    """
    started = time.perf_counter()
    report = ExtractionReport()
    if cache is None:
        cache = ParcelPixelCache(parcels, store.root / "pixels")
    if ranks is None:
        ranks = TileRanks(parcels, site_tiles)
    if requests is None:
        coverage = store.coverage()
        requests = {}
        for reader in readers:
            wanted = wanted_signals(reader.info, settings)
            missing = missing_signals(coverage.get(reader.info.name), wanted)
            requests[reader.info.name] = ProductRequest(missing)
    # One grid after the other, so that the pixel cache is reused for every date of a grid.
    ordered = sorted(readers, key=lambda r: (r.info.tile or "", _family(r.info), r.info.name))
    todo = []
    for reader in ordered:
        request = requests.get(reader.info.name, ProductRequest(frozenset()))
        if not request.signals and not request.replaces:
            if wanted_signals(reader.info, settings):
                report.already_done.append(reader.info.name)
            else:
                report.not_requested.append(reader.info.name)
        else:
            todo.append((reader, request))
    prepared: list[_Prepared | None] = []

    def jobs() -> Iterator[StripJob | BaseException | None]:
        # runs in the reading thread, one product ahead of the measuring
        for reader, request in todo:
            try:
                preparation = _prepare(reader, cache, settings, ranks, request)
            except CapmonError as exc:
                prepared.append(None)
                yield exc
                continue
            prepared.append(preparation)
            yield preparation.job

    outcomes = stream_jobs(jobs(), prefetch=settings.prefetch)
    for index, ((reader, request), outcome) in enumerate(zip(todo, outcomes, strict=False)):
        info = reader.info
        if progress is not None:
            progress(info.name)
        if outcome is not None:
            if not isinstance(outcome, CapmonError):
                raise outcome
            logger.warning("product %s not extracted: %s", info.name, outcome)
            report.failed.append((info.name, str(outcome)))
            continue
        preparation = prepared[index]
        assert preparation is not None
        tables, rows = preparation.finish()
        part = ProductPart(
            info.name,
            tuple(sorted(preparation.signals)),
            tuple(sorted(preparation.unavailable.items())),
            preparation.masked,
            request.replaces,
        )
        store.write_product(info.name, tables, part)
        report.replaced.extend((info.name, old) for old in request.replaces)
        report.skipped_signals.extend(
            (info.name, signal, reason)
            for signal, reason in sorted(preparation.unavailable.items())
        )
        if not preparation.signals:
            if not preparation.unavailable:
                report.already_done.append(info.name)  # only replaced a stored copy
            elif not request.replaces:
                reason = "it gives none of the signals asked for"
                report.empty.append((info.name, reason))
            continue
        if rows == 0:
            reason = "no parcel has enough valid pixels (clouds, or outside the parcels)"
            logger.info("product %s: %s", info.name, reason)
            report.empty.append((info.name, reason))
        else:
            report.extracted.append(info.name)
        report.rows += rows
    report.seconds = time.perf_counter() - started
    return report


def _family(info: ProductInfo) -> str:
    return sensor_family(info.sensor) if info.sensor else "?"


def _acquisition(info: ProductInfo) -> Acquisition:
    return Acquisition(
        product_id=info.name,
        sensor=info.sensor or "unknown",
        date=info.acquired_at.date(),
        tile=info.tile,
        date_first=info.acquired_first_at.date() if info.acquired_first_at else None,
        orbit=info.relative_orbit,
        orbit_direction=info.orbit_direction,
        backscatter=_backscatter(info),
    )


def _backscatter(info: ProductInfo) -> str | None:
    """``gamma0`` or ``sigma0`` for a backscatter product (Sen4CAP's AMP is σ⁰), else None."""
    if info.product_type is not ProductType.S1_AMP:
        return None
    convention = parse_convention(str(info.properties.get("amplitude_convention", "")))
    return "gamma0" if convention.value.startswith("gamma0") else "sigma0"


@dataclass
class _Prepared:
    """A product ready to stream (``job``; None when there is nothing to stream), how to turn
    what was measured into MDB tables, and what the product gives of the signals asked."""

    job: StripJob | None
    finish: Callable[[], tuple[list[object], int]]
    signals: frozenset[str] = frozenset()
    unavailable: dict[str, str] = field(default_factory=dict)
    masked: bool = True


def _nothing() -> tuple[list[object], int]:
    return [], 0


def _prepare(
    reader: ProductReader,
    cache: ParcelPixelCache,
    settings: ExtractionSettings,
    ranks: TileRanks,
    request: ProductRequest,
) -> _Prepared:
    info = reader.info
    if not request.signals:  # only replaces a stored copy of the acquisition
        return _Prepared(None, _nothing)
    if info.product_type in (ProductType.S1_AMP, ProductType.S1_COHE):
        if settings.s1_tile_grids and ranks.tiles:
            done = _extract_on_tile_grids(reader, cache, settings, ranks)
            return _Prepared(None, lambda: done, frozenset(request.signals))
        grid, buffer_m = reader.grid(), settings.sar_buffer_m
        read, measure, parts = _sar_strips(reader)
        unavailable: dict[str, str] = {}
        masked = True
    else:
        names, unavailable = _optical_plan(reader, request.signals)
        if not names:
            return _Prepared(None, _nothing, frozenset(), unavailable)
        grid, buffer_m = reader.grid(settings.optical_resolution), settings.optical_buffer_m
        read, measure, parts = _optical_strips(reader, settings, names)
        masked = reader.require_mask(settings.mask) is not None
    plan = cache.plan(grid, buffer_m, settings.strip_rows)

    def finish() -> tuple[list[object], int]:
        acquisition = _acquisition(info)
        tables: list[object] = []
        rows = 0
        for name, measured in parts.items():
            stats = plan_statistics(plan, measured)
            keep = stats.kept(settings.min_count, settings.min_valid_fraction)
            rows += int(keep.sum())
            tile_rank = ranks.of(info.tile, stats.parcel_ids)
            tables.append(statistics_table(acquisition, name, stats, keep, tile_rank))
        return tables, rows

    return _Prepared(
        StripJob(plan, read, measure, reader.kept_open),
        finish,
        frozenset(parts),
        unavailable,
        masked,
    )


def _optical_plan(
    reader: ProductReader, signals: Iterable[str]
) -> tuple[list[str], dict[str, str]]:
    """The signals of ``signals`` the product can give, and why it cannot give the others
    (:func:`capmon.signals.catalogue.plan_signals`)."""
    plan = plan_signals(sorted(signals), reader.info.sensor or "", reader.bands)
    unavailable = {name: plan.skipped[name] for name in plan.missing_bands}
    return list(plan.signals), unavailable


_VALID = "__valid__"
Measured = dict[str, list[ParcelStatistics]]


def _optical_strips(
    reader: ProductReader, settings: ExtractionSettings, names: Sequence[str]
) -> tuple[Callable[[int, int], RowBuffer], Callable[[RowBuffer, StripGroup], None], Measured]:
    """How to read a strip of an optical product (the bands ``names`` need and the validity
    mask) and how to measure a group of parcels on it: each signal computed on the group's
    rows, one at a time, and freed before the next one."""
    info = reader.info
    sensor = info.sensor or ""
    needed = sorted(signal_inputs(names, sensor))
    for band in needed:
        reader.require_band(band)
    resolution = settings.optical_resolution
    angles = None
    if any(get_signal(n).needs_angles for n in names):
        a = reader.angles()
        angles = ViewingAngles(a.sun_zenith, a.sun_azimuth, a.view_zenith, a.view_azimuth)
    parts: Measured = {get_signal(n).name: [] for n in names}

    def read(start: int, stop: int) -> RowBuffer:
        layers: dict[str, npt.NDArray[np.generic]] = {
            band: reader.read(band, resolution, (start, stop)) for band in needed
        }
        layers[_VALID] = reader.valid_mask(resolution, settings.mask, (start, stop))
        return RowBuffer(start, stop, layers)

    def measure(rows: RowBuffer, group: StripGroup) -> None:
        bands = {band: rows.layers[band] for band in needed}
        valid = rows.layers[_VALID].astype(bool, copy=False)
        for name in names:
            canonical = get_signal(name).name
            values = compute_signals([name], bands, sensor=sensor, angles=angles)[canonical]
            parts[canonical].append(
                parcel_statistics(group.pixels, values, valid, segment=group.segment)
            )
            del values

    return read, measure, parts


def _sar_strips(
    reader: ProductReader,
) -> tuple[Callable[[int, int], RowBuffer], Callable[[RowBuffer, StripGroup], None], Measured]:
    """How to read a strip of a Sentinel-1 product (its signal is computed in the reading
    thread) and measure a group of parcels on it."""
    name, convert = _sar_signal(reader)
    parts: Measured = {name: []}

    def read(start: int, stop: int) -> RowBuffer:
        return RowBuffer(
            start, stop, {name: convert(reader.read(reader.bands[0], None, (start, stop)))}
        )

    def measure(rows: RowBuffer, group: StripGroup) -> None:
        values: FloatArray = np.asarray(rows.layers[name], dtype=np.float32)
        parts[name].append(parcel_statistics(group.pixels, values, None, segment=group.segment))

    return read, measure, parts


def _sar_signal(reader: ProductReader) -> tuple[str, Callable[[FloatArray], FloatArray]]:
    """The MDB signal of a Sentinel-1 product and how its stored values become that signal."""
    info = reader.info
    polarisation = info.polarisation
    if polarisation not in ("VV", "VH"):
        raise InputError(f"product {info.name} has no VV/VH polarisation ({polarisation!r})")
    sensor = info.sensor or "S1"
    if info.product_type is ProductType.S1_AMP:
        convention = parse_convention(str(info.properties.get("amplitude_convention", "")))
        name = f"AMP_{polarisation}"

        def amplitude(stored: FloatArray) -> FloatArray:
            power = to_linear_power(stored, convention)
            return compute_signals([name], {polarisation: power}, sensor=sensor)[name]

        return name, amplitude
    name = f"COHE_{polarisation}"

    def coherence(stored: FloatArray) -> FloatArray:
        return compute_signals([name], {polarisation: stored}, sensor=sensor)[name]

    return name, coherence


def _extract_on_tile_grids(
    reader: ProductReader,
    cache: ParcelPixelCache,
    settings: ExtractionSettings,
    ranks: TileRanks,
) -> tuple[list[object], int]:
    """A Sentinel-1 product warped onto the S2 tile grids it covers (whole arrays: a 20 m S1
    product is a quarter of an optical tile)."""
    name, convert = _sar_signal(reader)
    grid = reader.grid()
    with reader.kept_open():
        values_by_signal = {name: convert(reader.read(reader.bands[0]))}
    tables: list[object] = []
    rows = 0
    for tile, tile_grid, warped in _on_tile_grids(grid, values_by_signal, ranks.tiles):
        pixels, segment = cache.get(tile_grid, settings.sar_buffer_m)
        acquisition = replace(_acquisition(reader.info), tile=tile)
        for signal, values in warped.items():
            stats = parcel_statistics(pixels, values, None, segment=segment)
            keep = stats.kept(settings.min_count, settings.min_valid_fraction)
            rows += int(keep.sum())
            tile_rank = ranks.of(tile, stats.parcel_ids)
            tables.append(statistics_table(acquisition, signal, stats, keep, tile_rank))
    return tables, rows


Mask = npt.NDArray[np.bool_] | None
FloatArray = npt.NDArray[np.float32]


def _on_tile_grids(
    grid: PixelGrid,
    values_by_signal: dict[str, npt.NDArray[np.float32]],
    tiles: Iterable[str],
) -> list[tuple[str, PixelGrid, dict[str, npt.NDArray[np.float32]]]]:
    """The signals warped onto the 20 m grid of each S2 tile they cover (bilinear, NaN outside).

    Only the part of each tile under the product is kept, snapped to the tile's pixel grid.
    """
    result = []
    west, south, east, north = rasterio.transform.array_bounds(
        grid.height, grid.width, grid.transform
    )
    footprint = box(west, south, east, north)
    for name in sorted(tiles):
        tile = s2_tile(name)
        in_tile_crs = shapely.geometry.shape(
            rasterio.warp.transform_geom(
                grid.crs,
                CRS.from_epsg(tile.epsg),
                shapely.geometry.mapping(shapely.segmentize(footprint, max(grid.resolution) * 50)),
            )
        )
        local = shapely.intersection(in_tile_crs, box(*tile.bounds))
        if local.is_empty:
            continue
        x0, y0, x1, y1 = local.bounds
        res = 20.0
        tw, ts, te, tn = tile.bounds
        x0, x1 = (
            max(tw, tw + np.floor((x0 - tw) / res) * res),
            min(te, tw + np.ceil((x1 - tw) / res) * res),
        )
        y0, y1 = (
            max(ts, tn - np.ceil((tn - y0) / res) * res),
            min(tn, tn - np.floor((tn - y1) / res) * res),
        )
        width, height = round(float(x1 - x0) / res), round(float(y1 - y0) / res)
        if width <= 0 or height <= 0:
            continue
        target = PixelGrid(CRS.from_epsg(tile.epsg), Affine(res, 0, x0, 0, -res, y1), width, height)
        warped = {}
        for signal, values in values_by_signal.items():
            out = np.full(target.shape, np.nan, dtype=np.float32)
            rasterio.warp.reproject(
                values,
                out,
                src_transform=grid.transform,
                src_crs=grid.crs,
                src_nodata=np.nan,
                dst_transform=target.transform,
                dst_crs=target.crs,
                dst_nodata=np.nan,
                resampling=rasterio.warp.Resampling.bilinear,
            )
            warped[signal] = out
        result.append((name, target, warped))
    return result


def _available(name: str, sensor: str) -> bool:
    family = sensor_family(sensor)
    return family in get_signal(name).sensors


@dataclass(frozen=True)
class SeasonExtraction:
    """The result of :func:`extract_season`: where the MDB is and what was done."""

    mdb_path: Path
    declaration_version: int
    parcels: int
    report: ExtractionReport


def mdb_folder(
    workspace: Workspace, site_short_name: str, season: str, declaration_set_id: int
) -> Path:
    """Where the MDB of a site, season and declaration set lives in the workspace."""
    return workspace.path(
        Path("mdb") / site_short_name / season / f"declarations-{declaration_set_id}"
    )


def extract_season(
    workspace: Workspace,
    site: str,
    season: str,
    settings: ExtractionSettings | None = None,
    *,
    compact: bool = True,
    rebuild: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> SeasonExtraction:
    """Extract the season's registered products for the newest declarations of its year.

    The declarations year is the year of the season's end. Products
    are those of the site acquired between the season's start and end (inclusive); what the
    MDB holds already is not extracted again (:func:`plan_products`), so a rerun does only
    what is missing. ``rebuild`` first removes the MDB (needed to change its masks, buffers
    or row filters). With ``compact``, the new rows are then merged into the parcel-bucketed
    files that one-parcel queries read (:meth:`MdbStore.compact`).
    """
    from capmon.catalog.models import DeclarationSet
    from capmon.parcels import load_parcels
    from capmon.parcels.store import latest_row
    from capmon.sites import get_season, get_site
    from capmon.sources import list_products, open_product

    settings = settings or ExtractionSettings()
    with workspace.session() as session:
        site_row = get_site(session, site)
        season_row = get_season(session, site_row, season)
        year = season_row.year
        declarations = latest_row(session, DeclarationSet, site_row, year)
        if declarations is None:
            raise InputError(
                f"site {site_row.name!r} has no declarations for {year} (season {season}); "
                "import them first with `capmon declarations import`"
            )
        in_season = [
            p
            for p in list_products(session, site_row)
            if p.acquired_at is not None
            and season_row.start_date <= p.acquired_at.date() <= season_row.end_date
            and p.product_type in {t.value for t in ProductType}
        ]
        infos = [catalogue_info(p) for p in in_season]
        gaps = coherence_report(
            [
                CoherenceProduct(
                    p.sensor,
                    p.relative_orbit,
                    p.properties.get("polarisation"),
                    p.acquired_first_at.date() if p.acquired_first_at else None,
                    p.acquired_at.date(),
                    p.product_type == ProductType.S1_COHE.value,
                )
                for p in in_season
                if p.acquired_at is not None
                and p.product_type in (ProductType.S1_AMP.value, ProductType.S1_COHE.value)
            ]
        )
        tiles = list(site_row.tiles)
        short_name = site_row.short_name
        declaration_id, declaration_version = declarations.id, declarations.version
    parcels = load_parcels(workspace, site, year, declaration_version)
    usable = parcels["GeomValid"].to_numpy(dtype=bool) | parcels["repaired"].to_numpy(dtype=bool)
    parcels = parcels.loc[usable, ["NewID", "geometry"]].copy()
    parcels["NewID"] = parcels["NewID"].astype(np.int64)

    root = mdb_folder(workspace, short_name, season, declaration_id)
    if rebuild:
        remove_mdb(root)
    store = MdbStore(root)
    store.initialise(
        settings.manifest(
            short_name, f"{short_name}/{year}/v{declaration_version}", declaration_id
        ),
        rebuild=f"capmon mdb extract {site} {season} --rebuild",
    )
    requests, report = plan_products(infos, store.coverage(), settings)
    readers: list[ProductReader] = []
    for info in infos:
        if info.name not in requests:
            continue
        try:
            readers.append(open_product(info.path))
        except CapmonError as exc:
            logger.warning("product %s cannot be opened: %s", info.name, exc)
            report.failed.append((info.name, str(exc)))
    total = len(readers)
    done = 0

    def step(name: str) -> None:
        nonlocal done
        if progress is not None:
            progress(done, total, name)
        done += 1

    result = extract_products(
        parcels, readers, store, settings, site_tiles=tiles, progress=step, requests=requests
    )
    if compact:  # a no-op when every stored product is already compacted
        if progress is not None:
            progress(total, total, "compacting the MDB")
        store.compact()
    if progress is not None:
        progress(total, total, "done")
    result.already_done[:0] = report.already_done
    result.not_requested[:0] = report.not_requested
    result.failed[:0] = report.failed
    result.superseded = report.superseded
    result.coherence_gaps = gaps
    return SeasonExtraction(store.root, declaration_version, len(parcels), result)


def remove_mdb(root: Path) -> None:
    """Remove an MDB folder (``--rebuild``): renamed aside first, so that a crash leaves
    either the old MDB or none, never a mix."""
    if not root.exists():
        return
    trash = root.with_name(f".{root.name}.removed-{time.time_ns()}")
    root.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def catalogue_info(product: Any) -> ProductInfo:
    """The :class:`ProductInfo` of a catalogue product row (what ingestion recorded), so
    that deduplication needs no product to be opened."""
    properties = dict(product.properties or {})
    return ProductInfo(
        name=product.name,
        product_type=ProductType(product.product_type),
        sensor=product.sensor,
        acquired_at=_utc(product.acquired_at),
        acquired_first_at=_utc(product.acquired_first_at) if product.acquired_first_at else None,
        tile=product.tile,
        relative_orbit=product.relative_orbit,
        orbit_direction=product.orbit_direction,
        processing_baseline=product.processing_baseline,
        footprint=product.footprint if product.footprint is not None else box(0, 0, 0, 0),
        path=Path(product.path),
        polarisation=properties.get("polarisation"),
        properties=properties,
    )


def _utc(value: dt.datetime) -> dt.datetime:
    """Catalogue times are UTC; SQLite returns them naive."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class CoherenceProduct:
    """What the coherence-pair check needs of a Sentinel-1 product."""

    sensor: str | None
    orbit: int | None
    polarisation: str | None
    first: dt.date | None
    second: dt.date
    is_coherence: bool


def coherence_report(products: Sequence[CoherenceProduct]) -> list[str]:
    """Gaps in the coherence series of each orbit and polarisation, as readable lines.

    The expected pair interval is 6 days when two Sentinel-1 units fly in the season and 12 days
    with one (:func:`capmon.signals.sar.expected_interval_days`); when the products do not name
    their unit (Sen4CAP V1 names), it is the most common interval of the pairs themselves.
    """
    units = {p.sensor for p in products if p.sensor and p.sensor.upper().startswith("S1")}
    series: dict[tuple[int | None, str | None], list[tuple[dt.date, dt.date]]] = {}
    for product in products:
        if product.is_coherence and product.first is not None:
            key = (product.orbit, product.polarisation)
            series.setdefault(key, []).append((product.first, product.second))
    lines: list[str] = []
    for (orbit, polarisation), pairs in sorted(series.items(), key=lambda kv: str(kv[0])):
        if units:
            expected = expected_interval_days(units)
        else:
            intervals = [(second - first).days for first, second in pairs]
            expected = max(set(intervals), key=intervals.count)
        for gap in coherence_gaps(pairs, expected):
            what = (
                "pair longer than"
                if gap.kind == "long_pair"
                else f"{gap.missing} pair(s) missing at"
            )
            lines.append(
                f"orbit {orbit} {polarisation}: {what} {expected} days, "
                f"{gap.start} to {gap.end} ({gap.days} days)"
            )
    return lines
