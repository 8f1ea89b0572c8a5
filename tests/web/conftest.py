"""Fixtures of the web UI tests: Chromium (Debian's, driven by Playwright), the built UI, and
``capmon serve`` on loopback over a copy of the service tests' workspace where ``baresoil`` ran,
so that the map has a dated layer and the parcels have events.

A missing Chromium or a missing UI build fails the tests (CI must run them); set
CAPMON_TEST_SKIP_BROWSER=1 to skip them on a machine without a browser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from capmon.orchestrator.execute import ClusterSpec
from capmon.service.app import WEB_ASSETS
from capmon.sites import get_season, get_site
from capmon.workspace import open_workspace
from tests.service.conftest import (  # noqa: F401 (service_world is a fixture)
    PASSWORD,
    SEASON,
    LiveService,
    ServiceWorld,
    make_app,
    service_world,
)

CHROMIUM = Path(os.environ.get("CAPMON_CHROMIUM", "/usr/bin/chromium"))
SKIP_ENV = "CAPMON_TEST_SKIP_BROWSER"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # MapLibre needs WebGL: without a GPU, ANGLE's SwiftShader (software Vulkan) provides it.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]


def _unavailable(reason: str) -> None:
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"browser tests skipped ({SKIP_ENV}=1): {reason}")
    pytest.fail(f"{reason} (or set {SKIP_ENV}=1 to skip the browser tests)", pytrace=False)


@dataclass(frozen=True)
class UiService:
    """``capmon serve`` on loopback over a private workspace (:attr:`home`)."""

    url: str
    home: Path


@pytest.fixture(scope="module")
def ui_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiService]:
    """The service (jobs on a 1-worker Dask cluster) over a copy of the service workspace in
    which ``baresoil`` ran on site alpha."""
    if not (WEB_ASSETS / "index.html").is_file():
        _unavailable(f"the web UI is not built ({WEB_ASSETS} has no index.html): run `make web`")
    from capmon.processors import RunContext, get_processor

    world: ServiceWorld = request.getfixturevalue("service_world")
    home = tmp_path_factory.mktemp("web") / "home"
    shutil.copytree(world.home, home)
    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            site = get_site(session, "alpha")
            season = get_season(session, site, SEASON)
        processor = get_processor("baresoil")
        processor.run(RunContext(workspace, site, season), processor.parse_parameters({}))
    finally:
        workspace.dispose()
    app = make_app(home, cluster=ClusterSpec(workers=1, threads=1), sync_wait_seconds=5.0)
    with LiveService(app) as service:
        yield UiService(service.url, home)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(
            f"Chromium is missing at {CHROMIUM}: run `make chromium` (scripts/ensure-chromium.sh) "
            "or set CAPMON_CHROMIUM"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def save_screenshot(page: Page, name: str) -> Path:
    """A 1366 x 768 screenshot of the page in docs/screenshots/ (committed when it changes)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextmanager
def watched_tab(
    browser: Browser, service_url: str, *, console: bool = False, timeout_ms: int = 60_000
) -> Iterator[Page]:
    """A fresh 1366 x 768 tab; on leaving, no JavaScript error (with ``console``, no console
    error either: an invalid ``pattern`` attribute is one) and no request that left the
    service (no CDN, no remote fonts, glyphs or basemap)."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(timeout_ms)
    opened = context.new_page()
    errors: list[str] = []
    elsewhere: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    if console:
        opened.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
    opened.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((service_url + "/", "data:", "blob:"))
            else elsewhere.append(request.url)
        ),
    )
    yield opened
    context.close()
    # The service answers some checks with 4xx on purpose; the browser logs those as
    # "Failed to load resource": only other errors count.
    errors = [e for e in errors if not e.startswith("Failed to load resource")]
    assert not errors, f"JavaScript or console errors: {errors}"
    assert not elsewhere, f"requests outside the service: {elsewhere}"


def sign_in(page: Page, service: UiService, target: str = "") -> None:
    """Sign in as admin through the login page, then go to ``target`` (a UI route)."""
    page.goto(f"{service.url}/ui/#/login" + (f"?next={quote(target)}" if target else ""))
    page.get_by_label("Login").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
