"""A minimal STAC API on loopback for the acquisition tests, with fault injection.

``POST /search`` (collections, bbox, datetime interval, limit; pages through ``next`` links
that POST a ``token`` merged into the body), ``GET /files/<name>`` (the asset bytes, with
``Range: bytes=N-`` answered 206) and ``POST /token`` (OAuth2 password grant). Faults, each
keyed by file name: ``cut`` (first answer announces the whole length, sends half and closes
the connection), ``corrupt`` (first answer has the right length and wrong bytes), ``limited``
(the first N requests answer 429 with ``Retry-After``); ``search_limited`` (429s on search).
``token`` makes every request need ``Authorization: Bearer <token>``. Every request is logged.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import shapely.geometry


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None
    at: float


@dataclass
class Faults:
    cut: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    limited: dict[str, int] = field(default_factory=dict)
    search_limited: int = 0
    retry_after: str = "1"
    token: str | None = None
    oauth: tuple[str, str] | None = None
    """(user, password) the token endpoint accepts; it issues ``access-<n>`` tokens."""
    expire_first_token: bool = False


class StacServer:
    """The server; use :meth:`running` (a context manager) to start and stop it."""

    def __init__(
        self,
        items: list[dict[str, Any]],
        files: Mapping[str, bytes],
        faults: Faults | None = None,
    ) -> None:
        self.items = items
        self.files = dict(files)
        self.faults = faults or Faults()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._served: set[str] = set()
        self._tokens_issued = 0
        self._valid_tokens: set[str] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def file_url(self, name: str) -> str:
        return f"{self.url}/files/{name}"

    @contextmanager
    def running(self) -> Iterator[StacServer]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)

    def file_requests(self, name: str | None = None) -> list[Request]:
        return [
            r for r in self.requests
            if r.path.startswith("/files/") and (name is None or r.path == f"/files/{name}")
        ]  # fmt: skip

    # -- handling ----------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, payload: object) -> None:
                self._send(
                    status, json.dumps(payload).encode(), {"Content-Type": "application/json"}
                )

            def _log(self) -> None:
                with server._lock:
                    server.requests.append(
                        Request(
                            self.command,
                            self.path,
                            self.headers.get("Range"),
                            self.headers.get("Authorization"),
                            time.monotonic(),
                        )
                    )

            def _authorised(self) -> bool:
                faults = server.faults
                given = self.headers.get("Authorization")
                if faults.oauth is not None:
                    token = (given or "").removeprefix("Bearer ")
                    with server._lock:
                        valid = token in server._valid_tokens
                    if not valid:
                        self._json(401, {"error": "invalid token"})
                        return False
                elif faults.token is not None and given != f"Bearer {faults.token}":
                    self._json(401, {"error": "unauthorised"})
                    return False
                return True

            def do_POST(self) -> None:
                self._log()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path == "/token":
                    self._token(raw)
                    return
                if not self._authorised():
                    return
                if self.path != "/search":
                    self._json(404, {"error": "not found"})
                    return
                with server._lock:
                    limited = server.faults.search_limited > 0
                    if limited:
                        server.faults.search_limited -= 1
                if limited:
                    self._send(429, b"slow down", {"Retry-After": server.faults.retry_after})
                    return
                self._search(json.loads(raw or b"{}"))

            def _token(self, raw: bytes) -> None:
                from urllib.parse import parse_qs

                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                expected = server.faults.oauth
                if expected is None or (form.get("username"), form.get("password")) != expected:
                    self._json(401, {"error": "invalid_grant"})
                    return
                with server._lock:
                    server._tokens_issued += 1
                    token = f"access-{server._tokens_issued}"
                    if not (server.faults.expire_first_token and server._tokens_issued == 1):
                        server._valid_tokens.add(token)
                self._json(200, {"access_token": token, "expires_in": 600})

            def _search(self, body: dict[str, Any]) -> None:
                collections = set(body.get("collections") or [])
                bbox = body.get("bbox")
                start, _, end = str(body.get("datetime", "../..")).partition("/")
                limit = int(body.get("limit", 10))
                offset = int(body.get("token") or 0)
                box = shapely.geometry.box(*bbox) if bbox else None
                matching = []
                for item in server.items:
                    if collections and item.get("collection") not in collections:
                        continue
                    if box is not None and not shapely.geometry.shape(item["geometry"]).intersects(
                        box
                    ):
                        continue
                    when = _parse(item["properties"]["datetime"])
                    if start not in ("", "..") and when < _parse(start):
                        continue
                    if end not in ("", "..") and when > _parse(end):
                        continue
                    matching.append(item)
                page = matching[offset : offset + limit]
                links = []
                if offset + limit < len(matching):
                    links.append(
                        {
                            "rel": "next",
                            "href": f"{server.url}/search",
                            "method": "POST",
                            "body": {"token": str(offset + limit)},
                            "merge": True,
                        }
                    )
                self._json(200, {"type": "FeatureCollection", "features": page, "links": links})

            def do_GET(self) -> None:
                self._log()
                if not self._authorised():
                    return
                if not self.path.startswith("/files/"):
                    self._json(200, {"type": "Catalog", "id": "loop", "links": []})
                    return
                name = self.path.removeprefix("/files/").split("?", 1)[0]
                payload = server.files.get(name)
                if payload is None:
                    self._json(404, {"error": f"no file {name}"})
                    return
                faults = server.faults
                with server._lock:
                    first = name not in server._served
                    server._served.add(name)
                    remaining = faults.limited.get(name, 0)
                    if remaining:
                        faults.limited[name] = remaining - 1
                if remaining:
                    self._send(429, b"too many requests", {"Retry-After": faults.retry_after})
                    return
                start = 0
                status = 200
                headers = {"Content-Type": "image/tiff"}
                requested = self.headers.get("Range")
                if requested and requested.startswith("bytes="):
                    start = int(requested.removeprefix("bytes=").split("-", 1)[0])
                    if start >= len(payload):
                        self._send(416, b"", {"Content-Range": f"bytes */{len(payload)}"})
                        return
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(payload) - 1}/{len(payload)}"
                body = payload[start:]
                if first and name in faults.cut:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if first and name in faults.corrupt:
                    body = bytes(reversed(body))
                self._send(status, body, headers)

        return Handler


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on (a provider that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
