"""Processes: descriptions generated from the registry, input validation, access rules, and
property-based tests of the process and job routes from the OpenAPI document (schemathesis):
no input gives a 500."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from capmon.orchestrator.execute import ClusterSpec
from capmon.processors import all_processors
from capmon.service.routes.processes import _preferences, _wait_seconds
from capmon.sites import SeasonDates, create_season, create_site, get_site
from capmon.workspace import open_workspace
from tests.service.conftest import SEASON, LiveService, ServiceWorld, login, make_app

OGC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"


def execute(client: TestClient, headers: dict[str, str], process: str, **inputs: Any) -> Any:
    return client.post(f"/processes/{process}/execution", headers=headers, json={"inputs": inputs})


def test_process_list_is_the_registry(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    answer = read_client.get("/processes", headers=auth_headers["view-beta"])
    assert answer.status_code == 200
    summaries = answer.json()["processes"]
    assert [p["id"] for p in summaries] == [p.id for p in all_processors()]
    for summary in summaries:
        # asynchronous only: OGC API - Processes 1.0 runs a process that also advertises
        # sync-execute synchronously when the client sends no Prefer (cuiman never does)
        assert summary["jobControlOptions"] == ["async-execute", "dismiss"]
        assert summary["outputTransmission"] == ["reference"]
        assert summary["links"][0]["href"].endswith(f"/processes/{summary['id']}")
        assert "inputs" not in summary


def test_process_description_inputs_come_from_the_parameter_model(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    from capmon import __version__
    from capmon.processors.baresoil.parameters import BareSoilParameters

    description = read_client.get("/processes/baresoil", headers=auth_headers["view-alpha"]).json()
    assert description["id"] == "baresoil"
    assert description["version"] == __version__
    inputs = description["inputs"]
    assert list(inputs) == ["site", "season", *BareSoilParameters.model_fields]
    assert inputs["site"]["minOccurs"] == inputs["season"]["minOccurs"] == 1
    assert inputs["site"]["schema"] == {"type": "string"}
    ndvi = inputs["ndvi_max"]
    assert ndvi["minOccurs"] == 0
    assert ndvi["schema"] == {"type": "number", "default": BareSoilParameters().ndvi_max}
    assert ndvi["description"] == BareSoilParameters.model_fields["ndvi_max"].description
    assert inputs["s1_weight"]["schema"]["maximum"] == 2
    assert inputs["start"]["schema"] == {
        "type": "string",
        "format": "date",
        "nullable": True,
        "default": None,
    }
    assert list(description["outputs"]) == ["baresoil"]
    rels = {entry["rel"] for entry in description["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/execute" in rels
    # a processor without a season: the season input is optional
    multiannual = read_client.get("/processes/multiannual", headers=auth_headers["admin"])
    assert multiannual.json()["inputs"]["season"]["minOccurs"] == 0


def test_unknown_process_is_no_such_process(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    headers = auth_headers["admin"]
    for answer in (
        read_client.get("/processes/l9z", headers=headers),
        execute(read_client, headers, "l9z", site="alpha", season=SEASON),
    ):
        assert answer.status_code == 404
        assert answer.json()["type"] == OGC + "no-such-process"
        assert "l9z" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("inputs", "field", "message"),
    [
        ({"season": SEASON}, "inputs.site", "required"),
        ({"site": "alpha"}, "inputs.season", "required"),
        ({"site": 3, "season": SEASON}, "inputs.site", "non-empty string"),
        ({"site": "alpha", "season": "winter"}, "inputs.season", "no season 'winter'"),
        ({"site": "alpha", "season": SEASON, "ndvi_max": "high"}, "inputs.ndvi_max", "number"),
        ({"site": "alpha", "season": SEASON, "max_gap": -1}, "inputs.max_gap", "greater than"),
        ({"site": "alpha", "season": SEASON, "speed": 3}, "inputs.speed", "no input 'speed'"),
        ({"site": "alpha", "season": SEASON, "cover_start": "13-45"}, "inputs", "13-45"),
        (
            {"site": "alpha", "season": SEASON, "mdb": {"href": "http://x/mdb"}},
            "inputs.mdb",
            "by reference",
        ),
    ],
)
def test_invalid_inputs_are_400_naming_the_input(
    read_client: TestClient,
    auth_headers: dict[str, dict[str, str]],
    inputs: dict[str, Any],
    field: str,
    message: str,
) -> None:
    answer = execute(read_client, auth_headers["op-alpha"], "baresoil", **inputs)
    assert answer.status_code == 400, answer.text
    document = answer.json()
    assert document["type"] == OGC + "invalid-parameter"
    assert [e["field"] for e in document["errors"]] == [field]
    assert message in document["errors"][0]["message"]
    assert field in document["detail"]


def test_qualified_values_are_unwrapped(
    read_client: TestClient, auth_headers: dict[str, dict[str, str]]
) -> None:
    answer = execute(
        read_client,
        auth_headers["op-alpha"],
        "baresoil",
        site={"value": "alpha"},
        season=SEASON,
        ndvi_max={"value": "x", "mediaType": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "inputs.ndvi_max"


def test_who_may_execute(read_client: TestClient, auth_headers: dict[str, dict[str, str]]) -> None:
    for user, site in (("view-alpha", "alpha"), ("op-beta", "alpha"), ("op-alpha", "beta")):
        answer = execute(read_client, auth_headers[user], "baresoil", site=site, season=SEASON)
        assert answer.status_code == 403, (user, site)
    unknown = execute(read_client, auth_headers["admin"], "baresoil", site="zeta", season="S")
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["field"] == "inputs.site"
    hidden = execute(read_client, auth_headers["op-alpha"], "baresoil", site="zeta", season="S")
    assert hidden.status_code == 403  # site names do not leak to non-admins


@pytest.mark.parametrize(
    ("process", "field", "value"),
    [
        ("baresoil", "mdb", "/etc"),
        ("baresoil", "parcels", "../../beta/2024/v1/parcels.parquet"),
        ("multiannual", "l4a", ["2024=/tmp/l4a"]),
    ],
)
def test_operators_name_only_files_of_their_site(
    read_client: TestClient,
    auth_headers: dict[str, dict[str, str]],
    service_world: ServiceWorld,
    process: str,
    field: str,
    value: Any,
) -> None:
    if field == "parcels":  # a path into site beta's folders, relative to alpha's
        value = str(service_world.home / "parcels" / "alpha" / value)
    inputs = {"site": "alpha", "season": SEASON, field: value}
    answer = execute(read_client, auth_headers["op-alpha"], process, **inputs)
    assert answer.status_code == 403, answer.text
    assert f"input {field!r}" in answer.json()["detail"]


def test_prefer_header() -> None:
    assert _preferences("respond-async, wait=10") == {"respond-async": "", "wait": "10"}
    assert _preferences('Wait="5"; x=1,,return=minimal') == {"wait": "5", "return": "minimal"}
    assert _wait_seconds(_preferences(None), 60) is None  # asynchronous by default
    assert _wait_seconds(_preferences("wait"), 60) == 60
    assert _wait_seconds(_preferences("wait=5"), 60) == 5
    assert _wait_seconds(_preferences("wait=500"), 60) == 60
    assert _wait_seconds(_preferences("wait=soon"), 60) == 60
    assert _wait_seconds(_preferences("respond-async, wait=5"), 60) == 5


def test_execution_is_documented_in_the_openapi_document(read_client: TestClient) -> None:
    document = read_client.get("/openapi.json").json()
    operation = document["paths"]["/processes/{processID}/execution"]["post"]
    assert "Location" in operation["responses"]["201"]["headers"]
    assert {"201", "400", "401", "403", "404"} <= set(operation["responses"])
    assert "200" not in operation["responses"]  # never synchronous
    assert "422" not in operation["responses"]  # validation errors answer 400
    assert {p["name"] for p in operation["parameters"]} == {"processID", "Prefer"}
    for path in ("/jobs", "/jobs/{jobID}", "/jobs/{jobID}/results", "/jobs/{jobID}/pause"):
        assert path in document["paths"]


# --- property-based tests (schemathesis) -------------------------------------------------

FAST_FAIL_SITE, FAST_FAIL_SEASON = "gamma", "G"
"""A site without declarations: every processor run on it fails at once, so the valid
executions the tests generate stay cheap."""


@dataclass(frozen=True)
class FuzzService:
    url: str
    client: TestClient
    """An in-process client of the same app, for the set-up requests."""


@pytest.fixture(scope="module")
def fuzz_service(
    service_world: ServiceWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzService]:
    """The service over HTTP on a workspace copy with site gamma, one Dask worker."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    shutil.copytree(service_world.home, home)
    workspace = open_workspace(home)
    try:
        with workspace.session() as session:
            gamma = create_site(session, FAST_FAIL_SITE, get_site(session, "alpha").aoi)
            create_season(
                session,
                gamma,
                FAST_FAIL_SEASON,
                SeasonDates.parse(
                    f"{service_world.year}-02-01",
                    f"{service_world.year}-11-30",
                    f"{service_world.year}-06-15",
                ),
            )
    finally:
        workspace.dispose()
    app = make_app(home, cluster=ClusterSpec(workers=1, threads=1), sync_wait_seconds=2.0)
    with LiveService(app) as live:
        yield FuzzService(live.url, TestClient(app))


