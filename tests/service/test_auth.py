"""Users, passwords, tokens: issue, expiry, forged tokens, removed users, no secrets in logs;
RFC 6749 token errors, refresh tokens, revocation by password change and re-created logins,
Sen4CAP's /auth/login and X-Auth-Token."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from capmon.catalog.models import Role
from capmon.cli.main import app as cli
from capmon.errors import ConflictError, InputError, NotFoundError
from capmon.users import (
    add_user,
    authenticate,
    hash_password,
    list_users,
    remove_user,
    set_password,
    verify_password,
)
from capmon.workspace import Workspace
from tests.service.conftest import PASSWORD, LiveService, ServiceWorld, login, make_app

runner = CliRunner()


def test_passwords_are_salted_scrypt_hashes() -> None:
    first, second = hash_password("a long password"), hash_password("a long password")
    assert first != second  # salted
    assert first.startswith("scrypt$32768$8$1$")
    assert "a long password" not in first
    assert verify_password("a long password", first)
    assert not verify_password("a long passwore", first)
    assert not verify_password("a long password", "md5$abc")
    assert not verify_password("a long password", "not a hash")


def test_users_rules(workspace: Workspace) -> None:
    from shapely.geometry import box

    from capmon.sites import create_site

    with workspace.session() as session:
        create_site(session, "north", box(4.0, 50.0, 4.1, 50.1))
    user = add_user(workspace, "ana", "0123456789", Role.OPERATOR, ["north"], "ana@example.org")
    assert user.sites == ("north",)
    with pytest.raises(ConflictError, match="already exists"):
        add_user(workspace, "ana", "0123456789", "viewer")
    with pytest.raises(InputError, match="at least 10"):
        add_user(workspace, "bob", "short", "viewer")
    with pytest.raises(InputError, match="unknown role 'boss'"):
        add_user(workspace, "bob", "0123456789", "boss")
    with pytest.raises(NotFoundError, match="'south'"):
        add_user(workspace, "bob", "0123456789", "viewer", ["south"])
    with pytest.raises(InputError, match="invalid login"):
        add_user(workspace, "b o b", "0123456789", "viewer")
    assert authenticate(workspace, "ana", "0123456789") is not None
    assert authenticate(workspace, "ana", "9876543210") is None
    assert authenticate(workspace, "nobody", "0123456789") is None
    assert [u.login for u in list_users(workspace)] == ["ana"]
    remove_user(workspace, "ana")
    with pytest.raises(NotFoundError):
        remove_user(workspace, "ana")


def test_user_cli(tmp_path: Path) -> None:
    home = str(tmp_path / "ws")
    result = runner.invoke(
        cli,
        ["--home", home, "user", "add", "root", "--role", "admin", "--password-stdin"],
        input="a strong password\n",
    )
    assert result.exit_code == 0, result.output
    assert "a strong password" not in result.output
    result = runner.invoke(cli, ["--home", home, "user", "list", "--json"])
    assert '"login": "root"' in result.output
    assert "scrypt" not in result.output
    result = runner.invoke(
        cli,
        [
            "--home",
            home,
            "user",
            "add",
            "xavier",
            "--role",
            "viewer",
            "--site",
            "nowhere",
            "--password-stdin",
        ],
        input="a strong password\n",
    )
    assert result.exit_code == 2
    assert "nowhere" in result.output
    assert runner.invoke(cli, ["--home", home, "user", "remove", "root"]).exit_code == 0
    assert runner.invoke(cli, ["--home", home, "user", "remove", "root"]).exit_code == 2


def test_token_flow(read_client: TestClient) -> None:
    assert read_client.get("/auth/me").status_code == 401
    assert read_client.get("/auth/me").headers["www-authenticate"] == "Bearer"
    bad = read_client.post("/auth/token", data={"username": "admin", "password": "wrong one!"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_grant", "error_description": "wrong login or password"}
    headers = login(read_client, "view-alpha")
    me = read_client.get("/auth/me", headers=headers)
    assert me.json() == {"login": "view-alpha", "role": "viewer", "sites": ["alpha"]}
    forged = headers["Authorization"][:-3] + "abc"
    assert read_client.get("/auth/me", headers={"Authorization": forged}).status_code == 401
    basic = {"Authorization": "Basic dmlldy1hbHBoYTp4"}
    assert read_client.get("/auth/me", headers=basic).status_code == 401


def test_tokens_expire(service_world: ServiceWorld) -> None:
    with TestClient(make_app(service_world.home, token_ttl_seconds=1)) as client:
        headers = login(client, "admin")
        assert client.get("/auth/me", headers=headers).status_code == 200
        time.sleep(2.1)
        answer = client.get("/auth/me", headers=headers)
        assert answer.status_code == 401
        assert "expired" in answer.json()["detail"]


def test_a_removed_user_loses_access_at_once(writable_home: Path) -> None:
    from capmon.service.auth import USER_CACHE_SECONDS
    from capmon.workspace import open_workspace

    with TestClient(make_app(writable_home)) as client:
        headers = login(client, "view-beta")
        assert client.get("/auth/me", headers=headers).status_code == 200
        workspace = open_workspace(writable_home)
        remove_user(workspace, "view-beta")
        workspace.dispose()
        time.sleep(USER_CACHE_SECONDS + 0.2)
        assert client.get("/auth/me", headers=headers).status_code == 401


def test_tokens_and_passwords_never_reach_the_logs(
    service_world: ServiceWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with LiveService(make_app(service_world.home)) as live:
        token = httpx.post(
            f"{live.url}/auth/token", data={"username": "admin", "password": PASSWORD}
        ).json()["access_token"]
        httpx.get(f"{live.url}/auth/me", headers={"Authorization": f"Bearer {token}"})
        httpx.get(f"{live.url}/auth/me", headers={"Authorization": "Bearer forged.token.x"})
        httpx.post(f"{live.url}/auth/token", data={"username": "admin", "password": "wrong pw!"})
    logged = caplog.text
    assert token not in logged
    assert PASSWORD not in logged
    assert "wrong pw!" not in logged
    assert "forged.token.x" not in logged


def test_anonymous_routes_are_only_landing_conformance_and_openapi(
    read_client: TestClient,
) -> None:
    assert read_client.get("/").status_code == 200
    assert read_client.get("/conformance").status_code == 200
    document = read_client.get("/openapi.json")
    assert document.status_code == 200
    assert document.json()["openapi"] == "3.0.3"
    anonymous = {"/", "/conformance", "/openapi.json", "/auth/token", "/auth/login"}
    for route in read_client.app.routes:  # type: ignore[attr-defined]
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or set()
        if path in anonymous or not path or path.startswith("/ui"):
            continue
        url = path.replace("{", "").replace("}", "")
        for method in methods - {"HEAD", "OPTIONS"}:
            answer = read_client.request(method, url)
            assert answer.status_code == 401, (method, path, answer.status_code)


def test_openapi_document_is_valid_openapi_30(read_client: TestClient) -> None:
    from openapi_spec_validator import validate

    validate(read_client.get("/openapi.json").json())


def _error(answer: httpx.Response) -> str:
    assert answer.headers["cache-control"] == "no-store"
    assert set(answer.json()) == {"error", "error_description"}, answer.text
    return str(answer.json()["error"])


def test_token_endpoint_errors_follow_rfc_6749(read_client: TestClient) -> None:
    def post(data: dict[str, str], **kwargs: object) -> httpx.Response:
        return read_client.post("/auth/token", data=data, **kwargs)  # type: ignore[arg-type]

    wrong = post({"grant_type": "password", "username": "admin", "password": "wrong one!"})
    assert (wrong.status_code, _error(wrong)) == (400, "invalid_grant")
    unknown = post({"username": "nobody", "password": "wrong one!"})
    assert (unknown.status_code, _error(unknown)) == (400, "invalid_grant")
    missing = post({"grant_type": "password", "username": "admin"})
    assert (missing.status_code, _error(missing)) == (400, "invalid_request")
    assert "'password'" in missing.json()["error_description"]
    grant = post({"grant_type": "client_credentials", "client_id": "x"})
    assert (grant.status_code, _error(grant)) == (400, "unsupported_grant_type")
    as_json = read_client.post("/auth/token", json={"username": "admin", "password": PASSWORD})
    assert (as_json.status_code, _error(as_json)) == (400, "invalid_request")
    twice = read_client.post(
        "/auth/token",
        content=f"username=admin&username=root&password={PASSWORD}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (twice.status_code, _error(twice)) == (400, "invalid_request")
    no_refresh = post({"grant_type": "refresh_token"})
    assert (no_refresh.status_code, _error(no_refresh)) == (400, "invalid_request")
    forged = post({"grant_type": "refresh_token", "refresh_token": "a.b.c"})
    assert (forged.status_code, _error(forged)) == (400, "invalid_grant")
    # client authentication capmon cannot check: 401 invalid_client, with a challenge
    credentials = {"username": "admin", "password": PASSWORD}
    for header in ("Bearer abc", "Basic !!not-base64!!"):
        client = post(credentials, headers={"Authorization": header})
        assert (client.status_code, _error(client)) == (401, "invalid_client")
        assert client.headers["www-authenticate"].startswith("Basic")
    # a public client (client_id, or HTTP Basic with its id) and no grant_type (cuiman's
    # "login" mode) both get a token
    public = post({**credentials, "grant_type": "password", "client_id": "cuiman"})
    assert public.status_code == 200, public.text
    basic = post(credentials, headers={"Authorization": "Basic Y3VpbWFuOg=="})
    assert basic.status_code == 200, basic.text
    plain = post(credentials)
    assert plain.status_code == 200
    assert plain.headers["cache-control"] == "no-store"
    document = plain.json()
    assert document["token_type"] == "bearer"
    assert document["refresh_token"]
    assert document["token"] == document["access_token"]


def test_sen4cap_login_and_x_auth_token(read_client: TestClient) -> None:
    answer = read_client.post("/auth/login", data={"username": "view-alpha", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    me = read_client.get("/auth/me", headers={"X-Auth-Token": token})
    assert me.json()["login"] == "view-alpha"
    assert read_client.get("/auth/me", headers={"X-Auth-Token": token + "x"}).status_code == 401
    wrong = read_client.post("/auth/login", data={"username": "view-alpha", "password": "no!"})
    assert (wrong.status_code, _error(wrong)) == (400, "invalid_grant")
    # a refresh token is no bearer token
    refresh = answer.json()["refresh_token"]
    assert read_client.get("/auth/me", headers={"X-Auth-Token": refresh}).status_code == 401
    bearer = {"Authorization": f"Bearer {refresh}"}
    assert read_client.get("/auth/me", headers=bearer).status_code == 401


def test_refresh_tokens_rotate_and_a_replay_revokes_the_family(read_client: TestClient) -> None:
    first = read_client.post("/auth/token", data={"username": "admin", "password": PASSWORD})
    spent = first.json()["refresh_token"]
    renewed = read_client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": spent}
    )
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert fresh["refresh_token"] != spent
    headers = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert read_client.get("/auth/me", headers=headers).json()["login"] == "admin"
    # the spent token again: refused, and the token rotated from it dies with it
    replay = read_client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": spent}
    )
    assert (replay.status_code, _error(replay)) == (400, "invalid_grant")
    after = read_client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]}
    )
    assert (after.status_code, _error(after)) == (400, "invalid_grant")
    # an access token is no refresh token
    swapped = read_client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": fresh["access_token"]}
    )
    assert (swapped.status_code, _error(swapped)) == (400, "invalid_grant")


def _tokens(client: TestClient, user: str) -> tuple[dict[str, str], str]:
    answer = client.post("/auth/token", data={"username": user, "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {answer['access_token']}"}, answer["refresh_token"]


def test_a_password_change_revokes_every_token(writable_home: Path) -> None:
    from capmon.service.auth import USER_CACHE_SECONDS
    from capmon.workspace import open_workspace

    with TestClient(make_app(writable_home)) as client:
        headers, refresh = _tokens(client, "op-alpha")
        assert client.get("/auth/me", headers=headers).status_code == 200
        workspace = open_workspace(writable_home)
        set_password(workspace, "op-alpha", PASSWORD)  # even the same password: a new salt
        workspace.dispose()
        time.sleep(USER_CACHE_SECONDS + 0.2)  # another process changed it: the cache expires
        answer = client.get("/auth/me", headers=headers)
        assert answer.status_code == 401
        assert "revoked" in answer.json()["detail"]
        again = client.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh}
        )
        assert (again.status_code, _error(again)) == (400, "invalid_grant")
        assert client.get("/auth/me", headers=login(client, "op-alpha")).status_code == 200


def test_a_re_created_login_never_revives_old_tokens(writable_home: Path) -> None:
    from capmon.workspace import open_workspace

    with TestClient(make_app(writable_home)) as client:
        headers, refresh = _tokens(client, "view-beta")
        workspace = open_workspace(writable_home)
        remove_user(workspace, "view-beta")
        add_user(workspace, "view-beta", PASSWORD, "admin")  # same login, same password
        workspace.dispose()
        client.app.state.capmon.tokens.forget()  # type: ignore[attr-defined]
        answer = client.get("/auth/me", headers=headers)
        assert answer.status_code == 401, answer.text
        again = client.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh}
        )
        assert (again.status_code, _error(again)) == (400, "invalid_grant")
        new_headers, _refresh = _tokens(client, "view-beta")
        assert client.get("/auth/me", headers=new_headers).json()["role"] == "admin"
