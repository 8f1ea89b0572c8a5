"""Markers routes: a parcel's time series (JSON, CSV), its attributes, layer values and events,
the MDB's signals and the season's map layers, and site isolation."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from capmon.mdb.query import open_mdb
from capmon.parcels import load_parcels
from capmon.processors.common import season_mdb_folder
from capmon.sites import get_season, get_site
from capmon.workspace import open_workspace
from tests.service.conftest import SEASON, SIGNALS, ServiceWorld, login, make_app

BASE = f"/sites/alpha/seasons/{SEASON}"


@pytest.fixture(scope="module")
def parcels(service_world: ServiceWorld) -> pd.DataFrame:
    workspace = open_workspace(service_world.home)
    try:
        frame: pd.DataFrame = load_parcels(workspace, "alpha", service_world.year)
        return frame
    finally:
        workspace.dispose()


@pytest.fixture(scope="module")
def mdb_rows(service_world: ServiceWorld) -> pd.DataFrame:
    """Every MDB row of site alpha (the reference the routes must give back)."""
    workspace = open_workspace(service_world.home)
    try:
        with workspace.session() as session:
            site = get_site(session, "alpha")
            folder = season_mdb_folder(workspace, site, SEASON, service_world.year)
    finally:
        workspace.dispose()
    return open_mdb(folder).timeseries()


def _parcel_with_rows(mdb_rows: pd.DataFrame) -> int:
    counts = mdb_rows[mdb_rows["signal"] == "NDVI"]["parcel_id"].value_counts()
    return int(counts.index[0])


def test_timeseries_json_equals_the_mdb(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], mdb_rows: pd.DataFrame
) -> None:
    parcel_id = _parcel_with_rows(mdb_rows)
    answer = read_client.get(
        f"{BASE}/parcels/{parcel_id}/timeseries?signals=NDVI,BSI",
        headers=auth_headers["view-alpha"],
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["parcel_id"] == parcel_id
    assert body["site"] == "alpha"
    assert [s["signal"] for s in body["signals"]] == ["NDVI", "BSI"]
    for series in body["signals"]:
        expected = mdb_rows[
            (mdb_rows["parcel_id"] == parcel_id) & (mdb_rows["signal"] == series["signal"])
        ]
        assert len(expected) > 3
        assert series["unit"] == "1"
        assert series["date"] == [d.isoformat() for d in expected["date"]]
        assert series["sensor"] == expected["sensor"].tolist()
        assert series["count"] == expected["count"].tolist()
        for stat in ("mean", "stdev", "min", "max", "median", "p25", "p75"):
            np.testing.assert_allclose(
                np.array(series[stat], dtype=float), expected[stat].to_numpy(float), rtol=1e-6
            )
        assert "date_first" not in series  # optical signals have no pair date


def test_timeseries_dates_and_defaults(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], mdb_rows: pd.DataFrame
) -> None:
    parcel_id = _parcel_with_rows(mdb_rows)
    rows = mdb_rows[(mdb_rows["parcel_id"] == parcel_id) & (mdb_rows["signal"] == "NDVI")]
    dates = sorted(rows["date"])
    start, end = dates[2], dates[-3]
    answer = read_client.get(
        f"{BASE}/parcels/{parcel_id}/timeseries",
        params={"signals": "NDVI", "start": str(start), "end": str(end)},
        headers=auth_headers["view-alpha"],
    )
    series = answer.json()["signals"][0]
    assert series["date"] == [d.isoformat() for d in dates if start <= d <= end]
    everything = read_client.get(
        f"{BASE}/parcels/{parcel_id}/timeseries", headers=auth_headers["view-alpha"]
    ).json()
    assert sorted(s["signal"] for s in everything["signals"]) == sorted(SIGNALS)


def test_timeseries_csv_is_the_long_table(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], mdb_rows: pd.DataFrame
) -> None:
    parcel_id = _parcel_with_rows(mdb_rows)
    answer = read_client.get(
        f"{BASE}/parcels/{parcel_id}/timeseries?signals=NDTILL&format=csv",
        headers=auth_headers["view-alpha"],
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert f"parcel-{parcel_id}.csv" in answer.headers["content-disposition"]
    table = pd.read_csv(io.StringIO(answer.text))
    expected = mdb_rows[(mdb_rows["parcel_id"] == parcel_id) & (mdb_rows["signal"] == "NDTILL")]
    assert list(table.columns) == list(expected.columns)
    assert table["date"].tolist() == [d.isoformat() for d in expected["date"]]
    np.testing.assert_allclose(table["mean"], expected["mean"].to_numpy(float), rtol=1e-6)
    assert (table["parcel_id"] == parcel_id).all()


def test_timeseries_errors(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], mdb_rows: pd.DataFrame
) -> None:
    headers = auth_headers["view-alpha"]
    parcel_id = _parcel_with_rows(mdb_rows)
    unknown = read_client.get(f"{BASE}/parcels/987654/timeseries", headers=headers)
    assert unknown.status_code == 404
    assert "987654" in unknown.json()["detail"]
    signal = read_client.get(
        f"{BASE}/parcels/{parcel_id}/timeseries?signals=NDVI,NOPE", headers=headers
    )
    assert signal.status_code == 400
    assert "NOPE" in signal.json()["detail"]
    assert "NDVI" in signal.json()["detail"]
    backwards = read_client.get(
        f"{BASE}/parcels/{parcel_id}/timeseries?start=2024-06-01&end=2024-05-01", headers=headers
    )
    assert backwards.status_code == 400
    bad_date = read_client.get(f"{BASE}/parcels/{parcel_id}/timeseries?start=june", headers=headers)
    assert bad_date.status_code == 400
    season = read_client.get(f"/sites/alpha/seasons/nope/parcels/{parcel_id}", headers=headers)
    assert season.status_code == 404
    assert "nope" in season.json()["detail"]


def test_ratio_signals_are_computed_from_both_polarisations() -> None:
    from capmon.service.routes.markers import _with_ratios

    keys = {"parcel_id": 1, "sensor": "S1A", "orbit": 88, "orbit_direction": "ASC", "tile": None}
    frame = pd.DataFrame(
        [
            {
                **keys,
                "signal": "AMP_VH",
                "date": "2024-05-01",
                "mean": -9.0,
                "count": 40,
                "pixels": 50,
                "product_id": "vh1",
                "date_first": None,
            },
            {
                **keys,
                "signal": "AMP_VV",
                "date": "2024-05-01",
                "mean": -4.0,
                "count": 45,
                "pixels": 50,
                "product_id": "vv1",
                "date_first": None,
            },
            {
                **keys,
                "signal": "AMP_VV",
                "date": "2024-05-07",
                "mean": -5.0,
                "count": 45,
                "pixels": 50,
                "product_id": "vv2",
                "date_first": None,
            },
        ]
    )
    for stat in ("stdev", "min", "max", "median", "p25", "p75"):
        frame[stat] = 0.1
    out = _with_ratios(frame, ["AMP_VVVH"], {"AMP_VV", "AMP_VH"})
    ratio = out[out["signal"] == "AMP_VVVH"]
    assert ratio["mean"].tolist() == [5.0]  # -4 - (-9), only the date with both
    assert ratio["count"].tolist() == [40]
    assert ratio["stdev"].isna().all()


def test_signals_route(read_client: TestClient, auth_headers: dict[str, dict[str, str]]) -> None:
    answer = read_client.get(f"{BASE}/signals", headers=auth_headers["view-alpha"])
    assert answer.status_code == 200
    listed = {s["signal"]: s for s in answer.json()["signals"]}
    assert set(listed) == set(SIGNALS)
    assert listed["NDVI"]["unit"] == "1"
    assert not listed["NDVI"]["derived"]
    assert listed["NDVI"]["dates"] > 3
    assert listed["NDVI"]["first_date"] <= listed["NDVI"]["last_date"]


def test_layers_list_the_declared_crop(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], parcels: pd.DataFrame
) -> None:
    answer = read_client.get(f"{BASE}/layers", headers=auth_headers["view-alpha"])
    assert answer.status_code == 200
    body = answer.json()
    layers = {layer["id"]: layer for layer in body["layers"]}
    crop = layers["crop"]
    assert crop["kind"] == "categorical"
    assert crop["source"] == "declarations"
    assert not crop["dated"]
    assert {c["value"] for c in crop["categories"]} == {int(v) for v in parcels["ori_crop"]}
    assert all(c["colour"].startswith("#") and c["label"] for c in crop["categories"])
    assert "crop_type" in layers
    assert body["parcels"] == len(parcels)
    minx, miny, maxx, maxy = parcels.total_bounds
    assert body["bounds"] == pytest.approx([minx, miny, maxx, maxy])
    assert "{z}/{x}/{y}.mvt?site=alpha" in body["tiles"]
    products = body["rasters"]["products"]
    assert products
    assert all(p["type"] == "l2a" and "NDVI" in p["signals"] for p in products)
    assert "baresoil_status" not in layers  # no bare-soil product in the shared world


def test_parcel_route(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], parcels: pd.DataFrame
) -> None:
    row = parcels.iloc[5]
    parcel_id = int(row["NewID"])
    answer = read_client.get(f"{BASE}/parcels/{parcel_id}", headers=auth_headers["view-alpha"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["attributes"]["ori_id"] == row["ori_id"]
    assert body["attributes"]["ori_crop"] == int(row["ori_crop"])
    assert body["attributes"]["Area_meters"] == pytest.approx(float(row["Area_meters"]))
    assert body["layers"]["crop"]["value"] == int(row["ori_crop"])
    assert body["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert body["bbox"] == pytest.approx(list(row.geometry.bounds))
    assert body["events"] == []
    assert body["products"] == {}
    assert body["links"]["timeseries"].endswith(f"/parcels/{parcel_id}/timeseries")
    missing = read_client.get(f"{BASE}/parcels/987654", headers=auth_headers["view-alpha"])
    assert missing.status_code == 404


ROUTES = (
    "/sites/{site}/seasons/S/signals",
    "/sites/{site}/seasons/S/layers",
    "/sites/{site}/seasons/S/parcels/1",
    "/sites/{site}/seasons/S/parcels/1/timeseries",
    "/sites/{site}/seasons/S/parcels/1/timeseries?format=csv",
    "/sites/{site}/seasons/nope/layers",
)


@pytest.mark.parametrize("route", ROUTES)
def test_site_isolation(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], route: str
) -> None:
    assert read_client.get(route.format(site="beta")).status_code == 401
    for user in ("view-alpha", "op-alpha"):
        answer = read_client.get(route.format(site="beta"), headers=auth_headers[user])
        assert answer.status_code == 403, (user, answer.text)
        assert "beta" in answer.json()["detail"]
        # a site that does not exist answers the same, so names do not leak
        assert (
            read_client.get(route.format(site="gamma"), headers=auth_headers[user]).status_code
            == 403
        )
    own = read_client.get(route.format(site="beta"), headers=auth_headers["view-beta"])
    admin = read_client.get(route.format(site="beta"), headers=auth_headers["admin"])
    expected = 404 if "nope" in route else 200
    assert own.status_code == admin.status_code == expected


# --- with a bare-soil product ------------------------------------------------------------------


@pytest.fixture(scope="module")
def baresoil_home(service_world: ServiceWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the service workspace where ``baresoil`` ran on site alpha."""
    import shutil

    from capmon.processors import RunContext, get_processor

    home = tmp_path_factory.mktemp("baresoil") / "home"
    shutil.copytree(service_world.home, home)
    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            site = get_site(session, "alpha")
            season = get_season(session, site, SEASON)
        processor = get_processor("baresoil")
        processor.run(RunContext(workspace, site, season), processor.parse_parameters({}))
    finally:
        workspace.dispose()
    return home


