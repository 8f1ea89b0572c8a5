"""Settings from the environment: where the workspace lives and which catalogue database it uses.

Two variables, read with :func:`os.environ` (a settings library costs more start-up time than
every light CLI command, see ``capmon bench startup``): ``CAPMON_HOME`` and
``CAPMON_DATABASE_URL``. An empty value counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SCHEDULER_ENV = "CAPMON_DASK_SCHEDULER"
"""The environment variable naming a Dask scheduler (tcp://HOST:PORT) for season runs and jobs."""
HOME_ENV = "CAPMON_HOME"
DATABASE_URL_ENV = "CAPMON_DATABASE_URL"


def default_home() -> Path:
    """The default workspace folder, ``~/.capmon``."""
    return Path.home() / ".capmon"


@dataclass(frozen=True)
class Settings:
    """capmon settings: the workspace folder (``CAPMON_HOME``, default ``~/.capmon``) and the
    SQLAlchemy URL of the catalogue (``CAPMON_DATABASE_URL``; default: a SQLite file in the
    workspace; PostgreSQL+PostGIS: ``postgresql+psycopg://user:password@host:port/dbname``)."""

    home: Path
    database_url: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives (``os.environ`` by default)."""
        values = os.environ if environ is None else environ
        home = values.get(HOME_ENV, "").strip()
        url = values.get(DATABASE_URL_ENV, "").strip()
        return cls(Path(home) if home else default_home(), url or None)
