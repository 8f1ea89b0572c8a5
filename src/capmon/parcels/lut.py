"""Crop look-up tables (LUTs): Sen4CAP's CSV format, validated and stored per site and year.

A Sen4CAP LUT (sen4cap-system.md 2.3) has the columns ``ori_crop, ctnum, ct, lc, ctnuml4a,
ctl4a, ctnumdiv, eaa, al, pgrass, tgrass, fallow, cwater`` (header case does not matter; the
delimiter may be ``,``, ``;`` or a tab; other columns are kept as text). The file must be UTF-8
(a BOM is allowed): anything else is an :class:`~capmon.errors.EncodingError` naming the line.
Rules: ``ori_crop`` present and unique (after the normalisation of
:func:`capmon.parcels.codes.crop_key`, so ``'01'`` and ``1`` clash); ``ctnum`` an integer,
unique; ``lc``, ``ctnuml4a``, ``ctnumdiv`` integers; the six flags 0 or 1. Every broken row is
reported with its line number.

A EuroCrops HCAT mapping can be converted instead (:mod:`capmon.parcels.hcat`). The stored
table (``luts/<site>/<year>/v<N>/lut.parquet``, plus ``lut.csv`` in Sen4CAP's format) has the
Sen4CAP columns with ``ori_crop`` as ``Int64`` when every code is an integer (else ``string``),
integer columns as ``int32``, flags as ``bool``, and ``crop_key``, the normalised code that
joins it to the declarations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from capmon.catalog.models import CropLut, DeclarationSet
from capmon.errors import ColumnError, InputError
from capmon.parcels import store
from capmon.parcels.codes import check_crop_codes
from capmon.parcels.hcat import hcat_lut
from capmon.parcels.lut_schema import (
    FLAG_COLUMNS,
    INT32_MAX,
    INTEGER_COLUMNS,
    INTEGER_TEXT,
    LUT_COLUMNS,
    TEXT_COLUMNS,
    PreparedLut,
    normalised_lut,
    problem_listing,
    read_utf8_csv,
)
from capmon.parcels.report import LutReport, ProblemList
from capmon.sites import get_site
from capmon.workspace import Workspace


class LutFormat(StrEnum):
    """The kind of file a LUT is imported from."""

    SEN4CAP = "sen4cap"
    HCAT = "hcat"


@dataclass(frozen=True)
class LutImport:
    """The result of :func:`import_lut`: the stored version and its report."""

    site: str
    year: int
    version: int
    lut_path: Path
    report: LutReport
    table: pd.DataFrame = field(repr=False, compare=False)


def read_sen4cap_lut(path: str | Path) -> PreparedLut:
    """Read and validate a Sen4CAP LUT CSV (see the module docstring)."""
    file = Path(path)
    header, records = read_utf8_csv(file)
    lower = {h.lower(): h for h in header}
    missing = [c for c in LUT_COLUMNS if c not in lower]
    if missing:
        raise ColumnError(
            f"{file}: the LUT lacks the required columns {', '.join(missing)} "
            f"(found: {', '.join(header)})"
        )
    if not records:
        raise InputError(f"{file}: the LUT has a header but no rows")
    errors: list[str] = []
    rows: list[dict[str, Any]] = []
    extra = [h for h in header if h.lower() not in LUT_COLUMNS]
    for record in records:
        value = {c: record.values[lower[c]].strip() for c in LUT_COLUMNS}
        row: dict[str, Any] = {"line": record.line, "ori_crop": value["ori_crop"] or None}
        if not value["ori_crop"]:
            errors.append(f"line {record.line}: ori_crop is empty")
        for column in INTEGER_COLUMNS:
            if INTEGER_TEXT.match(value[column]) and abs(int(value[column])) <= INT32_MAX:
                row[column] = int(value[column])
            else:
                errors.append(f"line {record.line}: {column} {value[column]!r} is not an integer")
        for column in FLAG_COLUMNS:
            if value[column] in ("0", "1"):
                row[column] = value[column] == "1"
            else:
                errors.append(f"line {record.line}: {column} {value[column]!r} is not 0 or 1")
        for column in TEXT_COLUMNS:
            row[column] = value[column]
        for column in extra:
            row[column] = record.values[column]
        rows.append(row)
    if errors:
        raise InputError(
            problem_listing(f"{file}: the LUT has {len(errors)} invalid values", errors)
        )
    table = normalised_lut(pd.DataFrame(rows), str(file))
    report = LutReport(
        sources=(str(file),),
        kind=LutFormat.SEN4CAP.value,
        rows_read=len(records),
        entries=len(table),
        skipped=ProblemList(0, ()),
    )
    return PreparedLut(table, report)


def prepare_lut(
    paths: str | Path | Sequence[str | Path], lut_format: LutFormat | str = LutFormat.SEN4CAP
) -> PreparedLut:
    """Read a LUT from a Sen4CAP CSV, or from one or more EuroCrops HCAT mapping CSVs.

    Several HCAT files are merged, the first file winning for a code in several of them
    (e.g. ``fr_2018.csv`` then ``fr_other_years.csv``). Works without a workspace.
    """
    files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not files:
        raise InputError("no LUT file given")
    kind = LutFormat(lut_format)
    if kind is LutFormat.SEN4CAP:
        if len(files) != 1:
            raise InputError("a Sen4CAP LUT is one CSV file; several files are for --format hcat")
        return read_sen4cap_lut(files[0])
    return hcat_lut(files)


def write_sen4cap_csv(table: pd.DataFrame, path: Path) -> None:
    """Write the Sen4CAP columns of a stored LUT as a UTF-8 CSV (flags as 0/1)."""
    out = table[list(LUT_COLUMNS)].copy()
    for column in FLAG_COLUMNS:
        out[column] = out[column].astype(int)
    out.to_csv(path, index=False, encoding="utf-8")


def import_lut(
    workspace: Workspace,
    site: str,
    year: int,
    paths: str | Path | Sequence[str | Path],
    *,
    lut_format: LutFormat | str = LutFormat.SEN4CAP,
) -> LutImport:
    """Import a crop LUT as the next version of ``site``'s LUT for ``year``.

    The report lists the crop codes of the newest declaration set of that year that the LUT
    lacks. Nothing stored changes unless the whole import succeeds.
    """
    store.check_year(year)
    with workspace.session() as session:
        site_row = get_site(session, site)
        site_name, short, site_id = site_row.name, site_row.short_name, site_row.id
        declarations = store.latest_row(session, DeclarationSet, site_row, year)
        declaration_info = (
            (declarations.version, declarations.parcels_path) if declarations else None
        )
    prepared = prepare_lut(paths, lut_format)
    check = None
    if declaration_info is not None:
        parcels = store.read_table(workspace, declaration_info[1])
        active = parcels.loc[~parcels["is_deleted"].astype(bool), "ori_crop"]
        check = check_crop_codes(
            active.tolist(),
            prepared.table["crop_key"].dropna().tolist(),
            declaration_version=declaration_info[0],
        )
    with workspace.session() as session:
        version = store.next_version(session, CropLut, get_site(session, site), year)
    if check is not None:
        check = replace(check, lut_version=version)
    folder = workspace.path(f"luts/{short}/{year}/v{version}")
    relative = f"luts/{short}/{year}/v{version}/{store.LUT_FILE}"
    report = replace(prepared.report, version=version, lut_path=relative, crop_codes=check)
    payload = report.to_dict()

    def write(tmp: Path) -> None:
        prepared.table.to_parquet(tmp / store.LUT_FILE, index=False)
        write_sen4cap_csv(prepared.table, tmp / store.LUT_CSV_FILE)
        store.write_json(tmp / store.REPORT_FILE, payload)

    store.write_version_folder(workspace, CropLut, site_id, year, version, folder, write)
    with store.removed_on_failure(folder), workspace.session() as session:
        session.add(
            CropLut(
                site_id=site_id,
                year=year,
                version=version,
                kind=report.kind,
                source_file=" + ".join(report.sources),
                lut_path=relative,
                entry_count=report.entries,
                report=payload,
            )
        )
        session.flush()
    return LutImport(site_name, year, version, workspace.path(relative), report, prepared.table)


def load_lut(
    workspace: Workspace, site: str, year: int, version: int | None = None
) -> pd.DataFrame:
    """A stored crop LUT (the newest version by default)."""
    with workspace.session() as session:
        row = store.version_row(session, CropLut, get_site(session, site), year, version)
        relative = row.lut_path
    return store.read_table(workspace, relative)


@dataclass(frozen=True)
class CropLutInfo:
    """A stored crop LUT version and its import report."""

    year: int
    version: int
    kind: str
    entries: int
    source_file: str
    lut_path: str
    created_at: datetime | None
    report: dict[str, Any]


def lut_info(workspace: Workspace, site: str, year: int, version: int | None = None) -> CropLutInfo:
    """The catalogue entry of a crop LUT (the newest version by default)."""
    with workspace.session() as session:
        row = store.version_row(session, CropLut, get_site(session, site), year, version)
        return CropLutInfo(
            row.year,
            row.version,
            row.kind,
            row.entry_count,
            row.source_file,
            row.lut_path,
            row.created_at,
            dict(row.report),
        )


def list_luts(workspace: Workspace, site: str) -> list[CropLutInfo]:
    """Every crop LUT version of ``site``, by year then version."""
    with workspace.session() as session:
        site_row = get_site(session, site)
        rows = session.scalars(
            select(CropLut)
            .where(CropLut.site_id == site_row.id)
            .order_by(CropLut.year, CropLut.version)
        ).all()
        return [
            CropLutInfo(
                r.year,
                r.version,
                r.kind,
                r.entry_count,
                r.source_file,
                r.lut_path,
                r.created_at,
                dict(r.report),
            )
            for r in rows
        ]
