"""``capmon site ...`` and ``capmon season ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from capmon import sites
from capmon.cli.common import console, print_json, reported_errors, state

site_app = typer.Typer(help="Sites: named areas of interest.", no_args_is_help=True)
season_app = typer.Typer(help="Seasons of a site.", no_args_is_help=True)


@site_app.command("create")
def site_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Site name.")],
    aoi: Annotated[
        Path,
        typer.Option("--aoi", help="AOI file: zipped shapefile, GeoPackage, GeoJSON...; any CRS."),
    ],
    layer: Annotated[str | None, typer.Option(help="Layer of the AOI file.")] = None,
) -> None:
    """Create a site; its Sentinel-2 tiles are derived from the AOI."""
    with reported_errors(), state(ctx).workspace().session() as session:
        site = sites.create_site(session, name, aoi, layer=layer)
        console.print(
            f"Created site [bold]{site.name}[/] (id {site.id}, short name {site.short_name}); "
            f"Sentinel-2 tiles: {', '.join(site.tiles)}"
        )


@site_app.command("publish")
def site_publish(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Site name.")],
    withdraw: Annotated[
        bool, typer.Option("--withdraw", help="Close anonymous read again.")
    ] = False,
) -> None:
    """Let anyone read the site's processor products (STAC items and assets) without a token."""
    from capmon.service.site_admin import publish_site

    with reported_errors():
        publish_site(state(ctx).workspace(), name, not withdraw)
    what = "no longer published" if withdraw else "published: anonymous read of its products"
    console.print(f"Site [bold]{name}[/] {what}")


@site_app.command("list")
def site_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the sites."""
    with reported_errors(), state(ctx).workspace().session() as session:
        rows = [
            {
                "id": s.id,
                "name": s.name,
                "short_name": s.short_name,
                "enabled": s.enabled,
                "tiles": s.tiles,
                "bounds": [round(v, 5) for v in s.aoi.bounds],
                "seasons": [season.name for season in s.seasons],
            }
            for s in sites.list_sites(session)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "short name", "enabled", "S2 tiles", "seasons", title="Sites")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["name"]),
            str(row["short_name"]),
            "yes" if row["enabled"] else "no",
            ", ".join(row["tiles"]),  # type: ignore[arg-type]
            ", ".join(row["seasons"]),  # type: ignore[arg-type]
        )
    console.print(table)


@season_app.command("create")
def season_create(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    name: Annotated[str, typer.Argument(help="Season name, e.g. 2024.")],
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD.")],
    mid: Annotated[
        str | None, typer.Option(help="Mid-season day, YYYY-MM-DD [default: halfway].")
    ] = None,
) -> None:
    """Add a season to a site; seasons of one site may not overlap."""
    with reported_errors(), state(ctx).workspace().session() as session:
        dates = sites.SeasonDates.parse(start, end, mid)
        season = sites.create_season(session, sites.get_site(session, site), name, dates)
        console.print(
            f"Created season [bold]{season.name}[/] of site {site}: "
            f"{season.start_date} / {season.mid_date} / {season.end_date}"
        )


@season_app.command("list")
def season_list(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Argument(help="Only this site's seasons.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the seasons."""
    with reported_errors(), state(ctx).workspace().session() as session:
        chosen = sites.get_site(session, site) if site else None
        rows = [
            {
                "id": s.id,
                "site": s.site.name,
                "name": s.name,
                "start": s.start_date.isoformat(),
                "mid": s.mid_date.isoformat(),
                "end": s.end_date.isoformat(),
                "enabled": s.enabled,
            }
            for s in sites.list_seasons(session, chosen)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "site", "season", "start", "mid", "end", "enabled", title="Seasons")
    for row in rows:
        table.add_row(
            *(str(row[k]) for k in ("id", "site", "name", "start", "mid", "end")),
            "yes" if row["enabled"] else "no",
        )
    console.print(table)
