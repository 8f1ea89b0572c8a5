"""L4A training + prediction time on a synthetic feature table (default 100,000 x 300).

``python benchmarks/l4a.py [--parcels N] [--features P] [--classes K]
[--classifier rf|extratrees|lightgbm] [--no-cross-prediction] [--jobs J]
[--balance weights|smote]`` builds a feature table of K crop classes with overlapping class
means (class sizes from a Zipf-like law, as in real declarations), runs
:func:`capmon.processors.l4a.classify_features` with the defaults (300 trees, class weights,
or with ``--balance smote`` Sen4CAP's SMOTE to 1000; the three split strategies) and prints
the time of each step and the accuracy.

``python benchmarks/l4a.py --real corsica|flanders|PATH [--classifier ...]`` measures on the real
WorldCereal development data (``../shared/data/worldcereal_dev``), or on another WorldCereal
monthly extraction at PATH, imported with ``capmon mdb import``'s ``worldcereal-month`` spec:
stratified 5-fold out-of-fold predictions over the parcels of the classes with >= 10 samples,
capmon's L4A (every parcel cross-predicted:
``sample_ratio_l=1``) without and with the samples' terrain and weather as parcel attributes
(``attributes``: the DEM's elevation and slope, AgERA5's precipitation and temperature) next to a
plain random forest on monthly medians of NDVI, B04, B08, B11, VV, VH, printing OA, macro-F1,
kappa, parcels and seconds of each.

``python benchmarks/l4a.py --tune-on corsica --report-on flanders`` (or the other way round)
chooses among :data:`GRID` (capmon's random forest and extremely randomised trees with and
without temporal descriptors, class weights or attributes, cheap LightGBM settings) by OA +
macro-F1 out-of-fold on the first set, then runs the choice on the second set, which the choice
never saw, next to capmon's default and the plain random forest (same protocol as ``--real``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
from shapely.geometry import Point

from capmon.mdb.query import MarkersDatabase
from capmon.processors.l4a import FeatureTable, L4AParameters, L4AResult, classify_features

# benchmarks/ is on the path when run as a script, not when a test loads this module
sys.path.insert(0, str(Path(__file__).resolve().parent))
from worldcereal_inputs import ANCILLARY, ancillary_means


def feature_table(
    parcels: int, features: int, classes: int, seed: int
) -> tuple[FeatureTable, npt.NDArray[np.int64]]:
    """Random features (each class its own mean profile plus parcel noise) and the classes."""
    rng = np.random.default_rng(seed)
    shares = 1.0 / np.arange(1, classes + 1)
    labels = rng.choice(np.arange(1, classes + 1), size=parcels, p=shares / shares.sum())
    centres = rng.normal(0, 1, size=(classes + 1, features))
    values = centres[labels] + rng.normal(0, 2.5, size=(parcels, features))
    ids = pd.Index(np.arange(1, parcels + 1, dtype=np.int64), name="NewID")
    frame = pd.DataFrame(
        values.astype(np.float32), index=ids, columns=[f"XX_F{j:04d}" for j in range(features)]
    )
    missing = pd.Series(pd.NA, index=ids, dtype="string")
    return FeatureTable(frame, missing), labels


REAL = {
    "corsica": "2022_FRA_corsica_month.geoparquet",
    "flanders": "2021_BEL_flanders_month.parquet",
}
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "worldcereal_dev"
# The per-sample terrain and weather of the WorldCereal extractions (averaged over the sample's
# months), given to L4A as parcel attributes (``--attributes``).
ATTRIBUTES = list(ANCILLARY.values())
# The candidates of --tune-on, fixed before looking at any figure: capmon's random forest with
# and without the temporal descriptors, and cheap LightGBM settings (few leaves, few rounds,
# 30 % of the features per tree, class weights), plus (added after a first round) both
# classifiers without class weights, and (added in a third round, after seeing both sets'
# figures for the others) extremely randomised trees with and without class weights, and (a
# fourth round, after seeing both sets' figures with attributes) the parcels' terrain and weather
# attributes with the forests and LightGBM, and (a fifth round, after repeated runs on both
# sets) square-root class weights with both forests. Chosen by OA + macro-F1 on the tuning set
# (averaged over --repeats runs).
GRID: dict[str, dict[str, object]] = {
    "rf": {"classifier": "rf"},
    "rf, no descriptors": {"classifier": "rf", "descriptors": False},
    "rf, no class weights": {"classifier": "rf", "balance": "none"},
    "lightgbm, no class weights": {"classifier": "lightgbm", "balance": "none"},
    "extratrees": {"classifier": "extratrees"},
    "extratrees, no class weights": {"classifier": "extratrees", "balance": "none"},
    "rf, attributes": {"classifier": "rf", "attributes": ATTRIBUTES},
    "rf, no class weights, attributes": {
        "classifier": "rf", "balance": "none", "attributes": ATTRIBUTES,
    },
    "extratrees, attributes": {"classifier": "extratrees", "attributes": ATTRIBUTES},
    "extratrees, no class weights, attributes": {
        "classifier": "extratrees", "balance": "none", "attributes": ATTRIBUTES,
    },
    "lightgbm, no class weights, attributes": {
        "classifier": "lightgbm", "balance": "none", "attributes": ATTRIBUTES,
    },
    "rf, sqrt weights": {"classifier": "rf", "balance": "sqrt"},
    "rf, sqrt weights, attributes": {
        "classifier": "rf", "balance": "sqrt", "attributes": ATTRIBUTES,
    },
    "extratrees, sqrt weights": {"classifier": "extratrees", "balance": "sqrt"},
    "extratrees, sqrt weights, attributes": {
        "classifier": "extratrees", "balance": "sqrt", "attributes": ATTRIBUTES,
    },
    **{
        f"lightgbm leaves {leaves} min {least} rounds {rounds}": {
            "classifier": "lightgbm", "num_leaves": leaves, "min_node_size": least,
            "num_trees": rounds,
        }
        for leaves in (7, 15)
        for least in (5, 10)
        for rounds in (150, 300)
    },
}  # fmt: skip


def scores(reference: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]) -> str:
    """OA, macro-F1 over every class, kappa and the number of parcels."""
    oa, f1, kappa = figures(reference, predicted)
    return f"OA {oa:.3f}, macro-F1 {f1:.3f}, kappa {kappa:.3f}, {len(reference)} parcels"


def figures(
    reference: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]
) -> tuple[float, float, float]:
    """OA, macro-F1 over every reference class, kappa."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    labels = np.unique(reference)
    f1 = f1_score(reference, predicted, labels=labels, average="macro", zero_division=0)
    return (
        float(accuracy_score(reference, predicted)),
        float(f1),
        float(cohen_kappa_score(reference, predicted)),
    )


