"""Shared fixtures: the real telemetry in the shared data folder, and the project root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Real telemetry lives beside the repository, never inside it. A user's
# machine may not have it; CI always does, so a missing folder fails there.
SHARED_DATA = Path(os.environ.get("IOT_TELEMETRY_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if path.is_file():
        return path
    message = (
        f"real telemetry not found at {path}; set IOT_TELEMETRY_SHARED_DATA to the "
        "folder holding kaggle_head.csv and mqtt_dump_2020-07-13.json.zip"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def kaggle_head() -> Path:
    """The first 9 data rows of the Kaggle file, byte for byte."""
    return _shared_file("kaggle_head.csv")


@pytest.fixture(scope="session")
def mqtt_capture() -> Path:
    """The real 24-hour MQTT capture (zip of one JSON array of 50,270 messages)."""
    return _shared_file("mqtt_dump_2020-07-13.json.zip")
