"""The service's settings, fixed when the app is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from capmon.orchestrator.execute import ClusterSpec


@dataclass(frozen=True)
class ServiceConfig:
    """What ``create_app`` needs: the workspace, token lifetime, upload limits, executor."""

    home: Path
    database_url: str | None = None
    token_ttl_seconds: int = 8 * 3600
    """Access tokens expire after this many seconds (a working day by default)."""
    refresh_ttl_seconds: int = 30 * 24 * 3600
    """Refresh tokens expire after this many seconds (each is used once, then replaced)."""
    max_upload_bytes: int = 512 * 2**20
    """Uploads larger than this are refused with 413 before anything is stored."""
    cluster: ClusterSpec = field(default_factory=lambda: ClusterSpec(workers=2, threads=1))
    """Where processor jobs run: a LocalCluster started on first use, or ``cluster.scheduler``."""
    sync_wait_seconds: float = 60.0
    """``Prefer: wait`` waits this long at most for a job's results, then answers 201 (async)."""
    secret_key: str | None = None
    """Key that signs tokens; default: ``$CAPMON_SECRET_KEY`` or a key file in the workspace."""
    public_url: str | None = None
    """Base URL used in links when the service runs behind a proxy (default: the request's)."""
