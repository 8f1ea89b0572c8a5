"""The farm landscape: a window on a Sentinel-2 tile, roads, villages, woods and the field mosaic.

Blocks between roads are the cells of a jittered Voronoi diagram (irregular, convex). A few
blocks are woods or villages (with a pond or two); the others are cut recursively into fields
by straight lines at an angle to the block, so fields are irregular quadrilaterals and
polygons of 0.5-15 ha rather than a raster of rectangles. Fields keep a 1 m margin between
them and a road corridor of 8 m along block edges. Farms (holdings) own spatially clustered
fields. From one year to the next a few parcels are split or merged and get new ids, as in a
real LPIS.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import shapely
from affine import Affine
from shapely import affinity
from shapely.geometry import MultiPoint, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from capmon.errors import InputError
from capmon.grid import TILE_SIZE_M, S2Tile
from capmon.synth.seeding import stream

ROAD_HALF_WIDTH_M = 4.0
FIELD_MARGIN_M = 1.0
MIN_MEAN_FIELD_HA = 0.5
MAX_MEAN_FIELD_HA = 8.0
BLOCK_HA = 70.0


class Background(IntEnum):
    """Land cover of the pixels that are not a declared parcel."""

    VERGE = 0
    ROAD = 1
    BUILT = 2
    FOREST = 3
    WATER = 4


@dataclass(frozen=True)
class Window:
    """The simulated square on a Sentinel-2 tile, aligned on the tile's 60 m grid."""

    tile: str
    epsg: int
    ulx: float
    uly: float
    size_m: int

    @property
    def width(self) -> int:
        """Columns (= rows) at 10 m."""
        return self.size_m // 10

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in the tile's UTM CRS."""
        return (self.ulx, self.uly - self.size_m, self.ulx + self.size_m, self.uly)

    def transform(self, resolution: int) -> Affine:
        return Affine(resolution, 0.0, self.ulx, 0.0, -resolution, self.uly)

    @property
    def geometry(self) -> Polygon:
        return box(*self.bounds)


def make_window(tile: S2Tile, window_km: float) -> Window:
    """A window of ``window_km`` (rounded up to 60 m) centred on ``tile``, on its 60 m grid."""
    if not math.isfinite(window_km) or window_km <= 0:
        raise InputError(f"window_km must be a positive number of kilometres, not {window_km}")
    if window_km * 1000 > TILE_SIZE_M:
        raise InputError(f"window_km must be at most {TILE_SIZE_M / 1000} km (one tile)")
    size_m = math.ceil(round(window_km * 1000, 6) / 60.0) * 60
    offset = 60 * round((TILE_SIZE_M - size_m) / 2 / 60)
    return Window(tile.name, tile.epsg, tile.ulx + offset, tile.uly - offset, size_m)


@dataclass(frozen=True)
class Parcel:
    """One declared parcel in one year (geometry in the tile's UTM CRS)."""

    parcel_id: str
    holding_id: str
    geometry: Polygon
    block: int
    parents: tuple[str, ...] = ()
    change: str = ""

    @property
    def area_ha(self) -> float:
        return float(self.geometry.area) / 10_000.0


@dataclass(frozen=True)
class Landscape:
    """Everything about the ground that does not change with the season."""

    window: Window
    roads: BaseGeometry
    background: tuple[tuple[Background, BaseGeometry], ...]
    grass_affinity: tuple[float, ...]
    parcels_by_year: tuple[tuple[Parcel, ...], ...]
    defects: tuple[tuple[str, Polygon], ...] = field(default=())

    def parcels(self, year_index: int) -> tuple[Parcel, ...]:
        return self.parcels_by_year[year_index]


