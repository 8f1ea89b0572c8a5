"""A newcomer's first day (issue 19) in headless Chromium at 1366 x 768: finding a parcel by its
declared id, the Sites page's layout (no horizontal overflow, every control clickable), messages
that name the user's own file and the UI's own controls, human parameter labels, and the map
with real-looking data (extent, small parcels, basemap, legends)."""

from __future__ import annotations

import http.server
import io
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import geopandas as gpd
import pandas as pd
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from capmon.parcels import LutFormat, import_lut
from capmon.parcels.hcat3_classes import hcat3_classes
from capmon.workspace import open_workspace
from tests.service.conftest import PASSWORD, SEASON, ServiceWorld
from tests.web.conftest import VIEWPORT, UiService, sign_in, watched_tab

TIMEOUT_MS = 60_000
expect.set_options(timeout=20_000)


@pytest.fixture
def page(browser: Browser, ui_service: UiService) -> Iterator[Page]:
    """A fresh 1366 x 768 tab; after the test, no JavaScript or console error and no request
    that left the service."""
    with watched_tab(browser, ui_service.url, console=True, timeout_ms=TIMEOUT_MS) as opened:
        yield opened


LAYOUT = """() => {
  const describe = (e) => !e ? "nothing" : e.tagName.toLowerCase()
    + (e.id ? "#" + e.id : "")
    + (typeof e.className === "string" && e.className ? "." + e.className.trim() : "")
    + (e.textContent ? " '" + e.textContent.trim().slice(0, 30) + "'" : "");
  const blocked = [];
  let checked = 0;
  const controls = document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary, [role=tab]");
  for (const control of controls) {
    if (control.closest("[hidden], .sr-only, .skip-link")) continue;
    if (!control.checkVisibility({ visibilityProperty: true })) continue;
    const first = control.getBoundingClientRect();
    if (first.width < 2 || first.height < 2) continue;
    control.scrollIntoView({ block: "center", inline: "center" });
    const box = control.getBoundingClientRect();
    const x = box.left + box.width / 2;
    const y = box.top + box.height / 2;
    const top = document.elementFromPoint(x, y);
    checked += 1;
    const label = top && top.closest("label");
    if (top === control || control.contains(top) || (label && label.control === control)) continue;
    blocked.push(describe(control) + " is covered by " + describe(top));
  }
  window.scrollTo(0, 0);
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    checked,
    blocked,
  };
}"""


def check_layout(page: Page) -> dict[str, Any]:
    """No horizontal overflow, and each visible control is what the pointer hits at its own
    centre (nothing overlaps it)."""
    layout: dict[str, Any] = page.evaluate(LAYOUT)
    assert layout["scrollWidth"] <= VIEWPORT["width"], layout
    assert layout["checked"] > 10, layout
    assert not layout["blocked"], "\n".join(layout["blocked"])
    return layout


def test_sites_page_fits_1366_and_every_control_is_clickable(
    page: Page, ui_service: UiService
) -> None:
    sign_in(page, ui_service, "/sites?site=alpha")
    expect(page.get_by_role("heading", name="Site alpha")).to_be_visible()
    declarations = page.locator("table.stored-table[data-kind=declarations]")
    luts = page.locator("table.stored-table[data-kind=luts]")
    expect(declarations).to_be_visible()
    expect(luts).to_be_visible()
    check_layout(page)
    # The stored tables do not overlap each other.
    first = declarations.bounding_box()
    second = luts.bounding_box()
    assert first is not None
    assert second is not None
    apart = (
        first["x"] + first["width"] <= second["x"]
        or second["x"] + second["width"] <= first["x"]
        or first["y"] + first["height"] <= second["y"]
        or second["y"] + second["height"] <= first["y"]
    )
    assert apart, (first, second)
    # The report toggle of each table is clickable (Playwright refuses intercepted clicks),
    # and the open reports still fit.
    for kind in ("declarations", "luts"):
        toggle = page.locator(f"table.stored-table[data-kind={kind}] button[aria-expanded]").first
        expect(toggle).to_have_accessible_name(re.compile("^Show the report of "))
        toggle.click(timeout=5_000)
        expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("table.stored-table[data-kind=declarations] .report").first).to_be_visible()
    check_layout(page)
    # Each upload tab fits too.
    for tab in ("Crop LUT", "L4B config", "L4C config", "Practices", "Declarations"):
        page.get_by_role("tab", name=tab).click()
        check_layout(page)


