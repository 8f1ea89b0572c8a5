"""``capmon bench api``: the markers and map routes of ``capmon serve`` under concurrent clients.

One run builds a workspace (or reuses it from ``--workdir`` with ``--reuse``): one site, one
season, ``--parcels`` synthetic fields (the benchmark's field tessellation of tile 31UFS,
0.5-5 ha) imported through the real declarations import with the demo's crop LUT, and an MDB
of ``--dates`` x ``--signals`` rows per parcel written with the real MDB store
(:class:`~capmon.mdb.store.MdbStore`) and compacted. The statistics are synthesised (smooth
NDVI-like curves) rather than extracted from rasters: the benchmark measures the API, not the
extraction (``capmon bench extract`` and ``bench scale`` do that).

It then starts ``capmon serve`` in a separate process on loopback and, after timing the first
(cold) answer of each route, runs ``--clients`` concurrent clients (one asyncio task each, one
keep-alive HTTP/1.1 connection each, a lean asyncio client so that the clients take little of
the CPU the server needs) for ``--seconds``. Each client repeats: pick a request
(``--tile-share`` of them a vector tile, the rest a parcel's time series of every signal),
send it, wait for the answer, then think for a random time (exponential, mean ``--think-ms``,
1 s by default: a map user who pans, clicks a parcel, looks). ``--think-ms 0`` makes a closed
loop where each client sends its next request at once: that measures the service's capacity,
and then latency is ``clients / throughput`` by Little's law whatever the route costs.

- **time series**: ``GET /sites/bench/seasons/2024/parcels/{id}/timeseries`` of a random parcel,
  every signal (``--signals`` x ``--dates`` rows);
- **vector tile**: ``GET /tiles/parcels/{z}/{x}/{y}.mvt`` of a random tile over the parcels at a
  random zoom of ``--zooms`` (12-15 by default) with a random layer (none, declared crop,
  declared crop type), so most tiles are built on demand, some come from the server's cache.

It reports p50/p95/p99/max latency, errors (any answer but 200/304, or a failed request) and
requests per second per route and overall, the share of requests repeating an earlier tile,
the server's and the clients' CPU use, the load average and the other processes that used the
CPU during the run, and compares p95s and errors with :data:`TARGETS`. Timings are reported,
never asserted.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from capmon.bench.common import load_average, working_folder
from capmon.errors import InputError
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import atomic_path

SITE = "bench"
SEASON = "2024"
YEAR = 2024
USER = "bench-viewer"
TILE = "31UFS"
FIELD_HA = 2.75
"""Mean field area of the benchmark's tessellation (0.5-5 ha)."""
FIELD_SHARE = 0.6
"""Share of the tessellation's fields that become parcels (the rest is other land)."""
TARGETS = {
    "timeseries_p95_ms": ("<", 50.0, "parcel time series, p95 (ms)"),
    "tile_p95_ms": ("<", 100.0, "parcel vector tile, p95 (ms)"),
    "errors": ("==", 0, "errors over the run"),
}
Reporter = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class ApiBenchConfig:
    """What to build and how to load the service (default: the issue's 50k x 70 x 10)."""

    parcels: int = 50_000
    dates: int = 70
    signals: int = 10
    clients: int = 50
    seconds: float = 60.0
    think_ms: float = 1000.0
    tile_share: float = 0.5
    zooms: tuple[int, ...] = (12, 13, 14, 15)
    layers: tuple[str, ...] = ("", "crop", "crop_type")
    seed: int = 20240701

    def __post_init__(self) -> None:
        if self.parcels < 100:
            raise InputError(f"--parcels must be at least 100, not {self.parcels}")
        if not 1 <= self.dates <= 366:
            raise InputError(f"--dates must be between 1 and 366, not {self.dates}")
        if self.clients < 1 or self.seconds <= 0:
            raise InputError("--clients must be at least 1 and --seconds positive")
        if not 0 <= self.tile_share <= 1:
            raise InputError(f"--tile-share must be between 0 and 1, not {self.tile_share}")
        if self.think_ms < 0:
            raise InputError(f"--think-ms must not be negative, not {self.think_ms}")
        if not self.zooms or any(not 0 <= z <= 22 for z in self.zooms):
            raise InputError(f"--zooms must be between 0 and 22: {self.zooms}")

    def data_key(self) -> dict[str, Any]:
        """What the generated workspace depends on (a reused one must match it)."""
        return {
            "parcels": self.parcels,
            "dates": self.dates,
            "signals": self.signals,
            "seed": self.seed,
        }


