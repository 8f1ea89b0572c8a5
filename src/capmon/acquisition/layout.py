"""Where acquired products go in the workspace and which of their assets are downloaded.

Each item becomes a folder ``<home>/inputs/<site>/<kind>/<item id>/`` holding the downloaded
assets (``<asset key><extension>``) and a local STAC item whose hrefs point at them, so that the
product readers read it (:mod:`capmon.sources.stac` for Sentinel-2 and Landsat,
:mod:`capmon.sources.s1_stac` for Sentinel-1):

* ``s2_l2a`` / ``landsat_l2``: ``<item id>.json``, the provider's item with only the downloaded
  assets (hrefs relative, alternates removed) and ``capmon:source`` / ``capmon:collection``;
* ``s1_rtc``: one item per polarisation, ``<item id>_<POL>.json`` (id ``<item id>_<POL>``, only
  that asset), with ``capmon:backscatter_convention`` from the collection's configuration.

The item files are written last (atomically): a folder with its item files is a complete
product, one without them is an interrupted download that the next run resumes.

Assets downloaded (unless the collection lists ``assets``): the bands capmon's signals use and
the mask, one asset per band, found from the assets' band metadata (``eo:bands``/``bands``
names and common names) or keys (``B04``, ``B04_10m``, ``red``, ``scl``, ``qa_pixel``), the
finest resolution and a GeoTIFF preferred; Sentinel-2 B02-B08, B8A, B11, B12 and SCL; Landsat
blue, green, red, nir08, swir16, swir22 and QA_PIXEL; Sentinel-1 each polarisation asset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from capmon.acquisition.download import RemoteFile
from capmon.acquisition.search import Candidate
from capmon.errors import InputError
from capmon.sources.sen2cor import canonical_band
from capmon.sources.stac import COMMON_NAMES
from capmon.workspace import atomic_path

INPUTS = "inputs"
S2_NEEDED = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL")
LANDSAT_NEEDED = ("B02", "B03", "B04", "B8A", "B11", "B12", "QA_PIXEL")
POLARISATIONS = ("VV", "VH", "HH", "HV")
_SKIPPED_ROLES = frozenset({"thumbnail", "overview", "visual"})
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_RESOLUTION = re.compile(r"_(\d+)m$", re.IGNORECASE)
_REDEDGE = {"rededge1": "B05", "rededge2": "B06", "rededge3": "B07"}
_MEDIA_EXTENSIONS = {"tiff": ".tif", "jp2": ".jp2", "xml": ".xml", "json": ".json"}


def safe_name(name: str) -> str:
    """``name`` usable as a file name (other characters as ``_``)."""
    cleaned = _SAFE.sub("_", name).strip("._")
    if not cleaned:
        raise InputError(f"{name!r} cannot be used as a file name")
    return cleaned


def product_folder(home: Path, site_short_name: str, candidate: Candidate) -> Path:
    """The folder of ``candidate`` in the workspace."""
    return home / INPUTS / site_short_name / candidate.collection.kind / safe_name(candidate.name)


def item_files(folder: Path, candidate: Candidate) -> list[Path]:
    """The local item file(s) that make the product (one per polarisation for Sentinel-1)."""
    base = safe_name(candidate.name)
    if candidate.collection.kind == "s1_rtc":
        return [folder / f"{base}_{pol}.json" for pol, _key in _polarisation_assets(candidate)]
    return [folder / f"{base}.json"]


def is_complete(folder: Path, candidate: Candidate) -> bool:
    """Whether the product's item files and the files they reference exist."""
    files = item_files(folder, candidate)
    if not files or not all(f.is_file() for f in files):
        return False
    for item_file in files:
        try:
            data = json.loads(item_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        for asset in (data.get("assets") or {}).values():
            if not (folder / str(asset.get("href", ""))).is_file():
                return False
    return True


def asset_band(key: str, asset: Mapping[str, Any], kind: str) -> str | None:
    """The canonical band (or ``SCL`` / ``QA_PIXEL``) one asset holds, or None."""
    lowered = key.strip().lower()
    base = _RESOLUTION.sub("", lowered)
    if base in ("scl", "qa_pixel"):
        return base.upper()
    descriptors = asset.get("eo:bands") or asset.get("bands") or []
    if isinstance(descriptors, list) and len(descriptors) > 1:
        return None
    descriptor = descriptors[0] if descriptors and isinstance(descriptors[0], dict) else {}
    name = str(descriptor.get("name") or "").strip()
    common = str(descriptor.get("common_name") or descriptor.get("eo:common_name") or "")
    if kind == "s2_l2a":
        for text in (name, base):
            if re.fullmatch(r"b0?\d{1,2}a?", text.lower()):
                return canonical_band(text)
        if base in _REDEDGE:
            return _REDEDGE[base]
    common = common.strip().lower() or base
    band = COMMON_NAMES.get(common)
    if band == "B08" and kind == "landsat_l2":
        return "B8A"
    return band


def _resolution(key: str, asset: Mapping[str, Any]) -> float:
    match = _RESOLUTION.search(key.strip())
    if match:
        return float(match.group(1))
    for field in ("gsd",):
        value = asset.get(field)
        if isinstance(value, int | float):
            return float(value)
    raster = asset.get("raster:bands")
    if isinstance(raster, list) and raster and isinstance(raster[0], dict):
        value = raster[0].get("spatial_resolution")
        if isinstance(value, int | float):
            return float(value)
    return 0.0


def _is_tiff(key: str, asset: Mapping[str, Any]) -> bool:
    media = str(asset.get("type") or "").lower()
    return "tiff" in media or PurePosixPath(
        urlparse(str(asset.get("href", ""))).path
    ).suffix.lower() in (
        ".tif",
        ".tiff",
    )


def _polarisation_assets(candidate: Candidate) -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    for key, asset in (candidate.item.get("assets") or {}).items():
        if not isinstance(asset, dict) or _SKIPPED_ROLES.intersection(asset.get("roles") or ()):
            continue
        pol = key.strip().upper()
        if pol not in POLARISATIONS:
            listed = asset.get("sar:polarizations")
            if isinstance(listed, list) and len(listed) == 1:
                pol = str(listed[0]).upper()
        if pol in POLARISATIONS and pol not in found:
            found[pol] = key
    return sorted(found.items())


def wanted_assets(candidate: Candidate) -> dict[str, str]:
    """The assets to download, by key, with what each is (a band, a mask, a polarisation)."""
    assets = candidate.item.get("assets") or {}
    if not isinstance(assets, dict):
        raise InputError(f"item {candidate.name} has no assets")
    kind = candidate.collection.kind
    if candidate.collection.assets:
        missing = [k for k in candidate.collection.assets if k not in assets]
        if missing:
            raise InputError(f"item {candidate.name} has no asset(s) {', '.join(missing)}")
        return {k: k for k in candidate.collection.assets}
    if kind == "s1_rtc":
        chosen = {key: pol for pol, key in _polarisation_assets(candidate)}
        if not chosen:
            raise InputError(f"item {candidate.name} has no polarisation asset (vv, vh...)")
        return chosen
    needed = S2_NEEDED if kind == "s2_l2a" else LANDSAT_NEEDED
    best: dict[str, tuple[tuple[bool, float, str], str]] = {}
    for key, asset in assets.items():
        if not isinstance(asset, dict) or _SKIPPED_ROLES.intersection(asset.get("roles") or ()):
            continue
        band = asset_band(key, asset, kind)
        if band is None or band not in needed:
            continue
        rank = (not _is_tiff(key, asset), _resolution(key, asset), key)
        if band not in best or rank < best[band][0]:
            best[band] = (rank, key)
    missing = [b for b in needed if b not in best]
    if missing:
        raise InputError(
            f"item {candidate.name} of {candidate.collection.id} has no asset for "
            f"{', '.join(missing)} (list the asset keys in sources.toml `assets`)"
        )
    return {key: band for band, (_rank, key) in sorted(best.items())}


def http_href(asset: Mapping[str, Any]) -> str | None:
    """The asset's http(s) location: its href, or an ``alternate`` one (``https`` first)."""
    href = str(asset.get("href", ""))
    if urlparse(href).scheme.lower() in ("http", "https"):
        return href
    alternates = asset.get("alternate")
    if isinstance(alternates, dict):
        ordered = sorted(alternates.items(), key=lambda kv: kv[0] != "https")
        for _name, alternate in ordered:
            if isinstance(alternate, dict):
                other = str(alternate.get("href", ""))
                if urlparse(other).scheme.lower() in ("http", "https"):
                    return other
    return None


def _extension(asset: Mapping[str, Any], url: str) -> str:
    suffix = PurePosixPath(urlparse(url).path).suffix.lower()
    if suffix in (".tif", ".tiff", ".jp2", ".xml", ".json", ".nc", ".h5", ".png", ".txt"):
        return ".tif" if suffix == ".tiff" else suffix
    media = str(asset.get("type") or "").lower()
    for marker, extension in _MEDIA_EXTENSIONS.items():
        if marker in media:
            return extension
    return ".tif"


def remote_files(candidate: Candidate, folder: Path) -> list[RemoteFile]:
    """The files to download for ``candidate`` into ``folder``."""
    assets = candidate.item.get("assets") or {}
    files = []
    for key in wanted_assets(candidate):
        asset = assets[key]
        url = http_href(asset)
        if url is None:
            raise InputError(
                f"asset {key!r} of item {candidate.name} has no http(s) location "
                f"({str(asset.get('href', ''))[:80]}); capmon downloads over HTTP(S) only"
            )
        size = asset.get("file:size")
        checksum = asset.get("file:checksum")
        files.append(
            RemoteFile(
                key=key,
                url=url,
                target=folder / f"{safe_name(key)}{_extension(asset, url)}",
                size=int(size) if isinstance(size, int | float) and size >= 0 else None,
                checksum=checksum if isinstance(checksum, str) and checksum else None,
            )
        )
    return files


def write_items(candidate: Candidate, folder: Path, files: Sequence[RemoteFile]) -> list[Path]:
    """Write the local item file(s) of a downloaded product; returns them."""
    by_key = {f.key: f for f in files}
    item = candidate.item
    assets = item.get("assets") or {}

    def local_asset(key: str) -> dict[str, Any]:
        asset = {
            k: v for k, v in assets[key].items() if k not in ("href", "alternate", "alternate:name")
        }
        asset["href"] = f"./{by_key[key].target.name}"
        return asset

    properties = dict(item.get("properties") or {})
    properties["capmon:source"] = candidate.source.name
    properties["capmon:collection"] = candidate.collection.id
    links = [
        {"rel": "via", "href": link["href"], "type": "application/geo+json"}
        for link in item.get("links") or []
        if isinstance(link, dict) and link.get("rel") == "self" and link.get("href")
    ]
    base = {
        "type": "Feature",
        "stac_version": item.get("stac_version", "1.0.0"),
        "stac_extensions": item.get("stac_extensions", []),
        "geometry": item.get("geometry"),
        "bbox": item.get("bbox"),
        "collection": item.get("collection", candidate.collection.id),
        "links": links,
    }
    written = []
    if candidate.collection.kind == "s1_rtc":
        convention = candidate.collection.backscatter_convention
        for (pol, key), path in zip(
            _polarisation_assets(candidate), item_files(folder, candidate), strict=True
        ):
            if key not in by_key:
                continue
            document = {
                **base,
                "id": f"{candidate.name}_{pol}",
                "properties": {
                    **properties,
                    "sar:polarizations": [pol],
                    "capmon:backscatter_convention": convention,
                },
                "assets": {key: local_asset(key)},
            }
            written.append(_write(path, document))
        return written
    document = {
        **base,
        "id": candidate.name,
        "properties": properties,
        "assets": {key: local_asset(key) for key in by_key},
    }
    return [_write(item_files(folder, candidate)[0], document)]


def _write(path: Path, document: Mapping[str, Any]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path
