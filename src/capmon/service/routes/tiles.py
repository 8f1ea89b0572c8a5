"""Map data: parcels as GeoJSON by bounding box and as Mapbox vector tiles, and raster tiles of
a signal of an input product (docs/api.md, "map").

Vector tiles hold one layer ``parcels``: each feature's id and ``parcel_id`` property is the
parcel's NewID and, with ``layer=``, its ``value`` property the parcel's value in that map
layer (see ``GET /sites/{site}/seasons/{season}/layers``; no ``value`` when the parcel has
none). Answers carry an ETag naming their inputs' versions; ``If-None-Match`` gets 304.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from capmon.catalog.models import Product
from capmon.errors import InputError, NotFoundError
from capmon.service.auth import CurrentPrincipal, ReadableSite, check_site_id, site_for
from capmon.service.errors import ForbiddenError
from capmon.service.layers import LayerValues
from capmon.service.map_data import MapData, SeasonView, app_resource, map_data
from capmon.service.mvt import check_tile, encode_layer
from capmon.service.params import LAYER_ID, PARCEL_BBOX, SIGNAL_NAME
from capmon.service.parcel_index import feature_collection, json_value, parse_bbox
from capmon.service.raster_tiles import (
    INPUT_PRODUCT_TYPES,
    RasterTiles,
    Style,
    colour_table,
    default_style,
)
from capmon.service.state import service_state
from capmon.signals.catalogue import get_signal

router = APIRouter(tags=["Map"])

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
GEOJSON_MEDIA_TYPE = "application/geo+json"
GEOJSON_MAX_PARCELS = 5000
"""Most parcels one GeoJSON answer holds; a larger bounding box gets 400 (use the tiles)."""
MVT_LAYER = "parcels"
GEOJSON_PROPERTIES = ("ori_id", "ori_hold", "ori_crop", "Area_meters")

Zoom = Annotated[int, Path(ge=0, le=24, description="Zoom level")]
Column = Annotated[int, Path(ge=0, description="Tile column")]
Row = Annotated[int, Path(ge=0, description="Tile row (XYZ, from the north)")]


def _etag(key: tuple[Any, ...]) -> str:
    return '"' + hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest() + '"'


def _cached_answer(
    request: Request, key: tuple[Any, ...], media_type: str, cache_control: str
) -> tuple[str, dict[str, str], Response | None]:
    """The ETag and headers of an answer, and a 304 when the client has it already."""
    tag = _etag(key)
    headers = {"ETag": tag, "Cache-Control": cache_control}
    if request.headers.get("if-none-match") == tag:
        return tag, headers, Response(status_code=304, headers=headers, media_type=media_type)
    return tag, headers, None


def _layer(data: MapData, view: SeasonView, layer_id: str | None) -> LayerValues | None:
    if layer_id is None or not layer_id.strip():
        return None
    layers = data.season_layers(view)
    found = layers.get(layer_id)
    if found is None:  # a layer of the season's data: a well-formed id may not exist here
        raise NotFoundError(
            f"no layer {layer_id!r} (layer): this season has {', '.join(layers) or 'none'}"
        )
    return found


def _period(chosen: LayerValues, day: date | None) -> int | None:
    """The dated layer's period holding ``day``; outside its periods the tile does not exist."""
    try:
        return chosen.period(day)
    except InputError as exc:
        raise NotFoundError(str(exc)) from None


LayerId = Annotated[
    str | None,
    Query(pattern=LAYER_ID, description="A map layer id: its value and label per parcel"),
]


# --- GeoJSON -----------------------------------------------------------------------------------


