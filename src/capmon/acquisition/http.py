"""HTTP to a data source: authentication, retries with exponential backoff, rate limits, and
credentials kept out of every message and log line.

* Transport errors (refused or cut connections, timeouts) and 5xx answers are retried up to
  the source's ``max_retries`` with exponential backoff (``backoff_seconds * 2**n``, capped at
  ``max_backoff_seconds``, with jitter); then :class:`SourceUnavailableError` names the source.
* 429 (and 503 with ``Retry-After``) answers slow the whole source down instead of failing:
  every thread of the source waits ``Retry-After`` (seconds or an HTTP date; the backoff when
  absent) before its next request. Such waits do not count as retries; a request answered
  429 ``max_rate_limit_waits`` times in a row gives the source up for this run.
* Authentication: a bearer token, HTTP basic, or an OAuth2 password grant on ``token_url``
  (the access token is renewed once on a 401).
* :func:`redact` removes the credentials in use, the ``user:password@`` of URLs and the values
  of signature/token query parameters (pre-signed URLs) from a text; a filter on the ``httpx``
  and ``httpcore`` loggers applies it to their request lines.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from capmon import __version__
from capmon.acquisition.sources import Credentials, DataSource
from capmon.errors import CapmonError

logger = logging.getLogger(__name__)

_SENSITIVE_QUERY = frozenset(
    {
        "token", "access_token", "id_token", "refresh_token", "sig", "signature", "key",
        "apikey", "api_key", "password", "secret", "x-amz-signature", "x-amz-credential",
        "x-amz-security-token", "x-goog-signature", "x-goog-credential", "se", "skoid",
        "sktid", "skt", "ske", "sks", "skv",
    }
)  # fmt: skip
_QUERY_PARAMETER = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s\"']*)")
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s\"']+@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
MASK = "***"


class SourceUnavailableError(CapmonError):
    """A data source cannot be used now: unreachable, failing, refusing the credentials, or
    rate-limiting for too long. The message names the source and never holds credentials."""


def register_secrets(values: Iterable[str]) -> None:
    """Values that :func:`redact` always removes (credentials in use by this process)."""
    with _SECRETS_LOCK:
        _SECRETS.update(v for v in values if v and len(v) >= 3)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without credentials (see the module docstring)."""
    with _SECRETS_LOCK:
        known = sorted(_SECRETS | {s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)

    def query(match: re.Match[str]) -> str:
        if match.group(2).lower() in _SENSITIVE_QUERY:
            return f"{match.group(1)}{match.group(2)}={MASK}"
        return match.group(0)

    return _QUERY_PARAMETER.sub(query, text)


class _RedactingFilter(logging.Filter):
    """Rewrites records of HTTP client loggers without credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        record.msg = redact(message)
        record.args = None
        return True


_FILTER = _RedactingFilter()
for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if _FILTER not in _logger.filters:
        _logger.addFilter(_FILTER)


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` of ``response`` in seconds (number or HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RateGate:
    """One source's pause after a rate-limit answer, shared by its threads."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._lock = threading.Lock()
        self._resume_at = 0.0
        self._sleep = sleep
        self.waits = 0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)
            self.waits += 1

    def wait(self) -> None:
        while True:
            with self._lock:
                remaining = self._resume_at - time.monotonic()
            if remaining <= 0:
                return
            self._sleep(remaining)


