"""The ``multiannual`` processor: parcels linked across declaration years, cover classes,
rotation sequences and CAP flags (``capmon run multiannual SITE --years 2021-2025``).

It is not tied to one season: it reads the declarations and LUT of every year and, when the
year has a season with an extracted MDB, that MDB for the observed behaviour (bare-soil and
residue dekads with the ``baresoil`` model, mowing-like NDVI drops) and, when the year has an
L4A product (the newest ``s4c_l4a`` product of the year's season in the catalogue, or
``--l4a YEAR=PATH``), its crop-type predictions as further evidence. The product
``<home>/products/<site>/multiannual/<name>/`` holds ``links.csv``, ``history.csv``,
``sequences.csv``, ``flags.csv`` and ``report.json``; its catalogue type is ``s4c_multiannual``.
On files (no site): ``--parcels YEAR=FILE`` per year, one ``--lut``, ``--crop-code-col``, and
``--mdb YEAR=DIR`` where a year has an MDB (see :mod:`capmon.processors.files`).
"""

from __future__ import annotations

import itertools
import re
from datetime import date
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import select

from capmon.catalog.models import DeclarationSet, Product
from capmon.errors import InputError, NotFoundError
from capmon.mdb.query import open_mdb
from capmon.parcels import load_lut, load_parcels
from capmon.processors.baresoil.model import BareSoilModel, ThresholdModel, load_model
from capmon.processors.baresoil.products import (
    write_product_folder,
)
from capmon.processors.common import declared_parcels, season_mdb_folder
from capmon.processors.files import product_folder, record_product
from capmon.processors.multiannual.history import (
    BEHAVIOUR_COLUMNS,
    FLAGS,
    PREDICTION_COLUMNS,
    declared_classes,
    observed_behaviour,
    parcel_history,
    predicted_classes,
    rotation_sequences,
)
from capmon.processors.multiannual.link import common_crs, lineages, link_years
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

PRODUCT_TYPE = "s4c_multiannual"
PROCESSOR_ID = "multiannual"
_YEARS = re.compile(r"^\s*(\d{4})\s*(?:-\s*(\d{4})\s*)?$")


class MultiannualParameters(BaseModel):
    """Parameters of ``capmon run multiannual``."""

    model_config = ConfigDict(extra="forbid")

    years: str | None = Field(
        default=None,
        description="Declaration years, FIRST-LAST or a comma list [every year with parcels].",
    )
    min_share: float = Field(
        default=0.3, gt=0, le=1, description="Overlap share of either parcel that links them."
    )
    grass_years: int = Field(
        default=5, ge=2, description="Consecutive grass years that make permanent grassland."
    )
    min_observed_dekads: int = Field(
        default=6, ge=1, description="Observed dekads a year needs for 'grassland' behaviour."
    )
    harvest_dekads: int = Field(
        default=2,
        ge=1,
        description="Residue dekads after a green canopy that make a harvest (arable behaviour).",
    )
    model: Path | None = Field(
        default=None, description="A calibrated bare-soil model file (capmon calibrate)."
    )
    l4a: list[str] = Field(
        default_factory=list,
        description=(
            "YEAR=PATH: an L4A product folder or predictions CSV for a year "
            "[the newest s4c_l4a product of the year's season]."
        ),
    )
    use_l4a: bool = Field(
        default=True, description="Use L4A crop-type predictions as evidence when available."
    )
    l4a_min_confidence: float = Field(
        default=0.7, ge=0, le=1, description="CT_conf_1 a prediction needs to count as evidence."
    )
    parcels: list[str] = Field(
        default_factory=list,
        description=(
            "YEAR=FILE: a year's parcels (on files any vector file, ids in --parcel-id-col, "
            "crop codes in --crop-code-col) [the stored declarations]."
        ),
    )
    mdb: list[str] = Field(
        default_factory=list, description="YEAR=DIR: a year's MDB folder [the season's MDB]."
    )
    lut: Path | None = Field(
        default=None, description="A crop LUT for every year [each year's stored LUT]."
    )

    @field_validator("years")
    @classmethod
    def _years(cls, value: str | None) -> str | None:
        if value is not None:
            parse_years(value)
        return value

    @field_validator("l4a", "parcels", "mdb")
    @classmethod
    def _year_paths(cls, value: list[str], info: ValidationInfo) -> list[str]:
        parse_l4a_paths(value, f"--{info.field_name}")
        return value


def parse_l4a_paths(entries: list[str], option: str = "--l4a") -> dict[int, Path]:
    """``["2023=/path/product", ...]`` as {year: path} (``option`` names them in errors)."""
    out: dict[int, Path] = {}
    for entry in entries:
        year, sep, path = entry.partition("=")
        if not sep or not year.strip().isdigit() or not path.strip():
            raise InputError(f"{option} must be YEAR=PATH, not {entry!r}")
        if int(year) in out:
            raise InputError(f"{option} gives year {year.strip()} twice")
        out[int(year)] = Path(path.strip())
    return out