@router.get(
    "/sites/{site}/seasons/{season}/parcels.geojson",
    summary="Parcels in a bounding box as GeoJSON",
    responses={
        200: {
            "content": {GEOJSON_MEDIA_TYPE: {"schema": {"type": "object"}}},
            "description": "A FeatureCollection in EPSG:4326",
        }
    },
    response_class=Response,
)
def parcels_geojson(
    request: Request,
    site: ReadableSite,
    season: str,
    bbox: Annotated[
        str,
        Query(
            pattern=PARCEL_BBOX,
            description="minx,miny,maxx,maxy in decimal degrees (EPSG:4326 longitude, "
            "latitude), minx < maxx and miny < maxy",
        ),
    ],
    layer: LayerId = None,
    date: Annotated[
        date | None, Query(description="Dated layers: the day (default: the last period)")
    ] = None,
) -> Response:
    """The season's parcels meeting ``bbox``, with their NewID (feature id and ``parcel_id``),
    declared ``ori_id``, ``ori_hold``, ``ori_crop``, ``Area_meters`` and, with ``layer``, the
    parcel's ``value`` and ``label`` in it. At most 5000 parcels: a larger box gets 400."""
    data = map_data(request)
    view = data.season(site, season)
    box = parse_bbox(bbox)
    index = data.parcel_index(view)
    chosen = _layer(data, view, layer)
    period = chosen.period(date) if chosen is not None else None
    rows = index.in_bbox(box)
    if len(rows) > GEOJSON_MAX_PARCELS:
        raise InputError(
            f"bbox {bbox} holds {len(rows)} parcels, more than the {GEOJSON_MAX_PARCELS} one "
            "answer gives: ask for a smaller box or use the vector tiles (/tiles/parcels)"
        )
    geometries = index.geojson_geometries(rows)
    columns = [c for c in GEOJSON_PROPERTIES if c in index.attributes.columns]
    table = index.attributes.iloc[rows][columns]
    records = table.to_dict("records")
    features = []
    for row, geometry, record in zip(rows.tolist(), geometries, records, strict=True):
        parcel_id = int(index.ids[row])
        properties = {"parcel_id": parcel_id, **{k: json_value(v) for k, v in record.items()}}
        if chosen is not None:
            value = chosen.value(row, period)
            properties["value"] = value
            properties["label"] = chosen.labels.get(value) if value is not None else None
        features.append(
            f'{{"type": "Feature", "id": {parcel_id}, "geometry": {geometry}, '
            f'"properties": {json.dumps(properties)}}}'
        )
    extra: dict[str, Any] = {"numberReturned": len(features), "bbox": list(box)}
    if chosen is not None:
        extra["layer"] = chosen.info.id
        if period is not None:
            extra["period"] = {
                "start": chosen.info.dates[period].isoformat(),
                "end": chosen.info.period_ends[period].isoformat(),
            }
    return Response(feature_collection(features, extra), media_type=GEOJSON_MEDIA_TYPE)


# --- vector tiles ------------------------------------------------------------------------------


