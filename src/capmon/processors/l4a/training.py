"""L4A training and prediction with Sen4CAP's rules (sen4cap-system.md 5.3), plus cross-prediction.

* Calibration pool: the "best" parcels (``S2Pix >= best_s2_pix``) of the classes that have at
  least ``pa_min`` of them; the other kept parcels of those classes are validation parcels.
* Per class, the split strategy depends on its number of best parcels ``n``: strategy 1
  (``n >= pa_train_h``): ``sample_ratio_h`` of them train; strategy 2 (``pa_train_l <= n <
  pa_train_h``): exactly ``smote_target`` train; strategy 3 (smaller): ``sample_ratio_l`` train.
  The rest validates.
* Balance (``balance``): by default classes are weighted inversely to their training size
  (sklearn's ``class_weight="balanced"``), which costs nothing; ``balance="sqrt"`` takes the
  square root of that weight (less overall accuracy given up for the small classes);
  ``balance="smote"`` is Sen4CAP's SMOTE,
  raising every class with fewer than ``smote_target`` training parcels to exactly
  ``smote_target`` (k nearest neighbours of its own class, k capped at the class size - 1):
  with 8-80 real parcels per class that is mostly synthetic rows and most of the run time;
  ``balance="none"`` fits the classes as they are (the largest classes win more parcels: a
  higher overall accuracy, a lower macro-F1).
* Features constant over the training rows (e.g. every stdev when the MDB holds only means)
  are dropped before fitting.
* Threads: ``jobs <= 0`` means the cores this process may run on
  (``os.sched_getaffinity``) less the ones already busy (1-minute load average), at least 1;
  never "every core" on a loaded machine, where LightGBM slows down many times.
* Random forest: ranger's ``num.trees=300, min.node.size=10, mtry=floor(sqrt(p))`` with
  bootstrap sampling is sklearn's ``n_estimators=300, min_samples_split=10,
  max_features="sqrt", bootstrap=True`` (ranger does not split a node smaller than
  ``min.node.size``; there is no depth limit in either). Extremely randomised trees
  (``classifier="extratrees"``): the same forest with random split thresholds and no
  bootstrap, grown fully (``min_samples_split=2``) unless ``min_node_size`` is given; on the
  real development sets they give a higher overall accuracy than the forest and a lower
  macro-F1 (docs/l4a.md). LightGBM is the other alternative, with
  cheap settings chosen on the WorldCereal Corsica set (docs/l4a.md): 15 leaves,
  ``min_child_samples`` = ``min_node_size`` (10), ``num_trees`` rounds at learning rate 0.05, 30 %
  of the features per tree.
* Cross-prediction (beyond Sen4CAP, which predicts its training parcels with the model that
  learnt them): the training parcels are dealt in ``folds`` stratified folds; each is predicted
  by a model trained (with its own SMOTE) on the other folds. Every other parcel is predicted by
  the model trained on all training parcels, which is also the one validated.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from capmon.errors import InputError

Classifier = Literal["rf", "extratrees", "lightgbm"]
Balance = Literal["weights", "sqrt", "smote", "none"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrainingRules:
    """Sen4CAP's sampling, SMOTE and classifier parameters (its defaults)."""

    pa_min: int = 10
    pa_train_h: int = 4000
    pa_train_l: int = 1333
    sample_ratio_h: float = 0.25
    sample_ratio_l: float = 0.75
    smote_target: int = 1000
    smote_k: int = 5
    num_trees: int = 300
    min_node_size: int | None = None
    classifier: Classifier = "rf"
    cross_prediction: bool = True
    folds: int = 5
    seed: int = 42
    jobs: int = 0
    balance: Balance = "weights"
    num_leaves: int = 15
    learning_rate: float = 0.05
    feature_fraction: float = 0.3

    def __post_init__(self) -> None:
        if self.pa_train_l > self.pa_train_h:
            raise InputError("pa_train_l must not exceed pa_train_h")
        if not (0 < self.sample_ratio_h <= 1 and 0 < self.sample_ratio_l <= 1):
            raise InputError("sample_ratio_h and sample_ratio_l must be in (0, 1]")
        if self.cross_prediction and self.folds < 2:
            raise InputError("folds must be >= 2 for cross-prediction")
        if self.classifier not in ("rf", "extratrees", "lightgbm"):
            raise InputError(
                f"classifier must be rf, extratrees or lightgbm, not {self.classifier!r}"
            )
        if self.min_node_size is not None and self.min_node_size < 2:
            raise InputError("min_node_size must be >= 2")
        if self.balance not in ("weights", "sqrt", "smote", "none"):
            raise InputError(f"balance must be weights, sqrt, smote or none, not {self.balance!r}")
        if self.num_leaves < 2 or not 0 < self.learning_rate <= 1:
            raise InputError("num_leaves must be >= 2 and learning_rate in (0, 1]")
        if not 0 < self.feature_fraction <= 1:
            raise InputError("feature_fraction must be in (0, 1]")


