"""Sentinel-1 L2 products of Sen4CAP: backscatter amplitude and 6/12-day coherence GeoTIFFs.

Sen4CAP's S1 pre-processing (SNAP graphs) writes one float32 GeoTIFF per acquisition pair,
polarisation and product type, by default in EPSG:3035 at 20 m:

* AMP: linear amplitude ``sqrt(sigma0)`` (the markers take ``10*log10`` of it), no data 0;
* COHE: interferometric coherence, linear 0..1, no data 0.

File names (v1 ``SEN4CAP_L2A_S<site>_V<t1>_<t2>_<pol>_<orbit>_<AMP|COHE>[_<tile>].tif``,
v2 ``S1A_L2_BCK_...`` / ``S1A_L2_COH_...``) are built and parsed by :mod:`capmon.sources.naming`.
"""

from __future__ import annotations

import numbers
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from affine import Affine

from capmon.errors import InputError
from capmon.sources.naming import S1_SPACECRAFTS, S1ProductName, require_utc, s1_product_name
from capmon.synth.formats._common import staged_file, write_raster

OrbitDirection = Literal["ASC", "DESC"]

S1_DEFAULT_EPSG = 3035
"""Sen4CAP's default output CRS (ETRS89 / LAEA Europe)."""
S1_PIXEL_SIZE = 20.0
"""Sen4CAP's default pixel spacing (m)."""
NODATA = 0.0

_VALUE_CONVENTION = {
    "AMP": "amplitude=sqrt(sigma0), linear; nodata 0",
    "COHE": "coherence, linear 0..1; nodata 0",
}


def write_s1_amplitude(
    out_dir: Path,
    *,
    site_id: int,
    polarisation: Literal["VV", "VH"],
    relative_orbit: int,
    time: datetime,
    time_pair: datetime,
    amplitude: np.ndarray,
    transform: Affine,
    epsg: int,
    tile: str | None = None,
    naming: Literal["v1", "v2"] = "v1",
    spacecraft: str = "S1A",
    orbit_direction: Literal["ASC", "DESC"] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an S1 backscatter product (linear amplitude ``sqrt(sigma0)``) and return its path.

    ``amplitude`` is a 2-D float array on the grid of ``transform`` / ``epsg``; NaN (and 0) is
    no data, written as 0. ``time`` is the acquisition of the amplitude, ``time_pair`` the
    acquisition it was paired with (second date of v1 names; v2 names do not hold it).
    """
    name = s1_product_name(
        "AMP",
        site_id=site_id,
        polarisation=polarisation,
        relative_orbit=relative_orbit,
        time=time,
        time_pair=time_pair,
        tile=tile,
        naming=naming,
        spacecraft=spacecraft,
    )
    values = _check_values("amplitude", amplitude, upper=None)
    return _write(
        Path(out_dir),
        name,
        values,
        transform,
        epsg,
        orbit_direction,
        spacecraft,
        time_pair,
        overwrite,
    )


def write_s1_coherence(
    out_dir: Path,
    *,
    site_id: int,
    polarisation: Literal["VV", "VH"],
    relative_orbit: int,
    time: datetime,
    time_pair: datetime,
    coherence: np.ndarray,
    transform: Affine,
    epsg: int,
    tile: str | None = None,
    naming: Literal["v1", "v2"] = "v1",
    spacecraft: str = "S1A",
    orbit_direction: Literal["ASC", "DESC"] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an S1 coherence product (linear 0..1) and return its path.

    ``time`` is the later acquisition of the pair (the date Sen4CAP's markers use) and
    ``time_pair`` the earlier one. NaN (and 0) is no data, written as 0.
    """
    name = s1_product_name(
        "COHE",
        site_id=site_id,
        polarisation=polarisation,
        relative_orbit=relative_orbit,
        time=time,
        time_pair=time_pair,
        tile=tile,
        naming=naming,
        spacecraft=spacecraft,
    )
    values = _check_values("coherence", coherence, upper=1.0)
    return _write(
        Path(out_dir),
        name,
        values,
        transform,
        epsg,
        orbit_direction,
        spacecraft,
        time_pair,
        overwrite,
    )


def _is_integer(value: object) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_values(name: str, values: object, *, upper: float | None) -> npt.NDArray[np.float32]:
    if not isinstance(values, np.ndarray) or values.ndim != 2 or 0 in values.shape:
        raise InputError(f"{name} must be a non-empty 2-D numpy array")
    if not np.issubdtype(values.dtype, np.floating):
        raise InputError(f"{name} must hold floating-point values, not {values.dtype}")
    finite = values[~np.isnan(values)]
    if np.isinf(finite).any():
        raise InputError(f"{name} contains infinite values (use NaN for no data)")
    if finite.size and finite.min() < 0:
        raise InputError(f"{name} must not be negative (min {finite.min()})")
    if upper is not None and finite.size and finite.max() > upper:
        raise InputError(f"{name} must not exceed {upper} (max {finite.max()})")
    return np.where(np.isnan(values), NODATA, values).astype(np.float32)


def _write(
    out_dir: Path,
    name: S1ProductName,
    values: npt.NDArray[np.float32],
    transform: Affine,
    epsg: int,
    orbit_direction: str | None,
    spacecraft: str,
    time_pair: datetime,
    overwrite: bool,
) -> Path:
    if not isinstance(transform, Affine):
        raise InputError(f"transform must be an affine.Affine, not {type(transform).__name__}")
    if not _is_integer(epsg) or epsg <= 0:
        raise InputError(f"epsg must be a positive integer EPSG code, not {epsg!r}")
    if orbit_direction not in (None, "ASC", "DESC"):
        raise InputError(f"orbit_direction must be 'ASC', 'DESC' or None, not {orbit_direction!r}")
    if spacecraft not in S1_SPACECRAFTS:
        raise InputError(f"spacecraft must be one of {S1_SPACECRAFTS}, not {spacecraft!r}")
    tags = {
        "PRODUCT_TYPE": name.kind,
        "POLARISATION": name.polarisation,
        "RELATIVE_ORBIT": str(name.relative_orbit),
        "ACQUISITION_TIME": name.time.isoformat().replace("+00:00", "Z"),
        "PAIR_TIME": require_utc(time_pair, "time_pair")
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z"),
        "SPACECRAFT": spacecraft,
        "VALUE_CONVENTION": _VALUE_CONVENTION[name.kind],
    }
    if orbit_direction is not None:
        tags["ORBIT_DIRECTION"] = orbit_direction
    if name.site_id is not None:
        tags["SITE_ID"] = str(name.site_id)
    if name.tile is not None:
        tags["TILE"] = name.tile
    description = f"{name.polarisation} {'amplitude' if name.kind == 'AMP' else 'coherence'}"
    target = out_dir / name.filename
    with staged_file(target, overwrite=overwrite) as tmp:
        write_raster(
            tmp,
            values,
            transform=transform,
            epsg=epsg,
            fmt="gtiff",
            nodata=NODATA,
            tags=tags,
            descriptions=[description],
        )
    return target
