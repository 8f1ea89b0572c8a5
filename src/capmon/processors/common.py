"""What several processors need from a workspace: the season's MDB, the declared parcels of a
file, a new product's name and folder, and its catalogue row."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from capmon.catalog.models import DeclarationSet, Product, Site
from capmon.errors import NotFoundError
from capmon.mdb.extract import mdb_folder
from capmon.mdb.query import MarkersDatabase, open_mdb
from capmon.parcels import load_lut, load_parcels, load_parcels_file, prepare_lut
from capmon.parcels.store import latest_row
from capmon.sites import get_site
from capmon.workspace import Workspace


def season_mdb_folder(workspace: Workspace, site: Site, season_name: str, year: int) -> Path:
    """The MDB folder of a season for the newest declarations of ``year``, which must exist."""
    with workspace.session() as session:
        declarations = latest_row(session, DeclarationSet, get_site(session, site.name), year)
        if declarations is None:
            raise NotFoundError(f"site {site.name!r} has no declarations for {year}")
        folder = mdb_folder(workspace, site.short_name, season_name, declarations.id)
    if not folder.exists():
        raise NotFoundError(
            f"no markers database for site {site.name!r}, season {season_name} at {folder}; "
            "extract it first with `capmon run mdb` or pass --mdb"
        )
    return folder


def declared_parcels(path: str | Path) -> gpd.GeoDataFrame:
    """The parcels of a capmon parcels file (``--parcels``) that are not deleted."""
    parcels = load_parcels_file(path)
    return parcels[~parcels["is_deleted"].astype(bool)].reset_index(drop=True)


def season_parcels(
    workspace: Workspace, site: Site, year: int, given: str | Path | None = None
) -> gpd.GeoDataFrame:
    """The parcels a processor works on: those of a given parcels file (``--parcels``, deleted
    rows left out), else the newest stored declarations of ``year``."""
    if given is not None:
        return declared_parcels(given)
    return load_parcels(workspace, site.name, year)


def season_lut(
    workspace: Workspace, site: Site, year: int, given: str | Path | None = None
) -> pd.DataFrame:
    """A given crop LUT file (``--lut``), else the stored LUT of ``year``."""
    return prepare_lut(given).table if given is not None else load_lut(workspace, site.name, year)


def season_mdb(
    workspace: Workspace, site: Site, season_name: str, year: int, given: str | Path | None = None
) -> MarkersDatabase:
    """A given MDB folder (``--mdb``), else the season's MDB (which must exist)."""
    return open_mdb(
        given if given is not None else season_mdb_folder(workspace, site, season_name, year)
    )


def midnight(day: date | None) -> datetime | None:
    """``day`` at 00:00 UTC (catalogue acquisition bounds), or None."""
    return None if day is None else datetime.combine(day, time(), tzinfo=UTC)


def product_name(
    prefix: str, site: Site, first: date | None, last: date | None, now: datetime | None = None
) -> str:
    """Sen4CAP-like name: ``SEN4CAP_<prefix>_S<site id>_V<first>_<last>_<created>``."""
    start = first.strftime("%Y%m%d") if first else "none"
    end = last.strftime("%Y%m%d") if last else "none"
    created = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"SEN4CAP_{prefix}_S{site.id}_V{start}_{end}_{created}"


def new_product_folder(workspace: Workspace, site: Site, processor_id: str, name: str) -> Path:
    """``<home>/products/<site>/<processor>/<name>``, with a suffix when the name is taken.

    The name is reserved with a hidden ``.<name>.reserved`` file created exclusively, so two
    runs started in the same second get two folders; :func:`register_product` removes it."""
    base = workspace.path(Path("products") / site.short_name / processor_id / name)
    base.parent.mkdir(parents=True, exist_ok=True)
    suffix = 1
    while True:
        folder = base if suffix == 1 else base.with_name(f"{name}_{suffix}")
        if not folder.exists():
            try:
                with _reservation(folder).open("x", encoding="utf-8"):
                    return folder
            except FileExistsError:
                pass
        suffix += 1


def _reservation(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.reserved")


def register_product(
    workspace: Workspace,
    site: Site,
    folder: Path,
    product_type: str,
    first: date | None,
    last: date | None,
    properties: Mapping[str, Any],
) -> None:
    """Add the catalogue row of a product whose files are complete."""
    with workspace.session() as session:
        session.add(
            Product(
                site_id=site.id,
                name=folder.name,
                product_type=product_type,
                acquired_at=midnight(last),
                acquired_first_at=midnight(first),
                path=str(folder),
                properties=json.loads(json.dumps(dict(properties), default=str)),
            )
        )
    _reservation(folder).unlink(missing_ok=True)