def _schema(service: FuzzService) -> Any:
    import schemathesis

    return schemathesis.openapi.from_dict(service.client.get("/openapi.json").json())


FUZZ = hypothesis.settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


def _cases(operation: Any) -> st.SearchStrategy[Any]:
    from schemathesis import GenerationMode

    positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    return st.one_of(positive, positive, negative)  # negative cases often drop the token


def _send(service: FuzzService, case: Any, headers: dict[str, str]) -> int:
    """Send a generated case over HTTP with a real token; fail on any 5xx."""
    from schemathesis.checks import not_a_server_error

    answer = case.call(base_url=service.url, headers=headers, timeout=60)
    case.validate_response(answer, checks=[not_a_server_error])
    return int(answer.status_code)


def test_no_server_error_on_any_execution_request(fuzz_service: FuzzService) -> None:
    schema = _schema(fuzz_service)
    operation = schema["/processes/{processID}/execution"]["POST"]
    tokens = {user: login(fuzz_service.client, user) for user in ("admin", "op-alpha", "view-beta")}
    processes = [p.id for p in all_processors()]
    statuses: list[int] = []

    @FUZZ
    @given(
        case=_cases(operation),
        process=st.one_of(st.none(), st.sampled_from(processes)),
        user=st.sampled_from(sorted(tokens)),
    )
    def check(case: Any, process: str | None, user: str) -> None:
        if process is not None:
            case.path_parameters = {**(case.path_parameters or {}), "processID": process}
        statuses.append(_send(fuzz_service, case, tokens[user]))

    check()
    assert {400, 404} <= set(statuses)  # past authentication, into validation


