"""L4A product files, named and laid out as Sen4CAP's (sen4cap-system.md 5.4).

``<folder>/`` holds ``Parcels_all_with_predictions_<stamp>.csv`` (every parcel),
``Parcels_classified_with_predictions_<stamp>.csv`` (the classified ones),
``Accuracy_metrics_<stamp>.csv``, ``Confusion_matrix_<stamp>.csv``,
``Confusion_user_<stamp>.csv``, ``Confusion_producer_<stamp>.csv``,
``Crop_types_summary_<stamp>.csv``, ``Accuracy_metrics_plot_<stamp>.png``, ``CropType.gpkg``
(with parcel geometries), ``features.parquet`` and ``l4a.json`` (parameters, counts, excluded
classes, notes). The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from capmon.errors import InputError
from capmon.processors.l4a.classify import CONFORM, NOT_CONFORM, L4AResult
from capmon.workspace import atomic_path


def product_files(stamp: str) -> dict[str, str]:
    """The file name of each output of a product stamped ``stamp`` (Sen4CAP's ``%m%d_%H%M``)."""
    return {
        "parcels": f"Parcels_all_with_predictions_{stamp}.csv",
        "classified": f"Parcels_classified_with_predictions_{stamp}.csv",
        "accuracy": f"Accuracy_metrics_{stamp}.csv",
        "confusion": f"Confusion_matrix_{stamp}.csv",
        "confusion_user": f"Confusion_user_{stamp}.csv",
        "confusion_producer": f"Confusion_producer_{stamp}.csv",
        "summary": f"Crop_types_summary_{stamp}.csv",
        "plot": f"Accuracy_metrics_plot_{stamp}.png",
        "gpkg": "CropType.gpkg",
        "features": "features.parquet",
        "report": "l4a.json",
    }


def report(result: L4AResult) -> dict[str, Any]:
    """What the run did, for ``l4a.json`` and the catalogue's product properties."""
    return {
        "overall_accuracy": None if np.isnan(result.overall_accuracy) else result.overall_accuracy,
        "kappa": None if np.isnan(result.kappa) else result.kappa,
        "macro_f1": None if np.isnan(result.macro_f1) else result.macro_f1,
        "overall_accuracy_all_declared": None
        if np.isnan(result.overall_accuracy_all_declared)
        else result.overall_accuracy_all_declared,
        "accuracy_parcels": result.evaluated,
        "accuracy_warning": result.accuracy_warning,
        "classes": list(result.classes),
        "excluded_classes": [asdict(e) for e in result.excluded_classes],
        "missing_codes": result.missing_codes,
        "counts": result.counts,
        "first_acquisition": str(result.first_date) if result.first_date else None,
        "last_acquisition": str(result.last_date) if result.last_date else None,
        "feature_groups": result.features.groups,
        "notes": list(result.notes),
        "parameters": result.parameters.model_dump(mode="json"),
    }


def write_l4a_product(
    result: L4AResult,
    folder: Path,
    stamp: str,
    geometries: gpd.GeoDataFrame | None = None,
) -> dict[str, Path]:
    """Write every file of the product into ``folder`` (which must not exist), atomically.

    ``geometries`` (a ``NewID`` column and the parcel geometries) makes ``CropType.gpkg``;
    without it the GeoPackage is left out.
    """
    if folder.exists():
        raise InputError(f"the L4A product folder {folder} already exists")
    names = product_files(stamp)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        parcels = result.parcels
        parcels.to_csv(tmp / names["parcels"], index=False)
        classified = parcels["Classif_r"].isin([CONFORM, NOT_CONFORM])
        parcels[classified.to_numpy()].to_csv(tmp / names["classified"], index=False)
        result.accuracy.to_csv(tmp / names["accuracy"], index=False)
        result.confusion.to_csv(tmp / names["confusion"])
        result.confusion_user.to_csv(tmp / names["confusion_user"], index=False)
        result.confusion_producer.to_csv(tmp / names["confusion_producer"], index=False)
        result.summary.to_csv(tmp / names["summary"], index=False)
        accuracy_plot(result, tmp / names["plot"])
        if geometries is not None:
            _geopackage(parcels, geometries, tmp / names["gpkg"])
        else:
            del names["gpkg"]
        result.features.write(str(tmp / names["features"]))
        (tmp / names["report"]).write_text(
            json.dumps(report(result), indent=2, default=str), encoding="utf-8"
        )
    return {key: folder / name for key, name in names.items()}


def _geopackage(parcels: pd.DataFrame, geometries: gpd.GeoDataFrame, path: Path) -> None:
    shapes = geometries[["NewID", "geometry"]].copy()
    shapes["NewID"] = shapes["NewID"].astype("int64")
    layer = gpd.GeoDataFrame(
        shapes.merge(parcels, on="NewID", how="inner"), geometry="geometry", crs=geometries.crs
    )
    for column in layer.columns:
        if column != "geometry" and isinstance(layer[column].dtype, pd.StringDtype):
            layer[column] = layer[column].astype(object)
    layer.to_file(path, layer="CropType", driver="GPKG")


def accuracy_plot(result: L4AResult, path: Path) -> None:
    """F1 per class (bars, classes by decreasing area) and their cumulative share of the area."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result.summary[result.summary["Classified"].astype(bool)]
    summary = summary.sort_values("Area", ascending=False)
    figure, axis = plt.subplots(figsize=(max(6.0, 0.6 * len(summary) + 2), 4.5))
    try:
        labels = [f"{c} {n}" for c, n in zip(summary["CTnumL4A"], summary["CTL4A"], strict=True)]
        positions = np.arange(len(summary))
        axis.bar(positions, summary["F1"].fillna(0.0), color="#4c8c4a")
        axis.set_ylim(0, 1)
        axis.set_ylabel("F1 score")
        axis.set_xticks(positions, labels, rotation=45, ha="right", fontsize=8)
        total = float(summary["Area"].sum())
        cumulative = summary["Area"].cumsum() / total * 100 if total else summary["Area"] * 0
        twin = axis.twinx()
        twin.plot(positions, cumulative, color="#b03a2e", marker="o")
        twin.set_ylim(0, 105)
        twin.set_ylabel("cumulative area (%)")
        title = (
            f"L4A: overall accuracy {result.overall_accuracy:.3f}, macro-F1 "
            f"{result.macro_f1:.3f}, kappa {result.kappa:.3f} ({result.evaluated} parcels)"
        )
        if result.accuracy_warning:
            title += "\nWARNING: too few parcels to measure accuracy"
        axis.set_title(title, fontsize=9)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
