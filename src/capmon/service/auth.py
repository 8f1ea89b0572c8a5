"""Bearer tokens and who may do what.

``/auth/token`` (OAuth2 password flow) issues a signed JWT (HS256) that names the user and
expires after ``ServiceConfig.token_ttl_seconds``. Each request looks the user up again (cached
for a few seconds), so a removed user or a changed role or site list takes effect at once.

Access rules, as Sen4CAP's: an ``admin`` reads and writes everything; an ``operator`` reads and
writes (uploads, runs) the sites it is bound to; a ``viewer`` reads the sites it is bound to. A
non-admin asking for a site it is not bound to gets 403 whether the site exists or not, so that
site names do not leak.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from capmon.catalog.models import Role, Site, User
from capmon.errors import NotFoundError
from capmon.service.errors import ForbiddenError, UnauthorizedError
from capmon.workspace import Workspace, atomic_write_bytes

SECRET_ENV = "CAPMON_SECRET_KEY"
SECRET_FILE = Path("service") / "secret.key"
ALGORITHM = "HS256"
USER_CACHE_SECONDS = 5.0


def load_secret(workspace: Workspace, configured: str | None) -> str:
    """The token-signing key: configured, ``$CAPMON_SECRET_KEY``, or a key file in the workspace
    (created with mode 0600 on first use)."""
    if configured:
        return configured
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    path = workspace.path(SECRET_FILE)
    if not path.exists():
        atomic_write_bytes(path, secrets.token_urlsafe(48).encode("ascii"))
        path.chmod(0o600)
    return path.read_text(encoding="ascii").strip()


@dataclass(frozen=True)
class Principal:
    """The user a request acts for."""

    login: str
    role: Role
    site_ids: frozenset[int]

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def can_read(self, site_id: int) -> bool:
        return self.is_admin or site_id in self.site_ids

    def can_write(self, site_id: int) -> bool:
        return self.is_admin or (self.role is Role.OPERATOR and site_id in self.site_ids)


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    token_type: str = "bearer"


class TokenAuthority:
    """Issues and checks tokens, and resolves their users (with a short cache)."""

    def __init__(self, workspace: Workspace, secret: str, ttl_seconds: int) -> None:
        self._workspace = workspace
        self._secret = secret
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def issue(self, login: str) -> IssuedToken:
        now = dt.datetime.now(dt.UTC)
        claims = {
            "sub": login,
            "iat": now,
            "exp": now + dt.timedelta(seconds=self._ttl),
            "jti": secrets.token_hex(8),
        }
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), self._ttl)

    def principal(self, token: str) -> Principal:
        """The user of a valid token; :class:`UnauthorizedError` for an expired or forged one."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError(
                "the token has expired: ask for a new one at /auth/token"
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise UnauthorizedError("invalid token") from exc
        principal = self._lookup(str(claims["sub"]))
        if principal is None:
            raise UnauthorizedError("the token's user no longer exists")
        return principal

    def forget(self, login: str | None = None) -> None:
        """Drop cached users (one, or all), e.g. after a change of role or sites."""
        with self._lock:
            if login is None:
                self._cache.clear()
            else:
                self._cache.pop(login, None)

    def _lookup(self, login: str) -> Principal | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(login)
        if cached is not None and now - cached[0] < USER_CACHE_SECONDS:
            return cached[1]
        with self._workspace.session() as session:
            user = session.scalar(select(User).where(User.login == login))
            principal = (
                Principal(user.login, Role(user.role), frozenset(user.sites or ()))
                if user is not None
                else None
            )
        with self._lock:
            self._cache[login] = (now, principal)
        return principal


_bearer = HTTPBearer(auto_error=False, description="Token from /auth/token")


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated user of the request (401 without a valid bearer token)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("a bearer token is required: POST your login to /auth/token")
    from capmon.service.state import service_state

    return service_state(request).tokens.principal(credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise ForbiddenError("this needs the admin role")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


def site_for(
    workspace: Workspace, principal: Principal, site_name: str, *, write: bool = False
) -> Site:
    """The site ``site_name`` when the principal may read it (or write, with ``write``).

    Non-admins get :class:`ForbiddenError` for sites they are not bound to, existing or not."""
    with workspace.session() as session:
        site = session.scalar(select(Site).where(Site.name == site_name))
    if site is None:
        if principal.is_admin:
            raise NotFoundError(f"no site named {site_name!r}")
        raise ForbiddenError(f"you have no access to site {site_name!r}")
    allowed = principal.can_write(site.id) if write else principal.can_read(site.id)
    if not allowed:
        if principal.can_read(site.id):
            raise ForbiddenError(
                f"your role ({principal.role.value}) cannot change site {site_name!r}"
            )
        raise ForbiddenError(f"you have no access to site {site_name!r}")
    return site


def readable_site(request: Request, site: str, principal: CurrentPrincipal) -> Site:
    """Dependency for routes with a ``{site}`` path or query parameter: read access."""
    from capmon.service.state import service_state

    return site_for(service_state(request).workspace, principal, site)


def writable_site(request: Request, site: str, principal: CurrentPrincipal) -> Site:
    """Dependency for routes with a ``{site}`` parameter that change it: operator or admin."""
    from capmon.service.state import service_state

    return site_for(service_state(request).workspace, principal, site, write=True)


ReadableSite = Annotated[Site, Depends(readable_site)]
WritableSite = Annotated[Site, Depends(writable_site)]


def check_site_id(principal: Principal, site_id: int | None, *, write: bool = False) -> None:
    """For objects found by id (jobs, products): 403 unless the principal may see their site.

    Objects without a site are admin-only."""
    if principal.is_admin:
        return
    if site_id is None:
        raise ForbiddenError("only admins can see this")
    allowed = principal.can_write(site_id) if write else principal.can_read(site_id)
    if not allowed:
        raise ForbiddenError("you have no access to this site's data")
