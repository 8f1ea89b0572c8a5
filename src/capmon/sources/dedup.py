"""One observation per acquisition: choosing among reprocessed copies of the same acquisition.

The rule (the "processing baseline" half of the MDB's dedup rule, design-notes.md):

1. Products are duplicates when they have the same product type, sensor, tile, relative orbit,
   UTC acquisition date, polarisation and, for coherence, the same earlier date of the pair.
   Products of different types (Sen2Cor and MAJA) are never duplicates: they are different
   processors, and a site normally ingests one of them.
2. Among duplicates, an **official** processing baseline beats a reprocessing placeholder: a
   baseline whose major number is 99 (Sen2Cor's ``N9999``, i.e. ``99.99``, written by local or
   experimental processing) is used only when no official baseline exists.
3. Then the newest baseline wins (numeric comparison, ``05.10`` > ``04.00`` > ``02.14``); then
   the newest generation time (``info.properties["generation_time"]``; Landsat: its processing
   date); then the name, so that the choice never depends on the input order.

The other half of the rule, the same parcel seen on two tiles (or two overlapping orbits) of
one acquisition, belongs to the extraction: it needs the parcel, the tile and the acquisition
time, which :class:`~capmon.sources.model.ProductInfo` gives (``tile``, ``acquired_at``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime

from capmon.errors import InputError
from capmon.sources._xml import parse_time
from capmon.sources.model import ProductInfo

PLACEHOLDER_MAJOR = 99
"""Baselines ``99.xx`` (Sen2Cor ``N9999``) mark reprocessing placeholders, not official data."""

_UNKNOWN_TIME = datetime.min.replace(tzinfo=UTC)

AcquisitionKey = tuple[str, str | None, str | None, int | None, date, str | None, date | None]


def acquisition_key(info: ProductInfo) -> AcquisitionKey:
    """What makes two products copies of the same acquisition (rule 1)."""
    return (
        str(info.product_type),
        info.sensor,
        info.tile,
        info.relative_orbit,
        info.acquired_at.date(),
        info.polarisation,
        info.acquired_first_at.date() if info.acquired_first_at is not None else None,
    )


def baseline_version(baseline: str | None) -> tuple[int, ...]:
    """``"05.10"`` -> (5, 10), ``"3.1"`` -> (3, 1), ``"02"`` -> (2,); () when unknown."""
    if baseline is None:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", baseline))


def is_placeholder(baseline: str | None) -> bool:
    """Whether ``baseline`` is a reprocessing placeholder (``99.99``, ``N9999``)."""
    version = baseline_version(baseline)
    return bool(version) and version[0] == PLACEHOLDER_MAJOR


def _generation(info: ProductInfo) -> datetime:
    value = info.properties.get("generation_time")
    if isinstance(value, str):
        try:
            return parse_time(value, "generation_time")
        except InputError:
            pass
    return _UNKNOWN_TIME


def _preference(info: ProductInfo) -> tuple[bool, tuple[int, ...], datetime, str]:
    return (
        not is_placeholder(info.processing_baseline),
        baseline_version(info.processing_baseline),
        _generation(info),
        info.name,
    )


def select_observations(products: Iterable[ProductInfo]) -> list[ProductInfo]:
    """The products to use, one per acquisition (rules in the module docstring), in order of
    acquisition time then name."""
    best: dict[AcquisitionKey, ProductInfo] = {}
    for info in products:
        key = acquisition_key(info)
        current = best.get(key)
        if current is None or _preference(info) > _preference(current):
            best[key] = info
    return sorted(best.values(), key=lambda info: (info.acquired_at, info.name))


def superseded(products: Iterable[ProductInfo]) -> list[ProductInfo]:
    """The products :func:`select_observations` leaves out (each a copy of a kept one)."""
    listed = list(products)
    kept = {id(info) for info in select_observations(listed)}
    return [info for info in listed if id(info) not in kept]
