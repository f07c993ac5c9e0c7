"""Fixtures of the anomaly tests: one small seeded benchmark study, shared."""

from __future__ import annotations

import pytest

from iot_telemetry.anomaly import stage
from iot_telemetry.anomaly.params import load_anomaly_params


@pytest.fixture(scope="session")
def study():
    """The anomaly stage's study on a 1.5-day twin with every default candidate.

    The selection runs exactly as in the pipeline, so `study.selected` is the
    model the stage would select on this series.
    """
    params = load_anomaly_params(sample_days=1.5, seed=3, real_path="", candidates_dir="")
    return stage.run_study(params, "synthetic")


@pytest.fixture(scope="session")
def selected_model(study):
    return study.models[study.selected]


@pytest.fixture(scope="session")
def clean_readings(study):
    """Clean test readings of the small twin (no injected faults)."""
    return study.benchmarks["input"].test