def _inputs_document(description: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document whose one operation takes a process's parameters (its inputs
    other than site and season, with their schemas) as its body."""
    inputs = {
        name: spec for name, spec in description["inputs"].items() if name not in ("site", "season")
    }
    body = {
        "type": "object",
        "properties": {name: spec["schema"] for name, spec in inputs.items()},
        "required": [name for name, spec in inputs.items() if spec["minOccurs"] > 0],
        "additionalProperties": False,
    }
    operation = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": "run"}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": description["id"], "version": "1"},
        "paths": {"/run": {"post": operation}},
    }


NO_NETWORK = {"builtin_sources": False}
"""The acquisition would search the internet with its built-in sources: not in tests."""


def test_executions_with_inputs_generated_from_the_process_descriptions(
    fuzz_service: FuzzService,
) -> None:
    """Inputs valid for a process's description: a job (201, or 200 when it ends within the
    wait) or, for values the parameter model's own rules refuse, a 400; every job ends."""
    import schemathesis

    admin = login(fuzz_service.client, "admin")
    strategies = []
    for processor in all_processors():
        description = fuzz_service.client.get(f"/processes/{processor.id}", headers=admin).json()
        operation = schemathesis.openapi.from_dict(_inputs_document(description))["/run"]["POST"]
        fixed = {k: v for k, v in NO_NETWORK.items() if k in description["inputs"]}
        strategies.append(st.tuples(st.just(processor.id), st.just(fixed), operation.as_strategy()))
    answers: list[httpx.Response] = []

    @hypothesis.settings(FUZZ, max_examples=30)
    @given(run=st.one_of(strategies), prefer=st.sampled_from([None, "wait=1", "respond-async"]))
    def check(run: tuple[str, dict[str, Any], Any], prefer: str | None) -> None:
        process, fixed, case = run
        inputs = {**case.body, **fixed, "site": FAST_FAIL_SITE, "season": FAST_FAIL_SEASON}
        answer = httpx.post(
            f"{fuzz_service.url}/processes/{process}/execution",
            headers={**admin, **({"Prefer": prefer} if prefer else {})},
            json={"inputs": inputs},
            timeout=60,
        )
        assert answer.status_code in (200, 201, 400), answer.text
        answers.append(answer)

    check()
    started = [a.json()["jobID"] for a in answers if a.status_code == 201]
    assert started or any(a.status_code == 200 for a in answers)
    deadline = time.monotonic() + 60
    for job_id in started:  # the cheap failures do not pile up
        while (
            status := fuzz_service.client.get(f"/jobs/{job_id}", headers=admin).json()["status"]
        ) not in ("successful", "failed"):
            assert time.monotonic() < deadline, (job_id, status)
            time.sleep(0.1)


