"""``capmon products ...``: register input products of a site and list them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from capmon import sites
from capmon.catalog.models import Product
from capmon.cli.common import console, print_json, reported_errors, state
from capmon.sources.ingest import IngestReport, IngestStatus, ingest_products, list_products
from capmon.sources.model import ProductType

products_app = typer.Typer(
    help="Input products (Sentinel-2 L2A, Landsat C2 L2, Sentinel-1, STAC items).",
    no_args_is_help=True,
)

_STYLES = {
    IngestStatus.REGISTERED: "green",
    IngestStatus.KNOWN: "dim",
    IngestStatus.CHANGED: "yellow",
    IngestStatus.SKIPPED: "cyan",
    IngestStatus.FAILED: "red",
}


@products_app.command("ingest")
def products_ingest(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    paths: Annotated[
        list[Path],
        typer.Argument(help="Products, folders to search or STAC catalogs.", show_default=False),
    ],
    recursive: Annotated[
        bool, typer.Option("--recursive/--no-recursive", help="Search sub-folders.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register products in the catalogue; re-ingesting a product does nothing.

    Exits with code 1 when a product failed or changed (the others are registered).
    """
    with reported_errors(), state(ctx).workspace().session() as session:
        site_row = sites.get_site(session, site)
        report = ingest_products(session, site_row, paths, recursive=recursive)
    if as_json:
        print_json(
            {
                "summary": report.summary,
                "products": [
                    {
                        "path": str(outcome.path),
                        "name": outcome.name,
                        "type": outcome.product_type,
                        "status": outcome.status.value,
                        "reason": outcome.reason,
                    }
                    for outcome in report.outcomes
                ],
            }
        )
    else:
        _print_report(report)
    if report.count(IngestStatus.FAILED) or report.count(IngestStatus.CHANGED):
        raise typer.Exit(1)


def _print_report(report: IngestReport) -> None:
    table = Table("product", "type", "status", "reason", title="Ingestion")
    for outcome in report.outcomes:
        style = _STYLES[outcome.status]
        table.add_row(
            outcome.name or str(outcome.path),
            outcome.product_type or "",
            f"[{style}]{outcome.status.value}[/]",
            outcome.reason or "",
        )
    console.print(table)
    summary = report.summary
    console.print(
        f"{summary['registered']} registered, {summary['known']} already known, "
        f"{summary['changed']} changed, {summary['skipped']} skipped, "
        f"{summary['failed']} failed",
        highlight=False,
    )


@products_app.command("list")
def products_list(
    ctx: typer.Context,
    site: Annotated[str, typer.Argument(help="Site name.")],
    product_type: Annotated[
        ProductType | None, typer.Option("--type", help="Only products of this type.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the products of a site by acquisition time."""
    with reported_errors(), state(ctx).workspace().session() as session:
        site_row = sites.get_site(session, site)
        rows = [_row(p) for p in list_products(session, site_row, product_type)]
    if as_json:
        print_json(rows)
        return
    table = Table(
        "name", "type", "sensor", "acquired", "tile", "orbit", "baseline", title="Products"
    )
    for row in rows:
        orbit = "" if row["relative_orbit"] is None else str(row["relative_orbit"])
        if row["orbit_direction"]:
            orbit = f"{orbit} {row['orbit_direction']}"
        table.add_row(
            str(row["name"]),
            str(row["product_type"]),
            row["sensor"] or "",
            row["acquired_at"] or "",
            row["tile"] or "",
            orbit,
            row["processing_baseline"] or "",
        )
    console.print(table)


def _row(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "product_type": product.product_type,
        "sensor": product.sensor,
        "acquired_at": _iso(product.acquired_at),
        "acquired_first_at": _iso(product.acquired_first_at),
        "tile": product.tile,
        "relative_orbit": product.relative_orbit,
        "orbit_direction": product.orbit_direction,
        "processing_baseline": product.processing_baseline,
        "polarisation": product.properties.get("polarisation"),
        "path": product.path,
        "footprint_bounds": None
        if product.footprint is None
        else [round(v, 6) for v in product.footprint.bounds],
    }


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())
