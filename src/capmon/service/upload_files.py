"""Receiving multipart uploads: streamed into the workspace, size-limited, names never trusted.

An upload's body is parsed as it arrives (``python-multipart``'s streaming parser), never
spooled elsewhere first: each file part goes straight to ``<home>/uploads/tmp/<id>/upload-<n>``
and the request is refused with 413 as soon as the files exceed
``ServiceConfig.max_upload_bytes`` (or at once when ``Content-Length`` says so). Text fields
are small (64 KiB each, 64 of them at most). The folder is removed when the request ends,
whatever happens; folders left by a killed server are removed by the next upload after a day.

The client's file name is only used in messages and reports (``UploadedFile.name``); on disk
the file is ``upload-<n><suffix>``, the suffix kept only when it is a plain known extension,
else guessed from the first bytes (vector formats) so that the readers pick the right driver.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
import types
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar, Union, get_args, get_origin

import anyio.to_thread
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from capmon.errors import InputError
from capmon.service.errors import PayloadTooLargeError

log = logging.getLogger("capmon.service")

UPLOAD_TMP = Path("uploads") / "tmp"
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 64
STALE_SECONDS = 24 * 3600
_PLAIN_SUFFIX = re.compile(r"^\.[a-z0-9]{1,12}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WRITE_BATCH = 1 << 20

VECTOR_SUFFIXES = frozenset(
    {".zip", ".gpkg", ".gml", ".xml", ".geojson", ".json", ".fgb", ".kml", ".parquet",
     ".geoparquet", ".shp"}
)  # fmt: skip
"""Suffixes of the vector formats capmon reads (:mod:`capmon.vector`)."""

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", ".zip"),
    (b"SQLite format 3\x00", ".gpkg"),
    (b"PAR1", ".parquet"),
    (b"fgb", ".fgb"),
    (b"<", ".gml"),
    (b"{", ".geojson"),
)


@dataclass(frozen=True)
class UploadSpec:
    """What one upload route accepts: its file field, how many files and which formats.

    ``suffixes`` None accepts any file (the reader decides); otherwise a file whose suffix is
    not listed is recognised by its first bytes (``sniff``) or refused with 400.
    """

    what: str
    file_field: str = "file"
    max_files: int = 1
    suffixes: frozenset[str] | None = None
    default_suffix: str = ""
    sniff: bool = False


@dataclass(frozen=True)
class UploadedFile:
    """One received file: the client's name (for messages only) and where it is on disk."""

    field: str
    name: str
    path: Path
    size: int


@dataclass
class ReceivedUpload:
    """The text fields and files of a multipart request, in a private temporary folder."""

    folder: Path
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def labels(self) -> dict[str, str]:
        """Temporary path -> client file name, to rewrite messages and stored reports."""
        out: dict[str, str] = {}
        for upload in self.files:
            out[str(upload.path)] = upload.name
            out[str(upload.path.resolve())] = upload.name
            # readers that name a file by its base name only (``upload-1.csv: line 3 ...``)
            out[upload.path.name] = upload.name
        return out

    def relabel(self, text: str) -> str:
        """``text`` with every temporary path replaced by the client's file name."""
        for temporary, name in sorted(self.labels().items(), key=lambda kv: -len(kv[0])):
            text = text.replace(temporary, name)
        return text

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


Form = TypeVar("Form", bound=BaseModel)


def form_values(upload: ReceivedUpload, model: type[Form]) -> Form:
    """The text fields validated by ``model`` (400 naming each bad field).

    A field declared as a list takes every value given for it, each split at commas
    (``parcel_id_col=A&parcel_id_col=B`` or ``parcel_id_col=A,B``); other fields take their
    single value. Fields the model does not declare are refused.
    """
    values: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for name, given in upload.fields.items():
        info = model.model_fields.get(name)
        if info is None:
            problems.append(
                {"loc": ("body", name), "msg": "unknown field", "type": "extra_forbidden"}
            )
            continue
        if _is_list(info.annotation):
            values[name] = [part.strip() for v in given for part in v.split(",") if part.strip()]
        elif len(given) > 1:
            problems.append(
                {"loc": ("body", name), "msg": "given more than once", "type": "value_error"}
            )
        else:
            values[name] = given[0]
    if problems:
        raise RequestValidationError(problems)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, tuple):
        return True
    if origin in (Union, types.UnionType):
        return any(_is_list(argument) for argument in get_args(annotation))
    return False


