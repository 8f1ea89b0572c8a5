"""L4A training + prediction time on a synthetic feature table (default 100,000 x 300).

``python benchmarks/l4a.py [--parcels N] [--features P] [--classes K] [--classifier rf|lightgbm]
[--no-cross-prediction] [--jobs J]`` builds a feature table of K crop classes with overlapping
class means (class sizes from a Zipf-like law, as in real declarations), runs
:func:`capmon.processors.l4a.classify_features` with Sen4CAP's defaults (300 trees, SMOTE to
1000, the three split strategies) and prints the time of each step and the accuracy.
"""

from __future__ import annotations

import argparse
import time

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
from shapely.geometry import Point

from capmon.processors.l4a import FeatureTable, L4AParameters, classify_features


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parcels", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=300)
    parser.add_argument("--classes", type=int, default=15)
    parser.add_argument("--classifier", choices=["rf", "lightgbm"], default="rf")
    parser.add_argument("--no-cross-prediction", action="store_true")
    parser.add_argument("--jobs", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

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
