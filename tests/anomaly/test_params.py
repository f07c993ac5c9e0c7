"""Checks of the anomaly section's settings before any stage work starts."""

from __future__ import annotations

import pytest

from iot_telemetry.anomaly.params import load_anomaly_params
from iot_telemetry.errors import InputError


@pytest.mark.parametrize(
    ("detectors", "fragment"),
    [
        ({"drift": {"min_treshold": 1.0}}, "unknown setting"),
        ({"lof": {"n_neighbors": "10"}}, "expected an integer"),
        ({"lof": {"n_neighbors": 2.5}}, "expected an integer"),
        ({"stuck": {"margin": True}}, "expected a number"),
        ({"robust_z": {"quantile": "0.99"}}, "expected a number"),
    ],
)
def test_detector_settings_checked(detectors, fragment):
    with pytest.raises(InputError, match=fragment):
        load_anomaly_params({"detectors": detectors})


def test_detector_settings_follow_base_class():
    params = load_anomaly_params(
        {"detectors": {"isolation_forest": {"quantile": 0.99, "seed": 3}, "stuck": {"margin": 2}}}
    )
    assert params.detectors["isolation_forest"]["quantile"] == 0.99
    assert params.detectors["stuck"]["margin"] == 2


def test_negative_event_rate_rejected():
    rates = {"spike": -8, "glitch": 8, "stuck": 3, "drift": 1, "mq2_break": 4}
    with pytest.raises(InputError, match="0 or more"):
        load_anomaly_params({"faults": {"events_per_day": rates}})