def multipart_request_body(
    model: type[BaseModel], spec: UploadSpec, file_description: str
) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of an upload route: ``model``'s fields plus the file(s)."""
    schema = model.model_json_schema()
    properties: dict[str, Any] = dict(schema.get("properties", {}))
    binary = {"type": "string", "format": "binary", "description": file_description}
    properties[spec.file_field] = (
        {"type": "array", "items": binary, "minItems": 1, "maxItems": spec.max_files}
        if spec.max_files > 1
        else binary
    )
    required = [spec.file_field, *schema.get("required", [])]
    body: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if schema.get("$defs"):
        raise AssertionError(f"{model.__name__}: upload forms must not nest models")
    return {"required": True, "content": {"multipart/form-data": {"schema": body}}}


def display_name(filename: str) -> str:
    """The client's file name as shown in messages: its last component, printable, short."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = _CONTROL.sub("", base).strip()[:128]
    return base or "upload"


def plain_suffix(filename: str) -> str:
    """The lower-case extension of ``filename`` if it is a plain one (``.gpkg``), else ''."""
    suffix = PurePosixPath(display_name(filename)).suffix.lower()
    return suffix if _PLAIN_SUFFIX.match(suffix) else ""


def sniffed_suffix(head: bytes) -> str:
    """The suffix of a vector file recognised by its first bytes ('' if unknown)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for magic, suffix in _MAGIC:
        if text.startswith(magic):
            return suffix
    return ""


async def receive_upload(
    request: Request, home: Path, max_bytes: int, spec: UploadSpec
) -> ReceivedUpload:
    """Stream the multipart body of ``request`` into a new folder under ``<home>/uploads/tmp``.

    Raises :class:`PayloadTooLargeError` (413) when the files exceed ``max_bytes`` and
    :class:`InputError` (400) for a body that is not a valid upload; the folder is then gone.
    """
    media, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise InputError(
            f"the {spec.what} upload must be sent as multipart/form-data with a "
            f"'{spec.file_field}' file field"
        )
    declared = request.headers.get("content-length")
    overhead = MAX_FIELDS * MAX_FIELD_BYTES
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + overhead:
        raise PayloadTooLargeError(_too_large(spec, max_bytes))
    root = home / UPLOAD_TMP
    await anyio.to_thread.run_sync(_remove_stale, root)
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    receiver = _Receiver(folder, max_bytes, spec)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
            await anyio.to_thread.run_sync(receiver.flush)
        parser.finalize()
        await anyio.to_thread.run_sync(receiver.finish)
    except FormParserError as exc:
        receiver.abort()
        raise InputError(f"the {spec.what} upload is not a valid multipart body: {exc}") from None
    except BaseException:
        receiver.abort()
        raise
    return receiver.upload


def _too_large(spec: UploadSpec, max_bytes: int) -> str:
    return (
        f"the {spec.what} upload is larger than the limit of {max_bytes:,} bytes "
        "(ServiceConfig.max_upload_bytes); nothing was stored"
    )


def _remove_stale(root: Path) -> None:
    """Remove upload folders older than a day (left by a server that was killed)."""
    if not root.is_dir():
        return
    limit = time.time() - STALE_SECONDS
    for child in root.iterdir():
        try:
            if child.stat().st_mtime < limit:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            continue


