"""``capmon demo``: the whole system on a synthetic season.

Stages: generate the synthetic world (real product formats + truth), create the site and its
season, import the crop LUT and the declarations, ingest the Sentinel-2 and Sentinel-1
products, run the season through the orchestrator (MDB extraction on Dask workers, then L4A,
L4B, bare soil and heterogeneity), then score against the truth: extracted NDVI, crop types
(L4A) and the deliberately wrong declarations, grassland mowing (L4B, capmon's and Sen4CAP's
methods), agricultural practices (L4C: harvest, catch crop, NFC, fallow), bare soil,
sub-parcel heterogeneity, and on a second, 5-year world, the multi-annual analysis. Every
issue adds its stage here, so that ``make demo`` always runs the whole system.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from capmon.catalog.db import create_catalog_engine
from capmon.catalog.models import DeclarationSet, Product
from capmon.errors import InputError
from capmon.mdb.extract import mdb_folder
from capmon.mdb.query import open_mdb
from capmon.orchestrator.execute import ClusterSpec, run_season
from capmon.orchestrator.plan import set_schedule
from capmon.parcels import import_lut, load_parcels
from capmon.parcels.store import latest_row
from capmon.processors import RunContext, get_processor
from capmon.processors.baresoil.evaluate import evaluate_baresoil
from capmon.processors.heterogeneity.evaluate import evaluate_heterogeneity
from capmon.processors.l4b import evaluate_mowing
from capmon.processors.l4c import evaluate_practices, import_config, import_practices
from capmon.processors.multiannual.evaluate import evaluate_multiannual
from capmon.sites import SeasonDates, create_season, create_site, get_season, get_site
from capmon.sources import IngestStatus, ingest_products
from capmon.synth import SynthWorld, generate_world
from capmon.synth.workspace import import_world_declarations
from capmon.workspace import CATALOG_FILE, Workspace, open_workspace

SITE = "demo"
SEASON_PROCESSORS = ("l4a", "l4b", "baresoil", "heterogeneity")
"""Processors the demo's season run executes (L4C needs one run per practice: run after)."""
WORLD_FOLDER = "synthetic-world"
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class DemoWorld:
    """The size of the demo's synthetic worlds: the season's world, then the 5-year world of
    the multi-annual stage (``window_km`` is the side of the square of parcels)."""

    parcels: int
    window_km: float
    revisit_days: int
    s1_repeat_days: int
    multiannual_parcels: int
    multiannual_window_km: float
    multiannual_revisit_days: int


QUICK_WORLD = DemoWorld(
    parcels=250,
    window_km=3.5,
    revisit_days=5,
    s1_repeat_days=12,
    multiannual_parcels=80,
    multiannual_window_km=2.0,
    multiannual_revisit_days=10,
)
"""``make demo``, ``capmon demo``: the first results in a few minutes on 2 cores."""
FULL_WORLD = DemoWorld(
    parcels=2000,
    window_km=10.0,
    revisit_days=5,
    s1_repeat_days=6,
    multiannual_parcels=600,
    multiannual_window_km=5.5,
    multiannual_revisit_days=5,
)
"""``make demo-full``, ``capmon demo --full``: the figures against the truth on 2000 parcels."""