def _half_planes(poly: Polygon, angle: float, fraction: float) -> tuple[Polygon, Polygon] | None:
    """Cut ``poly`` by a line of normal ``angle`` (radians) at ``fraction`` of its extent."""
    u = np.array([math.cos(angle), math.sin(angle)])
    v = np.array([-u[1], u[0]])
    coords = np.asarray(poly.exterior.coords)
    proj = coords @ u
    lo, hi = float(proj.min()), float(proj.max())
    centre = coords.mean(axis=0)
    p = centre + u * (lo + fraction * (hi - lo) - float(centre @ u))
    big = (hi - lo) * 4 + 10.0
    side_a = Polygon([p + big * v, p - big * v, p - big * v - big * u, p + big * v - big * u])
    side_b = Polygon([p + big * v, p - big * v, p - big * v + big * u, p + big * v + big * u])
    a, b = poly.intersection(side_a), poly.intersection(side_b)
    if not (isinstance(a, Polygon) and isinstance(b, Polygon)) or a.is_empty or b.is_empty:
        return None
    return a, b


def _long_axis_angle(poly: Polygon) -> float:
    """Direction (radians) of the long side of the minimum rotated rectangle."""
    rect = shapely.minimum_rotated_rectangle(poly)
    xy = np.asarray(shapely.get_coordinates(rect))[:3]
    e1, e2 = xy[1] - xy[0], xy[2] - xy[1]
    edge = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    return math.atan2(edge[1], edge[0])


def split_field(poly: Polygon, rng: np.random.Generator) -> tuple[Polygon, Polygon] | None:
    """Split a field in two like a farmer would: mostly across its length, at a slight angle."""
    axis = _long_axis_angle(poly)
    across = rng.random() < 0.75
    angle = axis + (0.0 if across else math.pi / 2) + rng.normal(0.0, 0.15)
    for _ in range(3):
        parts = _half_planes(poly, angle, float(rng.uniform(0.3, 0.7)))
        if parts is not None:
            return parts
    return None


