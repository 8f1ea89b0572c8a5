"""Settings from the environment (CAPMON_HOME, CAPMON_DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path

from capmon.settings import Settings, default_home


def test_settings_from_the_environment(tmp_path: Path) -> None:
    given = Settings.from_environment(
        {"CAPMON_HOME": str(tmp_path), "CAPMON_DATABASE_URL": "postgresql+psycopg://u@h/db"}
    )
    assert given == Settings(tmp_path, "postgresql+psycopg://u@h/db")
    assert Settings.from_environment({}) == Settings(default_home(), None)
    assert Settings.from_environment({"CAPMON_HOME": " ", "CAPMON_DATABASE_URL": ""}) == Settings(
        default_home(), None
    )
