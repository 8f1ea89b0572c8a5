"""Downloading one file: resumable, checksummed, retried.

The bytes go to ``<target>.part``; a request after an interruption asks for the rest
(``Range: bytes=<size of the part>-``) and appends it when the server answers 206 (a 200
means the server ignored the range: the file starts again). A complete file is checked against
the STAC ``file:checksum`` (a multihash: SHA-256, SHA-512, SHA-1, SHA3, BLAKE2b-256 or MD5, as
the Copernicus Data Space gives) or, without one, against ``file:size`` / ``Content-Length``;
a mismatch deletes the part and downloads the file again. Only a verified file is renamed to
its final name, so a file at its final name is always complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from capmon.acquisition.http import RetryableAnswerError, SourceClient, SourceUnavailableError
from capmon.errors import CapmonError, InputError

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
PART_SUFFIX = ".part"
_MULTIHASH = {
    0x11: "sha1",
    0x12: "sha256",
    0x13: "sha512",
    0x14: "sha3_512",
    0x16: "sha3_256",
    0xD5: "md5",
    0xB220: "blake2b_256",
}
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(CapmonError):
    """A file could not be downloaded (the message says why, without credentials)."""


@dataclass(frozen=True)
class RemoteFile:
    """One asset to download: where from, where to, and what it must be."""

    key: str
    url: str
    target: Path
    size: int | None = None
    checksum: str | None = None
    """``file:checksum`` of the STAC asset (hex multihash), or None."""


@dataclass(frozen=True)
class Fetched:
    """A downloaded (or already present) file."""

    path: Path
    size: int
    retries: int
    already_there: bool = False


def parse_multihash(text: str) -> tuple[str, bytes]:
    """(hashlib algorithm, digest) of a hex multihash (``1220<sha-256>``, ``d50110<md5>``)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise InputError(f"file:checksum {text!r} is not hexadecimal") from exc
    code, used = _varint(raw, 0)
    length, used = _varint(raw, used)
    digest = raw[used:]
    if code not in _MULTIHASH:
        raise InputError(f"file:checksum {text!r} uses multihash code {code:#x}, unknown to capmon")
    if len(digest) != length:
        raise InputError(f"file:checksum {text!r}: digest length {len(digest)} != {length}")
    return _MULTIHASH[code], digest


def _varint(raw: bytes, start: int) -> tuple[int, int]:
    value, shift, index = 0, 0, start
    while index < len(raw):
        byte = raw[index]
        value |= (byte & 0x7F) << shift
        index += 1
        if not byte & 0x80:
            return value, index
        shift += 7
    raise InputError(f"truncated multihash {raw.hex()!r}")


def _digest(path: Path, algorithm: str) -> bytes:
    hasher = (
        hashlib.blake2b(digest_size=32) if algorithm == "blake2b_256" else hashlib.new(algorithm)
    )
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
    return hasher.digest()


def verify(path: Path, remote: RemoteFile, expected_size: int | None = None) -> str | None:
    """Why the file at ``path`` is not ``remote`` (checksum, then size), or None when it is."""
    size = path.stat().st_size
    wanted = remote.size if remote.size is not None else expected_size
    if wanted is not None and size != wanted:
        return f"size {size} bytes, expected {wanted}"
    if remote.checksum:
        try:
            algorithm, digest = parse_multihash(remote.checksum)
        except InputError as exc:
            logger.warning("%s: %s; checking the size only", remote.key, exc)
            return None
        if _digest(path, algorithm) != digest:
            return f"checksum mismatch ({algorithm})"
    return None


def fetch(
    client: SourceClient,
    remote: RemoteFile,
    progress: Callable[[int], None] | None = None,
) -> Fetched:
    """Download ``remote`` to its target (see the module docstring); a verified file already
    at the target is kept. Raises :class:`DownloadError` (or SourceUnavailableError)."""
    target = remote.target
    if target.is_file() and verify(target, remote) is None:
        return Fetched(target, target.stat().st_size, 0, already_there=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + PART_SUFFIX)
    source = client.source
    retries = 0
    rate_waits = 0
    what = f"{remote.key} ({client.redact(remote.url)})"

    def retry(reason: str) -> None:
        nonlocal retries
        retries += 1
        if retries > source.max_retries:
            raise DownloadError(f"{what}: {reason}; gave up after {retries} attempt(s)")
        wait = client.backoff(retries)
        logger.warning(
            "%s: %s; retry %d/%d in %.1f s", what, reason, retries, source.max_retries, wait
        )
        client.sleep(wait)

    while True:
        offset = part.stat().st_size if part.is_file() else 0
        if remote.size is not None and offset > remote.size:
            part.unlink()
            offset = 0
        # identity: the bytes on disk are the file's, so a Range offset means the same thing
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        expected: int | None = None
        try:
            with client.stream("GET", remote.url, headers=headers) as response:
                status = response.status_code
                if status == 429 or (status == 503 and "Retry-After" in response.headers):
                    rate_waits += 1
                    client.rate_limited(response, rate_waits)
                    continue
                if status == 416 and offset:
                    # the part may already hold the whole file
                    if verify(part, remote) is None:
                        break
                    part.unlink(missing_ok=True)
                    retry("the server refused to resume a part that is not the file")
                    continue
                if status >= 500:
                    raise RetryableAnswerError(f"HTTP {status}")
                if status in (401, 403):
                    raise DownloadError(
                        f"{what}: HTTP {status}, access refused (check the credentials "
                        f"{source.env_prefix}TOKEN, _USER, _PASSWORD)"
                    )
                if status >= 400:
                    raise DownloadError(f"{what}: HTTP {status}")
                rate_waits = 0
                mode = "wb"
                start = 0
                if status == 206:
                    start = _range_start(response)
                    if start != offset:
                        part.unlink(missing_ok=True)
                        retry(f"the server resumed at byte {start}, not {offset}")
                        continue
                    mode = "ab"
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit():
                    expected = start + int(length)
                with part.open(mode) as out:
                    for chunk in response.iter_raw():  # as it arrives: a cut keeps it all
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
        except (httpx.TransportError, RetryableAnswerError) as exc:
            retry(f"interrupted ({client.describe(exc)}); {_size(part)} bytes kept")
            continue
        except OSError as exc:
            raise DownloadError(f"{what}: cannot write {part}: {exc}") from exc
        size = part.stat().st_size
        if expected is not None and size < expected:
            retry(f"the connection ended at byte {size} of {expected}")
            continue
        problem = verify(part, remote, expected)
        if problem is None:
            break
        part.unlink(missing_ok=True)
        retry(f"{problem}: downloading it again")
    os.replace(part, target)
    return Fetched(target, target.stat().st_size, retries)


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _range_start(response: httpx.Response) -> int:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else -1


__all__ = [
    "DownloadError",
    "Fetched",
    "RemoteFile",
    "SourceUnavailableError",
    "fetch",
    "parse_multihash",
    "verify",
]