def _voronoi_blocks(window: Window, rng: np.random.Generator) -> list[Polygon]:
    west, south = window.bounds[:2]
    area_ha = window.size_m**2 / 10_000.0
    n = max(4, round(area_ha / BLOCK_HA))
    k = max(2, math.ceil(math.sqrt(n)))
    cell = window.size_m / k
    points = []
    for i in range(k):
        for j in range(k):
            x = west + (i + 0.5 + rng.uniform(-0.35, 0.35)) * cell
            y = south + (j + 0.5 + rng.uniform(-0.35, 0.35)) * cell
            points.append((x, y))
    frame = window.geometry
    cells = shapely.voronoi_polygons(MultiPoint(points), extend_to=frame)
    blocks = []
    for cell_poly in shapely.get_parts(cells):
        clipped = cell_poly.intersection(frame)
        if isinstance(clipped, Polygon) and clipped.area > 1.0:
            blocks.append(clipped)
    blocks.sort(key=lambda b: (round(b.centroid.y, 3), round(b.centroid.x, 3)))
    return blocks


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` proportionally to ``weights`` (largest remainder), at least 1 each."""
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    counts = np.maximum(1, np.floor(raw).astype(int))
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    i = 0
    while counts.sum() < total:
        counts[order[i % len(order)]] += 1
        i += 1
    while counts.sum() > total:
        j = int(np.argmax(counts))
        counts[j] -= 1
    return [int(c) for c in counts]


def _subdivide(block: Polygon, count: int, rng: np.random.Generator) -> list[Polygon]:
    """Cut ``block`` into ``count`` fields, always splitting the field with the highest priority."""
    heap: list[tuple[float, int, Polygon]] = []
    serial = 0

    def push(poly: Polygon) -> None:
        nonlocal serial
        weight = float(np.clip(rng.lognormal(0.0, 0.5), 0.5, 2.0))
        heapq.heappush(heap, (-poly.area * weight, serial, poly))
        serial += 1

    push(block)
    done: list[Polygon] = []
    while len(heap) + len(done) < count and heap:
        _, _, poly = heapq.heappop(heap)
        parts = split_field(poly, rng) if poly.area > 2 * 4000.0 else None
        if parts is None:
            done.append(poly)
            continue
        push(parts[0])
        push(parts[1])
    return [p for _, _, p in heap] + done


def _shrink(poly: BaseGeometry, distance: float) -> Polygon | None:
    shrunk = poly.buffer(-distance, join_style="mitre", mitre_limit=3.0)
    if isinstance(shrunk, Polygon) and not shrunk.is_empty and shrunk.area > 100.0:
        return shapely.set_precision(shrunk, 0.01)
    return None


def build_landscape(
    window: Window,
    parcels: int,
    years: int,
    seed: int,
    *,
    defective_parcels: int = 0,
) -> Landscape:
    """The landscape of ``parcels`` fields on ``window`` and how it changes over ``years``."""
    rng = stream(seed, "landscape")
    blocks = _voronoi_blocks(window, rng)
    area_ha = sum(b.area for b in blocks) / 10_000.0
    order = list(rng.permutation(len(blocks)))
    kinds: dict[int, Background | None] = {i: None for i in range(len(blocks))}
    n_nature = round(0.1 * len(blocks)) if len(blocks) >= 8 else 0
    for i in order[:n_nature]:
        kinds[int(i)] = Background.FOREST if rng.random() < 0.55 else Background.BUILT
    # Few parcels on a large window: leave the outer blocks to woods rather than make giant fields.
    cx, cy = window.ulx + window.size_m / 2, window.uly - window.size_m / 2
    by_distance = sorted(
        (i for i in range(len(blocks)) if kinds[i] is None),
        key=lambda i: -blocks[i].centroid.distance(Point(cx, cy)),
    )
    for i in by_distance[:-1]:
        farm_ha = sum(blocks[j].area for j in kinds if kinds[j] is None) / 10_000.0
        if farm_ha / parcels <= MAX_MEAN_FIELD_HA:
            break
        kinds[i] = Background.FOREST
    farm_blocks = [i for i in range(len(blocks)) if kinds[i] is None]
    farm_ha = sum(blocks[i].area for i in farm_blocks) / 10_000.0 * 0.95
    if farm_ha / parcels < MIN_MEAN_FIELD_HA:
        most = int(farm_ha / MIN_MEAN_FIELD_HA)
        raise InputError(
            f"parcels: {parcels} parcels do not fit a {window.size_m / 1000:g} km window "
            f"({area_ha:.0f} ha); use at most {most} parcels or a larger window_km"
        )

    background: list[tuple[Background, BaseGeometry]] = []
    for i, kind in sorted(kinds.items()):
        if kind is not None:
            shrunk = _shrink(blocks[i], ROAD_HALF_WIDTH_M)
            if shrunk is not None:
                background.append((kind, shrunk))
    nature = [g for k, g in background if k in (Background.FOREST, Background.BUILT)]
    for _ in range(min(2, len(nature))):
        host = nature[int(rng.integers(len(nature)))]
        centre = host.representative_point()
        disc = Point(centre.x, centre.y).buffer(float(rng.uniform(50.0, 110.0)), 16)
        pond = disc.intersection(host)
        if not pond.is_empty:
            background.append((Background.WATER, pond))
    roads = shapely.union_all([b.exterior for b in blocks]).intersection(window.geometry)

    counts = _allocate(parcels, [blocks[i].area for i in farm_blocks])
    fields: list[tuple[Polygon, int]] = []
    for i, count in zip(farm_blocks, counts, strict=True):
        inner = _shrink(blocks[i], ROAD_HALF_WIDTH_M)
        if inner is None:
            continue
        for poly in _subdivide(inner, count, rng):
            shrunk = _shrink(poly, FIELD_MARGIN_M)
            if shrunk is not None:
                fields.append((shrunk, i))
    fields.sort(key=lambda f: (-round(f[0].centroid.y, 2), round(f[0].centroid.x, 2)))
    if not fields:
        raise InputError("parcels: the window is too small to hold any field")

    holdings = _holdings([f[0] for f in fields], window, rng)
    affinity = [float(rng.beta(1.2, 4.0)) for _ in blocks]
    first = tuple(
        Parcel(f"BE-{k + 1:06d}", holdings[k], poly, block)
        for k, (poly, block) in enumerate(fields)
    )
    by_year = [first]
    next_id = len(first) + 1
    for year_index in range(1, years):
        evolved, next_id = _evolve(by_year[-1], next_id, stream(seed, "lpis-change", year_index))
        by_year.append(evolved)
    defects = _defects(first, defective_parcels, stream(seed, "defects"))
    return Landscape(window, roads, tuple(background), tuple(affinity), tuple(by_year), defects)


def _holdings(polys: list[Polygon], window: Window, rng: np.random.Generator) -> list[str]:
    """Holding ids: each field goes to a nearby farmstead, so farms are spatially clustered."""
    n = max(1, round(len(polys) / 12))
    west, south, east, north = window.bounds
    farms = np.column_stack([rng.uniform(west, east, n), rng.uniform(south, north, n)])
    ids = []
    for poly in polys:
        c = np.array([poly.centroid.x, poly.centroid.y])
        nearest = np.argsort(np.hypot(*(farms - c).T), kind="stable")[: min(3, n)]
        pick = nearest[0] if rng.random() < 0.8 else nearest[int(rng.integers(len(nearest)))]
        ids.append(f"BE-H{int(pick) + 1:05d}")
    return ids


def _evolve(
    parcels: tuple[Parcel, ...], next_id: int, rng: np.random.Generator
) -> tuple[tuple[Parcel, ...], int]:
    """Next year's LPIS: about 3 % of large parcels split, about 3 % of neighbour pairs merged."""
    result: list[Parcel] = []
    consumed: set[int] = set()
    tree = shapely.STRtree([p.geometry for p in parcels])
    for k, parcel in enumerate(parcels):
        if k in consumed:
            continue
        roll = rng.random()
        if roll < 0.03 and parcel.area_ha > 2.0:
            parts = split_field(parcel.geometry, rng)
            if parts is not None:
                for part in parts:
                    shrunk = _shrink(part, FIELD_MARGIN_M / 2)
                    if shrunk is None:
                        continue
                    result.append(
                        Parcel(
                            f"BE-{next_id:06d}", parcel.holding_id, shrunk, parcel.block,
                            (parcel.parcel_id,), "split",
                        )
                    )  # fmt: skip
                    next_id += 1
                consumed.add(k)
                continue
        if roll > 0.97:
            partner = _merge_partner(parcels, k, consumed, tree)
            if partner is not None:
                other = parcels[partner]
                merged = shapely.union(
                    parcel.geometry.buffer(1.5, join_style="mitre"),
                    other.geometry.buffer(1.5, join_style="mitre"),
                ).buffer(-1.5, join_style="mitre")
                if isinstance(merged, Polygon) and merged.area / 10_000 < 16.0:
                    result.append(
                        Parcel(
                            f"BE-{next_id:06d}", parcel.holding_id,
                            shapely.set_precision(merged, 0.01), parcel.block,
                            (parcel.parcel_id, other.parcel_id), "merged",
                        )
                    )  # fmt: skip
                    next_id += 1
                    consumed.update((k, partner))
                    continue
        result.append(Parcel(parcel.parcel_id, parcel.holding_id, parcel.geometry, parcel.block))
        consumed.add(k)
    return tuple(result), next_id


def _merge_partner(
    parcels: tuple[Parcel, ...], k: int, consumed: set[int], tree: shapely.STRtree
) -> int | None:
    parcel = parcels[k]
    for j in sorted(int(i) for i in tree.query(parcel.geometry.buffer(3.0))):
        other = parcels[j]
        if (
            j != k
            and j not in consumed
            and j > k
            and other.holding_id == parcel.holding_id
            and other.block == parcel.block
            and other.geometry.distance(parcel.geometry) < 3.0
        ):
            return j
    return None


def _defects(
    parcels: tuple[Parcel, ...], count: int, rng: np.random.Generator
) -> tuple[tuple[str, Polygon], ...]:
    """Extra declaration rows that a declarations import must flag: invalid, overlap, duplicate."""
    if count <= 0 or not parcels:
        return ()
    kinds = ("invalid", "overlap", "duplicate")
    picks = rng.choice(len(parcels), size=min(count, len(parcels)), replace=False)
    out = []
    for n, k in enumerate(sorted(int(p) for p in picks)):
        geom = parcels[k].geometry
        kind = kinds[n % 3]
        if kind == "invalid":
            x0, y0, x1, y1 = geom.bounds
            bowtie = Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
            out.append((kind, bowtie))
        elif kind == "overlap":
            shifted = affinity.translate(geom, xoff=0.3 * (geom.bounds[2] - geom.bounds[0]))
            out.append((kind, shifted))
        else:
            out.append((kind, geom))
    return tuple(out)
