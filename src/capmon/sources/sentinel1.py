"""Sentinel-1 L2 products of Sen4CAP: one GeoTIFF per acquisition, polarisation and type.

Names (V1 ``SEN4CAP_L2A_S<site>_V<t1>_<t2>_<pol>_<orbit>_<AMP|COHE>[_<tile>].tif`` and V2
``S1A_L2_BCK_...`` / ``S1A_L2_COH_...``, see sen4cap-system.md 3.3 and 9) are parsed by
:func:`capmon.sources.naming.parse_s1_name`. One file is one product with one band,
its polarisation. Values are returned as stored, with 0 (Sen4CAP's no data) as NaN:

* AMP: linear amplitude ``sqrt(sigma0)``, ``info.properties["amplitude_convention"] =
  "sen4cap_amplitude"`` (Sen4CAP's markers take ``10*log10`` of it, half the sigma0 dB);
* COHE: linear coherence 0..1, ``info.properties["value_convention"] = "coherence_linear"``;
  ``acquired_at`` is the later acquisition of the pair, ``acquired_first_at`` the earlier.

V1 names carry no spacecraft: the sensor comes from the file's ``SPACECRAFT`` tag when present
(capmon's writers set it), else it is None. The orbit direction comes from the
``ORBIT_DIRECTION`` tag when present.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from capmon.errors import InputError
from capmon.sources._sar_file import SarBandReader
from capmon.sources.model import (
    ProductInfo,
    ProductType,
    sensor_code,
)
from capmon.sources.naming import S1ProductName, parse_s1_name
from capmon.sources.raster import (
    BandFiles,
    BandSource,
    Calibration,
    Rows,
    grid_footprint,
    open_raster,
)

NODATA = 0.0
AMPLITUDE_CONVENTION = "sen4cap_amplitude"
COHERENCE_CONVENTION = "coherence_linear"


def is_s1_product(path: Path) -> bool:
    """Whether ``path`` is a GeoTIFF with a Sen4CAP S1 L2 name (V1 or V2)."""
    if not path.is_file() or path.suffix.lower() not in (".tif", ".tiff"):
        return False
    try:
        parse_s1_name(path.name)
    except InputError:
        return False
    return True


class Sentinel1Reader(SarBandReader):
    """A Sen4CAP S1 amplitude or coherence GeoTIFF."""

    def __init__(self, path: Path) -> None:
        name = parse_s1_name(path.name)
        product = path.name[: -len(path.suffix)]
        band = name.polarisation
        with open_raster(path, product=product, what=f"band {band}") as dataset:
            tags = dict(dataset.tags())
            count = int(dataset.count)
        if count != 1:
            raise InputError(
                f"band {band} of product {product}: {path} has {count} bands, Sen4CAP S1 "
                "products have 1"
            )
        self.files = BandFiles(product, {band: [BandSource(path, Calibration(nodata=NODATA))]})
        native = self.files.header(band, self.files.sources[band][0]).grid
        self._native = native
        self.bands = (band,)
        acquired_at, acquired_first_at = _acquisition(name)
        self.info = ProductInfo(
            name=product,
            product_type=ProductType.S1_AMP if name.kind == "AMP" else ProductType.S1_COHE,
            sensor=_sensor(name, tags),
            acquired_at=acquired_at,
            acquired_first_at=acquired_first_at,
            tile=name.tile,
            relative_orbit=name.relative_orbit,
            orbit_direction=_direction(tags.get("ORBIT_DIRECTION")),
            processing_baseline=None,
            footprint=grid_footprint(native),
            path=path,
            polarisation=band,
            properties=_properties(name, tags),
        )

    def read(
        self, band: str, resolution: float | None = None, rows: Rows | None = None
    ) -> npt.NDArray[np.float32]:
        """The stored values of ``band`` (the product's polarisation), 0 -> NaN."""
        self.require_band(band)
        return self.files.read(band, self.grid(resolution), rows)


def _acquisition(name: S1ProductName) -> tuple[datetime, datetime | None]:
    if name.kind == "COHE" and name.time_pair is not None:
        first, second = sorted((name.time, name.time_pair))
        return second, first
    return name.time, None


def _sensor(name: S1ProductName, tags: dict[str, str]) -> str | None:
    if name.spacecraft:
        return sensor_code(name.spacecraft)
    spacecraft = tags.get("SPACECRAFT")
    return sensor_code(spacecraft) if spacecraft else None


def _direction(text: str | None) -> str | None:
    if not text:
        return None
    value = text.strip().upper()
    return {"ASC": "ASC", "ASCENDING": "ASC", "DESC": "DESC", "DESCENDING": "DESC"}.get(value)


def _properties(name: S1ProductName, tags: dict[str, str]) -> dict[str, object]:
    properties: dict[str, object] = {
        "format": "SEN4CAP_S1",
        "naming": name.naming,
        "value_convention": AMPLITUDE_CONVENTION if name.kind == "AMP" else COHERENCE_CONVENTION,
        "nodata": NODATA,
    }
    if name.kind == "AMP":
        properties["amplitude_convention"] = AMPLITUDE_CONVENTION
        if name.time_pair is not None:
            properties["pair_time"] = name.time_pair.isoformat()
    if name.site_id is not None:
        properties["sen4cap_site_id"] = name.site_id
    return properties
