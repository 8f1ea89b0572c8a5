"""ASF HyP3 Sentinel-1 products: RTC backscatter and InSAR coherence GeoTIFFs.

HyP3 delivers a zip holding one folder whose files share the product's base name (HyP3 product
guides and ``hyp3-gamma`` README templates):

* RTC (GAMMA) ``S1x_yy_aaaaaaaaTbbbbbb_ppo_RTCzz_u_defklm_ssss``: ``S1x`` mission, ``yy`` beam
  mode, start time, ``pp`` dual/single pol and primary pol (``DV``, ``SV``...), ``o`` orbit type
  (P/R/O), ``zz`` pixel spacing, ``u`` software (G = GAMMA), ``d`` radiometry (``g`` γ⁰, ``s``
  σ⁰), ``e`` scale (``p`` power, ``d`` dB, ``a`` amplitude), ``f`` water mask (u/w), ``k``
  speckle filter (n/f), ``l`` area (e/c), ``m`` DEM matching (d/m), ``ssss`` product id. One
  GeoTIFF per polarisation: ``<base>_VV.tif``, ``<base>_VH.tif``; ``<base>.README.md.txt``
  names the source granule (its absolute orbit gives the relative orbit).
* InSAR (GAMMA) ``S1xy_aaaaaaaaTbbbbbb_ggggggggThhhhhh_pponnn_INTzz_u_def_ssss`` (reference and
  secondary start times, polarisation, orbit type, days between them, pixel spacing...) and
  InSAR burst (ISCE2) ``S1_<burst>_<IWn>_<ref date>_<sec date>_<pol>_INTzz_<ssss>``; the
  coherence is ``<base>_corr.tif`` (0..1).

Each polarisation file is one capmon product named after the file (``<base>_VV``): RTC files
are ``s1_amp`` products (values in ``info.properties["amplitude_convention"]``: ``gamma0_linear``
for the default γ⁰ power, ``gamma0_db``, ``sigma0_linear``...; amplitude files are squared to
power on read), coherence files ``s1_coh`` products dated by the later acquisition. HyP3 names
carry no pass direction: it is taken from the local solar time of the acquisition
(``properties["orbit_direction_from"] = "local_time"``). Unzip the HyP3 zips first (``capmon
acquire`` does).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capmon.errors import InputError
from capmon.sources._sar_file import (
    SarFileReader,
    backscatter_properties,
    direction_from_local_time,
    relative_orbit,
    stored_convention,
)
from capmon.sources.model import ProductInfo, ProductType, sensor_code
from capmon.sources.sentinel1 import COHERENCE_CONVENTION

_TIFF = r"\.tiff?$"
RTC_NAME = re.compile(
    r"^(?P<base>(?P<mission>S1[A-D])_(?P<beam>IW|EW|S[1-6])_(?P<time>\d{8}T\d{6})_"
    r"(?P<pols>[DS][VH])(?P<orbit_type>[PRO])_RTC(?P<spacing>\d+)_(?P<software>[A-Z])_"
    r"(?P<radiometry>[gs])(?P<scale>[pda])(?P<mask>[uw])(?P<filter>[nf])(?P<area>[ec])"
    r"(?P<matching>[dm])_(?P<id>[0-9A-Za-z]{4}))_(?P<pol>VV|VH|HH|HV)" + _TIFF,
    re.IGNORECASE,
)
INSAR_NAME = re.compile(
    r"^(?P<base>S1(?P<ref_unit>[A-D])(?P<sec_unit>[A-D])_(?P<ref>\d{8}T\d{6})_"
    r"(?P<sec>\d{8}T\d{6})_(?P<pol>VV|HH|VH|HV)(?P<orbit_type>[PRO])(?P<days>\d{3})_"
    r"INT(?P<spacing>\d+)_(?P<software>[A-Z])_(?P<mask>[uw])(?P<area>[ec])(?P<swath>[123F])_"
    r"(?P<id>[0-9A-Za-z]{4}))_corr" + _TIFF,
    re.IGNORECASE,
)
BURST_NAME = re.compile(
    r"^(?P<base>S1_(?P<burst>\d{6})_(?P<swath>IW[123])_(?P<ref>\d{8})_(?P<sec>\d{8})_"
    r"(?P<pol>VV|VH|HH|HV)_INT(?P<spacing>\d+)_(?P<id>[0-9A-Za-z]{4}))_corr" + _TIFF,
    re.IGNORECASE,
)
_GRANULE = re.compile(
    r"\b(?P<unit>S1[A-D])_[A-Z0-9]{2}_[A-Z0-9_]{4}_[A-Z0-9]{4}_\d{8}T\d{6}_\d{8}T\d{6}_"
    r"(?P<absolute>\d{6})_[0-9A-F]{6}_[0-9A-F]{4}\b"
)
_RADIOMETRY = {"g": "gamma0", "s": "sigma0"}
_SCALE = {"p": "power", "d": "db", "a": "amplitude"}


def hyp3_kind(path: Path) -> str | None:
    """``"rtc"`` or ``"coherence"`` for a HyP3 GeoTIFF capmon reads, else None."""
    if not path.is_file():
        return None
    name = path.name
    if RTC_NAME.match(name):
        return "rtc"
    if INSAR_NAME.match(name) or BURST_NAME.match(name):
        return "coherence"
    return None


def open_hyp3(path: Path) -> SarFileReader:
    """The reader of a HyP3 RTC polarisation file or InSAR coherence file."""
    kind = hyp3_kind(path)
    if kind == "rtc":
        return Hyp3RtcReader(path)
    if kind == "coherence":
        return Hyp3CoherenceReader(path)
    raise InputError(f"{path} is not a HyP3 RTC or InSAR coherence GeoTIFF")


def _time(text: str) -> datetime:
    layout = "%Y%m%dT%H%M%S" if "T" in text.upper() else "%Y%m%d"
    try:
        return datetime.strptime(text.upper(), layout).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InputError(f"invalid acquisition time {text!r} in a HyP3 name") from exc


def _readme_granules(folder: Path, base: str) -> list[tuple[str, int]]:
    """(unit, absolute orbit) of the granules the product's README names, in order."""
    readme = folder / f"{base}.README.md.txt"
    if not readme.is_file():
        return []
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [(m["unit"], int(m["absolute"])) for m in _GRANULE.finditer(text)]


