"""The benchmark's figures as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from capmon.bench.extract import GB, BenchReport

_LABELS = {
    "raw_decode_gtiff_1thread": "raw decode GeoTIFF, 1 thread",
    "raw_decode_gtiff_threads": "raw decode GeoTIFF, {threads} threads",
    "raw_decode_jp2_1thread": "raw decode JPEG2000, 1 thread",
    "raw_decode_jp2_threads": "raw decode JPEG2000, {threads} threads",
    "capmon_first_date": "capmon first date",
    "capmon_next_date": "capmon per further date",
    "exactextract_in_memory": "exactextract, raster in memory",
    "rasterstats": "rasterstats (extrapolated)",
}


def _number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _note(name: str, figures: dict[str, Any]) -> str:
    if name == "capmon_first_date":
        return (
            f"parcels {figures['read_parcels_seconds']:.2f}"
            f" + pixels {figures['parcel_pixels_seconds']:.2f}"
            f" + plan {figures['plan_seconds']:.2f}"
            f" + streamed band {figures['stream_seconds']:.2f}"
            f" (stats {figures['statistics_seconds']:.2f} overlapped)"
        )
    if name == "capmon_next_date":
        return (
            f"{figures['dates']} dates in a row, {figures['strip_rows']}-row strips: stats "
            f"{figures['statistics_seconds']:.2f} overlapped with decoding"
        )
    if name == "exactextract_in_memory":
        return (
            f"band {figures['read_band_seconds']:.2f} + extract {figures['extract_seconds']:.2f};"
            " coverage-weighted"
        )
    if name == "rasterstats":
        return f"{figures['seconds_subset']:.1f} s for {figures['extrapolated_from']} parcels"
    if "runs" in figures:
        return f"median of {len(figures['runs'])}"
    return ""


def render(result: BenchReport, console: Console) -> None:
    """Methods, targets, MDB and correctness tables."""
    config = result.config
    data = result.data
    console.print(
        f"Tile {data['tile']}: {data['size']} x {data['size']} px, {data['parcels']:,} parcels "
        f"({data.get('parcel_pixels', 0):,} parcel pixels), GeoTIFF "
        f"{data['gtiff_bytes'] / 1e6:.0f} MB"
        + (f", JPEG2000 {data['jp2_bytes'] / 1e6:.0f} MB" if data["jp2_bytes"] else "")
        + f"; {result.machine['cpus']} CPUs, load {result.machine['load_at_start']} at start, "
        f"{result.machine['load_at_end']} at end"
    )
    raw = result.methods.get("raw_decode_gtiff_threads", {}).get("seconds")
    table = Table(title="Zonal statistics of one band")
    for column in ("method", "seconds", "parcels/s", "x raw decode", "peak RSS (GB)", "notes"):
        table.add_column(column, justify="left" if column in {"method", "notes"} else "right")
    for name, figures in result.methods.items():
        seconds = figures.get("seconds")
        label = _LABELS.get(name, name).format(threads=config["threads"])
        per_second = (
            figures.get("parcels_per_second")
            if name.startswith(("capmon", "exact", "raster"))
            else None
        )
        table.add_row(
            label,
            _number(seconds),
            _number(per_second, 0),
            _number(seconds / raw if seconds and raw else None),
            _number(figures["peak_rss_bytes"] / GB),
            _note(name, figures),
        )
    for method, reason in result.skipped.items():
        table.add_row(method, "-", "-", "-", "-", f"[yellow]skipped: {reason}[/]")
    console.print(table)

    targets = Table(title="Targets")
    for column in ("figure", "value", "target", "met"):
        targets.add_column(column)
    for target in result.targets:
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "[yellow]skipped[/]"}
        targets.add_row(
            target["label"], _number(target["value"]), target["target"], met[target["met"]]
        )
    ratios = result.ratios
    console.print(targets)
    console.print(
        f"capmon first date / exactextract: {_number(ratios['capmon_first_vs_exactextract'])}; "
        f"rasterstats / capmon further date: {_number(ratios['rasterstats_vs_capmon_next'], 0)}; "
        f"JPEG2000 / GeoTIFF decode: {_number(ratios['jp2_vs_gtiff_decode'])}; "
        f"capmon per further date on JPEG2000 (estimate): "
        f"{_number(ratios['capmon_next_jp2_estimate_seconds'])} s"
    )
    mdb = result.mdb
    query = mdb["query"]
    console.print(
        f"MDB {mdb['parcels']:,} parcels x {mdb['dates']} dates x {mdb['signals']} signals "
        f"({mdb['rows']:,} rows, {mdb['files']} files): {mdb['bytes'] / 1e6:.1f} MB, "
        f"{mdb['bytes_per_row']:.1f} bytes/row; one-parcel query median "
        f"{query['median_seconds'] * 1e3:.1f} ms, p95 {query['p95_seconds'] * 1e3:.1f} ms "
        f"({query['rows_per_query']:.0f} rows; open + query "
        f"{query['open_and_query_median_seconds'] * 1e3:.1f} ms)"
    )
    compacted = mdb["compacted_layout"]
    console.print(
        f"After compaction ({compacted['seconds']:.1f} s; parcel-bucketed, parcel-sorted files, "
        f"as `capmon mdb extract` leaves them): "
        f"{compacted['bytes_per_row']:.1f} bytes/row, one-parcel query median "
        f"{compacted['query']['median_seconds'] * 1e3:.1f} ms "
        f"(p95 {compacted['query']['p95_seconds'] * 1e3:.1f} ms)"
    )
    reference = result.correctness["reference"]
    console.print(
        f"Correctness: capmon vs per-parcel reference on {reference['parcels']} parcels: "
        + ("[green]identical[/]" if reference["passed"] else "[red]DIFFERENT[/]")
        + f" (max relative difference {reference['max_relative_difference']:.1e})"
    )
    exact = result.correctness["exactextract"]
    if exact.get("skipped"):
        console.print(f"capmon vs exactextract: [yellow]skipped[/] ({exact['skipped']})")
    else:
        console.print(
            f"capmon vs exactextract on {exact['parcels']:,} parcels ({exact['weighting']}): "
            f"median relative difference of means {exact['median_relative_mean_difference']:.1e} "
            f"(p95 {exact['p95_relative_mean_difference']:.1e}), of counts "
            f"{exact['median_relative_count_difference']:.1e} "
            f"(p95 {exact['p95_relative_count_difference']:.1e}); with pixels at least half "
            f"covered, unweighted ({exact['half_covered_parcels']:,} parcels): means "
            f"{exact['half_covered_median_relative_mean_difference']:.1e}, counts "
            f"{exact['half_covered_median_relative_count_difference']:.1e} "
            f"({exact['half_covered_identical_counts']:.0%} identical): "
            + ("[green]agree[/]" if exact["passed"] else "[red]DISAGREE[/]")
        )
