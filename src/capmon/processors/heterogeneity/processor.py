"""The ``heterogeneity`` processor: sub-parcel heterogeneity by three methods (see
:mod:`capmon.processors.heterogeneity.methods`), their agreement and cluster polygons.

Writes ``<home>/products/<site>/heterogeneity/<name>/`` with ``heterogeneity.csv`` (per parcel:
flag, score and triggering dates of each method, number of methods agreeing, majority flag),
``clusters.gpkg`` (the k-means clusters of the parcels flagged by any method, vectorised, at
the date where their two main clusters differ most) and ``report.json``; catalogue type
``s4c_heterogeneity``. On files (``--mdb --parcels --out``, see
:mod:`capmon.processors.files`) only the ``cv`` method runs: the others read a site's products.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from pydantic import BaseModel, ConfigDict, Field
from rasterio import features
from shapely.geometry import shape

from capmon.errors import InputError
from capmon.processors.baresoil.products import (
    write_product_folder,
)
from capmon.processors.files import product_folder, record_product
from capmon.processors.heterogeneity.methods import (
    ClusterLabels,
    DateImage,
    cluster_method,
    cv_method,
    mixture_method,
)
from capmon.processors.heterogeneity.pixels import (
    choose_dates,
    coherence_on_grid,
    image_grid,
    product_images,
)
from capmon.processors.registry import (
    Processor,
    ProcessorInput,
    ProcessorOutput,
    RunContext,
    RunResult,
    Schedule,
    register,
)
from capmon.sites import get_site
from capmon.sources import list_products, open_product

PRODUCT_TYPE = "s4c_heterogeneity"
PROCESSOR_ID = "heterogeneity"
Method = Literal["cv", "mixture", "cluster"]
ClusterFeature = Literal["ndvi", "cohe_vv"]
METHODS: tuple[Method, ...] = ("cv", "mixture", "cluster")


def _ndvi_only() -> list[ClusterFeature]:
    return ["ndvi"]


class HeterogeneityParameters(BaseModel):
    """Parameters of ``capmon run heterogeneity``."""

    model_config = ConfigDict(extra="forbid")

    methods: list[Method] = Field(
        default_factory=lambda: list(METHODS), description="Methods run (cv, mixture, cluster)."
    )
    cv_threshold: float = Field(default=0.12, gt=0, description="NDVI CV of a heterogeneous date.")
    cv_persistence: int = Field(default=3, ge=1, description="Dates the CV must exceed it.")
    min_ndvi: float = Field(default=0.3, description="CV only on dates with mean NDVI above.")
    min_share: float = Field(
        default=0.1, gt=0, lt=0.5, description="Share each of two clusters/components needs."
    )
    min_difference: float = Field(
        default=0.07, gt=0, description="NDVI difference between the two parts."
    )
    pixel_persistence: int = Field(
        default=2, ge=1, description="Dates the mixture/cluster test must pass."
    )
    k: int = Field(default=5, ge=2, le=20, description="k-means clusters per window.")
    max_dates: int = Field(default=6, ge=1, description="Acquisitions read at pixel level.")
    months: list[int] = Field(
        default_factory=lambda: [4, 5, 6, 7, 8], description="Months the dates are chosen in."
    )
    cluster_features: list[ClusterFeature] = Field(
        default_factory=_ndvi_only,
        description="k-means features: ndvi, or ndvi and cohe_vv (S1 coherence VV, standardised).",
    )
    cohe_max_days: int = Field(
        default=6, ge=0, description="Coherence pair at most this many days from the S2 date."
    )
    mdb: Path | None = Field(
        default=None,
        description="An MDB folder instead of the season's MDB (on files: required).",
    )
    parcels: Path | None = Field(
        default=None,
        description="A parcels table (GeoParquet of an import) instead of the stored one; on files "
        "(with --out) any vector file, ids in --parcel-id-col.",
    )


def run(context: RunContext, parameters: HeterogeneityParameters) -> RunResult:
    """Run the chosen methods on every parcel, write the product and register it (on files:
    write it to ``--out``; the pixel methods need a site's products, so only ``cv`` runs)."""
    from capmon.processors.files import run_parcels, run_season_and_mdb

    notes: list[str] = []
    if context.on_files:
        pixel_methods = [m for m in parameters.methods if m != "cv"]
        if "methods" in parameters.model_fields_set and pixel_methods:
            raise InputError(
                f"the {', '.join(pixel_methods)} method(s) read the L2A products of a site: run "
                "`capmon run heterogeneity SITE SEASON`, or pass --methods cv on files"
            )
        parameters = parameters.model_copy(update={"methods": ["cv"]})
        notes.append("run on files: the cv method only (mixture and cluster need a site)")
    if not parameters.methods:
        raise InputError("--methods needs at least one of cv, mixture, cluster")
    if "ndvi" not in parameters.cluster_features:
        raise InputError("--cluster-features must include ndvi (cohe_vv is an addition)")
    season, mdb = run_season_and_mdb(context, parameters.mdb, "heterogeneity")
    parcels = run_parcels(context, parameters.parcels, season.year, mdb)
    ids = sorted(parcels["NewID"].astype(int).tolist())
    context.progress(0.05, "reading NDVI statistics")
    rows = mdb.timeseries(ids, ["NDVI"], season.start_date, season.end_date)
    if rows.empty:
        raise InputError(f"the MDB {mdb.root} has no NDVI row for these parcels in the season")
    if "cv" in parameters.methods and not rows["stdev"].notna().any():
        notes.append(
            "the MDB's NDVI rows have no stdev (means only): the cv method gives no vote (NR)"
        )
    tables = [pd.DataFrame({"parcel_id": ids})]
    if "cv" in parameters.methods:
        tables.append(
            cv_method(
                rows,
                ids,
                cv_threshold=parameters.cv_threshold,
                min_ndvi=parameters.min_ndvi,
                persistence=parameters.cv_persistence,
            )
        )
    clustered: list[ClusterLabels] = []
    images: list[DateImage] = []
    chosen: list[date] = []
    coherence_dates: dict[str, str] = {}
    if {"mixture", "cluster"} & set(parameters.methods):
        chosen = choose_dates(rows, months=parameters.months, max_dates=parameters.max_dates)
        products = _optical_products(context, chosen)
        if not products:
            notes.append("no clear optical acquisition in the chosen months: pixel methods skipped")
        context.progress(0.2, f"reading {len(products)} acquisitions")
        images = product_images(products, parcels)
        if "mixture" in parameters.methods:
            context.progress(0.4, "mixture models")
            tables.append(
                mixture_method(
                    images,
                    ids,
                    min_share=parameters.min_share,
                    min_difference=parameters.min_difference,
                    persistence=parameters.pixel_persistence,
                )
            )
        if "cluster" in parameters.methods:
            use_coherence = "cohe_vv" in parameters.cluster_features and bool(images)
            if use_coherence:
                context.progress(0.65, "S1 coherence VV")
                images, coherence_dates = _with_coherence(
                    context, images, products, parameters.cohe_max_days, notes
                )
                use_coherence = bool(coherence_dates)
            context.progress(0.7, "k-means clustering")
            table, clustered = cluster_method(
                images, ids, k=parameters.k, min_share=parameters.min_share,
                min_difference=parameters.min_difference,
                persistence=parameters.pixel_persistence, use_coherence=use_coherence,
            )  # fmt: skip
            if images and not clustered:
                notes.append("every window was uniform (one cluster): clustering gave no vote")
            tables.append(table)
    result = tables[0]
    for table in tables[1:]:
        result = result.merge(table, on="parcel_id", how="left")
    run_methods = [m for m in METHODS if f"{m}_flag" in result]
    flags = result[[f"{m}_flag" for m in run_methods]].fillna(False).astype(bool)
    result["methods_flagging"] = flags.sum(axis=1)
    result["heterogeneous"] = result["methods_flagging"] * 2 > len(run_methods)
    result["agreement"] = np.where(flags.all(axis=1) | ~flags.any(axis=1), "all", "partial")
    original = dict(zip(parcels["NewID"].astype(int), parcels["ori_id"].astype(str), strict=True))
    result.insert(1, "ori_id", result["parcel_id"].map(original))
    flagged = result.loc[flags.any(axis=1), "parcel_id"].tolist()
    polygons = _cluster_polygons(
        clustered, images, flagged, products_grid=_grid_of(context, chosen)
    )
    counts = {f"{m}_flagged": int(flags[f"{m}_flag"].sum()) for m in run_methods}
    counts["heterogeneous"] = int(result["heterogeneous"].sum())
    agreement = _pairwise_agreement(flags, run_methods)
    report = {
        "parameters": parameters.model_dump(mode="json"),
        "pixel_dates": [str(d) for d in chosen],
        "cluster_features": (
            ["ndvi", "cohe_vv"] if coherence_dates and "cluster" in parameters.methods else ["ndvi"]
        ),
        "coherence_dates": coherence_dates,
        "counts": counts,
        "agreement": agreement,
        "notes": notes,
    }
    folder = product_folder(
        context, PROCESSOR_ID, "HETEROGENEITY", season.start_date, season.end_date
    )
    writers = {"heterogeneity.csv": lambda p: result.to_csv(p, index=False)}
    if polygons is not None and not polygons.empty:
        writers["clusters.gpkg"] = lambda p: polygons.to_file(p, driver="GPKG", layer="clusters")
    written = write_product_folder(folder, writers, report)
    record_product(context, folder, PRODUCT_TYPE, season.start_date, season.end_date, report)
    context.progress(1.0, "done")
    summary = f"{len(ids)} parcels: " + ", ".join(f"{v} {k}" for k, v in counts.items())
    return RunResult(
        summary=summary,
        figures={**counts, **{f"agreement_{k}": v for k, v in agreement.items()}},
        outputs={"product": str(folder)} | {p.stem: str(p) for p in written.values()},
    )


def _optical_products(context: RunContext, days: list[date]) -> list[tuple[date, Path]]:
    if not days:
        return []
    wanted = set(days)
    out: dict[date, Path] = {}
    with context.workspace.session() as session:
        site = get_site(session, context.site.name)
        for product in list_products(session, site):
            if product.acquired_at is None or product.product_type not in ("l2a", "l2a_maja"):
                continue
            day = product.acquired_at.date()
            if day in wanted and day not in out:
                out[day] = Path(product.path)
    return sorted(out.items())


def _with_coherence(
    context: RunContext,
    images: list[DateImage],
    products: list[tuple[date, Path]],
    max_days: int,
    notes: list[str],
) -> tuple[list[DateImage], dict[str, str]]:
    """Each image with the coherence VV of the nearest pair (within ``max_days``) on its grid,
    and {S2 date: coherence date}. Dates without one are clustered on NDVI alone (noted)."""
    with context.workspace.session() as session:
        site = get_site(session, context.site.name)
        candidates = [
            (product.acquired_at.date(), Path(product.path))
            for product in list_products(session, site, "s1_cohe")
            if product.acquired_at is not None
        ]
    if not candidates:
        notes.append(
            "cluster_features cohe_vv ignored (NR): the season has no S1 coherence product; "
            "k-means on NDVI only"
        )
        return images, {}
    paths = dict(products)
    out, used, missing = [], {}, []
    for image in images:
        near = sorted(
            (abs((day - image.day).days), day, path)
            for day, path in candidates
            if abs((day - image.day).days) <= max_days
        )
        found = None
        for _gap, day, path in near:
            if open_product(path).info.polarisation == "VV":
                found = (day, path)
                break
        if found is None:
            missing.append(image.day.isoformat())
            out.append(image)
            continue
        cohe = coherence_on_grid(found[1], image_grid(paths[image.day]))
        out.append(dataclasses.replace(image, cohe_vv=cohe))
        used[image.day.isoformat()] = found[0].isoformat()
    if not used:
        notes.append(
            f"cluster_features cohe_vv ignored (NR): no S1 coherence VV within {max_days} days "
            "of any pixel date; k-means on NDVI only"
        )
    elif missing:
        notes.append(
            f"no S1 coherence VV within {max_days} days of {', '.join(missing)}: "
            "those dates clustered on NDVI only"
        )
    return out, used


def _grid_of(context: RunContext, days: list[date]) -> tuple[str, Affine] | None:
    products = _optical_products(context, days[:1])
    if not products:
        return None
    grid = image_grid(products[0][1])
    return grid.crs.to_wkt(), grid.transform


def _cluster_polygons(
    clustered: list[ClusterLabels],
    images: list[DateImage],
    flagged: list[int],
    *,
    products_grid: tuple[str, Affine] | None,
) -> gpd.GeoDataFrame | None:
    """Polygons of each flagged parcel's clusters at its most contrasted date."""
    if not clustered or products_grid is None or not flagged:
        return None
    crs, transform = products_grid
    by_day = {image.day: image for image in images}
    rows = []
    for pid in flagged:
        best: tuple[float, ClusterLabels] | None = None
        for clusters in clustered:
            pixels = by_day[clusters.day].parcels.get(pid)
            if pixels is None or len(pixels) == 0:
                continue
            own = clusters.labels.ravel()[pixels]
            own = own[own >= 0]
            if len(np.unique(own)) < 2:
                continue
            spread = float(np.ptp(clusters.centres[np.unique(own)]))
            if best is None or spread > best[0]:
                best = (spread, clusters)
        if best is None:
            continue
        clusters = best[1]
        pixels = by_day[clusters.day].parcels[pid]
        width = clusters.labels.shape[1]
        r, c = pixels // width, pixels % width
        r0, c0 = int(r.min()), int(c.min())
        window = np.full((int(r.max()) - r0 + 1, int(c.max()) - c0 + 1), -1, dtype=np.int16)
        window[r - r0, c - c0] = clusters.labels.ravel()[pixels]
        local = transform @ Affine.translation(c0, r0)
        for geometry, value in features.shapes(window, mask=window >= 0, transform=local):
            rows.append(
                {
                    "parcel_id": pid,
                    "date": clusters.day.isoformat(),
                    "cluster": int(value),
                    "cluster_ndvi": float(clusters.centres[int(value)]),
                    "geometry": shape(geometry),
                }
            )
    if not rows:
        return None
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    return frame.dissolve(by=["parcel_id", "date", "cluster"], as_index=False)


def _pairwise_agreement(flags: pd.DataFrame, methods: Sequence[str]) -> dict[str, float]:
    """Share of parcels on which each pair of methods gives the same flag."""
    out = {}
    for i, a in enumerate(methods):
        for b in methods[i + 1 :]:
            out[f"{a}_{b}"] = float((flags[f"{a}_flag"] == flags[f"{b}_flag"]).mean())
    return out


HETEROGENEITY = register(
    Processor(
        id=PROCESSOR_ID,
        title="Sub-parcel heterogeneity",
        version="1.0",
        description=(
            "Heterogeneous parcels by three methods benchmarked against each other: NDVI "
            "coefficient of variation from the MDB with persistence over dates, a 1-vs-2 "
            "component mixture (BIC) on each parcel's pixels, and k-means clustering of the "
            "tile window; flags, scores, triggering dates, agreement, cluster polygons."
        ),
        parameters=HeterogeneityParameters,
        inputs=(
            ProcessorInput("mdb", "mdb", "The season's markers database (NDVI statistics)."),
            ProcessorInput("parcels", "parcels", "The newest declarations of the season's year."),
            ProcessorInput("products", "products", "The season's S2 L2A products (pixel methods)."),
        ),
        outputs=(
            ProcessorOutput(
                "heterogeneity",
                PRODUCT_TYPE,
                "Per parcel flags/scores of each method, agreement; cluster polygons (GPKG).",
                "text/csv",
            ),
        ),
        schedule=Schedule(kind="monthly", first="mid"),
        run=run,
        runs_on_files=True,
    )
)
