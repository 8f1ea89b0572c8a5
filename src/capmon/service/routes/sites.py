"""Sites and seasons: list, read, change, delete; and a site's parcel statistics.

``POST /sites`` (an AOI upload) is in :mod:`capmon.service.routes.uploads`. Reading needs
read access to the site; changing a site's ``enabled`` flag and creating or changing seasons
needs write access (its operators, admins); deleting a site, or forcing the deletion of a
season that holds data, needs an admin (see :mod:`capmon.service.site_admin`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote

import pandas as pd
import shapely
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from capmon.catalog.models import CropLut, DeclarationSet, Season, Site
from capmon.errors import NotFoundError, StorageError
from capmon.parcels import store
from capmon.parcels.codes import crop_key
from capmon.service.auth import CurrentPrincipal, ReadableSite, WritableSite, site_for
from capmon.service.errors import ForbiddenError
from capmon.service.links import utc
from capmon.service.site_admin import delete_season, delete_site, update_season
from capmon.service.state import service_state
from capmon.sites import (
    SEASON_NAME,
    SeasonDates,
    check_season_name,
    create_season,
    get_season,
    list_seasons,
    list_sites,
)

router = APIRouter(tags=["Sites"])

CONFLICT: dict[str, Any] = {
    "description": "Conflict: the site or season holds data, overlaps another, or a job runs",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExceptionDocument"}}},
}

MAX_CROPS = 100


class SeasonOut(BaseModel):
    """A season of a site."""

    name: str
    start: date
    mid: date = Field(description="Mid-season: L4A's schedule starts here.")
    end: date
    enabled: bool


class SiteOut(BaseModel):
    """A site: its AOI's bounding box, Sentinel-2 tiles and seasons."""

    id: int
    name: str
    short_name: str = Field(description="Lower-case name used in workspace folders.")
    enabled: bool
    tiles: list[str] = Field(description="Sentinel-2 MGRS tiles of the AOI.")
    bbox: list[float] = Field(description="AOI bounds in EPSG:4326: west, south, east, north.")
    seasons: list[SeasonOut]
    created_at: datetime | None = None


class SiteDetail(SiteOut):
    """A site with its AOI as a GeoJSON MultiPolygon (EPSG:4326)."""

    aoi: dict[str, Any]


class SitePatch(BaseModel):
    """Site fields that can change. The name cannot: it names the site's folders."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = Field(
        default=None, description="A disabled site is left out of scheduled runs."
    )


class SeasonCreate(BaseModel):
    """A new season: its dates must not overlap another season of the site."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        pattern=SEASON_NAME.pattern, description="e.g. 2024; names the season's MDB folder."
    )
    start: date
    end: date
    mid: date | None = Field(default=None, description="Default: halfway.")
    enabled: bool = True


class SeasonPatch(BaseModel):
    """Season fields that can change (the name cannot: it names the season's MDB folder)."""

    model_config = ConfigDict(extra="forbid")
    start: date | None = None
    mid: date | None = Field(
        default=None, description="Default: kept if still inside the season, else halfway."
    )
    end: date | None = None
    enabled: bool | None = None


class CropCount(BaseModel):
    ori_crop: str | None
    ct: str | None = Field(description="The LUT's crop type name (when a LUT is stored).")
    ctnum: int | None
    parcels: int
    area_ha: float


class ParcelStats(BaseModel):
    """Figures of a declaration set (the newest of the year by default)."""

    year: int
    version: int
    parcels: int = Field(description="Parcels not deleted.")
    deleted: int
    area_ha: float
    invalid: int = Field(description="Parcels with GeomValid false.")
    duplicates: int
    overlaps: int
    zero_s2_pixels: int
    crops: list[CropCount] = Field(description=f"Parcels by crop code (first {MAX_CROPS}).")
    lut_version: int | None


def season_out(season: Season) -> dict[str, Any]:
    return {
        "name": season.name,
        "start": season.start_date,
        "mid": season.mid_date,
        "end": season.end_date,
        "enabled": season.enabled,
    }


