"""What the readers of Sentinel-1 analysis-ready GeoTIFFs share (HyP3, CARD-BS / CEOS-ARD NRB,
single-polarisation STAC items): one file, one band (a polarisation), one product.

A Sentinel-1 product in capmon holds one polarisation (as Sen4CAP's S1 L2 products), so a
dual-polarisation ARD product is read as one product per polarisation file. The reader returns
the values in the convention ``info.properties["amplitude_convention"]`` names
(:class:`capmon.signals.sar.AmplitudeConvention`): amplitude-scale files (``sqrt`` of the power)
are squared on read, so that the convention is always a power or a dB one and says whether the
values are σ⁰ or γ⁰ (``info.properties["backscatter"]``).

Orbit helpers: the relative orbit of an absolute orbit number (S1A and S1B; None for units whose
phasing capmon does not know) and the pass direction from the local solar time of the
acquisition (Sentinel-1 is sun-synchronous with its ascending node at 18:00 local time:
ascending passes are seen in the evening, descending ones in the morning).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from shapely.geometry.base import BaseGeometry

from capmon.errors import InputError
from capmon.grid import PixelGrid
from capmon.signals.sar import AmplitudeConvention
from capmon.sources.model import (
    DEFAULT_MASK_CONFIG,
    Angles,
    MaskConfig,
    ProductInfo,
    ProductReader,
)
from capmon.sources.raster import (
    BandFiles,
    BandSource,
    Calibration,
    Rows,
    grid_footprint,
    native_or_scaled,
    open_raster,
)

POLARISATIONS = ("VV", "VH", "HH", "HV")
_ORBITS_PER_CYCLE = 175
_ORBIT_OFFSET = {"S1A": 73, "S1B": 27}
"""``relative = (absolute - offset) mod 175 + 1`` (ESA's Sentinel-1 orbit numbering)."""


def relative_orbit(sensor: str | None, absolute: int | None) -> int | None:
    """The relative orbit of absolute orbit ``absolute`` of ``sensor`` (S1A, S1B), else None."""
    if sensor is None or absolute is None or sensor not in _ORBIT_OFFSET:
        return None
    return (absolute - _ORBIT_OFFSET[sensor]) % _ORBITS_PER_CYCLE + 1


def direction_from_local_time(acquired_at: datetime, footprint: BaseGeometry) -> str:
    """``ASC`` when the local solar time of the acquisition is in the afternoon or evening,
    else ``DESC`` (Sentinel-1 passes at about 18:00 ascending and 06:00 descending)."""
    longitude = footprint.centroid.x
    hours = acquired_at.hour + acquired_at.minute / 60 + longitude / 15.0
    return "ASC" if 12.0 <= hours % 24.0 < 24.0 else "DESC"


def stored_convention(radiometry: str, scale: str) -> tuple[AmplitudeConvention, bool]:
    """The convention of the values read from a file of ``radiometry`` (``gamma0``/``sigma0``)
    stored on ``scale`` (``power``, ``db`` or ``amplitude``), and whether read() squares them."""
    if radiometry not in ("gamma0", "sigma0"):
        raise InputError(f"unknown radiometry {radiometry!r} (gamma0 or sigma0)")
    if scale == "db":
        return AmplitudeConvention(f"{radiometry}_db"), False
    if scale in ("power", "amplitude"):
        return AmplitudeConvention(f"{radiometry}_linear"), scale == "amplitude"
    raise InputError(f"unknown backscatter scale {scale!r} (power, db or amplitude)")


def backscatter_properties(radiometry: str, scale: str) -> dict[str, Any]:
    """The catalogue properties stating a backscatter product's convention."""
    convention, _ = stored_convention(radiometry, scale)
    return {
        "backscatter": radiometry,
        "stored_scale": scale,
        "amplitude_convention": convention.value,
        "value_convention": convention.value,
    }


class SarBandReader(ProductReader):
    """What every single-band Sentinel-1 reader shares (Sen4CAP AMP/COHE files and the
    analysis-ready formats): one band file, its native grid, validity from the decoded band."""

    files: BandFiles
    _native: PixelGrid

    def grid(self, resolution: float | None = None) -> PixelGrid:
        """The file's grid (Sen4CAP: 20 m), or that grid scaled by an integer factor."""
        return native_or_scaled(self._native, resolution)

    def valid_mask(
        self,
        resolution: float | None = None,
        config: MaskConfig = DEFAULT_MASK_CONFIG,
        rows: Rows | None = None,
    ) -> npt.NDArray[np.bool_]:
        """Valid where the product has data (S1 products have no mask layer). This decodes the
        band: a caller that already read it can use ``~np.isnan(values)`` instead."""
        return np.asarray(~np.isnan(self.read(self.bands[0], resolution, rows)), dtype=np.bool_)

    def kept_open(self) -> AbstractContextManager[None]:
        return self.files.kept_open()

    def angles(self) -> Angles:
        raise InputError(
            f"product {self.info.name} is a SAR product: sun and view angles exist only for "
            "optical products"
        )

    def check(self) -> None:
        self.files.check()


class SarFileReader(SarBandReader):
    """One single-band Sentinel-1 GeoTIFF; subclasses build :attr:`info` from its name and
    metadata and call :meth:`_describe`."""

    def __init__(
        self, path: Path, product: str, polarisation: str, *, linear: bool, squared: bool = False
    ) -> None:
        if polarisation not in POLARISATIONS:
            raise InputError(f"product {product}: unknown polarisation {polarisation!r}")
        with open_raster(path, product=product, what=f"band {polarisation}") as dataset:
            self.tags: dict[str, str] = dict(dataset.tags())
            count = int(dataset.count)
            file_nodata = dataset.nodata
        if count != 1:
            raise InputError(
                f"band {polarisation} of product {product}: {path} has {count} bands, a "
                "Sentinel-1 analysis-ready polarisation file has 1"
            )
        # Linear power, amplitude and coherence: 0 is no data unless the file says otherwise;
        # in dB 0 is a valid value, only the file's own no-data value counts.
        nodata = file_nodata if file_nodata is not None or not linear else 0.0
        source = BandSource(path, Calibration(nodata=nodata))
        self.files = BandFiles(product, {polarisation: [source]})
        self._native = self.files.header(polarisation, source).grid
        self._squared = squared
        self.bands = (polarisation,)
        self.path = path
        self.product = product

    @property
    def native_footprint(self) -> BaseGeometry:
        """The outline of the file's grid in EPSG:4326."""
        return grid_footprint(self._native)

    def _describe(self, info: ProductInfo) -> None:
        self.info = info

    def read(
        self, band: str, resolution: float | None = None, rows: Rows | None = None
    ) -> npt.NDArray[np.float32]:
        """The values of ``band`` in the product's ``amplitude_convention`` (NaN = no data)."""
        self.require_band(band)
        values = self.files.read(band, self.grid(resolution), rows)
        if self._squared:
            np.square(values, out=values)
        return values
