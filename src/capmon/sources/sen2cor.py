"""Sentinel-2 L2A products of Sen2Cor / ESA (``.SAFE`` folder, PSD 14.x).

The product metadata ``MTD_MSIL2A.xml`` lists every image file, the quantification value, the
per-band ``BOA_ADD_OFFSET`` (-1000 from processing baseline 04.00 on) and the no-data value:
``reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE``, DN 0 = no data (NaN). The
tile metadata ``GRANULE/*/MTD_TL.xml`` gives the mean sun and view angles. Band files are JPEG
2000 (ESA) or GeoTIFF (capmon's ``fmt="cog"`` convenience layout); the validity mask is the
Scene Classification (SCL, 20 and 60 m); metadata that lists no SCL image makes a product
without cloud mask (refused unless ``MaskConfig(allow_unmasked=True)``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon

from capmon.errors import InputError
from capmon.signals.masks import scl_valid
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
from capmon.sources.naming import Sen2CorName, parse_sen2cor_name
from capmon.sources.raster import BandFiles, BandSource, Calibration, Rows

PRODUCT_METADATA = "MTD_MSIL2A.xml"
TILE_METADATA = "MTD_TL.xml"
SCL = "SCL"

# The bandId order of the Sentinel-2 metadata (used when Spectral_Information is absent).
_BAND_IDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
_IMAGE = re.compile(r"_(?P<layer>B\d{2}|B8A|SCL|TCI|AOT|WVP)_(?P<resolution>\d{2})m$")


def canonical_band(physical: str) -> str:
    """``B4`` -> ``B04``, ``B8A`` -> ``B8A``."""
    match = re.fullmatch(r"B0?(\d{1,2})(A?)", physical.strip().upper())
    if match is None:
        raise InputError(f"{physical!r} is not a Sentinel-2 band name")
    number = int(match[1])
    return f"B{number}A" if match[2] else f"B{number:02d}"


def is_sen2cor_product(path: Path) -> bool:
    """Whether ``path`` is a Sen2Cor L2A folder or its ``MTD_MSIL2A.xml``."""
    if path.is_file():
        return path.name == PRODUCT_METADATA
    return path.is_dir() and (path / PRODUCT_METADATA).is_file()


class Sen2CorReader(OpticalReader):
    """A Sen2Cor L2A product; ``path`` is the ``.SAFE`` folder or its ``MTD_MSIL2A.xml``."""

    def __init__(self, path: Path) -> None:
        root = path.parent if path.name == PRODUCT_METADATA else path
        metadata = Metadata(root / PRODUCT_METADATA, product=root.name)
        name = _product_name(metadata, root)
        product = name.safe_name.removesuffix(".SAFE")
        metadata.product = product
        quantification = _quantification(metadata)
        offsets = _offsets(metadata)
        nodata = _nodata(metadata)
        sources: dict[str, list[BandSource]] = defaultdict(list)
        granule_dirs: list[Path] = []
        for granule in metadata.all("Granule"):
            extensions = (
                (".jp2", ".tif")
                if granule.get("imageFormat", "JPEG2000") == "JPEG2000"
                else (".tif", ".jp2")
            )
            for element in metadata.all("IMAGE_FILE", granule):
                relative = (element.text or "").strip()
                match = _IMAGE.search(relative)
                if match is None:
                    continue
                layer, resolution = match["layer"], int(match["resolution"])
                if layer[0] == "B" or layer == SCL:
                    calibration = (
                        Calibration(
                            add_offset=offsets.get(layer, 0.0),
                            quantification=quantification,
                            nodata=nodata,
                        )
                        if layer != SCL
                        else Calibration()
                    )
                    file = _existing(root / relative, extensions)
                    sources[layer].append(BandSource(file, calibration, float(resolution)))
                    granule_dirs.append(Path(relative).parents[2])
        bands = tuple(b for b in S2_BAND_NAMES if b in sources)
        if not bands:
            raise InputError(
                f"the metadata {metadata.path} of product {product} lists no band file"
            )
        self._tile_metadata = root / granule_dirs[0] / TILE_METADATA
        info = ProductInfo(
            name=product,
            product_type=ProductType.L2A,
            sensor=_sensor(metadata, name),
            acquired_at=metadata.time("PRODUCT_START_TIME"),
            acquired_first_at=None,
            tile=name.tile,
            relative_orbit=_orbit(metadata, name),
            orbit_direction=_direction(metadata.optional_text("SENSING_ORBIT_DIRECTION")),
            processing_baseline=metadata.optional_text("PROCESSING_BASELINE")
            or name.processing_baseline,
            footprint=_footprint(metadata),
            path=root,
            properties={
                "format": "SAFE",
                "generation_time": metadata.time("GENERATION_TIME").isoformat(),
                "cloud_cover": _optional_float(metadata, "Cloud_Coverage_Assessment"),
                "quantification": quantification,
                "boa_add_offset": offsets.get("B04", 0.0),
            },
        )
        super().__init__(info, BandFiles(product, sources), bands)

    def valid_mask(
        self,
        resolution: float | None = None,
        config: MaskConfig = DEFAULT_MASK_CONFIG,
        rows: Rows | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Valid where the SCL class is not one of ``config.scl.invalid_classes``."""
        if self.mask_source is None:
            return self.unmasked_valid(resolution, config, rows)
        return self.files.read_mask(
            SCL, self.grid(resolution), lambda scl: scl_valid(scl, config.scl), rows
        )

    @property
    def mask_source(self) -> str | None:
        return SCL if SCL in self.files.sources else None

    @property
    def mask_searched(self) -> str:
        return f"{PRODUCT_METADATA} lists no SCL image (IMAGE_FILE ..._SCL_20m / _60m)"

    def angles(self) -> Angles:
        """Mean sun angles and the mean over bands of the mean view angles (MTD_TL.xml)."""
        tile = Metadata(self._tile_metadata, product=self.info.name)
        sun = tile.first("Mean_Sun_Angle")
        if sun is None:
            raise InputError(f"the metadata {tile.path} lacks Mean_Sun_Angle")
        views = list(tile.all("Mean_Viewing_Incidence_Angle"))
        if not views:
            raise InputError(f"the metadata {tile.path} lacks Mean_Viewing_Incidence_Angle")
        return Angles(
            sun_zenith=tile.number("ZENITH_ANGLE", sun),
            sun_azimuth=tile.number("AZIMUTH_ANGLE", sun),
            view_zenith=mean_angle([tile.number("ZENITH_ANGLE", v) for v in views], circular=False),
            view_azimuth=mean_angle(
                [tile.number("AZIMUTH_ANGLE", v) for v in views], circular=True
            ),
        )

    def check(self) -> None:
        super().check()
        Metadata(self._tile_metadata, product=self.info.name)


