"""Opening the catalogue database and bringing its schema up to date with Alembic.

Alembic, and the SQL dialects it loads, is imported only when the schema is not current:
opening an up-to-date catalogue compares its ``alembic_version`` row with the head revision
named in the migration files (every command opens the catalogue: start-up, issue 15).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from capmon.errors import CatalogError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION_LINE = re.compile(
    r"^(down_revision|revision)\b[^=\n]*=\s*(?:\"([^\"]*)\"|'([^']*)'|None)\s*$", re.MULTILINE
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_catalog_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout."""
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise CatalogError(f"cannot use catalogue URL {_redact(url)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name != "postgresql":
        raise CatalogError(
            f"unsupported catalogue database {engine.dialect.name!r}: use SQLite or PostgreSQL"
        )
    return engine


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    """The head revision of the migration files, read as text (without importing Alembic);
    None unless they name exactly one head (Alembic decides then)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = {
            match[1]: match[2] or match[3]
            for match in _REVISION_LINE.finditer(path.read_text(encoding="utf-8"))
        }
        if not found.get("revision"):
            return None
        revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(connection: Connection) -> str | None:
    """The revision in the catalogue's ``alembic_version`` table, if it holds one."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    found = list(versions)
    return str(found[0]) if len(found) == 1 else None


def migrate(engine: Engine) -> None:
    """Upgrade the catalogue schema to the newest revision (a no-op when it is current)."""
    try:
        with engine.connect() as connection:
            stored = _stored_revision(connection)
    except SQLAlchemyError as exc:
        raise CatalogError(
            f"cannot open or migrate the catalogue at {_redact(str(engine.url))}: {exc}"
        ) from exc
    if stored is not None and stored == head_revision():
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config(engine)
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
        command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise CatalogError(
            f"cannot open or migrate the catalogue at {_redact(str(engine.url))}: {exc}"
        ) from exc


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could show
        return "<unparsable URL>"
