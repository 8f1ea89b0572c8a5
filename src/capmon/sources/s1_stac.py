"""Sentinel-1 backscatter described by a local STAC item holding one polarisation.

Analysis-ready S1 collections served by STAC APIs (RTC γ⁰ of Planetary Computer, Digital Earth
Africa, OPERA...) put each polarisation in its own asset; capmon's product is one polarisation,
so ``capmon acquire`` writes one item per polarisation (``<item id>_<POL>.json``, see
:mod:`capmon.acquisition.layout`). Such an item is read here when its ``platform`` is a
Sentinel-1 unit and exactly one data asset is a polarisation (asset key ``vv``/``VV``..., or its
``sar:polarizations`` / band name).

The convention of the values must be stated, never guessed: ``capmon:backscatter_convention``
(``gamma0_linear``, ``gamma0_db``, ``sigma0_linear``, ``sigma0_db``, ``gamma0_amplitude``,
``sigma0_amplitude``), written by the acquisition from the collection's configuration, or the
CARD4L-style ``card4l:measurement_type`` (``gamma0``/``sigma0``) with
``card4l:measurement_convention`` (``linear``, ``db``, ``amplitude``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from capmon.errors import InputError
from capmon.sources._sar_file import (
    POLARISATIONS,
    SarFileReader,
    backscatter_properties,
    stored_convention,
)
from capmon.sources.model import ProductInfo, ProductType
from capmon.sources.stac import (
    _datetime,
    _direction,
    _footprint,
    _local_path,
    _number,
    _relative_orbit,
    _sensor,
    _tile,
    load_item,
)

CONVENTION_KEY = "capmon:backscatter_convention"
_SKIPPED_ROLES = frozenset({"thumbnail", "overview", "visual", "metadata"})
_SCALES = {"linear": "power", "power": "power", "db": "db", "amplitude": "amplitude"}


def is_s1_item(path: Path) -> bool:
    """Whether ``path`` is a STAC item JSON file of a Sentinel-1 platform."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(data, dict) or data.get("type") != "Feature" or "stac_version" not in data:
        return False
    properties = data.get("properties")
    platform = properties.get("platform") if isinstance(properties, dict) else None
    return isinstance(platform, str) and platform.strip().lower().replace("_", "-").startswith(
        ("sentinel-1", "sentinel1", "s1")
    )


def _item(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _polarisation_assets(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(polarisation, asset key, href) of the item's data assets that are a polarisation."""
    found = []
    assets = data.get("assets")
    for key, asset in (assets if isinstance(assets, dict) else {}).items():
        if not isinstance(asset, dict) or _SKIPPED_ROLES.intersection(asset.get("roles") or ()):
            continue
        polarisation = _polarisation(str(key), asset)
        if polarisation is not None:
            found.append((polarisation, str(key), str(asset.get("href", ""))))
    return found


def polarisation_assets(path: Path) -> int:
    """How many polarisation assets the STAC item at ``path`` has (0 when it is unreadable)."""
    data = _item(path)
    return len(_polarisation_assets(data)) if data is not None else 0


def described_by_item(file: Path) -> bool:
    """Whether a Sentinel-1 single-polarisation STAC item next to ``file`` has it as its asset
    (the item is then the product, with its richer metadata)."""
    target = file.resolve()
    for candidate in file.parent.glob("*.json"):
        if not is_s1_item(candidate):
            continue
        data = _item(candidate)
        found = _polarisation_assets(data) if data is not None else []
        if len(found) == 1:
            href = found[0][2]
            if "://" not in href and (candidate.parent / href).resolve() == target:
                return True
    return False


def parse_backscatter_convention(properties: dict[str, Any], what: str) -> tuple[str, str]:
    """(radiometry, scale) stated by an item's properties, or an InputError saying how."""
    stated = properties.get(CONVENTION_KEY)
    if isinstance(stated, str):
        radiometry, _, scale = stated.strip().lower().partition("_")
        if radiometry in ("gamma0", "sigma0") and scale in _SCALES:
            return radiometry, _SCALES[scale]
        raise InputError(
            f"{what}: {CONVENTION_KEY} {stated!r} is not one of gamma0_linear, gamma0_db, "
            "gamma0_amplitude, sigma0_linear, sigma0_db, sigma0_amplitude"
        )
    kind = str(properties.get("card4l:measurement_type", "")).strip().lower()
    scale = str(properties.get("card4l:measurement_convention", "")).strip().lower()
    if kind in ("gamma0", "sigma0") and scale in _SCALES:
        return kind, _SCALES[scale]
    raise InputError(
        f"{what} does not state whether its values are gamma0 or sigma0, in linear power, dB "
        f"or amplitude: set {CONVENTION_KEY} (e.g. gamma0_linear) in its properties, or the "
        "collection's convention in sources.toml for capmon acquire"
    )


def _polarisation(key: str, asset: dict[str, Any]) -> str | None:
    if key.strip().upper() in POLARISATIONS:
        return key.strip().upper()
    listed = asset.get("sar:polarizations")
    if isinstance(listed, list) and len(listed) == 1 and str(listed[0]).upper() in POLARISATIONS:
        return str(listed[0]).upper()
    return None


class S1StacReader(SarFileReader):
    """One polarisation of Sentinel-1 backscatter described by a STAC item."""

    def __init__(self, path: Path) -> None:
        item = load_item(path)
        found = _polarisation_assets(item.to_dict(include_self_link=False, transform_hrefs=False))
        if len(found) != 1:
            shown = ", ".join(f"{k} ({p})" for p, k, _ in found) or "none"
            raise InputError(
                f"STAC item {path} must hold exactly one polarisation asset (capmon reads one "
                f"polarisation per Sentinel-1 product; capmon acquire splits items): found {shown}"
            )
        polarisation, key, href = found[0]
        radiometry, scale = parse_backscatter_convention(item.properties, f"STAC item {path}")
        _, squared = stored_convention(radiometry, scale)
        file = _local_path(href, path.parent, what=f"asset {key!r} of {path}")
        super().__init__(file, item.id, polarisation, linear=scale != "db", squared=squared)
        properties = item.properties
        self._describe(
            ProductInfo(
                name=item.id,
                product_type=ProductType.S1_AMP,
                sensor=_sensor(item, path),
                acquired_at=_datetime(item, path),
                acquired_first_at=None,
                tile=_tile(properties),
                relative_orbit=_relative_orbit(properties),
                orbit_direction=_direction(properties.get("sat:orbit_state")),
                processing_baseline=None,
                footprint=_footprint(item, path),
                path=path,
                polarisation=polarisation,
                properties={
                    "format": "STAC_S1",
                    "collection": item.collection_id,
                    "asset": key,
                    "absolute_orbit": _number(properties.get("sat:absolute_orbit")),
                    **backscatter_properties(radiometry, scale),
                },
            )
        )
