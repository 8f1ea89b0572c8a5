"""A throw-away PostgreSQL + PostGIS cluster for the tests (one per pytest-xdist worker).

The cluster lives in a temporary folder, listens on a free loopback port with ``trust``
authentication and fsync off, and is stopped and deleted when the test session ends.
``initdb``/``pg_ctl`` refuse to run as root, so as root they run as the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("CAPMON_PG_BIN", "/usr/lib/postgresql/15/bin"))
TEMPLATE = "capmon_template"


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL or PostGIS binaries are not installed (run ``make postgis``)."""


@dataclass
class PostgresCluster:
    folder: Path
    port: int

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def _connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def create_database(self) -> str:
        """A new empty database with PostGIS, cloned from the template (fast)."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
        return name

    def drop_database(self, name: str) -> None:
        with self._connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        _run_as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def _run_as_postgres(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_cluster() -> PostgresCluster:
    """Create and start a cluster, with a template database that has PostGIS."""
    if not (PG_BIN / "initdb").exists():
        raise PostgresUnavailableError(f"no initdb in {PG_BIN}; run `make postgis`")
    folder = Path(tempfile.mkdtemp(prefix="capmon-pg-"))
    os.chmod(folder, 0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    try:
        _run_as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ]
        )
        last_error = ""
        for _attempt in range(5):
            port = _free_port()
            result = _run_as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(folder / "server.log"),
                    "-o",
                    f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off",
                    "-w",
                    "start",
                ],
                check=False,
            )
            if result.returncode == 0:
                break
            last_error = result.stderr + (folder / "server.log").read_text(errors="replace")
        else:
            raise PostgresUnavailableError(f"PostgreSQL did not start: {last_error}")
        cluster = PostgresCluster(folder, port)
        with cluster._connect() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        with cluster._connect(TEMPLATE) as conn:
            try:
                conn.execute("CREATE EXTENSION postgis")
            except psycopg.Error as exc:
                cluster.stop()
                raise PostgresUnavailableError(f"PostGIS is not installed: {exc}") from exc
        return cluster
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise PostgresUnavailableError(f"{exc.cmd[0]} failed: {exc.stderr}") from exc
