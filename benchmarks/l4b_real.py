"""L4B mowing detection on the real GMD development plots (Slovakia, regions LR and NB).

``python benchmarks/l4b_real.py [--data ../shared/data/mowing_gmd_dev] [--regions LR NB]
[--years 2021 2022 2023] [--workdir DIR] [--json FILE] [--write-models DIR]`` imports each
region-year's exports (``S2/``, ``S1/``, ``COH/``) with the shipped specs ``gmd-s2``,
``gmd-s1``, ``gmd-coh`` into an MDB (:func:`capmon.mdb.imports.import_statistics`), runs the
L4B processor on files for every plot of the export (``--start YYYY-03-01 --until
YYYY-11-30``, the default 45-day look-back) with Sen4CAP's method, capmon's earlier rules and
capmon's learned method (by default the S2 model, also when S1 is read; with
``--s1-evidence`` the S1 + S2 model scores the drops with S1 pairs around them), S2 only and
S1 + S2, adds the naive rule (NDVI drop >= 0.12 from >=
0.45, :func:`capmon.processors.l4b.evaluate.naive_drop_events`), and scores each against the
reference events of ``GMI_Long_LR_NB.gpkg`` (``type`` k = mowing; window [-3, +20] days,
one-to-one matching). Scored plots: those the reference lists for that year (a ``k`` or an
``n`` row: checked in the field); the other plots of the export are run (they are part of the
run) but not scored, as nobody checked them. The three years of a region are pooled.

**Leave one region out**: the learned method scoring a region runs with a model trained (as
``capmon train l4b``, :mod:`capmon.processors.l4b.training`) on the *other* region only, so
its figures are on plots, years and a region it never saw; the threshold is the fixed 0.5 and
no setting was chosen on the scored region. ``--write-models DIR`` trains the shipped models
on both regions (with 5-fold cross-validation by plot in their card) and writes them there
(``src/capmon/data/models``). ``--independence`` also runs every plot alone and counts the
plots whose events change.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal, cast

import geopandas as gpd
import pandas as pd

from capmon.mdb.imports import import_statistics, load_spec
from capmon.mdb.query import MarkersDatabase
from capmon.processors.files import run_processor
from capmon.processors.l4b import capmon_method, learned, sen4cap, training
from capmon.processors.l4b.config import L4BConfig
from capmon.processors.l4b.evaluate import load_reference, naive_drop_events, score_events
from capmon.processors.l4b.fusion import MowingEvent
from capmon.processors.l4b.outputs import read_product
from capmon.processors.l4b.series import build_series, series_signals

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mowing_gmd_dev"
METHODS = ("naive", "sen4cap", "rules", "capmon", "capmon --s1-evidence")
REFERENCE = "GMI_Long_LR_NB.gpkg"
SENSOR_SETS = ("S2", "S1_S2")


@dataclass(frozen=True)
class RegionYear:
    """One region-year's plots (NewID, Ori_id), detections per (method, sensors), reference."""

    region: str
    year: int
    parcels: pd.DataFrame
    events: dict[tuple[str, str], pd.DataFrame]
    reference: pd.DataFrame


def reference_events(data: Path, region: str, year: int) -> pd.DataFrame:
    """``ref_id`` (PLOTID), ``date`` (NaT: checked, not mown) of one region-year."""
    table = gpd.read_file(data / REFERENCE)
    table = table[(table["id"] == region) & (table["year"] == year)]
    dates = pd.to_datetime(table["date"]).dt.normalize().where(table["type"] == "k")
    return pd.DataFrame({"ref_id": table["PLOTID"].astype(str).to_numpy(),
                         "date": dates.to_numpy()})  # fmt: skip


def import_region_year(data: Path, region: str, year: int, folder: Path) -> tuple[Path, Path]:
    """The region-year's MDB and plots file (points of every plot of the S2 export)."""
    mdb = folder / f"mdb_{region}_{year}"
    sources = (
        ("gmd-s2", data / "S2" / f"ts_{region}_GMI_S2_{region}_{year}.csv"),
        ("gmd-s1", data / "S1" / f"ts_{region}_GMI_S1_{year}.csv"),
        ("gmd-coh", data / "COH" / f"ts_{region}_GMI_COH_{year}.csv"),
    )
    if not (mdb / ".imported").exists():
        for spec, path in sources:
            import_statistics([path], mdb, load_spec(spec), site="gmd", parcel_set=region)
        (mdb / ".imported").write_text("done\n")
    plots_file = folder / f"plots_{region}_{year}.gpkg"
    if not plots_file.exists():
        plots = pd.read_csv(sources[0][1], usecols=["PLOTID", "Longitude", "Latitude"])
        plots = plots.drop_duplicates("PLOTID")
        points = gpd.GeoDataFrame(
            {"PLOTID": plots["PLOTID"].astype(str)},
            geometry=gpd.points_from_xy(plots["Longitude"], plots["Latitude"]), crs="EPSG:4326",
        )  # fmt: skip
        points.to_file(plots_file, driver="GPKG")
    return mdb, plots_file


