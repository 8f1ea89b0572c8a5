"""Optical products described by STAC items (local JSON files or a local static catalog).

Nothing is fetched from the network: catalogs are walked on disk, relative hrefs are resolved
from the file that holds them, and an item whose band assets are remote is refused.

Bands are found through the assets' band lists, STAC 1.0 (``eo:bands`` + ``raster:bands``) or
1.1 (``bands`` with ``eo:common_name``, ``scale``...), including multi-band assets (the file must
have as many bands as the list). Canonical names come from common names: coastal B01, blue B02,
green B03, red B04, rededge B05/B06/B07 (``rededge071/075/078`` or by centre wavelength), nir
B08, nir08 B8A, nir09 B09, cirrus B10, swir16 B11, swir22 B12; Sentinel-2 band names (``B04``)
take precedence for Sentinel-2 items. Landsat's single NIR band (nir08) is both B8A and B08, as
in :mod:`capmon.sources.landsat`. ``scale``/``offset``/``nodata`` of the band lists are applied.
When a band is in several assets, a single-band GeoTIFF wins over a JPEG 2000 or multi-band one.

The sensor comes from ``platform`` (``sentinel-2a`` -> S2A, ``landsat-9`` -> L9); ``datetime``
is required. The mask is the ``scl`` asset (Sentinel-2 L2A) or the ``qa_pixel`` asset (Landsat
C2 L2) when the item has one; without a mask asset a pixel is valid where the finest band has
data (``info.properties["mask"]`` says which).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import numpy.typing as npt
import pystac
import shapely.geometry
from pystac.stac_io import DefaultStacIO
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from capmon.errors import InputError, StorageError
from capmon.signals.masks import landsat_qa_valid, scl_valid
from capmon.sources._optical import OpticalReader
from capmon.sources.model import (
    DEFAULT_MASK_CONFIG,
    S2_BAND_NAMES,
    Angles,
    MaskConfig,
    ProductInfo,
    ProductType,
    sensor_code,
)
from capmon.sources.raster import BandFiles, BandSource, Calibration, Rows
from capmon.sources.sen2cor import canonical_band

COMMON_NAMES = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge071": "B05",
    "rededge075": "B06",
    "rededge078": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
}
"""STAC ``eo:common_name`` -> canonical band (``rededge`` is resolved by wavelength)."""
LANDSAT_ALIASES = {"B08": "B8A"}
SCL = "SCL"
QA_PIXEL = "QA_PIXEL"
_SKIPPED_ROLES = frozenset({"thumbnail", "overview", "visual", "metadata"})
_REMOTE = frozenset({"http", "https", "s3", "gs", "az", "ftp"})


class LocalStacIO(DefaultStacIO):
    """pystac I/O that reads local files only (capmon never fetches catalogs)."""

    def read_text_from_href(self, href: str) -> str:
        if urlparse(href).scheme.lower() in _REMOTE:
            raise InputError(f"{href} is remote; capmon reads local STAC files only")
        return super().read_text_from_href(href)


def stac_kind(path: Path) -> str | None:
    """``"item"``, ``"catalog"`` (Catalog or Collection) or None for a JSON file."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or "stac_version" not in data:
        return None
    kind = data.get("type")
    if kind == "Feature":
        return "item"
    if kind in ("Catalog", "Collection"):
        return "catalog"
    return None


