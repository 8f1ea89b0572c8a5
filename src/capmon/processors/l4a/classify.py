"""``classify_crops``: L4A on parcel time series from any source, without a workspace.

Parcels pass Sen4CAP's filters in this order, the first failed one naming their ``Classif_r``:
geometry (``GeomValid``, not ``Duplic``, not ``Overlap``), declared code in the LUT, LUT
land cover in ``lc``, ``S2Pix >= min_s2_pix``, ``S1Pix >= min_s1_pix``, observations in every
feature group, and a class with at least ``pa_min`` best parcels. Every parcel passing the
filters but the last is predicted; those of classified classes get ``Classified_conform`` when
their declared class is the first prediction, or the second one with a confidence of at least
``second_min_confidence``, else ``Classified_not_conform``.

In mode ``both`` a parcel without Sentinel-1 (``S1Pix`` below ``min_s1_pix`` or no S1
observation) is not left out as in Sen4CAP: a second model on the Sentinel-2 features alone
(trained on every training parcel, cross-predicted the same way) classifies it; its
``Predicted_by`` starts with ``S2``.

Accuracy rests on the parcels predicted by a model that never saw them: the validation
parcels and, with cross-prediction, every training parcel (its out-of-fold prediction). The
macro precision, recall and F1 count every class (a class never predicted right counts 0); the
"All declared" accuracy also counts the eligible parcels of the classes excluded by ``pa_min``
as errors. Below ``MIN_EVALUATED`` parcels, or with fewer than ``MIN_PER_CLASS`` per class,
the figures carry a warning (``accuracy_warning``, the notes, the summary line).

Sen4CAP accepts any second prediction (``second_min_confidence=0``). With a confident model
the second prediction is nearly always the crop most similar to the first (winter barley for
winter wheat), which is exactly what a wrong declaration tends to be: on the synthetic season
Sen4CAP's rule lets a third of the wrong declarations pass as conform, a 0.25 minimum flags
nearly all of them for a handful more false flags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from capmon.errors import ColumnError, InputError
from capmon.parcels.codes import crop_key
from capmon.processors.l4a.attributes import PREFIX, with_attributes
from capmon.processors.l4a.features import (
    S1_BACKSCATTER,
    S2_MAIN,
    FeatureTable,
    SeriesSource,
    available_signals,
    build_features,
)
from capmon.processors.l4a.parameters import L4AParameters
from capmon.processors.l4a.training import (
    accuracy_figures,
    split_calibration,
    strategy_of,
    top_two,
    train_and_predict,
)

CONFORM = "Classified_conform"
NOT_CONFORM = "Classified_not_conform"
NOT_GEOMETRY = "Not_classified_geometry"
NOT_IN_LUT = "Not_classified_undefined"
NOT_LAND_COVER = "Not_classified_land_cover"
NOT_MIN_S2 = "Not_classified_minS2pix"
NOT_S1 = "Not_classified_noS1pix"
NOT_OBSERVED = "Not_classified_no_observations"
NOT_CLASS = "Not_classified_excluded_class"
CLASSIF_VALUES = (
    CONFORM, NOT_CONFORM, NOT_GEOMETRY, NOT_IN_LUT, NOT_LAND_COVER, NOT_MIN_S2, NOT_S1,
    NOT_OBSERVED, NOT_CLASS,
)  # fmt: skip
REQUIRED_PARCEL_COLUMNS = (
    "NewID", "ori_crop", "GeomValid", "Duplic", "Overlap", "Area_meters", "S2Pix", "S1Pix",
)  # fmt: skip
REQUIRED_LUT_COLUMNS = ("ori_crop", "lc", "ctnuml4a", "ctl4a")
Progress = Callable[[float, str], None]
MIN_EVALUATED = 30
MIN_PER_CLASS = 2


@dataclass(frozen=True)
class ExcludedClass:
    """A declared class left out of the classification, and why."""

    class_id: int
    name: str
    best_parcels: int
    reason: str


@dataclass(frozen=True)
class L4AResult:
    """Everything L4A computed: per parcel predictions, accuracy tables and the features."""

    parcels: pd.DataFrame
    accuracy: pd.DataFrame
    confusion: pd.DataFrame
    confusion_user: pd.DataFrame
    confusion_producer: pd.DataFrame
    summary: pd.DataFrame
    overall_accuracy: float
    kappa: float
    classes: tuple[int, ...]
    excluded_classes: tuple[ExcludedClass, ...]
    missing_codes: dict[str, int]
    features: FeatureTable
    parameters: L4AParameters
    notes: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    evaluated: int = 0
    macro_f1: float = float("nan")
    overall_accuracy_all_declared: float = float("nan")
    accuracy_warning: str | None = None

    @property
    def first_date(self) -> date | None:
        return self.features.first_acquisition

    @property
    def last_date(self) -> date | None:
        return self.features.last_acquisition


def _parcel_table(parcels: pd.DataFrame, lut: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    missing = [c for c in REQUIRED_PARCEL_COLUMNS if c not in parcels.columns]
    if missing:
        raise ColumnError(f"the parcels lack the columns {', '.join(missing)}")
    lower = {c.lower(): c for c in lut.columns}
    absent = [c for c in REQUIRED_LUT_COLUMNS if c not in lower]
    if absent:
        raise ColumnError(f"the crop LUT lacks the columns {', '.join(absent)}")
    if "is_deleted" in parcels.columns:
        parcels = parcels[~parcels["is_deleted"].astype(bool)]
    if parcels["NewID"].duplicated().any():
        raise InputError("the parcels have repeated NewID values")
    keys = lut[lower["ori_crop"]].map(crop_key)
    by_key = pd.DataFrame(
        {
            "key": keys.to_numpy(dtype=object),
            "LC": lut[lower["lc"]].astype("int64").to_numpy(),
            "CTnumL4A": lut[lower["ctnuml4a"]].astype("int64").to_numpy(),
            "CTL4A": lut[lower["ctl4a"]].astype("string").to_numpy(),
        }
    ).drop_duplicates("key")
    table = pd.DataFrame(
        {
            "NewID": parcels["NewID"].astype("int64").to_numpy(),
            "ori_crop": parcels["ori_crop"].to_numpy(),
            "key": [crop_key(v) for v in parcels["ori_crop"]],
            "geometry_ok": (
                parcels["GeomValid"].astype(bool)
                & ~parcels["Duplic"].astype(bool)
                & ~parcels["Overlap"].astype(bool)
            ).to_numpy(),
            "Area_meters": parcels["Area_meters"].astype("float64").to_numpy(),
            "S2Pix": parcels["S2Pix"].astype("int64").to_numpy(),
            "S1Pix": parcels["S1Pix"].astype("int64").to_numpy(),
        }
    )
    for extra in ("ori_id", "HoldID"):
        if extra in parcels.columns:
            table[extra] = parcels[extra].to_numpy()
    table = table.merge(by_key, on="key", how="left")
    unknown = table.loc[table["CTnumL4A"].isna(), "key"]
    missing_codes = {str(k): int(n) for k, n in unknown.fillna("<empty>").value_counts().items()}
    if len(table) and len(unknown) == len(table):
        shown = ", ".join(list(missing_codes)[:10])
        raise InputError(
            f"no declared crop code of the parcels is in the crop LUT (codes: {shown})"
        )
    table["CTnumL4A"] = table["CTnumL4A"].astype("Int64")
    table["LC"] = table["LC"].astype("Int64")
    return table, missing_codes


def classify_crops(
    mdb: SeriesSource,
    parcels: pd.DataFrame,
    lut: pd.DataFrame,
    parameters: L4AParameters | None = None,
    *,
    start: date | None = None,
    end: date | None = None,
    progress: Progress | None = None,
) -> L4AResult:
    """L4A from an MDB (or a frame in the MDB row layout), a parcels table and a crop LUT.

    ``start``/``end`` bound the acquisitions used (the season); ``parameters.until`` ends them
    earlier for an early-season classification.
    """
    parameters = parameters or L4AParameters()
    say = progress or (lambda _fraction, _message: None)
    table, _missing = _parcel_table(parcels, lut)
    available = available_signals(mdb)
    parameters, note = _mode_for_sensors(available, parameters)
    say(0.0, "features")
    features = build_features(
        mdb, table["NewID"].tolist(), parameters.feature_settings(start, end), available=available
    )
    if note:
        features = replace(features, notes=(note, *features.notes))
    return classify_features(features, parcels, lut, parameters, progress=say)


def _mode_for_sensors(
    available: set[str], parameters: L4AParameters
) -> tuple[L4AParameters, str | None]:
    """Mode ``both`` on an MDB that holds one sensor only becomes that sensor's mode (issue
    17: a site without Sentinel-1 still gets its crop types), with a note saying so. An MDB
    with one of the two backscatter signals but not the other stays an error."""
    if parameters.mode != "both" or not available:
        return parameters, None
    optical = set(S2_MAIN)
    if not available & set(S1_BACKSCATTER) and available & optical:
        mode = "s2-only"
    elif not available & optical and set(S1_BACKSCATTER) <= available:
        mode = "s1-only"
    else:
        return parameters, None
    sensor = "Sentinel-1" if mode == "s2-only" else "Sentinel-2"
    note = f"the markers database has no {sensor} signal: classified in mode {mode} (asked: both)"
    return parameters.model_copy(update={"mode": mode}), note


def classify_features(
    features: FeatureTable,
    parcels: pd.DataFrame,
    lut: pd.DataFrame,
    parameters: L4AParameters | None = None,
    *,
    progress: Progress | None = None,
) -> L4AResult:
    """L4A from a feature table (see :func:`classify_crops`)."""
    parameters = parameters or L4AParameters()
    rules = parameters.training_rules()
    say = progress or (lambda _fraction, _message: None)
    table, missing_codes = _parcel_table(parcels, lut)
    features = with_attributes(features, parcels, parameters.attributes)
    complete = features.complete.reindex(table["NewID"].to_numpy(), fill_value=False)
    reasons = features.missing.reindex(table["NewID"].to_numpy())
    table["classif"] = pd.Series(pd.NA, index=table.index, dtype="string")
    table["reason"] = pd.Series(pd.NA, index=table.index, dtype="string")

    def fail(mask: pd.Series | np.ndarray[Any, Any], value: str, reason: pd.Series | str) -> None:
        chosen = np.asarray(mask, dtype=bool) & table["classif"].isna().to_numpy()
        table.loc[chosen, "classif"] = value
        table.loc[chosen, "reason"] = reason if isinstance(reason, str) else reason[chosen]

    fail(~table["geometry_ok"], NOT_GEOMETRY, "invalid, duplicate or overlapping geometry")
    fail(
        table["CTnumL4A"].isna(),
        NOT_IN_LUT,
        "declared crop code " + table["key"].fillna("<empty>").astype(str) + " is not in the LUT",
    )
    fail(~table["LC"].isin(parameters.lc).fillna(False), NOT_LAND_COVER,
         "LUT land cover " + table["LC"].astype(str) + f" not in lc {parameters.lc}")  # fmt: skip
    min_s2, min_s1 = parameters.effective_min_s2_pix, parameters.effective_min_s1_pix
    # parcels given as points (field survey plots, samples) have no area and no pixel count
    points = int(
        (table["classif"].isna() & table["Area_meters"].isna() & (table["S2Pix"] < min_s2)).sum()
    )
    fail(table["S2Pix"] < min_s2, NOT_MIN_S2, f"S2Pix below min_s2_pix {min_s2}")
    matrix = features.features.reindex(table["NewID"].to_numpy()).to_numpy(np.float64)
    optical = np.asarray(["_s2_" in c for c in features.features.columns], dtype=bool)
    # the parcels' attributes enter every model; the sensors' features decide the fallbacks
    attribute = np.asarray([c.startswith(PREFIX) for c in features.features.columns], dtype=bool)
    radar = ~optical & ~attribute
    fallback = np.zeros(len(table), dtype=bool)  # no Sentinel-1: the S2 model
    fallback_s1 = np.zeros(len(table), dtype=bool)  # no Sentinel-2: the S1 model
    has_s2 = np.ones(len(table), dtype=bool)
    has_s1 = np.ones(len(table), dtype=bool)
    if parameters.mode == "both" and optical.any() and radar.any():
        # a parcel observed by one sensor only falls back to a model on that sensor's features
        has_s2 = ~np.isnan(matrix[:, optical]).any(axis=1)
        has_s1 = ~np.isnan(matrix[:, radar]).any(axis=1) & (table["S1Pix"].to_numpy() >= min_s1)
        fail(
            ~has_s2 & ~has_s1,
            NOT_OBSERVED,
            pd.Series(reasons.fillna("no observation in the MDB").to_numpy(), index=table.index),
        )
        fallback = has_s2 & ~has_s1
        fallback_s1 = has_s1 & ~has_s2
    else:
        fail(table["S1Pix"] < min_s1, NOT_S1, f"S1Pix below min_s1_pix {min_s1}")
        fail(
            ~complete.to_numpy(),
            NOT_OBSERVED,
            pd.Series(reasons.fillna("no observation in the MDB").to_numpy(), index=table.index),
        )
    eligible = table["classif"].isna().to_numpy()
    fallback &= eligible
    fallback_s1 &= eligible
    best = eligible & (table["S2Pix"].to_numpy() >= parameters.best_s2_pix)
    declared = np.asarray(table["CTnumL4A"].fillna(-1).to_numpy(np.int64), dtype=np.int64)
    names = (
        table.dropna(subset=["CTnumL4A"]).drop_duplicates("CTnumL4A").set_index("CTnumL4A")["CTL4A"]
    )
    best_counts = pd.Series(declared[best]).value_counts()
    eligible_classes = sorted({int(c) for c in declared[eligible]})
    kept = [c for c in eligible_classes if int(best_counts.get(c, 0)) >= rules.pa_min]
    excluded = tuple(
        ExcludedClass(
            c,
            str(names.get(c, "")),
            int(best_counts.get(c, 0)),
            f"{int(best_counts.get(c, 0))} best parcels (S2Pix >= {parameters.best_s2_pix}), "
            f"fewer than pa_min {rules.pa_min}",
        )
        for c in eligible_classes
        if c not in kept
    )
    in_kept = np.isin(declared, kept)
    excluded_reasons = pd.Series(
        {e.class_id: f"class {e.class_id} {e.name}: {e.reason}" for e in excluded}, dtype="string"
    )
    fail(
        eligible & ~in_kept,
        NOT_CLASS,
        pd.Series(excluded_reasons.reindex(declared).to_numpy(), index=table.index),
    )
    calibration = best & in_kept
    train = np.zeros(len(table), dtype=bool)
    train[np.flatnonzero(calibration)[split_calibration(declared[calibration], rules)]] = True
    validation = eligible & in_kept & ~train
    predicted = eligible.copy()
    table["Sample"] = np.where(train, "calibration", np.where(validation, "validation", ""))

    pred_1 = np.full(len(table), -1, dtype=np.int64)
    pred_2 = np.full(len(table), -1, dtype=np.int64)
    conf_1 = np.full(len(table), np.nan)
    conf_2 = np.full(len(table), np.nan)
    by = np.full(len(table), "", dtype="<U16")
    notes = list(features.notes)
    if points:
        notes.append(
            f"{points} parcel(s) given as points (no area, no pixel count) left out by "
            f"min_s2_pix {min_s2}: to classify points pass --min-s2-pix 0 --best-s2-pix 0 "
            "--min-s1-pix 0"
        )
    if len(kept) >= 2:
        both = ~fallback & ~fallback_s1
        if len(np.unique(declared[train & both])) < 2:
            # too few parcels with both sensors to learn from: each sensor's model alone
            fallback, fallback_s1 = has_s2 & eligible, ~has_s2 & eligible
            both = np.zeros(len(table), dtype=bool)
        every = np.ones(len(optical), dtype=bool)
        runs = [(every, both, train & both, "")] if (both & eligible).any() else []
        if fallback.any():
            runs.append((optical | attribute, fallback, train & has_s2, "S2 "))
            notes.append(
                f"{int(fallback.sum())} parcel(s) without Sentinel-1 classified by a model on "
                "Sentinel-2 features only"
            )
        if fallback_s1.any():
            if len(np.unique(declared[train & has_s1])) < 2:
                fail(fallback_s1, NOT_OBSERVED, "no Sentinel-2 observation, and too few "
                     "training parcels with Sentinel-1 for a Sentinel-1 model")  # fmt: skip
                predicted &= ~fallback_s1
                validation &= ~fallback_s1
            else:
                runs.append((radar | attribute, fallback_s1, train & has_s1, "S1 "))
                notes.append(
                    f"{int(fallback_s1.sum())} parcel(s) without Sentinel-2 classified by a "
                    "model on Sentinel-1 features only"
                )
        for columns, group, fit_on, prefix in runs:
            others = predicted & ~train & group
            own, rest = train_and_predict(
                matrix[fit_on][:, columns], declared[fit_on], matrix[others][:, columns], rules,
                progress=say,
            )  # fmt: skip
            for mask, result, rows in ((fit_on, own, train & group), (others, rest, others)):
                first, p1, second, p2 = top_two(result.probabilities, result.classes)
                keep = rows[mask]
                chosen = np.flatnonzero(mask)[keep]
                pred_1[chosen], conf_1[chosen] = first[keep], p1[keep]
                pred_2[chosen], conf_2[chosen] = second[keep], p2[keep]
                by[chosen] = np.char.add(prefix, result.predicted_by[keep])
    elif eligible.any():
        notes.append(
            f"{len(kept)} class(es) with at least pa_min {rules.pa_min} best parcels: "
            "nothing to classify (L4A needs two)"
        )
        fail(eligible, NOT_CLASS, "fewer than two classes can be classified")
        predicted[:] = False
        validation[:] = False
        train[:] = False
        table["Sample"] = ""
    say(0.95, "accuracy")
    classified = table["classif"].isna().to_numpy()
    second = (declared == pred_2) & (conf_2 >= parameters.second_min_confidence)
    conform = (declared == pred_1) | second
    table.loc[classified & conform, "classif"] = CONFORM
    table.loc[classified & ~conform, "classif"] = NOT_CONFORM
    classes = np.asarray(kept, dtype=np.int64)
    evaluated = validation | (train if rules.cross_prediction else np.zeros_like(train))
    evaluated &= predicted & in_kept & (pred_1 >= 0)
    matrix_counts, oa, kappa = accuracy_figures(declared[evaluated], pred_1[evaluated], classes)
    left_out = int((predicted & ~in_kept).sum())
    n_evaluated = int(evaluated.sum())
    all_declared = (
        float(np.trace(matrix_counts)) / (n_evaluated + left_out)
        if n_evaluated + left_out
        else float("nan")
    )
    macro = _macro(matrix_counts)
    warning = _accuracy_warning(matrix_counts, classes) if len(classes) else None
    if warning:
        notes.append(warning)

    def with_class(values: np.ndarray[Any, Any], ok: np.ndarray[Any, Any]) -> pd.Series:
        return pd.Series(np.where(ok, values, 0), dtype="Int64").where(ok)

    has = predicted & (pred_1 >= 0)
    out = pd.DataFrame({"NewID": table["NewID"]})
    for extra in ("ori_id", "HoldID"):
        if extra in table.columns:
            out[extra] = table[extra]
    out["ori_crop"] = table["ori_crop"]
    out["Area_meters"] = table["Area_meters"]
    out["S1Pix"] = table["S1Pix"]
    out["S2Pix"] = table["S2Pix"]
    out["LC"] = table["LC"]
    out["CTnumL4A"] = table["CTnumL4A"]
    out["CTL4A"] = table["CTL4A"]
    out["CT_decl"] = table["CTnumL4A"]
    out["CT_pred_1"] = with_class(pred_1, has)
    out["CT_conf_1"] = pd.Series(conf_1).where(has).round(3)
    out["CT_pred_2"] = with_class(pred_2, has)
    out["CT_conf_2"] = pd.Series(conf_2).where(has).round(3)
    out["Classif_r"] = table["classif"].astype("string")
    out["Reason"] = table["reason"].astype("string")
    out["Sample"] = table["Sample"]
    out["Predicted_by"] = by
    counts = {str(k): int(v) for k, v in out["Classif_r"].value_counts().items()}
    counts |= {
        "parcels": len(out),
        "eligible": int(eligible.sum()),
        "training": int(train.sum()),
        "validation": int(validation.sum()),
        "predicted": int(has.sum()),
        "evaluated": n_evaluated,
        "s2_only": int((fallback & has).sum()),
        "s1_only": int((fallback_s1 & has).sum()),
    }
    say(1.0, "done")
    return L4AResult(
        parcels=out,
        accuracy=_accuracy_table(
            matrix_counts,
            oa,
            kappa,
            classes,
            names,
            all_declared,
            excluded,
            {c: int((predicted & (declared == c)).sum()) for c in (e.class_id for e in excluded)},
            warning,
        ),
        confusion=_confusion_table(matrix_counts, oa, classes),
        confusion_user=_top_confusions(matrix_counts, classes, names, axis="user"),
        confusion_producer=_top_confusions(matrix_counts, classes, names, axis="producer"),
        summary=_summary(
            table, eligible, best, train, validation, kept, names, rules, matrix_counts, classes
        ),
        evaluated=n_evaluated,
        macro_f1=macro[2],
        overall_accuracy_all_declared=all_declared,
        accuracy_warning=warning,
        overall_accuracy=oa,
        kappa=kappa,
        classes=tuple(int(c) for c in kept),
        excluded_classes=excluded,
        missing_codes=missing_codes,
        features=features,
        parameters=parameters,
        notes=tuple(notes),
        counts=counts,
    )


def _per_class(matrix: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
    """Precision (user's accuracy), recall (producer's accuracy), F1 and support per class.

    A class with reference parcels that is never predicted has precision 0 (not NaN); a class
    with both precision and recall 0 has F1 0. Only a class without any evaluated parcel and
    never predicted has NaN figures (nothing was measured)."""
    diagonal = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=1).astype(np.float64)
    reference = matrix.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, diagonal / np.maximum(predicted, 1), np.nan)
        precision = np.where((predicted == 0) & (reference > 0), 0.0, precision)
        recall = np.where(reference > 0, diagonal / np.maximum(reference, 1), np.nan)
        recall = np.where((reference == 0) & (predicted > 0), 0.0, recall)
        total = precision + recall
        f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
        f1 = np.where(np.isnan(total), np.nan, f1)
    return precision, recall, f1, reference


def _macro(matrix: np.ndarray[Any, Any]) -> tuple[float, float, float]:
    """Macro precision, recall and F1 over EVERY class (an unmeasured class counts 0)."""
    if len(matrix) == 0 or matrix.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    precision, recall, f1, _support = _per_class(matrix)
    return tuple(float(np.nan_to_num(v, nan=0.0).mean()) for v in (precision, recall, f1))  # type: ignore[return-value]


def _accuracy_warning(matrix: np.ndarray[Any, Any], classes: np.ndarray[Any, Any]) -> str | None:
    """Why the accuracy figures are not to be trusted, or None."""
    support = matrix.sum(axis=0)
    total = int(support.sum())
    problems = []
    if total < MIN_EVALUATED:
        problems.append(f"rests on {total} parcel(s), fewer than {MIN_EVALUATED}")
    thin = [str(int(c)) for c, n in zip(classes, support, strict=True) if n < MIN_PER_CLASS]
    if thin:
        problems.append(
            f"class(es) {', '.join(thin)} have fewer than {MIN_PER_CLASS} evaluated parcels"
        )
    if not problems:
        return None
    return "WARNING: the accuracy " + "; ".join(problems) + ": not a measure of the method"


def _accuracy_table(
    matrix: np.ndarray[Any, Any], oa: float, kappa: float, classes: np.ndarray[Any, Any],
    names: pd.Series, all_declared: float, excluded: tuple[ExcludedClass, ...],
    excluded_counts: dict[int, int], warning: str | None,
) -> pd.DataFrame:  # fmt: skip
    """Overall (evaluated parcels of the classified classes), All declared (plus the parcels
    of the excluded classes, as errors), each classified class, then each excluded class."""
    precision, recall, f1, support = _per_class(matrix)
    macro = _macro(matrix)
    rows = [
        {
            "CTnumL4A": "Overall",
            "CTL4A": "",
            "Accuracy": oa,
            "Kappa": kappa,
            "Precision": macro[0],
            "Recall": macro[1],
            "F1": macro[2],
            "Support": int(support.sum()),
            "Note": warning or "",
        },
        {
            "CTnumL4A": "All declared",
            "CTL4A": "",
            "Accuracy": all_declared,
            "Kappa": np.nan,
            "Precision": np.nan,
            "Recall": np.nan,
            "F1": np.nan,
            "Support": int(support.sum()) + sum(excluded_counts.values()),
            "Note": f"excluded classes counted as errors: {len(excluded)}",
        },
    ]
    for i, c in enumerate(classes):
        rows.append(
            {
                "CTnumL4A": str(int(c)),
                "CTL4A": str(names.get(int(c), "")),
                "Accuracy": np.nan,
                "Kappa": np.nan,
                "Precision": precision[i],
                "Recall": recall[i],
                "F1": f1[i],
                "Support": int(support[i]),
                "Note": "",
            }
        )
    for e in excluded:
        rows.append(
            {
                "CTnumL4A": str(e.class_id),
                "CTL4A": e.name,
                "Accuracy": np.nan,
                "Kappa": np.nan,
                "Precision": np.nan,
                "Recall": 0.0,
                "F1": 0.0,
                "Support": excluded_counts.get(e.class_id, 0),
                "Note": f"excluded: {e.reason}",
            }
        )
    return pd.DataFrame(rows)


def _confusion_table(
    matrix: np.ndarray[Any, Any], oa: float, classes: np.ndarray[Any, Any]
) -> pd.DataFrame:
    """Rows: predicted class, columns: reference class, with user's and producer's accuracy."""
    precision, recall, _f1, _support = _per_class(matrix)
    labels = [str(int(c)) for c in classes]
    frame = pd.DataFrame(matrix.astype(np.float64), index=labels, columns=labels)
    frame["user_accuracy"] = precision
    producer = pd.DataFrame([[*recall, oa]], index=["producer_accuracy"], columns=frame.columns)
    frame = pd.concat([frame, producer])
    frame.index.name = "Prediction"
    return frame


def _top_confusions(
    matrix: np.ndarray[Any, Any], classes: np.ndarray[Any, Any], names: pd.Series, axis: str
) -> pd.DataFrame:
    """Per class, the three classes it is most confused with, in % (user: of its predictions,
    producer: of its reference parcels)."""
    rows = []
    for i, c in enumerate(classes):
        line = matrix[i, :] if axis == "user" else matrix[:, i]
        total = float(line.sum())
        row: dict[str, Any] = {"CTnumL4A": int(c), "CTL4A": str(names.get(int(c), ""))}
        row[f"{axis}_accuracy"] = 100.0 * line[i] / total if total else np.nan
        others = [(int(line[j]), int(classes[j])) for j in range(len(classes)) if j != i]
        others.sort(key=lambda item: (-item[0], item[1]))
        for rank in range(3):
            if rank < len(others) and others[rank][0] > 0 and total:
                row[f"Conf{rank + 1}"] = others[rank][1]
                row[f"Conf{rank + 1}_pct"] = round(100.0 * others[rank][0] / total, 2)
            else:
                row[f"Conf{rank + 1}"] = pd.NA
                row[f"Conf{rank + 1}_pct"] = np.nan
        rows.append(row)
    columns = ["CTnumL4A", "CTL4A", f"{axis}_accuracy"] + [
        f"Conf{r}{s}" for r in (1, 2, 3) for s in ("", "_pct")
    ]
    frame = pd.DataFrame(rows, columns=columns)
    for r in (1, 2, 3):
        frame[f"Conf{r}"] = frame[f"Conf{r}"].astype("Int64")
    return frame


def _summary(
    table: pd.DataFrame,
    eligible: np.ndarray[Any, Any],
    best: np.ndarray[Any, Any],
    train: np.ndarray[Any, Any],
    validation: np.ndarray[Any, Any],
    kept: list[int],
    names: pd.Series,
    rules: Any,
    matrix: np.ndarray[Any, Any],
    classes: np.ndarray[Any, Any],
) -> pd.DataFrame:
    """Sen4CAP's crop types summary, per declared class of the eligible parcels."""
    declared = table["CTnumL4A"].fillna(-1).astype("int64").to_numpy()
    area = table["Area_meters"].to_numpy(np.float64)
    _p, _r, f1, _s = _per_class(matrix)
    f1_of = {int(c): float(f1[i]) for i, c in enumerate(classes)}
    total_count = int(eligible.sum())
    total_area = float(area[eligible].sum())
    rows = []
    for c in sorted({int(v) for v in declared[eligible]}):
        members = eligible & (declared == c)
        n_best = int((best & members).sum())
        n_train = int((train & members).sum())
        is_kept = c in kept
        rows.append(
            {
                "CTnumL4A": c,
                "CTL4A": str(names.get(c, "")),
                "Count": int(members.sum()),
                "Countratio": round(int(members.sum()) / total_count, 6) if total_count else 0.0,
                "Area": round(float(area[members].sum()), 2),
                "Arearatio": round(float(area[members].sum()) / total_area, 6)
                if total_area
                else 0.0,
                "Classified": is_kept,
                "Strategy": strategy_of(n_best, rules) if is_kept else 0,
                "Best": n_best,
                "Training": n_train,
                "Validation": int((validation & members).sum()),
                "Smote": max(rules.smote_target - n_train, 0)
                if is_kept and rules.balance == "smote"
                else 0,
                "F1": f1_of.get(c, np.nan),
            }
        )
    columns = ["CTnumL4A", "CTL4A", "Count", "Countratio", "Area", "Arearatio", "Classified",
               "Strategy", "Best", "Training", "Validation", "Smote", "F1"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
