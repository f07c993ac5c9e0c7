"""Glitch rule: an injected isolated reading is flagged, normal variation is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eda_helpers import BASE_TS, build_readings, combine
from iot_telemetry.eda.glitches import (
    compare_with_truth,
    count_glitches,
    find_glitches,
    glitch_residuals,
    load_truth,
)


def quiet_series(count: int = 200, seed: int = 0) -> np.ndarray:
    """A slow walk quantised to 0.1, like the devices' readings."""
    steps = np.random.default_rng(seed).choice([-0.1, 0.0, 0.1], size=count, p=[0.1, 0.8, 0.1])
    return np.round(20.0 + np.cumsum(steps), 1)


def test_injected_glitch_is_flagged():
    temp = quiet_series()
    temp[57] = 6.1
    readings = build_readings("a", BASE_TS + np.arange(len(temp)) * 5.0, temp=temp)
    found = find_glitches(readings)
    assert len(found) == 1
    glitch = found.iloc[0]
    assert glitch["sensor"] == "temp"
    assert glitch["ts"] == BASE_TS + 57 * 5.0
    assert glitch["value"] == 6.1
    assert glitch["deviation"] < -10


def test_two_glitches_in_a_row_are_both_flagged():
    humidity = np.full(50, 74.2)
    humidity[20:22] = [61.3, 24.2]
    readings = build_readings("a", BASE_TS + np.arange(50) * 5.0, humidity=humidity)
    found = find_glitches(readings)
    assert found["ts"].tolist() == [BASE_TS + 100.0, BASE_TS + 105.0]
    assert set(found["sensor"]) == {"humidity"}


def test_step_change_is_not_flagged():
    temp = np.concatenate([np.full(30, 19.0), np.full(30, 25.0)])
    readings = build_readings("a", BASE_TS + np.arange(60) * 5.0, temp=temp)
    assert find_glitches(readings).empty


def test_quiet_series_has_no_glitch():
    readings = build_readings("a", BASE_TS + np.arange(200) * 5.0, temp=quiet_series(),
                              humidity=quiet_series(seed=1) + 30)
    assert find_glitches(readings).empty


def test_small_deviation_below_floor_is_kept():
    temp = np.full(40, 20.0)
    temp[10] = 20.9
    readings = build_readings("a", BASE_TS + np.arange(40) * 5.0, temp=temp)
    assert find_glitches(readings).empty
    assert len(find_glitches(readings, min_deviation={"temp": 0.5})) == 1


def test_glitch_at_series_start_is_flagged():
    temp = np.full(20, 20.0)
    temp[0] = 3.0
    readings = build_readings("a", BASE_TS + np.arange(20) * 5.0, temp=temp)
    assert find_glitches(readings)["ts"].tolist() == [BASE_TS]


def test_residuals_against_centred_median():
    values = pd.Series([1.0, 1.0, 9.0, 1.0, 1.0])
    assert glitch_residuals(values, window=5).tolist() == [0.0, 0.0, 8.0, 0.0, 0.0]


@pytest.mark.parametrize("window", [1, 4])
def test_invalid_window_raises(window):
    readings = build_readings("a", BASE_TS + np.arange(10) * 5.0)
    with pytest.raises(ValueError, match="odd number"):
        find_glitches(readings, window=window)


def test_count_glitches_per_device():
    temp = np.full(30, 20.0)
    temp[[5, 15]] = [2.0, 3.0]
    humidity = np.full(30, 50.0)
    humidity[[5, 25]] = [10.0, 12.0]
    noisy = build_readings("a", BASE_TS + np.arange(30) * 5.0, temp=temp, humidity=humidity)
    clean = build_readings("b", BASE_TS + np.arange(30) * 5.0)
    readings = combine(noisy, clean)
    counts = count_glitches(find_glitches(readings), ["a", "b"])
    assert counts.loc["a"].to_dict() == {"temp": 2, "humidity": 2, "readings": 3}
    assert counts.loc["b"].to_dict() == {"temp": 0, "humidity": 0, "readings": 0}


def test_compare_with_truth_counts_matches_and_misses():
    found = pd.DataFrame({"device": ["a", "a"], "ts": [1.0, 2.0],
                          "sensor": ["temp", "temp"]})
    truth = pd.DataFrame({"kind": ["glitch", "glitch", "duplicate"], "device": ["a", "a", "a"],
                          "ts": [1.0, 3.0, 2.0], "sensor": ["temp", "humidity", ""]})
    table = compare_with_truth(found, truth)
    temp = table.loc[("a", "temp")]
    assert temp["injected"] == 1
    assert temp["flagged"] == 2
    assert temp["matched"] == 1
    assert temp["precision"] == 0.5
    humidity = table.loc[("a", "humidity")]
    assert humidity["recall"] == 0.0
    assert np.isnan(humidity["precision"])


def test_twin_glitches_all_found(twin_sample):
    readings, truth = twin_sample
    table = compare_with_truth(find_glitches(readings), truth)
    injected = int((truth["kind"] == "glitch").sum())
    assert injected > 0
    assert table["injected"].sum() == injected
    assert table["matched"].sum() == injected
    assert table["flagged"].sum() == injected


def test_truth_file_round_trip_matches_exactly(tmp_path, twin_sample):
    readings, truth = twin_sample
    path = tmp_path / "truth.csv"
    truth.to_csv(path, index=False)
    loaded = load_truth(path)
    assert loaded["ts"].tolist() == truth["ts"].tolist()
    table = compare_with_truth(find_glitches(readings), loaded)
    assert table["matched"].sum() == (truth["kind"] == "glitch").sum()


def test_real_capture_glitches_on_float32_devices_only(mqtt_readings):
    counts = count_glitches(find_glitches(mqtt_readings),
                            sorted(mqtt_readings["device"].unique()))
    assert counts.loc["b8:27:eb:bf:9d:51", "readings"] == 0
    # "A few dozen" isolated glitches per float32 device over the day.
    for device in ("00:0f:00:70:91:0a", "1c:bf:ce:15:ec:4d"):
        assert 20 <= counts.loc[device, "readings"] <= 80
