"""Orchestration: jobs in the catalogue, season plans from the processors' schedules, and
season runs on dask.distributed, resumable and guarded by a season lock (docs/orchestration.md).
"""

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
