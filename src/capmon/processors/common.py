"""What several processors need from a workspace: the season's MDB, the declared parcels of a
file, and catalogue timestamps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import geopandas as gpd

from capmon.catalog.models import DeclarationSet, Site
from capmon.errors import NotFoundError
from capmon.mdb.extract import mdb_folder
from capmon.parcels import load_parcels_file
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


def midnight(day: date | None) -> datetime | None:
    """``day`` at 00:00 UTC (catalogue acquisition bounds), or None."""
    return None if day is None else datetime.combine(day, time(), tzinfo=UTC)
