"""A workspace: a home folder for files (parcels, LUTs, products, MDB) plus a catalogue database.

The catalogue is a SQLite file in the home folder by default, or PostgreSQL+PostGIS when a
``postgresql+psycopg://`` URL is given (``--database-url`` / ``CAPMON_DATABASE_URL``).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from capmon.catalog.db import create_catalog_engine, migrate
from capmon.catalog.paths import set_engine_home
from capmon.errors import StorageError
from capmon.settings import Settings

CATALOG_FILE = "catalog.sqlite"


@dataclass(frozen=True)
class Workspace:
    """An open workspace. Create it with :func:`open_workspace`."""

    home: Path
    engine: Engine
    _sessions: sessionmaker[Session] = field(repr=False, compare=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A catalogue session that commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def path(self, relative: str | Path) -> Path:
        """The absolute path of a file stored in the workspace under ``relative``."""
        return self.home / relative

    def relative(self, path: Path) -> str:
        """``path`` relative to the home folder, as stored in the catalogue (POSIX separators)."""
        return path.resolve().relative_to(self.home.resolve()).as_posix()

    @property
    def database_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        """Close the catalogue's connections."""
        self.engine.dispose()


def open_workspace(home: str | Path | None = None, database_url: str | None = None) -> Workspace:
    """Open (creating when needed) the workspace at ``home`` and migrate its catalogue."""
    settings = Settings.from_environment()
    home_path = Path(home) if home is not None else settings.home
    home_path = home_path.expanduser().resolve()
    try:
        home_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the workspace folder {home_path}: {exc}") from exc
    url = database_url or settings.database_url or f"sqlite:///{home_path / CATALOG_FILE}"
    engine = create_catalog_engine(url)
    set_engine_home(engine, home_path)  # paths inside the home are stored relative to it
    migrate(engine)
    return Workspace(home_path, engine, sessionmaker(engine, expire_on_commit=False))


_VERSION_FOLDER = re.compile(r"^v(\d+)$")


def stored_versions(folder: Path, marker: str = "report.json") -> list[int]:
    """The complete versions ``v<N>/`` of a versioned store folder, in order: those holding
    ``marker``, which is written last (a folder without it is an interrupted write)."""
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _VERSION_FOLDER.match(child.name)
        if match and (child / marker).is_file():
            found.append(int(match.group(1)))
    return sorted(found)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path``; renamed onto ``path`` when the block succeeds.

    Readers never see a half-written file, and a failure leaves any previous file intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not created here: writers such as GDAL's refuse to overwrite an existing file.
    # The temporary name keeps the extension, which some writers use to pick a format.
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    # a name reserved before the write (processors.common.new_product_folder) is released
    # once the file is in place (the name is then taken) or the write failed (the name is free)
    reservation = path.with_name(f".{path.name}.reserved")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        reservation.unlink(missing_ok=True)


@dataclass(frozen=True)
class MissingFile:
    """A file or folder the catalogue names that is not there (``capmon workspace check``)."""

    kind: str
    name: str
    path: str


def check_workspace(workspace: Workspace) -> list[MissingFile]:
    """The catalogue's products, declarations and LUTs whose files are missing: after a move or
    a copy, the inputs kept outside the workspace (``capmon workspace relocate`` fixes them)."""
    from sqlalchemy import select

    from capmon.catalog.models import CropLut, DeclarationSet, Product

    missing: list[MissingFile] = []
    with workspace.session() as session:
        for product in session.scalars(select(Product).order_by(Product.id)):
            if not Path(product.path).exists():
                missing.append(MissingFile("product", product.name, product.path))
        for declarations in session.scalars(select(DeclarationSet).order_by(DeclarationSet.id)):
            parcels = workspace.path(declarations.parcels_path)
            if not parcels.exists():
                name = f"declarations {declarations.year} v{declarations.version}"
                missing.append(MissingFile("declarations", name, str(parcels)))
        for lut in session.scalars(select(CropLut).order_by(CropLut.id)):
            table = workspace.path(lut.lut_path)
            if not table.exists():
                missing.append(MissingFile("lut", f"LUT {lut.year} v{lut.version}", str(table)))
    return missing


def relocate_workspace(workspace: Workspace, old: Path, new: Path | None = None) -> int:
    """Rewrite the catalogue's paths under ``old`` to ``new`` (default: this workspace's home,
    for a workspace moved or copied from ``old``): products, download records, schedule
    parameters naming files. Paths that land in the home are stored relative to it. Returns
    how many values changed."""
    from sqlalchemy import select

    from capmon.catalog.models import DownloadHistory, Product, ScheduledTask

    source = str(old.expanduser()).rstrip("/") or "/"
    target = str((new or workspace.home).expanduser().absolute())

    def moved(path: str) -> str | None:
        if path == source or path.startswith(source + "/"):
            return target + path[len(source) :]
        return None

    changed = 0
    with workspace.session() as session:
        for row in session.scalars(select(Product)):
            updated = moved(row.path)
            if updated is not None:
                row.path = updated
                changed += 1
        for record in session.scalars(select(DownloadHistory)):
            updated = moved(record.path) if record.path is not None else None
            if updated is not None:
                record.path = updated
                changed += 1
        for task in session.scalars(select(ScheduledTask)):
            values = dict(task.parameters)
            for key, value in values.items():
                updated = moved(value) if isinstance(value, str) else None
                if updated is not None:
                    values[key] = updated
                    changed += 1
            if values != task.parameters:
                task.parameters = values
    return changed
