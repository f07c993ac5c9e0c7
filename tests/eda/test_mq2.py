"""The MQ-2 identity: lpg and smoke follow from co."""

from __future__ import annotations

import numpy as np
import pytest

from eda_helpers import BASE_TS, build_readings
from iot_telemetry.data.readers import read_inputs
from iot_telemetry.eda.mq2 import gas_from_ln_ratio, identity_check, ln_ratio_from_co


def test_co_curve_round_trip():
    co = np.array([0.0012, 0.0049, 0.0144])
    back = gas_from_ln_ratio(ln_ratio_from_co(co), "co")
    np.testing.assert_allclose(back, co, rtol=1e-14)


def test_identity_holds_on_kaggle_head(kaggle_head):
    readings = read_inputs([kaggle_head]).readings
    table = identity_check(readings)
    assert table["readings"].sum() == 9
    # Measured: 2.0e-15 on these 9 rows, rounding of the 17-digit values.
    assert table["max_rel_dev"].max() < 1e-14
    assert (table["max_rel_dev"] > 0).any()


def test_identity_holds_on_real_capture(mqtt_readings):
    table = identity_check(mqtt_readings)
    assert table["readings"].sum() == 50269
    assert table["max_rel_dev"].max() < 5e-15


def test_perturbed_lpg_is_detected():
    readings = build_readings("a", [BASE_TS, BASE_TS + 5], co=[0.004, 0.005])
    readings.loc[1, "lpg"] *= 1.001
    table = identity_check(readings)
    assert table.loc["a", "lpg_max_rel_dev"] == pytest.approx(1e-3 / 1.001, rel=1e-6)
    assert table.loc["a", "smoke_max_rel_dev"] < 1e-14
    assert table.loc["a", "max_rel_dev"] == table.loc["a", "lpg_max_rel_dev"]


def test_ln_ratio_range_per_device():
    readings = build_readings("a", [BASE_TS, BASE_TS + 5], co=[0.004, 0.005])
    table = identity_check(readings)
    # Higher co means a lower resistance ratio (the curve slope is negative).
    assert table.loc["a", "ln_ratio_min"] == pytest.approx(ln_ratio_from_co(0.005))
    assert table.loc["a", "ln_ratio_max"] == pytest.approx(ln_ratio_from_co(0.004))
