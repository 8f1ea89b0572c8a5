"""Sentinel-2 L2A products of MAJA in the THEIA / MUSCATE layout.

``<product>_MTD_ALL.xml`` lists the reflectance files (``FRE`` slope-corrected flat
reflectance, read by default as Sen2-Agri / Sen4CAP do, or ``SRE``), the masks per resolution
group (R1 = 10 m, R2 = 20 m), the quantification (``reflectance = DN / 10000``), the no-data
value (-10000 -> NaN) and the mean angles. MAJA distributes no B01, B09 or B10.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon

from capmon.errors import InputError
from capmon.signals.masks import maja_valid
from capmon.sources._optical import OpticalReader, mean_angle
from capmon.sources._xml import Metadata
from capmon.sources.model import (
    DEFAULT_MASK_CONFIG,
    S2_BAND_NAMES,
    Angles,
    MaskConfig,
    ProductInfo,
    ProductType,
    sensor_code,
)
from capmon.sources.naming import MajaName, parse_maja_name
from capmon.sources.raster import BandFiles, BandSource, Calibration, Rows
from capmon.sources.sen2cor import canonical_band

METADATA_SUFFIX = "_MTD_ALL.xml"
_MASK_FILE = re.compile(r"_(?P<layer>CLM|EDG|SAT|MG2)_(?P<group>R\d)\.tif$", re.IGNORECASE)
_CORNERS = ("upperLeft", "upperRight", "lowerRight", "lowerLeft")
_MASK_LAYERS = ("EDG", "CLM", "MG2", "SAT")


def metadata_file(path: Path) -> Path | None:
    """The ``*_MTD_ALL.xml`` of a MAJA folder (or ``path`` itself), None if there is none."""
    if path.is_file():
        return path if path.name.endswith(METADATA_SUFFIX) else None
    if not path.is_dir():
        return None
    preferred = path / f"{path.name}{METADATA_SUFFIX}"
    if preferred.is_file():
        return preferred
    found = sorted(path.glob(f"*{METADATA_SUFFIX}"))
    return found[0] if found else None


class MajaReader(OpticalReader):
    """A MAJA L2A product; ``path`` is its folder or its ``*_MTD_ALL.xml``."""

    def __init__(self, path: Path, reflectance: Literal["FRE", "SRE"] = "FRE") -> None:
        if reflectance not in ("FRE", "SRE"):
            raise InputError(f"reflectance must be 'FRE' or 'SRE', not {reflectance!r}")
        mtd = metadata_file(path)
        if mtd is None:
            raise InputError(f"{path} is not a MAJA product: no *{METADATA_SUFFIX}")
        root = mtd.parent
        metadata = Metadata(mtd, product=root.name)
        name = _product_name(metadata, root)
        product = name.product_name
        metadata.product = product
        calibration = Calibration(
            quantification=metadata.number("REFLECTANCE_QUANTIFICATION_VALUE"),
            nodata=_nodata(metadata),
        )
        resolutions = _band_resolutions(metadata)
        sources: dict[str, list[BandSource]] = defaultdict(list)
        for element in metadata.all("IMAGE_FILE"):
            relative = (element.text or "").strip()
            if f"_{reflectance}_" not in Path(relative).name or element.get("band_id") is None:
                continue
            band = canonical_band(str(element.get("band_id")))
            sources[band].append(BandSource(root / relative, calibration, resolutions.get(band)))
        bands = tuple(b for b in S2_BAND_NAMES if b in sources)
        if not bands:
            raise InputError(
                f"the metadata {metadata.path} of product {product} lists no {reflectance} file"
            )
        group_resolution = _group_resolutions(metadata)
        masks: dict[str, dict[Path, BandSource]] = defaultdict(dict)
        for element in metadata.all("MASK_FILE"):
            relative = (element.text or "").strip()
            match = _MASK_FILE.search(relative)
            if match is not None:
                layer, group = match["layer"].upper(), match["group"].upper()
                file = root / relative
                masks[layer][file] = BandSource(file, resolution=group_resolution.get(group))
        sources.update({layer: list(files.values()) for layer, files in masks.items()})
        self._metadata = metadata
        info = ProductInfo(
            name=product,
            product_type=ProductType.L2A_MAJA,
            sensor=sensor_code(metadata.optional_text("PLATFORM") or name.spacecraft),
            acquired_at=metadata.time("ACQUISITION_DATE"),
            acquired_first_at=None,
            tile=name.tile,
            relative_orbit=_orbit(metadata),
            orbit_direction=None,
            processing_baseline=metadata.optional_text("PRODUCT_VERSION")
            or name.version.replace("-", "."),
            footprint=_footprint(metadata),
            path=root,
            properties={
                "format": "MUSCATE",
                "reflectance": reflectance,
                "generation_time": metadata.time("PRODUCTION_DATE").isoformat(),
                "cloud_cover": _quality_index(metadata, "CloudPercent"),
                "quantification": calibration.quantification,
            },
        )
        super().__init__(info, BandFiles(product, sources), bands)

    def valid_mask(
        self,
        resolution: float | None = None,
        config: MaskConfig = DEFAULT_MASK_CONFIG,
        rows: Rows | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Valid where EDG is 0 and no CLM / MG2 / SAT bit of ``config.maja`` is set.

        The masks of the group at ``resolution`` are used (R1 at 10 m, R2 at 20 m; SAT flags
        the bands of that group); other resolutions are derived as for bands.
        """
        if self.mask_source is None:
            return self.unmasked_valid(resolution, config, rows)
        optional = [layer for layer in ("MG2", "SAT") if layer in self.files.sources]

        def decode(edg: npt.NDArray[Any], clm: npt.NDArray[Any], *rest: npt.NDArray[Any]) -> Any:
            extra = dict(zip(optional, rest, strict=True))
            return maja_valid(
                edg, clm=clm, mg2=extra.get("MG2"), sat=extra.get("SAT"), config=config.maja
            )

        return self.files.read_mask(("EDG", "CLM", *optional), self.grid(resolution), decode, rows)

    @property
    def mask_source(self) -> str | None:
        """``EDG+CLM`` (+ ``MG2``, ``SAT`` when the product has them), None without EDG or
        CLM (both are needed: EDG for the swath edge, CLM for the clouds)."""
        layers = [layer for layer in _MASK_LAYERS if layer in self.files.sources]
        return "+".join(layers) if {"EDG", "CLM"} <= set(layers) else None

    @property
    def mask_searched(self) -> str:
        missing = [layer for layer in ("EDG", "CLM") if layer not in self.files.sources]
        return (
            f"{self._metadata.path.name} lists no {' and no '.join(missing)} mask "
            "(MASK_FILE ..._EDG_R1.tif / _CLM_R1.tif)"
        )

    def angles(self) -> Angles:
        """Mean sun angles and the mean over bands of the mean view angles (MTD_ALL.xml)."""
        metadata = self._metadata
        means = metadata.first("Mean_Value_List")
        sun = metadata.first("Sun_Angles", means) if means is not None else None
        if means is None or sun is None:
            raise InputError(f"the metadata {metadata.path} lacks Mean_Value_List/Sun_Angles")
        views = list(metadata.all("Mean_Viewing_Incidence_Angle", means))
        if not views:
            raise InputError(f"the metadata {metadata.path} lacks Mean_Viewing_Incidence_Angle")
        return Angles(
            sun_zenith=metadata.number("ZENITH_ANGLE", sun),
            sun_azimuth=metadata.number("AZIMUTH_ANGLE", sun),
            view_zenith=mean_angle(
                [metadata.number("ZENITH_ANGLE", v) for v in views], circular=False
            ),
            view_azimuth=mean_angle(
                [metadata.number("AZIMUTH_ANGLE", v) for v in views], circular=True
            ),
        )


