"""capmon: monitoring of agricultural parcels for the EU Common Agricultural Policy.

The public Python API is small: open a workspace, then use the modules named in
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from capmon.errors import CapmonError
from capmon.mdb.query import MarkersDatabase, open_mdb
from capmon.workspace import Workspace, open_workspace

__version__ = "0.1.0"

__all__ = [
    "CapmonError",
    "MarkersDatabase",
    "Workspace",
    "__version__",
    "open_mdb",
    "open_workspace",
]
