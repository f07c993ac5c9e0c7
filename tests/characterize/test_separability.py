"""Device classifier: separable devices score high, identical ones near chance."""

from __future__ import annotations

import numpy as np
import pytest

from characterize_helpers import BASE_TS, build_readings, combine
from iot_telemetry.characterize.separability import (
    accuracy_table,
    compare_feature_sets,
    device_separability,
    stratified_subsample,
)


def noisy_device(name: str, temp_mean: float, count: int, seed: int):
    rng = np.random.default_rng(seed)
    return build_readings(name, BASE_TS + np.arange(count) * 5.0,
                          temp=rng.normal(temp_mean, 0.3, count),
                          humidity=rng.normal(50.0, 1.0, count),
                          co=rng.lognormal(np.log(0.005), 0.05, count))


def test_distinct_devices_are_separable():
    readings = combine(noisy_device("cool", 19.0, 600, 1), noisy_device("warm", 25.0, 300, 2))
    result = device_separability(readings, ("temp", "humidity"), cv_folds=3, seed=0)
    # Not exactly 1: a held-out reading beyond its device's training range can
    # share a histogram bin with the other device (measured 0.996).
    assert result.accuracy >= 0.99
    assert len(result.fold_accuracy) == 3
    assert result.baseline == pytest.approx(600 / 900)
    assert result.confusion.loc["cool"].sum() == 600
    assert result.confusion.loc["warm", "cool"] <= 3
    assert result.confusion.to_numpy().sum() == 900
    assert result.rows == 900


def test_identical_devices_score_near_chance():
    readings = combine(noisy_device("a", 20.0, 400, 3), noisy_device("b", 20.0, 400, 4))
    result = device_separability(readings, ("temp", "humidity", "co"), cv_folds=4, seed=0)
    assert 0.35 < result.accuracy < 0.65


def test_same_seed_same_result():
    readings = combine(noisy_device("a", 20.0, 300, 5), noisy_device("b", 20.5, 300, 6))
    first = device_separability(readings, ("temp",), cv_folds=3, seed=7)
    second = device_separability(readings, ("temp",), cv_folds=3, seed=7)
    np.testing.assert_array_equal(first.fold_accuracy, second.fold_accuracy)


def test_subsample_keeps_device_shares():
    readings = combine(noisy_device("a", 20.0, 800, 1), noisy_device("b", 25.0, 200, 2))
    sample = stratified_subsample(readings, max_rows=100, seed=0)
    assert sample["device"].value_counts().to_dict() == {"a": 80, "b": 20}
    assert stratified_subsample(readings, max_rows=5000, seed=0) is readings


def test_one_device_raises():
    with pytest.raises(ValueError, match="at least two devices"):
        device_separability(noisy_device("a", 20.0, 50, 1), ("temp",), cv_folds=3)


def test_too_few_readings_for_folds_raises():
    readings = combine(noisy_device("a", 20.0, 50, 1), noisy_device("b", 25.0, 2, 2))
    with pytest.raises(ValueError, match="fewer than cv_folds=3"):
        device_separability(readings, ("temp",), cv_folds=3)


def test_accuracy_table_per_feature_set():
    readings = combine(noisy_device("cool", 19.0, 300, 1), noisy_device("warm", 25.0, 300, 2))
    results = compare_feature_sets(readings, cv_folds=3, seed=0, max_rows=1000,
                                   feature_sets={"temp": ("temp",), "co": ("co",)})
    table = accuracy_table(results)
    assert table.index.tolist() == ["temp", "co"]
    assert table.loc["temp", "accuracy"] >= 0.99
    assert table.loc["co", "accuracy"] < 0.7
    assert table.loc["temp", "features"] == "temp"