@dataclass
class DemoReport:
    """What the demo did, stage by stage, with its figures."""

    home: Path
    stages: list[tuple[str, float, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Evaluation tables against the synthetic truth, by title."""


def prepare_home(home: Path, overwrite: bool) -> None:
    """Make ``home`` an empty folder; an existing one is replaced only if it is a workspace."""
    if home.exists() and any(home.iterdir()):
        if not overwrite:
            raise InputError(f"{home} is not empty; pass --overwrite to replace the demo there")
        if not ((home / CATALOG_FILE).exists() or (home / WORLD_FOLDER).exists()):
            raise InputError(
                f"{home} is not empty and does not look like a capmon workspace; "
                "refusing to delete it"
            )
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)


def run_demo(
    home: Path,
    *,
    parcels: int = 2000,
    seed: int = 0,
    s2_format: str = "jp2",
    overwrite: bool = False,
    database_url: str | None = None,
    window_km: float = 10.0,
    revisit_days: int = 5,
    s1_repeat_days: int = 6,
    multiannual_revisit_days: int | None = None,
    multiannual_parcels: int = 600,
    multiannual_window_km: float = 5.5,
    workers: int = 2,
    progress: Progress | None = None,
) -> DemoReport:
    """Run every stage; returns the figures the CLI prints.

    ``window_km``, ``revisit_days``, ``s1_repeat_days``, ``multiannual_parcels``,
    ``multiannual_window_km`` and ``multiannual_revisit_days`` (default: ``revisit_days``)
    shrink the worlds for quick checks (the tests); ``workers`` is the number of Dask worker
    processes of the season run.
    """
    say = progress or (lambda _stage, _fraction: None)
    home = home.expanduser().resolve()
    prepare_home(home, overwrite)
    if database_url is not None:
        create_catalog_engine(database_url).dispose()
    report = DemoReport(home)

    def stage(name: str, started: float, detail: str) -> None:
        report.stages.append((name, time.perf_counter() - started, detail))

    started = time.perf_counter()
    world = generate_world(
        home / WORLD_FOLDER,
        parcels=parcels,
        seed=seed,
        s2_format="cog" if s2_format == "cog" else "jp2",
        window_km=window_km,
        revisit_days=revisit_days,
        s1_repeat_days=s1_repeat_days,
        wrong_declarations=0.05,
        progress=lambda step, done, total: say(f"synthetic world: {step}", done / max(total, 1)),
    )
    year = world.years[0]
    stage(
        "synthetic world",
        started,
        f"{world.parcel_counts[year]} parcels on tile {world.tile}, "
        f"{world.s2_products} Sentinel-2 and {world.s1_products} Sentinel-1 products",
    )

    workspace = open_workspace(home, database_url)
    try:
        _catalogue_stages(workspace, world, year, report, stage, say, workers)
        multiannual_stage(
            workspace,
            home,
            report,
            stage,
            say,
            parcels=multiannual_parcels,
            window_km=multiannual_window_km,
            revisit_days=multiannual_revisit_days or revisit_days,
            seed=seed,
        )
        started = time.perf_counter()
        login = service_user(workspace, home)
        stage(
            "web service user",
            started,
            f"admin user {login} created (password in {home / DEMO_LOGIN_FILE}); "
            f"`capmon --home {home} serve` then open http://127.0.0.1:8000/ui/",
        )
    finally:
        workspace.dispose()
    return report


DEMO_LOGIN = "demo"
DEMO_LOGIN_FILE = "demo-login.txt"


def service_user(workspace: Workspace, home: Path) -> str:
    """An admin user for the web UI with a random password, written to a file only the owner
    can read (the demo workspace is a local playground: never do this for real users)."""
    import secrets

    from capmon.users import add_user
    from capmon.workspace import atomic_path

    password = secrets.token_urlsafe(12)
    add_user(workspace, DEMO_LOGIN, password, "admin")
    target = home / DEMO_LOGIN_FILE
    with atomic_path(target) as tmp:
        tmp.touch(mode=0o600)
        tmp.write_text(f"login: {DEMO_LOGIN}\npassword: {password}\n", encoding="utf-8")
    return DEMO_LOGIN


def _catalogue_stages(
    workspace: Workspace,
    world: SynthWorld,
    year: int,
    report: DemoReport,
    stage: Callable[[str, float, str], None],
    say: Progress,
    workers: int,
) -> None:
    started = time.perf_counter()
    season_name = str(year)
    with workspace.session() as session:
        site = create_site(session, SITE, world.aoi)
        create_season(
            session,
            site,
            season_name,
            SeasonDates.parse(f"{year}-02-01", f"{year}-11-30", f"{year}-06-15"),
        )
        tiles = ", ".join(site.tiles)
    stage("site and season", started, f"site {SITE} (tiles {tiles}), season {season_name}")

    started = time.perf_counter()
    lut = import_lut(workspace, SITE, year, world.lut)
    stage("crop LUT", started, f"{lut.report.entries} crop codes")

    started = time.perf_counter()
    imported = import_world_declarations(
        workspace,
        SITE,
        year,
        world.declarations[year],
    )
    counts = imported.report.counts
    stage(
        "declarations",
        started,
        f"{counts.imported} parcels (v{imported.version}): {counts.invalid} invalid, "
        f"{counts.duplicates} duplicates, {counts.overlaps} overlapping, "
        f"{counts.zero_s2_pixels} without S2 pixels",
    )
    report.figures["parcels"] = counts.imported

    started = time.perf_counter()
    folders = [p for p in (world.s2_dir, world.s1_dir) if p is not None]
    with workspace.session() as session:
        ingest = ingest_products(session, get_site(session, SITE), folders)
    registered = ingest.count(IngestStatus.REGISTERED)
    failed = ingest.with_status(IngestStatus.FAILED)
    if failed:
        raise InputError(
            f"{len(failed)} synthetic products could not be ingested, e.g. "
            f"{failed[0].name}: {failed[0].reason}"
        )
    stage("products", started, f"{registered} products registered")

    started = time.perf_counter()
    with workspace.session() as session:
        site_row = get_site(session, SITE)
        season_row = get_season(session, site_row, season_name)
    # The season through the orchestrator: MDB extraction on Dask workers, then every
    # processor due at the season end, as `capmon season run` does.
    set_schedule(
        workspace,
        SITE,
        season_name,
        "l4b",
        parameters={"config": str(world.l4b_configs[year]), "incremental": False},
    )
    season_run = run_season(
        workspace,
        SITE,
        season_name,
        processors=["mdb", *SEASON_PROCESSORS],
        cluster=ClusterSpec(workers=workers, threads=1),
        progress=lambda message, done, total: say(f"season run: {message}", done / max(total, 1)),
    )
    if season_run.failed or season_run.processors_failed:
        problems = season_run.failed + season_run.processors_failed
        raise InputError(f"the demo season run failed: {problems[0][0]}: {problems[0][1]}")
    outputs = season_run.processor_outputs
    summaries = dict(season_run.processors_run)
    stage(
        "season run (orchestrator)",
        started,
        f"{len(season_run.extracted)} products extracted ({season_run.rows} rows) on "
        f"{len(season_run.workers)} Dask workers, then {', '.join(summaries)} "
        f"({season_run.seconds:.0f} s, driver {season_run.driver_seconds:.1f} s)",
    )
    with workspace.session() as session:
        declarations = latest_row(session, DeclarationSet, get_site(session, SITE), year)
        assert declarations is not None
        mdb = mdb_folder(workspace, site_row.short_name, season_name, declarations.id)
    report.figures["mdb"] = str(mdb)
    report.figures["mdb_rows"] = season_run.rows
    with workspace.session() as session:
        # the season job's results list the products it made (`capmon jobs show`, the UI)
        report.figures["season_job_products"] = len(
            session.scalars(select(Product.id).where(Product.job_id == season_run.job_id)).all()
        )
    report.figures |= ndvi_against_truth(workspace, mdb, world, year)

    started = time.perf_counter()
    l4a_figures = l4a_against_truth(Path(outputs["l4a"]["parcels"]), world, year)
    detail = summaries["l4a"]
    if not l4a_figures:
        detail += " (no parcel classified: nothing to compare with the truth)"
    stage("L4A crop type", started, detail)
    report.figures["l4a_product"] = outputs["l4a"]["product"]
    report.figures |= l4a_figures

    def context(label: str) -> RunContext:
        return RunContext(
            workspace, site_row, season_row, lambda f, message: say(f"{label}: {message}", f)
        )

    started = time.perf_counter()
    l4b = get_processor("l4b")
    rows = []
    # capmon's method ran in the season run; Sen4CAP's is run here for the comparison
    l4b_products = {"capmon": outputs["l4b"]["product"]}
    l4b_products["sen4cap"] = l4b.run(
        context("L4B mowing (sen4cap)"),
        l4b.parse_parameters(
            {"config": str(world.l4b_configs[year]), "method": "sen4cap", "incremental": False}
        ),
    ).outputs["product"]
    for method, product in l4b_products.items():
        scores = evaluate_mowing(
            product, world.truth_events, start=season_row.start_date, end=season_row.end_date
        )
        rows.append(
            {
                "method": method
                + (" (default, learned on real plots)" if method == "capmon" else ""),
                "parcels": scores.parcels,
                "true mowings": scores.reference_events,
                "detected": scores.detected_events,
                "precision": scores.precision,
                "recall": scores.recall,
                "F1": scores.f1,
                "mean delay (days)": scores.mean_delay_days,
                "count MAE": scores.count_mae,
            }
        )
        report.figures |= {
            f"l4b_{method}_{key}": getattr(scores, key)
            for key in ("f1", "precision", "recall", "mean_delay_days")
        }
    report.tables["L4B grassland mowing vs truth (tolerance -3/+20 days)"] = pd.DataFrame(rows)
    stage("L4B grassland mowing", started, summaries["l4b"])

    started = time.perf_counter()
    import_config(workspace, SITE, year, world.l4c_configs[year], "BEL")
    for code in ("CC", "NA", "NFC", "FL"):
        if code in world.practices[year]:
            import_practices(workspace, SITE, year, world.practices[year][code])
    l4c = get_processor("l4c")
    csvs = []
    practice_summaries = []
    for practice in ("catchcrop", "na", "nfc", "fallow"):
        l4c_result = l4c.run(
            context(f"L4C practices ({practice})"), l4c.parse_parameters({"practice": practice})
        )
        csvs.append(Path(l4c_result.outputs["csv"]))
        practice_summaries.append(f"{practice}: {l4c_result.summary}")
    l4c_figures = evaluate_practices(csvs, world.truth_parcels[year])
    report.figures |= l4c_figures
    report.tables["L4C agricultural practices vs truth"] = _figure_table(l4c_figures)
    stage("L4C agricultural practices", started, "; ".join(practice_summaries))

    started = time.perf_counter()
    baresoil_figures = evaluate_baresoil(outputs["baresoil"]["product"], world, year)
    report.figures |= baresoil_figures
    report.tables["Bare soil vs truth (10-day periods observed by S2)"] = _figure_table(
        baresoil_figures
    )
    stage("bare soil", started, summaries["baresoil"])

    started = time.perf_counter()
    heterogeneity_figures = evaluate_heterogeneity(
        outputs["heterogeneity"]["product"], world.truth_parcels[year]
    )
    report.figures |= heterogeneity_figures
    report.tables["Sub-parcel heterogeneity vs truth"] = _figure_table(heterogeneity_figures)
    stage("sub-parcel heterogeneity", started, summaries["heterogeneity"])


def _figure_table(figures: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"figure": list(figures), "value": list(figures.values())})


MULTI_SITE = "demo-5y"
MULTI_WORLD_FOLDER = "synthetic-world-5y"


def multiannual_stage(
    workspace: Workspace,
    home: Path,
    report: DemoReport,
    stage: Callable[[str, float, str], None],
    say: Progress,
    *,
    parcels: int,
    window_km: float,
    revisit_days: int,
    seed: int,
) -> None:
    """Five declaration years of a second (Sentinel-2 only) world: seasons, declarations, one
    MDB per year, then the multi-annual analysis against the injected changes."""
    started = time.perf_counter()
    world = generate_world(
        home / MULTI_WORLD_FOLDER,
        parcels=parcels,
        years=5,
        first_year=2021,
        seed=seed + 1,
        window_km=window_km,
        revisit_days=revisit_days,
        sentinel1=False,
        wrong_declarations=0.05,
        s2_format="cog",
        site_id=2,
        progress=lambda step, done, total: say(f"5-year world: {step}", done / max(total, 1)),
    )
    with workspace.session() as session:
        site = create_site(session, MULTI_SITE, world.aoi)
        for year in world.years:
            create_season(
                session,
                site,
                str(year),
                SeasonDates.parse(f"{year}-02-01", f"{year}-11-30", f"{year}-06-15"),
            )
    for year in world.years:
        import_lut(workspace, MULTI_SITE, year, world.lut)
        import_world_declarations(
            workspace,
            MULTI_SITE,
            year,
            world.declarations[year],
        )
    assert world.s2_dir is not None
    with workspace.session() as session:
        ingest_products(session, get_site(session, MULTI_SITE), [world.s2_dir])
    mdb = get_processor("mdb")
    for year in world.years:
        with workspace.session() as session:
            site_row = get_site(session, MULTI_SITE)
            season_row = get_season(session, site_row, str(year))
        mdb.run(
            RunContext(workspace, site_row, season_row, lambda f, m: say(f"5-year MDB: {m}", f)),
            mdb.parse_parameters({"signals": ["NDVI", "NDTILL", "BSI"], "sar": False}),
        )
    multiannual = get_processor("multiannual")
    result = multiannual.run(
        RunContext(workspace, site_row, None, lambda f, m: say(f"multi-annual: {m}", f)),
        multiannual.parse_parameters({"years": f"{world.years[0]}-{world.years[-1]}"}),
    )
    figures = evaluate_multiannual(result.outputs["product"], world)
    report.figures |= figures
    report.tables["Multi-annual analysis vs truth (5 years)"] = _figure_table(figures)
    stage(
        "multi-annual (5 years)",
        started,
        f"{world.parcel_counts[world.years[0]]} parcels, {world.s2_products} Sentinel-2 "
        f"products over {len(world.years)} years; {result.summary}",
    )


def l4a_against_truth(parcels_csv: Path, world: SynthWorld, year: int) -> dict[str, float]:
    """L4A's classified parcels against the synthetic truth: accuracy and flagged declarations.

    A wrong declaration is detectable by L4A only when it changes the L4A class (a silage maize
    declared as grain maize stays "Maize"); ``l4a_wrong_flagged`` counts those, and
    ``l4a_wrong_any_flagged`` every wrong declaration.
    """
    predictions = pd.read_csv(parcels_csv, dtype={"ori_id": str})
    truth = pd.read_csv(world.truth_parcels[year], dtype={"parcel_id": str})
    classes = dict(zip(truth["true_crop_code"], truth["true_ctnuml4a"], strict=True))
    joined = predictions.merge(truth, left_on="ori_id", right_on="parcel_id", how="inner")
    classified = joined[joined["Classif_r"].isin(["Classified_conform", "Classified_not_conform"])]
    if classified.empty:
        return {}
    true_class = classified["true_ctnuml4a"].to_numpy(np.int64)
    predicted = classified["CT_pred_1"].to_numpy(np.int64)
    labels = np.unique(np.concatenate([true_class, predicted]))
    matrix = np.zeros((len(labels), len(labels)))
    np.add.at(matrix, (np.searchsorted(labels, predicted), np.searchsorted(labels, true_class)), 1)
    total = matrix.sum()
    accuracy = float(np.trace(matrix) / total)
    expected = float((matrix.sum(axis=0) * matrix.sum(axis=1)).sum() / total**2)
    flagged = (classified["Classif_r"] == "Classified_not_conform").to_numpy()
    wrong = (classified["declared_wrong"] == 1).to_numpy()
    declared_class = classified["declared_crop_code"].map(classes).to_numpy()
    wrong_class = wrong & (declared_class != true_class)
    figures = {
        "l4a_classified": float(len(classified)),
        "l4a_accuracy_vs_truth": accuracy,
        "l4a_kappa_vs_truth": (accuracy - expected) / (1 - expected) if expected < 1 else 1.0,
        "l4a_correct_flagged": float(flagged[~wrong].mean()) if (~wrong).any() else float("nan"),
    }
    if wrong.any():
        figures["l4a_wrong_any_flagged"] = float(flagged[wrong].mean())
    if wrong_class.any():
        figures["l4a_wrong_flagged"] = float(flagged[wrong_class].mean())
    return figures


def ndvi_against_truth(
    workspace: Workspace, mdb_path: Path, world: SynthWorld, year: int
) -> dict[str, float]:
    """How the MDB's NDVI means compare with the noise-free NDVI of the synthetic truth."""
    extracted = open_mdb(mdb_path).timeseries(signals=["NDVI"])
    truth = pd.read_parquet(world.truth_signals[year])
    if extracted.empty or truth.empty:
        return {}
    parcels = load_parcels(workspace, SITE, year)
    original_ids = dict(zip(parcels["NewID"].astype(int), parcels["ori_id"], strict=True))
    left = extracted.assign(
        parcel_id=extracted["parcel_id"].map(original_ids),
        date=pd.to_datetime(extracted["date"]).dt.date,
    )
    right = truth.assign(date=pd.to_datetime(truth["date"]).dt.date)[["parcel_id", "date", "ndvi"]]
    joined = left.merge(right, on=["parcel_id", "date"], how="inner")
    if joined.empty:
        return {}
    difference = np.abs(joined["mean"].to_numpy(float) - joined["ndvi"].to_numpy(float))
    return {
        "ndvi_rows_compared": len(joined),
        "ndvi_median_abs_difference": float(np.median(difference)),
        "ndvi_correlation": float(np.corrcoef(joined["mean"], joined["ndvi"])[0, 1]),
    }
