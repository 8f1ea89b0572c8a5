"""Sentinel-2 L2A products in the ESA / Sen2Cor ``.SAFE`` layout (PSD 14.x "SAFE compact").

The writer lays out what a real Sen2Cor product holds, with the same names, so that capmon's
readers and GDAL's SENTINEL2 driver open it like a downloaded product::

    S2A_MSIL2A_20240503T105031_N0510_R051_T31UFS_20240503T165031.SAFE/
        MTD_MSIL2A.xml  manifest.safe
        GRANULE/L2A_T31UFS_A046207_20240503T105031/
            MTD_TL.xml
            IMG_DATA/R10m/T31UFS_20240503T105031_B04_10m.jp2 ...  (also R20m/, R60m/)
            QI_DATA/MSK_CLDPRB_20m.jp2 ...

Only a window of the tile is written (the Tile_Geocoding of MTD_TL.xml gives its size and
corner), which keeps synthetic products small. Reflectances are stored as uint16 digital
numbers: ``DN = round(reflectance * 10000) + 1000`` from processing baseline 04.00 on (the
metadata states ``BOA_ADD_OFFSET = -1000``), ``round(reflectance * 10000)`` before; 0 is no data.

``fmt="cog"`` is a capmon convenience, not an ESA format: the same layout and names with
Cloud Optimized GeoTIFF band files (``.tif``), quicker to write and read. capmon's readers
accept ``.jp2`` or ``.tif``; GDAL's SENTINEL2 driver only finds ``.jp2`` band files.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyproj
from affine import Affine

from capmon.errors import InputError
from capmon.grid import TILE_SIZE_M, s2_tile
from capmon.sources.naming import Sen2CorName, compact_time, require_utc
from capmon.synth.formats._common import (
    RasterFormat,
    block_mean,
    check_array,
    check_reflectance,
    fmt_float,
    iso_ms,
    nearest,
    staged_folder,
    write_raster,
    write_xml,
    xml_child,
)

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
"""The reflectance bands of an L2A product (L2A has no B10)."""

NATIVE_RESOLUTION = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
}

RESOLUTION_BANDS: dict[int, tuple[str, ...]] = {
    10: ("B02", "B03", "B04", "B08"),
    20: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12"),
    60: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12"),
}
"""The reflectance bands of each ``IMG_DATA/Rxxm`` folder: native ones and resampled copies."""

SCL_CLASSES = (
    "NODATA",
    "SATURATED_DEFECTIVE",
    "CAST_SHADOW",
    "CLOUD_SHADOW",
    "VEGETATION",
    "NOT_VEGETATED",
    "WATER",
    "UNCLASSIFIED",
    "CLOUD_MEDIUM_PROBA",
    "CLOUD_HIGH_PROBA",
    "THIN_CIRRUS",
    "SNOW_ICE",
)
"""Scene Classification classes, indexed by their code (``SC_`` + name in the metadata)."""

BOA_QUANTIFICATION = 10_000
BOA_ADD_OFFSET = -1_000
AOT_QUANTIFICATION = 1_000
WVP_QUANTIFICATION = 1_000
NODATA_DN = 0
SATURATED_DN = 65_535
SPACECRAFTS = ("S2A", "S2B", "S2C")

# The AOT and water vapour maps of synthetic products are flat: a clear continental
# atmosphere (AOT 0.1 at 550 nm, 1.5 cm of water vapour).
SYNTHETIC_AOT = 0.1
SYNTHETIC_WVP_CM = 1.5

# Spectral information written to MTD_MSIL2A.xml (bandId order of the PSD, B10 included):
# physical band, resolution, wavelength min / max / central (nm), solar irradiance (W/m²/µm).
_SPECTRAL = (
    ("B1", 60, 412, 456, 442.7, 1884.69),
    ("B2", 10, 456, 533, 492.7, 1959.66),
    ("B3", 10, 538, 583, 559.8, 1823.24),
    ("B4", 10, 646, 684, 664.6, 1512.06),
    ("B5", 20, 695, 714, 704.1, 1424.64),
    ("B6", 20, 731, 749, 740.5, 1287.61),
    ("B7", 20, 769, 797, 782.8, 1162.08),
    ("B8", 10, 760, 907, 832.8, 1041.63),
    ("B8A", 20, 837, 881, 864.7, 955.32),
    ("B9", 60, 932, 958, 945.1, 812.92),
    ("B10", 60, 1337, 1412, 1373.5, 367.15),
    ("B11", 20, 1539, 1682, 1613.7, 245.59),
    ("B12", 20, 2078, 2320, 2202.4, 85.25),
)

_NSSDC_ID = {"S2A": "2015-028A", "S2B": "2017-013A", "S2C": "2024-157A"}

# Absolute orbit numbers: one anchor per spacecraft (a real datatake), 143 orbits in the
# 10-day repeat cycle, and relative orbit = (absolute + offset) mod 143 + 1.
_ORBIT_SECONDS = 10 * 86_400 / 143
_ORBIT_ANCHORS = {
    "S2A": (datetime(2024, 9, 4, 22, 25, 41, tzinfo=UTC), 48_074),
    "S2B": (datetime(2025, 10, 15, 16, 21, 49, tzinfo=UTC), 44_968),
    "S2C": (datetime(2025, 6, 12, 11, 21, 31, tzinfo=UTC), 4_011),
}
_RELATIVE_ORBIT_OFFSET = {"S2A": 2, "S2B": -27, "S2C": 29}

_BASELINE = re.compile(r"^\d{2}\.\d{2}$")
_DEFAULT_PROCESSING_DELAY = timedelta(hours=6)


@dataclass(frozen=True)
class S2Acquisition:
    """One Sentinel-2 acquisition of a tile window, as the writers need it.

    ``ulx``/``uly`` is the upper-left corner of the written window in the tile's UTM CRS; it
    lies on the 60 m grid of the tile, and the window size is a multiple of 6 pixels of 10 m
    so that the 20 m and 60 m grids cover it exactly. ``generation_time`` is the processing
    time at the end of the product name (default: ``sensing_time`` + 6 hours).
    """

    tile: str
    spacecraft: str
    sensing_time: datetime
    processing_baseline: str
    relative_orbit: int
    epsg: int
    ulx: float
    uly: float
    width_10m: int
    height_10m: int
    sun_zenith: float
    sun_azimuth: float
    view_zenith: float
    view_azimuth: float
    cloud_cover: float
    generation_time: datetime | None = None

    def __post_init__(self) -> None:
        tile = s2_tile(self.tile)
        if tile.name != self.tile:
            raise InputError(
                f"tile must be an MGRS tile name such as {tile.name}, not {self.tile!r}"
            )
        if self.epsg != tile.epsg:
            raise InputError(
                f"epsg {self.epsg} is not the CRS of tile {self.tile} (EPSG:{tile.epsg})"
            )
        if self.spacecraft not in SPACECRAFTS:
            raise InputError(f"spacecraft must be one of {SPACECRAFTS}, not {self.spacecraft!r}")
        require_utc(self.sensing_time, "sensing_time")
        if self.generation_time is not None and require_utc(
            self.generation_time, "generation_time"
        ) < require_utc(self.sensing_time, "sensing_time"):
            raise InputError("generation_time must not be before sensing_time")
        if not isinstance(self.processing_baseline, str) or not _BASELINE.match(
            self.processing_baseline
        ):
            raise InputError(
                f"processing_baseline must look like '05.10', not {self.processing_baseline!r}"
            )
        if not _is_integer(self.relative_orbit) or not 1 <= self.relative_orbit <= 143:
            raise InputError(f"relative_orbit must be in 1..143, not {self.relative_orbit!r}")
        for name in ("width_10m", "height_10m"):
            size = getattr(self, name)
            if not _is_integer(size) or size <= 0 or size % 6:
                raise InputError(f"{name} must be a positive multiple of 6, not {size!r}")
        dx, dy = self.ulx - tile.ulx, tile.uly - self.uly
        if dx % 60 or dy % 60:
            raise InputError(
                f"the window corner ({self.ulx}, {self.uly}) is not on the 60 m grid of tile "
                f"{self.tile} (origin {tile.ulx}, {tile.uly})"
            )
        if dx < 0 or dy < 0 or dx + 10 * self.width_10m > TILE_SIZE_M:
            raise InputError(f"the window does not fit in tile {self.tile} (x)")
        if dy + 10 * self.height_10m > TILE_SIZE_M:
            raise InputError(f"the window does not fit in tile {self.tile} (y)")
        if not 0 <= self.sun_zenith < 90:
            raise InputError(f"sun_zenith must be in [0, 90) degrees, not {self.sun_zenith}")
        if not 0 <= self.view_zenith < 90:
            raise InputError(f"view_zenith must be in [0, 90) degrees, not {self.view_zenith}")
        for name in ("sun_azimuth", "view_azimuth"):
            if not 0 <= getattr(self, name) <= 360:
                raise InputError(f"{name} must be in [0, 360] degrees, not {getattr(self, name)}")
        if not 0 <= self.cloud_cover <= 100:
            raise InputError(f"cloud_cover must be a percentage, not {self.cloud_cover}")

    @property
    def sensing_utc(self) -> datetime:
        return self.sensing_time.astimezone(UTC)

    @property
    def generation_utc(self) -> datetime:
        if self.generation_time is not None:
            return self.generation_time.astimezone(UTC)
        return (self.sensing_utc + _DEFAULT_PROCESSING_DELAY).replace(microsecond=0)

    @property
    def absolute_orbit(self) -> int:
        return absolute_orbit(self.spacecraft, self.sensing_time, self.relative_orbit)

    def shape(self, resolution: int) -> tuple[int, int]:
        """(rows, columns) of the window at ``resolution`` metres (10, 20 or 60)."""
        factor = _factor(resolution)
        return (self.height_10m // factor, self.width_10m // factor)

    def transform(self, resolution: int) -> Affine:
        """The geotransform of the window at ``resolution`` metres."""
        _factor(resolution)
        return Affine(resolution, 0.0, self.ulx, 0.0, -resolution, self.uly)


def sen2cor_product_name(acq: S2Acquisition) -> str:
    """The ``.SAFE`` folder name of ``acq``'s L2A product."""
    return _name_of(acq).safe_name


