"""Day and night windows in UTC hours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from characterize_helpers import BASE_TS, build_readings
from iot_telemetry.characterize.daynight import day_minus_night, day_night, is_day


def hours(*values):
    return pd.Series(pd.to_datetime([BASE_TS + h * 3600 for h in values], unit="s", utc=True))


def test_day_window_is_half_open():
    assert is_day(hours(5, 6, 17, 18), 6, 18).tolist() == [False, True, True, False]


def test_day_window_wrapping_midnight():
    assert is_day(hours(19, 23, 0, 5, 6, 12), 20, 6).tolist() == [
        False, True, True, True, False, False]


@pytest.mark.parametrize(("start", "end"), [(6, 6), (-1, 12), (6, 25)])
def test_invalid_window_raises(start, end):
    with pytest.raises(ValueError, match="invalid day window"):
        is_day(hours(1), start, end)


def test_day_night_means():
    hour = np.arange(24)
    temp = np.where((hour >= 6) & (hour < 18), 24.0, 18.0)
    light = hour == 20
    readings = build_readings("a", BASE_TS + hour * 3600.0, temp=temp, light=light)
    table = day_night(readings, 6, 18)
    assert table.loc[("a", "day"), "readings"] == 12
    assert table.loc[("a", "day"), "temp"] == 24.0
    assert table.loc[("a", "night"), "temp"] == 18.0
    assert table.loc[("a", "night"), "light"] == pytest.approx(1 / 12)
    difference = day_minus_night(table)
    assert difference.loc["a", "temp"] == 6.0
    assert difference.loc["a", "light"] == pytest.approx(-1 / 12)
