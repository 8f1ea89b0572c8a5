"""Users of the service: login, role, the sites they may see, and a password hashed with scrypt.

Roles follow Sen4CAP's: ``admin`` sees and does everything; ``operator`` runs processors and
uploads files on its sites; ``viewer`` reads its sites. Passwords are stored as
``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (RFC 7914, standard library); the clear text is never
stored or logged.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from capmon.catalog.models import RefreshToken, Role, Site, User
from capmon.errors import ConflictError, InputError, NotFoundError
from capmon.workspace import Workspace

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD_LENGTH = 10
_LOGIN = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` in capmon's text format."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest + "==")
        actual = _scrypt(password, base64.urlsafe_b64decode(salt + "=="), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=128 * n * r * 2, dklen=32
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class UserView:
    """A user as shown to others: never the password hash."""

    login: str
    role: Role
    sites: tuple[str, ...]
    email: str | None


def _site_ids(workspace: Workspace, names: Sequence[str]) -> list[int]:
    with workspace.session() as session:
        found = {s.name: s.id for s in session.scalars(select(Site).where(Site.name.in_(names)))}
    missing = sorted(set(names) - set(found))
    if missing:
        raise NotFoundError(f"no site named {', '.join(map(repr, missing))}")
    return sorted({found[name] for name in names})


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def add_user(
    workspace: Workspace,
    login: str,
    password: str,
    role: Role | str,
    sites: Sequence[str] = (),
    email: str | None = None,
) -> UserView:
    """Create a user bound to ``sites`` (ignored for admins, who see every site)."""
    if not _LOGIN.match(login):
        raise InputError(
            f"invalid login {login!r}: 2-64 characters among letters, digits and _ . @ -"
        )
    try:
        role = Role(role)
    except ValueError as exc:
        raise InputError(
            f"unknown role {role!r}: one of {', '.join(r.value for r in Role)}"
        ) from exc
    _check_password(password)
    site_ids = _site_ids(workspace, sites) if role is not Role.ADMIN else []
    with workspace.session() as session:
        if session.scalar(select(User).where(User.login == login)) is not None:
            raise ConflictError(f"a user named {login!r} already exists")
        session.add(
            User(
                login=login,
                email=email,
                role=role,
                password_hash=hash_password(password),
                sites=site_ids,
            )
        )
    return get_user(workspace, login)


def set_password(workspace: Workspace, login: str, password: str) -> None:
    """Replace a user's password. Tokens issued before are revoked: they carry a stamp of the
    password hash (new salt), and the user's refresh tokens are deleted."""
    _check_password(password)
    with workspace.session() as session:
        user = _user(session, login)
        user.password_hash = hash_password(password)
        session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id))


def remove_user(workspace: Workspace, login: str) -> None:
    """Delete a user; their tokens stop working at once (each request looks the user up), and
    never come back with a new user of the same login (a new password hash, a new stamp)."""
    with workspace.session() as session:
        user = _user(session, login)
        session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id))
        session.delete(user)


def get_user(workspace: Workspace, login: str) -> UserView:
    with workspace.session() as session:
        return _view(session, _user(session, login))


def list_users(workspace: Workspace) -> list[UserView]:
    with workspace.session() as session:
        return [_view(session, u) for u in session.scalars(select(User).order_by(User.login))]


def authenticate(workspace: Workspace, login: str, password: str) -> UserView | None:
    """The user when ``password`` is theirs, else None (same answer for an unknown login)."""
    with workspace.session() as session:
        user = session.scalar(select(User).where(User.login == login))
        stored = user.password_hash if user is not None else _dummy_hash()
        ok = verify_password(password, stored)
        if user is None or not ok:
            return None
        return _view(session, user)


def _user(session: Session, login: str) -> User:
    user = session.scalar(select(User).where(User.login == login))
    if user is None:
        raise NotFoundError(f"no user named {login!r}")
    return user


def _view(session: Session, user: User) -> UserView:
    names: list[str] = []
    if user.sites:
        names = sorted(session.scalars(select(Site.name).where(Site.id.in_(user.sites))))
    return UserView(user.login, Role(user.role), tuple(names), user.email)


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown logins, so that the answer takes the same time and
    response times do not tell which logins exist."""
    return hash_password(secrets.token_urlsafe(16))
