"""Sentinel-2 L2A products in the MAJA / THEIA (MUSCATE) layout.

::

    SENTINEL2A_20240503-105031-024_L2A_T31UFS_C_V3-1/
        SENTINEL2A_..._MTD_ALL.xml
        SENTINEL2A_..._FRE_B2.tif ... _FRE_B12.tif   (flat reflectance, slope-corrected)
        SENTINEL2A_..._SRE_B2.tif ... _SRE_B12.tif   (surface reflectance)
        MASKS/SENTINEL2A_..._CLM_R1.tif  _CLM_R2.tif  (cloud bits)
              ..._EDG_R1/R2.tif  _SAT_R1/R2.tif  _MG2_R1/R2.tif

Reflectances are int16 ``round(reflectance * 10000)`` with no data -10000; group R1 holds the
10 m bands (B2, B3, B4, B8), R2 the 20 m bands (B5, B6, B7, B8A, B11, B12). MAJA distributes no
B1, B9 or B10 reflectance. The terrain of synthetic scenes is flat, so FRE and SRE are equal.
Only a window of the tile is written; the metadata gives its corner and size per group.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyproj

from capmon.errors import InputError
from capmon.sources.naming import MajaName, require_utc
from capmon.synth.formats._common import (
    block_any,
    block_mean,
    check_mask,
    check_reflectance,
    fmt_float,
    iso_ms,
    staged_folder,
    write_raster,
    write_xml,
    xml_child,
)
from capmon.synth.formats.sen2cor import S2_BANDS, S2Acquisition

MAJA_BANDS: dict[str, tuple[str, ...]] = {
    "R1": ("B02", "B03", "B04", "B08"),
    "R2": ("B05", "B06", "B07", "B8A", "B11", "B12"),
}
"""The reflectance bands of each MAJA resolution group (S2 band names as in ``S2_BANDS``)."""

GROUP_RESOLUTION = {"R1": 10, "R2": 20}
REFLECTANCE_QUANTIFICATION = 10_000
NODATA = -10_000

CLM_BITS = {
    "clouds_and_shadows": 0,
    "clouds": 1,
    "clouds_mono_temporal": 2,
    "clouds_multi_temporal": 3,
    "thin_clouds": 4,
    "cloud_shadows": 5,
    "cloud_shadows_outside": 6,
    "high_clouds": 7,
}
"""Bits of the CLM mask: 0 all clouds except the thinnest and all shadows, 1 all clouds except
the thinnest, 2 / 3 clouds from mono- / multi-temporal tests, 4 thinnest clouds, 5 shadows of
detected clouds, 6 shadows of clouds outside the image, 7 high clouds (1.38 µm)."""

MG2_BITS = {
    "water": 0,
    "clouds": 1,
    "snow": 2,
    "cloud_shadows": 3,
    "topographic_shadows": 4,
    "hidden_by_terrain": 5,
    "sun_too_low": 6,
    "sun_tangent": 7,
}
"""Bits of the MG2 geophysical mask."""

# (THEIA band id, central wavelength nm, FWHM nm) of the distributed bands.
_SPECTRAL = {
    "B02": ("B2", 492, 66),
    "B03": ("B3", 560, 36),
    "B04": ("B4", 665, 31),
    "B05": ("B5", 704, 15),
    "B06": ("B6", 740, 15),
    "B07": ("B7", 781, 20),
    "B08": ("B8", 833, 106),
    "B8A": ("B8A", 864, 21),
    "B11": ("B11", 1612, 92),
    "B12": ("B12", 2190, 180),
}


def maja_product_name(acq: S2Acquisition) -> str:
    """The THEIA folder name of ``acq``'s L2A product (acquisition time to the millisecond)."""
    return _name_of(acq).product_name