def has_boa_offset(processing_baseline: str) -> bool:
    """Whether products of this baseline store reflectances with the +1000 offset (04.00 on)."""
    if not _BASELINE.match(processing_baseline):
        raise InputError(f"processing_baseline must look like '05.10', not {processing_baseline!r}")
    major, minor = (int(part) for part in processing_baseline.split("."))
    return (major, minor) >= (4, 0)


def reflectance_to_dn(
    reflectance: npt.NDArray[np.floating], processing_baseline: str
) -> npt.NDArray[np.uint16]:
    """Sen2Cor digital numbers of surface reflectances (NaN -> 0, the no-data value).

    ``DN = round(reflectance * 10000) + 1000`` from baseline 04.00 on, without the offset before;
    values are clipped to 1..65534 so that no valid pixel reads as no data or saturated.
    """
    offset = -BOA_ADD_OFFSET if has_boa_offset(processing_baseline) else 0
    valid = ~np.isnan(reflectance)
    scaled = np.rint(np.where(valid, reflectance, 0.0) * BOA_QUANTIFICATION) + offset
    dn: npt.NDArray[np.uint16] = np.clip(scaled, 1, SATURATED_DN - 1).astype(np.uint16)
    dn[~valid] = NODATA_DN
    return dn


def absolute_orbit(spacecraft: str, sensing_time: datetime, relative_orbit: int) -> int:
    """A plausible absolute orbit number for an acquisition of ``spacecraft`` at ``sensing_time``.

    The orbit count runs at 143 orbits per 10 days from a real datatake of the spacecraft; the
    result is the nearest number whose relative orbit is ``relative_orbit``.
    """
    if spacecraft not in _ORBIT_ANCHORS:
        raise InputError(f"spacecraft must be one of {SPACECRAFTS}, not {spacecraft!r}")
    if not 1 <= relative_orbit <= 143:
        raise InputError(f"relative_orbit must be in 1..143, not {relative_orbit}")
    anchor_time, anchor = _ORBIT_ANCHORS[spacecraft]
    elapsed = (require_utc(sensing_time, "sensing_time") - anchor_time).total_seconds()
    estimate = anchor + round(elapsed / _ORBIT_SECONDS)
    shift = (relative_orbit - _relative_orbit(spacecraft, estimate)) % 143
    if shift > 71:
        shift -= 143
    result = estimate + shift
    while result < 1:
        result += 143
    return result


