"""Versioned storage of declaration sets and crop LUTs in a workspace.

Each import writes a new version folder (``parcels/<site>/<year>/v<N>/`` or
``luts/<site>/<year>/v<N>/``) through a temporary folder renamed into place, then inserts the
catalogue row in one transaction. If anything fails the new folder is removed, so the previous
version (its files and its row) is never touched. A version folder without a catalogue row can
only be the leftover of an interrupted import; it is replaced by the next import.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from capmon.catalog.models import CropLut, DeclarationSet, Site
from capmon.errors import ConflictError, InputError, NotFoundError, StorageError
from capmon.workspace import Workspace, atomic_path

MIN_YEAR = 2000
PARCELS_FILE = "parcels.parquet"
LUT_FILE = "lut.parquet"
LUT_CSV_FILE = "lut.csv"
REPORT_FILE = "report.json"

Row = TypeVar("Row", DeclarationSet, CropLut)


def check_year(year: int) -> int:
    """Declarations and LUTs are per year: from 2000 to next year."""
    latest = datetime.now(UTC).year + 1
    if not MIN_YEAR <= year <= latest:
        raise InputError(f"year {year} is out of range ({MIN_YEAR} to {latest})")
    return year


def latest_row(session: Session, model: type[Row], site: Site, year: int) -> Row | None:
    """The newest version of a declaration set or crop LUT of ``site`` for ``year``."""
    return session.scalars(
        select(model)
        .where(model.site_id == site.id, model.year == year)
        .order_by(model.version.desc())
        .limit(1)
    ).first()


def version_row(
    session: Session, model: type[Row], site: Site, year: int, version: int | None
) -> Row:
    """A given version (the newest when ``version`` is None); NotFoundError naming what exists."""
    if version is None:
        row = latest_row(session, model, site, year)
    else:
        row = session.scalars(
            select(model).where(
                model.site_id == site.id, model.year == year, model.version == version
            )
        ).first()
    if row is None:
        what = "declarations" if model is DeclarationSet else "crop LUT"
        versions = session.scalars(
            select(model.version)
            .where(model.site_id == site.id, model.year == year)
            .order_by(model.version)
        ).all()
        known = ", ".join(str(v) for v in versions) or "none"
        wanted = f" version {version}" if version is not None else ""
        raise NotFoundError(
            f"site {site.name!r} has no {what}{wanted} for {year} (versions: {known})"
        )
    return row


def next_version(session: Session, model: type[Row], site: Site, year: int) -> int:
    current = session.scalar(
        select(func.max(model.version)).where(model.site_id == site.id, model.year == year)
    )
    return int(current or 0) + 1


def write_version_folder(
    workspace: Workspace,
    model: type[Row],
    site_id: int,
    year: int,
    version: int,
    folder: Path,
    write: Callable[[Path], None],
) -> None:
    """Write a version folder atomically; ``write`` fills the temporary folder it is given.

    An existing folder of that version is removed only when no catalogue row uses it (the
    leftover of an interrupted import); otherwise another import got there first.
    """
    if folder.exists():
        with workspace.session() as session:
            used = session.scalar(
                select(func.count())
                .select_from(model)
                .where(model.site_id == site_id, model.year == year, model.version == version)
            )
        if used:
            raise ConflictError(
                f"{folder} belongs to version {version}, created concurrently by another "
                "import; retry"
            )
        shutil.rmtree(folder)
    try:
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            write(tmp)
    except OSError as exc:
        raise StorageError(f"cannot write {folder}: {exc}") from exc


@contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """Remove ``folder`` if the block fails (the catalogue row could not be inserted)."""
    try:
        yield
    except IntegrityError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise ConflictError(
            f"another import created the same version concurrently ({folder.name}); retry"
        ) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


def read_table(workspace: Workspace, relative: str) -> pd.DataFrame:
    """Read a stored Parquet table, or raise StorageError naming the missing file."""
    path = workspace.path(relative)
    if not path.is_file():
        raise StorageError(f"{path}: the stored file is missing from the workspace")
    return pd.read_parquet(path)
