"""The web UI in headless Chromium against ``capmon serve`` on loopback: sign-in, a declarations
upload with its report, a processor run from the generated form to "successful", the map's
parcels and a parcel's chart with its events, the products list and a download. Each test
saves a screenshot of its page in docs/screenshots/."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.service.conftest import PASSWORD, SEASON, ServiceWorld
from tests.web.conftest import VIEWPORT, UiService, save_screenshot, sign_in, watched_tab

TIMEOUT_MS = 60_000
expect.set_options(timeout=20_000)
MAP_BACKGROUND = (244, 242, 236)
"""The map style's background colour (#f4f2ec): pixels of any other colour are drawn data."""


@pytest.fixture
def page(browser: Browser, ui_service: UiService) -> Iterator[Page]:
    """A fresh browser tab; after the test, no JavaScript error and no request that left the
    service."""
    with watched_tab(browser, ui_service.url, console=False, timeout_ms=TIMEOUT_MS) as opened:
        yield opened


def test_sign_in_refuses_a_wrong_password_then_signs_in(page: Page, ui_service: UiService) -> None:
    page.goto(f"{ui_service.url}/ui/")
    expect(page).to_have_url(re.compile(r"#/login"))  # no token: the login page
    page.get_by_label("Login").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong login or password.")
    expect(page.get_by_label("Password")).to_be_focused()
    page.get_by_label("Password").fill(PASSWORD)
    save_screenshot(page, "login")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Sites and seasons")).to_have_attribute(
        "aria-current", "page"
    )
    token = page.evaluate("sessionStorage.getItem('capmon.token')")
    assert token  # kept for this tab only (sessionStorage), never in the URL
    assert token.count(".") == 2
    assert token not in page.url
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('capmon.token')") is None


def test_declarations_upload_shows_the_import_report(
    page: Page, ui_service: UiService, service_world: ServiceWorld
) -> None:
    source = Path(service_world.world.declarations[service_world.year])
    sign_in(page, ui_service, "/sites?site=beta")
    expect(page.get_by_role("heading", name="Site beta")).to_be_visible()
    panel = page.get_by_role("tabpanel", name="Declarations")
    panel.get_by_label("Declarations file").set_input_files(str(source))
    # The mapping is read from the file's own columns and guessed from their names.
    expect(panel.get_by_text(re.compile("Columns in the file: .*PARCEL_ID"))).to_be_visible()
    expect(panel.get_by_label("Parcel id column(s)")).to_have_value("PARCEL_ID")
    expect(panel.get_by_label("Holding id column(s)")).to_have_value("HOLDING_ID")
    expect(panel.get_by_label("Crop code column")).to_have_value("CROP_CODE")
    panel.get_by_label("Year").fill(str(service_world.year))
    panel.get_by_role("button", name="Upload declarations").click()
    report = page.get_by_role("region", name="Declarations – report")
    expect(report).to_be_visible()
    counts = report.locator("table.report-counts")
    expect(counts.get_by_role("row", name=re.compile("^features read"))).to_contain_text("60")
    expect(counts.get_by_role("row", name=re.compile("^unchanged parcels"))).to_contain_text("60")
    expect(report.locator("dl.report-facts").first).to_contain_text("version2")
    # The new version is listed with its report.
    versions = page.locator(
        "table.stored-table[data-kind=declarations] > tbody > tr:not(.report-row)"
    )
    expect(versions).to_have_count(2)
    expect(versions.first.locator("td").nth(1)).to_have_text("2")  # newest first
    # The site's parcel figures follow the new version.
    expect(page.get_by_role("heading", name=re.compile(r"^Parcels \d{4} \(v2\)"))).to_be_visible()
    report.evaluate("element => element.scrollIntoView({ block: 'start' })")
    save_screenshot(page, "sites")


def test_processor_runs_from_the_generated_form(page: Page, ui_service: UiService) -> None:
    sign_in(page, ui_service, "/jobs")
    run = page.get_by_role("region", name="Run a processor")
    run.get_by_label("Processor").select_option("baresoil")
    # The form is generated from the process description: typed fields, defaults, bounds.
    expect(run.get_by_label("Bare soil: NDVI below")).to_have_attribute("type", "number")
    expect(run.get_by_label("Bare soil: NDVI below")).to_have_attribute("placeholder", "0.3")
    expect(run.get_by_label("Use Sentinel-1 evidence")).to_have_attribute("type", "checkbox")
    expect(run.get_by_label("Weight of the Sentinel-1 evidence")).to_have_attribute("max", "2")
    run.get_by_label("Site").select_option("alpha")
    run.get_by_label("Season").select_option(SEASON)
    run.get_by_text(re.compile(r"^Parameters \(")).click()
    # A soil-cover window that changes the compliance, not the bare-soil periods the map test
    # counts (whichever of the two tests runs first).
    run.get_by_label("Soil-cover window start (MM-DD)").fill("10-15")
    run.get_by_role("button", name="Run").click()
    started = run.get_by_text(re.compile(r"Started job [\w-]+"))
    expect(started).to_be_visible()
    job_id = re.search(r"job ([\w-]+)", started.inner_text())
    assert job_id is not None
    row = page.locator(f"tr[data-job='{job_id.group(1)}']")
    expect(row).to_have_attribute("data-status", "successful", timeout=90_000)
    expect(row.locator("progress")).to_have_attribute("value", "100")
    expect(row.get_by_role("button", name=f"Dismiss job {job_id.group(1)}")).to_be_visible()
    # The job's log is shown next to the list; the status change was announced.
    expect(page.locator("pre.log")).to_contain_text("baresoil")
    expect(page.locator(".job-list [role=status]")).to_contain_text("successful")
    page.evaluate("window.scrollTo(0, 0)")
    save_screenshot(page, "jobs")
    # Its result links to the product in the products page.
    page.locator("ul.results a").first.click()
    expect(page.locator("table.products-table tbody tr")).to_have_count(1)


