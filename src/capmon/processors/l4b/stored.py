"""Uploaded Sen4CAP L4B ``.cfg`` files, validated and stored per site and year.

Sen4CAP keeps the L4B config a site uploads for a year and its L4B jobs use it. capmon's L4B
processor takes the config as a file (``capmon run l4b --config FILE``, parameter ``config``),
so an uploaded config is stored as ``<home>/configs/<site>/<year>/l4b/v<N>/
S4C_L4B_Config_<year>.cfg`` with its ``report.json`` (what the reader understood), and the
stored path is what a run is given. A version folder is written under a temporary name and
renamed when complete, so a folder with a ``report.json`` is a complete import.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capmon.catalog.models import Site
from capmon.errors import StorageError
from capmon.parcels.store import check_year
from capmon.processors.l4b.config import L4BConfig, read_l4b_config
from capmon.workspace import Workspace, atomic_path, stored_versions

L4B_CONFIG_ROOT = Path("configs")
"""Uploaded L4B configs: ``<home>/configs/<site>/<year>/l4b/v<N>/``."""
REPORT_FILE = "report.json"


@dataclass(frozen=True)
class StoredL4BConfig:
    """A stored L4B config version: its folder, its ``.cfg`` file and its report."""

    site: str
    year: int
    version: int
    folder: Path
    path: Path
    report: dict[str, Any] = field(default_factory=dict)


def l4b_config_folder(workspace: Workspace, site: Site, year: int) -> Path:
    """``<home>/configs/<site short name>/<year>/l4b/``."""
    return workspace.path(L4B_CONFIG_ROOT / site.short_name / str(year) / "l4b")


def config_summary(config: L4BConfig) -> dict[str, Any]:
    """What the reader understood, for the report (JSON-ready)."""
    return {
        "ctnum_filter": list(config.ctnum_filter),
        "s1_orbits": list(config.s1_orbits),
        "s1_orbit_types": list(config.s1_orbit_types),
        "s2_tiles": list(config.s2_tiles),
        "s1": _plain(dataclasses.asdict(config.s1)),
        "s2": _plain(dataclasses.asdict(config.s2)),
        "compliance": [
            {
                "crop_code": r.crop_code,
                "start": r.start.isoformat(),
                "end": r.end.isoformat(),
                "rule": r.rule,
            }
            for r in config.compliance
        ],
        "fwd_tol_days": config.fwd_tol_days,
        "bkw_tol_days": config.bkw_tol_days,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None  # NaN (S1 invalid_data) is not JSON
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def store_l4b_config(
    workspace: Workspace, site: Site, year: int, source: Path, source_name: str
) -> StoredL4BConfig:
    """Validate an L4B ``.cfg`` (InputError naming line, section and key) and store it as the
    next version for ``year``; ``source_name`` is what the report calls the file."""
    check_year(year)
    config = read_l4b_config(source)
    folder = l4b_config_folder(workspace, site, year)
    versions = stored_versions(folder)
    version = (versions[-1] if versions else 0) + 1
    target = folder / f"v{version}"
    name = f"S4C_L4B_Config_{year}.cfg"
    report = {
        "site": site.name,
        "year": year,
        "version": version,
        "file": name,
        "source_file": source_name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **config_summary(config),
    }
    if target.exists():  # leftover of an interrupted import (no report.json)
        shutil.rmtree(target)
    try:
        with atomic_path(target) as tmp:
            tmp.mkdir(parents=True)
            shutil.copyfile(source, tmp / name)
            (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc}") from exc
    return StoredL4BConfig(site.name, year, version, target, target / name, report)


def list_l4b_configs(workspace: Workspace, site: Site) -> list[StoredL4BConfig]:
    """Every stored L4B config of ``site``, by year and version."""
    root = workspace.path(L4B_CONFIG_ROOT / site.short_name)
    out: list[StoredL4BConfig] = []
    if not root.is_dir():
        return out
    for year_folder in sorted(p for p in root.iterdir() if p.name.isdigit()):
        folder = year_folder / "l4b"
        for version in stored_versions(folder):
            target = folder / f"v{version}"
            report = json.loads((target / REPORT_FILE).read_text())
            path = target / str(report.get("file", ""))
            out.append(
                StoredL4BConfig(site.name, int(year_folder.name), version, target, path, report)
            )
    return out


def latest_l4b_config(workspace: Workspace, site: Site, year: int) -> Path | None:
    """The ``.cfg`` of the newest stored version for ``year`` (what L4B uses when no config is
    given), or None when none was stored."""
    folder = l4b_config_folder(workspace, site, year)
    versions = stored_versions(folder)
    if not versions:
        return None
    target = folder / f"v{versions[-1]}"
    report = json.loads((target / REPORT_FILE).read_text())
    return target / str(report.get("file", f"S4C_L4B_Config_{year}.cfg"))
