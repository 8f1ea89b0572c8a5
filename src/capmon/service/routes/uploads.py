"""Uploads: a site's AOI, declarations, crop LUT, L4B/L4C configs and L4C practice tables.

Every upload is a ``multipart/form-data`` request with the file in the ``file`` field and the
options as text fields (named as the CLI options, e.g. ``parcel_id_col``). The body is
streamed into the workspace and refused with 413 beyond ``max_upload_bytes``
(:mod:`capmon.service.upload_files`), then validated and stored by the CLI's import
functions (:mod:`capmon.service.upload_imports`): 201 with the import report, or 400 naming
the file, row, column or key, with nothing stored. Operators of the site and admins may
upload; creating a site needs an admin. Access is checked before the body is read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from capmon.catalog.models import DeclarationSet, ImportMode, Site
from capmon.parcels import list_luts
from capmon.service.auth import (
    AdminPrincipal,
    CurrentPrincipal,
    Principal,
    ReadableSite,
    WritableSite,
)
from capmon.service.links import utc
from capmon.service.routes.sites import SiteDetail, site_out
from capmon.service.state import service_state
from capmon.service.upload_files import (
    VECTOR_SUFFIXES,
    ReceivedUpload,
    UploadSpec,
    form_values,
    multipart_request_body,
    upload_receiver,
)
from capmon.service.upload_imports import (
    create_site_from_upload,
    declarations_upload,
    l4b_config_upload,
    l4c_config_upload,
    lut_upload,
    practices_upload,
    stored_configs,
    stored_practice_tables,
)
from capmon.workspace import Workspace

router = APIRouter(tags=["Uploads"])

YEAR = Field(ge=2000, le=2100, description="The year the file applies to.")
TEXT_FILES = frozenset({".csv", ".txt", ".cfg", ".ini"})


class UploadOut(BaseModel):
    """The answer to an upload: the stored version and the import report."""

    kind: str = Field(description="declarations, lut, practices, l4b-config or l4c-config")
    site: str
    year: int
    version: int = Field(description="The new version (1, 2, ... per site, year and kind).")
    files: list[str] = Field(description="The uploaded file names.")
    stored: str = Field(description="Where it is stored, relative to the workspace.")
    report: dict[str, Any] = Field(
        description="The import report: counts, problems by row (file row numbers), notes."
    )


class SiteForm(BaseModel):
    """``POST /sites``: the new site's name and the AOI layer to read."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128, description="Letters, digits, ' _-.'.")
    layer: str = Field(default="", max_length=256, description="Layer of the AOI file.")


class DeclarationsForm(BaseModel):
    """``POST /sites/{site}/declarations``: year, column mapping and import mode."""

    model_config = ConfigDict(extra="forbid")
    year: int = YEAR
    parcel_id_col: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Parcel id column(s), joined with '-' [default: fiboa id].",
    )
    holding_id_col: list[str] = Field(
        default_factory=list, max_length=8, description="Holding id column(s)."
    )
    crop_code_col: str = Field(
        default="", max_length=256, description="Crop code column [default: fiboa crop:code]."
    )
    mode: Literal["update", "replace", "incremental"] = Field(
        default="update",
        description="update: parcels missing from the file are marked deleted; incremental: "
        "they are kept; replace: start again (new NewIDs).",
    )
    layer: str = Field(default="", max_length=256, description="Layer or zip member to read.")
    encoding: str = Field(
        default="",
        max_length=40,
        pattern=r"^[A-Za-z0-9_.:-]*$",
        description="Attribute encoding, e.g. cp1252 [default: declared].",
    )
    repair: bool = Field(default=False, description="Repair invalid geometries (make_valid).")
    on_duplicate_id: Literal["error", "suffix"] = Field(
        default="error", description="error: refuse duplicate parcel ids; suffix: -A, -B..."
    )
    skip_non_polygons: bool = Field(
        default=False, description="Drop (and count) features that are not polygons."
    )


class LutForm(BaseModel):
    """``POST /sites/{site}/luts``."""

    model_config = ConfigDict(extra="forbid")
    year: int = YEAR
    format: Literal["sen4cap", "hcat"] = Field(
        default="sen4cap",
        description="sen4cap: one Sen4CAP LUT CSV; hcat: EuroCrops HCAT mapping CSV(s).",
    )