@dataclass
class ApiReport:
    """Every figure of a run (``to_json`` for ``--json``)."""

    config: dict[str, Any]
    machine: dict[str, Any] = field(default_factory=dict)
    workspace: dict[str, Any] = field(default_factory=dict)
    cold_ms: dict[str, float] = field(default_factory=dict)
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _silent(_label: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


# --- the workspace -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Workspace:
    home: Path
    parcel_ids: list[int]
    bounds: tuple[float, float, float, float]
    """EPSG:3857 bounds of the parcels."""
    password: str


def _tile_size(parcels: int) -> int:
    """Pixels of the 10 m tile window that holds ``parcels`` fields with room to spare."""
    side_m = math.sqrt(parcels * FIELD_HA * 1e4 / FIELD_SHARE)
    return min(max(math.ceil(side_m / 10), 200), 10980)


def _prepare(
    config: ApiBenchConfig, folder: Path, reuse: bool, result: ApiReport, report: Reporter
) -> _Workspace:
    marker = folder / "bench-api.json"
    home = folder / "home"
    if reuse and marker.exists() and home.is_dir():
        stored = json.loads(marker.read_text(encoding="utf-8"))
        if stored.get("data") == config.data_key():
            result.workspace = {**stored["figures"], "reused": True}
            return _Workspace(
                home, stored["parcel_ids"], tuple(stored["bounds"]), stored["password"]
            )
        result.notes.append("the workspace in --workdir was built with other options: rebuilt")
    if home.exists():
        shutil.rmtree(home)
    marker.unlink(missing_ok=True)
    built = _build(config, folder, home, result, report)
    with atomic_path(marker) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "data": config.data_key(),
                    "figures": result.workspace,
                    "parcel_ids": built.parcel_ids,
                    "bounds": list(built.bounds),
                    "password": built.password,
                }
            ),
            encoding="utf-8",
        )
    return built


