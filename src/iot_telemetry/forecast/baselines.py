"""Naive and seasonal naive forecasts, the baselines every model is compared with.

Their intervals assume normal errors with the spread of the training
series' own one-step (naive) or one-season (seasonal naive) differences,
widened with the horizon as for a random walk (Hyndman and Athanasopoulos,
Forecasting: Principles and Practice, 3rd ed., section 5.5).
"""

from __future__ import annotations

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
    normal_bounds,
)


def naive(
    train: pd.Series, steps: int, season: int | None, options: ModelOptions
) -> Forecast:
    """Repeat the last observed value; the interval grows with sqrt(lead).

    NaN inside `train` is skipped: the last non-NaN value is repeated and
    differences are taken only between adjacent observed steps.

    Raises:
        ValueError: fewer than two adjacent observed values.
    """
    values = train.to_numpy(dtype="float64")
    observed = values[~np.isnan(values)]
    differences = np.diff(values)
    differences = differences[~np.isnan(differences)]
    if len(observed) == 0 or len(differences) == 0:
        raise ValueError("naive forecast needs at least two adjacent observed values")

    last = observed[-1]
    sigma = float(np.sqrt(np.mean(differences**2)))
    leads = np.arange(1, steps + 1)
    point = np.full(steps, last)
    frame = forecast_frame(
        future_index(train, steps), point, normal_bounds(point, sigma * np.sqrt(leads))
    )
    return Forecast(frame, {"last_value": json_number(last), "sigma": sigma}, NON_SEASONAL)


def seasonal_naive(
    train: pd.Series, steps: int, season: int | None, options: ModelOptions
) -> Forecast:
    """Repeat the last full season: the value at t is the one observed at t - season.

    A missing value in the last season is taken from the same phase of an
    earlier season. A phase missing in every season gets the last observed
    value, and `params["phases_from_last_value"]` counts such phases.

    Raises:
        ValueError: `season` is None or the series is not longer than one season.
    """
    if not season:
        raise ValueError("seasonal naive needs a season length")
    values = train.to_numpy(dtype="float64")
    if len(values) <= season:
        raise ValueError(
            f"seasonal naive needs more than one season ({season} steps) of history, "
            f"got {len(values)}"
        )

    last_season = _last_season(values, season)
    n_from_last = int(np.isnan(last_season).sum())
    if n_from_last:
        observed = values[~np.isnan(values)]
        last_season = np.where(np.isnan(last_season), observed[-1], last_season)
    sigma = seasonal_sigma(values, season)

    leads = np.arange(1, steps + 1)
    point = last_season[(leads - 1) % season]
    seasons_ahead = (leads - 1) // season + 1
    frame = forecast_frame(
        future_index(train, steps), point, normal_bounds(point, sigma * np.sqrt(seasons_ahead))
    )
    params = {
        "season_steps": int(season),
        "sigma": sigma,
        "phases_from_last_value": n_from_last,
    }
    return Forecast(frame, params, SEASONAL)


def _last_season(values: np.ndarray, season: int) -> np.ndarray:
    """Return the last `season` values, holes filled from earlier seasons."""
    result = values[-season:].copy()
    end = len(values) - season
    while np.isnan(result).any() and end > 0:
        start = max(0, end - season)
        earlier = np.full(season, np.nan)
        earlier[season - (end - start) :] = values[start:end]
        result = np.where(np.isnan(result), earlier, result)
        end = start
    return result


def seasonal_sigma(values: np.ndarray, season: int) -> float:
    """Return the RMS of the observed one-season differences y[t] - y[t - season]."""
    differences = values[season:] - values[:-season]
    differences = differences[~np.isnan(differences)]
    if len(differences) == 0:
        raise ValueError(f"no pair of observed values one season ({season} steps) apart")
    return float(np.sqrt(np.mean(differences**2)))


def seasonal_naive_fitted(values: pd.Series, season: int) -> pd.Series:
    """Return the in-sample seasonal naive fit: y[t - season] at each t.

    The first `season` values are NaN. MASE divides by the MAE of this fit.
    """
    return values.shift(season)
