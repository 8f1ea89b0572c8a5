"""The ``l4c`` processor: agricultural practices of a site's season (Sen4CAP's ``s4c_l4c``).

``capmon run l4c SITE SEASON --practice catchcrop|fallow|nfc|na [--country XXX]`` reads the
season's MDB, the newest declarations and LUT of the season's year, the newest practice table
imported with ``capmon practices import`` (or ``--practices FILE``) and the newest L4C config
(or ``--config FILE``, else Sen4CAP's defaults), runs the time-series analysis and writes the
product ``<home>/products/<site>/l4c/<name>/`` (see :mod:`capmon.processors.l4c.outputs`) with
a ``product`` row of type ``s4c_l4c``. On files (``--mdb --parcels --out``, no site, see
:mod:`capmon.processors.files`) the practice table is ``--practices FILE``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from capmon.catalog.models import Site
from capmon.errors import InputError, NotFoundError
from capmon.parcels import load_lut
from capmon.processors.files import product_folder, record_product
from capmon.processors.l4c.analysis import (
    MIN_COHERENCE_VALUES,
    AnalysisSettings,
    L4CResult,
    analyse_practices,
)
from capmon.processors.l4c.config import (
    PRACTICE_NAMES,
    L4CConfig,
    PracticeCode,
    default_config,
    practice_code,
    read_l4c_config,
)
from capmon.processors.l4c.outputs import report, write_l4c_product
from capmon.processors.l4c.practices import (
    PracticeTable,
    load_stored_config,
    load_stored_practices,
    match_parcels,
    read_practice_csv,
    stored_config,
    stored_practices,
)
from capmon.processors.l4c.weekly import AMPLITUDE_INPUTS
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

PRODUCT_TYPE = "s4c_l4c"
DEFAULT_COUNTRY = "XXX"


class L4CParameters(BaseModel):
    """Parameters of the L4C processor (defaults are Sen4CAP's ``processor.s4c_l4c.*``)."""

    model_config = ConfigDict(extra="forbid")

    practice: Literal["catchcrop", "fallow", "nfc", "na"] = Field(
        default="na",
        description="Practice analysed: catchcrop, fallow, nfc or na (harvest only).",
    )
    country: str | None = Field(
        default=None,
        description="Country code of the rules and file names [default: the stored config's].",
    )
    practices: Path | None = Field(
        default=None, description="A practice CSV instead of the imported practice table."
    )
    config: Path | None = Field(
        default=None, description="An L4C .cfg instead of the imported one (else the defaults)."
    )
    amplitude: Literal["amp", "bck"] = Field(
        default="amp",
        description=(
            "Backscatter input: amp (AMP_VV/VH, Sen4CAP's 'AMP dB' scale, used as is) or bck "
            "(BCK_VV/VH, true sigma0 dB, halved to Sen4CAP's scale)."
        ),
    )
    tillage: bool = Field(default=False, description="Detect tillage after the harvest (TL_*).")
    mdb3: bool = Field(default=True, description="Write the MDB3 marker export (M1-M5 per week).")
    s1pix_threshold: int = Field(
        default=1, ge=0, description="Parcels with fewer S1 pixels get NA1 markers."
    )
    min_coherence: int = Field(
        default=MIN_COHERENCE_VALUES,
        ge=0,
        description="A parcel needs more coherence values than this (else NR).",
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
    lut: Path | None = Field(
        default=None, description="A Sen4CAP LUT CSV instead of the stored one."
    )

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not code.isalpha() or not 2 <= len(code) <= 3:
            raise ValueError(f"a 2- or 3-letter country code such as NLD, not {value!r}")
        return code

    @property
    def practice_code(self) -> PracticeCode:
        return practice_code(self.practice)


def _practice_table(
    context: RunContext, year: int, parameters: L4CParameters, parcels: pd.DataFrame
) -> PracticeTable:
    code = parameters.practice_code
    if parameters.practices is not None:
        table = read_practice_csv(parameters.practices, code)
        return match_parcels(table, parcels)
    if context.on_files:
        raise InputError(
            f"L4C analyses the parcels of a {PRACTICE_NAMES[code]} practice table: pass "
            "--practices FILE (a Sen4CAP practice CSV)"
        )
    workspace, site = context.workspace, context.site
    stored = stored_practices(workspace, site.name, year, code)
    if stored is None:
        raise NotFoundError(
            f"site {site.name!r} has no {PRACTICE_NAMES[code]} practice table for {year}; "
            "import one with `capmon practices import` or pass --practices FILE"
        )
    return match_parcels(load_stored_practices(stored), parcels)


def _config(
    context: RunContext, year: int, parameters: L4CParameters
) -> tuple[L4CConfig, str | None]:
    if parameters.config is not None:
        return read_l4c_config(parameters.config, year), None
    if context.on_files:
        return default_config(year), None
    stored = stored_config(context.workspace, context.site.name, year)
    if stored is None:
        return default_config(year), None
    return load_stored_config(stored)


def run(context: RunContext, parameters: L4CParameters) -> RunResult:
    """Analyse the season's practice table, write the product and register it (on files:
    write it to ``--out``; the practice table is then ``--practices``)."""
    from capmon.processors.files import run_lut, run_parcels, run_season_and_mdb

    season, mdb = run_season_and_mdb(context, parameters.mdb, "L4C")
    year = season.year
    parcels = run_parcels(context, parameters.parcels, year, mdb)
    lut = (
        run_lut(context, parameters.lut, year)
        if parameters.lut is not None or context.on_files
        else _stored_lut(context.workspace, context.site, year)
    )
    table = _practice_table(context, year, parameters, parcels)
    config, stored_country = _config(context, year, parameters)
    country = parameters.country or stored_country or DEFAULT_COUNTRY
    code = parameters.practice_code
    settings = AnalysisSettings(
        country=country,
        year=year,
        season_start=season.start_date,
        season_end=season.end_date,
        season_mid=season.mid_date,
        amplitude=parameters.amplitude,
        s1pix_threshold=parameters.s1pix_threshold,
        min_coherence=parameters.min_coherence,
        tillage=parameters.tillage,
    )

    def progress(fraction: float, message: str) -> None:
        context.progress(0.05 + 0.85 * fraction, message)

    context.progress(0.0, "reading the markers database")
    result = analyse_practices(mdb, parcels, table, config.parameters(code), settings, progress)
    if country == DEFAULT_COUNTRY and parameters.country is None:
        result.notes.append(
            f"no country given nor stored with a config: default rules, files named {country}"
        )
    result.notes.extend(f"config: {note}" for note in config.notes)
    folder = product_folder(
        context, "l4c", f"L4C_{PRACTICE_NAMES[code]}", result.first_date, result.last_date
    )
    context.progress(0.92, "writing the product")
    run_settings = {
        "practice": parameters.practice,
        "country": country,
        "config": config.source,
        "practices": table.source,
        "amplitude": parameters.amplitude,
        "amplitude_scale": AMPLITUDE_INPUTS[parameters.amplitude].description,
        "tillage": parameters.tillage,
        "s1pix_threshold": parameters.s1pix_threshold,
        "min_coherence": parameters.min_coherence,
        "thresholds": {
            k.upper(): (v.isoformat() if isinstance(v, date) else v)
            for k, v in vars(config.parameters(code)).items()
        },
    }
    files = write_l4c_product(
        result, folder, parcels=parcels, lut=lut, mdb3=parameters.mdb3, settings=run_settings
    )
    record_product(
        context, folder, PRODUCT_TYPE, result.first_date, result.last_date,
        report(result, run_settings),
    )  # fmt: skip
    context.progress(1.0, "done")
    return RunResult(
        summary=_summary(result),
        figures=result.figures() | {"notes": list(result.notes)},
        outputs={"product": str(folder)} | {key: str(path) for key, path in files.items()},
    )


def _stored_lut(workspace: Workspace, site: Site, year: int) -> pd.DataFrame | None:
    try:
        return load_lut(workspace, site.name, year)
    except NotFoundError:
        return None


def _summary(result: L4CResult) -> str:
    counts = result.counts
    index = ", ".join(
        f"{counts[key]} {key.removeprefix('c_index_').upper()}"
        for key in sorted(counts)
        if key.startswith("c_index_")
    )
    return (
        f"{PRACTICE_NAMES[result.practice]} ({result.country} {result.year}): "
        f"{counts.get('parcels', 0)} parcels, harvest detected on "
        f"{counts.get('harvest_detected', 0)}; C_INDEX {index or 'none'}"
    )


L4C = register(
    Processor(
        id="l4c",
        title="L4C agricultural practices",
        version="1.0",
        description=(
            "Sen4CAP's agricultural-practice monitoring: weekly NDVI, VV/VH backscatter ratio "
            "and coherence; harvest markers M1-M5 and harvest week; practice markers M6-M10 "
            "and compliance index C_INDEX for catch crops, fallow land and nitrogen-fixing "
            "crops; optional tillage; Sen4CAP CSV, continuous product, GeoPackage and MDB3."
        ),
        parameters=L4CParameters,
        inputs=(
            ProcessorInput("mdb", "mdb", "The season's markers database (NDVI, AMP, COHE_VV)."),
            ProcessorInput("parcels", "parcels", "The newest declarations of the season's year."),
            ProcessorInput("lut", "lut", "The crop LUT (joined into the GeoPackage).", False),
            ProcessorInput("practices", "practices", "The imported practice table."),
            ProcessorInput("config", "config", "The imported L4C config (else defaults).", False),
        ),
        outputs=(
            ProcessorOutput(
                "l4c",
                PRODUCT_TYPE,
                "Sen4CAP L4C CSV, continuous product, GeoPackage and MDB3 marker export.",
                "text/csv",
            ),
        ),
        schedule=Schedule(kind="weekly", first="start"),
        run=run,
        runs_on_files=True,
    )
)
