"""Small real-format products for the ``capmon.sources`` tests (60 x 60 px windows).

Sentinel-2 and Sentinel-1 products come from the synth writers; the Landsat Collection 2
Level-2 product and the STAC items are written here.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry import box, mapping

from capmon.grid import s2_tile
from capmon.synth.formats import (
    S2_BANDS,
    S2Acquisition,
    write_maja,
    write_s1_amplitude,
    write_s1_coherence,
    write_sen2cor_safe,
)

TILE = s2_tile("31UFS")
SIZE = 60
SENSING = datetime(2024, 5, 3, 10, 50, 31, 24000, tzinfo=UTC)
LANDSAT_ID = "LC09_L2SP_198025_20240503_20240504_02_T1"
LANDSAT_SCALE = 2.75e-05
LANDSAT_OFFSET = -0.2
QA_CLEAR = 0b0101_0101_0100_0000  # clear, low confidences (a typical clear-land value)
QA_FILL = 1
QA_CLOUD = 1 << 3
S1_EPSG = 3035


def acquisition(**changes: Any) -> S2Acquisition:
    """A 60 x 60 px (10 m) window of tile 31UFS near Antwerp."""
    base = S2Acquisition(
        tile="31UFS",
        spacecraft="S2B",
        sensing_time=SENSING,
        processing_baseline="05.10",
        relative_orbit=51,
        epsg=TILE.epsg,
        ulx=TILE.ulx + 600,
        uly=TILE.uly - 1200,
        width_10m=SIZE,
        height_10m=SIZE,
        sun_zenith=35.5,
        sun_azimuth=160.25,
        view_zenith=5.0,
        view_azimuth=100.0,
        cloud_cover=10.0,
    )
    return replace(base, **changes)


def reflectances(seed: int = 0) -> dict[str, npt.NDArray[np.float64]]:
    """Random reflectances of every S2 band; pixel (0, 0) is no data in every band."""
    rng = np.random.default_rng(seed)
    bands = {band: rng.uniform(0.01, 0.6, (SIZE, SIZE)) for band in S2_BANDS}
    for values in bands.values():
        values[0, 0] = np.nan
    return bands


def scene_classes(seed: int = 0) -> npt.NDArray[np.uint8]:
    """A 20 m SCL with every class present."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 12, (SIZE // 2, SIZE // 2)).astype(np.uint8)


@dataclass(frozen=True)
class WrittenS2:
    path: Path
    acq: S2Acquisition
    reflectance: dict[str, npt.NDArray[np.float64]]
    scl: npt.NDArray[np.uint8]


def sen2cor_product(out: Path, *, fmt: str = "jp2", seed: int = 0, **changes: Any) -> WrittenS2:
    acq = acquisition(**changes)
    refl = reflectances(seed)
    scl = scene_classes(seed)
    path = write_sen2cor_safe(out, acq, refl, scl, fmt=fmt)  # type: ignore[arg-type]
    return WrittenS2(path, acq, refl, scl)


@dataclass(frozen=True)
class WrittenMaja:
    path: Path
    acq: S2Acquisition
    reflectance: dict[str, npt.NDArray[np.float64]]
    cloud: npt.NDArray[np.bool_]
    edge: npt.NDArray[np.bool_]
    saturated: npt.NDArray[np.bool_]
    snow: npt.NDArray[np.bool_]


def maja_product(out: Path, *, seed: int = 1, **changes: Any) -> WrittenMaja:
    acq = acquisition(**changes)
    refl = reflectances(seed)
    for values in refl.values():
        values[0, 0] = 0.3  # MAJA no data is the EDG mask
    none = np.zeros((SIZE, SIZE), np.bool_)
    cloud, edge, saturated, snow = none.copy(), none.copy(), none.copy(), none.copy()
    cloud[:10, :10] = True
    edge[-4:, :] = True
    saturated[20:22, 30:32] = True
    snow[40:42, 40:42] = True
    path = write_maja(
        out,
        acq,
        refl,
        cloud=cloud,
        shadow=none,
        snow=snow,
        saturated=saturated,
        edge=edge,
    )
    return WrittenMaja(path, acq, refl, cloud, edge, saturated, snow)


# --------------------------------------------------------------------------------------------
# Landsat Collection 2 Level-2