def train_models(data: Path, regions: list[str], years: list[int], folder: Path,
                 target: Path, folds: int = 0) -> dict[str, Path]:  # fmt: skip
    """Models (S2, S1_S2) trained on the checked plots of ``regions``, written to ``target``."""
    reference = load_reference(data / REFERENCE)
    mdbs = [import_region_year(data, r, y, folder)[0] for r in regions for y in years]
    seasons = training.read_seasons(mdbs, reference, "03-01", "11-30")
    written = {}
    for sensors in SENSOR_SETS:
        chosen = cast(Literal["S2", "S1_S2"], sensors)
        labelled = training.training_set(seasons, chosen)
        card = {"data": f"GMD project grassland plots, Slovakia, regions {'+'.join(regions)}, "
                        f"{min(years)}-{max(years)} (mowing_gmd_dev, MIT)",
                "sensors": sensors}  # fmt: skip
        model = training.train(labelled, chosen, 0.5, folds, card)
        name = "l4b_mowing_s2.json" if sensors == "S2" else "l4b_mowing_s1_s2.json"
        target.mkdir(parents=True, exist_ok=True)
        model.save(target / name)
        written[sensors] = target / name
    return written


def run_region_year(data: Path, region: str, year: int, folder: Path,
                    models: dict[str, Path]) -> RegionYear:  # fmt: skip
    """Every method and sensor set on one region-year (``models``: the learned method's,
    trained without this region)."""
    mdb, plots = import_region_year(data, region, year, folder)
    start, until = pd.Timestamp(f"{year}-03-01").date(), pd.Timestamp(f"{year}-11-30").date()
    events: dict[tuple[str, str], pd.DataFrame] = {}
    parcels = pd.DataFrame()
    for method in ("sen4cap", "rules", "capmon", "capmon --s1-evidence"):
        for sensors in SENSOR_SETS:
            if method == "capmon --s1-evidence" and sensors == "S2":
                continue
            out = folder / f"l4b_{region}_{year}_{method.split()[0]}_{sensors}_{len(method)}"
            extra: dict[str, Any] = {}
            if method == "capmon":  # the default: the S2 model, also with S1 read
                extra = {"model": models["S2"]}
            elif method == "capmon --s1-evidence":
                extra = {"model": models["S1_S2"], "s1_evidence": True}
            run_processor("l4b", mdb=mdb, parcels=plots, parcel_id_col="PLOTID", out=out,
                          method=method.split()[0], sensors=sensors, start=start, until=until,
                          year=year, overwrite=True, **extra)  # fmt: skip
            parcels, found = read_product(out)
            events[(method, sensors)] = found
    ndvi = MarkersDatabase(mdb).timeseries(parcels["NewID"].astype(int).tolist(), ["NDVI"])
    naive = naive_drop_events(ndvi, start=start, end=until)
    for sensors in SENSOR_SETS:
        events[("naive", sensors)] = naive  # the naive rule uses S2 only
    reference = reference_events(data, region, year)
    return RegionYear(region, year, parcels, events, reference)


def _events_by_parcel(rows: pd.DataFrame, ids: list[int], method: str, sensors: str,
                      start: date) -> dict[int, list[MowingEvent]]:  # fmt: skip
    series = build_series(rows, ids)
    config = L4BConfig()
    use_s1, use_s2 = sensors != "S2", sensors != "S1"
    if method == "sen4cap":
        found = sen4cap.detect_candidates(series, config, use_s1, use_s2)
        found = found[found["end"] >= pd.Timestamp(start)]
        return {int(k): sen4cap.select_events(g, config) for k, g in found.groupby("parcel_id")}
    if method.startswith("capmon"):
        evidence = method == "capmon --s1-evidence" and sensors == "S1_S2"
        chosen = cast(Literal["S2", "S1_S2"], "S1_S2" if evidence else "S2")
        models = learned.models_for(chosen, s1_evidence=evidence)
        scored = learned.scored_candidates(series, chosen, models, None)
        return learned.select_events(scored[scored["end"] >= pd.Timestamp(start)])
    found = capmon_method.detect_candidates(series, config, None, use_s1, use_s2)
    found = found[found["end"] >= pd.Timestamp(start)]
    return capmon_method.select_all(found, series, None, use_s1)


