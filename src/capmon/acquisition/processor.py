"""The acquisition as a processor: ``capmon run acquire SITE SEASON``, daily in a season (NRT).

Runs download only when acquisition is configured: a ``sources.toml`` in the workspace or a
``sources_file`` (which may just enable capmon's built-in Earth Search / Copernicus Data Space
sources); otherwise the run says so and does nothing, so that a season run never starts
downloading gigabytes on a workspace whose products come from elsewhere (``capmon acquire``,
run by hand, uses the built-in sources without a file). ``until`` is set to the occurrence
date by the orchestrator.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from capmon.acquisition.http import SourceUnavailableError
from capmon.acquisition.run import acquire_season
from capmon.acquisition.sources import load_sources, workspace_sources_file
from capmon.processors.registry import (
    Processor,
    ProcessorInput,
    ProcessorOutput,
    RunContext,
    RunResult,
    Schedule,
    register,
)


class AcquireParameters(BaseModel):
    """Parameters of the acquisition (defaults are Sen4CAP's downloader ones)."""

    model_config = ConfigDict(extra="forbid")

    sources_file: str | None = Field(
        None, description="Data sources file (default: <home>/sources.toml)."
    )
    source_names: list[str] | None = Field(None, description="Only these sources (names).")
    collections: list[str] | None = Field(
        None, description="Only these collections (ids or kinds: s2_l2a, landsat_l2, s1_rtc)."
    )
    max_cloud: float = Field(
        100.0, ge=0, le=100, description="Ignore items with more cloud cover (%)."
    )
    look_back_days: int = Field(0, ge=0, description="Search this many days before the season.")
    until: date | None = Field(None, description="Search up to this date (default: season end).")
    dry_run: bool = Field(False, description="Search and report; download nothing.")
    ingest: bool = Field(True, description="Register the downloaded products.")


def run(context: RunContext, parameters: AcquireParameters) -> RunResult:
    if context.season is None:
        raise ValueError("the acquisition needs a season")
    workspace = context.workspace
    sources = load_sources(workspace.home, parameters.sources_file, builtin=False)
    if sources is None:
        return RunResult(
            summary=(
                f"acquisition not configured: no {workspace_sources_file(workspace.home)} "
                "and no --sources-file; nothing searched"
            ),
            figures={"configured": False},
        )

    def progress(done: int, total: int, name: str) -> None:
        context.progress(done / total if total else 1.0, name)

    report = acquire_season(
        workspace,
        context.site.name,
        context.season.name,
        sources=sources,
        source_names=parameters.source_names,
        collections=parameters.collections,
        max_cloud=parameters.max_cloud,
        dry_run=parameters.dry_run,
        until=parameters.until,
        look_back_days=parameters.look_back_days,
        ingest=parameters.ingest,
        progress=progress,
    )
    searched = set(report.found) | {name for name, _ in report.source_errors}
    if searched and not report.found:
        details = "; ".join(f"{name}: {reason}" for name, reason in report.source_errors)
        raise SourceUnavailableError(f"no data source could be searched: {details}")
    figures = report.to_json()
    figures["configured"] = True
    return RunResult(summary=report.summary(), figures=figures)


ACQUIRE = register(
    Processor(
        id="acquire",
        title="Acquisition of input products",
        version="1.0",
        description=(
            "Search the configured STAC APIs for the site's Sentinel-2 tiles, Landsat path-rows "
            "and Sentinel-1 orbits in the season, download the missing products (resumable, "
            "checksummed, parallel, within daily quotas), record the download history and "
            "register the products."
        ),
        parameters=AcquireParameters,
        inputs=(
            ProcessorInput(
                "sources",
                "config",
                "Data sources (sources.toml) and their credentials in the environment.",
                required=False,
            ),
        ),
        outputs=(
            ProcessorOutput(
                "products",
                "products",
                "Input products in <home>/inputs/<site>/<kind>/, registered in the catalogue.",
            ),
        ),
        schedule=Schedule(kind="daily", first="start"),
        run=run,
    )
)
