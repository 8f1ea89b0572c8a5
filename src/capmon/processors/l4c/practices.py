"""Sen4CAP practice tables (CatchCrop, Fallow, NFC, NA): reading, validation and storage.

A practice CSV (sen4cap-system.md 2.5) has the columns ``FIELD_ID, MAIN_CROP, VEG_START,
H_START, H_END, PRACTICE, P_TYPE, P_START, P_END``, separated by ``,`` or ``;``; dates are
``YYYY-MM-DD`` and ``NA`` (or an empty cell) marks a missing one. ``FIELD_ID`` is the
declaration's original id (``ori_id``), which :func:`match_parcels` maps to capmon's ``NewID``.

Validated tables are stored as files in the workspace, one version folder per import:
``<home>/practices/<site>/<year>/<practice>/v<N>/`` with ``practices.parquet``, the source
file and ``report.json``; L4C configs go to ``<home>/practices/<site>/<year>/config/v<N>/``.
Each folder is written under a temporary name and renamed when complete, so a folder with a
``report.json`` is a complete import.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from capmon.errors import ColumnError, InputError, NotFoundError, StorageError
from capmon.processors.l4c.config import (
    PRACTICE_NAMES,
    L4CConfig,
    PracticeCode,
    practice_code,
    read_l4c_config,
)
from capmon.workspace import Workspace, atomic_path, stored_versions

PRACTICE_COLUMNS = (
    "FIELD_ID", "MAIN_CROP", "VEG_START", "H_START", "H_END", "PRACTICE", "P_TYPE", "P_START",
    "P_END",
)  # fmt: skip
DATE_COLUMNS = ("VEG_START", "H_START", "H_END", "P_START", "P_END")
FOLDER_NAMES: dict[PracticeCode, str] = {
    "CC": "catchcrop",
    "FL": "fallow",
    "NFC": "nfc",
    "NA": "na",
}
CONFIG_FOLDER = "config"
TABLE_FILE = "practices.parquet"
REPORT_FILE = "report.json"
MAX_LISTED_IDS = 20


@dataclass(frozen=True)
class PracticeTable:
    """A validated practice table: one row per parcel, dates as ``datetime.date`` or None.

    ``rows`` has the Sen4CAP columns plus ``LINE`` (the CSV line of the row). After
    :func:`match_parcels` it also has ``NewID`` (None for ids not in the declarations).
    """

    practice: PracticeCode
    rows: pd.DataFrame
    source: str
    unknown_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def report(self) -> dict[str, Any]:
        """What the import found, for ``report.json`` and the CLI."""
        return {
            "practice": self.practice,
            "practice_name": PRACTICE_NAMES[self.practice],
            "source": self.source,
            "rows": len(self.rows),
            "matched": int(self.rows["NewID"].notna().sum()) if "NewID" in self.rows else None,
            "unknown_ids": {
                "count": len(self.unknown_ids),
                "ids": list(self.unknown_ids[:MAX_LISTED_IDS]),
            },
            "p_end_missing": int(self.rows["P_END"].isna().sum()),
            "notes": list(self.notes),
        }


def _delimiter(first_line: str) -> str:
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _parse_date(value: str, where: str) -> date | None:
    text = value.strip()
    if text in ("", "NA", "NR"):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{where}: expected a date YYYY-MM-DD or NA, got {text!r}") from None


def parse_practice_csv(
    text: str, source: str = "<practices>", practice: PracticeCode | str | None = None
) -> PracticeTable:
    """Parse and validate a practice CSV (InputError/ColumnError name the file, line, column).

    Checks: the required columns; dates (or ``NA``); ``PRACTICE`` values (one practice per
    file, the given ``practice`` if any); VEG_START <= H_START <= H_END and
    P_START <= P_END; the practice start of catch crops, fallow and NFC; ``FIELD_ID`` present
    and unique (a repeated id is reported with both lines, as overlapping when the practice
    windows overlap).
    """
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or not lines[0].strip():
        raise InputError(f"{source}: the practice file is empty")
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=_delimiter(lines[0]))
    header = [name.strip().upper() for name in next(reader)]
    missing = [c for c in PRACTICE_COLUMNS if c not in header]
    if missing:
        raise ColumnError(
            f"{source}: missing column(s) {', '.join(missing)} (found: {', '.join(header)}; "
            f"expected {', '.join(PRACTICE_COLUMNS)})"
        )
    position = {name: header.index(name) for name in PRACTICE_COLUMNS}
    wanted = practice_code(practice) if practice is not None else None
    records: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    found_practice: PracticeCode | None = wanted
    for line_number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) < len(header):
            raise InputError(
                f"{source}, line {line_number}: {len(cells)} fields, the header has {len(header)}"
            )
        record: dict[str, Any] = {"LINE": line_number}
        for name in PRACTICE_COLUMNS:
            cell = cells[position[name]].strip()
            where = f"{source}, line {line_number}, column {name}"
            record[name] = _parse_date(cell, where) if name in DATE_COLUMNS else cell
        if not record["FIELD_ID"]:
            raise InputError(f"{source}, line {line_number}: FIELD_ID is empty")
        try:
            code = practice_code(record["PRACTICE"])
        except InputError as exc:
            raise InputError(f"{source}, line {line_number}, column PRACTICE: {exc}") from None
        if found_practice is None:
            found_practice = code
        elif code != found_practice:
            raise InputError(
                f"{source}, line {line_number}: PRACTICE {record['PRACTICE']!r} differs from "
                f"{PRACTICE_NAMES[found_practice]!r} (one practice per file)"
            )
        _check_dates(record, code, f"{source}, line {line_number}")
        previous = first_line.get(record["FIELD_ID"])
        if previous is not None:
            other = records[[r["LINE"] for r in records].index(previous)]
            how = "overlapping practice windows" if _overlap(other, record) else "a repeated id"
            raise InputError(
                f"{source}: FIELD_ID {record['FIELD_ID']!r} is on lines {previous} and "
                f"{line_number} ({how}); a parcel has one row per practice"
            )
        first_line[record["FIELD_ID"]] = line_number
        records.append(record)
    if not records:
        raise InputError(f"{source}: the practice file has a header but no row")
    assert found_practice is not None
    rows = pd.DataFrame(records, columns=["LINE", *PRACTICE_COLUMNS])
    return PracticeTable(found_practice, rows, source)


def _check_dates(record: dict[str, Any], code: PracticeCode, where: str) -> None:
    veg, h_start, h_end = record["VEG_START"], record["H_START"], record["H_END"]
    if veg is not None and h_start is not None and veg > h_start:
        raise InputError(f"{where}: VEG_START {veg} is after H_START {h_start}")
    if h_start is not None and h_end is not None and h_start > h_end:
        raise InputError(f"{where}: H_START {h_start} is after H_END {h_end}")
    p_start, p_end = record["P_START"], record["P_END"]
    if p_start is not None and p_end is not None and p_start > p_end:
        raise InputError(f"{where}: P_START {p_start} is after P_END {p_end}")
    if code != "NA" and p_start is None:
        raise InputError(f"{where}: P_START is required for {PRACTICE_NAMES[code]} rows")
    if code in ("FL", "NFC") and p_end is None:
        raise InputError(f"{where}: P_END is required for {PRACTICE_NAMES[code]} rows")


def _overlap(first: dict[str, Any], second: dict[str, Any]) -> bool:
    a0, a1, b0, b1 = first["P_START"], first["P_END"], second["P_START"], second["P_END"]
    if a0 is None or b0 is None:
        return True
    return bool(a0 <= (b1 or date.max) and b0 <= (a1 or date.max))


def read_practice_csv(
    path: str | Path, practice: PracticeCode | str | None = None
) -> PracticeTable:
    """Read and validate a practice CSV file."""
    csv_path = Path(path)
    if not csv_path.is_file():
        raise InputError(f"practice file {csv_path} does not exist")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"practice file {csv_path} is not UTF-8 text: {exc}") from exc
    return parse_practice_csv(text, str(csv_path), practice)


def match_parcels(table: PracticeTable, parcels: pd.DataFrame) -> PracticeTable:
    """Add ``NewID`` (from the parcels' ``ori_id``) and report the ids not in the declarations.

    Raises InputError when no id matches (never an empty run).
    """
    live = parcels
    if "is_deleted" in parcels.columns:
        live = parcels[~parcels["is_deleted"].astype(bool)]
    lookup = dict(zip(live["ori_id"].astype(str), live["NewID"].astype("int64"), strict=True))
    rows = table.rows.copy()
    rows["NewID"] = pd.array([lookup.get(str(i)) for i in rows["FIELD_ID"]], dtype="Int64")
    unknown = tuple(str(i) for i in rows.loc[rows["NewID"].isna(), "FIELD_ID"])
    if len(unknown) == len(rows):
        raise InputError(
            f"{table.source}: none of the {len(rows)} FIELD_IDs is an ori_id of the declarations "
            f"(e.g. {unknown[0]!r}); FIELD_ID must be the declarations' original parcel id"
        )
    notes = list(table.notes)
    if unknown:
        shown = ", ".join(unknown[:MAX_LISTED_IDS])
        notes.append(f"{len(unknown)} FIELD_ID(s) not in the declarations, skipped: {shown}")
    return PracticeTable(table.practice, rows, table.source, unknown, tuple(notes))


# --- workspace storage -----------------------------------------------------------------------


@dataclass(frozen=True)
class StoredPractices:
    """A stored import (practice table or config): where it is and its report."""

    site: str
    year: int
    kind: str
    version: int
    folder: Path
    report: dict[str, Any] = field(default_factory=dict)


def practices_root(workspace: Workspace, site: str, year: int) -> Path:
    """``<home>/practices/<site>/<year>/``."""
    return workspace.path(Path("practices") / site / str(year))


def _kind_folder(workspace: Workspace, site: str, year: int, kind: str) -> Path:
    return practices_root(workspace, site, year) / kind


def _write_version(folder: Path, write: Any) -> int:
    versions = stored_versions(folder)
    version = (versions[-1] if versions else 0) + 1
    target = folder / f"v{version}"
    if target.exists():  # leftover of an interrupted import (no report.json)
        shutil.rmtree(target)
    try:
        with atomic_path(target) as tmp:
            tmp.mkdir(parents=True)
            write(tmp, version)
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc}") from exc
    return version


def store_practices(
    workspace: Workspace, site: str, year: int, table: PracticeTable, source: Path
) -> StoredPractices:
    """Store a matched practice table as the next version of its practice for ``year``."""
    kind = FOLDER_NAMES[table.practice]
    folder = _kind_folder(workspace, site, year, kind)
    report = table.report() | {"year": year, "site": site, "source_file": str(source)}

    def write(tmp: Path, version: int) -> None:
        stored = table.rows.copy()
        for name in DATE_COLUMNS:
            stored[name] = pd.to_datetime(stored[name]).dt.date
        stored.to_parquet(tmp / TABLE_FILE, index=False)
        shutil.copyfile(source, tmp / source.name)
        payload = report | {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (tmp / REPORT_FILE).write_text(json.dumps(payload, indent=2, default=str) + "\n")

    version = _write_version(folder, write)
    return StoredPractices(site, year, kind, version, folder / f"v{version}", report)


def store_config(
    workspace: Workspace,
    site: str,
    year: int,
    config: L4CConfig,
    source: Path,
    country: str,
) -> StoredPractices:
    """Store an L4C config as ``S4C_L4C_Config_<COUNTRY>_<YEAR>.cfg`` (next version)."""
    folder = _kind_folder(workspace, site, year, CONFIG_FOLDER)
    name = f"S4C_L4C_Config_{country}_{year}.cfg"
    report = {"country": country, "year": year, "site": site, "source_file": str(source),
              "file": name, **config.to_dict()}  # fmt: skip

    def write(tmp: Path, version: int) -> None:
        shutil.copyfile(source, tmp / name)
        payload = report | {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (tmp / REPORT_FILE).write_text(json.dumps(payload, indent=2, default=str) + "\n")

    version = _write_version(folder, write)
    return StoredPractices(site, year, CONFIG_FOLDER, version, folder / f"v{version}", report)


def _stored(
    workspace: Workspace, site: str, year: int, kind: str, version: int | None
) -> StoredPractices | None:
    folder = _kind_folder(workspace, site, year, kind)
    versions = stored_versions(folder)
    if not versions:
        return None
    chosen = versions[-1] if version is None else version
    if chosen not in versions:
        known = ", ".join(str(v) for v in versions)
        raise NotFoundError(f"no {kind} version {chosen} for {site} {year} (versions: {known})")
    target = folder / f"v{chosen}"
    report = json.loads((target / REPORT_FILE).read_text())
    return StoredPractices(site, year, kind, chosen, target, report)


def stored_practices(
    workspace: Workspace, site: str, year: int, practice: PracticeCode, version: int | None = None
) -> StoredPractices | None:
    """The newest (or a given) stored version of a practice table, None when there is none."""
    return _stored(workspace, site, year, FOLDER_NAMES[practice], version)


def stored_config(
    workspace: Workspace, site: str, year: int, version: int | None = None
) -> StoredPractices | None:
    """The newest (or a given) stored L4C config, None when there is none."""
    return _stored(workspace, site, year, CONFIG_FOLDER, version)


def load_stored_practices(stored: StoredPractices) -> PracticeTable:
    """The practice table of a stored import."""
    path = stored.folder / TABLE_FILE
    if not path.is_file():
        raise StorageError(f"{path}: the stored practice table is missing")
    rows = pd.read_parquet(path)
    for name in DATE_COLUMNS:
        rows[name] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in rows[name]]
    rows["NewID"] = rows["NewID"].astype("Int64")
    practice = practice_code(str(stored.report["practice"]))
    unknown = tuple(stored.report.get("unknown_ids", {}).get("ids", []))
    return PracticeTable(practice, rows, str(stored.report.get("source_file", path)), unknown)


def load_stored_config(stored: StoredPractices) -> tuple[L4CConfig, str]:
    """The config of a stored import and its country."""
    name = str(stored.report["file"])
    config = read_l4c_config(stored.folder / name, int(stored.report["year"]))
    return config, str(stored.report["country"])


def list_stored(workspace: Workspace, site: str) -> list[StoredPractices]:
    """Every stored practice table and config of ``site``, by year, kind and version."""
    root = workspace.path(Path("practices") / site)
    out: list[StoredPractices] = []
    if not root.is_dir():
        return out
    for year_folder in sorted(p for p in root.iterdir() if p.name.isdigit()):
        for kind_folder in sorted(p for p in year_folder.iterdir() if p.is_dir()):
            for version in stored_versions(kind_folder):
                target = kind_folder / f"v{version}"
                report = json.loads((target / REPORT_FILE).read_text())
                year = int(year_folder.name)
                out.append(StoredPractices(site, year, kind_folder.name, version, target, report))
    return out


def import_practices(
    workspace: Workspace,
    site: str,
    year: int,
    path: str | Path,
    practice: PracticeCode | str | None = None,
) -> StoredPractices:
    """Validate a practice CSV against the site's newest declarations of ``year`` and store it.

    FIELD_IDs that are not ``ori_id`` of a declared parcel are reported (``unknown_ids`` in
    the report); none matching is an error.
    """
    from capmon.parcels import load_parcels

    source = Path(path)
    table = read_practice_csv(source, practice)
    parcels = load_parcels(workspace, site, year)
    return store_practices(workspace, site, year, match_parcels(table, parcels), source)


def import_config(
    workspace: Workspace, site: str, year: int, path: str | Path, country: str
) -> StoredPractices:
    """Validate an L4C config (``${YEAR}`` = ``year``) and store it for ``country``."""
    code = country.strip().upper()
    if not re.fullmatch(r"[A-Z]{2,3}", code):
        raise InputError(f"country must be a 2- or 3-letter code such as NLD, got {country!r}")
    source = Path(path)
    config = read_l4c_config(source, year)
    for practice in ("CC", "FL", "NFC", "NA"):
        config.parameters(practice)  # every section resolves
    return store_config(workspace, site, year, config, source, code)
