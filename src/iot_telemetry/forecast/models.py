"""The forecasting models by name, with what each needs from its training series."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from iot_telemetry.forecast import arima, baselines, ets, prophet_model
from iot_telemetry.forecast.base import Forecast, ModelOptions

FitPredict = Callable[[pd.Series, int, "int | None", ModelOptions], Forecast]


@dataclass(frozen=True)
class ModelSpec:
    """A model function and the history it needs.

    Attributes:
        fit_predict: (train, steps, season, options) -> Forecast, where
            `season` is the season length in steps or None for the model's
            non-seasonal variant.
        seasons_required: full seasons of history the seasonal variant needs
            (0 for a model without a season).
        drops_season: whether the model can run without its season when the
            history is shorter than `seasons_required` seasons.
        handles_missing: whether `train` may contain NaN; models that cannot
            get only the data after the last unfilled gap.
        load: imports the model's library, called before a fit is timed so
            that fit times leave out the import.
    """

    name: str
    fit_predict: FitPredict
    seasons_required: int
    drops_season: bool
    handles_missing: bool
    load: Callable[[], None] | None = None

    def min_steps(self, season: int, min_train_steps: int, seasonal: bool) -> int:
        """Return the training steps this model needs, with or without its season."""
        if seasonal and self.seasons_required:
            return max(min_train_steps, self.seasons_required * season + 1)
        return min_train_steps


MODELS: dict[str, ModelSpec] = {
    "naive": ModelSpec("naive", baselines.naive, 0, False, True),
    # One season plus one step: the seasonal difference y[t] - y[t - season]
    # needs at least one pair, for the interval's spread.
    "seasonal_naive": ModelSpec("seasonal_naive", baselines.seasonal_naive, 1, False, True),
    "ets": ModelSpec("ets", ets.ets, ets.SEASONS_REQUIRED, True, False, ets.load),
    "stl_arima": ModelSpec(
        "stl_arima", arima.stl_arima, arima.SEASONS_REQUIRED, True, False, arima.load
    ),
    "prophet": ModelSpec(
        "prophet", prophet_model.prophet, prophet_model.SEASONS_REQUIRED, True, True,
        prophet_model.load,
    ),
}

BASELINES = ("naive", "seasonal_naive")
