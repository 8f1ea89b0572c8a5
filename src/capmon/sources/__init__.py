"""Input product readers: Sen2Cor and MAJA Sentinel-2 L2A, Landsat Collection 2 Level-2,
Sen4CAP Sentinel-1 amplitude / coherence, Sentinel-1 analysis-ready products (HyP3 RTC and
InSAR, CEOS-ARD NRB / CARD-BS), STAC items; product discovery, dedup and ingestion.

``open_product(path)`` gives a :class:`ProductReader`; see :mod:`capmon.sources.model` for the
value conventions and :mod:`capmon.sources.dedup` for the duplicate-acquisition rule.
"""

from capmon.sources.dedup import select_observations, superseded
from capmon.sources.detect import find_products, open_product, product_format
from capmon.sources.ingest import (
    IngestOutcome,
    IngestReport,
    IngestStatus,
    ingest_product,
    ingest_products,
    list_products,
)
from capmon.sources.model import (
    DEFAULT_MASK_CONFIG,
    S2_BAND_NAMES,
    Angles,
    MaskConfig,
    ProductInfo,
    ProductReader,
    ProductType,
    sensor_code,
)

__all__ = [
    "DEFAULT_MASK_CONFIG",
    "S2_BAND_NAMES",
    "Angles",
    "IngestOutcome",
    "IngestReport",
    "IngestStatus",
    "MaskConfig",
    "ProductInfo",
    "ProductReader",
    "ProductType",
    "find_products",
    "ingest_product",
    "ingest_products",
    "list_products",
    "open_product",
    "product_format",
    "select_observations",
    "sensor_code",
    "superseded",
]
