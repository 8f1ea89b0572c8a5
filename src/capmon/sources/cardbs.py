"""Copernicus CARD-BS and CEOS-ARD NRB Sentinel-1 backscatter products.

Two folder layouts are read, one capmon product per polarisation file:

* **CEOS-ARD Normalised Radar Backscatter** (ESA's S1-NRB, written by ``s1ard``): a product
  folder ``S1A_IW_NRB__1SDV_<start>_<absolute orbit>_<datatake>_<MGRS tile>_<crc>`` with
  ``measurement/s1a-iw-nrb-<start>-<orbit>-<datatake>-<tile>-<pol>-<g|s>-<lin|log>.tif``
  (``g`` γ⁰ RTC, ``s`` σ⁰; ``lin`` linear power, ``log`` dB). When several variants of a
  polarisation exist, γ⁰ linear is read (then γ⁰ dB, σ⁰ linear, σ⁰ dB); the others are not
  products. The product's STAC item (a ``.json`` in the folder) gives the pass direction and
  relative orbit when present.
* **Copernicus CARD-BS**: a folder whose name holds ``CARD_BS`` (or ``CARD-BS``) and the
  source scene's name parts (``S1A``, start ``yyyymmddThhmmss``, ``_<absolute orbit>_<datatake>_``)
  with one GeoTIFF per polarisation; a file is a polarisation file when one token of its name
  (split on ``_ - .``) is VV, VH, HH or HV and none names an annotation layer (local incidence
  angle, masks, DEM, scattering area, γ⁰/σ⁰ ratio...). CARD-BS backscatter is γ⁰
  terrain-flattened linear power; a ``sigma0`` token makes it σ⁰, a ``db``/``log`` token dB and an
  ``amplitude`` token an amplitude (squared on read). A file that a single-polarisation STAC
  item next to it describes is read through that item instead (:mod:`.s1_stac`).

Values follow ``info.properties["amplitude_convention"]`` (see :mod:`capmon.sources._sar_file`);
``info.properties["backscatter"]`` says γ⁰ or σ⁰. Without metadata for it, the pass direction
comes from the local solar time (``properties["orbit_direction_from"] = "local_time"``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capmon.errors import InputError
from capmon.sources._sar_file import (
    POLARISATIONS,
    SarFileReader,
    backscatter_properties,
    direction_from_local_time,
    relative_orbit,
    stored_convention,
)
from capmon.sources.model import ProductInfo, ProductType, sensor_code
from capmon.sources.s1_stac import described_by_item

NRB_FILE = re.compile(
    r"^(?P<unit>s1[a-d])-(?P<mode>iw|ew|sm|s[1-6])-nrb-(?P<time>\d{8}t\d{6})-"
    r"(?P<absolute>\d{6})-(?P<datatake>[0-9a-f]{6})-(?P<tile>\d{2}[c-x][a-z]{2})-"
    r"(?P<pol>vv|vh|hh|hv)-(?P<radiometry>[gs])-(?P<scale>lin|log)\.tiff?$",
    re.IGNORECASE,
)
_NRB_ORDER = ("g-lin", "g-log", "s-lin", "s-log")
_CARD_FOLDER = re.compile(r"CARD[_-]BS", re.IGNORECASE)
_TOKEN_SPLIT = re.compile(r"[_\-.\s]+")
_ANNOTATION_TOKENS = frozenset(
    {
        "LIA", "INC", "INCIDENCE", "ANGLE", "MASK", "DM", "DEM", "EM", "LS", "LAYOVER",
        "SHADOW", "AREA", "LC", "GS", "RATIO", "NESZ", "NP", "ID", "EI", "LI", "QUICKLOOK",
        "RGB", "THUMB", "THUMBNAIL", "PREVIEW", "BROWSE",
    }
)  # fmt: skip
_TIME = re.compile(r"(?<!\d)(\d{8}T\d{6})(?!\d)", re.IGNORECASE)
_UNIT = re.compile(r"(?<![A-Z0-9])(S1[A-D])(?![A-Z0-9])", re.IGNORECASE)
_ABSOLUTE = re.compile(r"_(\d{6})_([0-9A-F]{6})(?:_|$)", re.IGNORECASE)
_MGRS = re.compile(r"(?<![A-Z0-9])T?(\d{2}[C-X][A-Z]{2})(?![A-Z0-9])")
_CARD_ORDER = ("power", "db", "amplitude")


def _tokens(stem: str) -> list[str]:
    return [t.upper() for t in _TOKEN_SPLIT.split(stem) if t]


def card_folder(path: Path) -> Path | None:
    """The CARD-BS product folder holding ``path`` (itself or one of 3 parent levels)."""
    for folder in (path, *list(path.parents)[:3]):
        if _CARD_FOLDER.search(folder.name):
            return folder
    return None


def nrb_folder(path: Path) -> Path | None:
    """The NRB product folder of a measurement file or of the folder itself."""
    for folder in (path, *list(path.parents)[:2]):
        if "_NRB_" in folder.name.upper() and (folder / "measurement").is_dir():
            return folder
    return None


def _card_file(path: Path) -> tuple[str, str, str] | None:
    """(polarisation, radiometry, scale) of a CARD-BS polarisation file name, or None."""
    tokens = _tokens(path.name[: -len(path.suffix)])
    if _ANNOTATION_TOKENS.intersection(tokens):
        return None
    pols = [t for t in tokens if t in POLARISATIONS]
    if len(pols) != 1:
        return None
    radiometry = "sigma0" if {"SIGMA0", "SIGMA", "SIGMA0DB"} & set(tokens) else "gamma0"
    if {"DB", "LOG", "SIGMA0DB", "GAMMA0DB"} & set(tokens):
        scale = "db"
    elif {"AMP", "AMPLITUDE"} & set(tokens):
        scale = "amplitude"
    else:
        scale = "power"
    return pols[0], radiometry, scale


def cardbs_kind(path: Path) -> str | None:
    """``"nrb"`` or ``"card_bs"`` for the polarisation file capmon reads of such a product
    (one per polarisation), else None."""
    if not path.is_file() or path.suffix.lower() not in (".tif", ".tiff"):
        return None
    match = NRB_FILE.match(path.name)
    if match is not None:
        rank = _NRB_ORDER.index(f"{match['radiometry']}-{match['scale']}".lower())
        prefix = path.name[: match.start("radiometry")]
        for better in _NRB_ORDER[:rank]:
            if any((path.parent / f"{prefix}{better}{s}").is_file() for s in (".tif", ".tiff")):
                return None
        return "nrb"
    if card_folder(path) is None or described_by_item(path):
        return None
    parsed = _card_file(path)
    if parsed is None:
        return None
    polarisation, radiometry, scale = parsed
    rank = (0 if radiometry == "gamma0" else 3) + _CARD_ORDER.index(scale)
    for sibling in path.parent.iterdir():
        if sibling == path or sibling.suffix.lower() not in (".tif", ".tiff"):
            continue
        other = _card_file(sibling)
        if other is not None and other[0] == polarisation:
            other_rank = (0 if other[1] == "gamma0" else 3) + _CARD_ORDER.index(other[2])
            if (other_rank, sibling.name) < (rank, path.name):
                return None
    return "card_bs"


def _folder_stac(folder: Path) -> dict[str, Any]:
    """The properties of the STAC item stored in a product folder (empty when there is none)."""
    for candidate in sorted(folder.glob("*.json")):
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("type") == "Feature":
            properties = data.get("properties")
            if isinstance(properties, dict):
                return properties
    return {}


def _direction(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return {"ASCENDING": "ASC", "ASC": "ASC", "DESCENDING": "DESC", "DESC": "DESC"}.get(
        value.strip().upper()
    )


def _time(text: str, what: str) -> datetime:
    try:
        return datetime.strptime(text.upper(), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InputError(f"{what}: invalid acquisition time {text!r}") from exc


@dataclass(frozen=True)
class _Parsed:
    """What the names of a polarisation file and its product folder say."""

    folder: Path
    polarisation: str
    radiometry: str
    scale: str
    unit: str | None
    acquired_at: datetime
    absolute: int | None
    tile: str | None
    properties: dict[str, Any]


def _parse_nrb(path: Path) -> _Parsed:
    match = NRB_FILE.match(path.name)
    if match is None:
        raise InputError(f"{path.name} is not a CEOS-ARD NRB measurement file name")
    return _Parsed(
        folder=nrb_folder(path.parent) or path.parent,
        polarisation=match["pol"].upper(),
        radiometry="gamma0" if match["radiometry"].lower() == "g" else "sigma0",
        scale="power" if match["scale"].lower() == "lin" else "db",
        unit=match["unit"].upper(),
        acquired_at=_time(match["time"], str(path)),
        absolute=int(match["absolute"]),
        tile=match["tile"].upper(),
        properties={"format": "CEOS_ARD_NRB", "datatake": match["datatake"].upper()},
    )


def _parse_card(path: Path) -> _Parsed:
    folder = card_folder(path)
    parsed = _card_file(path)
    if folder is None or parsed is None:
        raise InputError(f"{path} is not a polarisation file of a CARD-BS product folder")
    name = folder.name
    times = _TIME.findall(name) or _TIME.findall(path.name)
    if not times:
        raise InputError(
            f"CARD-BS product {name}: no acquisition time (yyyymmddThhmmss) in its folder "
            f"or file name ({path.name})"
        )
    unit = _UNIT.search(name) or _UNIT.search(path.name)
    absolute = _ABSOLUTE.search(name)
    tile = _MGRS.search(name.upper())
    return _Parsed(
        folder=folder,
        polarisation=parsed[0],
        radiometry=parsed[1],
        scale=parsed[2],
        unit=unit.group(1).upper() if unit else None,
        acquired_at=_time(times[0], f"CARD-BS product {name}"),
        absolute=int(absolute.group(1)) if absolute else None,
        tile=tile.group(1) if tile else None,
        properties={"format": "CARD_BS"},
    )


class CardBsReader(SarFileReader):
    """One polarisation of a CEOS-ARD NRB or Copernicus CARD-BS backscatter product."""

    def __init__(self, path: Path) -> None:
        kind = cardbs_kind(path)
        if kind is None:
            raise InputError(
                f"{path} is not a CARD-BS / CEOS-ARD NRB polarisation file capmon reads "
                "(see capmon.sources.cardbs)"
            )
        parsed = _parse_nrb(path) if kind == "nrb" else _parse_card(path)
        _, squared = stored_convention(parsed.radiometry, parsed.scale)
        product = f"{parsed.folder.name}_{parsed.polarisation}"
        super().__init__(
            path, product, parsed.polarisation, linear=parsed.scale != "db", squared=squared
        )
        footprint = self.native_footprint
        properties = dict(parsed.properties)
        stac = _folder_stac(parsed.folder)
        direction = _direction(stac.get("sat:orbit_state")) or _direction(
            self.tags.get("ORBIT_DIRECTION")
        )
        if direction is None:
            direction = direction_from_local_time(parsed.acquired_at, footprint)
            properties["orbit_direction_from"] = "local_time"
        sensor = sensor_code(parsed.unit) if parsed.unit else None
        orbit = stac.get("sat:relative_orbit")
        relative = (
            int(orbit)
            if isinstance(orbit, int | float)
            else relative_orbit(sensor, parsed.absolute)
        )
        if parsed.absolute is not None:
            properties["absolute_orbit"] = parsed.absolute
        self._describe(
            ProductInfo(
                name=product,
                product_type=ProductType.S1_AMP,
                sensor=sensor,
                acquired_at=parsed.acquired_at,
                acquired_first_at=None,
                tile=parsed.tile,
                relative_orbit=relative,
                orbit_direction=direction,
                processing_baseline=None,
                footprint=footprint,
                path=path,
                polarisation=parsed.polarisation,
                properties={
                    **properties,
                    **backscatter_properties(parsed.radiometry, parsed.scale),
                },
            )
        )