@dataclass
class RealSet:
    """A WorldCereal set imported into an MDB: the parcels of its classes with >= 10 samples."""

    name: str
    raw: pd.DataFrame
    labels: pd.Series
    mdb: MarkersDatabase
    parcels: pd.DataFrame
    lut: pd.DataFrame

    @property
    def codes(self) -> npt.NDArray[np.int64]:
        return self.labels.to_numpy(np.int64)


def source_of(name: str) -> Path:
    """A development set's file (``corsica``, ``flanders``) or the path of another WorldCereal
    monthly extraction (``*_month.parquet``), e.g. of another country."""
    if name in REAL:
        return SHARED / REAL[name]
    path = Path(name)
    if not path.is_file():
        raise SystemExit(f"{name}: neither {' nor '.join(sorted(REAL))} nor a file")
    return path


def load(name: str, folder: Path) -> RealSet:
    """Import a WorldCereal set with ``capmon mdb import``'s ``worldcereal-month`` spec; the
    samples' terrain and weather columns (those present) become parcel attributes."""
    import capmon
    from capmon.mdb.imports import import_statistics, load_spec, to_parcel_ids

    source = source_of(name)
    raw = pd.read_parquet(source)
    sizes = raw.groupby("sample_id")["ewoc_code"].first().value_counts()
    big = sizes[sizes >= 10].index
    raw = raw[raw["ewoc_code"].isin(big)]
    labels = raw.groupby("sample_id")["ewoc_code"].first().astype("int64")
    root = folder / source.stem
    report = import_statistics([source], root, load_spec("worldcereal-month"))
    for note in report.notes:
        print(f"  {note}")
    ids = to_parcel_ids(root, labels.index)
    if None in ids:
        first = labels.index[ids.index(None)]
        raise SystemExit(f"{source}: samples without any observation, e.g. {first}")
    if "S1-SIGMA0-VV" in raw.columns:
        s1 = (raw["S1-SIGMA0-VV"] != 65535).groupby(raw["sample_id"]).sum()
    else:
        s1 = pd.Series(0, index=labels.index)
    attributes = ancillary_means(raw).reindex(labels.index)
    parcels = pd.DataFrame(
        {
            "NewID": ids,
            "ori_crop": labels.to_numpy(),
            "GeomValid": True,
            "Duplic": False,
            "Overlap": False,
            "Area_meters": 10_000.0,
            "S2Pix": 100,
            "S1Pix": s1.reindex(labels.index).to_numpy(np.int64),
        }
        | {name: attributes[name].to_numpy() for name in attributes.columns}
    )
    lut = pd.DataFrame(
        {"ori_crop": big, "lc": 1, "ctnuml4a": np.arange(1, len(big) + 1),
         "ctl4a": [str(c) for c in big]}
    )  # fmt: skip
    print(f"{name}: {len(labels)} parcels of {len(big)} classes with >= 10 samples; "
          f"attributes: {', '.join(attributes.columns) or 'none'}")  # fmt: skip
    return RealSet(name, raw, labels, capmon.open_mdb(root), parcels, lut)


