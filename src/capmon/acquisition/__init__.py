"""Acquisition: find a site's products of a season in STAC APIs, download them (resumable,
checksummed, parallel, retried, within daily quotas), lay them out in the workspace, record the
download history and register them in the catalogue.

``acquire_season(workspace, site, season, ...)`` -> :class:`AcquisitionReport`; data sources
are configured by :mod:`.sources` (``sources.toml``, built-in Earth Search and Copernicus Data
Space); ``capmon acquire`` and the ``acquire`` processor (``capmon run acquire``, daily in a
season) call it. See docs/acquisition.md.
"""

from capmon.acquisition.history import list_history
from capmon.acquisition.http import SourceUnavailableError, redact
from capmon.acquisition.run import AcquisitionReport, acquire_season
from capmon.acquisition.sources import (
    BUILTIN_SOURCES,
    CollectionConfig,
    DataSource,
    load_sources,
    select_sources,
)

__all__ = [
    "BUILTIN_SOURCES",
    "AcquisitionReport",
    "CollectionConfig",
    "DataSource",
    "SourceUnavailableError",
    "acquire_season",
    "list_history",
    "load_sources",
    "redact",
    "select_sources",
]