class SourceClient:
    """An HTTP client for one data source (thread-safe; one per source and run)."""

    def __init__(
        self,
        source: DataSource,
        credentials: Credentials,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.source = source
        self._credentials = credentials
        self._secrets = credentials.secrets()
        register_secrets(self._secrets)
        self._sleep = sleep
        self.gate = RateGate(sleep)
        self._token_lock = threading.Lock()
        self._access_token: str | None = None
        limits = httpx.Limits(max_connections=max(source.concurrency, 1) + 2)
        self._client = httpx.Client(
            timeout=httpx.Timeout(source.timeout_seconds or None),
            follow_redirects=True,
            headers={"User-Agent": f"capmon/{__version__}"},
            limits=limits,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SourceClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- messages ------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def describe(self, exc: BaseException) -> str:
        """A one-line description of ``exc`` without credentials."""
        text = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.HTTPError) and not isinstance(exc, httpx.HTTPStatusError):
            text = f"{type(exc).__name__}: {text}"
        return self.redact(text)

    # -- backoff -------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (1-based): exponential, capped, jittered."""
        base = self.source.backoff_seconds * (2 ** max(attempt - 1, 0))
        return float(min(self.source.max_backoff_seconds, base) * random.uniform(0.75, 1.0))

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    def rate_limited(self, response: httpx.Response, waits: int) -> None:
        """Slow the source down after a 429/503 (see the module docstring); ``waits`` counts
        the rate-limit answers this request got in a row."""
        if waits > self.source.max_rate_limit_waits:
            raise SourceUnavailableError(
                f"source {self.source.name} kept answering HTTP {response.status_code} (rate "
                f"limit) to one request {waits} times; try again later"
            )
        wait = retry_after(response)
        if wait is None:
            wait = self.backoff(waits)
        self.gate.hold(min(wait, self.source.max_backoff_seconds))
        logger.info(
            "source %s answered HTTP %s: waiting %.1f s before the next request",
            self.source.name,
            response.status_code,
            wait,
        )

    # -- authentication ------------------------------------------------------------------

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        credentials = self._credentials
        if self.source.auth == "bearer" and credentials.token:
            headers["Authorization"] = f"Bearer {credentials.token}"
        elif self.source.auth == "oauth":
            headers["Authorization"] = f"Bearer {self._oauth_token()}"
        return headers

    def _auth(self) -> httpx.BasicAuth | None:
        credentials = self._credentials
        if self.source.auth == "basic" and credentials.user and credentials.password:
            return httpx.BasicAuth(credentials.user, credentials.password)
        return None

    def _oauth_token(self, renew: bool = False) -> str:
        with self._token_lock:
            if self._access_token is not None and not renew:
                return self._access_token
            credentials = self._credentials
            if credentials.token and not (credentials.user and credentials.password):
                self._access_token = credentials.token
                return self._access_token
            assert self.source.token_url is not None
            form = {
                "grant_type": "password",
                "username": credentials.user or "",
                "password": credentials.password or "",
                "client_id": self.source.client_id or "",
            }
            try:
                response = self._client.post(self.source.token_url, data=form)
            except httpx.HTTPError as exc:
                raise SourceUnavailableError(
                    f"source {self.source.name}: cannot reach its token service: "
                    f"{self.describe(exc)}"
                ) from None
            if response.status_code != 200:
                raise SourceUnavailableError(
                    f"source {self.source.name}: its token service refused the credentials of "
                    f"{self.source.env_prefix}USER/PASSWORD (HTTP {response.status_code})"
                )
            try:
                token = response.json()["access_token"]
            except (ValueError, KeyError, TypeError):
                raise SourceUnavailableError(
                    f"source {self.source.name}: its token service gave no access_token"
                ) from None
            if not isinstance(token, str) or not token:
                raise SourceUnavailableError(f"source {self.source.name}: empty access token")
            register_secrets([token])
            self._secrets.append(token)
            self._access_token = token
            return token

    # -- requests ------------------------------------------------------------------------

    @contextmanager
    def stream(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        """One request (after the rate gate), streamed; a 401 renews an OAuth token once."""
        self.gate.wait()
        renewed = False
        while True:
            request = self._client.build_request(
                method, url, headers=self._headers(headers), **kwargs
            )
            response = self._client.send(request, stream=True, auth=self._auth())
            if response.status_code == 401 and self.source.auth == "oauth" and not renewed:
                response.close()
                self._oauth_token(renew=True)
                renewed = True
                continue
            try:
                yield response
            finally:
                response.close()
            return

    def request_json(
        self, method: str, url: str, *, json_body: Mapping[str, Any] | None = None
    ) -> Any:
        """The JSON answer to a request, with retries, backoff and rate-limit waits."""
        attempt = 0
        waits = 0
        what = f"source {self.source.name} ({self.redact(url)})"
        while True:
            try:
                with self.stream(method, url, json=json_body) as response:
                    status = response.status_code
                    if status == 429 or (status == 503 and "Retry-After" in response.headers):
                        waits += 1
                        self.rate_limited(response, waits)
                        continue
                    waits = 0
                    body = response.read()
                    if status >= 500:
                        raise RetryableAnswerError(f"HTTP {status}")
                    if status in (401, 403):
                        raise SourceUnavailableError(
                            f"{what} refused the request (HTTP {status}): check the "
                            f"credentials ({self.source.env_prefix}TOKEN, _USER, _PASSWORD)"
                        )
                    if status >= 400:
                        snippet = self.redact(body[:300].decode("utf-8", "replace"))
                        raise SourceUnavailableError(f"{what} answered HTTP {status}: {snippet}")
                    try:
                        return response.json()
                    except ValueError:
                        raise SourceUnavailableError(
                            f"{what} answered something else than JSON"
                        ) from None
            except (httpx.TransportError, RetryableAnswerError) as exc:
                attempt += 1
                if attempt > self.source.max_retries:
                    raise SourceUnavailableError(
                        f"{what} is unreachable or failing after {attempt} attempt(s): "
                        f"{self.describe(exc)}"
                    ) from None
                wait = self.backoff(attempt)
                logger.warning(
                    "%s: %s; retry %d/%d in %.1f s",
                    what,
                    self.describe(exc),
                    attempt,
                    self.source.max_retries,
                    wait,
                )
                self.sleep(wait)


class RetryableAnswerError(Exception):
    """A failed attempt worth retrying (5xx answer)."""