@router.get(
    "/tiles/parcels/{z}/{x}/{y}.mvt",
    summary="Parcels as a Mapbox vector tile",
    responses={
        200: {
            "content": {MVT_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "description": "One MVT layer 'parcels' (empty body: no parcel in the tile)",
        },
        304: {"description": "Not modified (If-None-Match)"},
    },
    response_class=Response,
)
def parcel_tile(
    request: Request,
    principal: CurrentPrincipal,
    z: Zoom,
    x: Column,
    y: Row,
    site: Annotated[str, Query(description="Site name")],
    season: Annotated[str, Query(description="Season name")],
    layer: LayerId = None,
    date: Annotated[
        date | None, Query(description="Dated layers: the day (default: the last period)")
    ] = None,
) -> Response:
    """Layer ``parcels``: polygons clipped to the tile (simplified to its resolution; parcels
    smaller than 3 screen pixels as points, at most one per pixel), with the parcel's NewID as
    feature id and ``parcel_id``, and the ``layer``'s ``value``."""
    check_tile(z, x, y)
    data = map_data(request)
    site_row = site_for(data.workspace, principal, site)
    view = data.season(site_row, season)
    chosen = _layer(data, view, layer)
    period = _period(chosen, date) if chosen is not None else None
    layer_key = (data.layers_key(view), chosen.info.id, period) if chosen is not None else None
    key = ("mvt", view.parcels_key, layer_key, z, x, y)
    _tag, headers, not_modified = _cached_answer(request, key, MVT_MEDIA_TYPE, "private, no-cache")
    if not_modified is not None:
        return not_modified

    def build() -> bytes:
        index = data.parcel_index(view)
        geometries = data.geometries.get_or_build(
            ("geometry", view.parcels_key, z, x, y), lambda: index.tile(z, x, y)
        )
        properties = None
        if chosen is not None:
            codes = chosen.codes_at(period)[geometries.rows].astype(np.int64)
            properties = {"value": (chosen.values, codes)}
        return encode_layer(MVT_LAYER, geometries, index.ids[geometries.rows], properties)

    body = data.tiles.get_or_build(key, build)
    return Response(body, media_type=MVT_MEDIA_TYPE, headers=headers)


# --- raster tiles ------------------------------------------------------------------------------


def raster_tiles(request: Request) -> RasterTiles:
    tiles = app_resource(request, "raster_tiles", RasterTiles)
    assert isinstance(tiles, RasterTiles)
    return tiles


@router.get(
    "/tiles/signals/{product_id}/{signal}/{z}/{x}/{y}.png",
    summary="A raster tile of a signal of an input product",
    responses={
        200: {
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "description": "256 x 256 RGBA PNG, transparent outside data and masked pixels",
        },
        304: {"description": "Not modified (If-None-Match)"},
    },
    response_class=Response,
)
def signal_tile(
    request: Request,
    principal: CurrentPrincipal,
    product_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="Catalogue product id.")],
    signal: Annotated[
        str,
        Path(
            pattern=SIGNAL_NAME,
            description="A built-in signal (NDVI, LAI, AMP_VV...), a spyndex index or "
            "SPYNDEX:<index>",
        ),
    ],
    z: Zoom,
    x: Column,
    y: Row,
    vmin: Annotated[
        float | None, Query(alias="min", description="Value drawn with the first colour")
    ] = None,
    vmax: Annotated[
        float | None, Query(alias="max", description="Value drawn with the last colour")
    ] = None,
    colormap: Annotated[
        str | None, Query(description="A matplotlib colour map (default per signal)")
    ] = None,
) -> Response:
    """``signal`` (NDVI, LAI, AMP_VV, COHE_VH...) of input product ``product_id`` (a catalogue
    id, see the ``rasters`` of the layers route), colour-mapped between ``min`` and ``max``;
    transparent outside the product's data and where its mask rejects the pixel."""
    check_tile(z, x, y)
    workspace = service_state(request).workspace
    with workspace.session() as session:
        product = session.scalar(select(Product).where(Product.id == product_id))
        if product is None:
            if not principal.is_admin:  # as for sites: ids of other sites' products do not leak
                raise ForbiddenError(f"you have no access to product {product_id}")
            raise NotFoundError(f"no product with id {product_id}")
        check_site_id(principal, product.site_id)
        product_type, path = product.product_type, product.path
    if product_type not in INPUT_PRODUCT_TYPES:
        raise InputError(
            f"product {product_id} is a {product_type} product: raster tiles show input "
            f"products ({', '.join(INPUT_PRODUCT_TYPES)})"
        )
    name = get_signal(signal).name
    style = default_style(name)
    style = Style(
        style.vmin if vmin is None else vmin,
        style.vmax if vmax is None else vmax,
        colormap or style.colormap,
    )
    if not style.vmax > style.vmin:
        raise InputError(f"max {style.vmax} must be larger than min {style.vmin}")
    colour_table(style.colormap)  # an unknown colour map is a 400 even on an empty tile
    key = ("png", product_id, path, name, style, z, x, y)
    _tag, headers, not_modified = _cached_answer(request, key, "image/png", "private, max-age=3600")
    if not_modified is not None:
        return not_modified
    body = raster_tiles(request).render(product_id, path, name, z, x, y, style)
    return Response(body, media_type="image/png", headers=headers)
