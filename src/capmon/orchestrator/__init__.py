"""Orchestration: jobs in the catalogue, season plans from the processors' schedules, and
season runs on dask.distributed, resumable and guarded by a season lock (docs/orchestration.md).

The names below are imported on first use, so that ``capmon jobs list`` does not import Dask
and the extraction engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from capmon.orchestrator.execute import ClusterSpec, SeasonRunReport, dask_client, run_season
    from capmon.orchestrator.jobs import JobView, list_jobs, request_status, show_job
    from capmon.orchestrator.lock import SeasonRunLock
    from capmon.orchestrator.plan import occurrences, season_schedules, set_schedule

__all__ = [
    "ClusterSpec",
    "JobView",
    "SeasonRunLock",
    "SeasonRunReport",
    "dask_client",
    "list_jobs",
    "occurrences",
    "request_status",
    "run_season",
    "season_schedules",
    "set_schedule",
    "show_job",
]

_MODULES = {
    "ClusterSpec": "execute",
    "SeasonRunReport": "execute",
    "dask_client": "execute",
    "run_season": "execute",
    "JobView": "jobs",
    "list_jobs": "jobs",
    "request_status": "jobs",
    "show_job": "jobs",
    "SeasonRunLock": "lock",
    "occurrences": "plan",
    "season_schedules": "plan",
    "set_schedule": "plan",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'capmon.orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(f"capmon.orchestrator.{module}"), name)