@dataclass(frozen=True)
class WrittenLandsat:
    path: Path
    dn: dict[int, npt.NDArray[np.uint16]]
    qa: npt.NDArray[np.uint16]
    transform: Affine


def _corners(transform: Affine, size: int, epsg: int) -> dict[str, tuple[float, float]]:
    to_wgs84 = pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)
    west, north = transform.c, transform.f
    east, south = west + transform.a * size, north + transform.e * size
    xy = {"UL": (west, north), "UR": (east, north), "LR": (east, south), "LL": (west, south)}
    return {name: to_wgs84.transform(x, y) for name, (x, y) in xy.items()}


def landsat_product(
    out: Path,
    *,
    product_id: str = LANDSAT_ID,
    seed: int = 2,
    mtl_format: str = "txt",
) -> WrittenLandsat:
    """A Landsat 9 C2 L2 product: MTL, SR_B1..B7 and QA_PIXEL (30 m, EPSG:32631)."""
    rng = np.random.default_rng(seed)
    folder = out / product_id
    folder.mkdir(parents=True)
    transform = Affine(30.0, 0.0, TILE.ulx + 600, 0.0, -30.0, TILE.uly - 1200)
    dn: dict[int, npt.NDArray[np.uint16]] = {}
    for number in (1, 2, 3, 4, 5, 6, 7):
        values = rng.integers(7300, 30000, (SIZE, SIZE)).astype(np.uint16)
        values[0, :] = 0
        dn[number] = values
        _write_tif(folder / f"{product_id}_SR_B{number}.TIF", values, transform, TILE.epsg, 0)
    qa = np.full((SIZE, SIZE), QA_CLEAR, np.uint16)
    qa[0, :] = QA_FILL
    qa[10:20, 10:20] = QA_CLOUD | (1 << 1)
    _write_tif(folder / f"{product_id}_QA_PIXEL.TIF", qa, transform, TILE.epsg, 1)
    corners = _corners(transform, SIZE, TILE.epsg)
    groups: dict[str, dict[str, str]] = {
        "PRODUCT_CONTENTS": {
            "ORIGIN": '"Image courtesy of the U.S. Geological Survey"',
            "LANDSAT_PRODUCT_ID": f'"{product_id}"',
            "PROCESSING_LEVEL": '"L2SP"',
            "COLLECTION_NUMBER": "02",
            "COLLECTION_CATEGORY": '"T1"',
            **{f"FILE_NAME_BAND_{n}": f'"{product_id}_SR_B{n}.TIF"' for n in range(1, 8)},
            "FILE_NAME_QUALITY_L1_PIXEL": f'"{product_id}_QA_PIXEL.TIF"',
        },
        "IMAGE_ATTRIBUTES": {
            "SPACECRAFT_ID": '"LANDSAT_9"',
            "SENSOR_ID": '"OLI_TIRS"',
            "WRS_TYPE": "2",
            "WRS_PATH": "198",
            "WRS_ROW": "25",
            "DATE_ACQUIRED": "2024-05-03",
            "SCENE_CENTER_TIME": '"10:35:12.3456780Z"',
            "CLOUD_COVER": "12.34",
            "SUN_AZIMUTH": "150.12345678",
            "SUN_ELEVATION": "55.60000000",
            "DAY_OR_NIGHT": '"DAY"',
        },
        "PROJECTION_ATTRIBUTES": {
            "MAP_PROJECTION": '"UTM"',
            "DATUM": '"WGS84"',
            "UTM_ZONE": "31",
            "GRID_CELL_SIZE_REFLECTIVE": "30.00",
            **{
                f"CORNER_{name}_{axis}_PRODUCT": f"{value:.5f}"
                for name, (lon, lat) in corners.items()
                for axis, value in (("LAT", lat), ("LON", lon))
            },
        },
        "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS": {
            key: value
            for n in range(1, 8)
            for key, value in (
                (f"REFLECTANCE_MULT_BAND_{n}", "2.75E-05"),
                (f"REFLECTANCE_ADD_BAND_{n}", "-0.200000"),
            )
        },
        "LEVEL2_PROCESSING_RECORD": {"DATE_PRODUCT_GENERATED": "2024-05-04T03:12:45Z"},
    }
    if mtl_format == "txt":
        lines = ["GROUP = LANDSAT_METADATA_FILE"]
        for group, entries in groups.items():
            lines.append(f"  GROUP = {group}")
            lines += [f"    {key} = {value}" for key, value in entries.items()]
            lines.append(f"  END_GROUP = {group}")
        lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END", ""]
        (folder / f"{product_id}_MTL.txt").write_text("\n".join(lines), encoding="utf-8")
    else:
        parts = ["<LANDSAT_METADATA_FILE>"]
        for group, entries in groups.items():
            parts.append(f"<{group}>")
            parts += [f"<{key}>{value.strip(chr(34))}</{key}>" for key, value in entries.items()]
            parts.append(f"</{group}>")
        parts.append("</LANDSAT_METADATA_FILE>")
        (folder / f"{product_id}_MTL.xml").write_text("".join(parts), encoding="utf-8")
    return WrittenLandsat(folder, dn, qa, transform)


