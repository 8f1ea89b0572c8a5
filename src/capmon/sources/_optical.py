"""The part of the optical readers that does not depend on the format: grids and band reads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AbstractContextManager

import numpy as np
import numpy.typing as npt

from capmon.grid import PixelGrid
from capmon.sources.model import MaskConfig, ProductInfo, ProductReader
from capmon.sources.raster import BandFiles, Rows, checked_resolution


class OpticalReader(ProductReader):
    """A reader whose bands are reflectance files of :class:`BandFiles`.

    ``aliases`` maps a canonical band name to the stored band it reads (Landsat ``B08`` is
    the same file as ``B8A``).
    """

    def __init__(
        self,
        info: ProductInfo,
        files: BandFiles,
        bands: tuple[str, ...],
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.info = info
        self.files = files
        self.bands = bands
        self.aliases = dict(aliases or {})
        self._stored_bands = tuple(dict.fromkeys(self.aliases.get(b, b) for b in bands))

    def resolution(self, resolution: float | None) -> float:
        """``resolution`` checked, or the product's finest one."""
        if resolution is None:
            return self.files.finest_resolution(self._stored_bands)
        return checked_resolution(resolution)

    def grid(self, resolution: float | None = None) -> PixelGrid:
        return self.files.grid(self.resolution(resolution), self._stored_bands)

    def read(
        self, band: str, resolution: float | None = None, rows: Rows | None = None
    ) -> npt.NDArray[np.float32]:
        self.require_band(band)
        return self.files.read(self.aliases.get(band, band), self.grid(resolution), rows)

    def kept_open(self) -> AbstractContextManager[None]:
        return self.files.kept_open()

    def check(self) -> None:
        self.files.check()

    def unmasked_valid(
        self, resolution: float | None, config: MaskConfig, rows: Rows | None
    ) -> npt.NDArray[np.bool_]:
        """The validity of a product without a cloud mask, when ``config.allow_unmasked``
        (else :meth:`require_mask` raises): valid where the finest band has data."""
        self.require_mask(config)
        grid = self.grid(resolution)
        finest = min(self._stored_bands, key=lambda b: self.files.native(b)[1])
        return np.asarray(~np.isnan(self.files.read(finest, grid, rows)), dtype=np.bool_)


def mean_angle(values: list[float], *, circular: bool) -> float:
    """The mean of angles in degrees (NaN ignored); azimuths use the circular mean."""
    finite = np.array([v for v in values if math.isfinite(v)], np.float64)
    if finite.size == 0:
        return math.nan
    if not circular:
        return float(finite.mean())
    radians = np.deg2rad(finite)
    mean = math.degrees(math.atan2(float(np.sin(radians).mean()), float(np.cos(radians).mean())))
    return mean % 360.0
