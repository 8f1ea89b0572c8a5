"""Optical products described by STAC items (local JSON files or a local static catalog).

Nothing is fetched from the network: catalogs are walked on disk, relative hrefs are resolved
from the file that holds them, and an item whose band assets are remote is refused.

Bands are found through the assets' band lists, STAC 1.0 (``eo:bands`` + ``raster:bands``) or
1.1 (``bands`` with ``eo:common_name``, ``scale``...), including multi-band assets (the file must
have as many bands as the list). Canonical names come from common names: coastal B01, blue B02,
green B03, red B04, rededge B05/B06/B07 (``rededge071/075/078`` or by centre wavelength), nir
B08, nir08 B8A, nir09 B09, cirrus B10, swir16 B11, swir22 B12; Sentinel-2 band names (``B04``,
``B4``, ``B04_10m``) and Landsat ones (``SR_B4``) take precedence. Landsat's single NIR band
(nir08) is both B8A and B08, as in :mod:`capmon.sources.landsat`. When a band is in several
assets, a single-band GeoTIFF wins over a JPEG 2000 or multi-band one (one file kept per
declared resolution).

No data: a pixel is no data where it equals the band's declared ``nodata`` (``raster:bands``
or ``bands`` entry, else the asset's ``nodata``) or the file's own no-data value; both are
honoured. ``scale``/``offset`` of the band (else of the asset) are applied.

The sensor comes from ``platform`` (``sentinel-2a`` -> S2A, ``landsat-9`` -> L9); ``datetime``
is required. The mask is the scene classification (an asset or a band of a multi-band asset
named ``scl``/``SCL``/``SCL_20m``, Sentinel-2 L2A) or the ``qa_pixel`` layer (Landsat C2 L2),
honouring its no-data values. An item without a mask is refused when read for statistics
(:meth:`~capmon.sources.model.ProductReader.require_mask`), unless
``MaskConfig(allow_unmasked=True)``: a pixel is then valid where the finest band has data
(``info.properties["mask"]`` is ``none``, :attr:`StacReader.mask_source` None).
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
from capmon.sources.landsat import OLI_BANDS, TM_BANDS
from capmon.sources.model import (
    DEFAULT_MASK_CONFIG,
    S2_BAND_NAMES,
    Angles,
    MaskConfig,
    ProductInfo,
    ProductType,
    sensor_code,
)
from capmon.sources.raster import BandFiles, BandSource, Calibration, Rows, no_data
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
_MASK_NAMES = (
    (SCL, re.compile(r"^(?:scl(?:_\d+m)?|scene[_ ]?classification(?:[_ ]map)?)$", re.IGNORECASE)),
    (QA_PIXEL, re.compile(r"^qa[_ ]?pixel$", re.IGNORECASE)),
)
"""Names of the mask layers, as asset keys or band names (``scl``, ``SCL_20m``, ``qa_pixel``)."""
_S2_NAME = re.compile(r"^(B0?\d{1,2}A?)(?:_\d+m)?$", re.IGNORECASE)
_LANDSAT_NAME = re.compile(r"^SR_B(\d{1,2})$", re.IGNORECASE)
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
            rank = min((not e.single, not e.tiff) for e in entries)
            best = [e for e in entries if (not e.single, not e.tiff) == rank]
            kept = [best[0]]
            for entry in best[1:]:  # the same band at other declared resolutions
                resolutions = {k.source.resolution for k in kept}
                if None not in resolutions and entry.source.resolution not in resolutions:
                    kept.append(entry)
            sources[band] = [entry.source for entry in kept]
            chosen[band] = kept[0].asset
        bands_stored = [b for b in S2_BAND_NAMES if b in sources]
        if not bands_stored:
            raise InputError(f"STAC item {path} has no asset with a known optical band")
        aliases = {}
        if product_type is ProductType.LANDSAT_L2:
            aliases = {
                a: t for a, t in LANDSAT_ALIASES.items() if a not in sources and t in sources
            }
        bands = tuple(b for b in S2_BAND_NAMES if b in sources or b in aliases)
        mask = SCL if SCL in sources else QA_PIXEL if QA_PIXEL in sources else None
        self._mask = mask
        self._assets = tuple(key for key in item.assets)
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
                "mask": mask.lower() if mask is not None else "none",
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
        """The SCL or QA_PIXEL rules of :mod:`capmon.signals.masks`, the mask layer's no-data
        pixels invalid; without a mask, an InputError unless ``config.allow_unmasked`` (then
        valid where the finest band has data, decoding that band)."""
        layer = self._mask
        if layer is None:
            return self.unmasked_valid(resolution, config, rows)
        grid = self.grid(resolution)
        nodata = self.files.nodata_values(layer, grid.resolution[0])

        def decode(stored: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
            if layer == SCL:
                valid = scl_valid(stored, config.scl)
            else:
                valid = landsat_qa_valid(stored, config.landsat)
            missing = no_data(stored, nodata)
            return valid if missing is None else valid & ~missing

        return self.files.read_mask(layer, grid, decode, rows)

    @property
    def mask_source(self) -> str | None:
        return self._mask

    @property
    def mask_searched(self) -> str:
        return (
            f"the STAC item {self._path} has no asset and no band named scl / SCL / SCL_20m "
            f"(scene classification) or qa_pixel (assets: {', '.join(self._assets)})"
        )

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
        nodata = _nodata(raster.get("nodata", descriptor.get("nodata", fields.get("nodata"))))
        if band in (SCL, QA_PIXEL):
            calibration = Calibration(nodata=nodata)  # masks are read as stored
        else:
            calibration = Calibration(
                scale=_field(raster, "scale", _field(fields, "scale", 1.0)),
                offset=_field(raster, "offset", _field(fields, "offset", 0.0)),
                nodata=nodata,
            )
        resolution = _number(raster.get("spatial_resolution")) or _number(fields.get("gsd"))
        source = BandSource(href, calibration, resolution, index + 1, count)
        media = (asset.media_type or "").lower()
        tiff = "tiff" in media or href.suffix.lower() in (".tif", ".tiff")
        yield _AssetBand(band, source, key, len(descriptors) == 1, tiff)


def _canonical(key: str, band: Mapping[str, Any], sensor: str, *, single: bool) -> str | None:
    """The canonical name of a band descriptor, or the mask layers SCL / QA_PIXEL (also inside
    a multi-band asset); the asset key names a single-band asset whose band has no name."""
    name = str(band.get("name") or "").strip()
    common = str(band.get("common_name") or band.get("eo:common_name") or "").strip()
    names = [text for text in (name, key.strip() if single else "") if text]
    for layer, pattern in _MASK_NAMES:
        if any(pattern.match(text) for text in (*names, common)):
            return layer
    for text in names:
        if sensor.startswith("S2") and (match := _S2_NAME.match(text)) is not None:
            return canonical_band(match[1])
        if sensor.startswith("L") and (match := _LANDSAT_NAME.match(text)) is not None:
            numbers = OLI_BANDS if int(sensor[1:]) >= 8 else TM_BANDS
            by_number = {number: canonical for canonical, number in numbers.items()}
            return by_number.get(int(match[1]))
    for text in (common, *names):
        mapped = _common_band(text.lower(), band, sensor)
        if mapped is not None:
            return mapped
    return None


def _common_band(common: str, band: Mapping[str, Any], sensor: str) -> str | None:
    """The canonical band of an ``eo:common_name`` (``rededge`` by its centre wavelength)."""
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