def site_out(site: Site, *, with_aoi: bool = False) -> dict[str, Any]:
    """The JSON form of a site (its seasons loaded within the caller's session)."""
    out: dict[str, Any] = {
        "id": site.id,
        "name": site.name,
        "short_name": site.short_name,
        "enabled": site.enabled,
        "tiles": list(site.tiles or []),
        "bbox": [round(v, 6) for v in site.aoi.bounds],
        "seasons": [season_out(s) for s in site.seasons],
        "created_at": utc(site.created_at),
    }
    if with_aoi:
        out["aoi"] = shapely.geometry.mapping(site.aoi)
    return out


def _site(session: Session, site: Site) -> Site:
    found = session.get(Site, site.id)
    if found is None:
        raise NotFoundError(f"no site named {site.name!r}")
    return found


@router.get("/sites", response_model=list[SiteOut], summary="Sites you may read")
def sites_list(request: Request, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """Every site for admins; for others the sites they are bound to."""
    with service_state(request).workspace.session() as session:
        return [site_out(s) for s in list_sites(session) if principal.can_read(s.id)]


@router.get("/sites/{site}", response_model=SiteDetail, summary="A site")
def site_read(request: Request, site: ReadableSite) -> dict[str, Any]:
    with service_state(request).workspace.session() as session:
        return site_out(_site(session, site), with_aoi=True)


@router.patch("/sites/{site}", response_model=SiteDetail, summary="Enable or disable a site")
def site_change(request: Request, site: WritableSite, change: SitePatch) -> dict[str, Any]:
    """Operators of the site and admins."""
    with service_state(request).workspace.session() as session:
        row = _site(session, site)
        if change.enabled is not None:
            row.enabled = change.enabled
        session.flush()
        return site_out(row, with_aoi=True)


@router.delete(
    "/sites/{site}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a site (admin)",
    responses={409: CONFLICT},
)
def site_delete(
    request: Request,
    site: str,
    principal: CurrentPrincipal,
    force: Annotated[
        bool,
        Query(
            description="Also delete what the site holds: seasons, declarations, LUTs, "
            "products and their files, jobs, practices, configs. Refused while a job runs."
        ),
    ] = False,
) -> Response:
    """Refused with 409 when the site holds data, unless ``force=true``."""
    if not principal.is_admin:
        raise ForbiddenError("deleting a site needs the admin role")
    state = service_state(request)
    found = site_for(state.workspace, principal, site, write=True)
    delete_site(state.workspace, found.id, force=force)
    state.tokens.forget()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sites/{site}/seasons", response_model=list[SeasonOut], summary="Seasons of a site")
def seasons_list(request: Request, site: ReadableSite) -> list[dict[str, Any]]:
    with service_state(request).workspace.session() as session:
        return [season_out(s) for s in list_seasons(session, _site(session, site))]


@router.post(
    "/sites/{site}/seasons",
    response_model=SeasonOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a season",
    responses={409: CONFLICT},
)
def season_create(
    request: Request, response: Response, site: WritableSite, season: SeasonCreate
) -> dict[str, Any]:
    """Dates as YYYY-MM-DD; start < end, mid within; 409 when it overlaps another season."""
    name = check_season_name(season.name)
    dates = SeasonDates.parse(season.start, season.end, season.mid)
    with service_state(request).workspace.session() as session:
        created = create_season(session, _site(session, site), name, dates)
        created.enabled = season.enabled
        session.flush()
        answer = season_out(created)
    response.headers["Location"] = (
        f"/sites/{quote(site.name, safe='')}/seasons/{quote(name, safe='')}"
    )
    return answer


@router.get("/sites/{site}/seasons/{season}", response_model=SeasonOut, summary="A season")
def season_read(request: Request, site: ReadableSite, season: str) -> dict[str, Any]:
    with service_state(request).workspace.session() as session:
        return season_out(get_season(session, _site(session, site), season))


@router.patch(
    "/sites/{site}/seasons/{season}",
    response_model=SeasonOut,
    summary="Change a season",
    responses={409: CONFLICT},
)
def season_change(
    request: Request, site: WritableSite, season: str, change: SeasonPatch
) -> dict[str, Any]:
    """New dates are validated as on creation (409 on overlap)."""
    with service_state(request).workspace.session() as session:
        row = _site(session, site)
        found = update_season(
            row,
            get_season(session, row, season),
            start=change.start,
            mid=change.mid,
            end=change.end,
            enabled=change.enabled,
        )
        session.flush()
        return season_out(found)


@router.delete(
    "/sites/{site}/seasons/{season}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a season",
    responses={409: CONFLICT},
)
def season_delete(
    request: Request,
    site: WritableSite,
    season: str,
    principal: CurrentPrincipal,
    force: Annotated[
        bool,
        Query(description="Admin only: also delete its extracted MDB (jobs stay in history)."),
    ] = False,
) -> Response:
    """Operators may delete a season without data; 409 when it has an MDB or jobs."""
    if force and not principal.is_admin:
        raise ForbiddenError("force=true needs the admin role")
    delete_season(service_state(request).workspace, site.id, season, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sites/{site}/parcels/stats", response_model=ParcelStats, summary="Parcel statistics")
def parcel_stats(
    request: Request,
    site: ReadableSite,
    year: Annotated[
        int | None, Query(ge=2000, le=2100, description="Default: the newest year.")
    ] = None,
    version: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Default: the newest.")
    ] = None,
) -> dict[str, Any]:
    """Counts, area and crop codes of the site's declarations, from the stored parcels table."""
    workspace = service_state(request).workspace
    with workspace.session() as session:
        row = _site(session, site)
        if year is None:
            year = session.scalar(
                select(func.max(DeclarationSet.year)).where(DeclarationSet.site_id == row.id)
            )
            if year is None:
                raise NotFoundError(f"site {row.name!r} has no declarations")
        declarations = store.version_row(session, DeclarationSet, row, year, version)
        parcels_path, found_version = declarations.parcels_path, declarations.version
        lut = store.latest_row(session, CropLut, row, year)
        lut_info = (lut.version, lut.lut_path) if lut is not None else None
    columns = ["ori_crop", "GeomValid", "Duplic", "Overlap", "Area_meters", "S2Pix", "is_deleted"]
    path = workspace.path(parcels_path)
    if not path.is_file():
        raise StorageError(f"{path}: the stored parcels table is missing from the workspace")
    parcels = pd.read_parquet(path, columns=columns)
    deleted = parcels["is_deleted"].astype(bool)
    live = parcels[~deleted]
    crops = _crop_counts(live, store.read_table(workspace, lut_info[1]) if lut_info else None)
    return {
        "year": year,
        "version": found_version,
        "parcels": len(live),
        "deleted": int(deleted.sum()),
        "area_ha": round(float(live["Area_meters"].sum()) / 1e4, 2),
        "invalid": int((~live["GeomValid"].astype(bool)).sum()),
        "duplicates": int(live["Duplic"].astype(bool).sum()),
        "overlaps": int(live["Overlap"].astype(bool).sum()),
        "zero_s2_pixels": int((live["S2Pix"] == 0).sum()),
        "crops": crops,
        "lut_version": lut_info[0] if lut_info else None,
    }


def _crop_counts(parcels: pd.DataFrame, lut: pd.DataFrame | None) -> list[dict[str, Any]]:
    keys = [crop_key(v) for v in parcels["ori_crop"].tolist()]
    table = pd.DataFrame(
        {
            "key": keys,
            "ori_crop": [None if pd.isna(v) else str(v) for v in parcels["ori_crop"].tolist()],
            "area": parcels["Area_meters"].to_numpy(),
        }
    )
    grouped = (
        table.groupby("key", dropna=False, sort=False)
        .agg(ori_crop=("ori_crop", "first"), parcels=("area", "size"), area=("area", "sum"))
        .sort_values(["parcels", "area"], ascending=False)
        .head(MAX_CROPS)
    )
    names: dict[Any, tuple[str | None, int | None]] = {}
    if lut is not None:
        for key, ct, ctnum in zip(lut["crop_key"], lut["ct"], lut["ctnum"], strict=True):
            names[key] = (None if pd.isna(ct) else str(ct), None if pd.isna(ctnum) else int(ctnum))
    out = []
    for key, entry in grouped.iterrows():
        ct, ctnum = names.get(key, (None, None))
        out.append(
            {
                "ori_crop": entry["ori_crop"],
                "ct": ct,
                "ctnum": ctnum,
                "parcels": int(entry["parcels"]),
                "area_ha": round(float(entry["area"]) / 1e4, 2),
            }
        )
    return out