def parse_years(text: str) -> list[int]:
    """``2021-2025`` or ``2021,2022,2024`` as a sorted list of years."""
    years: set[int] = set()
    for part in text.split(","):
        match = _YEARS.match(part)
        if match is None:
            raise InputError(f"years must be FIRST-LAST or a comma list of years, not {text!r}")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first:
            raise InputError(f"years {part.strip()!r}: the last year is before the first")
        years.update(range(first, last + 1))
    return sorted(years)


def _stored_years(context: RunContext) -> list[int]:
    with context.workspace.session() as session:
        rows = session.scalars(
            select(DeclarationSet.year).where(DeclarationSet.site_id == context.site.id)
        ).all()
    return sorted({int(y) for y in rows})


def run(context: RunContext, parameters: MultiannualParameters) -> RunResult:
    """Link the years, classify and flag every parcel-year, write the product (on files: the
    years of ``--parcels YEAR=FILE``, one ``--lut``, ``--mdb YEAR=DIR`` where given)."""
    given_parcels = parse_l4a_paths(parameters.parcels)
    if context.on_files:
        if not given_parcels:
            raise InputError("the multi-annual analysis on files needs --parcels YEAR=FILE for "
                             "each year (at least two)")  # fmt: skip
        chosen = parse_years(parameters.years) if parameters.years else sorted(given_parcels)
        missing = [y for y in chosen if y not in given_parcels]
        if missing:
            raise InputError(f"--years {parameters.years}: no --parcels YEAR=FILE for {missing}")
        years = chosen
    else:
        years = parse_years(parameters.years) if parameters.years else _stored_years(context)
        if not years:
            raise NotFoundError(f"site {context.site.name!r} has no declarations")
    model = load_model(parameters.model) if parameters.model is not None else ThresholdModel()
    parcels = {}
    tables = {}
    notes: list[str] = []
    l4a_used: dict[str, int] = {}
    for k, year in enumerate(years):
        context.progress(0.6 * k / len(years), f"declarations and MDB of {year}")
        frame, lut = _year_inputs(context, year, years, given_parcels, parameters)
        parcels[year] = frame
        declared = declared_classes(frame, lut)
        behaviour = _year_behaviour(context, year, frame, model, parameters, notes)
        table = declared.merge(behaviour, on="parcel_id", how="left")
        predictions = _year_predictions(context, year, lut, parameters, notes)
        if predictions is not None:
            table = table.merge(predictions, on="parcel_id", how="left")
            l4a_used[str(year)] = int(predictions["predicted_class"].ne("unknown").sum())
        tables[year] = table
    crs = common_crs(parcels)
    link_frames = [
        link_years(parcels[a], parcels[b], a, b, crs=crs, min_share=parameters.min_share)
        for a, b in itertools.pairwise(years)
        if b == a + 1
    ]
    for a, b in itertools.pairwise(years):
        if b != a + 1:
            notes.append(f"no declarations between {a} and {b}: parcels of {b} are not linked")
    links = (
        pd.concat(link_frames, ignore_index=True)
        if link_frames
        else pd.DataFrame(
            columns=["year_from", "parcel_from", "year_to", "parcel_to", "share_to", "relation"]
        )
    )
    lineage = lineages({y: f["NewID"] for y, f in parcels.items()}, links)
    context.progress(0.8, "history and flags")
    history = parcel_history(
        tables,
        lineage,
        grass_years_rule=parameters.grass_years,
        harvest_dekads=parameters.harvest_dekads,
        min_confidence=parameters.l4a_min_confidence,
    )
    sequences = rotation_sequences(history)
    flags = _flag_rows(history)
    counts = {flag: int(history[flag].sum()) for flag in FLAGS}
    relations = links["relation"].value_counts().to_dict() if not links.empty else {}
    report = {
        "parameters": parameters.model_dump(mode="json"),
        "years": years,
        "crs": crs.to_string(),
        "parcels_per_year": {str(y): len(f) for y, f in parcels.items()},
        "links": {str(k): int(v) for k, v in relations.items()},
        "flags": counts,
        "l4a_predictions": l4a_used,
        "contradictions_by_evidence": {
            str(k): int(v)
            for k, v in history.loc[history["class_contradiction"], "contradiction_evidence"]
            .value_counts()
            .items()
        },
        "notes": notes,
    }
    first, last = date(years[0], 1, 1), date(years[-1], 12, 31)
    folder = product_folder(context, PROCESSOR_ID, "MULTIANNUAL", first, last)
    written = write_product_folder(
        folder,
        {
            "links.csv": lambda p: links.to_csv(p, index=False),
            "history.csv": lambda p: _history_columns(history).to_csv(p, index=False),
            "sequences.csv": lambda p: sequences.to_csv(p, index=False),
            "flags.csv": lambda p: flags.to_csv(p, index=False),
        },
        report,
    )
    record_product(context, folder, PRODUCT_TYPE, first, last, report)
    context.progress(1.0, "done")
    summary = (
        f"{len(years)} years ({years[0]}-{years[-1]}), "
        f"{sum(len(f) for f in parcels.values())} parcel-years; "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
    )
    return RunResult(
        summary=summary,
        figures={"years": len(years), **counts, **{f"links_{k}": v for k, v in relations.items()}},
        outputs={"product": str(folder)} | {p.stem: str(p) for p in written.values()},
    )


