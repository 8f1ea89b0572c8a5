"""Settings from the environment: where the workspace lives and which catalogue database it uses."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """The default workspace folder, ``~/.capmon``."""
    return Path.home() / ".capmon"


class Settings(BaseSettings):
    """capmon settings; each field can be set with a ``CAPMON_`` environment variable."""

    model_config = SettingsConfigDict(env_prefix="CAPMON_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Workspace folder.")
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the catalogue. Default: a SQLite file in the workspace. "
            "PostgreSQL+PostGIS: postgresql+psycopg://user:password@host:port/dbname"
        ),
    )
