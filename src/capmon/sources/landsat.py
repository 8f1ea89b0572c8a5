"""Landsat Collection 2 Level-2 surface reflectance products (USGS folder with ``*_MTL.txt``).

Bands get Sentinel-2-like names, so that indices and extraction treat both sensors alike
(shared with :mod:`capmon.signals`):

=============  ==================  =====================  ==================
canonical      OLI (Landsat 8/9)   TM / ETM+ (L4/5/7)     meaning
=============  ==================  =====================  ==================
B01            SR_B1               -                      coastal aerosol
B02            SR_B2               SR_B1                  blue
B03            SR_B3               SR_B2                  green
B04            SR_B4               SR_B3                  red
B8A and B08    SR_B5               SR_B4                  NIR (one band, two names)
B11            SR_B6               SR_B5                  SWIR 1.6 µm
B12            SR_B7               SR_B7                  SWIR 2.2 µm
=============  ==================  =====================  ==================

``reflectance = DN * REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n`` from the MTL
(Collection 2: 2.75e-05 and -0.2), DN 0 = fill (NaN). The mask is QA_PIXEL. ``tile`` is the
WRS-2 path-row (``198025``), ``relative_orbit`` the WRS-2 path. The MTL has no view angles:
:meth:`LandsatReader.angles` returns nadir (0, 0), which Landsat's +-7.5 degree swath
approximates.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon

from capmon.errors import InputError, StorageError
from capmon.signals.masks import landsat_qa_valid
from capmon.sources._optical import OpticalReader
from capmon.sources.model import (
    DEFAULT_MASK_CONFIG,
    S2_BAND_NAMES,
    Angles,
    MaskConfig,
    ProductInfo,
    ProductType,
    sensor_code,
)
from capmon.sources.raster import BandFiles, BandSource, Calibration, Rows

QA_PIXEL = "QA_PIXEL"
C2_REFLECTANCE_SCALE = 2.75e-05
C2_REFLECTANCE_OFFSET = -0.2
FILL_DN = 0

OLI_BANDS = {"B01": 1, "B02": 2, "B03": 3, "B04": 4, "B8A": 5, "B11": 6, "B12": 7}
"""Canonical band -> SR band number of OLI (Landsat 8 and 9)."""
TM_BANDS = {"B02": 1, "B03": 2, "B04": 3, "B8A": 4, "B11": 5, "B12": 7}
"""Canonical band -> SR band number of TM and ETM+ (Landsat 4, 5 and 7)."""
NIR_ALIASES = {"B08": "B8A"}
"""Landsat has one NIR band: ``B08`` reads the same file as ``B8A``."""

_PRODUCT_ID = re.compile(
    r"^L(?P<sensor>[COTEM])(?P<mission>\d{2})_(?P<level>L2SP|L2SR)_(?P<path>\d{3})(?P<row>\d{3})"
    r"_(?P<acquired>\d{8})_(?P<processed>\d{8})_(?P<collection>\d{2})_(?P<category>T1|T2|RT)$"
)
_MTL_LINE = re.compile(r'^\s*(?P<key>[A-Z0-9_]+)\s*=\s*"?(?P<value>[^"]*)"?\s*$')
_CORNERS = ("UL", "UR", "LR", "LL")


@dataclass(frozen=True)
class LandsatName:
    """The fields of a Landsat Collection 2 product id (``LC09_L2SP_198025_..._02_T1``)."""

    sensor: str
    mission: int
    level: str
    path: int
    row: int
    acquired: str
    processed: str
    collection: str
    category: str

    @property
    def path_row(self) -> str:
        return f"{self.path:03d}{self.row:03d}"


def parse_landsat_name(name: str) -> LandsatName:
    """The fields of a Landsat Collection 2 Level-2 product id (a path is accepted)."""
    match = _PRODUCT_ID.match(Path(name).name)
    if match is None:
        raise InputError(
            f"{name!r} is not a Landsat Collection 2 Level-2 product id such as "
            "LC09_L2SP_198025_20240503_20240504_02_T1"
        )
    return LandsatName(
        sensor=match["sensor"],
        mission=int(match["mission"]),
        level=match["level"],
        path=int(match["path"]),
        row=int(match["row"]),
        acquired=match["acquired"],
        processed=match["processed"],
        collection=match["collection"],
        category=match["category"],
    )


def mtl_file(path: Path) -> Path | None:
    """The ``*_MTL.txt`` (or ``*_MTL.xml``) of a Landsat folder, or ``path`` itself."""
    if path.is_file():
        return path if path.name.endswith(("_MTL.txt", "_MTL.xml")) else None
    if not path.is_dir():
        return None
    for pattern in ("*_MTL.txt", "*_MTL.xml"):
        found = sorted(path.glob(pattern))
        if found:
            return found[0]
    return None


class Mtl:
    """A Landsat MTL document (text ODL or XML) as groups of key/value strings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"the Landsat metadata {path} is not UTF-8 text: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read the Landsat metadata {path}: {exc}") from exc
        self.groups = _parse_xml(path, text) if path.suffix == ".xml" else _parse_odl(path, text)

    def get(self, group: str, key: str) -> str | None:
        return self.groups.get(group, {}).get(key)

    def text(self, group: str, key: str) -> str:
        value = self.get(group, key)
        if value is None or not value.strip():
            raise InputError(f"the Landsat metadata {self.path} lacks {group}/{key}")
        return value.strip()

    def number(self, group: str, key: str) -> float:
        value = self.text(group, key)
        try:
            return float(value)
        except ValueError:
            raise InputError(
                f"the Landsat metadata {self.path}: {group}/{key} is not a number ({value!r})"
            ) from None


