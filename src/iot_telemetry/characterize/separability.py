"""Separability of the devices: accuracy of identifying the device from one reading.

A gradient-boosted tree classifier predicts the device from one reading's
sensor values; stratified k-fold cross-validation measures its accuracy.
Each fit stops early once the loss on 10 % of its training fold has not
improved for 10 iterations (scikit-learn's early stopping). lpg and smoke
are left out because they are exact functions of co.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

FEATURE_SETS = {
    "all sensors": ("temp", "humidity", "co", "light", "motion"),
    "temp and humidity": ("temp", "humidity"),
    "co only": ("co",),
}
MAX_ITER = 100  # boosting iterations at most; early stopping usually ends sooner


@dataclass
class Separability:
    """Cross-validated accuracy of predicting the device from one reading.

    `fold_accuracy` has one value per fold. `baseline` is the accuracy of
    always predicting the most common device in the rows used. `confusion`
    counts true devices (index) against predicted ones (columns) over the
    held-out readings of all folds.
    """

    features: tuple[str, ...]
    rows: int
    fold_accuracy: np.ndarray
    baseline: float
    confusion: pd.DataFrame

    @property
    def accuracy(self) -> float:
        """Mean accuracy over the folds."""
        return float(np.mean(self.fold_accuracy))

    @property
    def accuracy_std(self) -> float:
        """Standard deviation of the accuracy over the folds."""
        return float(np.std(self.fold_accuracy))


def stratified_subsample(readings: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """Return at most `max_rows` readings, drawn per device in proportion to its count.

    Returns `readings` unchanged when it has at most `max_rows` rows.
    """
    if len(readings) <= max_rows:
        return readings
    fraction = max_rows / len(readings)
    return readings.groupby("device", group_keys=False).sample(frac=fraction, random_state=seed)


def device_separability(
    readings: pd.DataFrame,
    features=FEATURE_SETS["all sensors"],
    cv_folds: int = 5,
    seed: int = 0,
    max_rows: int = 50_000,
) -> Separability:
    """Cross-validate a classifier that predicts the device from one reading.

    Folds are drawn at random (shuffled StratifiedKFold), so neighbouring
    readings of one device fall in both training and test folds. A split by
    time blocks would be stricter. Booleans enter as 0/1.

    Args:
        readings: readings table with at least two devices.
        features: sensor columns used as features.
        cv_folds: number of folds (at least 2, at most the smallest device's rows).
        seed: seed of the subsample, the fold shuffle and the classifier.
        max_rows: readings beyond this are subsampled per device first.

    Raises:
        ValueError: fewer than two devices, or a device with fewer readings
            than `cv_folds`.
    """
    data = stratified_subsample(readings, max_rows, seed)
    labels = data["device"].astype(str).to_numpy()
    counts = pd.Series(labels).value_counts()
    if len(counts) < 2:
        raise ValueError(f"need readings of at least two devices, got {list(counts.index)}")
    if counts.min() < cv_folds:
        raise ValueError(
            f"device {counts.idxmin()} has {counts.min()} readings, fewer than "
            f"cv_folds={cv_folds}"
        )
    X = data[list(features)].astype("float64").to_numpy()
    folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    predicted = np.empty_like(labels)
    accuracy = []
    # One OpenMP thread: when other processes load the cores, OpenMP threads
    # wait on each other and a fit can take minutes instead of seconds. The
    # fitted model is the same for any thread count.
    with threadpool_limits(limits=1, user_api="openmp"):
        for train, test in folds.split(X, labels):
            model = HistGradientBoostingClassifier(max_iter=MAX_ITER, early_stopping=True,
                                                   random_state=seed)
            model.fit(X[train], labels[train])
            predicted[test] = model.predict(X[test])
            accuracy.append(float(np.mean(predicted[test] == labels[test])))
    devices = sorted(counts.index)
    confusion = pd.DataFrame(confusion_matrix(labels, predicted, labels=devices),
                             index=pd.Index(devices, name="device"),
                             columns=pd.Index(devices, name="predicted"))
    log.info("device classifier on %s: accuracy %.4f over %d folds", features,
             np.mean(accuracy), cv_folds)
    return Separability(tuple(features), len(data), np.asarray(accuracy),
                        float(counts.max() / counts.sum()), confusion)


def compare_feature_sets(readings: pd.DataFrame, cv_folds: int, seed: int, max_rows: int,
                         feature_sets: dict[str, tuple[str, ...]] | None = None
                         ) -> dict[str, Separability]:
    """Run `device_separability` for each named feature set (FEATURE_SETS by default)."""
    return {
        name: device_separability(readings, features, cv_folds, seed, max_rows)
        for name, features in (feature_sets or FEATURE_SETS).items()
    }


def accuracy_table(results: dict[str, Separability]) -> pd.DataFrame:
    """Tabulate feature set, features, rows, mean and std of fold accuracy, and baseline."""
    return pd.DataFrame([
        {
            "feature_set": name,
            "features": ", ".join(result.features),
            "rows": result.rows,
            "accuracy": result.accuracy,
            "accuracy_std": result.accuracy_std,
            "baseline": result.baseline,
        }
        for name, result in results.items()
    ]).set_index("feature_set")