def _relative_orbit(spacecraft: str, absolute: int) -> int:
    return (absolute + _RELATIVE_ORBIT_OFFSET[spacecraft]) % 143 + 1


def write_sen2cor_safe(
    out_dir: Path,
    acq: S2Acquisition,
    reflectance: Mapping[str, np.ndarray],
    scl: np.ndarray,
    *,
    fmt: Literal["jp2", "cog"] = "jp2",
    overwrite: bool = False,
) -> Path:
    """Write a Sen2Cor L2A product (.SAFE folder) into ``out_dir`` and return its path.

    ``reflectance[band]`` is the float surface reflectance (NaN = no data) of every band of
    ``S2_BANDS`` on the 10 m window grid (``height_10m`` x ``width_10m``); each band file is
    the block mean at its resolution (a block with any no-data pixel is no data). ``scl`` is
    the uint8 Scene Classification at 20 m (``height_10m/2`` x ``width_10m/2``); the 60 m one
    is its nearest-neighbour sample. AOT, WVP, TCI and the QI cloud / snow probabilities are
    derived (flat atmosphere, SCL classes) so that every file of a real product is present.
    """
    if not isinstance(acq, S2Acquisition):
        raise InputError(f"acq must be an S2Acquisition, not {type(acq).__name__}")
    if fmt not in ("jp2", "cog"):
        raise InputError(f"fmt must be 'jp2' or 'cog', not {fmt!r}")
    bands = _check_bands(reflectance, acq.shape(10))
    scl20 = _check_scl(scl, acq.shape(20))
    name = _name_of(acq)
    target = Path(out_dir) / name.safe_name
    layout = _Layout(acq, name, fmt)
    with staged_folder(target, overwrite=overwrite) as root:
        _write_images(root, layout, bands, scl20)
        write_xml(_product_metadata(layout, scl20), root / "MTD_MSIL2A.xml")
        write_xml(_tile_metadata(layout, scl20), root / layout.granule_dir / "MTD_TL.xml")
        write_xml(_manifest(layout, root), root / "manifest.safe")
    return target


# --------------------------------------------------------------------------------------------
# Names and layout


def _is_integer(value: object) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _factor(resolution: int) -> int:
    if resolution not in (10, 20, 60):
        raise InputError(f"Sentinel-2 resolution must be 10, 20 or 60, not {resolution}")
    return resolution // 10


def _name_of(acq: S2Acquisition) -> Sen2CorName:
    return Sen2CorName(
        spacecraft=acq.spacecraft,
        sensing_time=acq.sensing_utc.replace(microsecond=0),
        processing_baseline=acq.processing_baseline,
        relative_orbit=acq.relative_orbit,
        tile=acq.tile,
        generation_time=acq.generation_utc.replace(microsecond=0),
    )


