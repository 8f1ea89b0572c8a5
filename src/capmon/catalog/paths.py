"""File paths stored relative to the workspace, so that a workspace can be moved or copied.

A :class:`WorkspacePath` column stores a path inside the workspace's home folder relative to
it (POSIX separators) and any other path (input products on another disk) as given; it reads
back as an absolute path. The home is the one :func:`capmon.workspace.open_workspace` gives
the engine (:func:`set_engine_home`). Absolute paths stored before (older catalogues) still
read as they are; ``capmon workspace relocate`` rewrites those of a moved workspace.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Engine, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_HOME_ATTRIBUTE = "capmon_home"


def set_engine_home(engine: Engine, home: Path) -> None:
    """Store and read the engine's :class:`WorkspacePath` columns relative to ``home``."""
    setattr(engine.dialect, _HOME_ATTRIBUTE, str(home))


def _home(dialect: Dialect) -> str | None:
    home = getattr(dialect, _HOME_ATTRIBUTE, None)
    return home if isinstance(home, str) else None


def stored_path(path: str, home: str) -> str:
    """``path`` as stored: relative to ``home`` when it is inside it, else unchanged."""
    if not os.path.isabs(path):
        return path
    relative = os.path.relpath(path, home)
    if relative == os.curdir or relative.split(os.sep)[0] == os.pardir:
        return path
    return PurePosixPath(*Path(relative).parts).as_posix()


def resolved_path(stored: str, home: str) -> str:
    """A stored path as an absolute path (a relative one is under ``home``)."""
    if os.path.isabs(stored):
        return stored
    return str(Path(home) / stored)


class WorkspacePath(TypeDecorator[str]):
    """Text holding a file path, relative to the workspace home when inside it."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        home = _home(dialect)
        if value is None or home is None:
            return value
        return stored_path(str(value), home)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        home = _home(dialect)
        if value is None or home is None:
            return value
        return resolved_path(str(value), home)