class YearForm(BaseModel):
    """``POST /sites/{site}/configs/l4b``."""

    model_config = ConfigDict(extra="forbid")
    year: int = YEAR


class L4CConfigForm(BaseModel):
    """``POST /sites/{site}/configs/l4c``."""

    model_config = ConfigDict(extra="forbid")
    year: int = YEAR
    country: str = Field(
        pattern=r"^[A-Za-z]{2,3}$", description="Country code of the rules, e.g. NLD."
    )


class PracticesForm(BaseModel):
    """``POST /sites/{site}/practices``."""

    model_config = ConfigDict(extra="forbid")
    year: int = YEAR
    practice: Literal["", "catchcrop", "fallow", "nfc", "na"] = Field(
        default="", description="catchcrop, fallow, nfc or na [default: the file's PRACTICE]."
    )


AOI_UPLOAD = UploadSpec("AOI", suffixes=VECTOR_SUFFIXES, sniff=True)
DECLARATIONS_UPLOAD = UploadSpec("declarations", suffixes=VECTOR_SUFFIXES, sniff=True)
LUT_UPLOAD = UploadSpec("crop LUT", max_files=8, suffixes=None, default_suffix=".csv")
L4B_UPLOAD = UploadSpec("L4B config", suffixes=None, default_suffix=".cfg")
L4C_UPLOAD = UploadSpec("L4C config", suffixes=None, default_suffix=".cfg")
PRACTICES_UPLOAD = UploadSpec("practice table", suffixes=None, default_suffix=".csv")

VECTOR_FILE = (
    "Zipped shapefile, GeoPackage, GML, GeoJSON, FlatGeobuf or GeoParquet (any CRS, which "
    "must be declared)."
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid file or field: the message names the file, row, column."},
    401: {"description": "No valid bearer token."},
    403: {"description": "Not allowed for your role or site."},
    413: {"description": "Larger than the service's upload limit; nothing stored."},
}


def _body(model: type[BaseModel], spec: UploadSpec, description: str) -> dict[str, Any]:
    return {"requestBody": multipart_request_body(model, spec, description)}


AoiUpload = Annotated[ReceivedUpload, Depends(upload_receiver(AOI_UPLOAD))]
DeclarationsUpload = Annotated[ReceivedUpload, Depends(upload_receiver(DECLARATIONS_UPLOAD))]
LutUpload = Annotated[ReceivedUpload, Depends(upload_receiver(LUT_UPLOAD))]
L4BUpload = Annotated[ReceivedUpload, Depends(upload_receiver(L4B_UPLOAD))]
L4CUpload = Annotated[ReceivedUpload, Depends(upload_receiver(L4C_UPLOAD))]
PracticesUpload = Annotated[ReceivedUpload, Depends(upload_receiver(PRACTICES_UPLOAD))]


@router.post(
    "/sites",
    response_model=SiteDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Create a site from an AOI file (admin)",
    tags=["Sites"],
    responses={**_ERRORS, 409: {"description": "A site with that name exists."}},
    openapi_extra=_body(SiteForm, AOI_UPLOAD, "AOI polygons: " + VECTOR_FILE),
)
def site_create(
    request: Request, response: Response, _admin: AdminPrincipal, upload: AoiUpload
) -> dict[str, Any]:
    """Its Sentinel-2 tiles are derived from the AOI (polygons only, valid, any CRS)."""
    form = form_values(upload, SiteForm)
    workspace = service_state(request).workspace
    site_id = create_site_from_upload(workspace, form.name, upload, form.layer or None)
    with workspace.session() as session:
        site = session.get(Site, site_id)
        assert site is not None
        answer = site_out(site, with_aoi=True)
    response.headers["Location"] = f"/sites/{quote(answer['name'], safe='')}"
    return answer


