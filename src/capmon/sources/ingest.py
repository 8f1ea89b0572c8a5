"""Registering input products in the catalogue (``capmon products ingest``).

For each product found under the given paths: open it (metadata and file headers, no pixel
decoded), then

* **registered**: new for the site and its footprint meets the site's AOI;
* **known**: a product of that name is registered with the same files (idempotent re-ingest);
* **changed**: a product of that name is registered but its files differ (size or sampled
  content); reported, never silently replaced;
* **skipped**: the footprint does not meet the site's AOI (logged with the reason);
* **failed**: the product cannot be read (corrupt or missing file, bad metadata...); reported
  by name with the reason, and the other products go on.

Each product is written in its own savepoint, so one failure never undoes the others.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from capmon.catalog.models import Product, Site
from capmon.errors import CapmonError, InputError
from capmon.sources.detect import find_products, open_product
from capmon.sources.model import ProductReader, ProductType

logger = logging.getLogger(__name__)

_SMALL_FILE = 1 << 20
_SAMPLE = 1 << 16


class IngestStatus(enum.StrEnum):
    """What ingestion did with one product."""

    REGISTERED = "registered"
    KNOWN = "known"
    CHANGED = "changed"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class IngestOutcome:
    """The result for one product (or for a given path that could not be searched)."""

    path: Path
    status: IngestStatus
    name: str | None = None
    product_type: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class IngestReport:
    """The outcomes of one ingestion, in the order the products were found."""

    outcomes: tuple[IngestOutcome, ...]

    def count(self, status: IngestStatus) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is status)

    def with_status(self, status: IngestStatus) -> list[IngestOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status is status]

    @property
    def summary(self) -> dict[str, int]:
        return {status.value: self.count(status) for status in IngestStatus}


def ingest_products(
    session: Session, site: Site, paths: Iterable[str | Path], *, recursive: bool = True
) -> IngestReport:
    """Register the products at or under ``paths`` for ``site`` (see the module doc)."""
    outcomes: list[IngestOutcome] = []
    for given in paths:
        try:
            found = find_products([given], recursive=recursive)
        except CapmonError as exc:
            logger.warning("cannot search %s: %s", given, exc)
            outcomes.append(IngestOutcome(Path(given), IngestStatus.FAILED, reason=str(exc)))
            continue
        outcomes.extend(ingest_product(session, site, path) for path in found)
    return IngestReport(tuple(outcomes))


def ingest_product(session: Session, site: Site, path: Path) -> IngestOutcome:
    """Register one product for ``site``; never raises for a bad product (status FAILED)."""
    try:
        reader = open_product(path)
        reader.check()
        fingerprint = product_fingerprint(product_files(reader))
    except CapmonError as exc:
        logger.warning("product %s failed: %s", path, exc)
        return IngestOutcome(path, IngestStatus.FAILED, name=path.name, reason=str(exc))
    info = reader.info
    kind = str(info.product_type)
    existing = session.scalar(
        select(Product).where(Product.site_id == site.id, Product.name == info.name)
    )
    if existing is not None:
        if existing.properties.get("fingerprint") == fingerprint:
            return IngestOutcome(path, IngestStatus.KNOWN, info.name, kind, "already registered")
        reason = (
            f"registered from {existing.path} with different files; not replaced (remove the "
            "registered product first to register this one)"
        )
        logger.warning("product %s changed: %s", info.name, reason)
        return IngestOutcome(path, IngestStatus.CHANGED, info.name, kind, reason)
    if not info.footprint.intersects(site.aoi):
        reason = f"its footprint does not meet the AOI of site {site.name!r}"
        logger.info("product %s skipped: %s", info.name, reason)
        return IngestOutcome(path, IngestStatus.SKIPPED, info.name, kind, reason)
    product = Product(
        site_id=site.id,
        name=info.name,
        product_type=kind,
        sensor=info.sensor,
        acquired_at=info.acquired_at,
        acquired_first_at=info.acquired_first_at,
        tile=info.tile,
        relative_orbit=info.relative_orbit,
        orbit_direction=info.orbit_direction,
        processing_baseline=info.processing_baseline,
        footprint=info.footprint,
        path=str(info.path.resolve()),
        properties={
            **_json_ready(dict(info.properties)),
            "polarisation": info.polarisation,
            "bands": list(reader.bands),
            "fingerprint": fingerprint,
        },
    )
    try:
        with session.begin_nested():
            session.add(product)
    except SQLAlchemyError as exc:
        reason = f"the catalogue refused it: {exc.__class__.__name__}: {exc}"
        logger.warning("product %s failed: %s", info.name, reason)
        return IngestOutcome(path, IngestStatus.FAILED, info.name, kind, reason)
    logger.info("product %s registered for site %s", info.name, site.name)
    return IngestOutcome(path, IngestStatus.REGISTERED, info.name, kind)


def list_products(
    session: Session, site: Site, product_type: str | ProductType | None = None
) -> Sequence[Product]:
    """The products of ``site`` (optionally of one type), by acquisition time then name."""
    query = select(Product).where(Product.site_id == site.id)
    if product_type is not None:
        query = query.where(Product.product_type == str(product_type))
    return session.scalars(query.order_by(Product.acquired_at, Product.name)).all()


def product_files(reader: ProductReader) -> list[Path]:
    """Every file of the product: the folder's files, or the file plus the band files it
    references (STAC items)."""
    root = reader.info.path
    if root.is_dir():
        return sorted(p for p in root.rglob("*") if p.is_file())
    files = {root}
    sources = getattr(reader, "files", None)
    for group in getattr(sources, "sources", {}).values():
        files.update(source.path for source in group)
    return sorted(files)


def product_fingerprint(files: Sequence[Path]) -> str:
    """A digest of the files' names, sizes and content (whole small files; the first and
    last 64 KiB of big ones), so that re-ingesting an unchanged product is recognised
    cheaply and a changed one is not."""
    digest = hashlib.sha256()
    resolved = [path.resolve() for path in files]
    common = Path(*_common_parts(resolved)) if resolved else Path()
    for path in resolved:
        try:
            size = path.stat().st_size
            digest.update(f"{path.relative_to(common).as_posix()}\0{size}\0".encode())
            with path.open("rb") as stream:
                if size <= _SMALL_FILE:
                    digest.update(stream.read())
                else:
                    digest.update(stream.read(_SAMPLE))
                    stream.seek(size - _SAMPLE)
                    digest.update(stream.read(_SAMPLE))
        except OSError as exc:
            raise InputError(f"cannot read {path} of the product: {exc}") from exc
    return digest.hexdigest()


def _common_parts(files: Sequence[Path]) -> tuple[str, ...]:
    parts = [p.parent.parts for p in files]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if all(part == level[0] for part in level):
            common.append(level[0])
        else:
            break
    return tuple(common)


def _json_ready(value: Any) -> Any:
    """``value`` with Paths and other non-JSON scalars as strings."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
