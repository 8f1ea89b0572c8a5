"""Data sources: the STAC APIs capmon searches and downloads from, and their credentials.

A source is a STAC API endpoint with the collections to search in it, each of one *kind* that
tells capmon how to lay its items out and read them:

* ``s2_l2a``: Sentinel-2 L2A (bands B02..B12 and the SCL mask, read by the STAC reader);
* ``landsat_l2``: Landsat Collection 2 Level-2 (blue..swir22 and QA_PIXEL);
* ``s1_rtc``: Sentinel-1 analysis-ready backscatter with one asset per polarisation (γ⁰ RTC
  linear power unless the collection states another ``convention``).

Built-in sources (used when the workspace has no ``sources.toml`` and no file is given):
``earth-search`` (Element 84, https://earth-search.aws.element84.com/v1, no credentials,
``sentinel-2-l2a``) and ``cdse`` (Copernicus Data Space Ecosystem,
https://stac.dataspace.copernicus.eu/v1, ``sentinel-2-l2a``, OAuth2 password grant on the
CDSE identity service). A ``sources.toml`` (``<home>/sources.toml`` or ``--sources FILE``) adds
sources or overrides built-in ones field by field, one ``[sources.<name>]`` table each::

    [sources.cdse]
    concurrency = 4
    quota_products_per_day = 200

    [sources.my-rtc]
    url = "https://stac.example.org"
    [[sources.my-rtc.collections]]
    id = "s1-rtc"
    kind = "s1_rtc"
    convention = "gamma0_linear"

Credentials never live in the file (a ``token``/``password`` key is refused): they come from
the environment, ``CAPMON_SOURCE_<NAME>_TOKEN`` (bearer) or ``CAPMON_SOURCE_<NAME>_USER`` and
``CAPMON_SOURCE_<NAME>_PASSWORD`` (basic or OAuth2 password grant), ``<NAME>`` being the source
name in upper case with ``-`` as ``_``. A source whose credentials are missing is skipped, and
the report says which variables to set.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from capmon.errors import InputError, NotFoundError

KINDS = ("s2_l2a", "landsat_l2", "s1_rtc")
AUTH_MODES = ("none", "bearer", "basic", "oauth")
CONVENTIONS = (
    "gamma0_linear",
    "gamma0_db",
    "gamma0_amplitude",
    "sigma0_linear",
    "sigma0_db",
    "sigma0_amplitude",
)
SOURCES_FILE = "sources.toml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SECRET_KEYS = frozenset({"token", "password", "secret", "user", "username", "api_key", "apikey"})

Kind = Literal["s2_l2a", "landsat_l2", "s1_rtc"]
Auth = Literal["none", "bearer", "basic", "oauth"]


@dataclass(frozen=True)
class CollectionConfig:
    """One collection of a source: its id at the provider, its kind, and optional filters.

    ``assets`` lists the asset keys to download (empty: the bands and masks capmon needs,
    found from the assets' band metadata); ``tiles`` / ``orbits`` keep only those MGRS tiles
    or relative orbits (empty: every item meeting the AOI; Sentinel-2 items are always limited
    to the site's tiles); ``convention`` states the values of ``s1_rtc`` items.
    """

    id: str
    kind: Kind
    assets: tuple[str, ...] = ()
    tiles: tuple[str, ...] = ()
    orbits: tuple[int, ...] = ()
    convention: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(
                f"collection {self.id!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}"
            )
        if self.convention is not None and self.convention not in CONVENTIONS:
            raise InputError(
                f"collection {self.id!r}: convention {self.convention!r} is not one of "
                f"{', '.join(CONVENTIONS)}"
            )
        if self.convention is not None and self.kind != "s1_rtc":
            raise InputError(f"collection {self.id!r}: a convention is for s1_rtc collections")

    @property
    def backscatter_convention(self) -> str:
        """The convention of the values of an ``s1_rtc`` collection (γ⁰ power by default, what
        RTC providers deliver)."""
        return self.convention or "gamma0_linear"


@dataclass(frozen=True, repr=False)
class Credentials:
    """What a source authenticates with; never printed (its repr hides the values)."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    def secrets(self) -> list[str]:
        """The values to redact from every message."""
        return [v for v in (self.token, self.user, self.password) if v]

    def __repr__(self) -> str:
        given = [k for k in ("token", "user", "password") if getattr(self, k)]
        return f"Credentials({', '.join(given) or 'none'} set)"


@dataclass(frozen=True)
class DataSource:
    """A STAC API and how to use it (see the module docstring)."""

    name: str
    url: str
    collections: tuple[CollectionConfig, ...]
    title: str = ""
    enabled: bool = True
    auth: Auth = "none"
    token_url: str | None = None
    client_id: str | None = None
    concurrency: int = 4
    quota_products_per_day: int | None = None
    quota_gb_per_day: float | None = None
    max_retries: int = 5
    max_rate_limit_waits: int = 30
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0
    timeout_seconds: float = 60.0
    page_size: int = 100
    max_pages: int = 200

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InputError(
                f"source name {self.name!r} must be lower case letters, digits, '-' or '_'"
            )
        if not self.url.startswith(("http://", "https://")):
            raise InputError(f"source {self.name}: url {self.url!r} must be http(s)")
        if self.auth not in AUTH_MODES:
            raise InputError(
                f"source {self.name}: auth {self.auth!r} is not one of {', '.join(AUTH_MODES)}"
            )
        if self.auth == "oauth" and not self.token_url:
            raise InputError(f"source {self.name}: auth 'oauth' needs a token_url")
        for label in ("concurrency", "max_retries", "max_rate_limit_waits", "page_size"):
            value = getattr(self, label)
            if not isinstance(value, int) or value < (0 if label == "max_retries" else 1):
                raise InputError(f"source {self.name}: {label} must be a positive integer")
        for label in ("backoff_seconds", "max_backoff_seconds", "timeout_seconds"):
            value = getattr(self, label)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise InputError(f"source {self.name}: {label} must be a number >= 0")
        if self.quota_products_per_day is not None and self.quota_products_per_day < 0:
            raise InputError(f"source {self.name}: quota_products_per_day must be >= 0")
        if self.quota_gb_per_day is not None and self.quota_gb_per_day < 0:
            raise InputError(f"source {self.name}: quota_gb_per_day must be >= 0")

    @property
    def env_prefix(self) -> str:
        """``CAPMON_SOURCE_<NAME>_``: the prefix of this source's credential variables."""
        return f"CAPMON_SOURCE_{self.name.upper().replace('-', '_')}_"

    def credentials(self, environ: Mapping[str, str] | None = None) -> Credentials:
        """The credentials of the environment (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        prefix = self.env_prefix
        return Credentials(
            token=env.get(prefix + "TOKEN") or None,
            user=env.get(prefix + "USER") or None,
            password=env.get(prefix + "PASSWORD") or None,
        )

    def missing_credentials(self, credentials: Credentials) -> str | None:
        """What is missing for this source's authentication (None when nothing is)."""
        prefix = self.env_prefix
        if self.auth == "bearer" and not credentials.token:
            return f"set {prefix}TOKEN"
        if self.auth in ("basic", "oauth") and not (credentials.user and credentials.password):
            if self.auth == "oauth" and credentials.token:
                return None  # a ready access token
            return f"set {prefix}USER and {prefix}PASSWORD"
        return None


BUILTIN_SOURCES: tuple[DataSource, ...] = (
    DataSource(
        name="earth-search",
        title="Earth Search by Element 84 (AWS open data)",
        url="https://earth-search.aws.element84.com/v1",
        collections=(CollectionConfig("sentinel-2-l2a", "s2_l2a"),),
    ),
    DataSource(
        name="cdse",
        title="Copernicus Data Space Ecosystem",
        url="https://stac.dataspace.copernicus.eu/v1",
        collections=(CollectionConfig("sentinel-2-l2a", "s2_l2a"),),
        auth="oauth",
        token_url=(
            "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/"
            "openid-connect/token"
        ),
        client_id="cdse-public",
        concurrency=4,
    ),
)
"""capmon's defaults (see the module docstring)."""


def workspace_sources_file(home: Path) -> Path:
    """Where a workspace keeps its sources configuration."""
    return home / SOURCES_FILE


def load_sources(
    home: Path | None = None, file: str | Path | None = None, *, builtin: bool = True
) -> list[DataSource] | None:
    """The configured sources, in order (built-ins first, then the file's new ones).

    ``file`` or else ``<home>/sources.toml`` is read when it exists; without either, the
    built-in sources when ``builtin``, else None (acquisition not configured).
    """
    path: Path | None = None
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise NotFoundError(f"no sources file at {path}")
    elif home is not None and workspace_sources_file(home).is_file():
        path = workspace_sources_file(home)
    if path is None:
        return list(BUILTIN_SOURCES) if builtin else None
    return parse_sources(path)


def parse_sources(path: Path) -> list[DataSource]:
    """The built-in sources overridden and extended by the TOML file at ``path``."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the sources file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"the sources file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(document) - {"sources"})
    if unknown:
        raise InputError(f"{path}: unknown top-level key(s) {', '.join(unknown)} (use [sources.X])")
    tables = document.get("sources", {})
    if not isinstance(tables, dict):
        raise InputError(f"{path}: 'sources' must be a table of [sources.<name>] tables")
    result = {source.name: source for source in BUILTIN_SOURCES}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise InputError(f"{path}: [sources.{name}] must be a table")
        result[name] = _source(path, name, table, result.get(name))
    return list(result.values())


def _source(path: Path, name: str, table: Mapping[str, Any], base: DataSource | None) -> DataSource:
    where = f"{path} [sources.{name}]"
    secrets = sorted(k for k in table if k.lower() in _SECRET_KEYS)
    if secrets:
        raise InputError(
            f"{where}: {', '.join(secrets)} must not be written in the sources file; "
            f"credentials come from the environment (CAPMON_SOURCE_{name.upper().replace('-', '_')}"
            "_TOKEN, _USER, _PASSWORD)"
        )
    allowed = {f.name for f in fields(DataSource)} - {"name"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
        )
    values: dict[str, Any] = dict(table)
    if "collections" in values:
        values["collections"] = _collections(where, values["collections"])
    try:
        if base is not None:
            return replace(base, **values)
        if "url" not in values or "collections" not in values:
            raise InputError(f"{where}: a new source needs a url and collections")
        return DataSource(name=name, **values)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from exc


def _collections(where: str, value: object) -> tuple[CollectionConfig, ...]:
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: collections must be a non-empty list of tables")
    result = []
    allowed = {f.name for f in fields(CollectionConfig)}
    for index, entry in enumerate(value):
        label = f"{where} collection {index + 1}"
        if not isinstance(entry, dict) or "id" not in entry or "kind" not in entry:
            raise InputError(f"{label}: needs an id and a kind ({', '.join(KINDS)})")
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise InputError(f"{label}: unknown key(s) {', '.join(unknown)}")
        values = dict(entry)
        for key in ("assets", "tiles"):
            if key in values:
                values[key] = tuple(str(v) for v in _list(label, key, values[key]))
        if "orbits" in values:
            try:
                values["orbits"] = tuple(
                    int(str(v)) for v in _list(label, "orbits", values["orbits"])
                )
            except (TypeError, ValueError) as exc:
                raise InputError(f"{label}: orbits must be integers") from exc
        result.append(CollectionConfig(**values))
    return tuple(result)


def _list(label: str, key: str, value: object) -> Sequence[object]:
    if not isinstance(value, list):
        raise InputError(f"{label}: {key} must be a list")
    return value


def select_sources(
    sources: Sequence[DataSource], names: Sequence[str] | None, collections: Sequence[str] | None
) -> list[DataSource]:
    """The enabled sources (or those named, enabled or not), each with only the collections
    whose id or kind is in ``collections`` (when given); sources left without any are dropped."""
    known = {source.name: source for source in sources}
    if names:
        missing = [n for n in names if n not in known]
        if missing:
            raise NotFoundError(
                f"no data source {', '.join(missing)} (sources: {', '.join(known) or 'none'})"
            )
        chosen = [known[n] for n in names]
    else:
        chosen = [s for s in sources if s.enabled]
    if not collections:
        return chosen
    wanted = set(collections)
    result = []
    for source in chosen:
        kept = tuple(c for c in source.collections if c.id in wanted or c.kind in wanted)
        if kept:
            result.append(replace(source, collections=kept))
    if not result:
        offered = sorted({c.id for s in chosen for c in s.collections} | set(KINDS))
        raise NotFoundError(
            f"no source offers collection(s) {', '.join(collections)} (known: {', '.join(offered)})"
        )
    return result