def _year_inputs(
    context: RunContext,
    year: int,
    years: list[int],
    given_parcels: dict[int, Path],
    parameters: MultiannualParameters,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The parcels and LUT of ``year``: given files, else the site's stored ones."""
    from capmon.processors.files import files_parcels, run_lut

    path = given_parcels.get(year)
    needs = "the multi-annual history classifies the declared crops"
    try:
        if context.on_files:
            assert context.files is not None
            assert path is not None
            mdb = parse_l4a_paths(parameters.mdb).get(year)
            frame = files_parcels(path, context.files, mdb, crop_codes=needs)
        elif path is not None:
            frame = declared_parcels(path)
        else:
            frame = load_parcels(context.workspace, context.site.name, year)
        lut = (
            run_lut(context, parameters.lut, year, required=needs)
            if parameters.lut is not None or context.on_files
            else load_lut(context.workspace, context.site.name, year)
        )
    except NotFoundError as exc:
        raise NotFoundError(f"multi-annual analysis of {years[0]}-{years[-1]}: {exc}") from exc
    assert lut is not None
    return frame, lut


def _year_behaviour(
    context: RunContext,
    year: int,
    frame: pd.DataFrame,
    model: BareSoilModel,
    parameters: MultiannualParameters,
    notes: list[str],
) -> pd.DataFrame:
    seasons = [] if context.on_files else _year_seasons(context, year)
    ids = sorted(frame["NewID"].astype(int).tolist())
    empty = pd.DataFrame({"parcel_id": ids}).reindex(columns=list(BEHAVIOUR_COLUMNS))
    given = parse_l4a_paths(parameters.mdb).get(year)
    if given is not None:
        from capmon.processors.files import mdb_dates

        mdb = open_mdb(given)
        first, last = mdb_dates(mdb, year)
        if first is None or last is None:
            notes.append(f"{year}: the MDB {given} has no row of {year}; declarations only")
            return empty
        return observed_behaviour(
            mdb, ids, first, last, model=model,
            min_observed_dekads=parameters.min_observed_dekads,
            harvest_dekads=parameters.harvest_dekads,
        )  # fmt: skip
    if context.on_files:
        notes.append(f"{year}: no --mdb {year}=DIR, no observed behaviour (declarations only)")
        return empty
    if not seasons:
        notes.append(f"{year}: no season, no observed behaviour (declarations only)")
        return empty
    name, start, end = seasons[0]
    try:
        folder = season_mdb_folder(context.workspace, context.site, name, year)
    except NotFoundError as exc:
        notes.append(f"{year}: {exc}; declarations only")
        return empty
    behaviour = observed_behaviour(
        open_mdb(folder), ids, start, end, model=model,
        min_observed_dekads=parameters.min_observed_dekads,
        harvest_dekads=parameters.harvest_dekads,
    )  # fmt: skip
    if int(behaviour["observed_dekads"].sum()) == 0:
        notes.append(f"{year}: the MDB has no optical observation of these parcels")
    return behaviour


def _year_seasons(context: RunContext, year: int) -> list[tuple[str, date, date]]:
    with context.workspace.session() as session:
        return [
            (s.name, s.start_date, s.end_date)
            for s in get_site(session, context.site.name).seasons
            if s.year == year
        ]


def _year_predictions(
    context: RunContext,
    year: int,
    lut: pd.DataFrame,
    parameters: MultiannualParameters,
    notes: list[str],
) -> pd.DataFrame | None:
    """The year's L4A predictions (``PREDICTION_COLUMNS``), or None (noted) without one."""
    if not parameters.use_l4a:
        return None
    path = parse_l4a_paths(parameters.l4a).get(year)
    if path is None:
        path = None if context.on_files else _catalogue_l4a(context, year)
        if path is None:
            notes.append(f"{year}: no L4A product, MDB behaviour only")
            return None
    if path.is_dir():
        found = sorted(path.glob("Parcels_all_with_predictions_*.csv"))
        if not found:
            raise NotFoundError(f"the L4A product {path} has no Parcels_all_with_predictions CSV")
        path = found[-1]
    if not path.is_file():
        raise NotFoundError(f"the L4A predictions {path} (year {year}) do not exist")
    predictions = predicted_classes(pd.read_csv(path), lut, source=str(path))
    notes.append(f"{year}: crop-type predictions from {path}")
    return predictions[list(PREDICTION_COLUMNS)]


def _catalogue_l4a(context: RunContext, year: int) -> Path | None:
    """The newest ``s4c_l4a`` product ending in the first season of ``year``."""
    with context.workspace.session() as session:
        site = get_site(session, context.site.name)
        seasons = sorted((s.start_date, s.end_date) for s in site.seasons if s.year == year)
        if not seasons:
            return None
        start, end = seasons[0]
        products = session.scalars(
            select(Product)
            .where(Product.site_id == site.id, Product.product_type == "s4c_l4a")
            .order_by(Product.created_at.desc(), Product.id.desc())
        ).all()
        for product in products:
            if product.acquired_at is not None and start <= product.acquired_at.date() <= end:
                return Path(product.path)
    return None


def _history_columns(history: pd.DataFrame) -> pd.DataFrame:
    columns = [
        "year", "parcel_id", "ori_id", "lineage", "predecessor", "relation", "ori_crop",
        "crop_name", "declared_class", "observed_class", "cover_class", "previous_cover_class",
        "grass_years", "observed_dekads", "bare_dekads", "first_bare", "residue_dekads",
        "mowing_like_drops", "ndvi_min", *PREDICTION_COLUMNS[1:], *FLAGS,
        "contradiction_evidence",
    ]  # fmt: skip
    out = history[columns].copy()
    out["first_bare"] = pd.to_datetime(out["first_bare"]).dt.strftime("%Y-%m-%d")
    return out


def _flag_rows(history: pd.DataFrame) -> pd.DataFrame:
    """One row per raised flag with its evidence."""
    rows = []
    evidence = {
        "tg_5_years": lambda r: f"{r['grass_years']} consecutive grass years",
        "pg_ploughed": lambda r: (
            f"bare soil from {pd.Timestamp(r['first_bare']).date()} "
            f"({r['bare_dekads']} dekads); cover {r['previous_cover_class']} -> {r['cover_class']}"
        ),
        "class_contradiction": lambda r: (
            f"declared {r['declared_class']} ({r['crop_name']}), observed {r['observed_class']} "
            f"({r['bare_dekads']} bare, {r['residue_dekads']} residue dekads)"
            + (
                f"; L4A predicted {r['predicted_class']} (class {r['predicted_crop']}, "
                f"confidence {r['predicted_confidence']:.2f})"
                if "prediction" in str(r["contradiction_evidence"])
                else ""
            )
        ),
    }
    for flag in FLAGS:
        for _, row in history[history[flag].astype(bool)].iterrows():
            rows.append(
                {
                    "year": row["year"],
                    "parcel_id": row["parcel_id"],
                    "ori_id": row["ori_id"],
                    "flag": flag,
                    "date": (
                        pd.Timestamp(row["first_bare"]).date()
                        if flag == "pg_ploughed" and pd.notna(row["first_bare"])
                        else None
                    ),
                    "evidence": evidence[flag](row),
                }
            )
    return pd.DataFrame(rows, columns=["year", "parcel_id", "ori_id", "flag", "date", "evidence"])


MULTIANNUAL = register(
    Processor(
        id=PROCESSOR_ID,
        title="Multi-annual analysis",
        version="1.0",
        description=(
            "Parcels linked across declaration years by geometry (splits, merges), cover class "
            "per year (arable, temporary or permanent grassland, permanent crop) from the LUT "
            "flags and the observed behaviour, rotation sequences, and flags: temporary "
            "grassland kept 5+ years, permanent grassland ploughed, declared class "
            "contradicting the observations."
        ),
        parameters=MultiannualParameters,
        inputs=(
            ProcessorInput("parcels", "parcels", "The declarations of every analysed year."),
            ProcessorInput("lut", "lut", "The crop LUT of every year (al, pgrass, tgrass flags)."),
            ProcessorInput(
                "mdb", "mdb", "Each year's season MDB (NDVI, NDTILL, BSI).", required=False
            ),
        ),
        outputs=(
            ProcessorOutput(
                "multiannual",
                PRODUCT_TYPE,
                "Links, per parcel-year history, rotation sequences and flags (CSV).",
                "text/csv",
            ),
        ),
        schedule=Schedule(kind="once", first="end"),
        run=run,
        needs_season=False,
        runs_on_files=True,
    )
)