def parcel_with_periods(home: Path) -> tuple[int, int]:
    """A parcel of site alpha with bare-soil periods, and how many (the same in every bare-soil
    product of this workspace)."""
    folder = sorted((home / "products" / "alpha" / "baresoil").iterdir())[0]
    periods = pd.read_csv(folder / "periods.csv")
    counts = periods.groupby("parcel_id").size().sort_values(ascending=False)
    return int(counts.index[0]), int(counts.iloc[0])


FIND_PARCEL = """([parcelId]) => {
  const map = document.getElementById("map").maplibreMap;
  const canvas = map.getCanvas().getBoundingClientRect();
  for (let y = 10; y < canvas.height; y += 6) {
    for (let x = 10; x < canvas.width; x += 6) {
      const hit = map.queryRenderedFeatures([x, y], { layers: ["parcels-fill"] })
        .find((f) => f.properties.parcel_id === parcelId);
      if (hit) return [canvas.left + x, canvas.top + y];
    }
  }
  return null;
}"""


def drawn_pixels(png: bytes) -> int:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(
        count for count, colour in image.getcolors(1 << 24) or [] if colour != MAP_BACKGROUND
    )


def test_map_draws_parcels_and_a_parcel_opens_with_its_chart_and_events(
    page: Page, ui_service: UiService
) -> None:
    parcel_id, periods = parcel_with_periods(ui_service.home)
    sign_in(page, ui_service, f"/map?site=alpha&season={SEASON}&layer=baresoil_status")
    expect(page.get_by_label("Colour parcels by")).to_have_value("baresoil_status")
    # A dated layer: the date slider moves by keyboard, period by period.
    slider = page.get_by_label("Date")
    slider.focus()
    slider.press("Home")
    for _ in range(9):  # dekads from 1 February
        slider.press("ArrowRight")
    expect(page.locator("output.date-output")).to_have_text("2024-05-01 – 2024-05-10")
    expect(page).to_have_url(re.compile(r"date=2024-05-01"))
    expect(page.locator("#map")).to_have_attribute("data-idle", "true")
    expect(page.get_by_role("group", name="Legend: Bare soil status")).to_contain_text("bare soil")
    canvas = page.locator("#map canvas")
    total = VIEWPORT["width"] * VIEWPORT["height"]
    assert drawn_pixels(canvas.screenshot()) > total // 20  # the parcels are drawn (WebGL works)

    point = page.evaluate(FIND_PARCEL, [parcel_id])
    assert point is not None, f"parcel {parcel_id} is not drawn on the map"
    page.mouse.click(point[0], point[1])
    panel = page.locator("aside.parcel-panel")
    expect(panel.get_by_role("heading", level=2)).to_have_text(re.compile(f"^Parcel {parcel_id}"))
    expect(panel.get_by_role("heading", level=2)).to_be_focused()
    optical = panel.locator(".chart-panel[data-panel=optical] .uplot")
    expect(optical).to_have_attribute("data-shaded-events", re.compile(r"^[1-9]"))
    expect(panel.locator("ul.events li[data-kind=bare_soil]")).to_have_count(periods)
    expect(panel.locator(".event-legend li[data-kind=bare_soil]")).to_have_text("bare soil")
    expect(panel.locator("table.verdicts")).to_contain_text("Bare soil status")
    expect(page).to_have_url(re.compile(f"parcel={parcel_id}"))
    save_screenshot(page, "map")
    # Escape closes the panel and gives the focus back.
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(page).not_to_have_url(re.compile("parcel="))


def test_products_list_filters_and_downloads(page: Page, ui_service: UiService) -> None:
    sign_in(page, ui_service, "/products")
    rows = page.locator("table.products-table tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("table.products-table")).to_contain_text("baresoil")
    expect(page.locator("table.products-table")).not_to_contain_text("sentinel-2-l2a")
    page.get_by_label("Collection").select_option("baresoil")
    collections = page.locator("table.products-table tbody tr > td:nth-child(2)")
    expect(collections.filter(has_not_text="baresoil")).to_have_count(0)
    expect(collections.first).to_have_text("baresoil")
    save_screenshot(page, "products")
    files = rows.first.locator("details.assets")
    if files.count():
        files.locator("summary").click()
    first = rows.first.get_by_role("button", name=re.compile("^Download ")).first
    with page.expect_download() as info:
        first.click()
    download = info.value
    target = download.path()
    assert target is not None
    assert Path(target).stat().st_size > 0
