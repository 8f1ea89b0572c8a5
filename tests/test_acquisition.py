"""Acquisition against a real STAC API on loopback (tests/stac_server.py): search, resumable
checksummed downloads, 429 answers, corrupted files, a provider that is down, credentials kept
out of logs and history, quotas, dry runs, reruns that download nothing, the CLI and the
processor. The items are the Sentinel-2 products of a small synthetic world."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from capmon.acquisition import (
    CollectionConfig,
    DataSource,
    acquire_season,
    list_history,
    load_sources,
    redact,
    select_sources,
)
from capmon.acquisition.download import RemoteFile, fetch, parse_multihash, verify
from capmon.acquisition.http import SourceClient, SourceUnavailableError, retry_after
from capmon.acquisition.sources import Credentials, parse_sources
from capmon.catalog.models import DownloadStatus, Product
from capmon.cli.main import app
from capmon.errors import InputError, NotFoundError
from capmon.processors import RunContext, get_processor
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.sources import open_product
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import Workspace, open_workspace
from tests.stac_server import Faults, StacServer, closed_port_url

SECRET = "s3cr3t-t0ken-4cq"
COMMON = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B11": "swir16",
    "B12": "swir22",
}
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SynthWorld:
    return generate_world(
        tmp_path_factory.mktemp("acq") / "w",
        parcels=40,
        window_km=1.2,
        revisit_days=40,
        s2_format="cog",
        sentinel1=False,
        seed=7,
    )


def _safes(world: SynthWorld) -> list[Path]:
    assert world.s2_dir is not None
    return sorted(p for p in world.s2_dir.iterdir() if p.name.endswith(".SAFE"))


def _multihash(payload: bytes, kind: str = "sha256") -> str:
    if kind == "md5":
        return "d50110" + hashlib.md5(payload).hexdigest()
    return "1220" + hashlib.sha256(payload).hexdigest()


def _items(
    world: SynthWorld, server: StacServer, *, style: str = "earth-search"
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """STAC items of the world's SAFE products, Earth Search style (common-name keys,
    http hrefs, SHA-256) or CDSE style (B04_10m keys, s3 hrefs + https alternates, MD5)."""
    items: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    for index, safe in enumerate(_safes(world)):
        reader = open_product(safe)
        info = reader.info
        angles = reader.angles()
        assets: dict[str, Any] = {}
        for band in [*COMMON, "SCL"]:
            resolution = 10 if band in ("B02", "B03", "B04", "B08") else 20
            path = next(safe.rglob(f"*_{band}_{resolution}m.tif"))
            name = f"{info.name}/{path.name}"
            payload = path.read_bytes()
            files[name] = payload
            asset: dict[str, Any] = {
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "file:size": len(payload),
            }
            if band != "SCL":
                asset["eo:bands"] = [{"name": band, "common_name": COMMON[band]}]
                asset["raster:bands"] = [{"nodata": 0, "scale": 0.0001, "offset": -0.1}]
            if style == "earth-search":
                key = "scl" if band == "SCL" else COMMON[band]
                asset["href"] = server.file_url(name)
                asset["file:checksum"] = _multihash(payload)
            else:
                key = f"{band}_{resolution}m"
                asset["href"] = f"s3://eodata/Sentinel-2/{name}"
                asset["alternate"] = {"https": {"href": server.file_url(name)}}
                asset["file:checksum"] = _multihash(payload, "md5")
            assets[key] = asset
        assets["thumbnail"] = {"href": server.file_url("nothing.png"), "roles": ["thumbnail"]}
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": info.name,
                "collection": "sentinel-2-l2a",
                "geometry": json.loads(json.dumps(info.footprint.__geo_interface__)),
                "bbox": list(info.footprint.bounds),
                "properties": {
                    "datetime": info.acquired_at.isoformat().replace("+00:00", "Z"),
                    "platform": f"sentinel-2{info.sensor[-1].lower() if info.sensor else 'a'}",
                    "s2:mgrs_tile": info.tile,
                    "sat:relative_orbit": info.relative_orbit,
                    "eo:cloud_cover": [5.0, 80.0, 20.0, 95.0][index % 4],
                    "view:sun_elevation": 90.0 - angles.sun_zenith,
                    "view:sun_azimuth": angles.sun_azimuth,
                    "view:incidence_angle": angles.view_zenith,
                    "view:azimuth": angles.view_azimuth,
                },
                "links": [{"rel": "self", "href": f"{server.url}/items/{info.name}"}],
                "assets": assets,
            }
        )
    return items, files


def _source(server_url: str, name: str = "loop", **changes: Any) -> DataSource:
    source = DataSource(
        name=name,
        url=server_url,
        collections=(CollectionConfig("sentinel-2-l2a", "s2_l2a"),),
        auth="bearer",
        concurrency=3,
        backoff_seconds=0.05,
        max_backoff_seconds=2.0,
        timeout_seconds=10.0,
        max_retries=3,
        page_size=3,
    )
    return replace(source, **changes)


def _site(workspace: Workspace, world: SynthWorld) -> None:
    year = world.years[0]
    with workspace.session() as session:
        site = create_site(session, "tiny", world.aoi)
        create_season(session, site, "S", SeasonDates.parse(f"{year}-01-01", f"{year}-12-31"))


@pytest.fixture
def server(world: SynthWorld) -> Iterator[StacServer]:
    stac = StacServer([], {}, Faults(token=SECRET))
    items, files = _items(world, stac)
    stac.items, stac.files = items, files
    with stac.running():
        yield stac


def _names(items: list[dict[str, Any]], *clouds: float) -> list[str]:
    return [i["id"] for i in items if i["properties"]["eo:cloud_cover"] in clouds]


# --------------------------------------------------------------------------------------------
# configuration, redaction, checksums, the history table


def test_download_history_migration_matches_the_model(workspace: Workspace) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from capmon.catalog.models import Base

    def only_history(name: str | None, kind: str, _parent: object) -> bool:
        return kind != "table" or name == "download_history"

    with workspace.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": only_history})
        differences = compare_metadata(context, Base.metadata)
    assert [d for d in differences if "download_history" in repr(d)] == []
    assert "download_history" in repr(Base.metadata.tables)


def test_sources_file_overrides_builtins_and_refuses_credentials(tmp_path: Path) -> None:
    builtin = load_sources(tmp_path)
    assert builtin is not None
    assert [s.name for s in builtin] == ["earth-search", "cdse"]
    assert load_sources(tmp_path, builtin=False) is None
    file = tmp_path / "sources.toml"
    file.write_text(
        "[sources.cdse]\nenabled = false\nquota_products_per_day = 10\n\n"
        '[sources.rtc]\nurl = "https://stac.example.org/v1"\nauth = "bearer"\n'
        '[[sources.rtc.collections]]\nid = "s1-rtc"\nkind = "s1_rtc"\n'
        'convention = "gamma0_db"\norbits = [37, 88]\n'
    )
    sources = {s.name: s for s in load_sources(tmp_path) or []}
    assert list(sources) == ["earth-search", "cdse", "rtc"]
    assert not sources["cdse"].enabled
    assert sources["cdse"].quota_products_per_day == 10
    assert sources["cdse"].url == "https://stac.dataspace.copernicus.eu/v1"
    assert sources["rtc"].collections[0].orbits == (37, 88)
    assert sources["rtc"].collections[0].backscatter_convention == "gamma0_db"
    enabled = select_sources(list(sources.values()), None, None)
    assert [s.name for s in enabled] == ["earth-search", "rtc"]
    assert [s.name for s in select_sources(list(sources.values()), None, ["s1_rtc"])] == ["rtc"]
    with pytest.raises(NotFoundError, match="no source offers collection"):
        select_sources(list(sources.values()), None, ["landsat_l2"])
    with pytest.raises(NotFoundError, match="no data source nope"):
        select_sources(list(sources.values()), ["nope"], None)
    # credentials come from the environment, never from the file
    env = {"CAPMON_SOURCE_RTC_TOKEN": SECRET}
    assert sources["rtc"].credentials(env).token == SECRET
    assert SECRET not in repr(sources["rtc"].credentials(env))
    assert sources["rtc"].missing_credentials(Credentials()) == "set CAPMON_SOURCE_RTC_TOKEN"
    bad = tmp_path / "bad.toml"
    bad.write_text('[sources.x]\nurl = "https://a"\npassword = "p"\n')
    with pytest.raises(InputError, match="must not be written in the sources file"):
        parse_sources(bad)
    bad.write_text('[sources.x]\nurl = "https://a"\nspeed = 3\n')
    with pytest.raises(InputError, match=r"bad.toml \[sources.x\]: unknown key\(s\) speed"):
        parse_sources(bad)
    bad.write_text('[sources.x]\nurl = "https://a"\n')
    with pytest.raises(InputError, match="needs a url and collections"):
        parse_sources(bad)
    bad.write_text(
        '[sources.x]\nurl = "https://a"\n[[sources.x.collections]]\nid="c"\nkind="l1c"\n'
    )
    with pytest.raises(InputError, match="kind 'l1c' is not one of"):
        parse_sources(bad)


def test_redaction_of_tokens_userinfo_and_signed_urls() -> None:
    text = (
        f"GET https://user:pw@host/a.tif?X-Amz-Signature=abc123&x=1 failed; Bearer {SECRET}; "
        f"https://h/b.tif?sig=zzz&se=2024; token {SECRET}"
    )
    cleaned = redact(text, [SECRET])
    assert SECRET not in cleaned
    assert "pw@" not in cleaned
    assert "abc123" not in cleaned
    assert "sig=***" in cleaned
    assert "x=1" in cleaned
    assert "https://***@host/a.tif" in cleaned


def test_multihash_checksums(tmp_path: Path) -> None:
    payload = b"capmon" * 1000
    assert parse_multihash(_multihash(payload)) == ("sha256", hashlib.sha256(payload).digest())
    assert parse_multihash(_multihash(payload, "md5"))[0] == "md5"
    with pytest.raises(InputError, match="unknown to capmon"):
        parse_multihash("9901" + "00")
    path = tmp_path / "f.bin"
    path.write_bytes(payload)
    remote = RemoteFile("f", "http://x", path, len(payload), _multihash(payload))
    assert verify(path, remote) is None
    assert verify(path, replace(remote, checksum=_multihash(b"other"))) == (
        "checksum mismatch (sha256)"
    )
    assert verify(path, replace(remote, size=3, checksum=None)) == (
        f"size {len(payload)} bytes, expected 3"
    )


# --------------------------------------------------------------------------------------------
# one file: interruptions, 429, corruption


def _client(server: StacServer, **changes: Any) -> SourceClient:
    return SourceClient(_source(server.url, **changes), Credentials(token=SECRET))


def _remote(server: StacServer, tmp_path: Path) -> tuple[str, RemoteFile]:
    name = next(n for n in server.files if n.endswith("_B04_10m.tif"))
    payload = server.files[name]
    remote = RemoteFile(
        "red", server.file_url(name), tmp_path / "red.tif", len(payload), _multihash(payload)
    )
    return name, remote


def test_an_interrupted_download_resumes_from_the_part(server: StacServer, tmp_path: Path) -> None:
    name, remote = _remote(server, tmp_path)
    server.faults.cut.add(name)
    with _client(server) as client:
        fetched = fetch(client, remote)
    assert fetched.retries == 1
    assert remote.target.read_bytes() == server.files[name]
    assert not remote.target.with_name("red.tif.part").exists()
    ranges = [r.range for r in server.file_requests(name)]
    half = len(server.files[name]) // 2
    assert ranges == [None, f"bytes={half}-"]  # the second request asks only for the rest
    with _client(server) as client:  # a verified file is kept as it is
        assert fetch(client, remote).already_there
    assert len(server.file_requests(name)) == 2


def test_a_429_slows_down_and_succeeds(server: StacServer, tmp_path: Path) -> None:
    name, remote = _remote(server, tmp_path)
    server.faults.limited[name] = 2
    server.faults.retry_after = "0.4"
    with _client(server) as client:
        fetched = fetch(client, remote)
    assert fetched.retries == 0  # rate-limit waits are not failed attempts
    assert remote.target.read_bytes() == server.files[name]
    times = [r.at for r in server.file_requests(name)]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.35
    assert times[2] - times[1] >= 0.35


def test_a_source_that_keeps_answering_429_is_given_up(server: StacServer, tmp_path: Path) -> None:
    name, remote = _remote(server, tmp_path)
    server.faults.limited[name] = 10
    server.faults.retry_after = "0"
    with (
        _client(server, max_rate_limit_waits=3) as client,
        pytest.raises(SourceUnavailableError, match=r"kept answering HTTP 429 .* 4 times"),
    ):
        fetch(client, remote)
    assert len(server.file_requests(name)) == 4
    assert not remote.target.exists()


def test_retry_after_as_an_http_date() -> None:
    import email.utils

    import httpx

    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    response = httpx.Response(429, headers={"Retry-After": later})
    wait = retry_after(response)
    assert wait is not None
    assert 25 <= wait <= 31
    assert retry_after(httpx.Response(429)) is None


def test_a_corrupted_file_is_downloaded_again(server: StacServer, tmp_path: Path) -> None:
    name, remote = _remote(server, tmp_path)
    server.faults.corrupt.add(name)
    with _client(server) as client:
        fetched = fetch(client, remote)
    assert fetched.retries == 1
    assert remote.target.read_bytes() == server.files[name]
    assert len(server.file_requests(name)) == 2


# --------------------------------------------------------------------------------------------
# a season


def test_acquire_season_with_faults_and_a_provider_down(
    workspace: Workspace,
    world: SynthWorld,
    server: StacServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _site(workspace, world)
    monkeypatch.setenv("CAPMON_SOURCE_LOOP_TOKEN", SECRET)
    items = server.items
    wanted = _names(items, 5.0, 20.0)  # max_cloud 50 ignores 80 and 95
    cut = next(n for n in server.files if n.startswith(wanted[0]) and "_B8A_" in n)
    corrupt = next(n for n in server.files if n.startswith(wanted[-1]) and "_SCL_" in n)
    server.faults.cut.add(cut)
    server.faults.corrupt.add(corrupt)
    server.faults.search_limited = 1
    server.faults.retry_after = "0.2"
    # a signed URL whose file is missing: the failure must not show its signature
    missing = wanted[1]
    red = items[[i["id"] for i in items].index(missing)]["assets"]["red"]
    red["href"] += f"?token={SECRET}&X-Amz-Signature=deadbeef"
    server.files.pop(red["href"].split("/files/", 1)[1].split("?")[0])
    sources = [
        _source(server.url),
        _source(closed_port_url(), name="down", auth="none", max_retries=1),
    ]
    progress: list[tuple[int, int]] = []
    report = acquire_season(
        workspace,
        "tiny",
        "S",
        sources=sources,
        max_cloud=50,
        progress=lambda done, total, _name: progress.append((done, total)),
    )
    assert report.partial
    assert [name for name, _ in report.source_errors] == ["down"]
    assert "source down" in report.source_errors[0][1]
    assert "unreachable" in report.source_errors[0][1]
    assert report.found == {"loop": len(items)}
    assert sorted(report.downloaded) == sorted(set(wanted) - {missing})
    assert [name for name, _ in report.failed] == [missing]
    assert "HTTP 404" in report.failed[0][1]
    assert sorted(name for name, _ in report.ignored) == sorted(_names(items, 80.0, 95.0))
    assert all("over the limit 50%" in reason for _, reason in report.ignored)
    assert report.retries >= 2  # the cut and the corrupted file
    assert sorted(report.registered) == sorted(report.downloaded)
    assert progress
    assert progress[-1][0] >= report.bytes_downloaded > 0
    # the history says what happened to every product
    with workspace.session() as session:
        site = get_site(session, "tiny")
        rows = {row.product_name: row for row in list_history(session, site)}
        statuses = {name: row.status for name, row in rows.items()}
        assert statuses[missing] is DownloadStatus.FAILED
        assert all(statuses[n] is DownloadStatus.DOWNLOADED for n in report.downloaded)
        assert all(statuses[n] is DownloadStatus.IGNORED for n, _ in report.ignored)
        assert rows[wanted[0]].retries == 1
        assert rows[wanted[-1]].retries == 1
        assert all(rows[n].product_id is not None for n in report.downloaded)
        assert rows[wanted[0]].size_bytes == sum(
            len(v) for k, v in server.files.items() if k.startswith(wanted[0])
        )
        reasons = " ".join(row.reason or "" for row in rows.values())
        products = {p.name: p for p in session.query(Product).all()}
    # credentials never appear in logs, history or the report
    assert SECRET not in caplog.text
    assert SECRET not in reasons
    assert "deadbeef" not in reasons
    assert SECRET not in json.dumps(report.to_json())
    assert all(r.authorization == f"Bearer {SECRET}" for r in server.requests)
    # the acquired item reads as the original SAFE
    first = wanted[0]
    item = workspace.home / "inputs" / "tiny" / "s2_l2a" / first / f"{first}.json"
    assert products[first].path == str(item.resolve())
    acquired, original = open_product(item), open_product(_safes(world)[0])
    assert acquired.info.name == original.info.name
    assert acquired.info.tile == original.info.tile
    for band in ("B04", "B8A"):
        np.testing.assert_array_equal(acquired.read(band, 10), original.read(band, 10))
    np.testing.assert_array_equal(acquired.valid_mask(20), original.valid_mask(20))
    # a rerun downloads nothing new and retries the failed product
    requests_before = len(server.file_requests())
    again = acquire_season(workspace, "tiny", "S", sources=sources[:1], max_cloud=50)
    assert again.downloaded == []
    assert [n for n, _ in again.failed] == [missing]
    assert sorted(again.already_there) == sorted(report.downloaded)
    assert again.registered == []
    new_requests = server.file_requests()[requests_before:]
    assert {r.path.split("/")[2] for r in new_requests} == {missing}


def test_quota_dry_run_and_cross_source_duplicates(
    tmp_path: Path, world: SynthWorld, server: StacServer
) -> None:
    workspace = open_workspace(tmp_path / "ws")
    try:
        _site(workspace, world)
        env = {"CAPMON_SOURCE_LOOP_TOKEN": SECRET, "CAPMON_SOURCE_MIRROR_TOKEN": SECRET}
        source = _source(server.url, quota_products_per_day=2)
        planned = acquire_season(
            workspace, "tiny", "S", sources=[source], dry_run=True, environ=env
        )
        assert len(planned.planned) == len(server.items)
        assert planned.downloaded == []
        assert server.file_requests() == []
        with workspace.session() as session:
            assert list_history(session, get_site(session, "tiny")) == []
        first = acquire_season(workspace, "tiny", "S", sources=[source], environ=env)
        assert len(first.downloaded) == 2
        assert len(first.queued) == len(server.items) - 2
        assert all("daily quota of source loop reached (2 products)" in r for _, r in first.queued)
        assert not first.partial
        with workspace.session() as session:
            queued = list_history(session, get_site(session, "tiny"), status="queued")
            assert len(queued) == len(server.items) - 2
        # the same scenes offered by a second source are not downloaded twice
        mirror = _source(server.url, name="mirror", collections=(
            CollectionConfig("sentinel-2-l2a", "s2_l2a"),
        ))  # fmt: skip
        both = acquire_season(
            workspace, "tiny", "S", sources=[replace(source, quota_products_per_day=None), mirror],
            environ=env,
        )  # fmt: skip
        assert len(both.downloaded) == len(server.items) - 2
        assert len(both.already_there) == 2
        assert {r.split(" from ")[1] for _, r in both.ignored} == {"source loop"}
        assert len(both.ignored) == len(server.items)
        with pytest.raises(NotFoundError, match="no season 'X'"):
            acquire_season(workspace, "tiny", "X", sources=[source], environ=env)
    finally:
        workspace.dispose()


def test_oauth_source_with_cdse_style_items(
    tmp_path: Path, world: SynthWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stac = StacServer([], {}, Faults(oauth=("agency", "pa55word!x"), expire_first_token=True))
    items, files = _items(world, stac, style="cdse")
    stac.items, stac.files = items[:2], files
    workspace = open_workspace(tmp_path / "ws")
    with stac.running():
        try:
            _site(workspace, world)
            source = _source(
                stac.url, name="cdse-like", auth="oauth", token_url=f"{stac.url}/token"
            )
            env = {
                "CAPMON_SOURCE_CDSE_LIKE_USER": "agency",
                "CAPMON_SOURCE_CDSE_LIKE_PASSWORD": "pa55word!x",
            }
            report = acquire_season(workspace, "tiny", "S", sources=[source], environ=env)
            assert sorted(report.downloaded) == sorted(i["id"] for i in items[:2])
            assert not report.partial
            folder = workspace.home / "inputs" / "tiny" / "s2_l2a" / items[0]["id"]
            local = json.loads((folder / f"{items[0]['id']}.json").read_text())
            assert sorted(local["assets"]) == sorted(
                ["B02_10m", "B03_10m", "B04_10m", "B05_20m", "B06_20m", "B07_20m", "B08_10m",
                 "B8A_20m", "B11_20m", "B12_20m", "SCL_20m"]
            )  # fmt: skip
            assert local["assets"]["B04_10m"]["href"].startswith("./")
            assert "alternate" not in local["assets"]["B04_10m"]
            tokens = {r.authorization for r in stac.requests if r.path != "/token"}
            assert "Bearer access-2" in tokens  # the first token was refused and renewed
            assert "pa55word!x" not in caplog.text
            wrong = {**env, "CAPMON_SOURCE_CDSE_LIKE_PASSWORD": "nope"}
            refused = acquire_season(workspace, "tiny", "S", sources=[source], environ=wrong)
            assert "refused the credentials" in refused.source_errors[0][1]
            skipped = acquire_season(workspace, "tiny", "S", sources=[source], environ={})
            assert skipped.skipped_sources == [
                ("cdse-like", "no credentials: set CAPMON_SOURCE_CDSE_LIKE_USER and "
                 "CAPMON_SOURCE_CDSE_LIKE_PASSWORD")
            ]  # fmt: skip
        finally:
            workspace.dispose()


# --------------------------------------------------------------------------------------------
# CLI and processor


def test_cli_acquire_status_and_exit_codes(
    tmp_path: Path, world: SynthWorld, server: StacServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "ws"
    workspace = open_workspace(home)
    _site(workspace, world)
    workspace.dispose()
    monkeypatch.setenv("CAPMON_SOURCE_LOOP_TOKEN", SECRET)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f"[sources.earth-search]\nenabled = false\n[sources.cdse]\nenabled = false\n"
        f'[sources.loop]\nurl = "{server.url}"\nauth = "bearer"\nbackoff_seconds = 0.05\n'
        f'[[sources.loop.collections]]\nid = "sentinel-2-l2a"\nkind = "s2_l2a"\n'
        f'[sources.down]\nurl = "{closed_port_url()}"\nmax_retries = 0\n'
        f'[[sources.down.collections]]\nid = "sentinel-2-l2a"\nkind = "s2_l2a"\n'
    )
    base = ["--home", str(home), "acquire"]
    result = runner.invoke(app, [*base, "tiny", "S", "--sources", str(sources), "--json",
                                 "--max-cloud", "50"])  # fmt: skip
    assert result.exit_code == 1, result.output  # partial: a source is down
    payload = json.loads(result.output)
    assert payload["complete"] is False
    assert payload["source_errors"][0][0] == "down"
    assert len(payload["downloaded"]) == len(_names(server.items, 5.0, 20.0))
    result = runner.invoke(app, [*base, "run", "tiny", "S", "--sources", str(sources),
                                 "--source", "loop", "--max-cloud", "50"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "already there" in result.output
    result = runner.invoke(app, [*base, "status", "tiny", "--season", "S", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["counts"] == {
        "downloaded": len(_names(server.items, 5.0, 20.0)),
        "ignored": len(_names(server.items, 80.0, 95.0)),
    }
    result = runner.invoke(app, [*base, "status", "tiny", "--status", "lost"])
    assert result.exit_code == 2
    assert "unknown download status 'lost'" in result.output
    result = runner.invoke(app, [*base, "sources", "--sources", str(sources), "--json"])
    listed = {row["name"]: row for row in json.loads(result.output)}
    assert listed["loop"]["credentials"] == "set"
    assert SECRET not in result.output


def test_acquire_processor_is_daily_and_needs_configuration(
    tmp_path: Path, world: SynthWorld, server: StacServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor = get_processor("acquire")
    assert processor.schedule.kind == "daily"
    workspace = open_workspace(tmp_path / "ws")
    try:
        _site(workspace, world)
        with workspace.session() as session:
            site = get_site(session, "tiny")
            season = get_season(session, site, "S")
        context = RunContext(workspace, site, season)
        result = processor.run(context, processor.parse_parameters({}))
        assert result.figures == {"configured": False}
        assert "acquisition not configured" in result.summary
        (workspace.home / "sources.toml").write_text(
            f"[sources.earth-search]\nenabled = false\n[sources.cdse]\nenabled = false\n"
            f'[sources.loop]\nurl = "{server.url}"\nauth = "bearer"\n'
            f'[[sources.loop.collections]]\nid = "sentinel-2-l2a"\nkind = "s2_l2a"\n'
        )
        monkeypatch.setenv("CAPMON_SOURCE_LOOP_TOKEN", SECRET)
        first_date = min(i["properties"]["datetime"][:10] for i in server.items)
        parameters = processor.parse_parameters({"max_cloud": 50, "until": first_date})
        result = processor.run(context, parameters)
        assert result.figures["configured"] is True
        assert len(result.figures["downloaded"]) == 1  # only up to the occurrence date
    finally:
        workspace.dispose()


# --------------------------------------------------------------------------------------------
# the acquisition as the first step of season runs


def _sources_toml(url: str) -> str:
    return (
        "[sources.earth-search]\nenabled = false\n[sources.cdse]\nenabled = false\n"
        f'[sources.loop]\nurl = "{url}"\nauth = "bearer"\n'
        '[[sources.loop.collections]]\nid = "sentinel-2-l2a"\nkind = "s2_l2a"\n'
    )


def test_a_season_run_acquires_first_and_extracts_what_arrived(
    tmp_path: Path, world: SynthWorld, server: StacServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capmon.orchestrator import ClusterSpec, run_season, set_schedule
    from capmon.parcels import import_lut

    workspace = open_workspace(tmp_path / "ws")
    try:
        _site(workspace, world)
        year = world.years[0]
        import_lut(workspace, "tiny", year, world.lut)
        import_world_declarations(
            workspace, "tiny", year, world.declarations[year],
        )  # fmt: skip
        set_schedule(workspace, "tiny", "S", "mdb", parameters={"signals": ["NDVI"]})
        set_schedule(workspace, "tiny", "S", "acquire", parameters={"max_cloud": 50})
        monkeypatch.setenv("CAPMON_SOURCE_LOOP_TOKEN", SECRET)
        spec = ClusterSpec(workers=1, threads=1)
        until = dt.date(year, 12, 31)
        # the provider is down: the run says so and goes on with what it has (nothing)
        (workspace.home / "sources.toml").write_text(_sources_toml(closed_port_url()))
        down = run_season(workspace, "tiny", "S", until=until, processors=["acquire", "mdb"],
                          cluster=spec)  # fmt: skip
        assert down.acquisition is not None
        assert "acquisition failed" in down.acquisition
        assert down.extracted == []
        # the provider is up: what arrives is registered and extracted in the same run
        (workspace.home / "sources.toml").write_text(_sources_toml(server.url))
        report = run_season(workspace, "tiny", "S", until=until, processors=["acquire", "mdb"],
                            cluster=spec)  # fmt: skip
        wanted = sorted(i["id"] for i in server.items if i["properties"]["eo:cloud_cover"] <= 50)
        assert report.acquisition is not None
        assert f"downloaded {len(wanted)} " in report.acquisition
        assert sorted(report.extracted) == wanted
        assert report.status == "finished"
        # nothing new: nothing to download, nothing to extract
        again = run_season(workspace, "tiny", "S", until=until, processors=["acquire", "mdb"],
                           cluster=spec)  # fmt: skip
        assert again.nothing_due
    finally:
        workspace.dispose()
