"""``capmon bench startup``: how long ``capmon`` takes to start, command by command.

Scripts call ``capmon`` many times, so start-up time adds up. Each command runs in a fresh
process, several times (interleaved, after one untimed warm-up run), and the benchmark reports
the median wall and CPU seconds. It also gives the ratio to a bare ``python -c pass`` timed in
the same run, and the heavy libraries each command imports (from ``python -X importtime``).
Catalogue commands run on a throw-away workspace. Timings are reported, never asserted; the
load average is reported with them.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from capmon.bench.common import load_average
from capmon.errors import CapmonError, InputError
from capmon.workspace import atomic_path

# Libraries that a command only showing help or reading the catalogue should not import.
HEAVY = (
    "geopandas", "shapely", "rasterio", "pyogrio", "pyproj", "pandas", "numpy", "scipy",
    "pyarrow", "duckdb", "sklearn", "lightgbm", "dask", "distributed", "fastapi", "uvicorn",
    "sqlalchemy", "alembic",
)  # fmt: skip
TARGET_SECONDS = 0.5
CAPMON = "from capmon.cli.main import main; main()"
Reporter = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class StartupCommand:
    """A command line to time; ``light`` ones have the start-up target."""

    label: str
    args: tuple[str, ...]
    light: bool = True
    capmon: bool = True


COMMANDS = (
    StartupCommand("python -c pass", ("-c", "pass"), light=False, capmon=False),
    StartupCommand("capmon --version", ("--version",)),
    StartupCommand("capmon --help", ("--help",)),
    StartupCommand("capmon run --help", ("run", "--help")),
    StartupCommand("capmon site list", ("site", "list")),
    StartupCommand("capmon jobs list", ("jobs", "list")),
    StartupCommand("capmon run l4b --help", ("run", "l4b", "--help"), light=False),
)


@dataclass
class StartupReport:
    """The figures of one run of the benchmark."""

    repeats: int
    machine: dict[str, Any] = field(default_factory=dict)
    commands: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def argv(command: StartupCommand, *flags: str) -> list[str]:
    """The process to start for ``command`` (``flags`` go to the interpreter)."""
    if command.capmon:
        return [sys.executable, *flags, "-c", CAPMON, *command.args]
    return [sys.executable, *flags, *command.args]


def heavy_imports(importtime_log: str) -> tuple[list[str], float]:
    """The heavy top-level packages named in a ``-X importtime`` log, and the log's import
    time in ms (the sum of its self times; inflated by the logging itself)."""
    packages: set[str] = set()
    total_us = 0
    for line in importtime_log.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split(":", 1)[1].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        total_us += int(fields[0])
        packages.add(fields[2].strip().split(".")[0])
    return sorted(packages.intersection(HEAVY)), total_us / 1000


def _run(args: list[str], env: dict[str, str], cwd: str) -> tuple[float, float, str]:
    """Wall and CPU seconds of one run, and its stderr; a failing command is an error."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    completed = subprocess.run(
        args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if completed.returncode != 0:
        tail = completed.stderr.strip().splitlines()[-3:]
        raise CapmonError(
            f"`{' '.join(args[1:])}` failed with exit status {completed.returncode}: "
            + " / ".join(tail)
        )
    return wall, cpu, completed.stderr


def run_startup(
    repeats: int = 7,
    commands: Sequence[StartupCommand] = COMMANDS,
    report: Reporter | None = None,
) -> StartupReport:
    """Time ``commands`` ``repeats`` times each, in fresh processes, on a throw-away workspace."""
    if repeats < 1:
        raise InputError(f"--repeats must be at least 1, not {repeats}")
    step = (report or (lambda _label, _total: lambda _n: None))("start-up", repeats + 2)
    result = StartupReport(
        repeats=repeats,
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_at_start": load_average(),
        },
    )
    with tempfile.TemporaryDirectory(prefix="capmon-startup-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAPMON_")}
        env.update(CAPMON_HOME=home, COLUMNS="100")
        _run(argv(StartupCommand("catalogue", ("site", "list"))), env, home)  # creates it
        # warm-up: compiles and caches the modules
        imports = {
            c.label: heavy_imports(_run(argv(c, "-X", "importtime"), env, home)[2])
            for c in commands
        }
        step(1)
        walls: dict[str, list[float]] = {c.label: [] for c in commands}
        cpus: dict[str, list[float]] = {c.label: [] for c in commands}
        for _ in range(repeats):  # interleaved, so that a change of load hits every command
            for command in commands:
                wall, cpu, _stderr = _run(argv(command), env, home)
                walls[command.label].append(wall)
                cpus[command.label].append(cpu)
            step(1)
    base = statistics.median(walls[commands[0].label])
    for command in commands:
        wall = statistics.median(walls[command.label])
        heavy, import_ms = imports[command.label]
        result.commands.append(
            {
                "command": command.label,
                "wall_seconds_median": round(wall, 4),
                "wall_seconds_min": round(min(walls[command.label]), 4),
                "cpu_seconds_median": round(statistics.median(cpus[command.label]), 4),
                "x_python": round(wall / base, 1) if base > 0 else None,
                "importtime_ms": round(import_ms, 1),
                "heavy_imports": heavy,
                "target_seconds": TARGET_SECONDS if command.light else None,
                "met": wall < TARGET_SECONDS if command.light else None,
            }
        )
    result.machine["load_at_end"] = load_average()
    step(1)
    return result


def write_json(result: StartupReport, path: Path) -> None:
    """The figures as JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result.to_json(), indent=2))


def render(result: StartupReport, console: Console) -> None:
    """The figures as a rich table."""
    machine = result.machine
    table = Table(
        title=f"Start-up, fresh process, median of {result.repeats} "
        f"({machine['cpus']} CPUs, load {machine['load_at_start']} -> {machine['load_at_end']})"
    )
    columns = ("command", "wall s", "min s", "CPU s", "x python", "heavy imports", "target")
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("command", "heavy imports") else "right"
        )
    met = {True: "[green]met[/]", False: "[red]missed[/]", None: "-"}
    for row in result.commands:
        target = row["target_seconds"]
        table.add_row(
            row["command"],
            f"{row['wall_seconds_median']:.3f}",
            f"{row['wall_seconds_min']:.3f}",
            f"{row['cpu_seconds_median']:.3f}",
            f"{row['x_python']:.1f}" if row["x_python"] is not None else "-",
            ", ".join(row["heavy_imports"]) or "none",
            "-" if target is None else f"< {target:g} s: {met[row['met']]}",
        )
    console.print(table)
    console.print(
        "x python: wall time over a bare `python -c pass` of the same run; heavy imports: from "
        "`python -X importtime`; catalogue commands run on an empty throw-away workspace"
    )