# --- helpers -----------------------------------------------------------------------------------


def api(service: UiService, route: str, token: str | None = None) -> tuple[int, Any]:
    """GET ``route`` of the live service as admin: status and JSON body."""
    token = token or admin_token(service)
    request = urllib.request.Request(
        service.url + route, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def admin_token(service: UiService) -> str:
    body = urllib.parse.urlencode({"username": "admin", "password": PASSWORD}).encode()
    with urllib.request.urlopen(service.url + "/auth/token", body, timeout=30) as answer:
        return str(json.loads(answer.read())["access_token"])


def hcat_lut(service_world: ServiceWorld, folder: Path, name: str) -> Path:
    """A EuroCrops HCAT mapping CSV of the world's crop codes, with national (Danish-like)
    names, and one code listed twice (skipped, reported by its crop code)."""
    codes = pd.read_csv(service_world.world.lut)["ori_crop"].astype(str).tolist()
    classes = [code for code in hcat3_classes() if code >= 3301010000][: len(codes)]
    rows = [
        {
            "original_code": code,
            "original_name": f"Afgrøde {code}",
            "translated_name": f"crop {code}",
            "HCAT3_code": hcat,
            "HCAT3_name": hcat3_classes()[hcat],
        }
        for code, hcat in zip(codes, classes, strict=True)
    ]
    rows.append({**rows[0], "original_name": "listed twice"})
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# --- 2: a parcel by its declared id ------------------------------------------------------------


def test_api_finds_a_parcel_by_its_newid_or_its_declared_id(ui_service: UiService) -> None:
    token = admin_token(ui_service)
    base = f"/sites/alpha/seasons/{SEASON}/parcels"
    status, by_new_id = api(ui_service, f"{base}/3", token)
    assert status == 200, by_new_id
    declared = by_new_id["attributes"]["ori_id"]
    assert declared
    assert declared != "3"
    status, by_declared = api(ui_service, f"{base}/{quote(declared)}", token)
    assert status == 200, by_declared
    assert by_declared["parcel_id"] == 3
    assert by_declared["attributes"]["ori_id"] == declared
    assert by_declared["links"]["timeseries"].endswith(f"{base}/3/timeseries")
    status, series = api(ui_service, f"{base}/{quote(declared)}/timeseries?signals=NDVI", token)
    assert status == 200, series
    assert series["parcel_id"] == 3
    assert series["signals"][0]["date"]
    status, missing = api(ui_service, f"{base}/NOT-A-PARCEL", token)
    assert status == 404
    assert "NOT-A-PARCEL" in missing["detail"]


def test_map_finds_a_parcel_by_its_declared_id(page: Page, ui_service: UiService) -> None:
    _status, parcel = api(ui_service, f"/sites/alpha/seasons/{SEASON}/parcels/5")
    declared = parcel["attributes"]["ori_id"]
    sign_in(page, ui_service, f"/map?site=alpha&season={SEASON}")
    expect(page.locator("#map")).to_have_attribute("data-idle", "true")
    page.get_by_role("searchbox", name="Find a parcel").fill(declared)
    page.get_by_role("button", name="Open").click()
    panel = page.locator("aside.parcel-panel")
    expect(panel.get_by_role("heading", level=2)).to_have_text(f"Parcel 5 ({declared})")
    expect(panel.locator("table.verdicts")).to_be_visible()
    expect(panel).not_to_contain_text("Could not open")
    expect(panel).not_to_contain_text("valid integer")
    # The map selects it by its NewID (the URL too, so the view can be shared).
    expect(page).to_have_url(re.compile(r"parcel=5(&|$)"))
    selected = page.evaluate(
        "document.getElementById('map').maplibreMap.getFilter('parcels-selected')"
    )
    assert selected[-1] == 5, selected
    # An unknown id says so, in the panel.
    page.get_by_role("searchbox", name="Find a parcel").fill("NOT-A-PARCEL")
    page.get_by_role("button", name="Open").click()
    expect(panel).to_contain_text("no parcel 'NOT-A-PARCEL'")


# --- 9: messages that name the user's file and the UI's own controls ---------------------------


def test_site_name_field_follows_the_server_rule(page: Page, ui_service: UiService) -> None:
    sign_in(page, ui_service, "/sites?site=alpha")
    page.get_by_text("Create a site from its AOI file").click()
    name = page.get_by_label("Name", exact=True).first
    expect(page.locator("details.create-site")).to_contain_text("spaces")
    for text, valid in (("Fyn 2024", True), ("DK_fyn-2.b", True), ("fyn.", False), ("-fyn", False)):
        name.fill(text)
        # The browser compiles the pattern (an invalid one is a console error, see `page`).
        assert name.evaluate("input => input.validity.valid") is valid, text


def test_declarations_form_refuses_a_csv_before_listing_its_columns(
    page: Page, ui_service: UiService, tmp_path: Path
) -> None:
    table = tmp_path / "markblokke.csv"
    table.write_text("Journalnr,Marknr,Afgkode\n1,1,11\n")
    sign_in(page, ui_service, "/sites?site=beta")
    panel = page.get_by_role("tabpanel", name="Declarations")
    panel.get_by_label("Declarations file").set_input_files(str(table))
    expect(panel.get_by_role("alert").or_(panel.locator(".message.error"))).to_contain_text(
        "markblokke.csv: A CSV file has no parcel geometries"
    )
    expect(panel.get_by_text("Columns in the file")).to_have_count(0)


def test_duplicate_ids_error_names_the_forms_choice_not_a_cli_flag(
    page: Page, ui_service: UiService, service_world: ServiceWorld, tmp_path: Path
) -> None:
    parcels = gpd.read_file(service_world.world.declarations[service_world.year])
    parcels.loc[1, "PARCEL_ID"] = parcels.loc[0, "PARCEL_ID"]
    source = tmp_path / "doubles.geojson"
    parcels.to_file(source, driver="GeoJSON")
    sign_in(page, ui_service, "/sites?site=beta")
    panel = page.get_by_role("tabpanel", name="Declarations")
    panel.get_by_label("Declarations file").set_input_files(str(source))
    expect(panel.get_by_label("Parcel id column(s)")).to_have_value("PARCEL_ID")
    panel.get_by_label("Year").fill(str(service_world.year))
    panel.get_by_role("button", name="Upload declarations").click()
    error = panel.locator(".message.error")
    expect(error).to_contain_text("parcel ids are used by several features")
    expect(error).to_contain_text("Duplicate parcel ids: keep them with -A/-B suffixes")
    expect(error).not_to_contain_text("--")


def test_lut_messages_name_the_users_file_and_crop_codes(
    page: Page, ui_service: UiService, service_world: ServiceWorld, tmp_path: Path
) -> None:
    archive = tmp_path / "afgroeder.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("afgroeder.csv", service_world.world.lut.read_text() * 20)
    mapping = hcat_lut(service_world, tmp_path, "DK_2024_afgrøder_HCAT.csv")
    sign_in(page, ui_service, "/sites?site=beta")
    page.get_by_role("tab", name="Crop LUT").click()
    panel = page.get_by_role("tabpanel", name="Crop LUT")
    panel.get_by_label("Crop LUT file").set_input_files(str(archive))
    panel.get_by_role("button", name="Upload Crop LUT").click()
    error = panel.locator(".message.error")
    expect(error).to_contain_text("afgroeder.zip: this is a zip archive")
    expect(error).not_to_contain_text("is not UTF-8")
    panel.get_by_label("Crop LUT file").set_input_files(str(mapping))
    panel.get_by_label("Format").select_option("hcat")
    panel.get_by_role("button", name="Upload Crop LUT").click()
    report = page.get_by_role("region", name="Crop LUT – report")
    expect(report).to_be_visible()
    expect(report).to_contain_text("DK_2024_afgrøder_HCAT.csv")
    expect(report).not_to_contain_text("upload-")
    problems = report.locator("table.report-problems")
    expect(problems.locator("thead")).to_contain_text("crop code")
    expect(problems.locator("thead")).not_to_contain_text("parcel id")
    # The long file name does not widen the page.
    check_layout(page)


# --- 10: labels, the default processor, the way to the UI --------------------------------------


def test_run_form_labels_are_titles_with_units(page: Page, ui_service: UiService) -> None:
    sign_in(page, ui_service, "/jobs")
    run = page.get_by_role("region", name="Run a processor")
    chooser = run.get_by_label("Processor")
    expect(chooser).not_to_have_value("")
    assert chooser.input_value() != "acquire"
    run.get_by_text(re.compile(r"^Parameters \(")).first.wait_for()
    token = admin_token(ui_service)
    for process in ("l4a", "acquire", "mdb", "heterogeneity"):
        chooser.select_option(process)
        _status, description = api(ui_service, f"/processes/{process}", token)
        names = [n for n in description["inputs"] if n not in ("site", "season")]
        expect(run.locator(".schema-form")).to_be_attached()
        run.get_by_text(re.compile(r"^Parameters \(")).first.click()
        labels = run.locator(".schema-form label, .schema-form .label").all_inner_texts()
        texts = {re.sub(r"\s*\*$", "", t.strip()) for t in labels}
        generated = {n.replace("_", " ").title() for n in names if "_" in n}
        assert not texts & generated, f"{process}: labels made from names: {texts & generated}"
    check_layout(page)  # the open parameter list fits too
    chooser.select_option("acquire")
    expect(run.get_by_label("Maximum cloud cover (%)")).to_be_attached()
    chooser.select_option("l4a")
    expect(run.get_by_label("Minimum Sentinel-2 pixels of a parcel (pixels)")).to_be_attached()


def test_root_links_to_the_web_interface(page: Page, ui_service: UiService) -> None:
    page.goto(ui_service.url + "/")
    page.get_by_role("link", name="Open the web interface").click()
    expect(page).to_have_url(re.compile(r"/ui/#/login"))
    document = json.loads(urllib.request.urlopen(ui_service.url + "/", timeout=30).read())
    assert any(link["href"].endswith("/ui/") for link in document["links"])


def test_serve_prints_the_web_interface_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from capmon.cli.main import app

    served: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **kwargs: served.append(kwargs))
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path / "home"), "serve", "--port", "8123", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 0, result.output
    assert served
    assert served[0]["port"] == 8123
    assert "Web interface: http://127.0.0.1:8123/ui/" in result.output


