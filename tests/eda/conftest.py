"""Fixtures of the EDA tests: a small twin sample and the real capture."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def twin_sample():
    """A quarter day of the synthetic twin and its ground truth."""
    from iot_telemetry.data.sample import sample_with_truth

    return sample_with_truth(days=0.25, seed=3)


@pytest.fixture(scope="session")
def mqtt_readings(mqtt_capture):
    """The real 24-hour capture as readings with Kaggle device ids."""
    from iot_telemetry.eda.twin import load_reference

    return load_reference(mqtt_capture)
