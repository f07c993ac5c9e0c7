"""The drift feature, the daily profile it is measured against, and the drift detector."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.anomaly import stage
from iot_telemetry.anomaly.detectors import Drift, build_detector
from iot_telemetry.anomaly.model import AnomalyModel
from iot_telemetry.anomaly.params import load_anomaly_params
from iot_telemetry.features.telemetry import (
    FeatureConfig,
    compute_features,
    drift_feature,
    fit_profiles,
    mq2_log_ratio,
    mq2_value,
)

START = 1_594_512_000.0  # 2020-07-12 00:00 UTC
STEP_S = 10.0


def _level(hours: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = START + np.arange(0.0, 3600.0 * hours, STEP_S)
    return ts, rng.normal(0.0, 0.3, len(ts))


def _readings(days: float, daily_amplitude: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """One device at 10 s intervals with a daily temp and humidity cycle."""
    rng = np.random.default_rng(seed)
    ts = START + np.arange(0.0, 86400.0 * days, STEP_S)
    cycle = np.sin(2 * np.pi * ts / 86400.0)
    log_ratio = mq2_log_ratio("co", np.full(len(ts), 0.005)) + rng.normal(0, 0.01, len(ts))
    return pd.DataFrame({
        "device": "d1",
        "ts": ts,
        "temp": np.round(22.0 + daily_amplitude * cycle + rng.normal(0, 0.1, len(ts)), 1),
        "humidity": np.round(55.0 - 3 * daily_amplitude * cycle + rng.normal(0, 0.3, len(ts)), 1),
        "co": mq2_value("co", log_ratio),
        "lpg": mq2_value("lpg", log_ratio),
        "smoke": mq2_value("smoke", log_ratio),
    })


def test_drift_feature_measures_ramp_steps():
    ts, level = _level(16.0)
    hours = (ts - ts[0]) / 3600.0
    ramp = np.clip(0.5 * (hours - 8.0), 0.0, None)
    feature = drift_feature(level + ramp, ts, FeatureConfig())
    # Once the oldest step's 30-minute mean lies inside the ramp, every
    # 2-hour step moved the level by 1.0.
    late = np.searchsorted(hours, 14.5)
    assert feature[late] == pytest.approx(1.0, abs=0.1)
    # Before the ramp (and 6.5 h of history) there is no sustained change.
    before = (hours >= 6.5) & (hours < 8.0)
    assert np.all(np.isfinite(feature[before]))
    assert np.abs(feature[before]).max() < 0.2


def test_drift_feature_ignores_single_step():
    ts, level = _level(12.0)
    hours = (ts - ts[0]) / 3600.0
    stepped = level + np.where(hours > 8.0, 3.0, 0.0)
    feature = drift_feature(stepped, ts, FeatureConfig())
    assert np.nanmax(np.abs(feature)) < 0.2


def test_drift_feature_nan_without_history():
    ts, level = _level(8.0)
    feature = drift_feature(level, ts, FeatureConfig())
    history = FeatureConfig().drift_history_seconds
    assert np.isnan(feature[ts - ts[0] < history]).all()
    assert np.isfinite(feature[ts - ts[0] >= history]).all()


def test_drift_feature_empty_input():
    assert len(drift_feature(np.zeros(0), np.zeros(0), FeatureConfig())) == 0


def test_daily_profile_needs_two_days():
    short = fit_profiles(_readings(days=1.5))
    long = fit_profiles(_readings(days=3.0))
    assert short["d1"].daily == {}
    assert set(long["d1"].daily) == {"temp", "humidity", "gas"}
    assert len(long["d1"].daily["temp"]) == 5


def test_daily_profile_removes_daily_cycle():
    readings = _readings(days=3.0, daily_amplitude=2.0)
    with_profile = fit_profiles(readings)
    without = {key: profile for key, profile in fit_profiles(readings).items()}
    without["d1"].daily = {}
    drift = compute_features(readings, with_profile)["temp_drift"].abs().max()
    raw = compute_features(readings, without)["temp_drift"].abs().max()
    # A 2 degC daily cycle moves the raw level steadily for hours.
    assert raw > 0.5
    assert drift < 0.2


def test_drift_detector_flags_injected_ramp():
    readings = _readings(days=4.0)
    train = readings[readings["ts"] < START + 3 * 86400.0].reset_index(drop=True)
    test = readings[readings["ts"] >= START + 3 * 86400.0].reset_index(drop=True)
    model = AnomalyModel("drift").fit(train)
    hours = (test["ts"] - test["ts"].iloc[0]) / 3600.0
    scale = model.profiles["d1"].scale["temp"]
    # 0.75 sigma/h: every 2-hour step (1.5 sigma) clears the default threshold.
    ramp = np.clip(0.75 * (hours - 8.0), 0.0, 4.5) * (hours <= 15.0)
    drifted = test.assign(temp=np.round(test["temp"] + ramp * scale, 1))
    for frame in (test, drifted):
        frame["light"] = False
        frame["motion"] = False

    clean = model.score(test)
    scored = model.score(drifted)
    assert not clean["flag"].any()
    in_ramp = (hours > 8.0) & (hours <= 15.0)
    assert scored.loc[in_ramp, "flag"].any()
    assert not scored.loc[~in_ramp & (hours < 8.0), "flag"].any()
    reasons = set(scored.loc[scored["flag"], "reasons"])
    assert reasons == {"drift:temp"}


def test_drift_detector_history_sets_context():
    config = FeatureConfig()
    assert Drift().history_seconds(config) == config.drift_history_seconds
    combined = build_detector("mq2+drift")
    assert combined.history_seconds(config) == config.drift_history_seconds
    assert build_detector("mq2").history_seconds(config) == 0.0


def test_selection_on_8_day_twin_keeps_drift():
    """The pipeline's twin (8 days, seed 0) with and without the drift part."""
    candidates = ["mq2+stuck+robust_jump", "mq2+stuck+robust_jump+drift"]
    params = load_anomaly_params(sample_days=8.0, seed=0, real_path="", candidates_dir="",
                                 candidates=candidates)
    study = stage.run_study(params, "synthetic")
    selected = study.results["input"][study.selected]
    drift = selected["kinds"]["drift"]["all"]

    assert study.selected == "mq2+stuck+robust_jump+drift"
    assert selected["false_alarms_per_day"] <= 1.0
    assert drift["events"] == 12
    assert drift["found"] >= 3
    assert drift["precision"] >= 0.9
    for kind in ("spike", "glitch", "stuck", "mq2_break"):
        assert selected["f1"][kind] >= 0.9, kind
