"""What every input product reader shares: the product description, the reader interface, masks.

A reader opens one product (a Sen2Cor ``.SAFE``, a MAJA folder, a Landsat Collection 2 Level-2
folder, a Sen4CAP Sentinel-1 GeoTIFF or a STAC item) and gives its bands under canonical
Sentinel-2 names, on grids described as :class:`~capmon.grid.PixelGrid`:

* optical values are surface reflectances (0..1, float32) with the product's own quantification,
  offsets and scales applied, and NaN where the product has no data;
* Sentinel-1 values are the stored ones (Sen4CAP amplitude ``sqrt(sigma0)`` or linear
  coherence, see ``info.properties``), with NaN where the product has no data (stored 0);
  for analysis-ready backscatter (HyP3, CARD-BS, STAC) they are in the convention
  ``info.properties["amplitude_convention"]`` names, γ⁰ or σ⁰ (``properties["backscatter"]``).

An optical reader names its cloud mask (:attr:`ProductReader.mask_source`); one without a
mask refuses :meth:`ProductReader.valid_mask` unless ``MaskConfig(allow_unmasked=True)``.

Each :meth:`ProductReader.read` decodes exactly one band file (JPEG 2000 decoding is slow, so
nothing is decoded twice behind the caller's back) and keeps nothing big: the caller decides
what to cache.
"""

from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from shapely.geometry.base import BaseGeometry

from capmon.errors import InputError
from capmon.grid import PixelGrid
from capmon.signals.bands import S2_BANDS
from capmon.signals.masks import LandsatQaConfig, MajaMaskConfig, SclMaskConfig
from capmon.sources.raster import Rows

S2_BAND_NAMES = S2_BANDS
"""Canonical optical band names, in Sentinel-2 order (B8A after B08)."""


class ProductType(enum.StrEnum):
    """Input product types as stored in the catalogue (``Product.product_type``)."""

    L2A = "l2a"
    """Sentinel-2 L2A from Sen2Cor (ESA ``.SAFE``)."""
    L2A_MAJA = "l2a_maja"
    """Sentinel-2 L2A from MAJA (THEIA / MUSCATE folder)."""
    LANDSAT_L2 = "landsat_l2"
    """Landsat Collection 2 Level-2 surface reflectance."""
    S1_AMP = "s1_amp"
    """Sentinel-1 backscatter of one polarisation: Sen4CAP amplitude (``sqrt(sigma0)``) or an
    analysis-ready product (``properties["amplitude_convention"]`` says which values)."""
    S1_COHE = "s1_cohe"
    """Sentinel-1 6/12-day coherence of one polarisation (Sen4CAP or HyP3 InSAR)."""

    @property
    def is_optical(self) -> bool:
        return self in (ProductType.L2A, ProductType.L2A_MAJA, ProductType.LANDSAT_L2)


class Angles(NamedTuple):
    """Mean sun and view angles of an acquisition, in degrees."""

    sun_zenith: float
    sun_azimuth: float
    view_zenith: float
    view_azimuth: float


@dataclass(frozen=True)
class ProductInfo:
    """The catalogue description of one input product.

    ``acquired_at`` is the acquisition time (tz-aware UTC; for coherence the later acquisition
    of the pair, the date Sen4CAP's markers use) and ``acquired_first_at`` the earlier one of a
    coherence pair (None otherwise). ``tile`` is the Sentinel-2 MGRS tile (``31UFS``) or the
    Landsat WRS-2 path-row (``198025``); ``relative_orbit`` is the S1/S2 relative orbit or the
    Landsat WRS-2 path. ``footprint`` is in EPSG:4326. ``processing_baseline`` is the
    producer's version (Sen2Cor ``05.10``, MAJA ``3.1``, Landsat collection ``02``).
    """

    name: str
    product_type: ProductType
    sensor: str | None
    acquired_at: datetime
    acquired_first_at: datetime | None
    tile: str | None
    relative_orbit: int | None
    orbit_direction: str | None
    processing_baseline: str | None
    footprint: BaseGeometry
    path: Path
    polarisation: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label in ("acquired_at", "acquired_first_at"):
            value = getattr(self, label)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise InputError(f"{self.name}: {label} must be timezone-aware (UTC)")
        if self.orbit_direction not in (None, "ASC", "DESC"):
            raise InputError(
                f"{self.name}: orbit_direction must be ASC, DESC or None, "
                f"not {self.orbit_direction!r}"
            )


@dataclass(frozen=True)
class MaskConfig:
    """Which pixels of an optical product count as valid (clear) observations.

    One decoding rule per producer, from :mod:`capmon.signals.masks`: ``scl`` (Sen2Cor Scene
    Classification classes), ``maja`` (MAJA CLM / MG2 / SAT bits, EDG always rejects) and
    ``landsat`` (Landsat Collection 2 QA_PIXEL flags and confidences). The defaults are those
    of :mod:`capmon.signals.masks`.

    An optical product without a cloud mask is an error (:meth:`ProductReader.require_mask`)
    unless ``allow_unmasked``: it is then read with no data as the only invalid pixels, and
    :attr:`ProductReader.mask_source` is None so that the caller can record it.
    """

    scl: SclMaskConfig = field(default_factory=SclMaskConfig)
    maja: MajaMaskConfig = field(default_factory=MajaMaskConfig)
    landsat: LandsatQaConfig = field(default_factory=LandsatQaConfig)
    allow_unmasked: bool = False