# --- 8: the map with real data -----------------------------------------------------------------

BASEMAP_COLOUR = (70, 130, 180)


class TileServer:
    """A basemap tile server on loopback: every tile a plain 256 x 256 PNG of
    :data:`BASEMAP_COLOUR` (with CORS, as public tile servers send), and the paths asked."""

    def __init__(self) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (256, 256), BASEMAP_COLOUR).save(buffer, "PNG")
        tile = buffer.getvalue()
        asked: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Length", str(len(tile)))
                self.end_headers()
                self.wfile.write(tile)

            def log_message(self, *_args: Any) -> None:
                pass

        self.asked = asked
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TileServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def map_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """() => {
          const map = document.getElementById("map").maplibreMap;
          const b = map.getBounds();
          const view = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
          return { view, zoom: map.getZoom() };
        }"""
    )
    return state


def test_map_with_real_data_basemap_extent_small_parcels_names_and_legend(
    browser: Browser, ui_service: UiService, service_world: ServiceWorld, tmp_path: Path
) -> None:
    workspace = open_workspace(ui_service.home)
    try:
        mapping = hcat_lut(service_world, tmp_path, "hcat.csv")
        import_lut(workspace, "beta", service_world.year, [mapping], lut_format=LutFormat.HCAT)
    finally:
        workspace.dispose()
    settings = ui_service.home / "settings.toml"  # docs/configuration.md
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        with TileServer() as tiles:
            settings.write_text(
                f'[map]\nbasemap = "{tiles.url}/{{z}}/{{x}}/{{y}}.png"\n'
                'basemap_attribution = "Test tiles, CC0"\n'
            )
            sign_in(page, ui_service, f"/map?site=beta&season={SEASON}&layer=crop")
            expect(page.locator("#map")).to_have_attribute("data-idle", "true")
            # The basemap is drawn under the parcels, credited.
            assert tiles.asked, "no basemap tile was asked for"
            expect(page.locator(".map-attribution")).to_have_text("Test tiles, CC0")
            image = Image.open(io.BytesIO(page.locator("#map canvas").screenshot()))
            colours = image.convert("RGB").getcolors(1 << 24) or []
            basemap = sum(
                n
                for n, c in colours
                if all(abs(a - b) <= 3 for a, b in zip(c, BASEMAP_COLOUR, strict=True))
            )
            assert basemap > image.width * image.height // 100, basemap
    finally:
        settings.unlink(missing_ok=True)
    try:
        # The view is the parcels' extent (not the site's AOI, not a default place).
        _status, listing = api(ui_service, f"/sites/beta/seasons/{SEASON}/layers")
        west, south, east, north = listing["bounds"]
        state = map_state(page)
        v_west, v_south, v_east, v_north = state["view"]
        assert v_west <= west
        assert v_south <= south
        assert v_east >= east
        assert v_north >= north
        assert max((east - west) / (v_east - v_west), (north - south) / (v_north - v_south)) > 0.5
        # The crop legend names each code nationally and by its HCAT class.
        crops = page.get_by_role("group", name="Legend: Declared crop")
        first = hcat3_classes()[next(c for c in hcat3_classes() if c >= 3301010000)]
        expect(crops).to_contain_text(re.compile(rf"Afgrøde \d+ \({re.escape(first)}\)"))
        # "no value" is hatched, unlike any class (a grey class such as NR or "not classified"
        # would look the same as a grey "no value").
        no_value = crops.locator(".no-value .swatch")
        expect(no_value).to_have_css("background-image", re.compile("repeating-linear-gradient"))
        hatched = crops.locator("li .swatch").evaluate_all(
            "all => all.filter(s => getComputedStyle(s).backgroundImage !== 'none').length"
        )
        assert hatched == 0
        # Zoomed out until the parcels are points: each is a disc of a few pixels.
        page.evaluate(
            "zoom => document.getElementById('map').maplibreMap.jumpTo({ zoom })",
            state["zoom"] - 6,
        )
        expect(page.locator("#map")).to_have_attribute("data-idle", "true")
        drawn = page.evaluate(
            """() => {
              const map = document.getElementById("map").maplibreMap;
              return {
                points: map.queryRenderedFeatures({ layers: ["parcels-points"] }).length,
                radius: map.getPaintProperty("parcels-points", "circle-radius"),
                stroke: map.getPaintProperty("parcels-points", "circle-stroke-width"),
              };
            }"""
        )
        assert drawn["points"] > 0, drawn
        assert drawn["radius"] >= 3, drawn
        assert drawn["stroke"] >= 1, drawn
        assert not errors, errors
    finally:
        context.close()
