"""Typed settings of the `anomaly` and `select` sections of params.yaml."""

from __future__ import annotations

import inspect
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iot_telemetry.anomaly.detectors import DETECTORS
from iot_telemetry.anomaly.inject import FAULT_KINDS, FaultSizes
from iot_telemetry.errors import InputError
from iot_telemetry.features.telemetry import FeatureConfig

# Candidate summaries that `select` can rank by; higher is better for all.
SELECTION_METRICS = ("f1_min", "f1_mean", "pr_auc_mean")

DEFAULT_CANDIDATES = [
    "robust_z",
    "robust_jump",
    "ewma",
    "isolation_forest",
    "lof",
    "mq2",
    "stuck",
    "level",
    "trend",
    "drift",
    "mq2+stuck+robust_z",
    "mq2+stuck+robust_jump",
    "mq2+stuck+robust_jump+trend",
    "mq2+stuck+robust_jump+drift",
    "mq2+stuck+isolation_forest",
    "mq2+stuck+lof",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureSettings(_Strict):
    """Window settings of the shared features (FeatureConfig)."""

    window: int = Field(30, ge=3)
    min_periods: int = Field(5, ge=1)
    mad_floor: float = Field(1.0, gt=0)
    ewma_halflife: float = Field(10.0, gt=0)
    trend_hours: float = Field(3.0, gt=0)
    drift_level_minutes: float = Field(30.0, gt=0)
    drift_step_hours: float = Field(2.0, gt=0)
    drift_steps: int = Field(3, ge=1)
    daily_profile_days: float = Field(2.0, gt=0)

    def config(self) -> FeatureConfig:
        return FeatureConfig(**self.model_dump())


class FaultSettings(_Strict):
    """Fault sizes of the benchmark (FaultSizes)."""

    spike_sigma: float = Field(6.0, gt=0)
    glitch_temp_c: tuple[float, float] = (0.0, 7.0)
    glitch_humidity: tuple[float, float] = (8.0, 25.0)
    stuck_minutes: tuple[float, float] = (10.0, 30.0)
    stuck_over_longest_run: float = Field(2.5, ge=1.0)
    drift_sigma_per_hour: float = Field(0.5, gt=0)
    drift_max_sigma: float = Field(3.0, gt=0)
    drift_hold_hours: float = Field(1.0, ge=0)
    drift_recovery_hours: float = Field(3.0, ge=0)
    mq2_break_fraction: tuple[float, float] = (0.05, 0.20)
    mq2_break_minutes: tuple[float, float] = (5.0, 30.0)
    events_per_day: dict[str, float] = Field(
        default_factory=lambda: dict(FaultSizes().events_per_day)
    )
    guard_minutes: float = Field(15.0, ge=0)

    @field_validator("events_per_day")
    @classmethod
    def _every_kind(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(FAULT_KINDS))
        missing = sorted(set(FAULT_KINDS) - set(value))
        if unknown or missing:
            raise ValueError(
                f"events_per_day needs exactly the kinds {', '.join(FAULT_KINDS)}; "
                f"unknown {unknown}, missing {missing}"
            )
        negative = {kind: rate for kind, rate in value.items() if rate < 0}
        if negative:
            raise ValueError(f"events_per_day must be 0 or more per day, got {negative}")
        return value

    def sizes(self) -> FaultSizes:
        return FaultSizes(**self.model_dump())


class AnomalyParams(_Strict):
    """Settings of the anomaly stage: inputs, benchmark, candidates, selection.

    `readings_path` "" means: use a small in-memory twin of `sample_days`
    (the notebook's fast default). `real_path` "" or a missing file skips the
    real-capture benchmark and check; `real_hours` > 0 keeps only the first
    hours of it. `candidates_dir` "" fits and evaluates without saving.
    """

    readings_path: str = ""
    truth_path: str = ""
    sample_days: float = Field(1.0, gt=0)
    real_path: str = ""
    real_hours: float = Field(0.0, ge=0)
    train_fraction: float = Field(0.5, gt=0, lt=1)
    candidates: list[str] = Field(default_factory=lambda: list(DEFAULT_CANDIDATES))
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    device_stuck_margin: float = Field(1.5, ge=1.0)
    device_stuck_min_seconds: float = Field(120.0, gt=0)
    selection_metric: str = "f1_mean"
    max_false_alarms_per_day: float | None = Field(1.0, ge=0)
    candidates_dir: str = "models/anomaly"
    seed: int = 0

    @field_validator("candidates")
    @classmethod
    def _known_candidates(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("candidates must name at least one detector")
        for spec in value:
            unknown = [part for part in spec.split("+") if part.strip() not in DETECTORS]
            if unknown:
                raise ValueError(
                    f"candidate {spec!r} has unknown detector(s) {unknown}; known: "
                    f"{', '.join(DETECTORS)}"
                )
        return value

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - set(DETECTORS))
        if unknown:
            raise ValueError(f"detectors has unknown name(s) {unknown}; known: {', '.join(DETECTORS)}")
        for name, settings in value.items():
            _check_detector_settings(name, settings)
        return value

    @field_validator("selection_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in SELECTION_METRICS:
            raise ValueError(f"selection_metric must be one of {', '.join(SELECTION_METRICS)}")
        return value

    def model_options(self) -> dict[str, float]:
        """AnomalyModel keyword arguments besides the detector."""
        return {
            "device_stuck_margin": self.device_stuck_margin,
            "device_stuck_min_seconds": self.device_stuck_min_seconds,
        }


def _init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Return the keyword arguments of `cls`, following **kwargs to base classes."""
    parameters: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__)
        forwards = False
        for key, parameter in signature.parameters.items():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                forwards = True
            elif key != "self":
                parameters.setdefault(key, parameter)
        if not forwards:
            break
    return parameters


def _check_detector_settings(name: str, settings: dict[str, Any]) -> None:
    """Raise ValueError unless `settings` are keyword arguments of the detector.

    Values must have the type of the argument's default, so a quoted number
    fails here instead of inside the stage's notebook.
    """
    parameters = _init_parameters(DETECTORS[name])
    unknown = sorted(set(settings) - set(parameters))
    if unknown:
        raise ValueError(
            f"detectors.{name} has unknown setting(s) {unknown}; known: {', '.join(parameters)}"
        )
    for key, setting in settings.items():
        default = parameters[key].default
        if default is inspect.Parameter.empty or default is None:
            continue
        if not _same_kind(setting, default):
            expected = "an integer" if isinstance(default, int) else "a number"
            raise ValueError(f"detectors.{name}.{key} is {setting!r}, expected {expected}")


def _same_kind(value: Any, default: Any) -> bool:
    """Tell whether `value` fits where `default` is: integer, number or same type."""
    if isinstance(value, bool) or isinstance(default, bool):
        return type(value) is type(default)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


class SelectParams(_Strict):
    """Settings of the select stage.

    The metric is `anomaly.selection_metric` and the candidates come from
    `anomaly.candidates_dir`, so the notebook's real-data check and the
    selected model always agree.
    """

    metrics_path: str = "reports/metrics/anomaly.json"
    out: str = "models/selected"


def _validate(model: type[BaseModel], values: dict | None, section: str):
    try:
        return model.model_validate(values or {})
    except ValidationError as error:
        raise InputError(f"invalid {section} parameters:\n{error}") from error


def load_anomaly_params(values: dict | None = None, **overrides) -> AnomalyParams:
    """Validate the anomaly settings from a params.yaml section and overrides.

    Raises:
        InputError: an unknown key, or a value of the wrong type or range.
    """
    return _validate(AnomalyParams, {**(values or {}), **overrides}, "anomaly")


def load_select_params(values: dict | None = None) -> SelectParams:
    """Validate the select settings.

    Raises:
        InputError: an unknown key or a value of the wrong type.
    """
    return _validate(SelectParams, values, "select")
