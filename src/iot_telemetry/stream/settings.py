"""Settings of the stream commands: the `stream` section of params.yaml.

Every stream command reads the broker address, credentials and TLS files from
here, and command-line flags override single keys. The password itself is
never stored in params.yaml: `password_env` names the environment variable
that contains it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from iot_telemetry.errors import InputError
from iot_telemetry.paths import project_root

PARAMS_FILE = "params.yaml"
SECTION = "stream"


class StreamParams(BaseModel):
    """Typed `stream` section; every key has a default that runs on loopback."""

    model_config = ConfigDict(extra="forbid")

    # Connection, shared by every command.
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str = ""
    password_env: str = "IOT_MQTT_PASSWORD"
    ca_certs: str = ""
    certfile: str = ""
    keyfile: str = ""
    tls_insecure: bool = False
    keepalive_s: int = Field(30, ge=5)
    telemetry_topic: str = "telemetry"
    alert_topic: str = "alerts"

    # Broker started by `stream broker`.
    broker_dir: str = "data/broker"
    max_packet_size_bytes: int = Field(262_144, ge=1024)
    max_inflight_messages: int = Field(1000, ge=0)
    max_queued_messages: int = Field(1_000_000, ge=0)
    autosave_interval_s: int = Field(60, ge=0)

    # Replay.
    replay_window: int = Field(10_000, ge=1, le=60_000)
    replay_client_id: str = "iot-telemetry-replay"

    # Ingest.
    ingest_out: str = "data/raw/stream"
    ingest_client_id: str = "iot-telemetry-ingest"
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0)
    max_payload_bytes: int = Field(65_536, ge=256)
    flush_rows: int = Field(50_000, ge=1)
    flush_interval_s: float = Field(30.0, gt=0)
    commit_interval_ms: float = Field(20.0, gt=0)
    log_interval_s: float = Field(10.0, gt=0)

    # Live scoring.
    score_client_id: str = "iot-telemetry-score"
    endpoint_url: str = "http://127.0.0.1:8080"
    endpoint_name: str = ""
    region: str = ""
    score_batch_size: int = Field(32, ge=1)
    score_batch_wait_ms: float = Field(200.0, ge=0)
    score_timeout_s: float = Field(10.0, gt=0)
    # History per device sent as context; set it to the model card's
    # context_seconds for full features.
    score_context_s: float = Field(900.0, ge=0)
    alert_gap_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _check_limits(self) -> StreamParams:
        # The ingester must reject an oversized payload itself, with a dead-letter
        # record, before the broker would disconnect the publisher for it.
        if self.max_payload_bytes >= self.max_packet_size_bytes:
            raise ValueError(
                f"max_payload_bytes ({self.max_payload_bytes}) must be below "
                f"max_packet_size_bytes ({self.max_packet_size_bytes})"
            )
        if bool(self.certfile) != bool(self.keyfile):
            raise ValueError("certfile and keyfile must be set together")
        return self

    @property
    def tls(self) -> bool:
        """True when a CA file is set, which turns TLS on for every client."""
        return bool(self.ca_certs)

    @property
    def password(self) -> str | None:
        """The password from the `password_env` variable, or None when unset."""
        return os.environ.get(self.password_env) or None


def load_params(path: str | Path | None = None) -> StreamParams:
    """Load the `stream` section of params.yaml.

    Args:
        path: params file; None means params.yaml at the project root, and
            defaults are used when there is no project root or no such file.

    Raises:
        InputError: the file is not valid YAML or the section has an unknown
            key or a value of the wrong type.
    """
    if path is None:
        try:
            path = project_root() / PARAMS_FILE
        except FileNotFoundError:
            return StreamParams()
        if not path.is_file():
            return StreamParams()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"params file not found: {path}")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: invalid YAML: {error}") from error
    section = document.get(SECTION) or {}
    return parse_params(section, source=f"{path} section '{SECTION}'")


def parse_params(section: dict[str, Any], source: str = SECTION) -> StreamParams:
    """Validate a `stream` mapping; raises InputError naming each bad key."""
    try:
        return StreamParams(**section)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc'])) or 'value'}: {item['msg']}"
            for item in error.errors()
        )
        raise InputError(f"invalid {source}: {problems}") from error


def with_overrides(params: StreamParams, **overrides: Any) -> StreamParams:
    """Return `params` with the non-None overrides applied and re-validated."""
    values = params.model_dump()
    values.update({key: value for key, value in overrides.items() if value is not None})
    return parse_params(values, source="stream settings after command-line flags")
