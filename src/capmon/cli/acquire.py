"""``capmon acquire SITE SEASON``, ``capmon acquire status SITE``, ``capmon acquire sources``.

``capmon acquire SITE SEASON ...`` is short for ``capmon acquire run SITE SEASON ...``: the
group runs ``run`` when its first word is not one of its commands (so a site named ``status``
or ``sources`` needs the explicit ``run``). Exit status of ``run``: 0 complete, 1 partial (a
source unavailable, a product failed), 2 error.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from capmon.acquisition.history import history_json, list_history
from capmon.acquisition.run import acquire_season
from capmon.acquisition.sources import load_sources
from capmon.cli.common import console, print_json, reported_errors, split_values, state
from capmon.errors import InputError


class _DefaultRunGroup(TyperGroup):
    """A group whose unknown first word starts the ``run`` command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # a (vendored) click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


acquire_app = typer.Typer(
    cls=_DefaultRunGroup,
    help=(
        "Find and download a season's input products from STAC APIs (capmon acquire SITE "
        "SEASON), show the download history (capmon acquire status SITE) or the sources."
    ),
    no_args_is_help=True,
)


#: ``--sources-file`` (and its deprecated name ``--sources``), shared by the commands that read
#: the data sources.
SourcesFileOption = Annotated[
    Path | None,
    typer.Option(
        "--sources-file",
        help="Data sources file [default: <home>/sources.toml].",
        show_default=False,
    ),
]
SourcesAliasOption = Annotated[
    Path | None,
    typer.Option("--sources", hidden=True, help="Deprecated name of --sources-file."),
]


@acquire_app.command("run")
def acquire_run(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    season: Annotated[str, typer.Argument(help="Season name.")],
    sources_file: SourcesFileOption = None,
    sources_alias: SourcesAliasOption = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="Only these sources (names, comma-separated or repeated).",
            show_default=False,
        ),
    ] = None,
    collections: Annotated[
        list[str] | None,
        typer.Option(
            "--collections",
            help="Only these collections: ids or kinds s2_l2a, landsat_l2, s1_rtc (comma list).",
        ),
    ] = None,
    max_cloud: Annotated[
        float, typer.Option("--max-cloud", help="Ignore items with more cloud cover (%).")
    ] = 100.0,
    look_back_days: Annotated[
        int, typer.Option("--look-back-days", help="Also search these days before the season.")
    ] = 0,
    until: Annotated[
        str | None, typer.Option("--until", help="Search up to this date (YYYY-MM-DD).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Search and report what would be downloaded.")
    ] = False,
    ingest: Annotated[
        bool, typer.Option("--ingest/--no-ingest", help="Register the downloaded products.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Search the data sources for the season's products, download and register them."""
    with reported_errors():
        until_date = _date(until)
        workspace = state(ctx).workspace()
        sources = load_sources(workspace.home, sources_file or sources_alias)
        with Progress(
            TextColumn("[bold]downloading"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[product]}"),
            console=console,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("download", total=None, product="")

            def progress(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, product=name)

            report = acquire_season(
                workspace,
                site,
                season,
                sources=sources,
                source_names=split_values(source),
                collections=split_values(collections),
                max_cloud=max_cloud,
                dry_run=dry_run,
                until=until_date,
                look_back_days=look_back_days,
                ingest=ingest,
                progress=progress,
            )
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report.to_json(), report.summary())
    if report.partial:
        raise typer.Exit(1)


def _date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"--until {text!r} is not a date (YYYY-MM-DD)") from exc


def _print_report(report: dict[str, Any], summary: str) -> None:
    console.print(f"[bold]acquisition of {report['site']}/{report['season']}[/]: {summary}")
    if report["dry_run"] and report["planned"]:
        console.print("would download: " + ", ".join(report["planned"]))
    for label, key in (
        ("source unavailable", "source_errors"),
        ("source skipped", "skipped_sources"),
        ("failed", "failed"),
        ("queued", "queued"),
        ("not registered", "ingest_failed"),
    ):
        for name, reason in report[key]:
            console.print(f"{label}: [bold]{name}[/]: {reason}", highlight=False)


@acquire_app.command("status")
def acquire_status(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    season: Annotated[str | None, typer.Option("--season", help="Only this season.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only this status (queued, downloading, downloaded, failed, ignored)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The download history of a site (Sen4CAP's downloader_history)."""
    from capmon.sites import get_season, get_site

    with reported_errors(), state(ctx).workspace().session() as session:
        site_row = get_site(session, site)
        season_row = get_season(session, site_row, season) if season is not None else None
        rows = [history_json(row) for row in list_history(session, site_row, season_row, status)]
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row["status"])] = counts.get(str(row["status"]), 0) + 1
    if as_json:
        print_json({"site": site, "season": season, "counts": counts, "products": rows})
        return
    table = Table(
        "product", "source", "status", "retries", "MB", "acquired", "reason", title=f"{site}"
    )
    for row in rows:
        size = row["size_bytes"]
        table.add_row(
            str(row["product"]),
            str(row["source"]),
            str(row["status"]),
            str(row["retries"]),
            f"{int(size) / 1e6:.1f}" if isinstance(size, int) else "",
            str(row["acquired_at"] or "")[:16],
            str(row["reason"] or ""),
        )
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no history")


@acquire_app.command("sources")
def acquire_sources(
    ctx: typer.Context,
    sources_file: SourcesFileOption = None,
    sources_alias: SourcesAliasOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The configured data sources and whether their credentials are set (never shown)."""
    with reported_errors():
        chosen = sources_file or sources_alias
        sources = load_sources(state(ctx).workspace().home, chosen) or []
    rows = []
    for source in sources:
        missing = source.missing_credentials(source.credentials())
        rows.append(
            {
                "name": source.name,
                "url": source.url,
                "enabled": source.enabled,
                "auth": source.auth,
                "credentials": "not needed"
                if source.auth == "none"
                else ("set" if missing is None else missing),
                "collections": [f"{c.id} ({c.kind})" for c in source.collections],
                "concurrency": source.concurrency,
                "quota_products_per_day": source.quota_products_per_day,
                "quota_gb_per_day": source.quota_gb_per_day,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table("name", "url", "enabled", "collections", "credentials", title="Data sources")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["url"]),
            str(row["enabled"]),
            json.dumps(row["collections"]),
            str(row["credentials"]),
        )
    console.print(table)
