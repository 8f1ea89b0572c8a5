"""Uploaded files stored through capmon's import functions, with the client's file names.

Each function validates and stores an upload with the import the CLI uses (declarations,
crop LUT, L4C practices and config, L4B config, site AOI): those validate the whole file
before writing anything and write atomically, so a refused file leaves what was stored
untouched. Errors and reports name the file as the client called it, not its temporary path:
messages are rewritten, and the stored report (``report.json`` and the catalogue row) is
relabelled once the import has succeeded. A reader failing in an unexpected way on an
uploaded file is answered as bad input (400) naming the file, and logged with its traceback.
"""

from __future__ import annotations

import configparser
import csv
import json
import logging
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.errors import ShapelyError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from capmon.catalog.models import CropLut, DeclarationSet, ImportMode, Site
from capmon.errors import CapmonError, ConflictError, InputError, NotFoundError
from capmon.parcels import import_declarations, import_lut
from capmon.parcels.lut import LutFormat
from capmon.parcels.store import REPORT_FILE, Row, check_year
from capmon.processors.l4b.stored import list_l4b_configs, store_l4b_config
from capmon.processors.l4c.practices import (
    CONFIG_FOLDER,
    StoredPractices,
    import_config,
    import_practices,
    list_stored,
)
from capmon.service.upload_files import ReceivedUpload, relabelled
from capmon.sites import check_site_name, create_site
from capmon.workspace import Workspace, atomic_write_bytes

log = logging.getLogger("capmon.service")

_READER_FAILURES: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    RuntimeError,
    OSError,
    zipfile.BadZipFile,
    csv.Error,
    configparser.Error,
    ShapelyError,
)
"""What a reader may raise on a malformed file besides capmon's own errors."""


@contextmanager
def upload_errors(upload: ReceivedUpload, what: str) -> Iterator[None]:
    """Errors of the block named after the client's files (InputError for reader failures)."""
    try:
        yield
    except CapmonError as exc:
        raise _relabelled_error(exc, upload) from None
    except _READER_FAILURES as exc:
        names = ", ".join(f.name for f in upload.files)
        log.warning("reading the uploaded %s %s failed", what, names, exc_info=exc)
        detail = upload.relabel(f"{type(exc).__name__}: {exc}")
        raise InputError(f"{names}: cannot be read as {what} ({detail})") from None


def _relabelled_error(exc: CapmonError, upload: ReceivedUpload) -> CapmonError:
    message = upload.relabel(str(exc))
    if message == str(exc):
        return exc
    try:
        return type(exc)(message)
    except Exception:  # an error class with another constructor keeps its message
        return exc


@dataclass(frozen=True)
class UploadAnswer:
    """What an upload route answers: the stored version and its report."""

    kind: str
    site: str
    year: int
    version: int
    files: list[str]
    stored: str
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "site": self.site,
            "year": self.year,
            "version": self.version,
            "files": self.files,
            "stored": self.stored,
            "report": self.report,
        }


def _relabel_report_file(path: Path, upload: ReceivedUpload) -> dict[str, Any]:
    """Rewrite a stored ``report.json`` with the client's file names; returns the report.

    The import is stored by then, so a failure here is logged, not answered as an error (the
    client would upload again and make a second version)."""
    report = relabelled(json.loads(path.read_text()), upload)
    assert isinstance(report, dict)
    payload = json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n"
    try:
        atomic_write_bytes(path, payload.encode("utf-8"))
    except OSError:
        log.exception("could not relabel %s; it names the temporary upload file", path)
    return report


def _relabel_row(
    workspace: Workspace,
    model: type[Row],
    site: Site,
    year: int,
    version: int,
    upload: ReceivedUpload,
) -> None:
    """Name the client's file in a stored import's catalogue row (source file and report)."""
    try:
        with workspace.session() as session:
            row = session.scalars(
                select(model).where(
                    model.site_id == site.id, model.year == year, model.version == version
                )
            ).one()
            row.source_file = upload.relabel(row.source_file)
            row.report = relabelled(row.report, upload)
    except SQLAlchemyError:
        log.exception(
            "could not relabel %s version %s of %s", model.__tablename__, version, site.name
        )


def create_site_from_upload(
    workspace: Workspace, name: str, upload: ReceivedUpload, layer: str | None
) -> int:
    """Create a site from an uploaded AOI file; returns its id."""
    cleaned = check_site_name(name)
    with upload_errors(upload, "an AOI"), workspace.session() as session:
        site = create_site(session, cleaned, upload.files[0].path, layer=layer)
        return site.id


def declarations_upload(
    workspace: Workspace,
    site: Site,
    upload: ReceivedUpload,
    year: int,
    *,
    parcel_id_cols: Sequence[str],
    holding_id_cols: Sequence[str],
    crop_code_col: str | None,
    mode: str,
    layer: str | None,
    encoding: str | None,
    repair: bool,
    on_duplicate_id: str,
    skip_non_polygons: bool,
) -> UploadAnswer:
    """Import uploaded declarations as the next version of the site's parcels for ``year``."""
    with upload_errors(upload, "declarations"):
        result = import_declarations(
            workspace,
            site.name,
            year,
            upload.files[0].path,
            parcel_id_cols=parcel_id_cols,
            holding_id_cols=holding_id_cols,
            crop_code_col=crop_code_col,
            mode=ImportMode(mode),
            layer=layer,
            encoding=encoding,
            repair=repair,
            on_duplicate_id=on_duplicate_id,
            skip_non_polygons=skip_non_polygons,
        )
    relative = workspace.relative(result.parcels_path)
    report = _relabel_report_file(result.parcels_path.with_name(REPORT_FILE), upload)
    _relabel_row(workspace, DeclarationSet, site, year, result.version, upload)
    return UploadAnswer(
        "declarations", site.name, year, result.version, [upload.files[0].name], relative, report
    )


