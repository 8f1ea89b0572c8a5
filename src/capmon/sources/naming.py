"""Product names: the fields of Sen2Cor, MAJA / THEIA and Sen4CAP Sentinel-1 names, both ways.

The readers parse names with these functions and the synthetic generator (``capmon.synth``)
writes its products under names built by the same classes, so that a name the generator
writes is by construction one the readers accept. Times in names are UTC; a name's fields are
checked (dates that exist, relative orbits in range, MGRS tile names) and a bad name is an
:class:`~capmon.errors.InputError` that quotes it.

* Sen2Cor L2A ``S2A_MSIL2A_20240503T105031_N0510_R051_T31UFS_20240503T165031.SAFE``;
* MAJA / THEIA L2A ``SENTINEL2A_20240503-105031-024_L2A_T31UFS_C_V3-1``;
* Sen4CAP S1 L2 (regexes of Sen4CAP's ``s1l2producthelper.cpp`` / ``CommonFunctions.h``):
  v1 ``SEN4CAP_L2A_S<site>_V<t1>_<t2>_<VV|VH>_<orbit>_<AMP|COHE>[_<tile>].tif`` where ``t1`` is
  the product's acquisition (the later one of a coherence pair) and ``t2`` the other one, the S2
  tile appended when the product was cut by tile; v2 ``S1A_L2_BCK_<t>_<pol>_<orbit>_<tile>.tif``
  and ``S1A_L2_COH_<t1>_<t2>_<pol>_<orbit>_<tile>.tif`` (always per S2 tile, later date first).
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

from capmon.errors import InputError
from capmon.grid import s2_tile

S1Kind = Literal["AMP", "COHE"]
Polarisation = Literal["VV", "VH"]
S1Naming = Literal["v1", "v2"]

S1_SPACECRAFTS = ("S1A", "S1B", "S1C", "S1D")
MAJA_PRODUCT_VERSION = "3-1"
"""The THEIA product version capmon's generator writes (``_V3-1``)."""

_SAFE_NAME = re.compile(
    r"^(?P<spacecraft>S2[A-D])_MSIL2A_(?P<sensing>\d{8}T\d{6})_N(?P<baseline>\d{4})"
    r"_R(?P<orbit>\d{3})_T(?P<tile>\d{2}[C-X][A-Z]{2})_(?P<generation>\d{8}T\d{6})(?:\.SAFE)?$"
)
_SAFE_EXAMPLE = "S2A_MSIL2A_20240503T105031_N0510_R051_T31UFS_20240503T161210.SAFE"
_MAJA_NAME = re.compile(
    r"^SENTINEL2(?P<spacecraft>[A-D])_(?P<date>\d{8})-(?P<time>\d{6})-(?P<ms>\d{3})_L2A"
    r"_T(?P<tile>\d{2}[C-X][A-Z]{2})_(?P<kind>[A-Z])_V(?P<version>\d+-\d+)$"
)
_TIME = r"\d{8}T\d{6}"
_TILE = r"\d{2}[C-X][A-Z]{2}"
_S1_V1 = re.compile(
    rf"^SEN4CAP_L2A_S(?P<site>\d+)_V(?P<t1>{_TIME})_(?P<t2>{_TIME})_(?P<pol>VV|VH)"
    rf"_(?P<orbit>\d{{3}})_(?P<kind>AMP|COHE)(?:_(?P<tile>{_TILE}))?(?:\.tif)?$"
)
_S1_V2 = re.compile(
    rf"^(?P<spacecraft>S1[A-D])_L2_(?P<kind>BCK|COH)_(?P<t1>{_TIME})(?:_(?P<t2>{_TIME}))?"
    rf"_(?P<pol>VV|VH)_(?P<orbit>\d{{3}})_(?P<tile>{_TILE})(?:\.tif)?$"
)


# --------------------------------------------------------------------------------------------
# Times


def require_utc(value: object, name: str) -> datetime:
    """``value`` as an aware UTC datetime; naive datetimes are refused (their zone is unknown)."""
    if not isinstance(value, datetime):
        raise InputError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"{name} must be timezone-aware (UTC), not naive: {value.isoformat()}")
    return value.astimezone(UTC)