class _Layout:
    """The names of every file of one product."""

    def __init__(self, acq: S2Acquisition, name: Sen2CorName, fmt: Literal["jp2", "cog"]) -> None:
        self.acq = acq
        self.name = name
        self.fmt: RasterFormat = fmt
        self.extension = ".jp2" if fmt == "jp2" else ".tif"
        self.absolute_orbit = acq.absolute_orbit
        sensing = compact_time(name.sensing_time)
        generation = compact_time(name.generation_time)
        baseline = acq.processing_baseline
        self.granule_dir = Path("GRANULE") / f"L2A_T{acq.tile}_A{self.absolute_orbit:06d}_{sensing}"
        self.file_prefix = f"T{acq.tile}_{sensing}"
        self.granule_id = (
            f"{acq.spacecraft}_OPER_MSI_L2A_TL_2APS_{generation}_A{self.absolute_orbit:06d}"
            f"_T{acq.tile}_N{baseline}"
        )
        self.datastrip_id = (
            f"{acq.spacecraft}_OPER_MSI_L2A_DS_2APS_{generation}_S{sensing}_N{baseline}"
        )
        self.datatake_id = f"G{acq.spacecraft}_{sensing}_{self.absolute_orbit:06d}_N{baseline}"

    def image(self, layer: str, resolution: int) -> Path:
        """``GRANULE/<granule>/IMG_DATA/R10m/T31UFS_<time>_B04_10m`` (no extension)."""
        return (
            self.granule_dir
            / "IMG_DATA"
            / f"R{resolution}m"
            / f"{self.file_prefix}_{layer}_{resolution}m"
        )

    def qi_mask(self, kind: str, resolution: int) -> Path:
        """``GRANULE/<granule>/QI_DATA/MSK_CLDPRB_20m`` (no extension)."""
        return self.granule_dir / "QI_DATA" / f"MSK_{kind}PRB_{resolution}m"

    def image_layers(self) -> list[tuple[int, str]]:
        """(resolution, layer) of every IMG_DATA file, in the order of real products."""
        layers: list[tuple[int, str]] = []
        for resolution in (10, 20, 60):
            extra = ("TCI", "AOT", "WVP") if resolution == 10 else ("TCI", "AOT", "WVP", "SCL")
            layers += [(resolution, layer) for layer in (*RESOLUTION_BANDS[resolution], *extra)]
        return layers


# --------------------------------------------------------------------------------------------
# Rasters


def _check_bands(
    reflectance: Mapping[str, np.ndarray], shape: tuple[int, int]
) -> dict[str, npt.NDArray[np.float64]]:
    if not isinstance(reflectance, Mapping):
        raise InputError(
            f"reflectance must map band names to arrays, not {type(reflectance).__name__}"
        )
    missing = [band for band in S2_BANDS if band not in reflectance]
    if missing:
        raise InputError(f"reflectance lacks the bands {missing} (an L2A product has {S2_BANDS})")
    unknown = sorted(set(reflectance) - set(S2_BANDS))
    if unknown:
        raise InputError(f"reflectance has unknown bands {unknown} (expected {S2_BANDS})")
    return {
        band: check_reflectance(f"reflectance[{band!r}]", reflectance[band], shape)
        for band in S2_BANDS
    }


def _check_scl(scl: np.ndarray, shape: tuple[int, int]) -> npt.NDArray[np.uint8]:
    checked = check_array("scl", scl, shape)
    if not np.issubdtype(checked.dtype, np.integer):
        raise InputError(f"scl must hold integer class codes, not {checked.dtype}")
    if checked.size and (checked.min() < 0 or checked.max() >= len(SCL_CLASSES)):
        raise InputError(f"scl codes must be in 0..{len(SCL_CLASSES) - 1}")
    return checked.astype(np.uint8, copy=False)


def _write_images(
    root: Path,
    layout: _Layout,
    bands: Mapping[str, npt.NDArray[np.float64]],
    scl20: npt.NDArray[np.uint8],
) -> None:
    acq = layout.acq
    baseline = acq.processing_baseline
    for resolution in (10, 20, 60):
        (root / layout.image("X", resolution).parent).mkdir(parents=True)
    (root / layout.qi_mask("CLD", 20).parent).mkdir()
    scl_by_res = {20: scl20, 60: nearest(scl20, 3)}

    def write(relative: Path, data: npt.NDArray[np.generic], resolution: int) -> None:
        write_raster(
            root / relative.with_suffix(layout.extension),
            data,
            transform=acq.transform(resolution),
            epsg=acq.epsg,
            fmt=layout.fmt,
            nodata=NODATA_DN,
        )

    for resolution in (10, 20, 60):
        factor = resolution // 10
        refl = {band: block_mean(bands[band], factor) for band in RESOLUTION_BANDS[resolution]}
        for band, values in refl.items():
            write(layout.image(band, resolution), reflectance_to_dn(values, baseline), resolution)
        valid = ~np.isnan(refl["B04"])
        write(layout.image("TCI", resolution), _true_colour(refl), resolution)
        write(
            layout.image("AOT", resolution),
            _flat(valid, SYNTHETIC_AOT * AOT_QUANTIFICATION),
            resolution,
        )
        write(
            layout.image("WVP", resolution),
            _flat(valid, SYNTHETIC_WVP_CM * WVP_QUANTIFICATION),
            resolution,
        )
        if resolution in scl_by_res:
            scl_res = scl_by_res[resolution]
            write(layout.image("SCL", resolution), scl_res, resolution)
            write(layout.qi_mask("CLD", resolution), _cloud_probability(scl_res), resolution)
            write(layout.qi_mask("SNW", resolution), _snow_probability(scl_res), resolution)