class _Receiver:
    """The callbacks of the streaming parser: fields in memory, files on disk."""

    def __init__(self, folder: Path, max_bytes: int, spec: UploadSpec) -> None:
        self.upload = ReceivedUpload(folder)
        self.max_bytes = max_bytes
        self.spec = spec
        self.total = 0
        self.field_count = 0
        self.header_name = b""
        self.header_value = b""
        self.disposition: bytes | None = None
        self.part_name = ""
        self.part_file: str | None = None
        self.text = bytearray()
        self.handle: IO[bytes] | None = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.head = b""
        self.parts: list[tuple[str, str, Path, int, bytes]] = []
        self.part_size = 0

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.disposition = None
        self.part_file = None
        self.text = bytearray()
        self.part_size = 0
        self.head = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.strip().lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = b""
        self.header_value = b""

    def on_headers_finished(self) -> None:
        _kind, options = parse_options_header(self.disposition)
        name = options.get(b"name")
        if name is None:
            raise InputError(f"the {self.spec.what} upload has a part without a field name")
        self.part_name = name.decode("utf-8", "replace")
        if b"filename" not in options:
            self.field_count += 1
            if self.field_count > MAX_FIELDS:
                raise InputError(f"the {self.spec.what} upload has more than {MAX_FIELDS} fields")
            return
        if self.part_name != self.spec.file_field:
            raise InputError(
                f"the {self.spec.what} upload has a file in field {self.part_name!r}; "
                f"send it as '{self.spec.file_field}'"
            )
        if len(self.parts) >= self.spec.max_files:
            raise InputError(
                f"the {self.spec.what} upload takes at most {self.spec.max_files} file(s)"
            )
        self.part_file = options[b"filename"].decode("utf-8", "replace")
        path = self.upload.folder / f"upload-{len(self.parts) + 1}.part"
        self.handle = path.open("xb")
        self.parts.append((self.part_name, self.part_file, path, 0, b""))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if self.part_file is None:
            if len(self.text) + size > MAX_FIELD_BYTES:
                raise InputError(
                    f"field {self.part_name!r} of the {self.spec.what} upload is longer than "
                    f"{MAX_FIELD_BYTES} bytes"
                )
            self.text += data[start:end]
            return
        self.total += size
        self.part_size += size
        if self.total > self.max_bytes:
            raise PayloadTooLargeError(_too_large(self.spec, self.max_bytes))
        chunk = bytes(data[start:end])
        if len(self.head) < 64:
            self.head += chunk[: 64 - len(self.head)]
        self.pending.append(chunk)
        self.pending_size += size
        if self.pending_size >= _WRITE_BATCH:
            self.flush()

    def on_part_end(self) -> None:
        if self.part_file is None:
            value = self.text.decode("utf-8", "replace")
            self.upload.fields.setdefault(self.part_name, []).append(value)
            return
        self.flush()
        assert self.handle is not None
        self.handle.close()
        self.handle = None
        name, filename, path, _size, _head = self.parts[-1]
        self.parts[-1] = (name, filename, path, self.part_size, self.head)
        self.part_file = None

    def flush(self) -> None:
        if self.pending and self.handle is not None:
            self.handle.writelines(self.pending)
        self.pending = []
        self.pending_size = 0

    def finish(self) -> None:
        """Name the received files (sanitised or recognised suffix) and check they exist."""
        if self.handle is not None:
            raise InputError(f"the {self.spec.what} upload ends inside a file")
        if not self.parts:
            raise InputError(
                f"the {self.spec.what} upload has no file: send it in the "
                f"'{self.spec.file_field}' field"
            )
        for number, (name, filename, path, size, head) in enumerate(self.parts, start=1):
            shown = display_name(filename)
            if size == 0:
                raise InputError(f"{shown}: the uploaded file is empty")
            suffix = self._suffix(filename, head, shown)
            final = path.with_name(f"upload-{number}{suffix}")
            path.rename(final)
            self.upload.files.append(UploadedFile(name, shown, final, size))

    def _suffix(self, filename: str, head: bytes, shown: str) -> str:
        suffix = plain_suffix(filename)
        accepted = self.spec.suffixes
        if accepted is None:
            return suffix or self.spec.default_suffix
        if suffix in accepted:
            return suffix
        guessed = sniffed_suffix(head) if self.spec.sniff else ""
        if guessed:
            return guessed
        raise InputError(
            f"{shown}: not a file format capmon reads for {self.spec.what} (accepted: "
            f"{', '.join(sorted(accepted))})"
        )

    def abort(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        self.upload.remove()


def upload_receiver(
    spec: UploadSpec,
) -> Callable[[Request], AsyncIterator[ReceivedUpload]]:
    """A FastAPI dependency that receives an upload and removes its folder afterwards.

    Declare it after the access dependencies (``WritableSite``...): FastAPI resolves
    dependencies in order, so a refused request is answered before its body is read.
    """

    async def receive(request: Request) -> AsyncIterator[ReceivedUpload]:
        from capmon.service.state import service_state

        state = service_state(request)
        upload = await receive_upload(
            request, state.workspace.home, state.config.max_upload_bytes, spec
        )
        try:
            yield upload
        finally:
            upload.remove()

    return receive


def relabelled(value: Any, upload: ReceivedUpload) -> Any:
    """A copy of a JSON-like ``value`` with temporary paths replaced by client file names."""
    if isinstance(value, str):
        return upload.relabel(value)
    if isinstance(value, Mapping):
        return {k: relabelled(v, upload) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [relabelled(v, upload) for v in value]
    return value
