"""STAC API 1.0 of the products (core, collections, OGC API - Features, item search) and the
authenticated download of their files.

Documents are built by :class:`capmon.service.stac.StacCatalog` for the request's user: only
the sites it may read appear anywhere (collections' extents, item lists, search). An item or
asset of another site answers 403 whether it exists or not; a missing one of a readable site
404. Asset paths that leave the item's folder (``..``, absolute, links) answer 404.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from capmon.service.auth import CurrentPrincipal, OptionalPrincipal, published_reader
from capmon.service.links import base_url
from capmon.service.params import PAGING_TOKEN, STAC_BBOX, STAC_DATETIME
from capmon.service.stac import (
    CONFORMANCE,
    GEOJSON,
    JSON_TYPE,
    MAX_LIMIT,
    STAC_VERSION,
    Search,
    SortKey,
    StacCatalog,
    media_type,
    parse_bbox,
    parse_bbox_text,
    parse_intersects,
    split_list,
)
from capmon.service.state import service_state

router = APIRouter(prefix="/stac", tags=["STAC"])


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON


GEOJSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {GEOJSON: {"schema": {"type": "object"}}}}
}
PAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": f"A FeatureCollection of at most {MAX_LIMIT} items, newest first; a "
        "'next' link when more follow",
        "content": {
            GEOJSON: {
                "schema": {
                    "type": "object",
                    "required": ["type", "features", "numberReturned", "links"],
                    "properties": {
                        "type": {"type": "string", "enum": ["FeatureCollection"]},
                        "features": {
                            "type": "array",
                            "maxItems": MAX_LIMIT,
                            "items": {"type": "object"},
                        },
                        "numberReturned": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
                        "links": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    }
}
"""Pages of items: ``limit`` above the maximum is served as the maximum (STAC API)."""
LIMIT = f"items per page (default 10); more than {MAX_LIMIT} is served as {MAX_LIMIT}"
BBOX = (
    "west,south,east,north (or the 3D form west,south,low,east,north,high) in decimal "
    "degrees (EPSG:4326); south <= north, west > east crosses the antimeridian"
)
DATETIME = (
    "an RFC 3339 date-time with its offset (2024-05-01T00:00:00Z) or a date (the whole day), "
    "or an interval start/end with '..' or nothing for an open end"
)
TOKEN = "paging token of a 'next' link"


class SearchBody(BaseModel):
    """POST /stac/search: STAC API item search parameters."""

    model_config = ConfigDict(extra="forbid")

    collections: list[str] | None = None
    ids: list[str] | None = None
    bbox: list[Annotated[float, Field(strict=True, ge=-180, le=180)]] | None = Field(
        default=None, min_length=4, max_length=6, description=BBOX
    )
    intersects: dict[str, Any] | None = None
    datetime: str | None = Field(default=None, pattern=STAC_DATETIME, description=DATETIME)
    limit: int | None = Field(default=None, ge=1, description=LIMIT)
    token: str | None = Field(default=None, pattern=PAGING_TOKEN, description=TOKEN)


def _catalog(request: Request, principal: CurrentPrincipal) -> StacCatalog:
    return StacCatalog(service_state(request).workspace, principal, base_url(request))


def _link(base: str, path: str, rel: str, media: str, **extra: Any) -> dict[str, Any]:
    return {"href": f"{base}{path}", "rel": rel, "type": media, **extra}


def _feature_collection(
    request: Request,
    features: list[dict[str, Any]],
    next_key: SortKey | None,
    links: list[dict[str, Any]],
) -> dict[str, Any]:
    base = base_url(request)
    query = f"?{request.url.query}" if request.url.query else ""
    links = [
        _link(base, f"{request.url.path}{query}", "self", GEOJSON),
        _link(base, "/stac", "root", JSON_TYPE),
        *links,
    ]
    if next_key is not None and request.method == "GET":
        params = {k: v for k, v in request.query_params.items() if k != "token"}
        params["token"] = next_key.encode()
        links.append(
            {
                "href": f"{base}{request.url.path}?{urlencode(params)}",
                "rel": "next",
                "type": GEOJSON,
                "method": "GET",
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": len(features),
        "links": links,
    }


@router.get("", summary="STAC landing page")
def landing(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """The root catalog: conformance, links to the collections and to item search."""
    catalog = _catalog(request, principal)
    base = catalog.base
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "capmon",
        "title": "capmon products",
        "description": (
            "Input products (Sentinel-1, Sentinel-2, Landsat), markers databases and processor "
            "products of the sites you can read."
        ),
        "conformsTo": list(CONFORMANCE),
        "links": [
            _link(base, "/stac", "self", JSON_TYPE),
            _link(base, "/stac", "root", JSON_TYPE),
            _link(base, "/stac/collections", "data", JSON_TYPE),
            _link(base, "/stac/conformance", "conformance", JSON_TYPE),
            _link(base, "/stac/search", "search", GEOJSON, method="GET"),
            _link(base, "/stac/search", "search", GEOJSON, method="POST"),
            _link(
                base,
                "/openapi.json",
                "service-desc",
                "application/vnd.oai.openapi+json;version=3.0",
            ),
            *(
                _link(base, f"/stac/collections/{cid}", "child", JSON_TYPE)
                for cid in catalog.collection_ids()
            ),
        ],
    }


@router.get("/conformance", summary="STAC conformance classes")
def conformance(principal: CurrentPrincipal) -> dict[str, Any]:
    del principal
    return {"conformsTo": list(CONFORMANCE)}


@router.get("/collections", summary="Collections")
def collections(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """Every collection, with the extent of the items you can see."""
    catalog = _catalog(request, principal)
    base = catalog.base
    return {
        "collections": catalog.collections(),
        "links": [
            _link(base, "/stac/collections", "self", JSON_TYPE),
            _link(base, "/stac", "root", JSON_TYPE),
            _link(base, "/stac", "parent", JSON_TYPE),
        ],
    }


@router.get("/collections/{cid}", summary="One collection")
def collection(request: Request, principal: CurrentPrincipal, cid: str) -> dict[str, Any]:
    return _catalog(request, principal).collection(cid)


@router.get(
    "/collections/{cid}/items",
    summary="Items of a collection",
    response_class=GeoJSONResponse,
    responses=PAGE_RESPONSE,
)
def items(
    request: Request,
    principal: CurrentPrincipal,
    cid: str,
    limit: Annotated[int | None, Query(ge=1, description=LIMIT)] = None,
    bbox: Annotated[str | None, Query(pattern=STAC_BBOX, description=BBOX)] = None,
    datetime: Annotated[str | None, Query(pattern=STAC_DATETIME, description=DATETIME)] = None,
    token: Annotated[str | None, Query(pattern=PAGING_TOKEN, description=TOKEN)] = None,
) -> GeoJSONResponse:
    """The collection's items, newest first, filtered by bbox and datetime, in pages."""
    catalog = _catalog(request, principal)
    catalog.require_collection(cid)
    search = Search.build(
        collections=[cid],
        bbox=parse_bbox_text(bbox),
        datetime_text=datetime,
        limit=limit,
        token=token,
    )
    features, next_key = catalog.search(search)
    base = catalog.base
    links = [
        _link(base, f"/stac/collections/{cid}", "parent", JSON_TYPE),
        _link(base, f"/stac/collections/{cid}", "collection", JSON_TYPE),
    ]
    return GeoJSONResponse(_feature_collection(request, features, next_key, links))


