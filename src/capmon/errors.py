"""capmon's exceptions: one root, and each specific error also subclasses the builtin it resembles.

Callers can catch ``CapmonError`` for anything capmon raises on purpose, or the builtin
(``ValueError``, ``LookupError``, ``OSError``) when they do not care that it came from capmon.
The service maps these classes to HTTP status codes in one table.
"""

from __future__ import annotations


class CapmonError(Exception):
    """Root of every error capmon raises on purpose."""


class InputError(CapmonError, ValueError):
    """A file, row, parameter or value given by the user is not acceptable."""


class CRSError(InputError):
    """A dataset has no CRS, or CRSs that must agree do not."""


class GeometryError(InputError):
    """A geometry is invalid, empty or of the wrong type."""


class ColumnError(InputError, KeyError):
    """A column named by the user does not exist, or a required column is missing."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class EncodingError(InputError):
    """A text file is not in the encoding it must have (UTF-8 for LUTs)."""


class NotFoundError(CapmonError, LookupError):
    """A site, season, declaration set or product does not exist."""


class ConflictError(CapmonError, ValueError):
    """The request contradicts what is stored (duplicate name, overlapping season...)."""


class CatalogError(CapmonError, RuntimeError):
    """The catalogue database cannot be opened or migrated."""


class StorageError(CapmonError, OSError):
    """A file of the workspace cannot be read or written."""