def _write_tif(
    path: Path,
    data: npt.NDArray[Any],
    transform: Affine | None,
    epsg: int | None,
    nodata: float | None,
) -> None:
    bands = data[np.newaxis] if data.ndim == 2 else data
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": bands.shape[2],
        "height": bands.shape[1],
        "count": bands.shape[0],
        "dtype": bands.dtype,
        "compress": "deflate",
    }
    if transform is not None:
        profile["transform"] = transform
    if epsg is not None:
        profile["crs"] = f"EPSG:{epsg}"
    if nodata is not None:
        profile["nodata"] = nodata
    with warnings.catch_warnings():
        # A test may write a raster without geotransform on purpose.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dst:
            dst.write(bands)


write_tif = _write_tif


# --------------------------------------------------------------------------------------------
# Sentinel-1


def s1_grid() -> tuple[Affine, int]:
    """A 20 m EPSG:3035 grid near Antwerp."""
    return Affine(20.0, 0.0, 3_935_000.0, 0.0, -20.0, 3_161_000.0), S1_EPSG


def s1_values(seed: int = 3, upper: float = 0.9) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.05, upper, (SIZE, SIZE)).astype(np.float32)
    values[0, :3] = np.nan
    return values


def s1_amplitude(out: Path, *, naming: str = "v1", polarisation: str = "VV") -> Path:
    transform, epsg = s1_grid()
    return write_s1_amplitude(
        out,
        site_id=7,
        polarisation=polarisation,  # type: ignore[arg-type]
        relative_orbit=88,
        time=datetime(2024, 5, 4, 17, 24, 5, tzinfo=UTC),
        time_pair=datetime(2024, 4, 28, 17, 24, 4, tzinfo=UTC),
        amplitude=s1_values(),
        transform=transform,
        epsg=epsg,
        tile="31UFS" if naming == "v2" else None,
        naming=naming,  # type: ignore[arg-type]
        spacecraft="S1A",
        orbit_direction="ASC",
    )


def s1_coherence(out: Path, *, naming: str = "v2", polarisation: str = "VH") -> Path:
    transform, epsg = s1_grid()
    return write_s1_coherence(
        out,
        site_id=7,
        polarisation=polarisation,  # type: ignore[arg-type]
        relative_orbit=88,
        time=datetime(2024, 5, 4, 17, 24, 5, tzinfo=UTC),
        time_pair=datetime(2024, 4, 22, 17, 24, 3, tzinfo=UTC),
        coherence=s1_values(seed=4, upper=1.0),
        transform=transform,
        epsg=epsg,
        tile="31UFS",
        naming=naming,  # type: ignore[arg-type]
        spacecraft="S1C",
    )


# --------------------------------------------------------------------------------------------
# STAC


def stac_item(
    path: Path,
    *,
    item_id: str,
    assets: Mapping[str, Mapping[str, Any]],
    platform: str = "sentinel-2a",
    when: datetime | None = SENSING,
    properties: Mapping[str, Any] | None = None,
    stac_version: str = "1.0.0",
) -> Path:
    """A STAC item JSON file over the test window."""
    to_wgs84 = pyproj.Transformer.from_crs(TILE.epsg, 4326, always_xy=True)
    west, north = to_wgs84.transform(TILE.ulx + 600, TILE.uly - 1200)
    east, south = to_wgs84.transform(TILE.ulx + 600 + 10 * SIZE, TILE.uly - 1200 - 10 * SIZE)
    footprint = box(west, south, east, north)
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": stac_version,
        "id": item_id,
        "geometry": mapping(footprint),
        "bbox": list(footprint.bounds),
        "properties": {
            "datetime": None if when is None else when.isoformat().replace("+00:00", "Z"),
            "platform": platform,
            **(properties or {}),
        },
        "links": [],
        "assets": dict(assets),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(item, indent=1), encoding="utf-8")
    return path


