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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iot_telemetry.errors import InputError
from iot_telemetry.forecast.params import ForecastSection


class Section(BaseModel):
    """A params.yaml section: unknown keys are errors, numbers are coerced."""

    model_config = ConfigDict(extra="forbid")


class Base(Section):
    seed: int = 0
    timezone: str = "UTC"
    resample_rule: str = "5min"


class Data(Section):
    # "synthetic" selects the twin written by the synthesize stage. Anything
    # else is a path to a Kaggle CSV, an MQTT dump or a stream capture folder.
    input: str = "synthetic"


class Devices(Section):
    aliases: dict[str, str] = Field(default_factory=dict)


class Synthesize(Section):
    days: float = Field(8.0, gt=0)
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


SECTION_MODELS: dict[str, type[Section]] = {
    "base": Base,
    "data": Data,
    "devices": Devices,
    "synthesize": Synthesize,
    "ingest": Ingest,
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
