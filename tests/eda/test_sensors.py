"""Distributions, diurnal profiles and correlations on constructed readings."""

from __future__ import annotations

import numpy as np
import pytest

from eda_helpers import BASE_TS, build_readings, combine
from iot_telemetry.eda.sensors import (
    boolean_rates,
    describe_sensors,
    diurnal_amplitude,
    diurnal_peak_hours,
    diurnal_profile,
    sensor_correlations,
)

HOUR_S = 3600.0


@pytest.fixture
def readings():
    # Two readings per UTC hour over one day; device "a" is 2 degC warmer at 14:00.
    ts = BASE_TS + np.arange(48) * HOUR_S / 2
    hour = (np.arange(48) // 2)
    temp = 20.0 + np.where(hour == 14, 2.0, 0.0)
    light = np.arange(48) % 4 == 0
    co = np.linspace(0.004, 0.006, 48)
    a = build_readings("a", ts, temp=temp, light=light, co=co,
                       humidity=np.linspace(60, 50, 48))
    b = build_readings("b", ts, temp=np.full(48, 25.0), co=co[::-1],
                       humidity=np.linspace(40, 45, 48))
    return combine(a, b)


def test_describe_sensors_per_device(readings):
    table = describe_sensors(readings, sensors=("temp",))
    assert table.loc[("a", "temp"), "count"] == 48
    assert table.loc[("a", "temp"), "max"] == 22.0
    assert table.loc[("b", "temp"), "std"] == 0.0
    assert table.loc[("a", "temp"), "mean"] == pytest.approx(20.0 + 4.0 / 48)


def test_boolean_rates(readings):
    rates = boolean_rates(readings)
    assert rates.loc["a", "light_rate"] == 0.25
    assert rates.loc["b", "light_rate"] == 0.0
    assert rates.loc["a", "motion_rate"] == 0.0


def test_diurnal_profile_by_utc_hour(readings):
    profile = diurnal_profile(readings)
    assert len(profile.loc["a"]) == 24
    assert profile.loc[("a", 14), "temp"] == 22.0
    assert profile.loc[("a", 13), "temp"] == 20.0
    assert diurnal_amplitude(profile).loc["a", "temp"] == 2.0
    assert diurnal_amplitude(profile).loc["b", "temp"] == 0.0
    assert diurnal_peak_hours(profile).loc["a", "temp"] == 14


def test_gas_sensors_rank_correlate_perfectly(readings):
    correlations = sensor_correlations(readings)
    assert correlations.loc[("a", "co"), "lpg"] == pytest.approx(1.0)
    assert correlations.loc[("b", "co"), "smoke"] == pytest.approx(1.0)
    assert correlations.loc[("a", "co"), "humidity"] == pytest.approx(-1.0)
    # A constant sensor has no defined correlation.
    assert np.isnan(correlations.loc[("b", "temp"), "co"])
