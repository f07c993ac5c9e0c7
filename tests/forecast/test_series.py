"""Regular series: bins, interpolation limit, gaps and time zones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.errors import InputError
from iot_telemetry.forecast.series import (
    build_series,
    fill_short_gaps,
    gaps_of,
    resample_readings,
    utc_times,
)


def _readings(times: list[str], temps: list[float], lights: list[bool | None]) -> pd.DataFrame:
    time = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).astype("datetime64[us, UTC]")
    return pd.DataFrame(
        {
            "device": pd.array(["a"] * len(times), dtype="string"),
            "ts": time.asi8 / 1e6,
            "time": time,
            "temp": temps,
            "light": pd.array(lights, dtype="boolean"),
        }
    )


def test_resample_mean_and_any():
    readings = _readings(
        ["2020-07-12T00:01:00", "2020-07-12T00:04:00", "2020-07-12T00:12:00"],
        [20.0, 22.0, 25.0],
        [False, True, False],
    )
    grid = resample_readings(readings, "5min", ["temp", "light"]).xs("a", level="device")
    assert list(grid.index) == list(pd.date_range("2020-07-12", periods=3, freq="5min", tz="UTC"))
    assert grid["temp"].iloc[0] == 21.0
    assert np.isnan(grid["temp"].iloc[1])
    assert grid["temp"].iloc[2] == 25.0
    assert bool(grid["light"].iloc[0]) is True
    assert grid["light"].isna().iloc[1]
    assert bool(grid["light"].iloc[2]) is False


def test_resample_aligns_bins_to_midnight_utc():
    readings = _readings(["2020-07-12T10:03:10", "2020-07-12T10:07:50"], [1.0, 2.0],
                         [None, None])
    grid = resample_readings(readings, "5min", ["temp"])
    times = grid.index.get_level_values("time")
    assert times[0] == pd.Timestamp("2020-07-12T10:00:00Z")
    assert times[1] == pd.Timestamp("2020-07-12T10:05:00Z")


def test_fill_short_gaps_only_within_limit():
    index = pd.date_range("2020-07-12", periods=12, freq="5min", tz="UTC")
    values = pd.Series([0, 1, np.nan, np.nan, 4, 5, np.nan, np.nan, np.nan, np.nan, 10, 11],
                       index=index, dtype="float64")
    filled, count = fill_short_gaps(values, limit_steps=2)
    assert count == 2
    assert filled.iloc[2] == pytest.approx(2.0)
    assert filled.iloc[3] == pytest.approx(3.0)
    # The 4-step gap is longer than the limit: none of it is filled.
    assert filled.iloc[6:10].isna().all()


def test_fill_short_gaps_leaves_edges():
    index = pd.date_range("2020-07-12", periods=5, freq="5min", tz="UTC")
    values = pd.Series([np.nan, 1.0, 2.0, np.nan, np.nan], index=index)
    filled, count = fill_short_gaps(values, limit_steps=3)
    assert count == 0
    assert filled.isna().sum() == 3


def test_gaps_of_lists_inner_runs():
    index = pd.date_range("2020-07-12", periods=8, freq="1h", tz="UTC")
    values = pd.Series([np.nan, 1, np.nan, np.nan, np.nan, 5, 6, np.nan], index=index)
    assert gaps_of(values) == [(index[2], 3)]


def test_build_series_interpolates_and_lists_long_gaps(make_daily, make_readings):
    values = make_daily(3, freq="5min")
    values.iloc[100:102] = np.nan  # 10 min: filled
    values.iloc[400:460] = np.nan  # 5 h: stays missing
    readings = make_readings({"dev": values}, per_step=2)
    [temp, humidity] = build_series(readings, ["temp", "humidity"], "5min", 3)
    assert temp.key == "dev/temp"
    assert temp.values.index.freqstr == "5min"
    assert str(temp.values.index.tz) == "UTC"
    assert temp.n_interpolated == 2
    assert temp.gaps == [(values.index[400], 60)]
    assert temp.values.iloc[400:460].isna().all()
    assert temp.n_readings == 2 * int(values.notna().sum())
    np.testing.assert_allclose(temp.values.dropna().iloc[:100], values.iloc[:100])
    np.testing.assert_allclose(humidity.values.iloc[:100], values.iloc[:100] + 30)


def test_timezone_aware_input_is_converted(make_daily, make_readings):
    readings = make_readings({"dev": make_daily(2, freq="5min")})
    berlin = readings.assign(time=readings["time"].dt.tz_convert("Europe/Berlin"))
    [utc_series] = build_series(readings, ["temp"], "5min", 3)
    [converted] = build_series(berlin, ["temp"], "5min", 3)
    assert converted.source_timezone == "Europe/Berlin"
    assert utc_series.source_timezone is None
    assert str(converted.values.index.tz) == "UTC"
    pd.testing.assert_series_equal(converted.values, utc_series.values)


def test_naive_times_raise():
    readings = pd.DataFrame({"device": ["a"], "time": [pd.Timestamp("2020-07-12 10:00")],
                             "temp": [20.0]})
    with pytest.raises(InputError, match="no time zone"):
        utc_times(readings)


def test_epoch_seconds_without_time_column():
    readings = pd.DataFrame({"device": ["a", "a"], "ts": [1594512000.5, 1594512301.0],
                             "temp": [20.0, 21.0]})
    times, zone = utc_times(readings)
    assert zone is None
    assert times[0] == pd.Timestamp("2020-07-12T00:00:00.5Z")


def test_missing_target_column_raises(make_daily, make_readings):
    readings = make_readings({"dev": make_daily(1)}).drop(columns="humidity")
    with pytest.raises(InputError, match="humidity"):
        build_series(readings, ["temp", "humidity"], "1h", 1)


def test_real_capture_series(mqtt_capture):
    from iot_telemetry.data.readers import read_inputs

    readings = read_inputs([mqtt_capture]).readings
    series = build_series(readings, ["temp", "humidity"], "5min", 3)
    assert len(series) == 6
    for item in series:
        # 2020-07-13T00:00:24Z to 2020-07-14T00:04:30Z: 289 five-minute bins.
        assert len(item.values) == 289
        assert item.values.index[0] == pd.Timestamp("2020-07-13T00:00:00Z")
        assert item.gaps == []
        assert item.values.notna().all()