def _true_colour(refl: Mapping[str, npt.NDArray[np.float64]]) -> npt.NDArray[np.uint8]:
    """The TCI: B04, B03, B02 with reflectances 0..0.2 stretched to 1..255, 0 = no data."""
    rgb = np.stack([refl["B04"], refl["B03"], refl["B02"]])
    valid = ~np.isnan(rgb).any(axis=0)
    scaled = np.clip(np.rint(np.nan_to_num(rgb) * 255 / 0.2), 1, 255).astype(np.uint8)
    scaled[:, ~valid] = 0
    return scaled


def _flat(valid: npt.NDArray[np.bool_], value: float) -> npt.NDArray[np.uint16]:
    return np.where(valid, round(value), NODATA_DN).astype(np.uint16)


def _cloud_probability(scl: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Cloud probability (%) consistent with the SCL thresholds (high > 65 %, medium 35-65 %)."""
    probability = np.zeros(scl.shape, np.uint8)
    probability[scl == SCL_CLASSES.index("CLOUD_MEDIUM_PROBA")] = 50
    probability[scl == SCL_CLASSES.index("CLOUD_HIGH_PROBA")] = 90
    probability[scl == SCL_CLASSES.index("THIN_CIRRUS")] = 20
    return probability


def _snow_probability(scl: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.where(scl == SCL_CLASSES.index("SNOW_ICE"), 100, 0).astype(np.uint8)


def _class_percentages(scl: npt.NDArray[np.uint8]) -> tuple[float, dict[str, float]]:
    """(no-data percentage of all pixels, per-class percentages of the valid pixels)."""
    counts = np.bincount(scl.ravel(), minlength=len(SCL_CLASSES)).astype(float)
    total = counts.sum()
    valid = total - counts[0]
    nodata = 100.0 * counts[0] / total if total else 100.0
    shares = {
        name: (100.0 * counts[code] / valid if valid else 0.0)
        for code, name in enumerate(SCL_CLASSES)
    }
    return nodata, shares


# --------------------------------------------------------------------------------------------
# Metadata


def _footprint(acq: S2Acquisition) -> str:
    """EXT_POS_LIST of the window: lat lon pairs of its corners, closed."""
    west, north = acq.ulx, acq.uly
    east, south = west + 10 * acq.width_10m, north - 10 * acq.height_10m
    xs = [west, east, east, west, west]
    ys = [north, north, south, south, north]
    to_wgs84 = pyproj.Transformer.from_crs(acq.epsg, 4326, always_xy=True)
    lons, lats = to_wgs84.transform(xs, ys)
    return " ".join(f"{lat:.12f} {lon:.12f}" for lat, lon in zip(lats, lons, strict=True)) + " "


def _sun_distance_factor(when: datetime) -> float:
    """The Earth-Sun distance correction U of the reflectance conversion."""
    day = when.timetuple().tm_yday
    return 1.0 / (1.0 - 0.01673 * math.cos(0.0172 * (day - 4))) ** 2


def _product_metadata(layout: _Layout, scl20: npt.NDArray[np.uint8]) -> ET.Element:
    acq, name = layout.acq, layout.name
    offset = has_boa_offset(acq.processing_baseline)
    root = ET.Element(
        "n1:Level-2A_User_Product",
        {
            "xmlns:n1": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd",
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:schemaLocation": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd",
        },
    )
    general = xml_child(root, "n1:General_Info")
    info = xml_child(general, "Product_Info")
    xml_child(info, "PRODUCT_START_TIME", iso_ms(acq.sensing_utc))
    xml_child(info, "PRODUCT_STOP_TIME", iso_ms(acq.sensing_utc))
    xml_child(info, "PRODUCT_URI", name.safe_name)
    xml_child(info, "PROCESSING_LEVEL", "Level-2A")
    xml_child(info, "PRODUCT_TYPE", "S2MSI2A")
    xml_child(info, "PROCESSING_BASELINE", acq.processing_baseline)
    xml_child(info, "GENERATION_TIME", iso_ms(name.generation_time))
    xml_child(info, "PREVIEW_IMAGE_URL", "Not applicable")
    xml_child(info, "PREVIEW_GEO_INFO", "Not applicable")
    datatake = xml_child(info, "Datatake", attrs={"datatakeIdentifier": layout.datatake_id})
    xml_child(datatake, "SPACECRAFT_NAME", f"Sentinel-{acq.spacecraft[1:]}")
    xml_child(datatake, "DATATAKE_TYPE", "INS-NOBS")
    xml_child(datatake, "DATATAKE_SENSING_START", iso_ms(acq.sensing_utc))
    xml_child(datatake, "SENSING_ORBIT_NUMBER", acq.relative_orbit)
    xml_child(datatake, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    options = xml_child(info, "Query_Options", attrs={"completeSingleTile": "true"})
    xml_child(options, "PRODUCT_FORMAT", "SAFE_COMPACT")
    organisation = xml_child(info, "Product_Organisation")
    granule = xml_child(
        xml_child(organisation, "Granule_List"),
        "Granule",
        attrs={
            "datastripIdentifier": layout.datastrip_id,
            "granuleIdentifier": layout.granule_id,
            "imageFormat": "JPEG2000" if layout.fmt == "jp2" else "GEOTIFF",
        },
    )
    for resolution, layer in layout.image_layers():
        xml_child(granule, "IMAGE_FILE", layout.image(layer, resolution).as_posix())

    characteristics = xml_child(general, "Product_Image_Characteristics")
    for text, index in (("NODATA", NODATA_DN), ("SATURATED", SATURATED_DN)):
        special = xml_child(characteristics, "Special_Values")
        xml_child(special, "SPECIAL_VALUE_TEXT", text)
        xml_child(special, "SPECIAL_VALUE_INDEX", index)
    order = xml_child(characteristics, "Image_Display_Order")
    for channel, band_id in (("RED_CHANNEL", 3), ("GREEN_CHANNEL", 2), ("BLUE_CHANNEL", 1)):
        xml_child(order, channel, band_id)
    if offset:
        quantification = xml_child(characteristics, "QUANTIFICATION_VALUES_LIST")
        xml_child(quantification, "BOA_QUANTIFICATION_VALUE", BOA_QUANTIFICATION, {"unit": "none"})
        xml_child(
            quantification, "AOT_QUANTIFICATION_VALUE", f"{AOT_QUANTIFICATION}.0", {"unit": "none"}
        )
        xml_child(
            quantification, "WVP_QUANTIFICATION_VALUE", f"{WVP_QUANTIFICATION}.0", {"unit": "cm"}
        )
        offsets = xml_child(characteristics, "BOA_ADD_OFFSET_VALUES_LIST")
        for band_id in range(len(_SPECTRAL)):
            xml_child(offsets, "BOA_ADD_OFFSET", BOA_ADD_OFFSET, {"band_id": band_id})
    else:
        quantification = xml_child(characteristics, "L1C_L2A_Quantification_Values_List")
        xml_child(quantification, "L1C_TOA_QUANTIFICATION_VALUE", 10_000, {"unit": "none"})
        xml_child(
            quantification,
            "L2A_BOA_QUANTIFICATION_VALUE",
            f"{BOA_QUANTIFICATION}.0",
            {"unit": "none"},
        )
        xml_child(
            quantification,
            "L2A_AOT_QUANTIFICATION_VALUE",
            f"{AOT_QUANTIFICATION}.0",
            {"unit": "none"},
        )
        xml_child(
            quantification,
            "L2A_WVP_QUANTIFICATION_VALUE",
            f"{WVP_QUANTIFICATION}.0",
            {"unit": "cm"},
        )
    conversion = xml_child(characteristics, "Reflectance_Conversion")
    xml_child(conversion, "U", repr(_sun_distance_factor(acq.sensing_utc)))
    irradiances = xml_child(conversion, "Solar_Irradiance_List")
    for band_id, (*_, irradiance) in enumerate(_SPECTRAL):
        xml_child(
            irradiances, "SOLAR_IRRADIANCE", irradiance, {"bandId": band_id, "unit": "W/m²/µm"}
        )
    spectral = xml_child(characteristics, "Spectral_Information_List")
    for band_id, (physical, resolution, low, high, central, _) in enumerate(_SPECTRAL):
        band = xml_child(
            spectral, "Spectral_Information", attrs={"bandId": band_id, "physicalBand": physical}
        )
        xml_child(band, "RESOLUTION", resolution)
        wavelength = xml_child(band, "Wavelength")
        xml_child(wavelength, "MIN", low, {"unit": "nm"})
        xml_child(wavelength, "MAX", high, {"unit": "nm"})
        xml_child(wavelength, "CENTRAL", central, {"unit": "nm"})
    xml_child(characteristics, "REFERENCE_BAND", 3)
    classes = xml_child(characteristics, "Scene_Classification_List")
    for code, class_name in enumerate(SCL_CLASSES):
        entry = xml_child(classes, "Scene_Classification_ID")
        xml_child(entry, "SCENE_CLASSIFICATION_TEXT", f"SC_{class_name}")
        xml_child(entry, "SCENE_CLASSIFICATION_INDEX", code)

    geometric = xml_child(root, "n1:Geometric_Info")
    footprint = xml_child(geometric, "Product_Footprint")
    global_footprint = xml_child(xml_child(footprint, "Product_Footprint"), "Global_Footprint")
    xml_child(global_footprint, "EXT_POS_LIST", _footprint(acq))
    xml_child(footprint, "RASTER_CS_TYPE", "POINT")
    xml_child(footprint, "PIXEL_ORIGIN", 1)
    crs = xml_child(geometric, "Coordinate_Reference_System")
    xml_child(crs, "GEO_TABLES", "EPSG", {"version": "1"})
    xml_child(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")

    auxiliary = xml_child(root, "n1:Auxiliary_Data_Info")
    xml_child(auxiliary, "PRODUCTION_DEM_TYPE", "None (capmon synthetic product)")

    quality = xml_child(root, "n1:Quality_Indicators_Info")
    xml_child(quality, "Cloud_Coverage_Assessment", fmt_float(acq.cloud_cover))
    technical = xml_child(quality, "Technical_Quality_Assessment")
    xml_child(technical, "DEGRADED_ANC_DATA_PERCENTAGE", "0.0")
    xml_child(technical, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    checks = xml_child(quality, "Quality_Control_Checks")
    inspections = xml_child(checks, "Quality_Inspections")
    for check in (
        "FORMAT_CORRECTNESS",
        "GENERAL_QUALITY",
        "GEOMETRIC_QUALITY",
        "L2A_QUALITY",
        "RADIOMETRIC_QUALITY",
        "SENSOR_QUALITY",
    ):
        xml_child(inspections, "quality_check", "PASSED", {"checkType": check})
    xml_child(checks, "Failed_Inspections")
    _image_content_qi(xml_child(quality, "Image_Content_QI"), acq, scl20)
    return root


def _image_content_qi(parent: ET.Element, acq: S2Acquisition, scl20: npt.NDArray[np.uint8]) -> None:
    nodata, shares = _class_percentages(scl20)
    clouds = shares["CLOUD_MEDIUM_PROBA"] + shares["CLOUD_HIGH_PROBA"] + shares["THIN_CIRRUS"]
    values = (
        ("CLOUDY_PIXEL_OVER_LAND_PERCENTAGE", clouds),
        ("NODATA_PIXEL_PERCENTAGE", nodata),
        ("SATURATED_DEFECTIVE_PIXEL_PERCENTAGE", shares["SATURATED_DEFECTIVE"]),
        ("CAST_SHADOW_PERCENTAGE", shares["CAST_SHADOW"]),
        ("CLOUD_SHADOW_PERCENTAGE", shares["CLOUD_SHADOW"]),
        ("VEGETATION_PERCENTAGE", shares["VEGETATION"]),
        ("NOT_VEGETATED_PERCENTAGE", shares["NOT_VEGETATED"]),
        ("WATER_PERCENTAGE", shares["WATER"]),
        ("UNCLASSIFIED_PERCENTAGE", shares["UNCLASSIFIED"]),
        ("MEDIUM_PROBA_CLOUDS_PERCENTAGE", shares["CLOUD_MEDIUM_PROBA"]),
        ("HIGH_PROBA_CLOUDS_PERCENTAGE", shares["CLOUD_HIGH_PROBA"]),
        ("THIN_CIRRUS_PERCENTAGE", shares["THIN_CIRRUS"]),
        ("SNOW_ICE_PERCENTAGE", shares["SNOW_ICE"]),
    )
    for tag, value in values:
        xml_child(parent, tag, fmt_float(value))
    xml_child(parent, "AOT_RETRIEVAL_METHOD", "SYNTHETIC")
    xml_child(parent, "GRANULE_MEAN_AOT", fmt_float(SYNTHETIC_AOT))
    xml_child(parent, "GRANULE_MEAN_WV", fmt_float(SYNTHETIC_WVP_CM))


def _angle_grid(parent: ET.Element, tag: str, value: float, acq: S2Acquisition) -> None:
    """A 5 km angle grid over the window (flat: synthetic scenes use one angle per scene)."""
    step = 5000
    columns = math.ceil(10 * acq.width_10m / step) + 1
    rows = math.ceil(10 * acq.height_10m / step) + 1
    grid = xml_child(parent, tag)
    xml_child(grid, "COL_STEP", step, {"unit": "m"})
    xml_child(grid, "ROW_STEP", step, {"unit": "m"})
    values = xml_child(grid, "Values_List")
    row = " ".join([fmt_float(value)] * columns)
    for _ in range(rows):
        xml_child(values, "VALUES", row)


def _tile_metadata(layout: _Layout, scl20: npt.NDArray[np.uint8]) -> ET.Element:
    acq = layout.acq
    root = ET.Element(
        "n1:Level-2A_Tile_ID",
        {
            "xmlns:n1": "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd",
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:schemaLocation": "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd",
        },
    )
    general = xml_child(root, "n1:General_Info")
    xml_child(general, "TILE_ID", layout.granule_id, {"metadataLevel": "Brief"})
    xml_child(general, "DATASTRIP_ID", layout.datastrip_id, {"metadataLevel": "Standard"})
    xml_child(general, "DOWNLINK_PRIORITY", "NOMINAL", {"metadataLevel": "Standard"})
    xml_child(general, "SENSING_TIME", iso_ms(acq.sensing_utc), {"metadataLevel": "Standard"})
    archiving = xml_child(general, "Archiving_Info", attrs={"metadataLevel": "Expertise"})
    xml_child(archiving, "ARCHIVING_CENTRE", "2APS")
    xml_child(archiving, "ARCHIVING_TIME", iso_ms(layout.name.generation_time))

    geometric = xml_child(root, "n1:Geometric_Info")
    geocoding = xml_child(geometric, "Tile_Geocoding", attrs={"metadataLevel": "Brief"})
    zone = acq.epsg % 100
    hemisphere = "N" if acq.epsg // 100 == 326 else "S"
    xml_child(geocoding, "HORIZONTAL_CS_NAME", f"WGS84 / UTM zone {zone}{hemisphere}")
    xml_child(geocoding, "HORIZONTAL_CS_CODE", f"EPSG:{acq.epsg}")
    for resolution in (10, 20, 60):
        rows, columns = acq.shape(resolution)
        size = xml_child(geocoding, "Size", attrs={"resolution": resolution})
        xml_child(size, "NROWS", rows)
        xml_child(size, "NCOLS", columns)
    for resolution in (10, 20, 60):
        position = xml_child(geocoding, "Geoposition", attrs={"resolution": resolution})
        xml_child(position, "ULX", fmt_float(acq.ulx))
        xml_child(position, "ULY", fmt_float(acq.uly))
        xml_child(position, "XDIM", resolution)
        xml_child(position, "YDIM", -resolution)
    angles = xml_child(geometric, "Tile_Angles", attrs={"metadataLevel": "Standard"})
    sun_grid = xml_child(angles, "Sun_Angles_Grid")
    _angle_grid(sun_grid, "Zenith", acq.sun_zenith, acq)
    _angle_grid(sun_grid, "Azimuth", acq.sun_azimuth, acq)
    mean_sun = xml_child(angles, "Mean_Sun_Angle")
    xml_child(mean_sun, "ZENITH_ANGLE", fmt_float(acq.sun_zenith), {"unit": "deg"})
    xml_child(mean_sun, "AZIMUTH_ANGLE", fmt_float(acq.sun_azimuth), {"unit": "deg"})
    for band_id in range(len(_SPECTRAL)):
        view_grid = xml_child(
            angles, "Viewing_Incidence_Angles_Grids", attrs={"bandId": band_id, "detectorId": 1}
        )
        _angle_grid(view_grid, "Zenith", acq.view_zenith, acq)
        _angle_grid(view_grid, "Azimuth", acq.view_azimuth, acq)
    mean_views = xml_child(angles, "Mean_Viewing_Incidence_Angle_List")
    for band_id in range(len(_SPECTRAL)):
        mean_view = xml_child(mean_views, "Mean_Viewing_Incidence_Angle", attrs={"bandId": band_id})
        xml_child(mean_view, "ZENITH_ANGLE", fmt_float(acq.view_zenith), {"unit": "deg"})
        xml_child(mean_view, "AZIMUTH_ANGLE", fmt_float(acq.view_azimuth), {"unit": "deg"})

    quality = xml_child(root, "n1:Quality_Indicators_Info", attrs={"metadataLevel": "Standard"})
    content = xml_child(quality, "Image_Content_QI")
    xml_child(content, "CLOUDY_PIXEL_PERCENTAGE", fmt_float(acq.cloud_cover))
    _image_content_qi(content, acq, scl20)
    pixel_qi = xml_child(quality, "Pixel_Level_QI", attrs={"geometry": "FULL_RESOLUTION"})
    for kind in ("CLD", "SNW"):
        for resolution in (20, 60):
            xml_child(
                pixel_qi,
                "MASK_FILENAME",
                layout.qi_mask(kind, resolution).with_suffix(layout.extension).as_posix(),
                {"type": f"MSK_{kind}PRB", "resolution": resolution},
            )
    return root


def _manifest(layout: _Layout, root: Path) -> ET.Element:
    """A minimal SAFE manifest: platform, acquisition period and every file with its MD5."""
    acq = layout.acq
    manifest = ET.Element(
        "xfdu:XFDU",
        {
            "xmlns:xfdu": "urn:ccsds:schema:xfdu:1",
            "xmlns:safe": "http://www.esa.int/safe/sentinel/1.1",
            "version": "esa/safe/sentinel/1.1/sentinel-2/msi/archive_l2a_user_product",
        },
    )
    package = xml_child(manifest, "informationPackageMap")
    unit = xml_child(
        package,
        "xfdu:contentUnit",
        attrs={
            "unitType": "Product_Level-2A",
            "textInfo": "SENTINEL-2 MSI Level-2A User Product",
            "dmdID": "acquisitionPeriod platform",
        },
    )
    metadata = xml_child(manifest, "metadataSection")
    period = _metadata_object(metadata, "acquisitionPeriod", "Acquisition Period")
    acquisition = xml_child(period, "safe:acquisitionPeriod")
    xml_child(acquisition, "safe:startTime", iso_ms(acq.sensing_utc))
    platform_wrap = _metadata_object(metadata, "platform", "Platform Description")
    platform = xml_child(platform_wrap, "safe:platform")
    xml_child(platform, "safe:nssdcIdentifier", _NSSDC_ID[acq.spacecraft])
    xml_child(platform, "safe:familyName", "SENTINEL")
    xml_child(platform, "safe:number", acq.spacecraft[1:])
    instrument = xml_child(platform, "safe:instrument")
    xml_child(instrument, "safe:familyName", "Multi-Spectral Instrument", {"abbreviation": "MSI"})
    objects = xml_child(manifest, "dataObjectSection")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.safe")
    for index, path in enumerate(files):
        relative = path.relative_to(root).as_posix()
        object_id = f"DataObject_{index:04d}"
        xml_child(unit, "dataObjectPointer", attrs={"dataObjectID": object_id})
        data_object = xml_child(objects, "dataObject", attrs={"ID": object_id})
        stream = xml_child(
            data_object,
            "byteStream",
            attrs={"mimeType": "application/octet-stream", "size": path.stat().st_size},
        )
        xml_child(stream, "fileLocation", attrs={"locatorType": "URL", "href": f"./{relative}"})
        xml_child(stream, "checksum", _md5(path), {"checksumName": "MD5"})
    return manifest


def _metadata_object(section: ET.Element, object_id: str, text: str) -> ET.Element:
    wrapper = xml_child(
        section,
        "metadataObject",
        attrs={"ID": object_id, "classification": "DESCRIPTION", "category": "DMD"},
    )
    wrap = xml_child(
        wrapper,
        "metadataWrap",
        attrs={"mimeType": "text/xml", "vocabularyName": "SAFE", "textInfo": text},
    )
    return xml_child(wrap, "xmlData")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
