"""Typed `package` and `deploy` sections of params.yaml.

The `deploy` target is `local` unless params.yaml sets `sagemaker`, and the
SageMaker path refuses to run inside `dvc exp run` (which sets
DVC_EXP_BASELINE_REV), so an experiment cannot create or change a real
endpoint by accident.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from iot_telemetry.errors import InputError

# Set by DVC in the environment of every `dvc exp run` stage command.
EXPERIMENT_ENV = ("DVC_EXP_BASELINE_REV", "DVC_EXP_NAME")

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
# SageMaker resource names allow 63 characters; the deploy appends
# "-<12 hex>-<8 hex>" to the endpoint name for its model and config names.
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,39}$")
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class Section(BaseModel):
    """A params.yaml mapping: unknown keys are errors, numbers are coerced."""

    model_config = ConfigDict(extra="forbid")


class Package(Section):
    model_dir: str = "models/selected"
    out_dir: str = "models/package"


class LocalTarget(Section):
    """The local endpoint and its smoke test.

    The smoke test scores readings the model has not seen: `smoke_input` (a
    readings file, such as the real MQTT capture) or, when empty, a fresh
    twin sample with `smoke_seed`, which must differ from the training seed.
    """

    host: str = "127.0.0.1"
    workers: int | None = Field(None, ge=1)
    smoke_input: str = ""
    smoke_days: float = Field(0.02, gt=0)
    smoke_seed: int = 101
    smoke_requests: int = Field(20, ge=1)
    readings_per_request: int = Field(20, ge=1)
    context_readings: int = Field(10, ge=0)


class Serverless(Section):
    memory_size_mb: int = Field(2048, ge=1024, le=6144, multiple_of=1024)
    max_concurrency: int = Field(5, ge=1, le=200)


class Autoscaling(Section):
    """Target tracking on SageMakerVariantInvocationsPerInstance."""

    min_capacity: int = Field(1, ge=1)
    max_capacity: int = Field(2, ge=1)
    target_invocations_per_instance: float = Field(100.0, gt=0)
    scale_in_cooldown_s: int = Field(300, ge=0)
    scale_out_cooldown_s: int = Field(60, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.max_capacity < self.min_capacity:
            raise ValueError("autoscaling.max_capacity must be >= min_capacity")
        return self


class SageMakerTarget(Section):
    """A real-time endpoint: instances (with autoscaling) or serverless."""

    region: str = "us-east-1"
    endpoint_name: str = "iot-telemetry-anomaly"
    bucket: str = ""
    prefix: str = "iot-telemetry/models"
    role_arn: str = ""
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(1, ge=1)
    serverless: Serverless | None = None
    autoscaling: Autoscaling | None = Field(default_factory=Autoscaling)
    variant_name: str = "AllTraffic"
    framework_version: str = "1.9-0"
    # Empty: the scikit-learn image URI from sagemaker.core.image_uris.
    image_uri: str = ""
    wait_timeout_s: int = Field(1800, ge=30)


class Deploy(Section):
    target: Literal["local", "sagemaker"] = "local"
    package_dir: str = "models/package"
    record_path: str = "reports/deploy.json"
    local: LocalTarget = Field(default_factory=LocalTarget)
    sagemaker: SageMakerTarget = Field(default_factory=SageMakerTarget)


def parse_section(model: type[Section], raw: object, name: str) -> Section:
    """Validate one params.yaml section.

    Raises:
        InputError: the section fails validation, naming the key.
    """
    try:
        return model.model_validate(raw or {})
    except ValidationError as error:
        raise InputError(f"params.yaml: invalid section {name!r}:\n{error}") from None


def check_sagemaker(
    settings: SageMakerTarget, environ: dict[str, str] | None = None
) -> None:
    """Refuse a SageMaker deployment that is incomplete or runs in an experiment.

    Raises:
        InputError: inside `dvc exp run`, or bucket, role ARN or endpoint name
            missing or malformed.
    """
    environ = os.environ if environ is None else environ
    inside = [name for name in EXPERIMENT_ENV if environ.get(name)]
    if inside:
        raise InputError(
            "deploy.target is 'sagemaker' inside a DVC experiment"
            f" ({', '.join(inside)} is set); experiments deploy locally only."
            " Commit params.yaml with deploy.target: sagemaker and run `dvc repro deploy`"
        )
    problems = []
    if not BUCKET_NAME.match(settings.bucket):
        problems.append(
            f"deploy.sagemaker.bucket {settings.bucket!r} is not an S3 bucket name"
        )
    if not ROLE_ARN.match(settings.role_arn):
        problems.append(
            f"deploy.sagemaker.role_arn {settings.role_arn!r} is not an IAM role ARN"
            " (arn:aws:iam::ACCOUNT:role/NAME)"
        )
    if not ENDPOINT_NAME.match(settings.endpoint_name):
        problems.append(
            f"deploy.sagemaker.endpoint_name {settings.endpoint_name!r} must be 1-40"
            " letters, digits and hyphens"
        )
    if problems:
        raise InputError("; ".join(problems))
