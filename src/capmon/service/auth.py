"""Tokens and who may do what.

``/auth/token`` (OAuth2 password and refresh-token grants, RFC 6749) issues a signed JWT (HS256)
access token that expires after ``ServiceConfig.token_ttl_seconds`` and a refresh token that
expires after ``ServiceConfig.refresh_ttl_seconds``. Both name the user's identity (login and
row id) and credential stamp: a keyed digest of the stored password hash, whose random salt
changes with every password change and every (re-)creation of the login, so that such a change
revokes every token issued before, and a re-created login never revives an old token. Refresh
tokens are also recorded (``refresh_token`` table): each is used once and replaced by a new
one (rotation); using a spent one revokes its whole family (it was stolen, or replayed).

Each request looks the user up again (cached for a few seconds), so a removed user or a
changed role, site list or password takes effect at once. A token is accepted as
``Authorization: Bearer`` or, as Sen4CAP's client sends it, ``X-Auth-Token``.

Access rules, as Sen4CAP's: an ``admin`` reads and writes everything; an ``operator`` reads and
writes (uploads, runs) the sites it is bound to; a ``viewer`` reads the sites it is bound to. A
non-admin asking for a site it is not bound to gets 403 whether the site exists or not, so that
site names do not leak.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from capmon.catalog.models import Product, RefreshToken, Role, Site, User
from capmon.errors import NotFoundError
from capmon.service.errors import ForbiddenError, UnauthorizedError
from capmon.workspace import Workspace, atomic_write_bytes

SECRET_ENV = "CAPMON_SECRET_KEY"
SECRET_FILE = Path("service") / "secret.key"
ALGORITHM = "HS256"
USER_CACHE_SECONDS = 5.0
ACCESS, REFRESH = "access", "refresh"
"""Values of the ``typ`` claim: a refresh token is no bearer token, and the reverse."""


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
    refresh_token: str
    token_type: str = "bearer"


class InvalidGrantError(UnauthorizedError):
    """A login, password or refresh token that does not (or no longer) grant a token
    (OAuth2 ``invalid_grant``)."""


@dataclass(frozen=True)
class _Account:
    """What a token is checked against: the user's identity, stamp and rights."""

    user_id: int
    stamp: str
    principal: Principal


