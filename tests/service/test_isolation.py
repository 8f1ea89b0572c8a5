"""Site isolation across every route that names a site: a viewer of site alpha gets 403 for
site beta on all of them (and an operator of alpha too), whatever the method; the routes are
read from the OpenAPI document, so a new route is checked without editing this test."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

PATH_VALUES = {
    "site": "beta",
    "season": "S",
    "parcel_id": "1",
    "z": "14",
    "x": "8400",
    "y": "5500",
    "signal": "NDVI",
}
QUERY_VALUES: dict[str, Any] = {"site": "beta", "season": "S", "year": 2024}


def _site_routes(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    routes = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or method in ("parameters", "head", "options"):
                continue
            parameters = operation.get("parameters", [])
            if not any(p["name"] == "site" for p in parameters):
                continue
            url = path
            query: dict[str, Any] = {}
            for parameter in parameters:
                name = parameter["name"]
                if parameter["in"] == "path":
                    url = url.replace("{" + name + "}", PATH_VALUES.get(name, "1"))
                elif parameter["in"] == "query" and (
                    parameter.get("required") or name in ("site", "season")
                ):
                    query[name] = QUERY_VALUES.get(name, "1")
            routes.append((method.upper(), url, query))
    return routes


@pytest.mark.parametrize("user", ["view-alpha", "op-alpha"])
def test_every_route_naming_a_site_refuses_another_sites_user(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]], user: str
) -> None:
    routes = _site_routes(read_client.get("/openapi.json").json())
    assert len(routes) >= 20, routes
    refused = []
    for method, url, query in routes:
        answer = read_client.request(method, url, params=query, headers=auth_headers[user])
        if answer.status_code != 403:
            refused.append((method, url, answer.status_code, answer.text[:200]))
    assert refused == []


def test_the_sites_own_viewer_is_let_through_on_the_read_routes(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    routes = _site_routes(read_client.get("/openapi.json").json())
    for method, url, query in routes:
        if method != "GET":
            continue
        answer = read_client.request(method, url, params=query, headers=auth_headers["view-beta"])
        assert answer.status_code not in (401, 403), (url, answer.status_code, answer.text[:200])
