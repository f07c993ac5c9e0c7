"""Per-reading features: MQ-2 identity, runs, rolling statistics, profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.features.telemetry import (
    FLEET,
    FeatureConfig,
    compute_features,
    fit_profiles,
    isolated_outliers,
    mq2_log_ratio,
    mq2_residuals,
    mq2_value,
    rolling_previous,
    run_seconds,
)


def _series(n: int = 400, device: str = "d1", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = 1_594_598_400.0 + np.cumsum(rng.uniform(3.8, 6.0, n))
    temp = np.round(20.0 + 0.5 * np.sin(np.arange(n) / 60.0) + rng.normal(0, 0.05, n), 1)
    humidity = np.round(60.0 + rng.normal(0, 0.3, n), 1)
    log_ratio = mq2_log_ratio("co", np.full(n, 0.005)) + rng.normal(0, 0.01, n)
    return pd.DataFrame({
        "device": device, "ts": ts, "temp": temp, "humidity": humidity,
        "co": mq2_value("co", log_ratio), "lpg": mq2_value("lpg", log_ratio),
        "smoke": mq2_value("smoke", log_ratio),
    })


def test_mq2_identity_holds_on_real_values():
    # A real capture message: lpg and smoke follow from co.
    lpg_resid, smoke_resid = mq2_residuals([0.011737819751470924], [0.014275626163619557],
                                           [0.039739889499066566])
    assert abs(lpg_resid[0]) < 1e-12
    assert abs(smoke_resid[0]) < 1e-12


def test_mq2_residual_measures_relative_error():
    co = np.array([0.005])
    lpg = mq2_value("lpg", mq2_log_ratio("co", co)) * 1.10
    lpg_resid, _ = mq2_residuals(co, lpg, mq2_value("smoke", mq2_log_ratio("co", co)))
    assert lpg_resid[0] == pytest.approx(np.log(1.10))


def test_run_seconds_counts_time_of_equal_values():
    ts = np.array([0.0, 5.0, 10.0, 15.0, 20.0])
    values = np.array([1.0, 1.0, 2.0, 2.0, 2.0])
    np.testing.assert_allclose(run_seconds(values, ts), [0.0, 5.0, 0.0, 5.0, 10.0])


def test_run_seconds_all_columns_together():
    ts = np.array([0.0, 5.0, 10.0])
    values = np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 2.0]])
    np.testing.assert_allclose(run_seconds(values, ts), [0.0, 0.0, 5.0])


def test_rolling_previous_excludes_current_reading():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 5.0])
    median, mad = rolling_previous(values, window=3, min_periods=2)
    assert np.isnan(median[0])
    assert np.isnan(median[1])
    assert median[2] == 1.5
    assert median[4] == 3.0
    assert median[5] == 4.0
    assert mad[5] == 1.0


@pytest.mark.parametrize(("n", "window", "min_periods"), [(80, 30, 5), (12, 30, 5), (40, 7, 0), (9, 4, 4)])
def test_rolling_previous_matches_numpy_median(n, window, min_periods):
    rng = np.random.default_rng(n)
    # 0.1-resolution values repeat, as real DHT readings do.
    values = np.round(rng.normal(20.0, 0.3, n), 1)
    median, mad = rolling_previous(values, window, min_periods)
    for i in range(n):
        part = values[max(0, i - window):i]
        if i < max(min_periods, 1):
            assert np.isnan(median[i]), i
            assert np.isnan(mad[i]), i
            continue
        # Bit for bit, so the vectorized form cannot change any score.
        assert median[i] == np.median(part), i
        assert mad[i] == np.median(np.abs(part - np.median(part))), i


def test_features_are_causal():
    frame = _series()
    full = compute_features(frame, fit_profiles(frame))
    changed = frame.copy()
    changed.loc[300:, "temp"] += 5.0
    partial = compute_features(changed, fit_profiles(frame))
    pd.testing.assert_frame_equal(full.iloc[:300], partial.iloc[:300])


def test_spike_scores_high_and_glitch_return_low():
    frame = _series()
    profiles = fit_profiles(frame)
    frame.loc[200, "temp"] += 3.0
    features = compute_features(frame, profiles)
    assert features.loc[200, "temp_jump"] > 4.0
    # The reading after the spike is back to normal: far from its
    # predecessor, but not from the recent median.
    assert abs(features.loc[201, "temp_jump"]) < 1.0
    assert abs(features.loc[201, "temp_delta"]) > 4.0


def test_profiles_ignore_glitches_for_scale():
    frame = _series()
    clean_scale = fit_profiles(frame)["d1"].scale["temp"]
    glitchy = frame.copy()
    glitchy.loc[[50, 150, 250], "temp"] = 3.5
    assert isolated_outliers(glitchy).sum() == 3
    assert fit_profiles(glitchy)["d1"].scale["temp"] == pytest.approx(clean_scale, rel=0.05)


def test_unknown_device_uses_fleet_profile():
    frame = pd.concat([_series(device="d1"), _series(device="d2", seed=1)], ignore_index=True)
    profiles = fit_profiles(frame)
    assert set(profiles) == {"d1", "d2", FLEET}
    other = _series(device="new", seed=2)
    features = compute_features(other, profiles)
    assert (features["profile"] == FLEET).all()
    assert profiles[FLEET].max_run_seconds["temp"] == max(
        profiles["d1"].max_run_seconds["temp"], profiles["d2"].max_run_seconds["temp"]
    )


def test_unsorted_readings_rejected():
    frame = _series().iloc[::-1]
    with pytest.raises(ValueError, match="sorted by device then ts"):
        compute_features(frame, fit_profiles(_series()))


def test_short_history_gives_nan_not_error():
    frame = _series(n=3)
    features = compute_features(frame, fit_profiles(_series()), FeatureConfig(min_periods=5))
    assert features["temp_z"].isna().all()
    assert features["temp_level"].notna().all()
