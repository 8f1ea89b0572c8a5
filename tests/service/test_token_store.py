"""Tokens and job ids on both catalogue backends (SQLite, PostgreSQL): refresh rotation and
replay, revocation by password change and re-creation, random job uids."""

from __future__ import annotations

import pytest

from capmon.catalog.models import Job, StartType
from capmon.orchestrator import jobs as job_store
from capmon.service.auth import InvalidGrantError, TokenAuthority
from capmon.service.errors import UnauthorizedError
from capmon.sites import create_site
from capmon.users import add_user, remove_user, set_password
from capmon.workspace import Workspace

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-for-the-token-store-tests"


def test_refresh_rotation_and_revocation(workspace: Workspace) -> None:
    add_user(workspace, "ana", PASSWORD, "admin")
    tokens = TokenAuthority(workspace, SECRET, 600, 3600)
    first = tokens.issue("ana")
    assert tokens.principal(first.access_token).login == "ana"
    second = tokens.refresh(first.refresh_token)
    assert tokens.principal(second.access_token).login == "ana"
    with pytest.raises(InvalidGrantError):
        tokens.refresh(first.refresh_token)  # spent: the family is revoked
    with pytest.raises(InvalidGrantError):
        tokens.refresh(second.refresh_token)
    third = tokens.issue("ana")
    set_password(workspace, "ana", PASSWORD)
    tokens.forget()
    with pytest.raises(UnauthorizedError, match="revoked"):
        tokens.principal(third.access_token)
    with pytest.raises(InvalidGrantError):
        tokens.refresh(third.refresh_token)
    fourth = tokens.issue("ana")
    remove_user(workspace, "ana")
    add_user(workspace, "ana", PASSWORD, "viewer")
    tokens.forget()
    with pytest.raises(UnauthorizedError):
        tokens.principal(fourth.access_token)
    with pytest.raises(InvalidGrantError):
        tokens.refresh(fourth.refresh_token)
    assert tokens.principal(tokens.issue("ana").access_token).role.value == "viewer"


def test_jobs_get_random_uids_that_are_never_reused(workspace: Workspace) -> None:
    from shapely.geometry import box

    with workspace.session() as session:
        site = create_site(session, "uids", box(5.0, 50.0, 5.01, 50.01))
    seen: set[str] = set()
    for _ in range(3):
        number = job_store.create_job(workspace, "baresoil", site, None, StartType.REQUESTED, {})
        with workspace.session() as session:
            job = session.get(Job, number)
            assert job is not None
            uid = job.uid
            session.delete(job)
        assert uid is not None
        assert len(uid) == 32
        assert uid not in seen
        seen.add(uid)
