"""Typed schema of params.yaml.

PyYAML reads `1e-2` as a string and DVC's `-S` overrides arrive as YAML
scalars, so every section is validated here before a stage uses it. A
section that has no model below is passed through as a plain mapping, and
the notebook runner still checks its keys against the notebook's parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from iot_telemetry.data.twin_profiles import MAX_DAYS
from iot_telemetry.errors import InputError
from iot_telemetry.forecast.params import ForecastSection


class Section(BaseModel):
    """A params.yaml section: unknown keys are errors, numbers are coerced."""

    model_config = ConfigDict(extra="forbid")


class Base(Section):
    seed: int = 0
    timezone: str = "UTC"
    resample_rule: str = "5min"

    @field_validator("timezone")
    @classmethod
    def _utc_only(cls, value: str) -> str:
        if value != "UTC":
            raise ValueError(
                f"base.timezone is {value!r}, but every stage stores and models in UTC;"
                " set it to UTC, and set ingest.source_timezone for naive input times"
            )
        return value

    @field_validator("resample_rule")
    @classmethod
    def _fixed_frequency(cls, value: str) -> str:
        from pandas.tseries.frequencies import to_offset
        from pandas.tseries.offsets import Tick

        try:
            offset = to_offset(value)
        except ValueError:
            offset = None
        if not isinstance(offset, Tick) or offset.nanos <= 0:
            raise ValueError(
                f"resample_rule {value!r} is not a fixed pandas frequency such as 5min or 1h"
            )
        return value


class Data(Section):
    # "synthetic" selects the twin written by the synthesize stage. Anything
    # else is a path to a Kaggle CSV, an MQTT dump or a stream capture folder.
    input: str = "synthetic"


class Devices(Section):
    aliases: dict[str, str] = Field(default_factory=dict)


class Synthesize(Section):
    days: float = Field(8.0, gt=0, le=MAX_DAYS)
    seed: int = 0
    start: str = "2020-07-12T00:00:00Z"
    out: str = "data/raw/synthetic/iot_telemetry_data.csv"


class Ingest(Section):
    # Zone of naive ISO-8601 times in the input; None reads them as UTC.
    source_timezone: str | None = None
    out: str = "data/interim"

    @field_validator("source_timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        from iot_telemetry.data.validate import check_timezone

        check_timezone(value)
        return value


class Characterize(Section):
    readings_path: str = "data/interim/readings.parquet"
    profiles_path: str = "data/processed/device_profiles.json"
    cv_folds: int = Field(5, ge=2)
    cv_max_rows: int = Field(50000, ge=100)
    variable_temp_iqr_c: float = Field(1.0, gt=0)
    variable_humidity_iqr_pct: float = Field(4.0, gt=0)
    day_start_hour_utc: int = Field(6, ge=0, le=23)
    day_end_hour_utc: int = Field(18, ge=1, le=24)

    @model_validator(mode="after")
    def _day_in_order(self) -> "Characterize":
        if self.day_start_hour_utc >= self.day_end_hour_utc:
            raise ValueError(
                f"day_start_hour_utc ({self.day_start_hour_utc}) must be before"
                f" day_end_hour_utc ({self.day_end_hour_utc})"
            )
        return self


SECTION_MODELS: dict[str, type[Section]] = {
    "base": Base,
    "data": Data,
    "devices": Devices,
    "synthesize": Synthesize,
    "ingest": Ingest,
    "characterize": Characterize,
    "forecast": ForecastSection,
}


def load_params(path: Path) -> dict[str, Any]:
    """Load params.yaml and validate each section that has a model.

    Returns a plain dict of sections, with validated sections as dicts of
    typed values.

    Raises:
        InputError: the file is missing, is not a mapping, or a section fails
            validation (the message names the key and the expected type).
    """
    if not path.is_file():
        raise InputError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"params file {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    params: dict[str, Any] = {}
    for name, section in raw.items():
        model = SECTION_MODELS.get(name)
        if model is None:
            params[name] = section
            continue
        try:
            params[name] = model.model_validate(section or {}).model_dump()
        except ValidationError as error:
            raise InputError(f"{path}: invalid section {name!r}:\n{error}") from error
    for name, model in SECTION_MODELS.items():
        params.setdefault(name, model().model_dump())
    return params
