"""Fixtures of the service tests: a small season on two sites, users of each role, the app
in-process (TestClient) and over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from capmon.mdb.extract import ExtractionSettings, extract_season
from capmon.parcels import import_lut
from capmon.service import ServiceConfig, create_app
from capmon.sites import SeasonDates, create_season, create_site, get_site
from capmon.sources import ingest_product
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.users import add_user
from capmon.workspace import Workspace, open_workspace

PASSWORD = "correct horse battery"
SITES = ("alpha", "beta")
SEASON = "S"
SIGNALS = ("NDVI", "NDTILL", "BSI")
USERS = {
    "admin": ("admin", ()),
    "op-alpha": ("operator", ("alpha",)),
    "view-alpha": ("viewer", ("alpha",)),
    "view-beta": ("viewer", ("beta",)),
    "op-beta": ("operator", ("beta",)),
}
SECRET = "test-secret-key-for-the-service-tests-only"


@dataclass(frozen=True)
class ServiceWorld:
    """A workspace with sites alpha and beta (the same small synthetic season, MDB extracted),
    and one user of each role (password :data:`PASSWORD`)."""

    home: Path
    world: SynthWorld
    year: int


def build_service_home(world: SynthWorld, home: Path, database_url: str | None = None) -> Path:
    """Sites, season, LUT, declarations, products and the MDB of both sites, plus the users."""
    workspace = open_workspace(home, database_url)
    try:
        year = world.years[0]
        assert world.s2_dir is not None
        products = sorted(p for p in world.s2_dir.iterdir() if not p.name.startswith("."))
        for name in SITES:
            with workspace.session() as session:
                site = create_site(session, name, world.aoi)
                create_season(
                    session,
                    site,
                    SEASON,
                    SeasonDates.parse(f"{year}-02-01", f"{year}-11-30", f"{year}-06-15"),
                )
            import_lut(workspace, name, year, world.lut)
            import_world_declarations(
                workspace,
                name,
                year,
                world.declarations[year],
            )
            with workspace.session() as session:
                site = get_site(session, name)
                for path in products:
                    ingest_product(session, site, path)
            result = extract_season(
                workspace, name, SEASON, ExtractionSettings(optical_signals=SIGNALS)
            )
            assert not result.report.failed
        for login, (role, sites) in USERS.items():
            add_user(workspace, login, PASSWORD, role, sites)
    finally:
        workspace.dispose()
    return home


@pytest.fixture(scope="session")
def service_world(tmp_path_factory: pytest.TempPathFactory) -> ServiceWorld:
    """Built once per test process; tests that change it work on a copy
    (:func:`writable_home`)."""
    root = tmp_path_factory.mktemp("service")
    world = generate_world(
        root / "world",
        parcels=60,
        window_km=1.5,
        revisit_days=20,
        s2_format="cog",
        sentinel1=False,
        seed=11,
    )
    home = build_service_home(world, root / "home")
    return ServiceWorld(home, world, world.years[0])


@pytest.fixture
def writable_home(service_world: ServiceWorld, tmp_path: Path) -> Path:
    """A private copy of the service workspace, for tests that change it."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(service_world.home, home)
    return home


def make_app(home: Path, **overrides: object) -> FastAPI:
    config = ServiceConfig(home=home, secret_key=SECRET, **overrides)  # type: ignore[arg-type]
    return create_app(config)


@pytest.fixture(scope="session")
def read_client(service_world: ServiceWorld) -> Iterator[TestClient]:
    """An in-process client of the shared workspace, for tests that only read."""
    with TestClient(make_app(service_world.home)) as client:
        yield client


def login(client: TestClient, user: str, password: str = PASSWORD) -> dict[str, str]:
    """The Authorization header of a fresh token of ``user``."""
    answer = client.post("/auth/token", data={"username": user, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture(scope="session")
def auth_headers(read_client: TestClient) -> dict[str, dict[str, str]]:
    """Authorization headers of each user of :data:`USERS`, by login."""
    return {user: login(read_client, user) for user in USERS}


class LiveService:
    """``capmon serve``'s app under uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveService:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def open_workspace_of(home: Path) -> Workspace:
    return open_workspace(home)
