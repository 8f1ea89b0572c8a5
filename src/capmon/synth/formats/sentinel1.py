"""Sentinel-1 L2 products of Sen4CAP: backscatter amplitude and 6/12-day coherence GeoTIFFs.

Sen4CAP's S1 pre-processing (SNAP graphs) writes one float32 GeoTIFF per acquisition pair,
polarisation and product type, by default in EPSG:3035 at 20 m:

* AMP: linear amplitude ``sqrt(sigma0)`` (the markers take ``10*log10`` of it), no data 0;
* COHE: interferometric coherence, linear 0..1, no data 0.

Two naming schemes exist (regexes of Sen4CAP's ``s1l2producthelper.cpp`` / ``CommonFunctions.h``):

* v1 ``SEN4CAP_L2A_S<site>_V<t1>_<t2>_<VV|VH>_<orbit>_<AMP|COHE>[_<tile>].tif`` where ``t1`` is
  the product's acquisition (the later one of a coherence pair) and ``t2`` the other one; the
  S2 tile is appended when the product was cut by tile;
* v2 ``S1A_L2_BCK_<t>_<pol>_<orbit>_<tile>.tif`` and
  ``S1A_L2_COH_<t1>_<t2>_<pol>_<orbit>_<tile>.tif`` (always cut by S2 tile, later date first).

Times are UTC ``yyyymmddThhmmss``; the relative orbit has 3 digits; tiles are written ``31UFS``.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
from affine import Affine

from capmon.errors import InputError
from capmon.grid import s2_tile
from capmon.synth.formats._common import (
    compact_time,
    parse_compact_time,
    require_utc,
    staged_file,
    write_raster,
)

S1Kind = Literal["AMP", "COHE"]
Polarisation = Literal["VV", "VH"]
S1Naming = Literal["v1", "v2"]
OrbitDirection = Literal["ASC", "DESC"]

S1_DEFAULT_EPSG = 3035
"""Sen4CAP's default output CRS (ETRS89 / LAEA Europe)."""
S1_PIXEL_SIZE = 20.0
"""Sen4CAP's default pixel spacing (m)."""
NODATA = 0.0
S1_SPACECRAFTS = ("S1A", "S1B", "S1C", "S1D")

_TIME = r"\d{8}T\d{6}"
_TILE = r"\d{2}[C-X][A-Z]{2}"
_V1 = re.compile(
    rf"^SEN4CAP_L2A_S(?P<site>\d+)_V(?P<t1>{_TIME})_(?P<t2>{_TIME})_(?P<pol>VV|VH)"
    rf"_(?P<orbit>\d{{3}})_(?P<kind>AMP|COHE)(?:_(?P<tile>{_TILE}))?(?:\.tif)?$"
)
_V2 = re.compile(
    rf"^(?P<spacecraft>S1[A-D])_L2_(?P<kind>BCK|COH)_(?P<t1>{_TIME})(?:_(?P<t2>{_TIME}))?"
    rf"_(?P<pol>VV|VH)_(?P<orbit>\d{{3}})_(?P<tile>{_TILE})(?:\.tif)?$"
)
_VALUE_CONVENTION = {
    "AMP": "amplitude=sqrt(sigma0), linear; nodata 0",
    "COHE": "coherence, linear 0..1; nodata 0",
}


