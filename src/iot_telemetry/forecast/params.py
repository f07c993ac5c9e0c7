"""Typed settings of the forecasting stage (the `forecast` section of params.yaml)."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iot_telemetry.data.columns import FLOAT_SENSORS
from iot_telemetry.errors import InputError

MODEL_NAMES = ("naive", "seasonal_naive", "ets", "stl_arima", "prophet")
SELECTION_METRICS = ("mase", "mae", "rmse")


class ForecastSection(BaseModel):
    """The `forecast` section of params.yaml: paths, series, models and backtest.

    An empty path means "none": no input file (use a sample) or no output.
    """

    model_config = ConfigDict(extra="forbid")

    readings_path: str = ""
    backtest_path: str = ""
    selection_path: str = ""
    lead_errors_path: str = ""
    targets: list[str] = Field(default_factory=lambda: ["temp", "humidity"])
    interpolate_limit_minutes: float = Field(15.0, ge=0)
    season_hours: float = Field(24.0, gt=0)
    horizons_hours: list[float] = Field(default_factory=lambda: [6.0, 24.0])
    # A rolling-origin backtest needs several folds to say anything; 3 is the least.
    n_cutoffs: int = Field(3, ge=3)
    # Each fold is calibrated on the folds cut within this many longest horizons
    # before it (forecast/calibrate.py), and 0 keeps the models' own intervals.
    calibration_folds: int = Field(2, ge=0)
    # "shortest" starts a fold every shortest horizon, and each horizon is scored
    # on its own non-overlapping windows. "longest" spaces folds one longest horizon apart.
    fold_spacing: Literal["shortest", "longest"] = "longest"
    min_train_hours: float = Field(6.0, gt=0)
    min_horizon_hours: float = Field(1.0, gt=0)
    models: list[Literal[MODEL_NAMES]] = Field(default_factory=lambda: list(MODEL_NAMES))
    arima_order: tuple[int, int, int] = (1, 0, 1)
    prophet_uncertainty_samples: int = Field(500, ge=100)
    selection_metric: Literal[SELECTION_METRICS] = "mase"
    n_jobs: int = Field(2, ge=1)

    @field_validator("targets")
    @classmethod
    def _continuous_targets(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FLOAT_SENSORS]
        if unknown or not value:
            raise ValueError(
                f"targets must be a non-empty list of {', '.join(FLOAT_SENSORS)}; "
                f"got {value!r}"
            )
        return value

    @field_validator("horizons_hours")
    @classmethod
    def _positive_horizons(cls, value: list[float]) -> list[float]:
        if not value or any(hours <= 0 for hours in value):
            raise ValueError(f"horizons_hours must be positive numbers; got {value!r}")
        return sorted(set(value))

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"models must be a non-empty list without repeats; got {value!r}")
        return value


class ForecastParams(ForecastSection):
    """Settings of one forecast run: the section plus `base` keys it uses.

    `resample_rule` and `seed` come from params.yaml's `base` section.
    """

    resample_rule: str = "5min"
    seed: int = 0

    @field_validator("resample_rule")
    @classmethod
    def _fixed_rule(cls, value: str) -> str:
        step_of(value)
        return value

    @property
    def step(self) -> pd.Timedelta:
        """Grid step of the regular series."""
        return step_of(self.resample_rule)

    def hours_to_steps(self, hours: float) -> int:
        """Convert a duration in hours to whole grid steps, rounding down."""
        return int(pd.Timedelta(hours=hours) // self.step)

    @property
    def season_steps(self) -> int:
        """Grid steps in one daily season (288 for a 5 min grid)."""
        return self.hours_to_steps(self.season_hours)

    @property
    def interpolate_limit_steps(self) -> int:
        """Maximum run of missing grid steps that is interpolated."""
        return int(pd.Timedelta(minutes=self.interpolate_limit_minutes) // self.step)


def step_of(rule: str) -> pd.Timedelta:
    """Return the fixed duration of a pandas frequency rule such as "5min".

    Raises:
        ValueError: the rule is not a fixed frequency (for example "MS").
    """
    try:
        offset = pd.tseries.frequencies.to_offset(rule)
        step = pd.Timedelta(offset)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"resample rule {rule!r} is not a fixed frequency such as '5min' or '1h'"
        ) from error
    if step <= pd.Timedelta(0):
        raise ValueError(f"resample rule {rule!r} must be a positive duration")
    return step


def load_forecast_params(values: dict | None = None, **overrides) -> ForecastParams:
    """Validate the forecast settings from a params.yaml section and overrides.

    Raises:
        InputError: an unknown key, or a value of the wrong type or range.
    """
    merged = {**(values or {}), **overrides}
    try:
        return ForecastParams.model_validate(merged)
    except ValidationError as error:
        raise InputError(f"invalid forecast parameters:\n{error}") from error
