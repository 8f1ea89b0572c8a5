"""The Sentinel-2 tiling grid (MGRS tiles) and the 10 m / 20 m / 60 m pixel grids inside a tile.

A Sentinel-2 tile is a 109.8 km square on the UTM grid of its zone: its upper-left corner is the
north-west corner of its MGRS 100 km square, raised by 40 m (``TILE_ULY_OFFSET``; the official
grid has +40 m for most tiles and +20 m for some). That is exact enough to decide which tiles an
AOI touches and to lay out synthetic products; real products always carry their own geocoding,
which capmon reads from the product and never replaces by this one.

:class:`PixelGrid` describes any raster grid (CRS, geotransform, size): the grids the product
readers (:mod:`capmon.sources`) give and the ones the markers database (:mod:`capmon.mdb`)
rasterises parcels on. It lives here, below both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from affine import Affine
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from capmon.errors import InputError

TILE_SIZE_M = 109_800
SQUARE_SIZE_M = 100_000
TILE_ULY_OFFSET = 40
RESOLUTIONS = (10, 20, 60)
_TILE_NAME = re.compile(r"^T?(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z])([A-HJ-NP-V])$")


@dataclass(frozen=True)
class PixelGrid:
    """A raster grid: CRS, geotransform and size."""

    crs: pyproj.CRS
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def resolution(self) -> tuple[float, float]:
        return (abs(self.transform.a), abs(self.transform.e))


@dataclass(frozen=True)
class S2Tile:
    """One Sentinel-2 MGRS tile: its name (``31UFS``), UTM EPSG code and upper-left corner."""

    name: str
    epsg: int
    ulx: float
    uly: float

    @property
    def zone(self) -> int:
        return self.epsg % 100

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in the tile's UTM CRS."""
        return (self.ulx, self.uly - TILE_SIZE_M, self.ulx + TILE_SIZE_M, self.uly)

    def transform(self, resolution: int) -> Affine:
        """The geotransform of the tile's grid at ``resolution`` metres (10, 20 or 60)."""
        if resolution not in RESOLUTIONS:
            raise InputError(
                f"Sentinel-2 resolution must be one of {RESOLUTIONS}, not {resolution}"
            )
        return Affine(resolution, 0.0, self.ulx, 0.0, -resolution, self.uly)

    def shape(self, resolution: int) -> tuple[int, int]:
        """(rows, columns) of the tile's grid at ``resolution`` metres."""
        n = TILE_SIZE_M // resolution
        return (n, n)

    def footprint(self) -> BaseGeometry:
        """The tile's outline in EPSG:4326, densified so that it follows the UTM square.

        A tile that crosses the antimeridian keeps continuous longitudes, on the side of its
        zone's central meridian (some longitudes then lie beyond +-180).
        """
        outline = shapely.segmentize(box(*self.bounds), 5_000)
        footprint = _to_wgs84(self.epsg).transform_geometry(outline)
        west, _south, east, _north = footprint.bounds
        if east - west > 180.0:
            east_side = self.zone > 30
            footprint = shapely.transform(footprint, lambda xy: _unwrap(xy, east_side))
        return footprint


def _unwrap(xy: npt.NDArray[np.float64], east_side: bool) -> npt.NDArray[np.float64]:
    shifted = xy.copy()
    lon = shifted[:, 0]
    shifted[:, 0] = (
        np.where(lon < 0.0, lon + 360.0, lon)
        if east_side
        else np.where(lon > 0.0, lon - 360.0, lon)
    )
    return shifted


