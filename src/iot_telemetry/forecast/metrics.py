"""Point and interval accuracy of one forecast against the readings that followed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iot_telemetry.forecast.base import LEVELS


def mase_scale(train: pd.Series, season: int) -> tuple[float, int]:
    """Return the in-sample MAE of the seasonal naive fit and the lag it used.

    The scale is mean |y[t] - y[t - season]| over observed pairs of the
    training series (Hyndman and Koehler, 2006). With no such pair (less than
    one season of history) the lag falls back to 1, the naive fit, and the
    caller reports which lag was used.

    Returns:
        (scale, lag); scale is NaN when not even one adjacent pair exists.
    """
    values = train.to_numpy(dtype="float64")
    for lag in (season, 1):
        if len(values) <= lag:
            continue
        differences = np.abs(values[lag:] - values[:-lag])
        differences = differences[~np.isnan(differences)]
        if len(differences):
            return float(differences.mean()), lag
    return float("nan"), 1


def score(actual: pd.Series, forecast: pd.DataFrame, scale: float) -> dict[str, float]:
    """Score a forecast on the grid points where a reading exists.

    Args:
        actual: observed values on (a superset of) the forecast's index; NaN
            points are left out of every metric.
        forecast: a Forecast frame (point and interval columns).
        scale: the MASE denominator from `mase_scale`.

    Returns:
        n_points, mae, rmse, mase (NaN when scale is 0 or NaN), and for each
        level coverage_L (share of readings inside the interval) and
        width_L (mean upper - lower). All are NaN when no point has a reading.
    """
    observed = actual.reindex(forecast.index)
    mask = observed.notna().to_numpy()
    y = observed.to_numpy(dtype="float64")[mask]
    result: dict[str, float] = {"n_points": int(mask.sum())}
    if not mask.any():
        for name in ("mae", "rmse", "mase", *_interval_names()):
            result[name] = float("nan")
        return result

    errors = y - forecast["point"].to_numpy()[mask]
    result["mae"] = float(np.mean(np.abs(errors)))
    result["rmse"] = float(np.sqrt(np.mean(errors**2)))
    usable = np.isfinite(scale) and scale > 0
    result["mase"] = result["mae"] / scale if usable else float("nan")
    for level in LEVELS:
        lower = forecast[f"lower_{level}"].to_numpy()[mask]
        upper = forecast[f"upper_{level}"].to_numpy()[mask]
        result[f"coverage_{level}"] = float(np.mean((y >= lower) & (y <= upper)))
        result[f"width_{level}"] = float(np.mean(upper - lower))
    return result


def _interval_names() -> list[str]:
    return [f"{kind}_{level}" for level in LEVELS for kind in ("coverage", "width")]


def mase(actual: np.ndarray, predicted: np.ndarray, scale: float) -> float:
    """Return mean |actual - predicted| / scale over pairs without NaN."""
    errors = np.abs(np.asarray(actual, dtype="float64") - np.asarray(predicted, dtype="float64"))
    errors = errors[~np.isnan(errors)]
    return float(errors.mean() / scale)
