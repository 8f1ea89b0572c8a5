"""Shared fixtures: workspaces on both catalogue backends, the shared real datasets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from capmon.workspace import Workspace, open_workspace
from tests.pg import PostgresCluster, PostgresUnavailableError, start_cluster

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that use it are skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared datasets are not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL+PostGIS cluster for this test worker.

    A missing PostgreSQL fails the tests (CI must test both backends); set
    CAPMON_TEST_SKIP_POSTGRES=1 to skip them on a machine without it.
    """
    try:
        cluster = start_cluster()
    except PostgresUnavailableError as exc:
        if os.environ.get("CAPMON_TEST_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL tests skipped: {exc}")
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a fresh, empty PostGIS database."""
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace, once with the SQLite catalogue and once with PostgreSQL+PostGIS."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    ws = open_workspace(tmp_path / "workspace", url)
    yield ws
    ws.dispose()
