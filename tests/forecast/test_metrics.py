"""MAE, RMSE, MASE and interval scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.forecast.baselines import seasonal_naive_fitted
from iot_telemetry.forecast.metrics import mase, mase_scale, score


def test_seasonal_naive_mase_is_one_in_sample(make_daily):
    values = make_daily(5, freq="1h", noise=0.3)
    scale, lag = mase_scale(values, 24)
    fitted = seasonal_naive_fitted(values, 24)
    assert lag == 24
    assert mase(values.to_numpy()[24:], fitted.to_numpy()[24:], scale) == pytest.approx(1.0)


def test_seasonal_naive_mase_is_one_with_gaps(make_daily):
    values = make_daily(5, freq="1h", noise=0.3)
    values.iloc[[5, 40, 41, 90]] = np.nan
    scale, _ = mase_scale(values, 24)
    fitted = seasonal_naive_fitted(values, 24)
    assert mase(values.to_numpy(), fitted.to_numpy(), scale) == pytest.approx(1.0)


def test_mase_scale_falls_back_to_lag_one():
    values = pd.Series([1.0, 3.0, 2.0, 6.0])
    scale, lag = mase_scale(values, 24)
    assert lag == 1
    assert scale == pytest.approx((2 + 1 + 4) / 3)


def test_mase_scale_of_one_value_is_nan():
    scale, lag = mase_scale(pd.Series([1.0]), 24)
    assert np.isnan(scale)
    assert lag == 1


def _forecast(index, point, half_80, half_95):
    point = np.asarray(point, dtype="float64")
    return pd.DataFrame(
        {"point": point, "lower_80": point - half_80, "upper_80": point + half_80,
         "lower_95": point - half_95, "upper_95": point + half_95},
        index=index,
    )


def test_score_values():
    index = pd.date_range("2020-07-12", periods=4, freq="1h", tz="UTC")
    actual = pd.Series([1.0, 2.0, 3.0, 10.0], index=index)
    forecast = _forecast(index, [1.0, 3.0, 3.0, 6.0], 1.5, 3.0)
    result = score(actual, forecast, scale=2.0)
    assert result["n_points"] == 4
    assert result["mae"] == pytest.approx((0 + 1 + 0 + 4) / 4)
    assert result["rmse"] == pytest.approx(np.sqrt((0 + 1 + 0 + 16) / 4))
    assert result["mase"] == pytest.approx(1.25 / 2.0)
    assert result["coverage_80"] == pytest.approx(0.75)
    assert result["coverage_95"] == pytest.approx(0.75)
    assert result["width_80"] == pytest.approx(3.0)
    assert result["width_95"] == pytest.approx(6.0)


def test_score_skips_missing_actuals():
    index = pd.date_range("2020-07-12", periods=3, freq="1h", tz="UTC")
    actual = pd.Series([1.0, np.nan, 5.0], index=index)
    result = score(actual, _forecast(index, [2.0, 100.0, 5.0], 0.5, 1.0), scale=1.0)
    assert result["n_points"] == 2
    assert result["mae"] == pytest.approx(0.5)
    assert result["coverage_80"] == pytest.approx(0.5)


def test_score_without_actuals_is_nan():
    index = pd.date_range("2020-07-12", periods=2, freq="1h", tz="UTC")
    actual = pd.Series([np.nan, np.nan], index=index)
    result = score(actual, _forecast(index, [1.0, 1.0], 1, 2), scale=1.0)
    assert result["n_points"] == 0
    assert np.isnan(result["mae"])
    assert np.isnan(result["coverage_80"])


def test_score_zero_scale_gives_nan_mase():
    index = pd.date_range("2020-07-12", periods=2, freq="1h", tz="UTC")
    actual = pd.Series([1.0, 1.0], index=index)
    result = score(actual, _forecast(index, [1.0, 2.0], 1, 2), scale=0.0)
    assert result["mae"] == pytest.approx(0.5)
    assert np.isnan(result["mase"])