def write_maja(
    out_dir: Path,
    acq: S2Acquisition,
    reflectance: Mapping[str, np.ndarray],
    *,
    cloud: np.ndarray,
    shadow: np.ndarray,
    snow: np.ndarray,
    saturated: np.ndarray,
    edge: np.ndarray,
    water: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a MAJA / THEIA L2A product into ``out_dir`` and return its folder.

    ``reflectance`` maps S2 band names (``B02``...) to float reflectances (NaN = no data) on
    the 10 m window grid; the ten MAJA bands are required, B01 and B09 are accepted and not
    written (MAJA does not distribute them). The masks are boolean arrays on the 10 m grid:
    ``cloud`` (opaque clouds), ``shadow`` (their shadows), ``snow``, ``saturated`` (all bands),
    ``edge`` (outside the swath) and optionally ``water``. R2 (20 m) masks and reflectances
    are derived by 2x2 blocks: a mask is set if any of its four pixels is, a reflectance is
    the mean (no data if any pixel is). Pixels at the edge or without data are -10000 in every
    band, set in EDG, and clear in CLM and MG2.
    """
    if not isinstance(acq, S2Acquisition):
        raise InputError(f"acq must be an S2Acquisition, not {type(acq).__name__}")
    shape = acq.shape(10)
    bands = _check_bands(reflectance, shape)
    masks_10m = {
        "cloud": check_mask("cloud", cloud, shape),
        "shadow": check_mask("shadow", shadow, shape),
        "snow": check_mask("snow", snow, shape),
        "saturated": check_mask("saturated", saturated, shape),
        "edge": check_mask("edge", edge, shape),
        "water": np.zeros(shape, np.bool_) if water is None else check_mask("water", water, shape),
    }
    name = _name_of(acq)
    product = name.product_name
    target = Path(out_dir) / product
    with staged_folder(target, overwrite=overwrite) as root:
        (root / "MASKS").mkdir()
        for group, band_names in MAJA_BANDS.items():
            resolution = GROUP_RESOLUTION[group]
            factor = resolution // 10
            masks = {key: block_any(value, factor) for key, value in masks_10m.items()}
            refl = {band: block_mean(bands[band], factor) for band in band_names}
            no_data = masks["edge"] | np.logical_or.reduce([np.isnan(v) for v in refl.values()])
            transform = acq.transform(resolution)
            for band, values in refl.items():
                digital = _to_int16(values, no_data)
                theia_band = _SPECTRAL[band][0]
                for kind in ("FRE", "SRE"):
                    write_raster(
                        root / f"{product}_{kind}_{theia_band}.tif",
                        digital,
                        transform=transform,
                        epsg=acq.epsg,
                        fmt="gtiff",
                        nodata=NODATA,
                    )
            layers = {
                "CLM": _cloud_mask(masks, no_data),
                "MG2": _geophysical_mask(masks, no_data),
                "SAT": np.where(masks["saturated"], (1 << len(band_names)) - 1, 0).astype(np.uint8),
                "EDG": no_data.astype(np.uint8),
            }
            for mask_name, values in layers.items():
                write_raster(
                    root / "MASKS" / f"{product}_{mask_name}_{group}.tif",
                    values,
                    transform=transform,
                    epsg=acq.epsg,
                    fmt="gtiff",
                )
        snow_share = _share(masks_10m["snow"], masks_10m["edge"])
        write_xml(_metadata(acq, name, snow_share), root / f"{product}_MTD_ALL.xml")
    return target


def _name_of(acq: S2Acquisition) -> MajaName:
    return MajaName(spacecraft=acq.spacecraft, acquisition_time=acq.sensing_utc, tile=acq.tile)


def _check_bands(
    reflectance: Mapping[str, np.ndarray], shape: tuple[int, int]
) -> dict[str, npt.NDArray[np.float64]]:
    if not isinstance(reflectance, Mapping):
        raise InputError(
            f"reflectance must map band names to arrays, not {type(reflectance).__name__}"
        )
    required = MAJA_BANDS["R1"] + MAJA_BANDS["R2"]
    missing = [band for band in required if band not in reflectance]
    if missing:
        raise InputError(f"reflectance lacks the bands {missing} (MAJA writes {required})")
    unknown = sorted(set(reflectance) - set(S2_BANDS))
    if unknown:
        raise InputError(f"reflectance has unknown bands {unknown} (expected names of {S2_BANDS})")
    return {
        band: check_reflectance(f"reflectance[{band!r}]", reflectance[band], shape)
        for band in required
    }


def _to_int16(
    values: npt.NDArray[np.float64], no_data: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int16]:
    scaled = np.rint(np.nan_to_num(values) * REFLECTANCE_QUANTIFICATION)
    digital = np.clip(scaled, NODATA + 1, np.iinfo(np.int16).max).astype(np.int16)
    digital[no_data] = NODATA
    return digital


def _bits(flags: Mapping[int, npt.NDArray[np.bool_]]) -> npt.NDArray[np.uint8]:
    """A uint8 bit field with bit ``n`` set where ``flags[n]`` is True."""
    result = np.zeros(next(iter(flags.values())).shape, np.uint8)
    for bit, flag in flags.items():
        result |= flag.astype(np.uint8) << np.uint8(bit)
    return result


def _cloud_mask(
    masks: Mapping[str, npt.NDArray[np.bool_]], no_data: npt.NDArray[np.bool_]
) -> npt.NDArray[np.uint8]:
    cloud, shadow = masks["cloud"] & ~no_data, masks["shadow"] & ~no_data
    return _bits(
        {
            CLM_BITS["clouds_and_shadows"]: cloud | shadow,
            CLM_BITS["clouds"]: cloud,
            CLM_BITS["clouds_mono_temporal"]: cloud,
            CLM_BITS["cloud_shadows"]: shadow,
        }
    )


def _geophysical_mask(
    masks: Mapping[str, npt.NDArray[np.bool_]], no_data: npt.NDArray[np.bool_]
) -> npt.NDArray[np.uint8]:
    valid = ~no_data
    return _bits(
        {
            MG2_BITS["water"]: masks["water"] & valid,
            MG2_BITS["clouds"]: masks["cloud"] & valid,
            MG2_BITS["snow"]: masks["snow"] & valid,
            MG2_BITS["cloud_shadows"]: masks["shadow"] & valid,
        }
    )


def _share(mask: npt.NDArray[np.bool_], edge: npt.NDArray[np.bool_]) -> float:
    valid = ~edge
    count = int(valid.sum())
    return 100.0 * float((mask & valid).sum()) / count if count else 0.0


def _metadata(acq: S2Acquisition, name: MajaName, snow_percent: float) -> ET.Element:
    product = name.product_name
    sensing = require_utc(acq.sensing_time, "sensing_time")
    root = ET.Element(
        "Muscate_Metadata_Document",
        {
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:noNamespaceSchemaLocation": "Muscate_Metadata.xsd",
        },
    )
    identification = xml_child(root, "Metadata_Identification")
    xml_child(identification, "METADATA_FORMAT", "METADATA_MUSCATE", {"version": "1.16"})
    xml_child(identification, "METADATA_PROFILE", "USER")
    xml_child(identification, "METADATA_INFORMATION", "EXPERTISE")

    dataset = xml_child(root, "Dataset_Identification")
    xml_child(dataset, "IDENTIFIER", product)
    xml_child(dataset, "AUTHORITY", "THEIA")
    xml_child(dataset, "PRODUCER", "MUSCATE")
    xml_child(dataset, "PROJECT", "SENTINEL2")
    xml_child(dataset, "GEOGRAPHICAL_ZONE", f"T{acq.tile}", {"type": "Tile"})
    xml_child(dataset, "TITLE", product)
    xml_child(dataset, "DESCRIPTION", "Synthetic MAJA L2A product written by capmon")

    characteristics = xml_child(root, "Product_Characteristics")
    xml_child(characteristics, "PRODUCT_ID", product)
    xml_child(characteristics, "ACQUISITION_DATE", iso_ms(sensing))
    xml_child(characteristics, "PRODUCTION_DATE", iso_ms(acq.generation_utc))
    xml_child(characteristics, "PRODUCT_VERSION", name.version.replace("-", "."))
    xml_child(characteristics, "PRODUCT_LEVEL", "L2A")
    xml_child(characteristics, "PLATFORM", f"SENTINEL2{acq.spacecraft[2:]}")
    xml_child(characteristics, "SPECTRAL_CONTENT", "XS")
    xml_child(characteristics, "ORBIT_NUMBER", acq.relative_orbit, {"type": "Orbit"})
    acquisition_range = xml_child(characteristics, "UTC_Acquisition_Range")
    xml_child(acquisition_range, "MEAN", iso_ms(sensing))
    xml_child(acquisition_range, "DATE_PRECISION", 0.001, {"unit": "s"})
    all_bands = [_SPECTRAL[band][0] for group in MAJA_BANDS.values() for band in group]
    global_list = xml_child(characteristics, "Band_Global_List", attrs={"count": len(all_bands)})
    for band_id in all_bands:
        xml_child(global_list, "BAND_ID", band_id)
    groups = xml_child(characteristics, "Band_Group_List")
    for group, band_names in MAJA_BANDS.items():
        group_element = xml_child(groups, "Group", attrs={"group_id": group})
        band_list = xml_child(group_element, "Band_List", attrs={"count": len(band_names)})
        for band in band_names:
            xml_child(band_list, "BAND_ID", _SPECTRAL[band][0])

    organisation = xml_child(xml_child(root, "Product_Organisation"), "Muscate_Product")
    images = xml_child(organisation, "Image_List")
    for kind, nature, description in (
        ("SRE", "Surface_Reflectance", "Ground reflectance without slope correction"),
        ("FRE", "Flat_Reflectance", "Ground reflectance with slope correction"),
    ):
        image = xml_child(images, "Image")
        _properties(image, "Image_Properties", nature, "int16", description)
        files = xml_child(image, "Image_File_List")
        for band_id in all_bands:
            xml_child(files, "IMAGE_FILE", f"{product}_{kind}_{band_id}.tif", {"band_id": band_id})
    masks = xml_child(organisation, "Mask_List")
    for mask_name, nature, description in (
        ("EDG", "Edge", "Pixels outside the image (no data)"),
        ("SAT", "Saturation", "Saturated pixels, one bit per band of the group"),
        ("CLM", "Cloud", "Cloud mask, bits as in CLM_BITS"),
        ("MG2", "Geophysics", "Water, clouds, snow and shadows, bits as in MG2_BITS"),
    ):
        mask = xml_child(masks, "Mask")
        _properties(mask, "Mask_Properties", nature, "byte", description)
        files = xml_child(mask, "Mask_File_List")
        for group, band_names in MAJA_BANDS.items():
            relative = f"MASKS/{product}_{mask_name}_{group}.tif"
            if mask_name == "SAT":
                for bit, band in enumerate(band_names):
                    xml_child(
                        files,
                        "MASK_FILE",
                        relative,
                        {"band_id": _SPECTRAL[band][0], "bit_number": bit},
                    )
            else:
                xml_child(files, "MASK_FILE", relative, {"group_id": group})

    geoposition = xml_child(root, "Geoposition_Informations")
    crs = xml_child(geoposition, "Coordinate_Reference_System")
    xml_child(crs, "GEO_TABLES", "EPSG", {"version": "1"})
    horizontal = xml_child(crs, "Horizontal_Coordinate_System")
    xml_child(horizontal, "HORIZONTAL_CS_TYPE", "PROJECTED")
    hemisphere = "N" if acq.epsg // 100 == 326 else "S"
    xml_child(horizontal, "HORIZONTAL_CS_NAME", f"WGS 84 / UTM zone {acq.epsg % 100}{hemisphere}")
    xml_child(horizontal, "HORIZONTAL_CS_CODE", acq.epsg)
    raster_cs = xml_child(geoposition, "Raster_CS")
    xml_child(raster_cs, "RASTER_CS_TYPE", "CELL")
    xml_child(raster_cs, "PIXEL_ORIGIN", 0)
    metadata_cs = xml_child(geoposition, "Metadata_CS")
    xml_child(metadata_cs, "METADATA_CS_TYPE", "CELL")
    xml_child(metadata_cs, "PIXEL_ORIGIN", 0)
    positioning = xml_child(geoposition, "Geopositioning")
    _corners(xml_child(positioning, "Global_Geopositioning"), acq)
    group_list = xml_child(positioning, "Group_Geopositioning_List")
    for group, resolution in GROUP_RESOLUTION.items():
        rows, columns = acq.shape(resolution)
        entry = xml_child(group_list, "Group_Geopositioning", attrs={"group_id": group})
        xml_child(entry, "ULX", fmt_float(acq.ulx))
        xml_child(entry, "ULY", fmt_float(acq.uly))
        xml_child(entry, "XDIM", resolution)
        xml_child(entry, "YDIM", -resolution)
        xml_child(entry, "NROWS", rows)
        xml_child(entry, "NCOLS", columns)

    geometric = xml_child(root, "Geometric_Informations")
    means = xml_child(geometric, "Mean_Value_List")
    sun = xml_child(means, "Sun_Angles")
    xml_child(sun, "ZENITH_ANGLE", fmt_float(acq.sun_zenith), {"unit": "deg"})
    xml_child(sun, "AZIMUTH_ANGLE", fmt_float(acq.sun_azimuth), {"unit": "deg"})
    views = xml_child(means, "Mean_Viewing_Incidence_Angle_List")
    for band_id in all_bands:
        view = xml_child(views, "Mean_Viewing_Incidence_Angle", attrs={"band_id": band_id})
        xml_child(view, "ZENITH_ANGLE", fmt_float(acq.view_zenith), {"unit": "deg"})
        xml_child(view, "AZIMUTH_ANGLE", fmt_float(acq.view_azimuth), {"unit": "deg"})
    grids = xml_child(geometric, "Angles_Grids_List")
    sun_grids = xml_child(grids, "Sun_Angles_Grids")
    _angle_grid(sun_grids, "Zenith", acq.sun_zenith, acq)
    _angle_grid(sun_grids, "Azimuth", acq.sun_azimuth, acq)
    view_grids = xml_child(grids, "Viewing_Incidence_Angles_Grids_List")
    for band_id in all_bands:
        band_grids = xml_child(
            view_grids, "Band_Viewing_Incidence_Angles_Grids_List", attrs={"band_id": band_id}
        )
        detector = xml_child(band_grids, "Viewing_Incidence_Angles_Grids", attrs={"detector_id": 1})
        _angle_grid(detector, "Zenith", acq.view_zenith, acq)
        _angle_grid(detector, "Azimuth", acq.view_azimuth, acq)

    radiometric = xml_child(root, "Radiometric_Informations")
    xml_child(radiometric, "REFLECTANCE_QUANTIFICATION_VALUE", REFLECTANCE_QUANTIFICATION)
    special = xml_child(radiometric, "Special_Values_List")
    xml_child(special, "SPECIAL_VALUE", NODATA, {"name": "nodata"})
    spectral = xml_child(radiometric, "Spectral_Band_Informations_List")
    for group, band_names in MAJA_BANDS.items():
        for band in band_names:
            band_id, central, fwhm = _SPECTRAL[band]
            info = xml_child(spectral, "Spectral_Band_Informations", attrs={"band_id": band_id})
            xml_child(info, "SPATIAL_RESOLUTION", GROUP_RESOLUTION[group], {"unit": "m"})
            wavelength = xml_child(info, "Wavelength")
            xml_child(wavelength, "CENTRAL", central, {"unit": "nm"})
            xml_child(wavelength, "FWHM", fwhm, {"unit": "nm"})

    quality = xml_child(root, "Quality_Informations")
    current = xml_child(quality, "Current_Product")
    quality_list = xml_child(current, "Product_Quality_List", attrs={"level": "N2"})
    product_quality = xml_child(quality_list, "Product_Quality")
    source = xml_child(product_quality, "Source_Product")
    xml_child(source, "PRODUCT_ID", product)
    xml_child(source, "ACQUISITION_DATE", iso_ms(sensing))
    xml_child(source, "PRODUCTION_DATE", iso_ms(acq.generation_utc))
    indices = xml_child(product_quality, "Global_Index_List")
    xml_child(indices, "QUALITY_INDEX", fmt_float(acq.cloud_cover), {"name": "CloudPercent"})
    xml_child(indices, "QUALITY_INDEX", fmt_float(snow_percent), {"name": "SnowPercent"})
    return root


def _properties(parent: ET.Element, tag: str, nature: str, encoding: str, description: str) -> None:
    properties = xml_child(parent, tag)
    xml_child(properties, "NATURE", nature)
    xml_child(properties, "FORMAT", "image/tiff")
    xml_child(properties, "ENCODING", encoding)
    xml_child(properties, "ENDIANNESS", "LittleEndian")
    xml_child(properties, "COMPRESSION", "DEFLATE")
    xml_child(properties, "DESCRIPTION", description)


def _corners(parent: ET.Element, acq: S2Acquisition) -> None:
    west, north = acq.ulx, acq.uly
    east, south = west + 10 * acq.width_10m, north - 10 * acq.height_10m
    points = {
        "upperLeft": (west, north),
        "upperRight": (east, north),
        "lowerRight": (east, south),
        "lowerLeft": (west, south),
        "center": ((west + east) / 2, (north + south) / 2),
    }
    to_wgs84 = pyproj.Transformer.from_crs(acq.epsg, 4326, always_xy=True)
    for point_name, (x, y) in points.items():
        lon, lat = to_wgs84.transform(x, y)
        point = xml_child(parent, "Point", attrs={"name": point_name})
        xml_child(point, "LAT", f"{lat:.12f}")
        xml_child(point, "LON", f"{lon:.12f}")
        xml_child(point, "X", fmt_float(x))
        xml_child(point, "Y", fmt_float(y))


def _angle_grid(parent: ET.Element, tag: str, value: float, acq: S2Acquisition) -> None:
    """A 5 km angle grid over the window (flat: synthetic scenes use one angle per scene)."""
    step = 5000
    columns = -(-10 * acq.width_10m // step) + 1
    rows = -(-10 * acq.height_10m // step) + 1
    grid = xml_child(parent, tag, attrs={"step_unit": "m", "values_unit": "deg"})
    xml_child(grid, "COL_STEP", step)
    xml_child(grid, "ROW_STEP", step)
    values = xml_child(grid, "Values_List")
    row = " ".join([fmt_float(value)] * columns)
    for _ in range(rows):
        xml_child(values, "VALUES", row)