def independence(data: Path, region: str, year: int, folder: Path) -> dict[str, int]:
    """Plots whose events change when run alone instead of with the region's other plots, per
    method and sensor set (must be 0, except where capmon's S1 common-mode correction, which
    uses the run's scene median by design, changes them)."""
    mdb, _plots = import_region_year(data, region, year, folder)
    start = date(year, 3, 1)
    first, until = start - timedelta(days=45), date(year, 11, 30)
    rows = MarkersDatabase(mdb).timeseries(None, series_signals("NDVI"), first, until)
    ids = sorted(int(i) for i in rows["parcel_id"].unique())
    out = {}
    for method in ("sen4cap", "rules", "capmon", "capmon --s1-evidence"):
        for sensors in SENSOR_SETS:
            if method == "capmon --s1-evidence" and sensors == "S2":
                continue
            together = _events_by_parcel(rows, ids, method, sensors, start)
            changed = 0
            for pid in ids:
                own = rows[rows["parcel_id"] == pid]
                alone = _events_by_parcel(own, [pid], method, sensors, start).get(pid, [])
                changed += alone != together.get(pid, [])
            out[f"{method} {sensors}"] = changed
    out["plots"] = len(ids)
    return out


def pooled_scores(runs: list[RegionYear], method: str, sensors: str) -> dict[str, Any]:
    """Scores of ``method`` over the region-years of ``runs`` (one plot-year = one parcel)."""
    parcels, events, reference = [], [], []
    for k, run in enumerate(runs):
        offset = (k + 1) * 1_000_000
        checked = set(run.reference["ref_id"])
        own = run.parcels[run.parcels["Ori_id"].isin(checked)]
        parcels.append(pd.DataFrame({"NewID": own["NewID"] + offset,
                                     "Ori_id": own["Ori_id"] + f"@{run.year}"}))  # fmt: skip
        found = run.events[(method, sensors)]
        events.append(found.assign(NewID=found["NewID"] + offset)[["NewID", "end"]])
        reference.append(run.reference.assign(ref_id=run.reference["ref_id"] + f"@{run.year}"))
    score = score_events(pd.concat(parcels), pd.concat(events), pd.concat(reference),
                         (-3, 20), "ori_id")  # fmt: skip
    return score.figures()


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the scores."""
    lines = [
        "| region | sensors | method | plot-years | reference | events | matched | precision "
        "| recall | F1 | median date error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['region']} | {r['sensors'].replace('_', '+')} | {r['method']} | "
            f"{r['parcels']} | {r['reference_events']} | {r['detected_events']} | "
            f"{r['matched']} | {r['precision']:.2f} | {r['recall']:.2f} | {r['f1']:.2f} | "
            f"{r['median_abs_date_error_days']:.0f} d |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--regions", nargs="+", default=["LR", "NB"])
    parser.add_argument("--years", nargs="+", type=int, default=[2021, 2022, 2023])
    parser.add_argument("--workdir", type=Path, default=None, help="keep MDBs and products")
    parser.add_argument("--json", type=Path, default=None, help="write the scores here")
    parser.add_argument(
        "--write-models",
        type=Path,
        default=None,
        help="train the shipped models on every region and write them here",
    )
    parser.add_argument("--independence", action="store_true",
                        help="also count the plots whose events change when run alone")  # fmt: skip
    args = parser.parse_args()
    if not (args.data / "GMI_Long_LR_NB.gpkg").is_file():
        raise SystemExit(f"the GMD development data is not at {args.data}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="l4b_real_") as scratch:
        folder = args.workdir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if args.write_models:
            written = train_models(args.data, args.regions, args.years, folder,
                                   args.write_models, folds=5)  # fmt: skip
            print("models written:", ", ".join(str(p) for p in written.values()))
        rows = []
        for region in args.regions:
            others = [r for r in args.regions if r != region]
            if not others:
                raise SystemExit("leave-one-region-out needs at least two --regions")
            models = train_models(args.data, others, args.years, folder,
                                  folder / f"models_without_{region}")  # fmt: skip
            runs = [run_region_year(args.data, region, y, folder, models) for y in args.years]
            if args.independence:
                for y in args.years:
                    print(region, y, independence(args.data, region, y, folder))
            for sensors in SENSOR_SETS:
                for method in METHODS:
                    if (method, sensors) not in runs[0].events:
                        continue
                    figures = pooled_scores(runs, method, sensors)
                    rows.append({"region": region, "sensors": sensors, "method": method,
                                 **figures})  # fmt: skip
    print(table(rows))
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
