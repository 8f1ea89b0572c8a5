"""The map's optional basemap, from the workspace's ``settings.toml`` (none by default: a
service may run where nothing outside is reachable, and the map must not ask).

```toml
[map]
basemap = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
basemap_attribution = "© OpenStreetMap contributors"
basemap_max_zoom = 19
```

The file is read on each ``/layers`` request, so an edit shows on the next map load.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capmon.errors import InputError

SETTINGS_FILE = "settings.toml"
"""The workspace's settings file, in its home folder."""


@dataclass(frozen=True)
class Basemap:
    """A raster tile layer drawn under the parcels: an XYZ URL template and its credits."""

    tiles: str
    attribution: str = ""
    max_zoom: int = 19

    def to_json(self) -> dict[str, Any]:
        return {"tiles": self.tiles, "attribution": self.attribution, "max_zoom": self.max_zoom}


def read_basemap(home: Path) -> Basemap | None:
    """The ``[map]`` basemap of ``<home>/settings.toml``; None without the file or the key.
    InputError naming the file and key when the value is not a usable tile URL."""
    path = home / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a valid TOML file ({exc})") from None
    section = settings.get("map", {})
    if not isinstance(section, dict) or not section.get("basemap"):
        return None
    tiles = section["basemap"]
    if (
        not isinstance(tiles, str)
        or not tiles.startswith(("https://", "http://"))
        or not all(part in tiles for part in ("{z}", "{x}", "{y}"))
    ):
        raise InputError(
            f"{path}: [map] basemap must be an http(s) tile URL with {{z}}, {{x}} and {{y}} "
            f"(e.g. https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png), not {tiles!r}"
        )
    attribution = section.get("basemap_attribution", "")
    max_zoom = section.get("basemap_max_zoom", 19)
    if not isinstance(attribution, str):
        raise InputError(f"{path}: [map] basemap_attribution must be text")
    if not isinstance(max_zoom, int) or isinstance(max_zoom, bool) or not 0 <= max_zoom <= 24:
        raise InputError(f"{path}: [map] basemap_max_zoom must be an integer from 0 to 24")
    return Basemap(tiles, attribution, max_zoom)
