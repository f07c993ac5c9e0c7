"""Temperature unit evidence: Fahrenheit conversion and moisture under each reading."""

from __future__ import annotations

import numpy as np
import pytest

from eda_helpers import BASE_TS, build_readings, combine
from iot_telemetry.eda.units import (
    absolute_humidity_g_m3,
    dew_point_c,
    fahrenheit_to_celsius,
    saturation_vapour_pressure_hpa,
    unit_evidence,
)


def test_fahrenheit_fixed_points():
    np.testing.assert_allclose(fahrenheit_to_celsius([32.0, 212.0, -40.0]), [0.0, 100.0, -40.0])


def test_saturation_pressure_matches_tables():
    # Tabulated saturation vapour pressure over water: 6.11 hPa at 0 degC,
    # 23.39 hPa at 20 degC, 42.47 hPa at 30 degC.
    values = saturation_vapour_pressure_hpa([0.0, 20.0, 30.0])
    np.testing.assert_allclose(values, [6.11, 23.39, 42.47], rtol=0.005)


def test_absolute_humidity_of_saturated_air():
    # Saturated air contains about 17.3 g/m3 at 20 degC and 4.8 g/m3 at 0 degC.
    assert absolute_humidity_g_m3(20.0, 100.0) == pytest.approx(17.3, rel=0.01)
    assert absolute_humidity_g_m3(0.0, 100.0) == pytest.approx(4.85, rel=0.01)


def test_dew_point_of_saturated_air_is_air_temperature():
    assert dew_point_c(21.5, 100.0) == pytest.approx(21.5)
    assert dew_point_c(21.5, 50.0) < 21.5


def test_unit_evidence_per_device():
    ts = BASE_TS + np.arange(101) * 5.0
    warm = build_readings("warm", ts, temp=np.linspace(22.0, 24.0, 101),
                          humidity=np.linspace(60.0, 50.0, 101))
    cool = build_readings("cool", ts, temp=np.linspace(18.0, 20.0, 101),
                          humidity=np.linspace(74.0, 76.0, 101))
    table = unit_evidence(combine(warm, cool))
    assert table.loc["warm", "temp_median"] == pytest.approx(23.0)
    assert table.loc["warm", "as_f_median_c"] == pytest.approx((23.0 - 32) * 5 / 9)
    assert table.loc["cool", "as_f_median_c"] == pytest.approx(-7.2222, abs=1e-4)
    assert table.loc["warm", "temp_humidity_spearman"] == pytest.approx(-1.0)
    # The same relative humidity means far less water at the Fahrenheit reading's -7 degC.
    assert table.loc["cool", "abs_humidity_if_c_g_m3"] == pytest.approx(12.2, abs=0.2)
    assert table.loc["cool", "abs_humidity_if_f_g_m3"] < 2.5
    assert table.loc["cool", "dew_point_if_f"] < 0


def test_real_capture_reads_as_room_temperature(mqtt_readings):
    table = unit_evidence(mqtt_readings)
    assert table["temp_median"].between(18, 28).all()
    assert (table["as_f_high_c"] < 0).all()
