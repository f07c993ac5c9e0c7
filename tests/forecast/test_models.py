"""Every model: horizon and index, no NaN, nested intervals, and model-specific facts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.forecast.base import NON_SEASONAL, SEASONAL, ModelOptions, future_index
from iot_telemetry.forecast.baselines import naive, seasonal_naive
from iot_telemetry.forecast.models import MODELS

SEASON = 24
STEPS = 30  # longer than one season, so seasonal forecasts wrap around


@pytest.fixture(scope="module")
def train(make_daily):
    return make_daily(6, freq="1h")


@pytest.fixture(scope="module")
def forecasts(train):
    """Seasonal and non-seasonal forecasts of every model on the same series."""
    options = ModelOptions(prophet_uncertainty_samples=200)
    out = {}
    for name, spec in MODELS.items():
        out[name, SEASONAL] = spec.fit_predict(train, STEPS, SEASON, options)
        if spec.drops_season or not spec.seasons_required:
            out[name, NON_SEASONAL] = spec.fit_predict(train, STEPS, None, options)
    return out


CASES = [(name, SEASONAL) for name in MODELS] + [
    (name, NON_SEASONAL) for name, spec in MODELS.items() if spec.drops_season
]


@pytest.mark.parametrize(("model", "variant"), CASES)
def test_forecast_horizon_and_index(forecasts, train, model, variant):
    frame = forecasts[model, variant].frame
    assert len(frame) == STEPS
    assert frame.index[0] == train.index[-1] + pd.Timedelta(hours=1)
    pd.testing.assert_index_equal(frame.index, future_index(train, STEPS))
    assert frame.index.freqstr == "h"
    assert str(frame.index.tz) == "UTC"


@pytest.mark.parametrize(("model", "variant"), CASES)
def test_forecast_has_no_nan(forecasts, model, variant):
    frame = forecasts[model, variant].frame
    assert not frame.isna().any().any()


@pytest.mark.parametrize(("model", "variant"), CASES)
def test_intervals_are_nested(forecasts, model, variant):
    frame = forecasts[model, variant].frame
    assert (frame["lower_95"] <= frame["lower_80"]).all()
    assert (frame["lower_80"] <= frame["point"]).all()
    assert (frame["point"] <= frame["upper_80"]).all()
    assert (frame["upper_80"] <= frame["upper_95"]).all()
    # Intervals must have width, or coverage would be meaningless.
    assert (frame["upper_95"] - frame["lower_95"]).min() > 0


@pytest.mark.parametrize(("model", "variant"), CASES)
def test_variant_is_reported(forecasts, model, variant):
    expected = NON_SEASONAL if model == "naive" else variant
    assert forecasts[model, variant].variant == expected


def test_seasonal_models_follow_the_daily_cycle(forecasts, train):
    # The series is a 1.5-amplitude daily sine: a seasonal forecast must swing.
    for name in ("seasonal_naive", "ets", "stl_arima", "prophet"):
        point = forecasts[name, SEASONAL].frame["point"]
        assert point.max() - point.min() > 2.0, name


def test_naive_repeats_last_value(train):
    frame = naive(train, 5, None, ModelOptions()).frame
    assert (frame["point"] == train.iloc[-1]).all()
    widths = (frame["upper_80"] - frame["lower_80"]).to_numpy()
    np.testing.assert_allclose(widths / widths[0], np.sqrt(np.arange(1, 6)))


def test_seasonal_naive_repeats_last_season(train):
    frame = seasonal_naive(train, STEPS, SEASON, ModelOptions()).frame
    last_season = train.iloc[-SEASON:].to_numpy()
    np.testing.assert_array_equal(frame["point"].to_numpy()[:SEASON], last_season)
    np.testing.assert_array_equal(frame["point"].to_numpy()[SEASON:], last_season[: STEPS - SEASON])


def test_seasonal_naive_fills_holes_from_earlier_season(train):
    holed = train.copy()
    holed.iloc[-3] = np.nan
    forecast = seasonal_naive(holed, SEASON, SEASON, ModelOptions())
    assert forecast.frame["point"].iloc[SEASON - 3] == train.iloc[-3 - SEASON]
    assert forecast.params["phases_from_last_value"] == 0


def test_seasonal_naive_needs_more_than_a_season(train):
    with pytest.raises(ValueError, match="more than one season"):
        seasonal_naive(train.iloc[:SEASON], 3, SEASON, ModelOptions())


@pytest.mark.parametrize("model", ["ets", "stl_arima"])
def test_models_without_missing_support_reject_nan(train, model):
    holed = train.copy()
    holed.iloc[10] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        MODELS[model].fit_predict(holed, 3, SEASON, ModelOptions())


# Each model with a season, and without one where the model has such a variant.
CONSTANT_CASES = [(model, True) for model in MODELS] + [
    (model, False)
    for model, spec in MODELS.items()
    if spec.drops_season or not spec.seasons_required
]


@pytest.mark.parametrize(("model", "seasonal"), CONSTANT_CASES)
def test_constant_window_gives_its_value(train, model, seasonal):
    spec = MODELS[model]
    flat = pd.Series(20.5, index=train.index)
    options = ModelOptions(prophet_uncertainty_samples=100)
    forecast = spec.fit_predict(flat, 5, SEASON if seasonal else None, options)
    frame = forecast.frame
    assert len(frame) == 5
    np.testing.assert_allclose(frame["point"], 20.5, atol=1e-6)
    np.testing.assert_allclose(frame["upper_95"] - frame["lower_95"], 0.0, atol=1e-3)


def test_prophet_accepts_nan_and_is_repeatable(train):
    holed = train.copy()
    holed.iloc[20:30] = np.nan
    options = ModelOptions(prophet_uncertainty_samples=200, seed=3)
    first = MODELS["prophet"].fit_predict(holed, 6, SEASON, options)
    second = MODELS["prophet"].fit_predict(holed, 6, SEASON, options)
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert not first.frame.isna().any().any()
    assert first.params["seasonalities"] == ["daily"]


def test_fitted_params_are_reported(forecasts):
    assert 0 <= forecasts["ets", SEASONAL].params["smoothing_level"] <= 1
    assert forecasts["stl_arima", SEASONAL].params["stl_period"] == SEASON
    assert forecasts["stl_arima", NON_SEASONAL].params["stl_period"] is None
    assert forecasts["prophet", SEASONAL].params["sigma_obs"] > 0
    assert forecasts["seasonal_naive", SEASONAL].params["season_steps"] == SEASON