DEFAULT_MASK_CONFIG = MaskConfig()


class ProductReader(ABC):
    """One open input product: its description, band names, grids, values, mask and angles.

    Resolutions are pixel sizes in metres; ``None`` means the product's finest one. A band is
    read from the product's file at the requested resolution when the product has one (Sen2Cor
    ships most bands at 10, 20 and 60 m); otherwise from its native file and resampled by an
    integer factor: pixel replication to a finer grid (a 20 m band at 10 m: each pixel becomes
    2x2 equal pixels) and block mean to a coarser grid (a 10 m band at 20 m: the mean of each
    2x2 block, NaN if any pixel of the block is NaN). Masks follow the same rule, a coarse
    pixel being valid only when all its fine pixels are.
    """

    info: ProductInfo
    bands: tuple[str, ...]

    @abstractmethod
    def grid(self, resolution: float | None = None) -> PixelGrid:
        """The product's grid at ``resolution`` metres."""

    @abstractmethod
    def read(
        self, band: str, resolution: float | None = None, rows: Rows | None = None
    ) -> npt.NDArray[np.float32]:
        """The values of ``band`` on :meth:`grid` (float32, NaN = no data); one file decoded.
        ``rows=(start, stop)`` reads only those rows of the grid (full width)."""

    @abstractmethod
    def valid_mask(
        self,
        resolution: float | None = None,
        config: MaskConfig = DEFAULT_MASK_CONFIG,
        rows: Rows | None = None,
    ) -> npt.NDArray[np.bool_]:
        """True where the product holds a clear observation, on :meth:`grid` (or its ``rows``)."""

    def kept_open(self) -> AbstractContextManager[None]:
        """A block in which the product's files stay open between reads (strip-by-strip
        extraction decodes each compressed block once)."""
        return nullcontext()

    @abstractmethod
    def angles(self) -> Angles:
        """Mean sun and view angles from the product metadata (optical products only)."""

    @abstractmethod
    def check(self) -> None:
        """Open the header of every file the product needs (no decoding), or raise."""

    def has_band(self, band: str) -> bool:
        """Whether the product has ``band`` (nothing is opened)."""
        return band in self.bands

    def require_band(self, band: str) -> str:
        """``band`` if the product has it, else an InputError naming the band and product."""
        if band not in self.bands:
            raise InputError(
                f"product {self.info.name} has no band {band!r} (bands: {', '.join(self.bands)})"
            )
        return band

    @property
    def mask_source(self) -> str | None:
        """The layer(s) :meth:`valid_mask` decodes (``SCL``, ``QA_PIXEL``, ``EDG+CLM+MG2+SAT``),
        or None when the product has no cloud mask (always for Sentinel-1 products, which
        need none: their valid pixels are those with data)."""
        return None

    @property
    def mask_searched(self) -> str:
        """Where the reader looked for the cloud mask (for the error of :meth:`require_mask`)."""
        return "no cloud mask layer is defined for this format"

    def require_mask(self, config: MaskConfig = DEFAULT_MASK_CONFIG) -> str | None:
        """:attr:`mask_source`, or an InputError naming the product and what was searched when
        an optical product has no cloud mask and ``config.allow_unmasked`` is False. None means
        the product is read unmasked (only its no-data pixels are invalid)."""
        source = self.mask_source
        if source is None and self.info.product_type.is_optical and not config.allow_unmasked:
            raise InputError(
                f"product {self.info.name} has no cloud mask: {self.mask_searched}; without a "
                "mask clouds would enter the statistics. Give the mask, or extract the product "
                "unmasked on purpose (MaskConfig(allow_unmasked=True)), which marks it so"
            )
        return source

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.name!r})"


_SENTINEL = re.compile(r"^sentinel[-_ ]?(?P<n>\d)(?P<unit>[a-z])$", re.IGNORECASE)
_LANDSAT = re.compile(r"^landsat[-_ ]?0?(?P<n>\d{1,2})$", re.IGNORECASE)
_SHORT = re.compile(r"^(?:S(?P<s>\d)(?P<unit>[A-Z])|L(?:C|O|E|T|M)?0?(?P<l>\d{1,2}))$")


def sensor_code(platform: str) -> str:
    """capmon's sensor code of a platform name: ``sentinel-2a``/``Sentinel-2A``/``SENTINEL2A``
    -> ``S2A``, ``landsat-8``/``LANDSAT_8`` -> ``L8``, ``S1C`` -> ``S1C``, ``LC09`` -> ``L9``.

    Data-driven: a new unit (``S2D``, ``L10``) needs no code change.
    """
    text = platform.strip()
    if (match := _SENTINEL.match(text)) is not None:
        return f"S{match['n']}{match['unit'].upper()}"
    if (match := _LANDSAT.match(text)) is not None:
        return f"L{int(match['n'])}"
    if (match := _SHORT.match(text.upper())) is not None:
        if match["s"] is not None:
            return f"S{match['s']}{match['unit']}"
        return f"L{int(match['l'])}"
    raise InputError(f"unknown platform {platform!r} (expected e.g. sentinel-2a or landsat-9)")
