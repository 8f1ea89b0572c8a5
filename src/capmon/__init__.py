"""capmon: monitoring of agricultural parcels for the EU Common Agricultural Policy.

The public Python API is small: open a workspace, then use the modules named in
docs/ARCHITECTURE.md. The names below are imported on first use (``import capmon`` stays
cheap: the command line starts without pandas, DuckDB or SQLAlchemy).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from capmon.errors import CapmonError

if TYPE_CHECKING:
    from capmon.mdb.query import MarkersDatabase, open_mdb
    from capmon.processors.files import run_processor
    from capmon.workspace import Workspace, open_workspace

__version__ = "0.1.0"

__all__ = [
    "CapmonError",
    "MarkersDatabase",
    "Workspace",
    "__version__",
    "open_mdb",
    "open_workspace",
    "run_processor",
]

_LAZY = {
    "MarkersDatabase": "capmon.mdb.query",
    "open_mdb": "capmon.mdb.query",
    "Workspace": "capmon.workspace",
    "open_workspace": "capmon.workspace",
    "run_processor": "capmon.processors.files",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'capmon' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
