"""The ``l4a`` processor: crop types of a site's season, as a product in the catalogue.

By default it reads the season's MDB, the newest declarations and the newest crop LUT of the
season's year; ``--mdb``, ``--parcels`` and ``--lut`` replace any of them. The product is the
folder ``<home>/products/<site>/l4a/<name>/`` (see :mod:`capmon.processors.l4a.outputs`) and a
``product`` row of type ``s4c_l4a``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
import pandas as pd

from capmon.catalog.models import Site
from capmon.errors import InputError
from capmon.mdb.query import MarkersDatabase
from capmon.processors.common import (
    new_product_folder,
    product_name,
    register_product,
    season_lut,
    season_mdb,
    season_parcels,
)
from capmon.processors.l4a.classify import CONFORM, NOT_CONFORM, L4AResult, classify_crops
from capmon.processors.l4a.outputs import report, write_l4a_product
from capmon.processors.l4a.parameters import L4AParameters
from capmon.processors.registry import (
    Processor,
    ProcessorInput,
    ProcessorOutput,
    RunContext,
    RunResult,
    Schedule,
    register,
)
from capmon.workspace import Workspace

PRODUCT_TYPE = "s4c_l4a"


def _inputs(
    workspace: Workspace, site: Site, season_name: str, year: int, parameters: L4AParameters
) -> tuple[MarkersDatabase, gpd.GeoDataFrame, pd.DataFrame]:
    return (
        season_mdb(workspace, site, season_name, year, parameters.mdb),
        season_parcels(workspace, site, year, parameters.parcels),
        season_lut(workspace, site, year, parameters.lut),
    )


def run(context: RunContext, parameters: L4AParameters) -> RunResult:
    """Classify the season's parcels, write the product and register it."""
    season = context.season
    if season is None:
        raise InputError("L4A needs a season")
    workspace, site = context.workspace, context.site
    year = season.end_date.year
    mdb, parcels, lut = _inputs(workspace, site, season.name, year, parameters)

    def progress(fraction: float, message: str) -> None:
        context.progress(0.05 + 0.85 * fraction, message)

    context.progress(0.0, "reading the markers database")
    result = classify_crops(
        mdb, parcels, lut, parameters, start=season.start_date, end=season.end_date,
        progress=progress,
    )  # fmt: skip
    now = datetime.now(UTC)
    folder = new_product_folder(
        workspace, site, "l4a", product_name("L4A", site, result.first_date, result.last_date, now)
    )
    context.progress(0.92, "writing the product")
    files = write_l4a_product(
        result, folder, now.strftime("%m%d_%H%M"), geometries=parcels[["NewID", "geometry"]]
    )
    register_product(
        workspace,
        site,
        folder,
        PRODUCT_TYPE,
        result.first_date,
        result.last_date,
        report(result),
    )
    context.progress(1.0, "done")
    return RunResult(
        summary=_summary(result),
        figures=figures(result),
        outputs={"product": str(folder)} | {key: str(path) for key, path in files.items()},
    )


def figures(result: L4AResult) -> dict[str, object]:
    """The run's figures: accuracy, counts per conformity class, excluded classes."""
    return {
        "overall_accuracy": round(result.overall_accuracy, 4),
        "kappa": round(result.kappa, 4),
        "classes": len(result.classes),
        "excluded_classes": [f"{e.class_id} {e.name}: {e.reason}" for e in result.excluded_classes],
        "missing_codes": result.missing_codes,
        "first_acquisition": str(result.first_date),
        "last_acquisition": str(result.last_date),
        "features": int(result.features.features.shape[1]),
        **{key: value for key, value in result.counts.items()},
        "notes": list(result.notes),
    }


def _summary(result: L4AResult) -> str:
    conform = result.counts.get(CONFORM, 0)
    not_conform = result.counts.get(NOT_CONFORM, 0)
    classified = conform + not_conform
    excluded = len(result.excluded_classes)
    accuracy = (
        f"overall accuracy {result.overall_accuracy:.3f}, kappa {result.kappa:.3f}"
        if classified
        else "no parcel classified"
    )
    return (
        f"{len(result.classes)} classes ({excluded} excluded), {accuracy}; "
        f"{classified} of {len(result.parcels)} parcels classified: {conform} conform, "
        f"{not_conform} not conform"
    )


L4A = register(
    Processor(
        id="l4a",
        title="L4A crop type",
        version="1.0",
        description=(
            "Parcel crop-type classification from Sentinel-2 and Sentinel-1 MDB features with "
            "Sen4CAP's sampling rules, SMOTE and a random forest (or LightGBM), with "
            "cross-prediction of the training parcels and an early-season mode (--until); "
            "per parcel predictions, conformity of the declarations and accuracy figures."
        ),
        parameters=L4AParameters,
        inputs=(
            ProcessorInput("mdb", "mdb", "The season's markers database."),
            ProcessorInput("parcels", "parcels", "The newest declarations of the season's year."),
            ProcessorInput("lut", "lut", "The crop LUT (ctnuml4a classes, lc land cover)."),
        ),
        outputs=(
            ProcessorOutput(
                "l4a",
                PRODUCT_TYPE,
                "Per parcel predictions and conformity, accuracy tables, plot and GeoPackage.",
                "text/csv",
            ),
        ),
        schedule=Schedule(kind="monthly", first="mid"),
        run=run,
    )
)