class TokenAuthority:
    """Issues and checks tokens, and resolves their users (with a short cache)."""

    def __init__(
        self, workspace: Workspace, secret: str, ttl_seconds: int, refresh_ttl_seconds: int
    ) -> None:
        self._workspace = workspace
        self._secret = secret
        self._ttl = ttl_seconds
        self._refresh_ttl = refresh_ttl_seconds
        self._cache: dict[str, tuple[float, _Account | None]] = {}
        self._lock = threading.Lock()

    def stamp(self, user: User) -> str:
        """The credential stamp of ``user``: changes with its password hash (new salt on each
        password change and creation)."""
        message = f"{user.id}\x00{user.login}\x00{user.password_hash}".encode()
        return hmac.new(self._secret.encode(), message, hashlib.sha256).hexdigest()[:32]

    def issue(self, login: str) -> IssuedToken:
        """An access token and a refresh token (of a new family) for the user ``login``;
        :class:`InvalidGrantError` when it does not exist."""
        with self._workspace.session() as session:
            user = session.scalar(select(User).where(User.login == login))
            if user is None:
                raise InvalidGrantError(f"no user named {login!r}")
            return self._new_tokens(session, user, secrets.token_hex(16))

    def refresh(self, refresh_token: str) -> IssuedToken:
        """New tokens for a valid refresh token, which is spent (rotation). A token spent
        before revokes its family; :class:`InvalidGrantError` for any refused token."""
        claims = self._claims(refresh_token, REFRESH, InvalidGrantError)
        jti = str(claims["jti"])
        now = dt.datetime.now(dt.UTC)
        with self._workspace.session() as session:
            user = session.scalar(select(User).where(User.login == str(claims["sub"])))
            if user is None or (user.id, self.stamp(user)) != (claims.get("uid"), claims["gen"]):
                raise InvalidGrantError(
                    "the refresh token was revoked (password changed or user removed)"
                )
            row = session.get(RefreshToken, jti)
            spent = session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.jti == jti,
                    RefreshToken.user_id == user.id,
                    RefreshToken.used_at.is_(None),
                )
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            if spent.rowcount == 1 and row is not None:  # type: ignore[attr-defined]
                session.execute(
                    delete(RefreshToken)
                    .where(RefreshToken.user_id == user.id, RefreshToken.expires_at < now)
                    .execution_options(synchronize_session=False)
                )
                return self._new_tokens(session, user, row.family)
            if row is not None:  # spent before: replayed, so whoever holds the family loses it
                session.execute(
                    delete(RefreshToken)
                    .where(RefreshToken.family == row.family)
                    .execution_options(synchronize_session=False)
                )
        raise InvalidGrantError("the refresh token was already used or revoked")

    def _new_tokens(self, session: Session, user: User, family: str) -> IssuedToken:
        identity = {"sub": user.login, "uid": user.id, "gen": self.stamp(user)}
        refresh_id = secrets.token_hex(16)
        issued = dt.datetime.now(dt.UTC)
        session.add(
            RefreshToken(
                jti=refresh_id,
                user_id=user.id,
                family=family,
                issued_at=issued,
                expires_at=issued + dt.timedelta(seconds=self._refresh_ttl),
            )
        )
        session.flush()
        now = dt.datetime.now(dt.UTC)  # after the write, which may wait for the database
        access = {
            **identity,
            "typ": ACCESS,
            "iat": now,
            "exp": now + dt.timedelta(seconds=self._ttl),
            "jti": secrets.token_hex(8),
        }
        refresh = {
            **identity,
            "typ": REFRESH,
            "iat": now,
            "exp": issued + dt.timedelta(seconds=self._refresh_ttl),
            "jti": refresh_id,
        }
        return IssuedToken(
            jwt.encode(access, self._secret, algorithm=ALGORITHM),
            self._ttl,
            jwt.encode(refresh, self._secret, algorithm=ALGORITHM),
        )

    def principal(self, token: str) -> Principal:
        """The user of a valid access token; :class:`UnauthorizedError` for an expired,
        forged or revoked one."""
        claims = self._claims(token, ACCESS, UnauthorizedError)
        account = self._lookup(str(claims["sub"]))
        if account is None:
            raise UnauthorizedError("the token's user no longer exists")
        if account.user_id != claims.get("uid") or account.stamp != claims.get("gen"):
            raise UnauthorizedError(
                "the token was revoked (the password changed or the login was re-created): "
                "log in again"
            )
        return account.principal

    def _claims(self, token: str, kind: str, error: type[UnauthorizedError]) -> dict[str, object]:
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub", "jti", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise error(f"the {kind} token has expired: log in again at /auth/token") from exc
        except jwt.InvalidTokenError as exc:
            raise error(f"invalid {kind} token") from exc
        if claims.get("typ") != kind:
            raise error(f"invalid {kind} token (a {claims.get('typ')} token)")
        return claims

    def forget(self, login: str | None = None) -> None:
        """Drop cached users (one, or all), e.g. after a change of role or sites."""
        with self._lock:
            if login is None:
                self._cache.clear()
            else:
                self._cache.pop(login, None)

    def _lookup(self, login: str) -> _Account | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(login)
        if cached is not None and now - cached[0] < USER_CACHE_SECONDS:
            return cached[1]
        with self._workspace.session() as session:
            user = session.scalar(select(User).where(User.login == login))
            account = (
                _Account(
                    user.id,
                    self.stamp(user),
                    Principal(user.login, Role(user.role), frozenset(user.sites or ())),
                )
                if user is not None
                else None
            )
        with self._lock:
            self._cache[login] = (now, account)
        return account


_bearer = HTTPBearer(auto_error=False, description="Token from /auth/token")
_x_auth_token = APIKeyHeader(
    name="X-Auth-Token",
    auto_error=False,
    description="The same token, as Sen4CAP's client sends it (from /auth/login)",
)


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_auth_token: Annotated[str | None, Depends(_x_auth_token)],
) -> Principal:
    """The authenticated user of the request (401 without a valid token, given as a bearer
    token or in ``X-Auth-Token``)."""
    from capmon.service.state import service_state

    if credentials is not None and credentials.scheme.lower() == "bearer":
        token = credentials.credentials
    elif x_auth_token:
        token = x_auth_token
    else:
        raise UnauthorizedError("a bearer token is required: POST your login to /auth/token")
    return service_state(request).tokens.principal(token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]

PUBLISHED_PRODUCT_PREFIX = "s4c_"
"""Anonymous clients may read processor products (``s4c_*``) of published sites: never the
input products, MDBs or declarations."""


def optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_auth_token: Annotated[str | None, Depends(_x_auth_token)],
) -> Principal | None:
    """The user of the request, or None when it carries no token (a wrong token is 401)."""
    if credentials is None and not x_auth_token:
        return None
    return current_principal(request, credentials, x_auth_token)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def published_reader(workspace: Workspace, item_id: str) -> Principal:
    """An anonymous reader of the STAC item ``item_id`` (``<site short name>.<product>``) when
    it is a processor product of a published site; else the 401 of a request without a token
    (the same whether the item exists or not)."""
    short, _sep, name = item_id.partition(".")
    with workspace.session() as session:
        site_id = session.scalar(
            select(Site.id)
            .join(Product, Product.site_id == Site.id)
            .where(
                Site.short_name == short,
                Site.published.is_(True),
                Product.name == name,
                Product.product_type.startswith(PUBLISHED_PRODUCT_PREFIX),
            )
        )
    if site_id is None:
        raise UnauthorizedError("a bearer token is required: POST your login to /auth/token")
    return Principal("anonymous", Role.VIEWER, frozenset({site_id}))


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