def test_no_server_error_on_any_job_request(fuzz_service: FuzzService) -> None:
    schema = _schema(fuzz_service)
    admin = login(fuzz_service.client, "admin")
    job_ids = []
    for process in ("baresoil", "mdb", "multiannual"):
        answer = execute(
            fuzz_service.client, admin, process, site=FAST_FAIL_SITE, season=FAST_FAIL_SEASON
        )
        assert answer.status_code == 201, answer.text
        job_ids.append(answer.json()["jobID"])
    tokens = {user: login(fuzz_service.client, user) for user in ("admin", "op-alpha", "view-beta")}
    operations = [
        schema[path][method]
        for path, methods in (
            ("/jobs", ("GET",)),
            ("/jobs/{jobID}", ("GET", "DELETE")),
            ("/jobs/{jobID}/results", ("GET",)),
            ("/jobs/{jobID}/logs", ("GET",)),
            ("/jobs/{jobID}/pause", ("POST",)),
            ("/jobs/{jobID}/resume", ("POST",)),
            ("/jobs/{jobID}/cancel", ("POST",)),
            ("/processes", ("GET",)),
            ("/processes/{processID}", ("GET",)),
        )
        for method in methods
    ]
    statuses: list[int] = []

    @hypothesis.settings(FUZZ, max_examples=60)
    @given(
        case=st.one_of(*[_cases(op) for op in operations]),
        job_id=st.one_of(st.none(), st.sampled_from(job_ids)),
        user=st.sampled_from(sorted(tokens)),
    )
    def check(case: Any, job_id: str | None, user: str) -> None:
        if job_id is not None and "jobID" in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters, "jobID": job_id}
        statuses.append(_send(fuzz_service, case, tokens[user]))

    check()
    assert 200 in statuses
    assert 404 in statuses
