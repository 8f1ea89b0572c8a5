"""The ``l4a`` processor: crop types of a site's season, as a product in the catalogue.

By default it reads the season's MDB, the newest declarations and the newest crop LUT of the
season's year; ``--mdb``, ``--parcels`` and ``--lut`` replace any of them. The product is the
folder ``<home>/products/<site>/l4a/<name>/`` (see :mod:`capmon.processors.l4a.outputs`) and a
``product`` row of type ``s4c_l4a``. On files (``--mdb --parcels --out``, no site, see
:mod:`capmon.processors.files`) it needs ``--crop-code-col`` and ``--lut``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from capmon.processors.l4a.attributes import read_attributes
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

PRODUCT_TYPE = "s4c_l4a"


def run(context: RunContext, parameters: L4AParameters) -> RunResult:
    """Classify the season's parcels, write the product and register it (on files: write it
    to ``--out``; the declared crop codes and the LUT are then required)."""
    from capmon.processors.files import (
        product_folder,
        record_product,
        run_lut,
        run_parcels,
        run_season_and_mdb,
    )

    season, mdb = run_season_and_mdb(context, parameters.mdb, "L4A")
    year = season.year
    needs = "L4A learns the declared crop types"
    parcels = run_parcels(context, parameters.parcels, year, mdb, crop_codes=needs)
    lut = run_lut(context, parameters.lut, year, required=f"{needs} of the LUT's classes")
    assert lut is not None

    def progress(fraction: float, message: str) -> None:
        context.progress(0.05 + 0.85 * fraction, message)

    attributes_notes: tuple[str, ...] = ()
    if parameters.attributes_file is not None:
        joined = read_attributes(parameters.attributes_file, parcels, parameters.attributes)
        parcels, attributes_notes = joined.parcels, joined.notes
        parameters = parameters.model_copy(update={"attributes": list(joined.names)})
    context.progress(0.0, "reading the markers database")
    result = classify_crops(
        mdb, parcels, lut, parameters, start=season.start_date, end=season.end_date,
        progress=progress,
    )  # fmt: skip
    if attributes_notes:
        result = replace(result, notes=result.notes + attributes_notes)
    now = datetime.now(UTC)
    folder = product_folder(context, "l4a", "L4A", result.first_date, result.last_date)
    context.progress(0.92, "writing the product")
    files = write_l4a_product(
        result, folder, now.strftime("%m%d_%H%M"), geometries=parcels[["NewID", "geometry"]]
    )
    record_product(
        context, folder, PRODUCT_TYPE, result.first_date, result.last_date, report(result)
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
        "macro_f1": round(result.macro_f1, 4),
        "overall_accuracy_all_declared": round(result.overall_accuracy_all_declared, 4),
        "accuracy_parcels": result.evaluated,
        "accuracy_warning": result.accuracy_warning,
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
        f"overall accuracy {result.overall_accuracy:.3f}, macro-F1 {result.macro_f1:.3f}, "
        f"kappa {result.kappa:.3f} on {result.evaluated} parcels predicted by a model that did "
        f"not see them (all declared classes: {result.overall_accuracy_all_declared:.3f})"
        if classified
        else "no parcel classified"
    )
    if classified and result.accuracy_warning:
        accuracy += f" [{result.accuracy_warning}]"
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
            "Sen4CAP's sampling rules, class weights (or Sen4CAP's SMOTE) and a random "
            "forest (or LightGBM), an S2-only model for parcels without S1, cross-prediction "
            "of the training parcels and an early-season mode (--until); per parcel "
            "predictions, conformity of the declarations and out-of-fold accuracy figures."
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
        runs_on_files=True,
    )
)