def catalog_items(path: Path) -> list[Path]:
    """The item files of a local static catalog (walked recursively, no network)."""
    try:
        catalog = pystac.Catalog.from_file(str(path), stac_io=LocalStacIO())
        hrefs = [item.get_self_href() for item in catalog.get_items(recursive=True)]
    except InputError:
        raise
    except (pystac.STACError, OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot walk the STAC catalog {path}: {exc}") from exc
    items = []
    for href in hrefs:
        if href is None:
            raise InputError(f"the STAC catalog {path} has an item without a location")
        items.append(_local_path(href, path.parent, what=f"an item of the catalog {path}"))
    return items


@dataclass(frozen=True)
class _AssetBand:
    band: str
    source: BandSource
    asset: str
    single: bool
    tiff: bool


class StacReader(OpticalReader):
    """An optical product described by a local STAC item JSON file."""

    def __init__(self, path: Path) -> None:
        item = load_item(path)
        product = item.id
        sensor = _sensor(item, path)
        if sensor.startswith("S2"):
            product_type = ProductType.L2A
        elif sensor.startswith("L"):
            product_type = ProductType.LANDSAT_L2
        else:
            raise InputError(
                f"STAC item {path}: platform {item.properties.get('platform')!r} is not an "
                "optical sensor capmon reads from STAC (Sentinel-2, Landsat)"
            )
        candidates: dict[str, list[_AssetBand]] = {}
        for key, asset in item.assets.items():
            if _SKIPPED_ROLES.intersection(asset.roles or ()):
                continue
            for entry in _asset_bands(key, asset, path, sensor):
                candidates.setdefault(entry.band, []).append(entry)
        sources: dict[str, list[BandSource]] = {}
        chosen: dict[str, str] = {}
        for band, entries in candidates.items():
            best = min(entries, key=lambda e: (not e.single, not e.tiff))
            sources[band] = [best.source]
            chosen[band] = best.asset
        bands_stored = [b for b in S2_BAND_NAMES if b in sources]
        if not bands_stored:
            raise InputError(f"STAC item {path} has no asset with a known optical band")
        aliases = {}
        if product_type is ProductType.LANDSAT_L2:
            aliases = {
                a: t for a, t in LANDSAT_ALIASES.items() if a not in sources and t in sources
            }
        bands = tuple(b for b in S2_BAND_NAMES if b in sources or b in aliases)
        mask = SCL if SCL in sources else QA_PIXEL if QA_PIXEL in sources else "data"
        self._item = item
        self._path = path
        info = ProductInfo(
            name=product,
            product_type=product_type,
            sensor=sensor,
            acquired_at=_datetime(item, path),
            acquired_first_at=None,
            tile=_tile(item.properties),
            relative_orbit=_relative_orbit(item.properties),
            orbit_direction=_direction(item.properties.get("sat:orbit_state")),
            processing_baseline=_baseline(item.properties),
            footprint=_footprint(item, path),
            path=path,
            properties={
                "format": "STAC",
                "collection": item.collection_id,
                "mask": mask.lower(),
                "assets": chosen,
                "generation_time": _generation_time(item.properties),
                "cloud_cover": _number(item.properties.get("eo:cloud_cover")),
            },
        )
        super().__init__(info, BandFiles(product, sources), bands, aliases)

    def valid_mask(
        self,
        resolution: float | None = None,
        config: MaskConfig = DEFAULT_MASK_CONFIG,
        rows: Rows | None = None,
    ) -> npt.NDArray[np.bool_]:
        """The SCL or QA_PIXEL rules of :mod:`capmon.signals.masks`; without a mask asset,
        valid where the finest band has data (decoding that band)."""
        grid = self.grid(resolution)
        if SCL in self.files.sources:
            return self.files.read_mask(SCL, grid, lambda scl: scl_valid(scl, config.scl), rows)
        if QA_PIXEL in self.files.sources:
            return self.files.read_mask(
                QA_PIXEL, grid, lambda qa: landsat_qa_valid(qa, config.landsat), rows
            )
        finest = min(self._stored_bands, key=lambda b: self.files.native(b)[1])
        return np.asarray(~np.isnan(self.files.read(finest, grid, rows)), dtype=np.bool_)

    def angles(self) -> Angles:
        """``view:sun_elevation``/``view:sun_azimuth`` and ``view:incidence_angle`` (or
        ``view:off_nadir``)/``view:azimuth``; missing view angles are taken as nadir (0, 0)."""
        properties = self._item.properties
        elevation = _number(properties.get("view:sun_elevation"))
        azimuth = _number(properties.get("view:sun_azimuth"))
        if elevation is None or azimuth is None:
            raise InputError(f"STAC item {self._path} has no view:sun_elevation / view:sun_azimuth")
        view_zenith = _number(properties.get("view:incidence_angle"))
        if view_zenith is None:
            view_zenith = _number(properties.get("view:off_nadir"))
        view_azimuth = _number(properties.get("view:azimuth"))
        return Angles(
            sun_zenith=90.0 - elevation,
            sun_azimuth=azimuth % 360.0,
            view_zenith=view_zenith if view_zenith is not None else 0.0,
            view_azimuth=view_azimuth % 360.0 if view_azimuth is not None else 0.0,
        )


def load_item(path: Path) -> pystac.Item:
    """The STAC item of ``path``; an InputError naming the file when it is not a valid item
    or has no ``datetime``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"the STAC item {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"the STAC item {path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"cannot read the STAC item {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("type") != "Feature":
        raise InputError(f"{path} is not a STAC item (type Feature)")
    properties = data.get("properties")
    if not isinstance(properties, dict) or not properties.get("datetime"):
        raise InputError(
            f"the STAC item {path} has no datetime; capmon needs the acquisition time of "
            "every product"
        )
    try:
        return pystac.Item.from_dict(data, migrate=False, preserve_dict=False)
    except (pystac.STACError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a valid STAC item: {exc}") from exc


def _asset_bands(
    key: str, asset: pystac.Asset, item_path: Path, sensor: str
) -> Iterator[_AssetBand]:
    fields = asset.extra_fields
    eo_bands = _list(fields.get("eo:bands"))
    raster_bands = _list(fields.get("raster:bands"))
    bands = _list(fields.get("bands"))
    if bands and not eo_bands:
        eo_bands = bands
    if bands and not raster_bands:
        raster_bands = bands
    if eo_bands and raster_bands and len(eo_bands) != len(raster_bands):
        raise InputError(
            f"STAC item {item_path}: asset {key!r} lists {len(eo_bands)} eo bands and "
            f"{len(raster_bands)} raster bands"
        )
    count = max(len(eo_bands), len(raster_bands)) or None
    descriptors: Sequence[Mapping[str, Any]] = eo_bands or raster_bands or [{}]
    href: Path | None = None
    for index, descriptor in enumerate(descriptors):
        raster = raster_bands[index] if index < len(raster_bands) else {}
        band = _canonical(key, descriptor, sensor, single=len(descriptors) == 1)
        if band is None:
            continue
        if href is None:
            href = _local_path(asset.href, item_path.parent, what=f"asset {key!r} of {item_path}")
        calibration = Calibration(
            scale=_field(raster, "scale", 1.0),
            offset=_field(raster, "offset", 0.0),
            nodata=_nodata(raster.get("nodata", descriptor.get("nodata"))),
        )
        resolution = _number(raster.get("spatial_resolution")) or _number(fields.get("gsd"))
        source = BandSource(href, calibration, resolution, index + 1, count)
        media = (asset.media_type or "").lower()
        tiff = "tiff" in media or href.suffix.lower() in (".tif", ".tiff")
        yield _AssetBand(band, source, key, len(descriptors) == 1, tiff)


def _canonical(key: str, band: Mapping[str, Any], sensor: str, *, single: bool) -> str | None:
    """The canonical name of a band descriptor (or the mask layers SCL / QA_PIXEL)."""
    name = str(band.get("name") or (key if single else "")).strip()
    upper_key = key.strip().upper()
    if single and (upper_key in (SCL, QA_PIXEL) or name.upper() in (SCL, QA_PIXEL)):
        return upper_key if upper_key in (SCL, QA_PIXEL) else name.upper()
    if sensor.startswith("S2") and re.fullmatch(r"B0?\d{1,2}A?", name.upper()):
        return canonical_band(name)
    common = str(band.get("common_name") or band.get("eo:common_name") or "").strip().lower()
    if not common and single:
        common = key.strip().lower()
    if common == "rededge":
        wavelength = _number(band.get("center_wavelength") or band.get("eo:center_wavelength"))
        if wavelength is None:
            return None
        return "B05" if wavelength < 0.72 else "B06" if wavelength < 0.76 else "B07"
    mapped = COMMON_NAMES.get(common)
    if mapped is not None and sensor.startswith("L") and mapped == "B08":
        return "B8A"
    return mapped


def _local_path(href: str, base: Path, *, what: str) -> Path:
    parsed = urlparse(href)
    scheme = parsed.scheme.lower()
    if scheme in _REMOTE:
        raise InputError(f"{what} is remote ({href}); capmon reads local files only")
    if scheme == "file":
        return Path(unquote(parsed.path))
    path = Path(href)
    return path if path.is_absolute() else (base / path).resolve()


def _list(value: object) -> list[Mapping[str, Any]]:
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    return []


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _field(raster: Mapping[str, Any], name: str, default: float) -> float:
    for key in (name, f"raster:{name}"):
        value = _number(raster.get(key))
        if value is not None:
            return value
    return default


def _nodata(value: object) -> float | None:
    if isinstance(value, str) and value.lower() == "nan":
        return math.nan
    return _number(value)


def _sensor(item: pystac.Item, path: Path) -> str:
    platform = item.properties.get("platform")
    if not isinstance(platform, str) or not platform:
        raise InputError(f"STAC item {path} has no platform (e.g. sentinel-2a, landsat-9)")
    try:
        return sensor_code(platform)
    except InputError as exc:
        raise InputError(f"STAC item {path}: {exc}") from None


def _datetime(item: pystac.Item, path: Path) -> datetime:
    if item.datetime is None:
        raise InputError(f"the STAC item {path} has no datetime")
    when = item.datetime
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _tile(properties: Mapping[str, Any]) -> str | None:
    if isinstance(properties.get("s2:mgrs_tile"), str):
        return str(properties["s2:mgrs_tile"]).removeprefix("T")
    zone, band, square = (
        properties.get("mgrs:utm_zone"),
        properties.get("mgrs:latitude_band"),
        properties.get("mgrs:grid_square"),
    )
    if zone is not None and band and square:
        return f"{int(zone):02d}{band}{square}"
    path, row = properties.get("landsat:wrs_path"), properties.get("landsat:wrs_row")
    if path is not None and row is not None:
        return f"{int(path):03d}{int(row):03d}"
    code = properties.get("grid:code")
    if isinstance(code, str) and "-" in code:
        return code.split("-", 1)[1]
    return None


def _relative_orbit(properties: Mapping[str, Any]) -> int | None:
    for key in ("sat:relative_orbit", "landsat:wrs_path"):
        value = _number(properties.get(key))
        if value is not None:
            return int(value)
    return None


def _direction(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return {"ascending": "ASC", "descending": "DESC"}.get(value.lower())


def _baseline(properties: Mapping[str, Any]) -> str | None:
    for key in ("s2:processing_baseline", "processing:version", "landsat:collection_number"):
        value = properties.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _generation_time(properties: Mapping[str, Any]) -> str | None:
    for key in ("s2:generation_time", "created", "updated"):
        value = properties.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _footprint(item: pystac.Item, path: Path) -> BaseGeometry:
    if item.geometry:
        try:
            geometry = shapely.geometry.shape(item.geometry)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"STAC item {path} has an invalid geometry: {exc}") from exc
        if not geometry.is_empty:
            return geometry
    if item.bbox and len(item.bbox) >= 4:
        west, south, east, north = item.bbox[0], item.bbox[1], item.bbox[-2], item.bbox[-1]
        return box(west, south, east, north)
    raise InputError(f"STAC item {path} has neither geometry nor bbox")