def _build(
    config: ApiBenchConfig, folder: Path, home: Path, result: ApiReport, report: Reporter
) -> _Workspace:
    import geopandas as gpd
    import shapely

    from capmon.bench.world import build_mdb, make_parcels, tile_grid
    from capmon.catalog.models import DeclarationSet
    from capmon.mdb.extract import mdb_folder
    from capmon.parcels import import_lut, load_parcels
    from capmon.parcels.store import latest_row
    from capmon.sites import SeasonDates, create_season, create_site, get_site
    from capmon.synth.sen4cap_files import lut_csv
    from capmon.users import add_user
    from capmon.workspace import open_workspace

    step = report("workspace: parcels, declarations import", 3)
    started = time.perf_counter()
    size = _tile_size(config.parcels)
    fields = make_parcels(tile_grid(TILE, size), config.parcels, config.seed)
    lut_path = folder / "lut.csv"
    lut_path.write_text(lut_csv(), encoding="utf-8")
    codes = _lut_codes(lut_path)
    rng = np.random.default_rng(config.seed + 7)
    declarations = gpd.GeoDataFrame(
        {
            "PARCEL_ID": [f"P{i:07d}" for i in fields["NewID"]],
            "HOLDING_ID": [
                f"H{i:05d}" for i in rng.integers(1, config.parcels // 20 + 2, len(fields))
            ],
            "CROP_CODE": rng.choice(codes, len(fields)),
        },
        geometry=fields.geometry.to_numpy(),
        crs=fields.crs,
    )
    declarations_path = folder / "declarations.parquet"
    declarations.to_parquet(declarations_path)
    step(1)
    workspace = open_workspace(home)
    try:
        aoi = shapely.box(*declarations.to_crs(4326).total_bounds).buffer(0.01)
        with workspace.session() as session:
            site = create_site(session, SITE, aoi)
            create_season(
                session,
                site,
                SEASON,
                SeasonDates.parse(f"{YEAR}-01-01", f"{YEAR}-12-31", f"{YEAR}-06-15"),
            )
        import_lut(workspace, SITE, YEAR, lut_path)
        imported = time.perf_counter()
        import_world_declarations(
            workspace,
            SITE,
            YEAR,
            declarations_path,
        )
        import_seconds = time.perf_counter() - imported
        step(1)
        parcels = load_parcels(workspace, SITE, YEAR)
        ids = np.sort(parcels["NewID"].to_numpy(np.int64))
        if not np.array_equal(ids, np.arange(1, len(ids) + 1)):
            raise InputError("the declarations import did not number the parcels 1..N")
        with workspace.session() as session:
            site_row = get_site(session, SITE)
            declaration_set = latest_row(session, DeclarationSet, site_row, YEAR)
            assert declaration_set is not None
            root = mdb_folder(workspace, site_row.short_name, SEASON, declaration_set.id)
        password = secrets.token_urlsafe(16)
        add_user(workspace, USER, password, "viewer", [SITE])
        minx, miny, maxx, maxy = (float(v) for v in parcels.to_crs(3857).total_bounds)
        step(1)
    finally:
        workspace.dispose()
    mdb_step = report("workspace: MDB (synthetic statistics, real store)", config.dates + 1)
    written = time.perf_counter()
    store = build_mdb(
        root, config.parcels, config.dates, config.signals, seed=config.seed, advance=mdb_step
    )
    write_seconds = time.perf_counter() - written
    compacted = time.perf_counter()
    store.compact()
    mdb_step(1)
    result.workspace = {
        "reused": False,
        "tile_window_px": size,
        "parcels": len(ids),
        "declarations_import_seconds": round(import_seconds, 1),
        "mdb_rows": int(config.parcels * config.dates * config.signals),
        "mdb_write_seconds": round(write_seconds, 1),
        "mdb_compaction_seconds": round(time.perf_counter() - compacted, 1),
        "mdb_bytes": sum(f.stat().st_size for f in root.rglob("*.parquet")),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    return _Workspace(home, [int(i) for i in ids], (minx, miny, maxx, maxy), password)


def _lut_codes(path: Path) -> list[int]:
    import pandas as pd

    table = pd.read_csv(path, sep=None, engine="python")
    column = next(c for c in table.columns if c.strip().lower() == "ori_crop")
    return sorted({int(v) for v in table[column]})


# --- the server --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _server(home: Path, log_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``capmon serve`` on a free loopback port, in its own process; stopped at the end."""
    port = _free_port()
    executable = Path(sys.executable).with_name("capmon")
    command = (
        [str(executable)]
        if executable.exists()
        else [sys.executable, "-c", "from capmon.cli.main import main; main()"]
    )
    command += ["--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "CAPMON_SECRET_KEY": secrets.token_urlsafe(32)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, url, log_path)
            yield process, url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InputError(
                f"capmon serve stopped (exit {process.returncode}); its log: {log_path}"
            )
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise InputError(f"capmon serve did not answer within 120 s; its log: {log_path}")


# --- the load ----------------------------------------------------------------------------------


@dataclass
class _Sample:
    route: str
    detail: str
    seconds: float
    ok: bool
    status: int
    repeat: bool
    failure: str = ""
    """The exception of a request that got no answer."""


def _tiles(
    bounds: tuple[float, float, float, float], zooms: tuple[int, ...]
) -> dict[int, list[tuple[int, int]]]:
    from capmon.service.mvt import tiles_covering

    out = {}
    for z in zooms:
        (x0, x1), (y0, y1) = tiles_covering(bounds, z)
        out[z] = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    return out


class _Connection:
    """One keep-alive HTTP/1.1 connection doing GETs, lean on CPU (the clients share the
    machine with the server: httpx costs ~1 ms of CPU per request, this ~0.1 ms)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, int]:
        """(status, body bytes) of ``GET path``. A kept-alive connection the server closed
        meanwhile (uvicorn closes idle ones after 5 s) is reopened and the request sent again
        once, as browsers do; other failures raise."""
        reused = self.reader is not None
        try:
            return await self._get(path)
        except asyncio.IncompleteReadError as exc:
            if not reused or exc.partial:
                raise
        except ConnectionError:
            if not reused:
                raise
        return await self._get(path)

    async def _get(self, path: str) -> tuple[int, int]:
        try:
            if self.reader is None or self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(f"GET {path} HTTP/1.1\r\n".encode() + self.head)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            fields = {}
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip().lower()
            size = 0
            if fields.get(b"transfer-encoding") == b"chunked":
                while True:
                    chunk = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await self.reader.readexactly(chunk + 2)
                    size += chunk
                    if chunk == 0:
                        break
            elif b"content-length" in fields:
                size = int(fields[b"content-length"])
                await self.reader.readexactly(size)
            if fields.get(b"connection") == b"close":
                self.close()
            return status, size
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _load_clients(
    url: str,
    token: str,
    config: ApiBenchConfig,
    parcel_ids: list[int],
    tiles: dict[int, list[tuple[int, int]]],
) -> tuple[list[_Sample], float]:
    samples: list[_Sample] = []
    seen: set[str] = set()
    host, port = url.removeprefix("http://").split(":")
    think = config.think_ms / 1000.0
    base = f"/sites/{SITE}/seasons/{SEASON}"
    started = time.monotonic()
    deadline = started + config.seconds

    async def client(number: int) -> None:
        rng = random.Random(config.seed * 1000 + number)
        connection = _Connection(host, int(port), token)
        if think:
            await asyncio.sleep(rng.uniform(0, think))
        while time.monotonic() < deadline:
            if rng.random() < config.tile_share:
                z = rng.choice(config.zooms)
                x, y = rng.choice(tiles[z])
                layer = rng.choice(config.layers)
                path = f"/tiles/parcels/{z}/{x}/{y}.mvt?site={SITE}&season={SEASON}"
                path += f"&layer={layer}" if layer else ""
                route, detail = "vector tile", f"z{z}"
            else:
                path = f"{base}/parcels/{rng.choice(parcel_ids)}/timeseries"
                route, detail = "time series", ""
            repeat = path in seen
            seen.add(path)
            begun = time.perf_counter()
            failure = ""
            try:
                status, _size = await connection.get(path)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
            ) as exc:
                status, failure = 0, f"{type(exc).__name__}: {exc}"[:120]
            seconds = time.perf_counter() - begun
            ok = status in (200, 304)
            samples.append(_Sample(route, detail, seconds, ok, status, repeat, failure))
            if think:
                pause = min(rng.expovariate(1.0 / think), deadline - time.monotonic())
                if pause > 0:
                    await asyncio.sleep(pause)
        connection.close()

    await asyncio.gather(*(client(n) for n in range(config.clients)))
    return samples, time.monotonic() - started


def _cold(
    url: str, token: str, parcel_id: int, tiles: dict[int, list[tuple[int, int]]]
) -> dict[str, float]:
    """The first answer of each route (caches empty), in ms."""
    import httpx

    out: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/sites/{SITE}/seasons/{SEASON}"
    with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
        paths = {
            "layers (parcel index, layers)": f"{base}/layers",
            "signals (MDB summary)": f"{base}/signals",
            "first time series": f"{base}/parcels/{parcel_id}/timeseries",
            "second time series": f"{base}/parcels/{parcel_id + 1}/timeseries",
        }
        for z, cells in sorted(tiles.items()):
            x, y = cells[len(cells) // 2]
            paths[f"first tile z{z}"] = (
                f"/tiles/parcels/{z}/{x}/{y}.mvt?site={SITE}&season={SEASON}&layer=crop"
            )
        for label, path in paths.items():
            begun = time.perf_counter()
            answer = http.get(path)
            out[label] = round((time.perf_counter() - begun) * 1000, 1)
            if answer.status_code != 200:
                raise InputError(f"{path} answered {answer.status_code}: {answer.text[:300]}")
    return out


def _token(url: str, password: str) -> str:
    import httpx

    answer = httpx.post(
        url + "/auth/token", data={"username": USER, "password": password}, timeout=30
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def _percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    if not values.size:
        return {}
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p95_ms": round(float(np.percentile(values, 95)), 1),
        "p99_ms": round(float(np.percentile(values, 99)), 1),
        "max_ms": round(float(values.max()), 1),
        "mean_ms": round(float(values.mean()), 1),
    }


def _summarise(samples: list[_Sample], elapsed: float) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[_Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.route, []).append(sample)
        if sample.detail:
            groups.setdefault(f"{sample.route} {sample.detail}", []).append(sample)
    groups["all"] = samples
    out = {}
    for name, members in sorted(groups.items()):
        errors = [s for s in members if not s.ok]
        out[name] = {
            "requests": len(members),
            "errors": len(errors),
            "error_statuses": sorted({s.status for s in errors}),
            "failures": sorted({s.failure for s in errors if s.failure})[:5],
            "per_second": round(len(members) / elapsed, 1),
            "repeats": round(sum(s.repeat for s in members) / max(len(members), 1), 3),
            **_percentiles([s.seconds for s in members]),
        }
    return out


def _process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc/<pid>/stat``), None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss(pid: int) -> int | None:
    """Peak resident memory (``VmHWM``) of a process, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cpu_by_process() -> dict[int, tuple[str, float]]:
    """CPU seconds and command line of every process (to name the others that ran)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        cpu = _process_cpu(int(entry.name))
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cpu is not None:
            out[int(entry.name)] = (command.strip()[:100], cpu)
    return out


def run_api_bench(
    config: ApiBenchConfig,
    workdir: Path | None = None,
    reuse: bool = False,
    report: Reporter = _silent,
) -> ApiReport:
    """Build (or reuse) the workspace, serve it, load it, report."""
    if reuse and workdir is None:
        raise InputError("--reuse needs --workdir (where the workspace is kept)")
    result = ApiReport(config=asdict(config))
    result.machine = {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "load_at_start": load_average(),
    }
    with working_folder(workdir, "capmon-bench-api-") as folder:
        built = _prepare(config, folder, reuse, result, report)
        tiles = _tiles(built.bounds, config.zooms)
        result.workspace["tiles_per_zoom"] = {str(z): len(c) for z, c in tiles.items()}
        with _server(built.home, folder / "serve.log") as (process, url):
            token = _token(url, built.password)
            step = report("cold answers", 1)
            result.cold_ms = _cold(url, token, built.parcel_ids[len(built.parcel_ids) // 2], tiles)
            step(1)
            server_cpu = _process_cpu(process.pid) or 0.0
            own_cpu = sum(os.times()[:2])
            before = _cpu_by_process()
            load_before = load_average()
            step = report(f"{config.clients} clients for {config.seconds:g} s", 1)
            samples, elapsed = asyncio.run(
                _load_clients(url, token, config, built.parcel_ids, tiles)
            )
            step(1)
            after = _cpu_by_process()
            server_seconds = (_process_cpu(process.pid) or 0.0) - server_cpu
            server_peak = _peak_rss(process.pid)
            own_seconds = sum(os.times()[:2]) - own_cpu
            others = sorted(
                (
                    (after[pid][1] - before[pid][1], after[pid][0])
                    for pid in after
                    if pid in before and pid not in (process.pid, os.getpid())
                ),
                reverse=True,
            )
        result.routes = _summarise(samples, elapsed)
        result.run = {
            "seconds": round(elapsed, 1),
            "requests": len(samples),
            "per_second": round(len(samples) / elapsed, 1),
            "server_cpu_cores": round(server_seconds / elapsed, 2),
            "client_cpu_cores": round(own_seconds / elapsed, 2),
            "server_peak_rss_gb": round(server_peak / 1e9, 2) if server_peak else None,
            "load_before": load_before,
            "load_after": load_average(),
            "other_processes_cpu_cores": [
                {"cores": round(cpu / elapsed, 2), "command": command}
                for cpu, command in others[:6]
                if cpu / elapsed >= 0.02
            ],
        }
    result.machine["load_at_end"] = load_average()
    _targets(result)
    return result


def _targets(result: ApiReport) -> None:
    series = result.routes.get("time series", {})
    tile = result.routes.get("vector tile", {})
    figures = {
        "timeseries_p95_ms": series.get("p95_ms"),
        "tile_p95_ms": tile.get("p95_ms"),
        "errors": result.routes.get("all", {}).get("errors"),
    }
    for name, (operator, threshold, label) in TARGETS.items():
        value = figures[name]
        met = None
        if value is not None:
            met = value < threshold if operator == "<" else value == threshold
        result.targets[name] = {
            "label": label,
            "value": value,
            "target": f"{operator} {threshold}",
            "met": met,
        }


def write_json(result: ApiReport, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=2, default=str), encoding="utf-8")


def render(result: ApiReport, console: Console) -> None:
    """Workspace, cold answers, routes and targets as rich tables."""
    config, run = result.config, result.run
    workspace = result.workspace
    console.print(
        f"Workspace: {workspace.get('parcels', config['parcels']):,} parcels, MDB "
        f"{config['dates']} dates x {config['signals']} signals "
        f"({'reused' if workspace.get('reused') else 'built'}); {result.machine['cpus']} CPUs; "
        f"{config['clients']} clients, think {config['think_ms']:g} ms, "
        f"{config['tile_share']:.0%} tiles, zooms {config['zooms']}"
    )
    cold = Table(title="First answers (caches empty), ms")
    cold.add_column("request")
    cold.add_column("ms", justify="right")
    for label, value in result.cold_ms.items():
        cold.add_row(label, f"{value:,.1f}")
    console.print(cold)
    table = Table(title=f"{run.get('seconds')} s run: {run.get('per_second')} requests/s")
    for column in ("route", "requests", "req/s", "errors", "p50", "p95", "p99", "max", "repeats"):
        table.add_column(column, justify="left" if column == "route" else "right")
    for name, figures in result.routes.items():
        table.add_row(
            name,
            f"{figures['requests']:,}",
            f"{figures['per_second']:,.1f}",
            str(figures["errors"]),
            *(f"{figures.get(k, 0):,.1f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            f"{figures['repeats']:.0%}",
        )
    console.print(table)
    console.print(
        f"CPU: server {run.get('server_cpu_cores')} cores (peak RSS "
        f"{run.get('server_peak_rss_gb')} GB), clients {run.get('client_cpu_cores')} cores; "
        f"load {run.get('load_before')} -> {run.get('load_after')}"
    )
    for other in run.get("other_processes_cpu_cores", []):
        console.print(f"  also running: {other['cores']} cores  {other['command']}")
    targets = Table(title="Targets")
    for column in ("figure", "value", "target", "met"):
        targets.add_column(column)
    for figures in result.targets.values():
        met = figures["met"]
        targets.add_row(
            figures["label"],
            str(figures["value"]),
            figures["target"],
            "-" if met is None else ("yes" if met else "NO"),
        )
    console.print(targets)
    for note in result.notes:
        console.print(f"note: {note}")