def later(when: datetime, hours: float) -> datetime:
    return when + timedelta(hours=hours)


S2_STACK = (*S2_BANDS, "SCL")
"""The band order of :func:`multiband_s2_item`'s single asset: the 13 bands, then SCL."""
NODATA_PLACES = ("raster:bands", "bands", "asset", "file")
"""Where :func:`multiband_s2_item` can declare its fill value."""


@dataclass(frozen=True)
class WrittenStack:
    item: Path
    reflectance: dict[str, npt.NDArray[np.float32]]
    """Each band at 10 m as written (``fill`` where ``filled``)."""
    scl: npt.NDArray[np.float32]
    filled: npt.NDArray[np.bool_]


def multiband_s2_item(
    folder: Path,
    *,
    item_id: str = "S2A_31UFS_20240503_0_L2A",
    fill: float = 1e20,
    nodata_at: str | None = "raster:bands",
    with_scl: bool = True,
    scl_at_fill: float | None = None,
    seed: int = 5,
) -> WrittenStack:
    """A Sentinel-2 item whose only asset is one float32 GeoTIFF holding every band and SCL
    (``eo:bands`` + ``raster:bands``, or STAC 1.1 ``bands``), as openEO-style or converted
    products ship; rows 0 and 59 and column 7 are ``fill`` in every band.

    ``nodata_at`` says where the fill value is declared (one of :data:`NODATA_PLACES`, or None:
    nowhere); ``scl_at_fill`` is the SCL value at the filled pixels (default: ``fill``).
    """
    rng = np.random.default_rng(seed)
    filled = np.zeros((SIZE, SIZE), np.bool_)
    filled[[0, SIZE - 1], :] = True
    filled[:, 7] = True
    reflectance = {
        band: np.where(filled, fill, rng.uniform(0.01, 0.6, (SIZE, SIZE))).astype(np.float32)
        for band in S2_BANDS
    }
    classes = np.repeat(np.repeat(scene_classes(seed), 2, axis=0), 2, axis=1)
    scl = np.where(filled, fill if scl_at_fill is None else scl_at_fill, classes)
    scl = scl.astype(np.float32)
    names = S2_STACK if with_scl else S2_BANDS
    stack = np.stack([reflectance[n] if n != "SCL" else scl for n in names])
    data = folder / f"{item_id}.tif"
    data.parent.mkdir(parents=True, exist_ok=True)
    transform = Affine(10.0, 0.0, TILE.ulx + 600, 0.0, -10.0, TILE.uly - 1200)
    write_tif(data, stack, transform, TILE.epsg, fill if nodata_at == "file" else None)
    band_nodata = {"nodata": fill} if nodata_at in ("raster:bands", "bands") else {}
    asset: dict[str, Any] = {
        "href": data.name,
        "type": "image/tiff; application=geotiff",
        "roles": ["data"],
        "gsd": 10,
    }
    if nodata_at == "bands":
        asset["bands"] = [{"name": n, **band_nodata} for n in names]
    else:
        asset["eo:bands"] = [{"name": n} for n in names]
        asset["raster:bands"] = [
            {"data_type": "float32", "spatial_resolution": 10, **band_nodata} for _ in names
        ]
    if nodata_at == "asset":
        asset["nodata"] = fill
    item = stac_item(
        folder / f"{item_id}.json",
        item_id=item_id,
        assets={"data": asset},
        platform="sentinel-2a",
        stac_version="1.1.0" if nodata_at == "bands" else "1.0.0",
        properties={"s2:mgrs_tile": "31UFS", "view:sun_elevation": 54.5, "view:sun_azimuth": 160.0},
    )
    return WrittenStack(item, reflectance, scl, filled)