def compact_time(value: datetime) -> str:
    """``20240503T105031`` (UTC, whole seconds), as in product names."""
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def parse_compact_time(text: str) -> datetime:
    """The UTC datetime of a ``20240503T105031`` name field."""
    return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# Sen2Cor


@dataclass(frozen=True)
class Sen2CorName:
    """The fields of a Sen2Cor product name (``S2A_MSIL2A_..._N0510_R051_T31UFS_....SAFE``)."""

    spacecraft: str
    sensing_time: datetime
    processing_baseline: str
    relative_orbit: int
    tile: str
    generation_time: datetime

    @property
    def safe_name(self) -> str:
        """The ``.SAFE`` folder name."""
        return (
            f"{self.spacecraft}_MSIL2A_{compact_time(self.sensing_time)}"
            f"_N{self.processing_baseline.replace('.', '')}_R{self.relative_orbit:03d}"
            f"_T{self.tile}_{compact_time(self.generation_time)}.SAFE"
        )


def parse_sen2cor_name(name: str) -> Sen2CorName:
    """The fields of a Sen2Cor L2A product name (the ``.SAFE`` suffix and a path are optional)."""
    match = _SAFE_NAME.match(Path(name).name)
    if match is None:
        raise InputError(f"{name!r} is not a Sentinel-2 L2A product name such as {_SAFE_EXAMPLE}")
    baseline = match["baseline"]
    orbit = int(match["orbit"])
    if not 1 <= orbit <= 143:
        raise InputError(f"{name!r} has a relative orbit out of 1..143")
    try:
        sensing = parse_compact_time(match["sensing"])
        generation = parse_compact_time(match["generation"])
    except ValueError as exc:
        raise InputError(f"{name!r} has an invalid date: {exc}") from exc
    return Sen2CorName(
        spacecraft=match["spacecraft"],
        sensing_time=sensing,
        processing_baseline=f"{baseline[:2]}.{baseline[2:]}",
        relative_orbit=orbit,
        tile=match["tile"],
        generation_time=generation,
    )


# --------------------------------------------------------------------------------------------
# MAJA / THEIA


@dataclass(frozen=True)
class MajaName:
    """The fields of a THEIA L2A name (``SENTINEL2A_20240503-105031-024_L2A_T31UFS_C_V3-1``)."""

    spacecraft: str
    acquisition_time: datetime
    tile: str
    kind: str = "C"
    version: str = MAJA_PRODUCT_VERSION

    @property
    def product_name(self) -> str:
        utc = self.acquisition_time.astimezone(UTC)
        stamp = utc.strftime("%Y%m%d-%H%M%S") + f"-{utc.microsecond // 1000:03d}"
        return (
            f"SENTINEL2{self.spacecraft[2:]}_{stamp}_L2A_T{self.tile}_{self.kind}_V{self.version}"
        )


def parse_maja_name(name: str) -> MajaName:
    """The fields of a THEIA L2A product name (a path is accepted)."""
    match = _MAJA_NAME.match(Path(name).name)
    if match is None:
        raise InputError(
            f"{name!r} is not a THEIA L2A product name such as "
            "SENTINEL2A_20240503-105031-024_L2A_T31UFS_C_V3-1"
        )
    try:
        when = datetime.strptime(f"{match['date']}{match['time']}", "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise InputError(f"{name!r} has an invalid date: {exc}") from exc
    return MajaName(
        spacecraft=f"S2{match['spacecraft']}",
        acquisition_time=when.replace(microsecond=1000 * int(match["ms"]), tzinfo=UTC),
        tile=match["tile"],
        kind=match["kind"],
        version=match["version"],
    )


# --------------------------------------------------------------------------------------------
# Sen4CAP Sentinel-1 L2


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
        if (match := _S1_V1.match(base)) is not None:
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
        if (match := _S1_V2.match(base)) is not None:
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


def _is_integer(value: object) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_tile(tile: str) -> None:
    if s2_tile(tile).name != tile:
        raise InputError(f"tile must be an S2 tile name such as {s2_tile(tile).name}, not {tile!r}")
