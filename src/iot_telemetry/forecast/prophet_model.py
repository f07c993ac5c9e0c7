"""Prophet with a daily season on the sub-daily grid.

Prophet takes naive timestamps, so the UTC labels lose their zone on the way
in and get it back on the way out. The daily season is therefore in UTC.
Both interval levels come from one set of posterior predictive samples,
drawn with a fixed seed so that a backtest can be repeated exactly.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from iot_telemetry.forecast.base import (
    NON_SEASONAL,
    SEASONAL,
    Forecast,
    ModelOptions,
    forecast_frame,
    future_index,
    json_number,
)

log = logging.getLogger(__name__)

# A daily season needs two full days to be distinguished from the trend.
SEASONS_REQUIRED = 2
FOURIER_ORDER = 4


def load() -> None:
    """Import Prophet (about 2 s) and quiet cmdstanpy."""
    # prophet.plot logs an ERROR when plotly is missing, at import time; this
    # package never uses Prophet's interactive plots.
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    import prophet  # noqa: F401

    quiet_cmdstanpy()


def quiet_cmdstanpy() -> None:
    """Keep cmdstanpy's per-fit INFO lines ("Chain [1] start processing") out of logs.

    cmdstanpy installs its own INFO handler on first use when the root logger
    has none (as in a notebook kernel), so the level is set after import.
    Its warnings and errors still pass.
    """
    import cmdstanpy

    cmdstanpy.utils.get_logger()
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)


def prophet(
    train: pd.Series, steps: int, season: int | None, options: ModelOptions
) -> Forecast:
    """Fit Prophet by MAP and forecast `steps` grid steps with sampled intervals.

    NaN values are left out of the fit (Prophet accepts missing days).

    Args:
        train: regular UTC series.
        steps: grid steps to forecast after the last training label.
        season: season length in steps, or None to fit trend only.

    Raises:
        ValueError: fewer than two observed values.
    """
    load()
    from prophet import Prophet

    observed = train.dropna()
    if len(observed) < 2:
        raise ValueError("Prophet needs at least two observed values")
    history = pd.DataFrame(
        {"ds": observed.index.tz_convert("UTC").tz_localize(None), "y": observed.to_numpy()}
    )
    model = Prophet(
        daily_seasonality=False,
        weekly_seasonality=False,
        yearly_seasonality=False,
        uncertainty_samples=options.prophet_uncertainty_samples,
    )
    if season:
        period_days = season * train.index.freq / pd.Timedelta(days=1)
        model.add_seasonality(name="daily", period=period_days, fourier_order=FOURIER_ORDER)
    model.fit(history, seed=options.seed)

    index = future_index(train, steps)
    future = pd.DataFrame({"ds": index.tz_localize(None)})
    point = _point_forecast(model, future)
    # NOTE: Prophet's samples carry trend changes and white noise only, not the
    # hours-long wander of the readings, so its intervals are narrow at short
    # leads: on the 8-day twin its 80 % interval held 26-68 % of readings 6 h
    # ahead and 41-86 % 24 h ahead.
    samples = _predictive_samples(model, future, options.seed)
    bounds = {}
    for level in (80, 95):
        tail = (100 - level) / 2
        bounds[f"lower_{level}"] = np.percentile(samples, tail, axis=1)
        bounds[f"upper_{level}"] = np.percentile(samples, 100 - tail, axis=1)
    frame = forecast_frame(index, point, bounds)
    return Forecast(frame, _fitted_params(model), SEASONAL if season else NON_SEASONAL)


def _point_forecast(model, future: pd.DataFrame) -> np.ndarray:
    """Return yhat without the intervals `predict` would sample for nothing."""
    samples = model.uncertainty_samples
    model.uncertainty_samples = 0
    try:
        return model.predict(future)["yhat"].to_numpy()
    finally:
        model.uncertainty_samples = samples


def _predictive_samples(model, future: pd.DataFrame, seed: int) -> np.ndarray:
    """Draw yhat samples (rows x samples) with a seeded global NumPy state.

    Prophet 1.5 samples through `np.random`, so the global state is seeded
    for the draw and restored afterwards.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return model.predictive_samples(future)["yhat"]
    finally:
        np.random.set_state(state)


def _fitted_params(model) -> dict:
    """Return Prophet's MAP parameters in the units of the data."""
    params = {name: np.asarray(value).ravel() for name, value in model.params.items()}
    scale = float(model.y_scale)
    return {
        "growth_rate_per_day": json_number(params["k"][0] * scale / _days(model)),
        "offset": json_number(params["m"][0] * scale + float(model.y_min or 0.0)),
        "sigma_obs": json_number(params["sigma_obs"][0] * scale),
        "n_changepoints": int(len(model.changepoints)),
        "changepoint_deltas": [json_number(v * scale / _days(model)) for v in params["delta"]],
        "seasonality_coefficients": [json_number(v * scale) for v in params["beta"]],
        "seasonalities": sorted(model.seasonalities),
    }


def _days(model) -> float:
    """Span of Prophet's time scaling in days (its t runs from 0 to 1)."""
    return model.t_scale / pd.Timedelta(days=1)