ARCHIVE_SIGNATURES = {b"PK\x03\x04": "a zip archive (or an Excel workbook)", b"\x1f\x8b": "gzip"}
"""First bytes of files that are not CSV text, whatever their name says."""


def refuse_archives(upload: ReceivedUpload, what: str) -> None:
    """InputError naming the client's file when a CSV upload is a zip/xlsx/gzip file (the CSV
    reader would only say that some byte is not UTF-8)."""
    for file in upload.files:
        with file.path.open("rb") as handle:
            head = handle.read(4)
        for signature, kind in ARCHIVE_SIGNATURES.items():
            if head.startswith(signature):
                raise InputError(
                    f"{file.name}: this is {kind}, not a CSV text file; {what} is uploaded as "
                    "a CSV file (unzip it, or save the sheet as 'CSV UTF-8')"
                )


def lut_upload(
    workspace: Workspace, site: Site, upload: ReceivedUpload, year: int, lut_format: str
) -> UploadAnswer:
    """Import an uploaded crop LUT (one Sen4CAP CSV, or HCAT mapping CSVs)."""
    refuse_archives(upload, "a crop LUT")
    kind = LutFormat(lut_format)
    if kind is LutFormat.SEN4CAP and len(upload.files) > 1:
        raise InputError("a Sen4CAP LUT is one CSV file; several files are for format=hcat")
    with upload_errors(upload, "a crop LUT"):
        result = import_lut(
            workspace, site.name, year, [f.path for f in upload.files], lut_format=kind
        )
    report = _relabel_report_file(result.lut_path.with_name(REPORT_FILE), upload)
    _relabel_row(workspace, CropLut, site, year, result.version, upload)
    return UploadAnswer(
        "lut",
        site.name,
        year,
        result.version,
        [f.name for f in upload.files],
        workspace.relative(result.lut_path),
        report,
    )


def practices_upload(
    workspace: Workspace, site: Site, upload: ReceivedUpload, year: int, practice: str | None
) -> UploadAnswer:
    """Import an uploaded L4C practice CSV (FIELD_IDs matched to the year's declarations)."""
    check_year(year)
    refuse_archives(upload, "a practice table")
    with upload_errors(upload, "a practice table"):
        try:
            stored = import_practices(workspace, site.name, year, upload.files[0].path, practice)
        except NotFoundError as exc:  # no declarations for the year: upload them first
            raise ConflictError(f"{exc}; upload the declarations first") from None
    return _stored_answer(workspace, upload, stored, "practices")


def l4c_config_upload(
    workspace: Workspace, site: Site, upload: ReceivedUpload, year: int, country: str
) -> UploadAnswer:
    """Import an uploaded L4C ``.cfg`` (where the L4C processor looks for it)."""
    check_year(year)
    with upload_errors(upload, "an L4C config"):
        stored = import_config(workspace, site.name, year, upload.files[0].path, country)
    return _stored_answer(workspace, upload, stored, "l4c-config")


def _stored_answer(
    workspace: Workspace, upload: ReceivedUpload, stored: StoredPractices, kind: str
) -> UploadAnswer:
    report = _relabel_report_file(stored.folder / REPORT_FILE, upload)
    return UploadAnswer(
        kind,
        stored.site,
        stored.year,
        stored.version,
        [upload.files[0].name],
        workspace.relative(stored.folder),
        report,
    )


def l4b_config_upload(
    workspace: Workspace, site: Site, upload: ReceivedUpload, year: int
) -> UploadAnswer:
    """Import an uploaded L4B ``.cfg``; the report's ``path`` is the run's ``config``."""
    file = upload.files[0]
    with upload_errors(upload, "an L4B config"):
        stored = store_l4b_config(workspace, site, year, file.path, file.name)
    report = stored.report | {"path": str(stored.path)}
    return UploadAnswer(
        "l4b-config",
        site.name,
        year,
        stored.version,
        [file.name],
        workspace.relative(stored.folder),
        report,
    )


def stored_configs(workspace: Workspace, site: Site) -> list[dict[str, Any]]:
    """The stored L4B and L4C configs of a site, by kind, year and version."""
    out: list[dict[str, Any]] = []
    for l4b in list_l4b_configs(workspace, site):
        out.append(
            {
                "kind": "l4b",
                "year": l4b.year,
                "version": l4b.version,
                "stored": workspace.relative(l4b.folder),
                "path": str(l4b.path),
                "report": l4b.report,
            }
        )
    for l4c in list_stored(workspace, site.name):
        if l4c.kind != CONFIG_FOLDER:
            continue
        out.append(
            {
                "kind": "l4c",
                "year": l4c.year,
                "version": l4c.version,
                "stored": workspace.relative(l4c.folder),
                "path": str(l4c.folder / str(l4c.report.get("file", ""))),
                "report": l4c.report,
            }
        )
    return out


def stored_practice_tables(workspace: Workspace, site: Site) -> list[dict[str, Any]]:
    """The stored L4C practice tables of a site, by year, practice and version."""
    return [
        {
            "practice": stored.kind,
            "year": stored.year,
            "version": stored.version,
            "stored": workspace.relative(stored.folder),
            "report": stored.report,
        }
        for stored in list_stored(workspace, site.name)
        if stored.kind != CONFIG_FOLDER
    ]