def _product_name(metadata: Metadata, root: Path) -> Sen2CorName:
    uri = metadata.optional_text("PRODUCT_URI")
    for candidate in (uri, root.name):
        if candidate:
            try:
                return parse_sen2cor_name(candidate)
            except InputError:
                continue
    raise InputError(
        f"{root}: neither PRODUCT_URI ({uri!r}) nor the folder name is a Sentinel-2 L2A "
        "product name"
    )


def _sensor(metadata: Metadata, name: Sen2CorName) -> str:
    spacecraft = metadata.optional_text("SPACECRAFT_NAME")
    return sensor_code(spacecraft) if spacecraft else name.spacecraft


def _quantification(metadata: Metadata) -> float:
    for tag in ("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE"):
        if metadata.first(tag) is not None:
            return metadata.number(tag)
    raise InputError(f"the metadata {metadata.path} lacks BOA_QUANTIFICATION_VALUE")


def _physical_bands(metadata: Metadata) -> dict[str, str]:
    """bandId -> canonical band name (from Spectral_Information, else the standard order)."""
    mapping = {
        str(element.get("bandId")): canonical_band(str(element.get("physicalBand")))
        for element in metadata.all("Spectral_Information")
        if element.get("bandId") is not None and element.get("physicalBand")
    }
    return mapping or {str(i): canonical_band(b) for i, b in enumerate(_BAND_IDS)}


def _offsets(metadata: Metadata) -> dict[str, float]:
    """Canonical band -> BOA_ADD_OFFSET (empty before baseline 04.00)."""
    bands = _physical_bands(metadata)
    offsets: dict[str, float] = {}
    for element in metadata.all("BOA_ADD_OFFSET"):
        band_id = element.get("band_id")
        if band_id is None or band_id not in bands:
            raise InputError(f"the metadata {metadata.path} has a BOA_ADD_OFFSET of unknown band")
        try:
            offsets[bands[band_id]] = float((element.text or "").strip())
        except ValueError:
            raise InputError(
                f"the metadata {metadata.path}: BOA_ADD_OFFSET {element.text!r} is not a number"
            ) from None
    return offsets


def _nodata(metadata: Metadata) -> float:
    for special in metadata.all("Special_Values"):
        if metadata.optional_text("SPECIAL_VALUE_TEXT", special) == "NODATA":
            return metadata.number("SPECIAL_VALUE_INDEX", special)
    return 0.0


def _existing(base: Path, extensions: tuple[str, ...]) -> Path:
    for extension in extensions:
        candidate = base.with_name(base.name + extension)
        if candidate.is_file():
            return candidate
    return base.with_name(base.name + extensions[0])


def _footprint(metadata: Metadata) -> Polygon:
    numbers = metadata.text("EXT_POS_LIST").split()
    try:
        values = [float(v) for v in numbers]
    except ValueError:
        raise InputError(f"the metadata {metadata.path}: EXT_POS_LIST is not numeric") from None
    if len(values) < 8 or len(values) % 2:
        raise InputError(f"the metadata {metadata.path}: EXT_POS_LIST is not a polygon")
    polygon = Polygon(list(zip(values[1::2], values[0::2], strict=True)))
    if not polygon.is_valid or polygon.area == 0:
        raise InputError(f"the metadata {metadata.path}: EXT_POS_LIST is not a valid polygon")
    return polygon


def _orbit(metadata: Metadata, name: Sen2CorName) -> int:
    text = metadata.optional_text("SENSING_ORBIT_NUMBER")
    if text is None:
        return name.relative_orbit
    try:
        return int(text)
    except ValueError:
        raise InputError(
            f"the metadata {metadata.path}: SENSING_ORBIT_NUMBER {text!r} is not a number"
        ) from None


def _direction(text: str | None) -> str | None:
    if text is None:
        return None
    return {"ASCENDING": "ASC", "DESCENDING": "DESC"}.get(text.strip().upper())


def _optional_float(metadata: Metadata, name: str) -> float | None:
    return metadata.number(name) if metadata.optional_text(name) is not None else None