def _product_name(metadata: Metadata, root: Path) -> MajaName:
    identifier = metadata.optional_text("IDENTIFIER")
    for candidate in (root.name, identifier):
        if candidate:
            try:
                return parse_maja_name(candidate)
            except InputError:
                continue
    raise InputError(
        f"{root}: neither the folder name nor IDENTIFIER ({identifier!r}) is a THEIA L2A "
        "product name"
    )


def _nodata(metadata: Metadata) -> float:
    for element in metadata.all("SPECIAL_VALUE"):
        if (element.get("name") or "").lower() == "nodata":
            try:
                return float((element.text or "").strip())
            except ValueError:
                break
    raise InputError(f"the metadata {metadata.path} lacks the nodata SPECIAL_VALUE")


def _band_resolutions(metadata: Metadata) -> dict[str, float]:
    resolutions: dict[str, float] = {}
    for element in metadata.all("Spectral_Band_Informations"):
        band_id = element.get("band_id")
        if band_id is not None and metadata.optional_text("SPATIAL_RESOLUTION", element):
            resolutions[canonical_band(band_id)] = metadata.number("SPATIAL_RESOLUTION", element)
    return resolutions


def _group_resolutions(metadata: Metadata) -> dict[str, float]:
    resolutions: dict[str, float] = {}
    for element in metadata.all("Group_Geopositioning"):
        group = element.get("group_id")
        if group is not None and metadata.optional_text("XDIM", element):
            resolutions[group.upper()] = abs(metadata.number("XDIM", element))
    return resolutions


def _orbit(metadata: Metadata) -> int | None:
    text = metadata.optional_text("ORBIT_NUMBER")
    try:
        return int(text) if text is not None else None
    except ValueError:
        raise InputError(f"the metadata {metadata.path}: ORBIT_NUMBER {text!r}") from None


def _footprint(metadata: Metadata) -> Polygon:
    points = {p.get("name"): p for p in metadata.all("Point")}
    missing = [corner for corner in _CORNERS if corner not in points]
    if missing:
        raise InputError(f"the metadata {metadata.path} lacks the corner points {missing}")
    polygon = Polygon(
        [
            (metadata.number("LON", points[corner]), metadata.number("LAT", points[corner]))
            for corner in _CORNERS
        ]
    )
    if not polygon.is_valid or polygon.area == 0:
        raise InputError(f"the metadata {metadata.path}: the corner points are not a polygon")
    return polygon


def _quality_index(metadata: Metadata, name: str) -> float | None:
    for element in metadata.all("QUALITY_INDEX"):
        if element.get("name") == name:
            try:
                return float((element.text or "").strip())
            except ValueError:
                return None
    return None
