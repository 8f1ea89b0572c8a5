"""Reading product metadata XML by local element names (producers change namespaces)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from capmon.errors import InputError, StorageError


class Metadata:
    """A parsed metadata document; every error names the file."""

    def __init__(self, path: Path, product: str) -> None:
        self.path = path
        self.product = product
        if not path.is_file():
            raise InputError(f"product {product} has no metadata file {path}")
        try:
            self.root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise InputError(
                f"the metadata of product {product} is unreadable: {path} is not valid XML ({exc})"
            ) from exc
        except OSError as exc:
            raise StorageError(f"cannot read the metadata {path}: {exc}") from exc

    def all(self, name: str, element: ET.Element | None = None) -> Iterator[ET.Element]:
        """Every descendant of ``element`` (default: the root) called ``name``."""
        for child in (element if element is not None else self.root).iter():
            if _local(child.tag) == name:
                yield child

    def first(self, name: str, element: ET.Element | None = None) -> ET.Element | None:
        return next(self.all(name, element), None)

    def text(self, name: str, element: ET.Element | None = None) -> str:
        """The text of the first element ``name``; an InputError when it is absent or empty."""
        found = self.first(name, element)
        if found is None or not (found.text or "").strip():
            raise InputError(f"the metadata {self.path} of product {self.product} lacks {name}")
        return (found.text or "").strip()

    def optional_text(self, name: str, element: ET.Element | None = None) -> str | None:
        found = self.first(name, element)
        if found is None or not (found.text or "").strip():
            return None
        return (found.text or "").strip()

    def number(self, name: str, element: ET.Element | None = None) -> float:
        text = self.text(name, element)
        try:
            return float(text)
        except ValueError:
            raise InputError(
                f"the metadata {self.path} of product {self.product}: {name} is not a number "
                f"({text!r})"
            ) from None

    def time(self, name: str, element: ET.Element | None = None) -> datetime:
        """An ISO 8601 time element as a UTC datetime (naive times are taken as UTC)."""
        return parse_time(self.text(name, element), f"{name} in {self.path}")


def parse_time(text: str, what: str) -> datetime:
    """An ISO 8601 time (``Z`` accepted) as a UTC datetime; naive times are taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{what} is not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]