class Hyp3RtcReader(SarFileReader):
    """One polarisation of a HyP3 RTC product (γ⁰ or σ⁰; power, dB or amplitude)."""

    def __init__(self, path: Path) -> None:
        match = RTC_NAME.match(path.name)
        if match is None:
            raise InputError(f"{path.name} is not a HyP3 RTC polarisation file name")
        radiometry = _RADIOMETRY[match["radiometry"].lower()]
        scale = _SCALE[match["scale"].lower()]
        _convention, squared = stored_convention(radiometry, scale)
        product = path.name[: -len(path.suffix)]
        polarisation = match["pol"].upper()
        super().__init__(path, product, polarisation, linear=scale != "db", squared=squared)
        sensor = sensor_code(match["mission"].upper())
        acquired_at = _time(match["time"])
        footprint = self.native_footprint
        granules = _readme_granules(path.parent, match["base"])
        absolute = granules[0][1] if granules else None
        properties: dict[str, Any] = {
            "format": "HYP3_RTC",
            **backscatter_properties(radiometry, scale),
            "pixel_spacing": float(match["spacing"]),
            "hyp3_product_id": match["id"].upper(),
            "orbit_type": match["orbit_type"].upper(),
            "water_masked": match["mask"].lower() == "w",
            "speckle_filtered": match["filter"].lower() == "f",
            "dem_matching": match["matching"].lower() == "m",
            "orbit_direction_from": "local_time",
        }
        if absolute is not None:
            properties["absolute_orbit"] = absolute
        self._describe(
            ProductInfo(
                name=product,
                product_type=ProductType.S1_AMP,
                sensor=sensor,
                acquired_at=acquired_at,
                acquired_first_at=None,
                tile=None,
                relative_orbit=relative_orbit(sensor, absolute),
                orbit_direction=direction_from_local_time(acquired_at, footprint),
                processing_baseline=None,
                footprint=footprint,
                path=path,
                polarisation=polarisation,
                properties=properties,
            )
        )


class Hyp3CoherenceReader(SarFileReader):
    """The coherence (0..1) of a HyP3 InSAR product, dated by the later acquisition."""

    def __init__(self, path: Path) -> None:
        match = INSAR_NAME.match(path.name) or BURST_NAME.match(path.name)
        if match is None:
            raise InputError(f"{path.name} is not a HyP3 InSAR coherence file name")
        product = path.name[: -len(path.suffix)]
        polarisation = match["pol"].upper()
        super().__init__(path, product, polarisation, linear=True)
        groups = match.groupdict()
        reference, secondary = _time(match["ref"]), _time(match["sec"])
        first, second = sorted((reference, secondary))
        units = {
            reference: groups.get("ref_unit"),
            secondary: groups.get("sec_unit"),
        }
        later_unit = units[second]
        sensor = sensor_code(f"S1{later_unit.upper()}") if later_unit else None
        footprint = self.native_footprint
        granules = _readme_granules(path.parent, match["base"])
        reference_orbit = None
        if granules:
            unit, absolute = granules[0]
            reference_orbit = relative_orbit(unit, absolute)
        burst = groups.get("burst")
        properties: dict[str, Any] = {
            "format": "HYP3_INSAR" if burst is None else "HYP3_INSAR_BURST",
            "value_convention": COHERENCE_CONVENTION,
            "pixel_spacing": float(match["spacing"]),
            "hyp3_product_id": match["id"].upper(),
            "pair_days": (second.date() - first.date()).days,
        }
        if burst is not None:
            properties["burst_id"] = int(burst)
            properties["swath"] = match["swath"].upper()
            properties["time_precision"] = "date"
        else:
            properties["orbit_direction_from"] = "local_time"
        self._describe(
            ProductInfo(
                name=product,
                product_type=ProductType.S1_COHE,
                sensor=sensor,
                acquired_at=second,
                acquired_first_at=first,
                tile=None,
                relative_orbit=reference_orbit,
                orbit_direction=None
                if burst is not None
                else direction_from_local_time(second, footprint),
                processing_baseline=None,
                footprint=footprint,
                path=path,
                polarisation=polarisation,
                properties=properties,
            )
        )