@pytest.fixture(scope="module")
def baresoil_client(baresoil_home: Path) -> Iterator[TestClient]:
    with TestClient(make_app(baresoil_home)) as client:
        yield client


def _baresoil_folder(home: Path) -> Path:
    folders = list((home / "products" / "alpha" / "baresoil").iterdir())
    assert len(folders) == 1
    return folders[0]


def test_baresoil_layers_values_and_events(
    baresoil_client: TestClient, baresoil_home: Path
) -> None:
    headers = login(baresoil_client, "view-alpha")
    body = baresoil_client.get(f"{BASE}/layers", headers=headers).json()
    layers = {layer["id"]: layer for layer in body["layers"]}
    status_layer = layers["baresoil_status"]
    assert status_layer["dated"]
    assert status_layer["source"] == "baresoil"
    assert status_layer["products"][0]["type"] == "s4c_baresoil"
    assert {c["value"] for c in status_layer["categories"]} == {"BARE", "VEG", "NO_DATA"}
    folder = _baresoil_folder(baresoil_home)
    status = pd.read_parquet(folder / "status.parquet")
    assert [d["start"] for d in status_layer["dates"]] == sorted(
        {str(d.date()) for d in status["dekad"]}
    )
    assert "baresoil_compliance" in layers

    periods = pd.read_csv(folder / "periods.csv")
    parcel_id = int(periods["parcel_id"].iloc[0])
    parcel = baresoil_client.get(f"{BASE}/parcels/{parcel_id}", headers=headers).json()
    bare = [e for e in parcel["events"] if e["kind"] == "bare_soil"]
    mine = periods[periods["parcel_id"] == parcel_id]
    assert [(e["start"], e["end"]) for e in bare] == list(
        zip(mine["start"], mine["end"], strict=True)
    )
    series = parcel["layers"]["baresoil_status"]
    rows = status[status["parcel_id"] == parcel_id].sort_values("dekad")
    assert series["values"] == rows["status"].tolist()
    assert parcel["products"]["baresoil"]["rows"][0]["parcel_id"] == parcel_id


