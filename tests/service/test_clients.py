"""ESA's own clients against a loopback ``capmon serve``: cuiman 0.3.1 (the OGC API - Processes
client) and sen4cap-client 0.2.0 with its default settings and only the URLs changed.

The clients need Python >= 3.12: the test setup makes a venv with such an interpreter from
the machine (``python3.13``/``python3.12`` on the PATH or pyenv's), installs both clients from
the package registry once (cached under ``~/.cache/capmon/client-venvs``) and runs a driver
script there, which reports what the clients saw as JSON. Skipped, with the reason, when no
such interpreter exists or the install fails (offline).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capmon.orchestrator.execute import ClusterSpec
from tests.service.conftest import PASSWORD, SEASON, LiveService, ServiceWorld, make_app

PINS = ("cuiman==0.3.1", "sen4cap-client==0.2.0")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "capmon" / "client-venvs"
INSTALL_SECONDS = 900

DRIVER = r'''
"""Drive cuiman or sen4cap-client through login, list, describe, execute, poll, results and
a download; print what they saw as JSON."""
import json
import sys
import time

import httpx2
from gavicore.models import Link, ProcessRequest

args = json.loads(sys.argv[1])
url = args["url"]
credentials = {"username": args["user"], "password": args["password"]}
if args["client"] == "cuiman":
    from cuiman.api import Client

    # cuiman's "login" mode: username and password posted to the token endpoint, no grant_type
    auth = {"auth_type": "login", "login_url": url + "/auth/token", **credentials}
    client = Client(api_url=url, auth=auth)
else:
    from sen4cap_client.api import create_client

    # Sen4CAP's defaults (login at /auth/login, the token in X-Auth-Token): only URLs change
    client = create_client(api_url=url, auth={"login_url": url + "/auth/login", **credentials})
report = {"auth_headers": []}
try:
    client.login(interactive=False)
    report["auth_headers"] = sorted(client.config.auth.auth_headers)
    report["processes"] = [p.id for p in client.get_processes().processes]
    description = client.get_process("baresoil")
    report["job_control"] = [option.value for option in description.jobControlOptions]
    report["inputs"] = sorted(description.inputs or {})
    request = ProcessRequest(inputs={"site": "alpha", "season": args["season"]})
    report["runs"] = []
    for prefer in (None, "respond-async"):
        headers = {"Prefer": prefer} if prefer else {}
        created = client.execute_process("baresoil", request, headers=headers)
        run = {"prefer": prefer, "job": created.jobID, "created": created.status.value}
        deadline = time.monotonic() + 240
        while (status := client.get_job(created.jobID)).status.value in ("accepted", "running"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        run["status"] = status.status.value
        results = client.get_job_results(created.jobID).root or {}
        run["results"] = {}
        for name, value in results.items():
            assert isinstance(value, Link), value
            run["results"][name] = {"href": value.href, "rel": value.rel}
        # download: the result's STAC item, then its first asset, with the client's token
        headers = client.config.auth.auth_headers
        with httpx2.Client(headers=headers, timeout=60) as http:
            item = http.get(run["results"]["baresoil"]["href"]).raise_for_status().json()
            asset = sorted(item["assets"].values(), key=lambda a: a["href"])[0]
            data = http.get(asset["href"]).raise_for_status()
            run["download"] = {"item": item["id"], "bytes": len(data.content)}
            run["anonymous_item"] = httpx2.get(run["results"]["baresoil"]["href"]).status_code
        report["runs"].append(run)
    report["listed"] = [job.jobID for job in client.get_jobs().jobs]
    dismissed = client.dismiss_job(report["runs"][0]["job"])
    report["dismissed"] = dismissed.status.value
finally:
    client.close()
print(json.dumps(report))
'''


def _client_python() -> str | None:
    """An interpreter >= 3.12 of this machine (the clients need one), or None."""
    candidates = [shutil.which(name) for name in ("python3.13", "python3.12")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob("3.1[2-9]*/bin/python"), reverse=True)]
    if sys.version_info >= (3, 12):
        candidates.insert(0, sys.executable)
    for candidate in candidates:
        if not candidate:
            continue
        check = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info >= (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.stdout.strip() == "True":
            return candidate
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process at a time (pytest -n 2) builds the cached venv."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def client_venv() -> Path:
    """The Python of a venv with both clients installed (made once, then cached)."""
    python = _client_python()
    if python is None:
        pytest.skip("cuiman and sen4cap-client need Python >= 3.12: none on this machine")
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    folder = CACHE / f"py{version}-{'-'.join(p.replace('==', '') for p in PINS)}"
    done = folder / ".installed"
    with _locked(CACHE / f"{folder.name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            made = subprocess.run(
                [python, "-m", "venv", str(folder)], capture_output=True, text=True, check=False
            )
            if made.returncode != 0:
                pytest.skip(f"cannot make a Python {version} venv: {made.stderr[-500:]}")
            try:
                install = subprocess.run(
                    [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *PINS],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=INSTALL_SECONDS,
                )
            except subprocess.TimeoutExpired:
                pytest.skip(f"installing {' '.join(PINS)} took over {INSTALL_SECONDS} s")
            if install.returncode != 0:
                pytest.skip(f"cannot install {' '.join(PINS)} (offline?): {install.stderr[-800:]}")
            done.write_text(" ".join(PINS) + "\n")
    return folder / "bin" / "python"


@pytest.fixture(scope="module")
def live_url(
    service_world: ServiceWorld, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    home = tmp_path_factory.mktemp("clients") / "home"
    shutil.copytree(service_world.home, home)
    with LiveService(make_app(home, cluster=ClusterSpec(workers=1, threads=1))) as service:
        yield service.url


def drive(python: Path, client: str, url: str, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "drive_client.py"
    script.write_text(DRIVER)
    arguments = {"client": client, "url": url, "user": "op-alpha", "password": PASSWORD}
    arguments["season"] = SEASON
    # a private HOME: the clients' profiles and saved credentials stay out of the user's
    environment = {
        **os.environ,
        "HOME": str(tmp_path),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
    answer = subprocess.run(
        [str(python), str(script), json.dumps(arguments)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=environment,
        cwd=tmp_path,
    )
    assert answer.returncode == 0, answer.stderr[-4000:]
    report: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
    return report


def _check_flow(report: dict[str, Any], url: str) -> None:
    assert "baresoil" in report["processes"]
    # async only: without Prefer the standard runs such a process asynchronously (201)
    assert report["job_control"] == ["async-execute", "dismiss"]
    assert {"site", "season"} <= set(report["inputs"])
    assert [run["prefer"] for run in report["runs"]] == [None, "respond-async"]
    for run in report["runs"]:
        assert run["created"] in ("accepted", "running", "successful"), run
        assert run["status"] == "successful", run
        link = run["results"]["baresoil"]
        assert link["rel"] == "item"
        assert link["href"].startswith(f"{url}/stac/collections/baresoil/items/alpha.")
        assert run["download"]["item"] == link["href"].rsplit("/", 1)[1]
        assert run["download"]["bytes"] > 0
        assert run["anonymous_item"] == 401  # nothing is published on this site
    assert {run["job"] for run in report["runs"]} <= set(report["listed"])
    assert report["dismissed"] == "dismissed"


def test_cuiman_login_mode_drives_the_whole_flow(
    client_venv: Path, live_url: str, tmp_path: Path
) -> None:
    report = drive(client_venv, "cuiman", live_url, tmp_path)
    assert report["auth_headers"] == ["Authorization"]
    _check_flow(report, live_url)


def test_sen4cap_client_defaults_with_only_the_url_changed(
    client_venv: Path, live_url: str, tmp_path: Path
) -> None:
    report = drive(client_venv, "sen4cap", live_url, tmp_path)
    assert report["auth_headers"] == ["X-Auth-Token"]
    _check_flow(report, live_url)