@router.post(
    "/sites/{site}/declarations",
    response_model=UploadOut,
    status_code=status.HTTP_201_CREATED,
    summary="Upload declarations (parcels) for a year",
    responses={**_ERRORS, 409: {"description": "Another import of the year finished first."}},
    openapi_extra=_body(DeclarationsForm, DECLARATIONS_UPLOAD, "Declarations: " + VECTOR_FILE),
)
def declarations_create(
    request: Request, site: WritableSite, upload: DeclarationsUpload
) -> dict[str, Any]:
    """Stored as the next version of the site's parcels for the year (as
    ``capmon declarations import``); the report counts the parcels read, imported, invalid,
    duplicated, overlapping, without pixels, inserted/updated/deleted, with the first problem
    rows of each kind."""
    form = form_values(upload, DeclarationsForm)
    answer = declarations_upload(
        service_state(request).workspace,
        site,
        upload,
        form.year,
        parcel_id_cols=form.parcel_id_col,
        holding_id_cols=form.holding_id_col,
        crop_code_col=form.crop_code_col or None,
        mode=form.mode,
        layer=form.layer or None,
        encoding=form.encoding or None,
        repair=form.repair,
        on_duplicate_id=form.on_duplicate_id,
        skip_non_polygons=form.skip_non_polygons,
    )
    return answer.to_dict()


class DeclarationVersion(BaseModel):
    year: int
    version: int
    mode: str
    parcels: int = Field(description="Parcels not deleted.")
    source_file: str
    stored: str
    created_at: dt.datetime | None = None
    report: dict[str, Any]


def shown_paths(workspace: Workspace, principal: Principal, site: Site, listing: Any) -> Any:
    """``listing`` as a reader of ``site`` sees it: operators of the site and admins see the
    server's paths (to give as process inputs); viewers see paths relative to the workspace
    (a file outside it by its name), never the server's folders."""
    if principal.can_write(site.id):
        return listing
    home = str(workspace.home.resolve()).rstrip("/") + "/"
    raw_home = str(workspace.home).rstrip("/") + "/"

    def hide(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: hide(entry) for key, entry in value.items()}
        if isinstance(value, list):
            return [hide(entry) for entry in value]
        if isinstance(value, str) and value.startswith("/"):
            for prefix in (home, raw_home):
                if value.startswith(prefix):
                    return value.removeprefix(prefix)
            return value.rstrip("/").rsplit("/", 1)[-1]
        return value

    return hide(listing)


@router.get(
    "/sites/{site}/declarations",
    response_model=list[DeclarationVersion],
    summary="Declaration versions and their reports",
)
def declarations_list(
    request: Request,
    principal: CurrentPrincipal,
    site: ReadableSite,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="Only this year.")] = None,
) -> list[dict[str, Any]]:
    workspace = service_state(request).workspace
    with workspace.session() as session:
        query = select(DeclarationSet).where(DeclarationSet.site_id == site.id)
        if year is not None:
            query = query.where(DeclarationSet.year == year)
        rows = session.scalars(query.order_by(DeclarationSet.year, DeclarationSet.version))
        listing = [
            {
                "year": r.year,
                "version": r.version,
                "mode": ImportMode(r.import_mode).value,
                "parcels": r.parcel_count,
                "source_file": r.source_file,
                "stored": r.parcels_path,
                "created_at": utc(r.created_at),
                "report": r.report,
            }
            for r in rows
        ]
    return list(shown_paths(workspace, principal, site, listing))


@router.post(
    "/sites/{site}/luts",
    response_model=UploadOut,
    status_code=status.HTTP_201_CREATED,
    summary="Upload a crop LUT for a year",
    responses=_ERRORS,
    openapi_extra=_body(
        LutForm, LUT_UPLOAD, "Sen4CAP LUT CSV (UTF-8), or EuroCrops HCAT mapping CSV(s)."
    ),
)
def lut_create(request: Request, site: WritableSite, upload: LutUpload) -> dict[str, Any]:
    """As ``capmon lut import``; the report lists declared crop codes the LUT lacks."""
    form = form_values(upload, LutForm)
    answer = lut_upload(service_state(request).workspace, site, upload, form.year, form.format)
    return answer.to_dict()


class LutVersion(BaseModel):
    year: int
    version: int
    kind: str
    entries: int
    source_file: str
    stored: str
    created_at: dt.datetime | None = None
    report: dict[str, Any]


