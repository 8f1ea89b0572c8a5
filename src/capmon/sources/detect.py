"""Recognising input products on disk: :func:`open_product` and :func:`find_products`.

A product is one of:

* a Sen2Cor ``.SAFE`` folder (holding ``MTD_MSIL2A.xml``) or that file;
* a MAJA / THEIA folder (holding ``*_MTD_ALL.xml``) or that file;
* a Landsat Collection 2 Level-2 folder (holding ``*_MTL.txt`` or ``*_MTL.xml``) or that file;
* a Sen4CAP Sentinel-1 GeoTIFF named as V1 or V2 (sen4cap-system.md 3.3);
* a Sentinel-1 analysis-ready polarisation GeoTIFF: ASF HyP3 RTC or InSAR coherence
  (:mod:`.hyp3`), CEOS-ARD NRB or Copernicus CARD-BS (:mod:`.cardbs`);
* a STAC item JSON file (a static ``catalog.json`` / collection stands for its items); a
  Sentinel-1 item holds one polarisation (:mod:`.s1_stac`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from capmon.errors import InputError, NotFoundError
from capmon.sources import cardbs, hyp3, landsat, maja, s1_stac, sen2cor, sentinel1, stac
from capmon.sources.model import ProductReader


def product_format(path: Path) -> str | None:
    """``sen2cor``, ``maja``, ``landsat``, ``s1``, ``hyp3``, ``card_bs``, ``s1_stac``, ``stac``
    (an item), ``stac_catalog`` or None."""
    if sen2cor.is_sen2cor_product(path):
        return "sen2cor"
    if maja.metadata_file(path) is not None:
        return "maja"
    if landsat.mtl_file(path) is not None:
        return "landsat"
    if sentinel1.is_s1_product(path):
        return "s1"
    if hyp3.hyp3_kind(path) is not None:
        return "hyp3"
    if cardbs.cardbs_kind(path) is not None:
        return "card_bs"
    if s1_stac.is_s1_item(path):
        # an item with several polarisations (an NRB product's own item...) is metadata
        return "s1_stac" if s1_stac.polarisation_assets(path) == 1 else None
    kind = stac.stac_kind(path)
    if kind == "item":
        return "stac"
    if kind == "catalog":
        return "stac_catalog"
    return None


def open_product(path: str | Path) -> ProductReader:
    """A reader of the product at ``path`` (its format is detected, see the module doc)."""
    location = Path(path)
    if not location.exists():
        raise NotFoundError(f"no product at {location}: the path does not exist")
    kind = product_format(location)
    if kind == "sen2cor":
        return sen2cor.Sen2CorReader(location)
    if kind == "maja":
        return maja.MajaReader(location)
    if kind == "landsat":
        return landsat.LandsatReader(location)
    if kind == "s1":
        return sentinel1.Sentinel1Reader(location)
    if kind == "hyp3":
        return hyp3.open_hyp3(location)
    if kind == "card_bs":
        return cardbs.CardBsReader(location)
    if kind == "s1_stac":
        return s1_stac.S1StacReader(location)
    if kind == "stac":
        return stac.StacReader(location)
    if kind == "stac_catalog":
        raise InputError(
            f"{location} is a STAC catalog, not one product: use find_products to list its items"
        )
    raise InputError(
        f"{location} is not a product capmon reads (Sen2Cor .SAFE, MAJA, Landsat C2 L2, "
        "Sen4CAP S1 GeoTIFF, HyP3 RTC/InSAR, CARD-BS/NRB polarisation file or STAC item)"
    )


def find_products(paths: Iterable[str | Path], recursive: bool = True) -> list[Path]:
    """The products at or under ``paths``, in order, each once.

    A path that is a product is taken as is (a metadata file stands for its folder); a STAC
    catalog stands for its items; a folder is searched for products, into sub-folders when
    ``recursive`` (never inside a product). A path that does not exist is a NotFoundError, a
    file that is not a product an InputError.
    """
    found: dict[Path, None] = {}
    for given in paths:
        location = Path(given)
        if not location.exists():
            raise NotFoundError(f"{location} does not exist")
        kind = product_format(location)
        if kind is not None:
            _add(found, location, kind)
        elif location.is_dir():
            _search(found, location, recursive)
        else:
            raise InputError(f"{location} is not a product capmon reads")
    return list(found)


def _add(found: dict[Path, None], location: Path, kind: str) -> None:
    if kind == "stac_catalog":
        for item in stac.catalog_items(location):
            found.setdefault(item.resolve(), None)
        return
    if location.is_file() and kind in ("sen2cor", "maja", "landsat"):
        location = location.parent
    found.setdefault(location.resolve(), None)


def _search(found: dict[Path, None], folder: Path, recursive: bool) -> None:
    try:
        children = sorted(folder.iterdir())
    except OSError as exc:
        raise NotFoundError(f"cannot list {folder}: {exc}") from exc
    for child in children:
        if child.name.startswith("."):
            continue
        if child.is_dir():
            kind = product_format(child)
            if kind is not None:
                _add(found, child, kind)
            elif recursive:
                _search(found, child, recursive)
        elif child.suffix.lower() in (".tif", ".tiff", ".json"):
            kind = product_format(child)
            if kind is not None:
                _add(found, child, kind)
