"""Fixtures for the MQTT tests: a real Mosquitto broker on a free loopback port.

Each test that takes `broker` gets its own Mosquitto process with a generated
config and persistence database in a tmp folder. Without the mosquitto binary
those tests skip with the install command, except under CI=true, where they
fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from iot_telemetry.stream.broker import (
    INSTALL_HINT,
    BrokerConfig,
    BrokerError,
    MosquittoProcess,
    find_mosquitto,
    free_port,
)
from iot_telemetry.stream.settings import StreamParams


def _require_mosquitto() -> str:
    try:
        return find_mosquitto()
    except BrokerError:
        message = f"mosquitto not installed; install it with: {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    """Path of the mosquitto binary (skip or fail when it is missing)."""
    return _require_mosquitto()


@pytest.fixture
def broker(tmp_path: Path, mosquitto_binary: str) -> Iterator[MosquittoProcess]:
    """A running local broker; stopped (or killed) after the test."""
    config = BrokerConfig(directory=tmp_path / "broker", port=free_port(),
                          autosave_interval_s=60)
    process = MosquittoProcess(config, binary=mosquitto_binary)
    process.start()
    yield process
    if process.running:
        process.stop(timeout_s=5)


@pytest.fixture
def params(broker: MosquittoProcess) -> StreamParams:
    """Stream settings pointing at the test broker, with short triggers."""
    return StreamParams(
        port=broker.config.port,
        flush_interval_s=0.5,
        commit_interval_ms=10,
        log_interval_s=1.0,
        keepalive_s=10,
    )
