"""Raster tiles of a signal of an input product (e.g. NDVI of one Sentinel-2 acquisition), for
display: 256 x 256 RGBA PNG in web mercator, colour-mapped, transparent outside the product's
data and where its mask rejects the pixel (clouds, shadows, no data).

For each band the signal needs (:func:`capmon.signals.catalogue.signal_inputs`), the reader's
file at the resolution closest to the tile's pixel (Sen2Cor ships 10, 20 and 60 m) is read on
the tile's window only, decimated to about the tile's resolution (GDAL uses the file's
overviews), calibrated as the reader does, and reprojected to the tile (nearest neighbour).
The signal is then computed with :func:`capmon.signals.compute.compute_signals`, the same
formulas the MDB uses. Readers and PNGs are kept in LRU caches (a product never changes).
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from capmon.errors import InputError
from capmon.signals.bands import L8, S1, S2, sensor_family
from capmon.signals.biophysical import ViewingAngles
from capmon.signals.catalogue import get_signal, signal_inputs
from capmon.signals.compute import compute_signals
from capmon.sources.model import ProductReader
from capmon.sources.raster import BandFiles, BandSource, open_raster

TILE_SIZE = 256
INPUT_PRODUCT_TYPES = ("l2a", "l2a_maja", "landsat_l2", "s1_amp", "s1_cohe")
"""Catalogue product types raster tiles are drawn from."""
_FAMILY = {"l2a": S2, "l2a_maja": S2, "landsat_l2": L8, "s1_amp": S1, "s1_cohe": S1}
OPTICAL_SIGNALS = ("NDVI", "NDWI", "LAI", "FAPAR", "FCOVER", "BSI", "NDTILL", "BRIGHTNESS")
"""Signals offered for optical products (any other catalogue signal is accepted too)."""


@dataclass(frozen=True)
class Style:
    """How values become colours: ``vmin`` .. ``vmax`` through a matplotlib colour map."""

    vmin: float
    vmax: float
    colormap: str


def default_style(signal: str) -> Style:
    """A sensible range and colour map per signal (see the route's ``min``/``max``)."""
    name = get_signal(signal).name
    if name == "NDVI":
        return Style(0.0, 1.0, "RdYlGn")
    if name in ("LAI",):
        return Style(0.0, 7.0, "YlGn")
    if name in ("FAPAR", "FCOVER"):
        return Style(0.0, 1.0, "YlGn")
    if name.startswith("COHE_"):
        return Style(0.0, 1.0, "viridis")
    if name in ("AMP_VVVH", "BCK_VVVH"):
        return Style(0.0, 12.0 if name == "BCK_VVVH" else 6.0, "magma")
    if name.startswith("AMP_"):
        return Style(-15.0, 0.0, "gray")
    if name.startswith("BCK_"):
        return Style(-25.0, 0.0, "gray")
    if name == "BRIGHTNESS":
        return Style(0.0, 0.6, "gray")
    if name[:1] == "B" and name[1:2].isdigit():
        return Style(0.0, 0.4, "gray")
    return Style(-1.0, 1.0, "RdYlGn")


def raster_signals(product_type: str, properties: dict[str, Any]) -> list[str]:
    """The signals the map offers for an input product of ``product_type``."""
    family = _FAMILY.get(product_type)
    if family in (S2, L8):
        return list(OPTICAL_SIGNALS)
    polarisation = str(properties.get("polarisation") or "")
    if product_type == "s1_amp":
        return [f"AMP_{polarisation}", f"BCK_{polarisation}"] if polarisation else []
    if product_type == "s1_cohe":
        return [f"COHE_{polarisation}"] if polarisation else []
    return []


@cache
def colour_table(colormap: str) -> npt.NDArray[np.uint8]:
    """256 RGBA colours of a matplotlib colour map (InputError naming unknown maps)."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError as exc:
        raise InputError(
            f"unknown colormap {colormap!r}; use a matplotlib name such as RdYlGn, viridis, "
            "YlGn, gray, magma"
        ) from exc
    table: npt.NDArray[np.uint8] = cmap(np.linspace(0.0, 1.0, 256), bytes=True)
    return table


def encode_png(values: npt.NDArray[np.float32], style: Style) -> bytes:
    """Colour-mapped RGBA PNG of ``values`` (NaN transparent)."""
    from PIL import Image

    rgba = np.zeros((*values.shape, 4), np.uint8)
    valid = np.isfinite(values)
    if valid.any():
        span = style.vmax - style.vmin
        scaled = np.clip((values[valid] - style.vmin) / span, 0.0, 1.0)
        rgba[valid] = colour_table(style.colormap)[(scaled * 255).astype(np.uint8)]
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()


@cache
def empty_png() -> bytes:
    """A fully transparent tile."""
    return encode_png(np.full((TILE_SIZE, TILE_SIZE), np.nan, np.float32), Style(0, 1, "gray"))


def _tile_transform(bounds: tuple[float, float, float, float]) -> Affine:
    minx, miny, maxx, maxy = bounds
    return Affine((maxx - minx) / TILE_SIZE, 0, minx, 0, -(maxy - miny) / TILE_SIZE, maxy)


def _pick(files: BandFiles, name: str, wanted: float) -> BandSource:
    """The file of ``name`` whose resolution is the coarsest not coarser than ``wanted``
    (else the finest)."""
    options = sorted(
        ((files.resolution_of(name, s), i) for i, s in enumerate(files.sources[name])),
        key=lambda pair: pair[0],
    )
    chosen = options[0]
    for resolution, i in options:
        if resolution <= wanted * 1.001:
            chosen = (resolution, i)
    return files.sources[name][chosen[1]]


Opener = Callable[[Path, str, str], AbstractContextManager[Any]]


def _open_once(path: Path, product: str, what: str) -> AbstractContextManager[Any]:
    return open_raster(path, product=product, what=what)


class OpenDatasets:
    """Raster files kept open between tiles (LRU), so that GDAL's block cache serves the
    blocks neighbouring tiles share (a JPEG 2000 block is decoded once, not once per tile).
    A dataset is used by one thread at a time. Datasets are opened without entering them
    (``with dataset``), which would tie a GDAL environment to the opening thread."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._open: OrderedDict[Path, tuple[Any, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, path: Path, product: str, what: str) -> Iterator[Any]:
        with self._lock:
            entry = self._open.get(path)
            if entry is not None:
                self._open.move_to_end(path)
        if entry is None:
            with open_raster(path, product=product, what=what):
                pass  # the checks and errors of the readers (missing, corrupt, no CRS)
            entry = (rasterio.open(path), threading.Lock())
            with self._lock:
                if path in self._open:  # another thread opened it meanwhile
                    entry[0].close()
                    entry = self._open[path]
                else:
                    self._open[path] = entry
                    while len(self._open) > self._size:
                        _, (old, old_lock) = self._open.popitem(last=False)
                        with old_lock:
                            old.close()
        dataset, lock = entry
        with lock:
            yield dataset

    def close(self) -> None:
        with self._lock:
            while self._open:
                _, (dataset, lock) = self._open.popitem(last=False)
                with lock:
                    dataset.close()


def read_on_tile(
    files: BandFiles,
    name: str,
    source: BandSource,
    bounds: tuple[float, float, float, float],
    *,
    calibrate: bool,
    opener: Opener = _open_once,
) -> npt.NDArray[np.float32]:
    """Band or layer ``name`` of ``source`` on the tile's 256 x 256 grid (float32, NaN where
    the file has no data or does not reach); calibrated when ``calibrate``."""
    out = np.full((TILE_SIZE, TILE_SIZE), np.nan, np.float32)
    what = f"band {name}" if calibrate else f"layer {name}"
    with opener(source.path, files.product, what) as dataset:
        left, bottom, right, top = transform_bounds(
            "EPSG:3857", dataset.crs, *bounds, densify_pts=21
        )
        grid = dataset.transform  # north-up (the readers refuse rotated grids)
        first_col, last_col = sorted(((left - grid.c) / grid.a, (right - grid.c) / grid.a))
        first_row, last_row = sorted(((top - grid.f) / grid.e, (bottom - grid.f) / grid.e))
        col0, row0 = max(math.floor(first_col), 0), max(math.floor(first_row), 0)
        col1 = min(math.ceil(last_col), dataset.width)
        row1 = min(math.ceil(last_row), dataset.height)
        if col1 <= col0 or row1 <= row0:
            return out
        window = Window(col0, row0, col1 - col0, row1 - row0)
        wanted = (right - left) / TILE_SIZE
        factor = max(1.0, wanted / abs(grid.a))
        shape = (
            max(1, math.ceil(window.height / factor)),
            max(1, math.ceil(window.width / factor)),
        )
        stored = dataset.read(
            source.index, window=window, out_shape=shape, resampling=Resampling.nearest
        )
        nodata = dataset.nodatavals[source.index - 1]
        transform = (
            grid
            @ Affine.translation(col0, row0)
            @ Affine.scale(window.width / shape[1], window.height / shape[0])
        )
        crs = dataset.crs
    if calibrate:
        values = source.calibration.apply(stored, nodata)
    else:
        values = stored.astype(np.float32)
        if nodata is not None and not math.isnan(nodata):
            values[stored == nodata] = np.nan
    reproject(
        values,
        out,
        src_transform=transform,
        src_crs=crs,
        src_nodata=np.nan,
        dst_transform=_tile_transform(bounds),
        dst_crs="EPSG:3857",
        dst_nodata=np.nan,
        resampling=Resampling.nearest,
    )
    return out


MaskRule = tuple[tuple[str, ...], Callable[..., npt.NDArray[np.bool_]]]


def mask_rule(reader: ProductReader) -> MaskRule | None:
    """The mask layers of a reader and how they decode to validity (as its ``valid_mask``)."""
    from capmon.signals.masks import landsat_qa_valid, maja_valid, scl_valid
    from capmon.sources.landsat import QA_PIXEL, LandsatReader
    from capmon.sources.maja import MajaReader
    from capmon.sources.model import DEFAULT_MASK_CONFIG
    from capmon.sources.sen2cor import SCL, Sen2CorReader
    from capmon.sources.stac import StacReader

    config = DEFAULT_MASK_CONFIG
    files: BandFiles | None = getattr(reader, "files", None)
    if files is None:
        return None
    if isinstance(reader, Sen2CorReader) or (
        isinstance(reader, StacReader) and SCL in files.sources
    ):
        return (SCL,), lambda scl: scl_valid(scl, config.scl)
    if isinstance(reader, LandsatReader) or (
        isinstance(reader, StacReader) and QA_PIXEL in files.sources
    ):
        return (QA_PIXEL,), lambda qa: landsat_qa_valid(qa, config.landsat)
    if isinstance(reader, MajaReader):
        optional = [layer for layer in ("MG2", "SAT") if layer in files.sources]

        def decode(edg: Any, clm: Any, *rest: Any) -> npt.NDArray[np.bool_]:
            extra = dict(zip(optional, rest, strict=True))
            return maja_valid(
                edg, clm=clm, mg2=extra.get("MG2"), sat=extra.get("SAT"), config=config.maja
            )

        return ("EDG", "CLM", *optional), decode
    return None


def render_signal_tile(
    reader: ProductReader,
    signal: str,
    z: int,
    x: int,
    y: int,
    style: Style,
    opener: Opener = _open_once,
) -> bytes:
    """The PNG of ``signal`` of the product of ``reader`` on tile ``z/x/y``."""
    from capmon.service.mvt import tile_bounds

    bounds = tile_bounds(z, x, y)
    info = reader.info
    sensor = info.sensor or _FAMILY.get(info.product_type.value, S2)
    family = sensor_family(sensor)
    canonical = get_signal(signal)
    if family not in canonical.sensors:
        raise InputError(
            f"signal {signal} is not available for product {info.name} ({sensor}); it is for "
            f"{', '.join(sorted(canonical.sensors))}"
        )
    bands = signal_inputs([signal], sensor)
    aliases: dict[str, str] = dict(getattr(reader, "aliases", {}) or {})
    missing = [b for b in bands if aliases.get(b, b) not in reader.bands and b not in reader.bands]
    if missing:
        raise InputError(
            f"product {info.name} has no band {', '.join(sorted(missing))} needed by {signal} "
            f"(bands: {', '.join(reader.bands)})"
        )
    files: BandFiles = reader.files  # type: ignore[attr-defined]
    mercator_pixel = (bounds[2] - bounds[0]) / TILE_SIZE
    ground = mercator_pixel * math.cos(math.radians(_latitude((bounds[1] + bounds[3]) / 2)))
    values: dict[str, npt.NDArray[np.float32]] = {}
    for band in sorted(bands):
        stored = aliases.get(band, band)
        source = _pick(files, stored, ground)
        values[band] = read_on_tile(files, stored, source, bounds, calibrate=True, opener=opener)
    coverage = np.logical_and.reduce([np.isfinite(v) for v in values.values()])
    if not coverage.any():
        return empty_png()
    angles = None
    if canonical.for_sensor(family).needs_angles:
        a = reader.angles()
        angles = ViewingAngles(a.sun_zenith, a.sun_azimuth, a.view_zenith, a.view_azimuth)
    with np.errstate(all="ignore"):
        result = compute_signals([signal], values, sensor=sensor, angles=angles)
    image = next(iter(result.values()))
    valid = coverage & np.isfinite(image)
    rule = mask_rule(reader)
    if rule is not None:
        layers, decode = rule
        first = _pick(files, layers[0], ground)
        resolution = files.resolution_of(layers[0], first)
        stored_layers = []
        for layer in layers:
            source = files.pick(layer, resolution)[0]
            stored_layers.append(
                read_on_tile(files, layer, source, bounds, calibrate=False, opener=opener)
            )
        present = np.logical_and.reduce([np.isfinite(v) for v in stored_layers])
        decoded = decode(*(np.nan_to_num(v, nan=0).astype(np.int64) for v in stored_layers))
        valid &= present & np.asarray(decoded, dtype=bool)
    image = np.where(valid, image, np.float32(np.nan)).astype(np.float32)
    if not valid.any():
        return empty_png()
    return encode_png(image, style)


def _latitude(mercator_y: float) -> float:
    return math.degrees(2 * math.atan(math.exp(mercator_y / 6378137.0)) - math.pi / 2)


class RasterTiles:
    """Open product readers and rendered PNGs, per app (LRU caches)."""

    def __init__(self, readers: int = 32, tiles_bytes: int = 128 * 2**20) -> None:
        from capmon.service.map_data import LruCache

        self.readers: LruCache[tuple[int, str], ProductReader] = LruCache(readers)
        self.tiles: LruCache[tuple[Any, ...], bytes] = LruCache(
            100_000, tiles_bytes, lambda t: len(t) + 200
        )
        self.datasets = OpenDatasets()

    def reader(self, product_id: int, path: str) -> ProductReader:
        from capmon.sources.detect import open_product

        return self.readers.get_or_build((product_id, path), lambda: open_product(path))

    def render(
        self, product_id: int, path: str, signal: str, z: int, x: int, y: int, style: Style
    ) -> bytes:
        """The PNG of a tile (cached)."""
        key = (product_id, path, signal, style, z, x, y)
        return self.tiles.get_or_build(
            key,
            lambda: render_signal_tile(
                self.reader(product_id, path), signal, z, x, y, style, self.datasets
            ),
        )

    def close(self) -> None:
        self.readers.clear()
        self.tiles.clear()
        self.datasets.close()