@router.get("/sites/{site}/luts", response_model=list[LutVersion], summary="Crop LUT versions")
def luts_list(
    request: Request, principal: CurrentPrincipal, site: ReadableSite
) -> list[dict[str, Any]]:
    workspace = service_state(request).workspace
    listing = [
        {
            "year": i.year,
            "version": i.version,
            "kind": i.kind,
            "entries": i.entries,
            "source_file": i.source_file,
            "stored": i.lut_path,
            "created_at": utc(i.created_at),
            "report": i.report,
        }
        for i in list_luts(workspace, site.name)
    ]
    return list(shown_paths(workspace, principal, site, listing))


@router.post(
    "/sites/{site}/configs/l4b",
    response_model=UploadOut,
    status_code=status.HTTP_201_CREATED,
    summary="Upload a Sen4CAP L4B config for a year",
    responses=_ERRORS,
    openapi_extra=_body(YearForm, L4B_UPLOAD, "A Sen4CAP L4B .cfg file."),
)
def l4b_config_create(request: Request, site: WritableSite, upload: L4BUpload) -> dict[str, Any]:
    """Validated with the L4B reader (errors name line, section and key); ``report.path`` is
    the stored file, to give as the ``config`` parameter of an ``l4b`` run."""
    form = form_values(upload, YearForm)
    return l4b_config_upload(service_state(request).workspace, site, upload, form.year).to_dict()


@router.post(
    "/sites/{site}/configs/l4c",
    response_model=UploadOut,
    status_code=status.HTTP_201_CREATED,
    summary="Upload a Sen4CAP L4C config for a year",
    responses=_ERRORS,
    openapi_extra=_body(L4CConfigForm, L4C_UPLOAD, "A Sen4CAP L4C .cfg file."),
)
def l4c_config_create(request: Request, site: WritableSite, upload: L4CUpload) -> dict[str, Any]:
    """As ``capmon practices import FILE.cfg --country``; L4C runs of the year use the newest."""
    form = form_values(upload, L4CConfigForm)
    answer = l4c_config_upload(
        service_state(request).workspace, site, upload, form.year, form.country
    )
    return answer.to_dict()


class StoredConfig(BaseModel):
    kind: Literal["l4b", "l4c"]
    year: int
    version: int
    stored: str
    path: str = Field(description="The stored .cfg file (an l4b run's config parameter).")
    report: dict[str, Any]


@router.get(
    "/sites/{site}/configs", response_model=list[StoredConfig], summary="Stored L4B/L4C configs"
)
def configs_list(
    request: Request, principal: CurrentPrincipal, site: ReadableSite
) -> list[dict[str, Any]]:
    workspace = service_state(request).workspace
    return list(shown_paths(workspace, principal, site, stored_configs(workspace, site)))


@router.post(
    "/sites/{site}/practices",
    response_model=UploadOut,
    status_code=status.HTTP_201_CREATED,
    summary="Upload an L4C practice table for a year",
    responses={**_ERRORS, 409: {"description": "No declarations for the year yet."}},
    openapi_extra=_body(
        PracticesForm, PRACTICES_UPLOAD, "A Sen4CAP practice CSV (CatchCrop, Fallow, NFC, NA)."
    ),
)
def practices_create(
    request: Request, site: WritableSite, upload: PracticesUpload
) -> dict[str, Any]:
    """As ``capmon practices import``: FIELD_IDs are matched to the year's declarations (the
    report lists unknown ones; none matching is an error)."""
    form = form_values(upload, PracticesForm)
    answer = practices_upload(
        service_state(request).workspace, site, upload, form.year, form.practice or None
    )
    return answer.to_dict()


class StoredPracticeTable(BaseModel):
    practice: str
    year: int
    version: int
    stored: str
    report: dict[str, Any]


@router.get(
    "/sites/{site}/practices",
    response_model=list[StoredPracticeTable],
    summary="Stored L4C practice tables",
)
def practices_list(
    request: Request, principal: CurrentPrincipal, site: ReadableSite
) -> list[dict[str, Any]]:
    workspace = service_state(request).workspace
    listing = stored_practice_tables(workspace, site)
    return list(shown_paths(workspace, principal, site, listing))