@dataclass(frozen=True)
class S1ProductName:
    """The fields of a Sen4CAP S1 L2 file name; ``filename`` writes it back.

    ``time`` is the first date of the name (the product's acquisition; the later acquisition
    for coherence), ``time_pair`` the second one (None in v2 backscatter names). v1 names carry
    ``site_id`` and no spacecraft; v2 names carry ``spacecraft`` and ``tile``.
    """

    kind: S1Kind
    polarisation: Polarisation
    relative_orbit: int
    time: datetime
    time_pair: datetime | None
    tile: str | None
    spacecraft: str | None
    naming: S1Naming
    site_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("AMP", "COHE"):
            raise InputError(f"kind must be 'AMP' or 'COHE', not {self.kind!r}")
        if self.polarisation not in ("VV", "VH"):
            raise InputError(f"polarisation must be 'VV' or 'VH', not {self.polarisation!r}")
        if not _is_integer(self.relative_orbit):
            raise InputError(f"relative_orbit must be an integer, not {self.relative_orbit!r}")
        if not 1 <= self.relative_orbit <= 175:
            raise InputError(f"relative_orbit must be in 1..175, not {self.relative_orbit}")
        require_utc(self.time, "time")
        if self.time_pair is not None:
            require_utc(self.time_pair, "time_pair")
        if self.tile is not None:
            _check_tile(self.tile)
        if self.naming == "v1":
            if not _is_integer(self.site_id) or cast(int, self.site_id) < 1:
                raise InputError(f"site_id must be a positive integer, not {self.site_id!r}")
            if self.time_pair is None:
                raise InputError("v1 names carry both acquisitions: time_pair is required")
        elif self.naming == "v2":
            if self.spacecraft not in S1_SPACECRAFTS:
                raise InputError(
                    f"spacecraft must be one of {S1_SPACECRAFTS}, not {self.spacecraft!r}"
                )
            if self.tile is None:
                raise InputError("v2 names are per S2 tile: tile is required")
            if self.kind == "COHE" and self.time_pair is None:
                raise InputError("coherence names carry both acquisitions: time_pair is required")
        else:
            raise InputError(f"naming must be 'v1' or 'v2', not {self.naming!r}")

    @property
    def filename(self) -> str:
        """The file name (with ``.tif``)."""
        orbit = f"{self.relative_orbit:03d}"
        first = compact_time(self.time)
        if self.naming == "v1":
            pair = compact_time(cast(datetime, self.time_pair))
            tile = f"_{self.tile}" if self.tile else ""
            return (
                f"SEN4CAP_L2A_S{self.site_id}_V{first}_{pair}_{self.polarisation}_{orbit}"
                f"_{self.kind}{tile}.tif"
            )
        if self.kind == "AMP":
            return f"{self.spacecraft}_L2_BCK_{first}_{self.polarisation}_{orbit}_{self.tile}.tif"
        pair = compact_time(cast(datetime, self.time_pair))
        return (
            f"{self.spacecraft}_L2_COH_{first}_{pair}_{self.polarisation}_{orbit}_{self.tile}.tif"
        )


def parse_s1_name(name: str) -> S1ProductName:
    """The fields of a Sen4CAP S1 L2 file name, v1 or v2 (a path is accepted)."""
    base = Path(name).name
    try:
        if (match := _V1.match(base)) is not None:
            return S1ProductName(
                kind=cast(S1Kind, match["kind"]),
                polarisation=cast(Polarisation, match["pol"]),
                relative_orbit=int(match["orbit"]),
                time=parse_compact_time(match["t1"]),
                time_pair=parse_compact_time(match["t2"]),
                tile=match["tile"],
                spacecraft=None,
                naming="v1",
                site_id=int(match["site"]),
            )
        if (match := _V2.match(base)) is not None:
            kind: S1Kind = "AMP" if match["kind"] == "BCK" else "COHE"
            if (kind == "AMP") != (match["t2"] is None):
                raise InputError(f"{name!r}: BCK names have one date and COH names two")
            return S1ProductName(
                kind=kind,
                polarisation=cast(Polarisation, match["pol"]),
                relative_orbit=int(match["orbit"]),
                time=parse_compact_time(match["t1"]),
                time_pair=None if match["t2"] is None else parse_compact_time(match["t2"]),
                tile=match["tile"],
                spacecraft=match["spacecraft"],
                naming="v2",
            )
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name!r} has an invalid field: {exc}") from exc
    raise InputError(
        f"{name!r} is not a Sen4CAP S1 L2 name such as "
        "SEN4CAP_L2A_S7_V20200404T165041_20200329T165122_VH_146_AMP.tif or "
        "S1A_L2_COH_20200114T070238_20200108T070156_VV_096_28RBR.tif"
    )


def s1_product_name(
    kind: S1Kind,
    *,
    site_id: int,
    polarisation: Polarisation,
    relative_orbit: int,
    time: datetime,
    time_pair: datetime,
    tile: str | None = None,
    naming: S1Naming = "v1",
    spacecraft: str = "S1A",
) -> S1ProductName:
    """The name of an S1 L2 product (times are cut to whole seconds, as names hold them)."""
    when = require_utc(time, "time").replace(microsecond=0)
    pair = require_utc(time_pair, "time_pair").replace(microsecond=0)
    if kind == "COHE" and not pair < when:
        raise InputError(
            "time must be the later acquisition of the coherence pair, time_pair the earlier "
            f"(got time={when.isoformat()}, time_pair={pair.isoformat()})"
        )
    if naming == "v2" and spacecraft not in S1_SPACECRAFTS:
        raise InputError(f"spacecraft must be one of {S1_SPACECRAFTS}, not {spacecraft!r}")
    return S1ProductName(
        kind=kind,
        polarisation=polarisation,
        relative_orbit=relative_orbit,
        time=when,
        time_pair=None if naming == "v2" and kind == "AMP" else pair,
        tile=tile,
        spacecraft=spacecraft if naming == "v2" else None,
        naming=naming,
        site_id=site_id if naming == "v1" else None,
    )


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


def _check_tile(tile: str) -> None:
    if s2_tile(tile).name != tile:
        raise InputError(f"tile must be an S2 tile name such as {s2_tile(tile).name}, not {tile!r}")


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
