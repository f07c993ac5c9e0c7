"""Stable/variable labels, the profiles document and the stage metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from characterize_helpers import BASE_TS, build_readings, combine
from iot_telemetry.characterize import behaviour, daynight, profiles
from iot_telemetry.eda.output import write_json


@pytest.fixture
def readings():
    ts = BASE_TS + np.arange(100) * 864.0  # one day, every 14.4 min
    steady = build_readings("steady", ts, temp=20.0 + (np.arange(100) % 5) * 0.1,
                            humidity=np.full(100, 60.0))
    swinging = build_readings("swinging", ts, temp=np.linspace(20.0, 28.0, 100),
                              humidity=np.linspace(70.0, 50.0, 100),
                              light=np.arange(100) < 10)
    return combine(steady, swinging)


def test_variability_quartiles(readings):
    stats = profiles.variability(readings)
    assert stats.loc["steady", "temp_iqr"] == pytest.approx(0.2)
    assert stats.loc["steady", "temp_median"] == pytest.approx(20.2)
    assert stats.loc["swinging", "temp_iqr"] == pytest.approx(4.0)
    assert stats.loc["swinging", "humidity_iqr"] == pytest.approx(10.0)
    assert stats.loc["swinging", "temp_mean"] == pytest.approx(24.0)
    assert list(stats.columns[:4]) == ["temp_mean", "temp_std", "temp_median", "temp_iqr"]


def test_labels_against_thresholds(readings):
    stats = profiles.variability(readings)
    labels = profiles.label_profiles(stats, temp_iqr_c=1.0, humidity_iqr_pct=4.0)
    assert labels.to_dict() == {"steady": "stable", "swinging": "variable"}
    # Either sensor above its threshold makes a device variable, and equal is not above.
    by_humidity = profiles.label_profiles(stats, temp_iqr_c=10.0, humidity_iqr_pct=4.0)
    assert by_humidity["swinging"] == "variable"
    at_threshold = profiles.label_profiles(stats, temp_iqr_c=4.0, humidity_iqr_pct=10.0)
    assert at_threshold["swinging"] == "stable"


def test_single_glitch_keeps_device_stable():
    temp = np.full(200, 19.0)
    temp[50] = 0.3
    readings = build_readings("a", BASE_TS + np.arange(200) * 5.0, temp=temp)
    stats = profiles.variability(readings)
    assert stats.loc["a", "temp_std"] > 1.0
    assert profiles.label_profiles(stats, 1.0, 4.0)["a"] == "stable"


def test_profiles_document_round_trip(readings, tmp_path):
    stats = profiles.variability(readings)
    labels = profiles.label_profiles(stats, 1.0, 4.0)
    flags = behaviour.light_motion(readings)
    periods = daynight.day_night(readings, 6, 18)
    document = profiles.build_profiles(readings, labels, stats, flags, periods,
                                       thresholds={"temp_iqr_c": 1.0, "humidity_iqr_pct": 4.0},
                                       day_hours_utc=(6, 18))
    path = tmp_path / "device_profiles.json"
    write_json(document, str(path))
    loaded = json.loads(path.read_text())
    assert set(loaded["devices"]) == {"steady", "swinging"}
    swinging = loaded["devices"]["swinging"]
    assert swinging["profile"] == "variable"
    assert swinging["readings"] == 100
    assert swinging["temp"]["mean"] == pytest.approx(24.0)
    assert swinging["light"]["rate"] == pytest.approx(0.1)
    assert swinging["light"]["runs"] == 1
    assert isinstance(swinging["light"]["runs"], int)
    assert isinstance(swinging["day"]["readings"], int)
    assert swinging["median_interval_s"] == 864.0
    assert loaded["devices"]["steady"]["motion"]["mean_run_readings"] is None
    assert loaded["day_hours_utc"] == [6, 18]
    assert loaded["period"]["readings"] == 200
    assert loaded["period"]["start"] == "2020-07-12T00:00:00+00:00"
    assert set(swinging["day"]) == {"readings", "temp", "humidity", "co", "light", "motion"}


def test_characterize_metrics_headline(readings):
    stats = profiles.variability(readings)
    labels = profiles.label_profiles(stats, 1.0, 4.0)
    accuracy = pd.DataFrame({"features": ["temp", "co"], "rows": [200, 200],
                             "accuracy": [0.99, 0.7], "accuracy_std": [0.01, 0.05],
                             "baseline": [0.5, 0.5]},
                            index=pd.Index(["all sensors", "co only"], name="feature_set"))
    metrics = profiles.characterize_metrics(labels, accuracy, 5, behaviour.light_motion(readings))
    assert metrics["classifier_accuracy"] == 0.99
    assert metrics["baseline_accuracy"] == 0.5
    assert metrics["stable_devices"] == 1
    assert metrics["variable_devices"] == 1
    assert metrics["profiles"] == {"steady": "stable", "swinging": "variable"}
    assert metrics["accuracy_by_feature_set"] == {"all sensors": 0.99, "co only": 0.7}
    assert metrics["light_motion"]["swinging"]["light_rate"] == pytest.approx(0.1)
