"""The band files of one product: headers, grids, decoding, calibration and resampling.

:class:`BandFiles` is the engine under every reader: it knows, for each band and mask layer,
the files that hold it (one per resolution the product ships) and reads exactly one of them
per request. Files that are missing, corrupt, truncated, without CRS or with a band count other
than the metadata declares raise a :class:`~capmon.errors.CapmonError` naming the file, the band
and the product.

Resampling is by integer factors only (no interpolation, no change of grid origin): pixel
replication to a finer grid, block mean (NaN when any pixel of the block is NaN) or "all
valid" for masks to a coarser grid. A coarser grid whose size does not divide the fine one
is rounded up, and the missing fine pixels count as no data.

Every read can be limited to a band of rows of the target grid (``rows=(start, stop)``, full
width): the extraction engine streams a product strip by strip, so a whole tile is never held
in memory. Inside :meth:`BandFiles.kept_open` the files stay open between such reads, so that
GDAL's block cache decodes each compressed block once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio._err import CPLE_BaseError
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from capmon.errors import CRSError, InputError, StorageError
from capmon.grid import PixelGrid

_CHUNK_ROWS = 512
Rows = tuple[int, int]
"""A band of rows ``(start, stop)`` of a grid, stop excluded, full width."""
_ALIGN_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Calibration:
    """How stored numbers become physical values.

    ``value = (DN + add_offset) / quantification * scale + offset``, computed in float64 and
    stored as float32; a DN equal to ``nodata`` or to the file's own no-data value (both are
    honoured), or NaN, gives NaN. Sen2Cor from baseline 04.00: ``add_offset=-1000,
    quantification=10000``; MAJA: ``quantification=10000, nodata=-10000``; Landsat C2 L2:
    ``scale=2.75e-05, offset=-0.2, nodata=0``.
    """

    add_offset: float = 0.0
    quantification: float = 1.0
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.quantification) or self.quantification == 0:
            raise InputError(f"quantification must be finite and not 0: {self.quantification}")
        for label in ("add_offset", "scale", "offset"):
            if not math.isfinite(getattr(self, label)):
                raise InputError(f"{label} must be finite: {getattr(self, label)}")

    def apply(
        self, stored: npt.NDArray[Any], file_nodata: float | None = None
    ) -> npt.NDArray[np.float32]:
        """The float32 physical values of ``stored``, NaN where it holds no data."""
        nodata = [v for v in (self.nodata, file_nodata) if v is not None]
        result = np.empty(stored.shape, np.float32)
        for start in range(0, stored.shape[0], _CHUNK_ROWS):
            rows = stored[start : start + _CHUNK_ROWS]
            missing = no_data(rows, nodata)
            values = rows.astype(np.float64)
            if self.add_offset:
                values += self.add_offset
            if self.quantification != 1:
                values /= self.quantification
            if self.scale != 1:
                values *= self.scale
            if self.offset:
                values += self.offset
            if missing is not None:
                values[missing] = np.nan
            result[start : start + _CHUNK_ROWS] = values
        return result


def no_data(stored: npt.NDArray[Any], nodata: Sequence[float]) -> npt.NDArray[np.bool_] | None:
    """Where ``stored`` equals one of the ``nodata`` values (compared in the stored type, as
    GDAL does: a float32 file's 1e20 is float32(1e20)); None when no pixel does. NaN no-data
    values are skipped (NaN is no data anyway); values the stored type cannot hold match
    nothing."""
    found: npt.NDArray[np.bool_] | None = None
    for value in nodata:
        if math.isnan(value):
            continue
        if stored.dtype.kind == "f":
            limit = float(np.finfo(stored.dtype).max)
            if math.isinf(value) or abs(value) <= limit:
                match = stored == stored.dtype.type(value)
            else:
                continue
        elif stored.dtype.kind in "iu":
            info = np.iinfo(stored.dtype)
            if not float(value).is_integer() or not info.min <= value <= info.max:
                continue
            match = stored == stored.dtype.type(int(value))
        else:
            match = stored == value
        found = match if found is None else found | match
    if found is None or not found.any():
        return None
    return found


@dataclass(frozen=True)
class BandSource:
    """One file holding a band (or mask layer) at one resolution.

    ``resolution`` is the pixel size the metadata announces (None: taken from the file);
    ``index`` the 1-based band of the file; ``count`` the number of bands the metadata says
    the file has (multi-band assets; None: not checked).
    """

    path: Path
    calibration: Calibration = Calibration()
    resolution: float | None = None
    index: int = 1
    count: int | None = None


@dataclass(frozen=True)
class RasterHeader:
    """What the header of a raster file says (no pixel decoded)."""

    crs: CRS
    transform: Affine
    width: int
    height: int
    count: int
    nodata: tuple[float | None, ...]

    @property
    def resolution(self) -> float:
        return abs(float(self.transform.a))

    @property
    def grid(self) -> PixelGrid:
        return PixelGrid(self.crs, self.transform, self.width, self.height)


@contextmanager
def open_raster(path: Path, *, product: str, what: str) -> Iterator[Any]:
    """Open ``path`` with rasterio; errors name ``what`` (``band B04``) and ``product``.

    A missing file or one GDAL cannot open is an :class:`InputError`, a file without CRS or
    geotransform a :class:`CRSError` (rasterio's NotGeoreferencedWarning is caught here).
    """
    if not path.is_file():
        raise InputError(f"{what} of product {product} is missing: {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(path)
            georeferenced = dataset.crs is not None and dataset.transform != Affine.identity()
    except PermissionError as exc:
        raise StorageError(f"cannot read {what} of product {product} ({path}): {exc}") from exc
    except (RasterioError, CPLE_BaseError, OSError) as exc:
        raise InputError(
            f"cannot open {what} of product {product}: {path} is corrupt, truncated or not a "
            f"raster ({exc})"
        ) from exc
    with dataset:
        if not georeferenced:
            missing = "CRS" if dataset.crs is None else "geotransform"
            raise CRSError(
                f"{what} of product {product} has no {missing}: {path} (not georeferenced, or "
                "its header is damaged); capmon never guesses one"
            )
        yield dataset


def read_header(path: Path, *, product: str, what: str) -> RasterHeader:
    """The header of ``path`` (see :func:`open_raster` for the errors)."""
    with open_raster(path, product=product, what=what) as dataset:
        transform = dataset.transform
        if transform.b or transform.d:
            raise InputError(f"{what} of product {product} has a rotated grid: {path}")
        if abs(abs(transform.a) - abs(transform.e)) > _ALIGN_TOLERANCE * abs(transform.a):
            raise InputError(f"{what} of product {product} has non-square pixels: {path}")
        return RasterHeader(
            crs=CRS.from_user_input(dataset.crs),
            transform=transform,
            width=int(dataset.width),
            height=int(dataset.height),
            count=int(dataset.count),
            nodata=tuple(dataset.nodatavals),
        )


def read_stored(
    source: BandSource,
    *,
    product: str,
    what: str,
    rows: Rows | None = None,
    dataset: Any = None,
) -> tuple[npt.NDArray[Any], Any]:
    """Decode one band of ``source`` as stored (only ``rows`` of the file when given), and its
    file no-data value. ``dataset`` is the file already open (see :meth:`BandFiles.kept_open`).
    """
    with ExitStack() as stack:
        if dataset is None:
            dataset = stack.enter_context(open_raster(source.path, product=product, what=what))
        _check_count(source, int(dataset.count), product=product, what=what)
        window = None
        if rows is not None:
            start, stop = rows
            if not 0 <= start < stop <= dataset.height:
                raise InputError(
                    f"rows {start}:{stop} are outside {what} of product {product} "
                    f"({source.path} has {dataset.height} rows)"
                )
            window = Window(0, start, dataset.width, stop - start)
        try:
            data = dataset.read(source.index, window=window)
        except (RasterioError, CPLE_BaseError, OSError) as exc:
            raise InputError(
                f"cannot decode {what} of product {product}: {source.path} is corrupt or "
                f"truncated ({exc})"
            ) from exc
        return data, dataset.nodatavals[source.index - 1]


def _check_count(source: BandSource, count: int, *, product: str, what: str) -> None:
    if source.count is not None and count != source.count:
        raise InputError(
            f"{what} of product {product}: {source.path} has {count} band(s), the metadata "
            f"declares {source.count}"
        )
    if not 1 <= source.index <= count:
        raise InputError(
            f"{what} of product {product} is band {source.index} of {source.path}, which has "
            f"{count} band(s)"
        )


# --------------------------------------------------------------------------------------------
# Resampling by integer factors


def integer_factor(coarse: float, fine: float) -> int:
    """``coarse / fine`` when it is an integer (within rounding), else an InputError."""
    ratio = coarse / fine
    factor = round(ratio)
    if factor < 1 or abs(ratio - factor) > 1e-6 * ratio:
        raise InputError(
            f"cannot resample between {fine:g} m and {coarse:g} m: the ratio is not an integer"
        )
    return int(factor)


def replicate(array: npt.NDArray[Any], factor: int) -> npt.NDArray[Any]:
    """Each pixel becomes ``factor`` x ``factor`` equal pixels."""
    if factor == 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def _padded_blocks(array: npt.NDArray[Any], factor: int, fill: Any) -> npt.NDArray[Any]:
    rows, cols = array.shape
    out_rows, out_cols = -(-rows // factor), -(-cols // factor)
    if (out_rows * factor, out_cols * factor) != (rows, cols):
        padded = np.full((out_rows * factor, out_cols * factor), fill, dtype=array.dtype)
        padded[:rows, :cols] = array
        array = padded
    return array.reshape(out_rows, factor, out_cols, factor)


def block_mean(array: npt.NDArray[np.float32], factor: int) -> npt.NDArray[np.float32]:
    """Mean of each ``factor`` x ``factor`` block (NaN if any pixel is NaN or missing)."""
    if factor == 1:
        return array
    blocks = _padded_blocks(array, factor, np.nan)
    means: npt.NDArray[np.float32] = blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
    return means


def block_all(mask: npt.NDArray[np.bool_], factor: int) -> npt.NDArray[np.bool_]:
    """True where every pixel of the ``factor`` x ``factor`` block is True (missing = False)."""
    if factor == 1:
        return mask
    return np.asarray(_padded_blocks(mask, factor, False).all(axis=(1, 3)), dtype=np.bool_)


def checked_resolution(resolution: float) -> float:
    """``resolution`` as a float, or InputError when it is not a positive number of metres."""
    if isinstance(resolution, bool) or not math.isfinite(resolution) or resolution <= 0:
        raise InputError(f"resolution must be a positive number of metres, not {resolution!r}")
    return float(resolution)


def native_or_scaled(native: PixelGrid, resolution: float | None) -> PixelGrid:
    """A single-grid product's grid: ``native``, or scaled to ``resolution`` metres."""
    if resolution is None:
        return native
    return scaled_grid(native, checked_resolution(resolution))


def scaled_grid(grid: PixelGrid, resolution: float) -> PixelGrid:
    """``grid`` at ``resolution`` metres, same origin (coarser sizes rounded up)."""
    current = grid.resolution[0]
    if math.isclose(current, resolution, rel_tol=1e-9):
        return grid
    if resolution > current:
        factor = integer_factor(resolution, current)
        return PixelGrid(
            grid.crs,
            grid.transform @ Affine.scale(factor),
            -(-grid.width // factor),
            -(-grid.height // factor),
        )
    factor = integer_factor(current, resolution)
    return PixelGrid(
        grid.crs,
        grid.transform @ Affine.scale(1 / factor),
        grid.width * factor,
        grid.height * factor,
    )


def grid_footprint(grid: PixelGrid) -> BaseGeometry:
    """The outline of ``grid`` in EPSG:4326 (densified so that it follows the projected box)."""
    west, north = grid.transform.c, grid.transform.f
    east = west + grid.transform.a * grid.width
    south = north + grid.transform.e * grid.height
    step = max(abs(east - west), abs(north - south)) / 16 or 1.0
    outline = shapely.segmentize(box(west, south, east, north), step)
    if CRS.from_user_input(grid.crs).equals(CRS.from_epsg(4326)):
        return outline
    transformer = pyproj.Transformer.from_crs(grid.crs, 4326, always_xy=True)
    return shapely.transform(outline, lambda xy: np.column_stack(transformer.transform(*xy.T)))


# --------------------------------------------------------------------------------------------
# The band files of a product


class BandFiles:
    """The files of a product's bands and mask layers, by name and resolution.

    ``sources[name]`` lists the files holding band (or layer) ``name``, one per resolution.
    Headers are read when first needed and kept (they are small); pixels never are.
    """

    def __init__(self, product: str, sources: Mapping[str, Sequence[BandSource]]) -> None:
        empty = [name for name, files in sources.items() if not files]
        if empty:
            raise InputError(f"product {product} lists no file for {', '.join(empty)}")
        self.product = product
        self.sources = {name: tuple(files) for name, files in sources.items()}
        self._headers: dict[tuple[Path, str], RasterHeader] = {}
        self._open: dict[Path, Any] | None = None
        self._stack = ExitStack()

    def header(self, name: str, source: BandSource) -> RasterHeader:
        """The header of ``source`` (checked against the metadata's resolution and count)."""
        key = (source.path, name)
        if key not in self._headers:
            what = _what(name)
            header = read_header(source.path, product=self.product, what=what)
            _check_count(source, header.count, product=self.product, what=what)
            if source.resolution is not None and not math.isclose(
                header.resolution, source.resolution, rel_tol=1e-6
            ):
                raise InputError(
                    f"{what} of product {self.product}: {source.path} has {header.resolution:g} m "
                    f"pixels, the metadata announces {source.resolution:g} m"
                )
            self._headers[key] = header
        return self._headers[key]

    def resolution_of(self, name: str, source: BandSource) -> float:
        if source.resolution is not None:
            return source.resolution
        return self.header(name, source).resolution

    def native(self, name: str) -> tuple[BandSource, float]:
        """The finest file of ``name`` and its resolution."""
        pairs = [(self.resolution_of(name, s), i) for i, s in enumerate(self._files(name))]
        resolution, index = min(pairs)
        return self._files(name)[index], resolution

    def finest_resolution(self, names: Sequence[str]) -> float:
        return min(self.native(name)[1] for name in names)

    def grid(self, resolution: float, names: Sequence[str]) -> PixelGrid:
        """The grid at ``resolution``: the header of a file of ``names`` at that resolution, or
        the finest such file's grid scaled by an integer factor."""
        for name in names:
            for source in self._files(name):
                if math.isclose(self.resolution_of(name, source), resolution, rel_tol=1e-9):
                    return self.header(name, source).grid
        name = min(names, key=lambda n: self.native(n)[1])
        source, _ = self.native(name)
        return scaled_grid(self.header(name, source).grid, resolution)

    def pick(self, name: str, resolution: float) -> tuple[BandSource, float]:
        """The file to read ``name`` at ``resolution`` from: the product's own file at that
        resolution when there is one, else the native (finest) file."""
        for source in self._files(name):
            if math.isclose(self.resolution_of(name, source), resolution, rel_tol=1e-9):
                return source, resolution
        return self.native(name)

    @contextmanager
    def kept_open(self) -> Iterator[None]:
        """Keep every file this object reads open until the block ends (strip-by-strip reads
        then decode each compressed block once); files are opened when first read."""
        if self._open is not None:  # nested: the outer block keeps them
            yield
            return
        self._open = {}
        try:
            with self._stack:
                yield
        finally:
            self._open = None
            self._stack = ExitStack()

    def _decode(
        self, name: str, source: BandSource, rows: Rows | None
    ) -> tuple[npt.NDArray[Any], Any]:
        what = _what(name)
        dataset = None
        if self._open is not None:
            dataset = self._open.get(source.path)
            if dataset is None:
                dataset = self._stack.enter_context(
                    open_raster(source.path, product=self.product, what=what)
                )
                self._open[source.path] = dataset
        return read_stored(source, product=self.product, what=what, rows=rows, dataset=dataset)

    def _source_rows(
        self, name: str, source: BandSource, resolution: float, target: PixelGrid, rows: Rows
    ) -> tuple[Rows, int]:
        """The rows of ``source`` that cover ``rows`` of ``target``, and the offset of the
        first target row in the resampled source rows."""
        start, stop = rows
        if not 0 <= start < stop <= target.height:
            raise InputError(
                f"rows {start}:{stop} are outside the {target.height}-row grid of product "
                f"{self.product}"
            )
        wanted = target.resolution[0]
        height = self.header(name, source).height
        if resolution > wanted:
            factor = integer_factor(resolution, wanted)
            first = start // factor
            return (first, min(-(-stop // factor), height)), start - first * factor
        if resolution < wanted:
            factor = integer_factor(wanted, resolution)
            return (start * factor, min(stop * factor, height)), 0
        return (start, min(stop, height)), 0

    def _read_fitted(
        self,
        name: str,
        source: BandSource,
        resolution: float,
        target: PixelGrid,
        rows: Rows | None,
        convert: Callable[[npt.NDArray[Any], Any], npt.NDArray[Any]],
        reduce: Callable[[Any, int], npt.NDArray[Any]] | None,
    ) -> npt.NDArray[Any]:
        """Decode ``name`` (its ``rows`` on ``target``), ``convert`` it, fit it to ``target``."""
        if rows is None:
            stored, nodata = self._decode(name, source, None)
            return self._fit(name, source, resolution, convert(stored, nodata), target, reduce)
        source_rows, skip = self._source_rows(name, source, resolution, target, rows)
        stored, nodata = self._decode(name, source, source_rows)
        values = convert(stored, nodata)
        del stored
        return self._fit_rows(name, source, resolution, values, target, rows, skip, reduce)

    def _fit_rows(
        self,
        name: str,
        source: BandSource,
        resolution: float,
        values: npt.NDArray[Any],
        target: PixelGrid,
        rows: Rows,
        skip: int,
        reduce: Callable[[Any, int], npt.NDArray[Any]] | None,
    ) -> npt.NDArray[Any]:
        """Source rows resampled onto ``rows`` of ``target`` (``skip``: see _source_rows)."""
        wanted = target.resolution[0]
        if resolution > wanted:
            values = replicate(values, integer_factor(resolution, wanted))
        elif resolution < wanted:
            if reduce is None:
                raise InputError(
                    f"{_what(name)} of product {self.product} has no file at {wanted:g} m"
                )
            values = reduce(values, integer_factor(wanted, resolution))
        values = values[skip : skip + rows[1] - rows[0]]
        self._check_fit(name, source, values.shape, target, rows)
        return values

    def read(
        self, name: str, target: PixelGrid, rows: Rows | None = None
    ) -> npt.NDArray[np.float32]:
        """``name`` calibrated and resampled onto ``target`` (one file decoded), or only the
        ``rows`` of ``target``."""
        source, resolution = self.pick(name, target.resolution[0])
        return self._read_fitted(
            name, source, resolution, target, rows, source.calibration.apply, block_mean
        )

    def read_mask(
        self,
        names: str | Sequence[str],
        target: PixelGrid,
        decode: Callable[..., npt.NDArray[np.bool_]],
        rows: Rows | None = None,
    ) -> npt.NDArray[np.bool_]:
        """The validity ``decode(*layers)`` computes from the stored layers ``names`` (read once
        each, all at one resolution), resampled onto ``target``: a coarse pixel is valid only
        when all its fine pixels are."""
        layers = (names,) if isinstance(names, str) else tuple(names)
        picked = [self.pick(name, target.resolution[0]) for name in layers]
        resolutions = {resolution for _, resolution in picked}
        if len(resolutions) != 1:
            raise InputError(
                f"product {self.product}: the layers {', '.join(layers)} have no common "
                f"resolution to be read at {target.resolution[0]:g} m"
            )
        source, resolution = picked[0]
        source_rows, skip = (None, 0)
        if rows is not None:
            source_rows, skip = self._source_rows(layers[0], source, resolution, target, rows)
        stored = [
            self._decode(name, layer_source, source_rows)[0]
            for name, (layer_source, _) in zip(layers, picked, strict=True)
        ]
        valid = decode(*stored)
        del stored
        if rows is None:
            return self._fit(layers[0], source, resolution, valid, target, block_all)
        return self._fit_rows(layers[0], source, resolution, valid, target, rows, skip, block_all)

    def nodata_values(self, name: str, resolution: float) -> tuple[float, ...]:
        """The no-data values of the file ``name`` is read from at ``resolution``: the one the
        metadata declares (its calibration) and the file's own."""
        source, _ = self.pick(name, resolution)
        own = self.header(name, source).nodata[source.index - 1]
        return tuple(v for v in (source.calibration.nodata, own) if v is not None)

    def read_stored(
        self, name: str, target: PixelGrid, rows: Rows | None = None
    ) -> npt.NDArray[Any]:
        """Layer ``name`` as stored, on ``target`` when the product has it at that resolution
        (a finer one is sampled by replication); coarser targets need :meth:`read_mask`."""
        source, resolution = self.pick(name, target.resolution[0])
        return self._read_fitted(name, source, resolution, target, rows, _as_stored, None)

    def check(self) -> None:
        """Open the header of every file (no decoding)."""
        for name, files in self.sources.items():
            for source in files:
                self.header(name, source)

    def _files(self, name: str) -> tuple[BandSource, ...]:
        try:
            return self.sources[name]
        except KeyError:
            raise InputError(f"product {self.product} has no {_what(name)}") from None

    def _fit(
        self,
        name: str,
        source: BandSource,
        resolution: float,
        values: npt.NDArray[Any],
        target: PixelGrid,
        reduce: Callable[[Any, int], npt.NDArray[Any]] | None,
    ) -> npt.NDArray[Any]:
        wanted = target.resolution[0]
        if resolution > wanted:
            values = replicate(values, integer_factor(resolution, wanted))
        elif resolution < wanted:
            if reduce is None:
                raise InputError(
                    f"{_what(name)} of product {self.product} has no file at {wanted:g} m"
                )
            values = reduce(values, integer_factor(wanted, resolution))
        self._check_fit(name, source, values.shape, target, None)
        return values

    def _check_fit(
        self,
        name: str,
        source: BandSource,
        shape: tuple[int, ...],
        target: PixelGrid,
        rows: Rows | None,
    ) -> None:
        header = self.header(name, source)
        origin = (header.transform.c, header.transform.f)
        target_origin = (target.transform.c, target.transform.f)
        tolerance = _ALIGN_TOLERANCE * max(1.0, *(abs(v) for v in origin))
        expected = target.shape if rows is None else (rows[1] - rows[0], target.width)
        if (
            tuple(shape) != expected
            or not header.crs.equals(target.crs)
            or any(abs(a - b) > tolerance for a, b in zip(origin, target_origin, strict=True))
        ):
            where = "" if rows is None else f" (rows {rows[0]}:{rows[1]})"
            raise InputError(
                f"{_what(name)} of product {self.product} ({source.path}) does not fit the "
                f"product grid at {target.resolution[0]:g} m{where}: shape {tuple(shape)} vs "
                f"{expected}, origin {origin} vs {target_origin}"
            )


def _as_stored(stored: npt.NDArray[Any], _nodata: Any) -> npt.NDArray[Any]:
    return stored


def _what(name: str) -> str:
    return f"band {name}" if name[:1] == "B" or name in ("VV", "VH") else f"layer {name}"
