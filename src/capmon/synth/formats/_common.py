"""Helpers shared by the product writers: staged folders, raster files, grids, times, XML.

The times of product names (``compact_time``, ``require_utc``) are in :mod:`capmon.sources.naming`.
"""

from __future__ import annotations

import os
import shutil
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.errors import RasterioError

from capmon.errors import ConflictError, InputError, StorageError
from capmon.workspace import atomic_path

RasterFormat = Literal["jp2", "cog", "gtiff"]

# Lossless JPEG 2000 as in the Sentinel-2 products. The files carry no nodata value: the
# product metadata states it (SPECIAL_VALUE NODATA = 0), and GDAL would otherwise put it in
# a .aux.xml side file.
_JP2_OPTIONS: dict[str, Any] = {"driver": "JP2OpenJPEG", "QUALITY": 100, "REVERSIBLE": "YES"}
_COG_OPTIONS: dict[str, Any] = {"driver": "COG", "COMPRESS": "DEFLATE", "PREDICTOR": "YES"}
_GTIFF_OPTIONS: dict[str, Any] = {
    "driver": "GTiff",
    "COMPRESS": "DEFLATE",
    "TILED": "YES",
    "BLOCKXSIZE": 256,
    "BLOCKYSIZE": 256,
}


# --------------------------------------------------------------------------------------------
# Product folders and files


def check_overwrite(target: Path, overwrite: bool) -> None:
    """Refuse to replace an existing product unless ``overwrite`` is set."""
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise ConflictError(
            f"the product {target} already exists; pass overwrite=True to replace it"
        )