def threads(jobs: int) -> int:
    """The classifier's thread count: ``jobs`` when positive, else the cores this process may
    use (its CPU affinity) less the busy ones (1-minute load average), at least 1."""
    if jobs > 0:
        return jobs
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = int(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


def strategy_of(best_count: int, rules: TrainingRules) -> int:
    """Sen4CAP's split strategy of a class with ``best_count`` best parcels (1, 2 or 3)."""
    if best_count >= rules.pa_train_h:
        return 1
    if best_count >= rules.pa_train_l:
        return 2
    return 3


def training_size(best_count: int, rules: TrainingRules) -> int:
    """How many of a class's best parcels train, by its strategy."""
    strategy = strategy_of(best_count, rules)
    if strategy == 1:
        size = round(rules.sample_ratio_h * best_count)
    elif strategy == 2:
        size = rules.smote_target
    else:
        size = round(rules.sample_ratio_l * best_count)
    return int(min(max(size, 1), best_count))


def split_calibration(labels: npt.NDArray[Any], rules: TrainingRules) -> npt.NDArray[np.bool_]:
    """Which best parcels train (True) or validate (False), class by class, reproducibly (each
    class draws from its own seeded stream, so a class's split does not depend on the others)."""
    train = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng = np.random.default_rng([rules.seed, int(label)])
        chosen = rng.choice(members, size=training_size(len(members), rules), replace=False)
        train[chosen] = True
    return train


def smote(
    features: FloatArray, labels: IntArray, rules: TrainingRules, seed: int
) -> tuple[FloatArray, IntArray]:
    """The training rows plus SMOTE rows raising each small class to ``smote_target``.

    Classes with at least ``smote_target`` rows are left as they are; k is capped at the class
    size - 1; a class of one row is repeated (nothing to interpolate with).
    """
    from imblearn.over_sampling import SMOTE  # type: ignore[import-untyped]

    new_rows: list[FloatArray] = []
    new_labels: list[IntArray] = []
    classes, counts = np.unique(labels, return_counts=True)
    for index, (label, count) in enumerate(zip(classes, counts, strict=True)):
        missing = rules.smote_target - int(count)
        if missing <= 0:
            continue
        members = features[labels == label]
        if count == 1 or len(classes) == 1:
            picks = np.random.default_rng(seed + index).integers(0, count, size=missing)
            new_rows.append(members[picks])
        else:
            sampler = SMOTE(
                sampling_strategy={int(label): rules.smote_target},
                k_neighbors=min(rules.smote_k, int(count) - 1),
                random_state=seed + index,
            )
            resampled, _ = sampler.fit_resample(features, labels)
            new_rows.append(np.asarray(resampled[len(features) :], dtype=np.float64))
        new_labels.append(np.full(missing, label, dtype=np.int64))
    if not new_rows:
        return features, labels
    return np.vstack([features, *new_rows]), np.concatenate([labels, *new_labels])


# The smallest node a tree may split when min_node_size is not given: Sen4CAP's ranger
# min.node.size for its random forest and LightGBM's min_child_samples; 2 (fully grown trees)
# for extremely randomised trees, whose random thresholds already smooth the class borders.
DEFAULT_MIN_NODE_SIZE: dict[Classifier, int] = {"rf": 10, "extratrees": 2, "lightgbm": 10}


def min_node_size(rules: TrainingRules) -> int:
    """The classifier's smallest splittable node: the rules' own or the classifier's default."""
    if rules.min_node_size is not None:
        return rules.min_node_size
    return DEFAULT_MIN_NODE_SIZE[rules.classifier]


def class_weights(labels: IntArray, balance: Balance) -> dict[int, float] | None:
    """Per class weight of ``balance``: ``weights`` the inverse of the class size (sklearn's
    "balanced": n / (k n_c)), ``sqrt`` its square root (a large class keeps more of its
    weight: a compromise between overall accuracy and the small classes); else None."""
    if balance not in ("weights", "sqrt"):
        return None
    classes, counts = np.unique(labels, return_counts=True)
    inverse = len(labels) / (len(classes) * counts.astype(np.float64))
    power = 1.0 if balance == "weights" else 0.5
    return {int(c): float(w**power) for c, w in zip(classes, inverse, strict=True)}


def _model(rules: TrainingRules, seed: int, weights: dict[int, float] | None) -> Any:
    jobs = threads(rules.jobs)
    if rules.classifier in ("rf", "extratrees"):
        from sklearn.ensemble import (  # type: ignore[import-untyped]
            ExtraTreesClassifier,
            RandomForestClassifier,
        )

        forest = RandomForestClassifier if rules.classifier == "rf" else ExtraTreesClassifier
        return forest(
            n_estimators=rules.num_trees,
            min_samples_split=min_node_size(rules),
            max_features="sqrt",
            bootstrap=rules.classifier == "rf",  # extra trees see every training row
            random_state=seed,
            n_jobs=jobs,
            class_weight=weights,
        )
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        n_estimators=rules.num_trees,
        learning_rate=rules.learning_rate,
        num_leaves=rules.num_leaves,
        min_child_samples=min_node_size(rules),
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=rules.feature_fraction,
        random_state=seed,
        n_jobs=jobs,
        class_weight=weights,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


@dataclass(frozen=True)
class TrainedModel:
    """A fitted classifier, the classes of its probability columns and the feature columns it
    uses (the non-constant ones of its training rows)."""

    model: Any
    classes: IntArray
    columns: IntArray

    def probabilities(self, features: FloatArray, classes: IntArray) -> FloatArray:
        """Class probabilities of ``features`` in the column order of ``classes``."""
        out = np.zeros((len(features), len(classes)))
        if len(features) == 0:
            return out
        with warnings.catch_warnings():
            # LightGBM's sklearn wrapper warns when fitted and called on plain arrays
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            own = np.asarray(self.model.predict_proba(features[:, self.columns]), dtype=np.float64)
        position = np.searchsorted(classes, self.classes)
        out[:, position] = own
        return out


def varying_columns(features: FloatArray) -> IntArray:
    """The columns that are not constant over the rows (all of them when there is one row)."""
    if len(features) < 2:
        return np.arange(features.shape[1], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All-NaN slice encountered")
        spread = np.nanmax(features, axis=0) - np.nanmin(features, axis=0)
    return np.flatnonzero(~(spread == 0)).astype(np.int64)


def train(features: FloatArray, labels: IntArray, rules: TrainingRules, seed: int) -> TrainedModel:
    """Drop constant features, balance (class weights or SMOTE) and fit the classifier."""
    columns = varying_columns(features)
    if len(columns) == 0:
        raise InputError("every L4A feature is constant over the training parcels")
    rows, targets = features[:, columns], labels
    if rules.balance == "smote":
        rows, targets = smote(rows, targets, rules, seed)
    model = _model(rules, seed, class_weights(targets, rules.balance))
    model.fit(rows, targets)
    return TrainedModel(model, np.asarray(model.classes_, dtype=np.int64), columns)


def fold_of(labels: IntArray, folds: int, seed: int) -> IntArray:
    """A stratified fold number per training parcel (class members dealt round-robin)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        out[members] = np.arange(len(members)) % folds
    return out


@dataclass(frozen=True)
class Predictions:
    """Class probabilities of every predicted parcel and which model predicted it."""

    classes: IntArray
    probabilities: FloatArray
    predicted_by: npt.NDArray[np.str_]
    full_model: TrainedModel


def train_and_predict(
    train_features: FloatArray,
    train_labels: IntArray,
    other_features: FloatArray,
    rules: TrainingRules,
    progress: Any = None,
) -> tuple[Predictions, Predictions]:
    """Fit on the training rows, predict the other rows with that model and (with
    cross-prediction) each training row with the fold model that did not see it.

    Returns the predictions of the training rows, then of the other rows.
    """
    classes = np.unique(train_labels)
    if len(classes) < 2:
        raise InputError(
            f"L4A needs at least two classes to train, found {len(classes)} "
            f"({', '.join(str(c) for c in classes) or 'none'})"
        )
    say = progress or (lambda _fraction, _message: None)
    steps = 1 + (rules.folds if rules.cross_prediction else 0)
    say(0.0, "training the model on every training parcel")
    full = train(train_features, train_labels, rules, rules.seed)
    other = Predictions(
        classes,
        full.probabilities(other_features, classes),
        np.full(len(other_features), "full", dtype="<U16"),
        full,
    )
    if not rules.cross_prediction:
        own = Predictions(
            classes,
            full.probabilities(train_features, classes),
            np.full(len(train_features), "full", dtype="<U16"),
            full,
        )
        return own, other
    folds = fold_of(train_labels, rules.folds, rules.seed)
    probabilities = np.zeros((len(train_features), len(classes)))
    by = np.empty(len(train_features), dtype="<U16")
    for fold in range(rules.folds):
        say((1 + fold) / steps, f"cross-prediction fold {fold + 1}/{rules.folds}")
        held = folds == fold
        if not held.any():
            continue
        model = train(
            train_features[~held], train_labels[~held], rules, rules.seed + 1000 * (fold + 1)
        )
        probabilities[held] = model.probabilities(train_features[held], classes)
        by[held] = f"fold {fold + 1}"
    return Predictions(classes, probabilities, by, full), other


def top_two(
    probabilities: FloatArray, classes: IntArray
) -> tuple[IntArray, FloatArray, IntArray, FloatArray]:
    """The best and second-best classes and their probabilities (ties: lower class first)."""
    if probabilities.shape[1] == 0:
        empty_i = np.zeros(len(probabilities), dtype=np.int64)
        empty_f = np.zeros(len(probabilities))
        return empty_i, empty_f, empty_i, empty_f
    order = np.argsort(-probabilities, axis=1, kind="stable")
    first = order[:, 0]
    second = order[:, 1] if probabilities.shape[1] > 1 else order[:, 0]
    rows = np.arange(len(probabilities))
    return (
        classes[first],
        probabilities[rows, first],
        classes[second],
        probabilities[rows, second] if probabilities.shape[1] > 1 else np.zeros(len(rows)),
    )


def accuracy_figures(
    reference: Sequence[int] | IntArray, predicted: Sequence[int] | IntArray, classes: IntArray
) -> tuple[npt.NDArray[np.int64], float, float]:
    """Confusion matrix (rows: predicted, columns: reference), overall accuracy and kappa."""
    ref = np.asarray(reference, dtype=np.int64)
    pred = np.asarray(predicted, dtype=np.int64)
    n = len(classes)
    matrix = np.zeros((n, n), dtype=np.int64)
    if len(ref):
        r = np.searchsorted(classes, ref)
        p = np.searchsorted(classes, pred)
        np.add.at(matrix, (p, r), 1)
    total = matrix.sum()
    if total == 0:
        return matrix, float("nan"), float("nan")
    observed = np.trace(matrix) / total
    expected = float((matrix.sum(axis=0) * matrix.sum(axis=1)).sum()) / float(total) ** 2
    kappa = (observed - expected) / (1 - expected) if expected < 1 else 1.0
    return matrix, float(observed), float(kappa)
