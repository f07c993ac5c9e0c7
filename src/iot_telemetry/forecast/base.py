"""The forecast type every model returns: point forecasts with 80 % and 95 % intervals."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

LEVELS = (80, 95)
FORECAST_COLUMNS = ("point", "lower_80", "upper_80", "lower_95", "upper_95")

SEASONAL = "seasonal"
NON_SEASONAL = "non-seasonal"


@dataclass(frozen=True)
class ModelOptions:
    """Settings shared by the model functions (picklable for joblib workers)."""

    arima_order: tuple[int, int, int] = (1, 0, 1)
    prophet_uncertainty_samples: int = 500
    seed: int = 0


@dataclass
class Forecast:
    """A model's forecast after the end of its training series.

    Attributes:
        frame: FORECAST_COLUMNS on the UTC grid steps after the training
            series' last timestamp; lower_95 <= lower_80 <= point <= upper_80
            <= upper_95 in every row.
        params: fitted parameters, JSON-serialisable.
        variant: SEASONAL, or NON_SEASONAL when the model ran without its
            daily season.
    """

    frame: pd.DataFrame
    params: dict = field(default_factory=dict)
    variant: str = SEASONAL


def future_index(train: pd.Series, steps: int) -> pd.DatetimeIndex:
    """Return the `steps` grid labels after the last label of `train`.

    Raises:
        ValueError: `train` has no fixed `freq` on its index.
    """
    freq = train.index.freq
    if freq is None:
        raise ValueError("training series needs a regular DatetimeIndex with a freq")
    return pd.date_range(train.index[-1] + freq, periods=steps, freq=freq, name="time")


def normal_bounds(point: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
    """Return the 80 % and 95 % bounds of normal errors with std `sigma`."""
    bounds = {}
    for level in LEVELS:
        z = NormalDist().inv_cdf(0.5 + level / 200)
        bounds[f"lower_{level}"] = point - z * sigma
        bounds[f"upper_{level}"] = point + z * sigma
    return bounds


def forecast_frame(
    index: pd.DatetimeIndex, point: np.ndarray, bounds: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Assemble a forecast frame and make its intervals nested around the point.

    Sample-based intervals (Prophet) can put a bound a hair on the wrong side
    of the point forecast or of the other level. Such a bound is moved onto
    the point or the narrower bound, so widths change by the same hair.
    """
    point = np.asarray(point, dtype="float64")
    lower_80 = np.minimum(np.asarray(bounds["lower_80"], dtype="float64"), point)
    upper_80 = np.maximum(np.asarray(bounds["upper_80"], dtype="float64"), point)
    lower_95 = np.minimum(np.asarray(bounds["lower_95"], dtype="float64"), lower_80)
    upper_95 = np.maximum(np.asarray(bounds["upper_95"], dtype="float64"), upper_80)
    return pd.DataFrame(
        {
            "point": point,
            "lower_80": lower_80,
            "upper_80": upper_80,
            "lower_95": lower_95,
            "upper_95": upper_95,
        },
        index=index,
    )


def json_number(value) -> float | None:
    """Convert a numpy scalar to a float for JSON, NaN and inf to None."""
    number = float(value)
    return number if np.isfinite(number) else None
