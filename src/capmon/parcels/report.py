"""Import reports of declarations and crop LUTs: value types, JSON form and rich rendering.

A report is stored three ways with the same content: as the ``report.json`` file next to the
imported table, in the catalogue row (``DeclarationSet.report`` / ``CropLut.report``), and
printed as tables by the CLI. Problems are listed by row (1-based feature number in the source
file) for the first :data:`MAX_PROBLEM_ROWS` rows, with the total count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table

from capmon.parcels.codes import CropCodeCheck

MAX_PROBLEM_ROWS = 20


@dataclass(frozen=True)
class ProblemRow:
    """One problem: the row in the source file (1-based), the parcel id and what is wrong."""

    row: int | None
    ori_id: str | None
    detail: str


@dataclass(frozen=True)
class ProblemList:
    """How many rows have a problem, and the first :data:`MAX_PROBLEM_ROWS` of them."""

    count: int
    rows: tuple[ProblemRow, ...]

    @classmethod
    def of(cls, rows: Iterable[ProblemRow]) -> ProblemList:
        listed: list[ProblemRow] = []
        count = 0
        for row in rows:
            count += 1
            if len(listed) < MAX_PROBLEM_ROWS:
                listed.append(row)
        return cls(count, tuple(listed))


@dataclass(frozen=True)
class DeclarationCounts:
    """Counts of a declarations import; ``parcels`` includes deleted parcels kept as history."""

    read: int
    imported: int
    dropped_non_polygon: int
    invalid: int
    repaired: int
    unrepairable: int
    duplicates: int
    overlaps: int
    zero_s2_pixels: int
    zero_s1_pixels: int
    missing_crop_code: int
    missing_holding_id: int
    suffixed_ids: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    kept: int
    parcels: int
    active_parcels: int


@dataclass(frozen=True)
class DeclarationReport:
    """Everything an import found and did; see the module docstring for where it is stored."""

    source: str
    layer: str | None
    source_crs: str
    mode: str
    repair: bool
    column_mapping: Mapping[str, Any]
    counts: DeclarationCounts
    dropped_geometry_types: Mapping[str, int]
    problems: Mapping[str, ProblemList]
    crop_codes: CropCodeCheck | None
    timings: Mapping[str, float]
    previous_version: int | None = None
    version: int | None = None
    parcels_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-compatible form stored in the catalogue and in ``report.json``."""
        plain: dict[str, Any] = _plain(dataclasses.asdict(self))
        return plain

    def with_storage(
        self, version: int, parcels_path: str, crop_codes: CropCodeCheck | None
    ) -> DeclarationReport:
        """The report once the import has a version and a file in the workspace."""
        return dataclasses.replace(
            self, version=version, parcels_path=parcels_path, crop_codes=crop_codes
        )


@dataclass(frozen=True)
class LutReport:
    """What a crop LUT import read, kept and found."""

    sources: tuple[str, ...]
    kind: str
    rows_read: int
    entries: int
    skipped: ProblemList
    crop_codes: CropCodeCheck | None = None
    version: int | None = None
    lut_path: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(dataclasses.asdict(self))
        return plain


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_COUNT_LABELS = {
    "read": "features read",
    "imported": "parcels imported from the file",
    "dropped_non_polygon": "non-polygon features dropped",
    "invalid": "invalid geometries (GeomValid false)",
    "repaired": "geometries repaired",
    "unrepairable": "geometries that could not be repaired",
    "duplicates": "duplicate geometries (Duplic)",
    "overlaps": "overlapping parcels (Overlap > 10 %)",
    "zero_s2_pixels": "parcels without a 10 m pixel (S2Pix = 0)",
    "zero_s1_pixels": "parcels without a 20 m pixel (S1Pix = 0)",
    "missing_crop_code": "parcels without a crop code",
    "missing_holding_id": "parcels without a holding id",
    "suffixed_ids": "duplicate parcel ids given -A/-B suffixes",
    "inserted": "new parcels",
    "updated": "updated parcels",
    "unchanged": "unchanged parcels",
    "deleted": "parcels deleted (missing from the file)",
    "kept": "parcels kept from the previous version",
    "parcels": "rows in the parcels table",
    "active_parcels": "parcels not deleted",
}


def render_declaration_report(report: Mapping[str, Any]) -> Group:
    """Rich tables of a declarations report (the JSON form, as stored in the catalogue)."""
    title = f"Declarations {report.get('source', '')}"
    if report.get("version") is not None:
        title += f" -> version {report['version']}"
    summary = Table(title=title, show_header=True, header_style="bold")
    summary.add_column("count", justify="right")
    summary.add_column("what")
    for key, value in (report.get("counts") or {}).items():
        summary.add_row(str(value), _COUNT_LABELS.get(key, key))
    for kind, n in (report.get("dropped_geometry_types") or {}).items():
        summary.add_row(str(n), f"dropped: {kind}")
    parts: list[Any] = [summary]
    problems = Table(title="Problems by row (first rows)", header_style="bold")
    problems.add_column("problem")
    problems.add_column("row", justify="right")
    problems.add_column("ori_id")
    problems.add_column("detail")
    shown = False
    for kind, listing in (report.get("problems") or {}).items():
        for row in listing.get("rows", []):
            problems.add_row(
                kind,
                str(row.get("row") or ""),
                str(row.get("ori_id") or ""),
                str(row.get("detail", "")),
            )
            shown = True
        hidden = int(listing.get("count", 0)) - len(listing.get("rows", []))
        if hidden > 0:
            problems.add_row(kind, "", "", f"... and {hidden} more")
    if shown:
        parts.append(problems)
    codes = report.get("crop_codes")
    if codes:
        parts.append(_crop_code_table(codes))
    return Group(*parts)


def render_lut_report(report: Mapping[str, Any]) -> Group:
    """Rich tables of a crop LUT import report."""
    summary = Table(title=f"Crop LUT ({report.get('kind')}) version {report.get('version')}")
    summary.add_column("count", justify="right")
    summary.add_column("what")
    summary.add_row(str(report.get("rows_read")), "rows read")
    summary.add_row(str(report.get("entries")), "LUT entries")
    skipped = report.get("skipped") or {}
    summary.add_row(str(skipped.get("count", 0)), "rows skipped")
    parts: list[Any] = [summary]
    if skipped.get("rows"):
        table = Table(title="Skipped rows (first rows)")
        table.add_column("row", justify="right")
        table.add_column("code")
        table.add_column("why")
        for row in skipped["rows"]:
            table.add_row(str(row.get("row")), str(row.get("ori_id") or ""), row.get("detail", ""))
        parts.append(table)
    if report.get("crop_codes"):
        parts.append(_crop_code_table(report["crop_codes"]))
    return Group(*parts)


def _crop_code_table(codes: Mapping[str, Any]) -> Table:
    table = Table(
        title=(
            f"Declared crop codes missing from the LUT: {codes.get('missing_code_count')} of "
            f"{codes.get('distinct_codes')} codes, {codes.get('parcels_without_lut_entry')} "
            f"parcels (LUT v{codes.get('lut_version')}, declarations "
            f"v{codes.get('declaration_version')})"
        )
    )
    table.add_column("crop code")
    table.add_column("parcels", justify="right")
    for entry in codes.get("missing_codes") or []:
        table.add_row(str(entry["code"]), str(entry["parcels"]))
    return table