@contextmanager
def staged_folder(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """A new empty folder that becomes ``target`` when the block succeeds.

    The product is written next to its final place and renamed at the end, so readers never
    see half a product; a failure leaves any previous product untouched.
    """
    check_overwrite(target, overwrite)
    retired: Path | None = None
    try:
        with atomic_path(target) as tmp:
            tmp.mkdir()
            yield tmp
            if target.exists():
                # A directory cannot be renamed onto a non-empty one: move the old product
                # aside just before the rename, and restore it if the rename fails.
                retired = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
                os.replace(target, retired)
    except StorageError:
        _restore(retired, target)
        raise
    except OSError as exc:
        _restore(retired, target)
        raise StorageError(f"cannot write the product {target}: {exc}") from exc
    except BaseException:
        _restore(retired, target)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _restore(retired: Path | None, target: Path) -> None:
    if retired is not None and retired.exists() and not target.exists():
        os.replace(retired, target)


@contextmanager
def staged_file(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """A temporary path that is renamed onto ``target`` when the block succeeds."""
    check_overwrite(target, overwrite)
    try:
        with atomic_path(target) as tmp:
            yield tmp
    except StorageError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc}") from exc


def write_raster(
    path: Path,
    data: npt.NDArray[Any],
    *,
    transform: Affine,
    epsg: int,
    fmt: RasterFormat,
    nodata: float | None = None,
    tags: Mapping[str, str] | None = None,
    descriptions: Sequence[str] | None = None,
) -> None:
    """Write ``data`` (rows x cols, or bands x rows x cols) as a georeferenced raster file."""
    bands = data[np.newaxis] if data.ndim == 2 else data
    options = {"jp2": _JP2_OPTIONS, "cog": _COG_OPTIONS, "gtiff": _GTIFF_OPTIONS}[fmt].copy()
    if fmt != "jp2":
        if nodata is not None:
            options["nodata"] = nodata
        if fmt == "gtiff":
            options["PREDICTOR"] = 3 if np.issubdtype(bands.dtype, np.floating) else 2
    try:
        with (
            rasterio.Env(GDAL_PAM_ENABLED="NO"),
            rasterio.open(
                path,
                "w",
                width=bands.shape[2],
                height=bands.shape[1],
                count=bands.shape[0],
                dtype=bands.dtype,
                crs=f"EPSG:{epsg}",
                transform=transform,
                **options,
            ) as dst,
        ):
            dst.write(bands)
            if tags:
                dst.update_tags(**tags)
            for index, description in enumerate(descriptions or (), start=1):
                dst.set_band_description(index, description)
    except RasterioError as exc:
        raise StorageError(f"cannot write the raster {path}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Arrays and grids


def check_array(name: str, array: object, shape: tuple[int, int]) -> npt.NDArray[Any]:
    """``array`` as a numpy array of ``shape``, or an InputError naming the parameter."""
    if not isinstance(array, np.ndarray):
        raise InputError(f"{name} must be a numpy array, not {type(array).__name__}")
    if array.shape != shape:
        raise InputError(f"{name} must have the shape {shape}, not {array.shape}")
    return array


def check_reflectance(name: str, array: object, shape: tuple[int, int]) -> npt.NDArray[np.float64]:
    """A float reflectance array of ``shape`` (NaN = no data; infinities are refused)."""
    checked = check_array(name, array, shape)
    if not np.issubdtype(checked.dtype, np.floating):
        raise InputError(f"{name} must hold floating-point reflectances, not {checked.dtype}")
    if np.isinf(checked).any():
        raise InputError(f"{name} contains infinite values (use NaN for no data)")
    return checked.astype(np.float64, copy=False)


def check_mask(name: str, array: object, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """A boolean mask of ``shape``."""
    checked = check_array(name, array, shape)
    if checked.dtype != np.bool_:
        raise InputError(f"{name} must be a boolean array, not {checked.dtype}")
    return checked


def _blocks(array: npt.NDArray[Any], factor: int) -> npt.NDArray[Any]:
    rows, cols = array.shape
    if rows % factor or cols % factor:
        raise InputError(
            f"an array of shape {array.shape} cannot be cut in {factor}x{factor} blocks"
        )
    return array.reshape(rows // factor, factor, cols // factor, factor)


def block_mean(array: npt.NDArray[np.float64], factor: int) -> npt.NDArray[np.float64]:
    """Mean of ``factor`` x ``factor`` blocks; a block with any NaN is NaN (no data)."""
    if factor == 1:
        return array
    result: npt.NDArray[np.float64] = _blocks(array, factor).mean(axis=(1, 3))
    return result


def block_any(mask: npt.NDArray[np.bool_], factor: int) -> npt.NDArray[np.bool_]:
    """True where any pixel of the ``factor`` x ``factor`` block is True."""
    if factor == 1:
        return mask
    return np.asarray(_blocks(mask, factor).any(axis=(1, 3)), dtype=np.bool_)


def nearest(array: npt.NDArray[Any], factor: int) -> npt.NDArray[Any]:
    """Nearest-neighbour down-sampling by ``factor``: the pixel at the centre of each block."""
    if factor == 1:
        return array
    _blocks(array, factor)
    return array[factor // 2 :: factor, factor // 2 :: factor]


# --------------------------------------------------------------------------------------------
# Times


def iso_ms(value: datetime) -> str:
    """``2024-05-03T10:50:31.024Z`` (UTC, milliseconds), as in the XML metadata."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------------------------
# XML
#
# Tags are written verbatim (``n1:General_Info``): the Sentinel-2 documents use the prefix
# ``n1`` for different namespaces, which ElementTree's global prefix registry cannot express.


def xml_child(
    parent: ET.Element,
    tag: str,
    text: object = None,
    attrs: Mapping[str, object] | None = None,
) -> ET.Element:
    """Append the element ``tag`` (with ``text`` and ``attrs``) to ``parent`` and return it."""
    element = ET.SubElement(parent, tag, {k: str(v) for k, v in (attrs or {}).items()})
    if text is not None:
        element.text = str(text)
    return element


def write_xml(root: ET.Element, path: Path) -> None:
    """Write the document ``root`` to ``path`` (UTF-8, indented)."""
    ET.indent(root, space="  ")
    try:
        ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc}") from exc


def fmt_float(value: float, digits: int = 6) -> str:
    """A float without trailing zeros, as metadata values are usually written."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"