class _Transformer:
    def __init__(self, epsg_from: int, epsg_to: int) -> None:
        self._t = pyproj.Transformer.from_crs(epsg_from, epsg_to, always_xy=True)

    def transform_geometry(self, geometry: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geometry, self._transform_xy)

    def _transform_xy(self, xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = self._t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack((x, y))


@lru_cache(maxsize=128)
def _to_wgs84(epsg: int) -> _Transformer:
    return _Transformer(epsg, 4326)


@lru_cache(maxsize=128)
def _from_wgs84(epsg: int) -> _Transformer:
    return _Transformer(4326, epsg)


def utm_epsg(zone: int, north: bool) -> int:
    """EPSG code of WGS 84 / UTM ``zone`` (326xx north, 327xx south)."""
    return (32600 if north else 32700) + zone


COLUMN_LETTERS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
BAND_LETTERS = "CDEFGHJKLMNPQRSTUVWX"


def s2_tile(name: str) -> S2Tile:
    """The tile called ``name`` (``31UFS`` or ``T31UFS``)."""
    match = _TILE_NAME.match(name.strip().upper())
    if match is None:
        raise InputError(f"{name!r} is not a Sentinel-2 MGRS tile name such as 31UFS")
    zone = int(match.group(1))
    band, column, row = match.group(2), match.group(3), match.group(4)
    columns = COLUMN_LETTERS[(zone - 1) % 3]
    if not 1 <= zone <= 60 or column not in columns:
        raise InputError(f"{name!r} is not a Sentinel-2 MGRS tile name: bad zone or column")
    north = band >= "N"
    epsg = utm_epsg(zone, north)
    west = (columns.index(column) + 1) * SQUARE_SIZE_M
    # The row letter repeats every 2000 km of northing: take the square whose centre
    # latitude is in (or nearest to) the latitude band of the name.
    row_index = (ROW_LETTERS.index(row) - _row_offset(zone)) % 20
    band_south = -80.0 + 8.0 * BAND_LETTERS.index(band)
    band_north = 84.0 if band == "X" else band_south + 8.0
    best: tuple[float, int] | None = None
    for cycle in range(10):
        square = row_index + 20 * cycle
        lat = _latitude(zone, north, west, square)
        distance = max(band_south - lat, lat - band_north, 0.0)
        if best is None or distance < best[0]:
            best = (distance, square)
    assert best is not None
    square = best[1]
    return S2Tile(
        f"{zone:02d}{band}{column}{row}",
        epsg,
        float(west),
        float((square + 1) * SQUARE_SIZE_M + TILE_ULY_OFFSET),
    )


def _row_offset(zone: int) -> int:
    """MGRS shifts the row letters of even zones by five letters."""
    return 5 if zone % 2 == 0 else 0


def _latitude(zone: int, north: bool, west: float, square: int) -> float:
    """Latitude of the centre of the 100 km square ``square`` (northing index) of a zone."""
    _lon, lat = _to_wgs84(utm_epsg(zone, north))._t.transform(
        west + SQUARE_SIZE_M / 2, square * SQUARE_SIZE_M + SQUARE_SIZE_M / 2
    )
    return float(lat)


def _square_name(zone: int, north: bool, west: float, square: int) -> str | None:
    """The MGRS name of the 100 km square at easting ``west`` and northing index ``square``."""
    column_index = int(west // SQUARE_SIZE_M) - 1
    if not 0 <= column_index < 8:
        return None
    lat = min(max(_latitude(zone, north, west, square), -80.0), 83.999)
    if north != (lat >= 0):
        return None
    band = BAND_LETTERS[min(int((lat + 80.0) // 8.0), len(BAND_LETTERS) - 1)]
    column = COLUMN_LETTERS[(zone - 1) % 3][column_index]
    row = ROW_LETTERS[(square + _row_offset(zone)) % 20]
    return f"{zone:02d}{band}{column}{row}"


def tiles_for_aoi(aoi: BaseGeometry) -> list[S2Tile]:
    """The Sentinel-2 tiles whose area intersects ``aoi`` (EPSG:4326, lon/lat), sorted by name."""
    if aoi.is_empty:
        raise InputError("the AOI is empty")
    west, south, east, north_lat = aoi.bounds
    if south < -80.0 or north_lat > 84.0:
        raise InputError("the AOI extends beyond the UTM latitudes of the Sentinel-2 grid")
    found: dict[str, S2Tile] = {}
    first_zone = int((west + 180.0) // 6.0) + 1
    last_zone = int((min(east, 179.999999) + 180.0) // 6.0) + 1
    for zone in range(max(first_zone - 1, 1), min(last_zone + 1, 60) + 1):
        for hemisphere_north in (True, False):
            if (hemisphere_north and north_lat < 0) or (not hemisphere_north and south >= 0):
                continue
            epsg = utm_epsg(zone, hemisphere_north)
            zone_band = box(-180.0 + 6.0 * (zone - 1), -80.0, -180.0 + 6.0 * zone, 84.0)
            in_zone = aoi.intersection(zone_band)
            if in_zone.is_empty:
                continue
            local = _from_wgs84(epsg).transform_geometry(shapely.segmentize(in_zone, 0.01))
            xmin, ymin, xmax, ymax = local.bounds
            for sx in range(
                int((xmin - TILE_SIZE_M) // SQUARE_SIZE_M) + 1, int(xmax // SQUARE_SIZE_M) + 1
            ):
                for sy in range(
                    int((ymin - TILE_ULY_OFFSET) // SQUARE_SIZE_M),
                    int((ymax + TILE_SIZE_M) // SQUARE_SIZE_M) + 1,
                ):
                    ulx = sx * SQUARE_SIZE_M
                    uly = (sy + 1) * SQUARE_SIZE_M + TILE_ULY_OFFSET
                    if not 100_000 <= ulx <= 800_000:
                        continue
                    tile_box = box(ulx, uly - TILE_SIZE_M, ulx + TILE_SIZE_M, uly)
                    if not tile_box.intersects(local):
                        continue
                    name = _square_name(zone, hemisphere_north, ulx, sy)
                    if name is None:
                        continue
                    found.setdefault(name, S2Tile(name, epsg, float(ulx), float(uly)))
    return [found[name] for name in sorted(found)]