@router.get(
    "/collections/{cid}/items/{iid}",
    summary="One item",
    response_class=GeoJSONResponse,
    responses=GEOJSON_RESPONSE,
)
def item(request: Request, principal: OptionalPrincipal, cid: str, iid: str) -> GeoJSONResponse:
    """An item: footprint, times, properties and downloadable assets (without a token: a
    processor product of a published site)."""
    reader = principal or published_reader(service_state(request).workspace, iid)
    return GeoJSONResponse(_catalog(request, reader).item(cid, iid))


@router.get(
    "/search",
    summary="Item search (GET)",
    response_class=GeoJSONResponse,
    responses=PAGE_RESPONSE,
)
def search_get(
    request: Request,
    principal: CurrentPrincipal,
    collections: Annotated[str | None, Query(description="comma-separated ids")] = None,
    ids: Annotated[str | None, Query(description="comma-separated item ids")] = None,
    bbox: Annotated[str | None, Query(pattern=STAC_BBOX, description=BBOX)] = None,
    intersects: Annotated[str | None, Query(description="a GeoJSON geometry")] = None,
    datetime: Annotated[str | None, Query(pattern=STAC_DATETIME, description=DATETIME)] = None,
    limit: Annotated[int | None, Query(ge=1, description=LIMIT)] = None,
    token: Annotated[str | None, Query(pattern=PAGING_TOKEN, description=TOKEN)] = None,
) -> GeoJSONResponse:
    """Items of every collection you can see, filtered, newest first, in pages."""
    catalog = _catalog(request, principal)
    search = Search.build(
        collections=split_list(collections),
        ids=split_list(ids),
        bbox=parse_bbox_text(bbox),
        intersects=parse_intersects(intersects),
        datetime_text=datetime,
        limit=limit,
        token=token,
    )
    features, next_key = catalog.search(search)
    return GeoJSONResponse(_feature_collection(request, features, next_key, []))


@router.post(
    "/search",
    summary="Item search (POST)",
    response_class=GeoJSONResponse,
    responses=PAGE_RESPONSE,
)
def search_post(request: Request, principal: CurrentPrincipal, body: SearchBody) -> GeoJSONResponse:
    """As GET /stac/search, with the parameters as a JSON body; the ``next`` link carries the
    body to POST for the next page."""
    catalog = _catalog(request, principal)
    search = Search.build(
        collections=body.collections,
        ids=body.ids,
        bbox=parse_bbox(body.bbox) if body.bbox is not None else None,
        intersects=parse_intersects(body.intersects),
        datetime_text=body.datetime,
        limit=body.limit,
        token=body.token,
    )
    features, next_key = catalog.search(search)
    links: list[dict[str, Any]] = []
    if next_key is not None:
        next_body = body.model_dump(exclude_none=True)
        next_body["token"] = next_key.encode()
        links.append(
            _link(
                catalog.base,
                "/stac/search",
                "next",
                GEOJSON,
                method="POST",
                body=next_body,
                merge=False,
            )
        )
    return GeoJSONResponse(_feature_collection(request, features, None, links))


@router.head("/assets/{iid}/{path:path}", include_in_schema=False)
@router.get(
    "/assets/{iid}/{path:path}",
    summary="Download an asset",
    response_class=FileResponse,
    responses={
        200: {"description": "The file, as its own media type", "content": {"*/*": {}}},
        206: {"description": "The bytes of a Range request", "content": {"*/*": {}}},
    },
)
def asset(request: Request, principal: OptionalPrincipal, iid: str, path: str) -> FileResponse:
    """One file of an item (``Range`` requests answer 206 with the bytes asked for; without a
    token: of a processor product of a published site)."""
    reader = principal or published_reader(service_state(request).workspace, iid)
    root = _catalog(request, reader).asset_root(iid)
    target = root.file(path)
    return FileResponse(target, media_type=media_type(target), filename=target.name)