def _parse_odl(path: Path, text: str) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.strip() == "END":
            continue
        match = _MTL_LINE.match(line)
        if match is None:
            raise InputError(f"the Landsat metadata {path} is unreadable at line {number}")
        key, value = match["key"], match["value"].strip()
        if key == "GROUP":
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            if not stack or stack[-1] != value:
                raise InputError(f"the Landsat metadata {path}: unbalanced END_GROUP at {number}")
            stack.pop()
        elif stack:
            groups[stack[-1]][key] = value
    if stack or not groups:
        raise InputError(f"the Landsat metadata {path} is truncated or empty")
    return groups


def _parse_xml(path: Path, text: str) -> dict[str, dict[str, str]]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(f"the Landsat metadata {path} is not valid XML ({exc})") from exc
    return {
        group.tag: {leaf.tag: (leaf.text or "").strip() for leaf in group}
        for group in root
        if len(group)
    }


class LandsatReader(OpticalReader):
    """A Landsat Collection 2 Level-2 product; ``path`` is its folder or its MTL file."""

    def __init__(self, path: Path) -> None:
        mtl_path = mtl_file(path)
        if mtl_path is None:
            raise InputError(f"{path} is not a Landsat product: no *_MTL.txt or *_MTL.xml")
        root = mtl_path.parent
        mtl = Mtl(mtl_path)
        product = mtl.text("PRODUCT_CONTENTS", "LANDSAT_PRODUCT_ID")
        name = parse_landsat_name(product)
        numbers = OLI_BANDS if name.sensor in ("C", "O") else TM_BANDS
        resolution = float(mtl.get("PROJECTION_ATTRIBUTES", "GRID_CELL_SIZE_REFLECTIVE") or 30.0)
        sources: dict[str, list[BandSource]] = {}
        for band, number in numbers.items():
            file = mtl.text("PRODUCT_CONTENTS", f"FILE_NAME_BAND_{number}")
            scale = mtl.get(
                "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", f"REFLECTANCE_MULT_BAND_{number}"
            )
            offset = mtl.get(
                "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", f"REFLECTANCE_ADD_BAND_{number}"
            )
            calibration = Calibration(
                scale=_float(scale, C2_REFLECTANCE_SCALE, mtl_path),
                offset=_float(offset, C2_REFLECTANCE_OFFSET, mtl_path),
                nodata=FILL_DN,
            )
            sources[band] = [BandSource(root / file, calibration, resolution)]
        qa_file = (mtl.get("PRODUCT_CONTENTS", "FILE_NAME_QUALITY_L1_PIXEL") or "").strip()
        if qa_file:
            sources[QA_PIXEL] = [BandSource(root / qa_file, resolution=resolution)]
        self._mtl = mtl
        stored = [b for b in S2_BAND_NAMES if b in numbers]
        bands = tuple(b for b in S2_BAND_NAMES if b in stored or NIR_ALIASES.get(b) in stored)
        day = (mtl.get("IMAGE_ATTRIBUTES", "DAY_OR_NIGHT") or "DAY").upper()
        info = ProductInfo(
            name=product,
            product_type=ProductType.LANDSAT_L2,
            sensor=sensor_code(mtl.get("IMAGE_ATTRIBUTES", "SPACECRAFT_ID") or f"L{name.mission}"),
            acquired_at=_acquired_at(mtl),
            acquired_first_at=None,
            tile=name.path_row,
            relative_orbit=name.path,
            orbit_direction="ASC" if day == "NIGHT" else "DESC",
            processing_baseline=name.collection,
            footprint=_footprint(mtl),
            path=root,
            properties={
                "format": "LANDSAT_C2_L2",
                "collection_category": name.category,
                "processing_date": name.processed,
                "generation_time": _generation_time(mtl, name),
                "cloud_cover": _optional_float(
                    mtl.get("IMAGE_ATTRIBUTES", "CLOUD_COVER"), mtl_path
                ),
                "sensor_id": mtl.get("IMAGE_ATTRIBUTES", "SENSOR_ID"),
                "view_angles": "nadir assumed (the MTL has none)",
                "band_mapping": {band: f"SR_B{number}" for band, number in numbers.items()}
                | {alias: f"SR_B{numbers[target]}" for alias, target in NIR_ALIASES.items()},
            },
        )
        super().__init__(info, BandFiles(product, sources), bands, NIR_ALIASES)

    def valid_mask(
        self,
        resolution: float | None = None,
        config: MaskConfig = DEFAULT_MASK_CONFIG,
        rows: Rows | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Valid where QA_PIXEL passes ``config.landsat`` (flags and confidences)."""
        if self.mask_source is None:
            return self.unmasked_valid(resolution, config, rows)
        return self.files.read_mask(
            QA_PIXEL, self.grid(resolution), lambda qa: landsat_qa_valid(qa, config.landsat), rows
        )

    @property
    def mask_source(self) -> str | None:
        return QA_PIXEL if QA_PIXEL in self.files.sources else None

    @property
    def mask_searched(self) -> str:
        return f"{self._mtl.path.name} names no FILE_NAME_QUALITY_L1_PIXEL (the QA_PIXEL band)"

    def angles(self) -> Angles:
        """Sun angles from the MTL (zenith = 90 - SUN_ELEVATION); view angles: nadir."""
        return Angles(
            sun_zenith=90.0 - self._mtl.number("IMAGE_ATTRIBUTES", "SUN_ELEVATION"),
            sun_azimuth=self._mtl.number("IMAGE_ATTRIBUTES", "SUN_AZIMUTH") % 360.0,
            view_zenith=0.0,
            view_azimuth=0.0,
        )


def _float(text: str | None, default: float, path: Path) -> float:
    value = _optional_float(text, path)
    return default if value is None else value


def _optional_float(text: str | None, path: Path) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"the Landsat metadata {path}: {text!r} is not a number") from None


def _acquired_at(mtl: Mtl) -> datetime:
    day = mtl.text("IMAGE_ATTRIBUTES", "DATE_ACQUIRED")
    clock = mtl.text("IMAGE_ATTRIBUTES", "SCENE_CENTER_TIME").rstrip("Z")
    whole, _, fraction = clock.partition(".")
    text = f"{day}T{whole}" + (f".{fraction[:6]}" if fraction else "")
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise InputError(
            f"the Landsat metadata {mtl.path}: DATE_ACQUIRED / SCENE_CENTER_TIME "
            f"({day!r}, {clock!r}) is not a time"
        ) from None


def _generation_time(mtl: Mtl, name: LandsatName) -> str:
    generated = mtl.get("LEVEL2_PROCESSING_RECORD", "DATE_PRODUCT_GENERATED")
    if generated:
        try:
            return datetime.fromisoformat(generated).astimezone(UTC).isoformat()
        except ValueError:
            pass
    return datetime.strptime(name.processed, "%Y%m%d").replace(tzinfo=UTC).isoformat()


def _footprint(mtl: Mtl) -> Polygon:
    group = "PROJECTION_ATTRIBUTES"
    points = [
        (
            mtl.number(group, f"CORNER_{corner}_LON_PRODUCT"),
            mtl.number(group, f"CORNER_{corner}_LAT_PRODUCT"),
        )
        for corner in _CORNERS
    ]
    polygon = Polygon(points)
    if not polygon.is_valid or polygon.area == 0:
        raise InputError(f"the Landsat metadata {mtl.path}: the corners are not a polygon")
    return polygon