def plain_forest(data: RealSet, jobs: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """The baseline: a plain random forest (300 trees) on monthly medians of NDVI, B04, B08,
    B11, VV, VH, stratified 5-fold out-of-fold predictions (``seed``: folds and forest)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    raw = data.raw
    wanted = ["S2-L2A-B04", "S2-L2A-B08", "S2-L2A-B11", "S1-SIGMA0-VV", "S1-SIGMA0-VH"]
    bands = raw[[c for c in wanted if c in raw.columns]]  # an extraction may lack S1 or a band
    bands = bands.astype("float64").where(bands != 65535)
    signals: dict[str, object] = {}
    if {"S2-L2A-B04", "S2-L2A-B08"} <= set(bands.columns):
        red, nir = bands["S2-L2A-B04"], bands["S2-L2A-B08"]
        signals["NDVI"] = (nir - red) / (nir + red)
    for column in wanted:
        if column in bands.columns:
            decibels = column.startswith("S1-")
            values = 20 * np.log10(bands[column]) - 83 if decibels else bands[column]
            signals[column.rsplit("-", 1)[1]] = values
    monthly = pd.DataFrame(
        {"sample_id": raw["sample_id"], "month": pd.to_datetime(raw["timestamp"]).dt.month}
        | signals
    )
    table = monthly.groupby(["sample_id", "month"]).median().unstack("month")
    table = table.reindex(data.labels.index).fillna(table.median())
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    forest = RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=max(jobs, 1))
    return np.asarray(cross_val_predict(forest, table.to_numpy(), data.codes, cv=folds))


def parameters_of(config: dict[str, object], jobs: int, balance: str = "weights") -> L4AParameters:
    """L4A parameters of the benchmark: every parcel cross-predicted in 5 stratified folds."""
    return L4AParameters.model_validate(
        {"sample_ratio_l": 1.0, "pa_min": 10, "folds": 5, "jobs": jobs, "balance": balance} | config
    )


def capmon_l4a(
    data: RealSet, parameters: L4AParameters, features: FeatureTable | None = None
) -> tuple[npt.NDArray[np.int64], L4AResult]:
    """capmon's L4A; a parcel it leaves out (no observation at all) counts as an error."""
    from capmon.processors.l4a import classify_crops

    present = [a for a in parameters.attributes if a in data.parcels.columns]
    parameters = parameters.model_copy(update={"attributes": present})
    if features is None:
        result = classify_crops(data.mdb, data.parcels, data.lut, parameters)
    else:
        result = classify_features(features, data.parcels, data.lut, parameters)
    frame = result.parcels.set_index("NewID").loc[data.parcels["NewID"]]
    predicted = frame["CT_pred_1"].fillna(0).to_numpy(np.int64)
    named = data.lut.set_index("ctnuml4a")["ori_crop"]
    return named.reindex(predicted).fillna(-1).to_numpy(np.int64), result


def real(name: str, classifier: str, jobs: int, balance: str) -> None:
    """capmon's L4A without and with the parcels' terrain and weather attributes, and the plain
    random forest, out-of-fold, on a WorldCereal set."""
    with tempfile.TemporaryDirectory() as folder:
        data = load(name, Path(folder))
        started = time.perf_counter()
        baseline = plain_forest(data, jobs)
        print(f"  plain RF on monthly medians: {scores(data.codes, baseline)}, "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        present = [a for a in ATTRIBUTES if a in data.parcels.columns]
        for attributes in ([], present) if present else ([],):
            started = time.perf_counter()
            config: dict[str, object] = {"classifier": classifier, "attributes": attributes}
            codes, result = capmon_l4a(data, parameters_of(config, jobs, balance))
            seconds = time.perf_counter() - started
            left_out = int((codes == -1).sum())
            print(f"  capmon L4A ({classifier}, balance {balance}"
                  f"{', attributes ' + ','.join(attributes) if attributes else ''}): "
                  f"{scores(data.codes, codes)} "
                  f"(left out, as errors: {left_out}; from S2 only: "
                  f"{result.counts.get('s2_only', 0)}, from S1 only: "
                  f"{result.counts.get('s1_only', 0)}), {seconds:.1f} s")  # fmt: skip
            print(f"    its own report: OA {result.overall_accuracy:.3f}, macro-F1 "
                  f"{result.macro_f1:.3f}, kappa {result.kappa:.3f} on {result.evaluated} "
                  "parcels")  # fmt: skip
            for note in result.notes:
                if "classified in mode" in note:  # one sensor only: the mode it fell back to
                    print(f"    {note}")


@dataclass(frozen=True)
class Repeated:
    """OA, macro-F1 and kappa averaged over repeated out-of-fold runs (other folds and seeds),
    with the spread of OA and macro-F1 (standard deviation over the repeats)."""

    oa: float
    f1: float
    kappa: float
    oa_sd: float
    f1_sd: float
    parcels: int

    def __str__(self) -> str:
        spread = f" (sd {self.oa_sd:.3f} / {self.f1_sd:.3f})" if self.oa_sd or self.f1_sd else ""
        return (f"OA {self.oa:.3f}, macro-F1 {self.f1:.3f}, kappa {self.kappa:.3f}{spread}, "
                f"{self.parcels} parcels")  # fmt: skip


def repeated(reference: npt.NDArray[np.int64], runs: list[npt.NDArray[np.int64]]) -> Repeated:
    """The figures of several runs' predictions of the same parcels."""
    table = np.array([figures(reference, predicted) for predicted in runs])
    return Repeated(
        float(table[:, 0].mean()), float(table[:, 1].mean()), float(table[:, 2].mean()),
        float(table[:, 0].std()), float(table[:, 1].std()), len(reference),
    )  # fmt: skip


def capmon_repeated(
    data: RealSet, config: dict[str, object], jobs: int, repeats: int,
    features: FeatureTable | None = None,
) -> Repeated:  # fmt: skip
    """capmon's L4A with ``config``, run with seeds 42, 43, ... (folds and classifier)."""
    runs = [
        capmon_l4a(data, parameters_of(config | {"seed": 42 + r}, jobs), features)[0]
        for r in range(repeats)
    ]
    return repeated(data.codes, runs)


def tune(tune_on: str, report_on: str, jobs: int, repeats: int = 1) -> None:
    """Choose among :data:`GRID` by OA + macro-F1 on ``tune_on`` (out-of-fold, averaged over
    ``repeats`` runs with other folds and seeds), then report the choice on ``report_on``,
    which no choice looked at, next to the plain random forest and capmon's default (averaged
    the same way)."""
    from capmon.processors.l4a import build_features

    with tempfile.TemporaryDirectory() as folder:
        tuning = load(tune_on, Path(folder))
        tables: dict[bool, FeatureTable] = {}
        ranked: list[tuple[float, str]] = []
        for label, config in GRID.items():
            parameters = parameters_of(config, jobs)
            if parameters.descriptors not in tables:
                tables[parameters.descriptors] = build_features(
                    tuning.mdb, tuning.parcels["NewID"].tolist(), parameters.feature_settings()
                )
            started = time.perf_counter()
            result = capmon_repeated(tuning, config, jobs, repeats, tables[parameters.descriptors])
            ranked.append((result.oa + result.f1, label))
            print(f"  tuning on {tune_on}: {label:44s} {result}, "
                  f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        chosen = max(ranked)[1]
        print(f"  chosen on {tune_on}: {chosen}")
        report = load(report_on, Path(folder))
        started = time.perf_counter()
        baseline = repeated(report.codes, [plain_forest(report, jobs, r) for r in range(repeats)])
        print(f"  {report_on}, plain RF on monthly medians: {baseline}, "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        for label in dict.fromkeys(["rf", chosen]):
            started = time.perf_counter()
            result = capmon_repeated(report, GRID[label], jobs, repeats)
            print(f"  {report_on}, capmon L4A {label}"
                  f"{' (chosen on ' + tune_on + ')' if label == chosen else ''}: {result}, "
                  f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcels", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=300)
    parser.add_argument("--classes", type=int, default=15)
    parser.add_argument("--classifier", choices=["rf", "extratrees", "lightgbm"], default="rf")
    parser.add_argument("--no-cross-prediction", action="store_true")
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--min-node-size", type=int, default=None, help="the trees' smallest split node"
    )
    where = f"{' or '.join(sorted(REAL))}, or the path of a WorldCereal *_month.parquet"
    parser.add_argument("--real", default=None, help=where)
    parser.add_argument(
        "--balance", choices=["weights", "sqrt", "smote", "none"], default="weights"
    )
    parser.add_argument(
        "--repeats", type=int, default=1,
        help="--tune-on/--report-on: average every figure over this many runs (other folds "
        "and seeds)",
    )  # fmt: skip
    parser.add_argument("--tune-on", default=None, help=where)
    parser.add_argument("--report-on", default=None, help=where)
    args = parser.parse_args()
    if args.tune_on or args.report_on:
        if not (args.tune_on and args.report_on) or args.tune_on == args.report_on:
            parser.error("--tune-on and --report-on take two different sets")
        tune(args.tune_on, args.report_on, args.jobs, max(args.repeats, 1))
        return
    if args.real:
        real(args.real, args.classifier, args.jobs, args.balance)
        return

    started = time.perf_counter()
    table, labels = feature_table(args.parcels, args.features, args.classes, args.seed)
    parcels = gpd.GeoDataFrame(
        {
            "NewID": table.features.index.to_numpy(),
            "ori_crop": labels,
            "GeomValid": True,
            "Duplic": False,
            "Overlap": False,
            "Area_meters": 20_000.0,
            "S2Pix": 150,
            "S1Pix": 40,
            "geometry": [Point(0, 0)] * args.parcels,
        }
    )
    lut = pd.DataFrame(
        {
            "ori_crop": np.arange(1, args.classes + 1),
            "lc": 1,
            "ctnuml4a": np.arange(1, args.classes + 1),
            "ctl4a": [f"crop {k}" for k in range(1, args.classes + 1)],
        }
    )
    built = time.perf_counter() - started
    parameters = L4AParameters(
        classifier=args.classifier,
        cross_prediction=not args.no_cross_prediction,
        jobs=args.jobs,
        balance=args.balance,
        min_node_size=args.min_node_size,
    )
    steps: list[tuple[float, str]] = []
    last = [time.perf_counter()]

    def progress(_fraction: float, message: str) -> None:
        now = time.perf_counter()
        steps.append((now - last[0], message))
        last[0] = now

    started = time.perf_counter()
    result = classify_features(table, parcels, lut, parameters, progress=progress)
    seconds = time.perf_counter() - started
    print(f"feature table {args.parcels} x {args.features}, {args.classes} classes ({built:.1f} s)")
    for step_seconds, message in steps[1:]:
        print(f"  {step_seconds:7.1f} s  before: {message}")
    counts = result.counts
    print(
        f"{args.classifier}, cross-prediction {not args.no_cross_prediction}: "
        f"{counts['training']} training and {counts['predicted']} predicted parcels, "
        f"overall accuracy {result.overall_accuracy:.3f}, kappa {result.kappa:.3f}"
    )
    print(f"training + prediction: {seconds:.1f} s ({seconds / 60:.2f} min)")


if __name__ == "__main__":
    main()