def test_baresoil_layer_is_isolated(baresoil_client: TestClient) -> None:
    beta = login(baresoil_client, "view-beta")
    body = baresoil_client.get(f"/sites/beta/seasons/{SEASON}/layers", headers=beta).json()
    assert "baresoil_status" not in {layer["id"] for layer in body["layers"]}


def status_at(home: Path, day: str) -> dict[int, Any]:
    """The bare-soil status of each parcel in the dekad holding ``day`` (test helper)."""
    status = pd.read_parquet(_baresoil_folder(home) / "status.parquet")
    moment = pd.Timestamp(day)
    rows = status[(status["dekad"] <= moment) & (status["dekad_end"] >= moment)]
    return dict(zip(rows["parcel_id"].astype(int), rows["status"], strict=True))


def test_vector_tiles_carry_the_baresoil_status(
    baresoil_client: TestClient, baresoil_home: Path, parcels: pd.DataFrame
) -> None:
    import mapbox_vector_tile
    from pyproj import Transformer

    from capmon.service.mvt import tiles_covering

    headers = login(baresoil_client, "view-alpha")
    status = pd.read_parquet(_baresoil_folder(baresoil_home) / "status.parquet")
    variety = status.groupby("dekad")["status"].nunique()
    day = str((pd.Timestamp(variety.sort_values().index[-1]) + pd.Timedelta(days=3)).date())
    expected = status_at(baresoil_home, day)
    to_mercator = Transformer.from_crs(4326, 3857, always_xy=True)
    minx, miny, maxx, maxy = parcels.total_bounds
    bounds = (*to_mercator.transform(minx, miny), *to_mercator.transform(maxx, maxy))
    (x0, x1), (y0, y1) = tiles_covering(bounds, 14)
    seen: dict[int, Any] = {}
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            answer = baresoil_client.get(
                f"/tiles/parcels/14/{x}/{y}.mvt",
                params={"site": "alpha", "season": SEASON, "layer": "baresoil_status", "date": day},
                headers=headers,
            )
            assert answer.status_code == 200
            if answer.content:
                for feature in mapbox_vector_tile.decode(answer.content)["parcels"]["features"]:
                    seen[feature["properties"]["parcel_id"]] = feature["properties"].get("value")
    assert set(seen) == set(parcels["NewID"].astype(int))
    assert seen == {k: expected.get(k) for k in seen}
    assert len(set(seen.values())) > 1
    outside = baresoil_client.get(
        f"/tiles/parcels/14/{x0}/{y0}.mvt",
        params={
            "site": "alpha",
            "season": SEASON,
            "layer": "baresoil_status",
            "date": "2031-01-01",
        },
        headers=headers,
    )
    assert outside.status_code == 404  # no tile of the layer on a day outside its periods
    assert "2031-01-01" in outside.json()["detail"]
