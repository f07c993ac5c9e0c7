"""Small generated series and readings tables for the forecasting tests.

Most tests use an hourly grid with a 24-step season: the code works in grid
steps, so the logic is the same as on the 5-minute grid at a fraction of the
fit time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.forecast.params import load_forecast_params
from iot_telemetry.forecast.series import RegularSeries

START = pd.Timestamp("2020-07-12T00:00:00Z")


def daily_series(
    days: float, freq: str = "1h", seed: int = 0, level: float = 22.0, noise: float = 0.1
) -> pd.Series:
    """A daily sine plus AR(1) noise on a regular UTC grid."""
    step = pd.Timedelta(freq)
    n = int(pd.Timedelta(days=days) / step)
    index = pd.date_range(START, periods=n, freq=freq, name="time")
    phase = 2 * np.pi * np.arange(n) * step / pd.Timedelta(days=1)
    rng = np.random.default_rng(seed)
    ar = np.zeros(n)
    for i in range(1, n):
        ar[i] = 0.8 * ar[i - 1] + rng.normal(0, noise)
    return pd.Series(level + 1.5 * np.sin(phase) + ar, index=index, name="temp")


def readings_from(values: dict[str, pd.Series], per_step: int = 3, seed: int = 0) -> pd.DataFrame:
    """A readings table with `per_step` readings per grid step of each device.

    Readings sit inside each step, so the bin means equal the series values;
    NaN steps get no reading. humidity is the temp series shifted by 30.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for device, series in values.items():
        step = series.index.freq or pd.Timedelta(series.index[1] - series.index[0])
        step = pd.Timedelta(step)
        for label, value in series.dropna().items():
            offsets = np.sort(rng.uniform(0, step.total_seconds(), per_step))
            for offset in offsets:
                ts = label.timestamp() + float(offset)
                rows.append({"device": device, "ts": ts, "temp": value, "humidity": value + 30})
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["ts"], unit="s", utc=True).astype("datetime64[us, UTC]")
    frame["device"] = frame["device"].astype("string")
    frame["light"] = pd.array([False] * len(frame), dtype="boolean")
    frame["motion"] = pd.array([False] * len(frame), dtype="boolean")
    return frame.sort_values(["device", "ts"], kind="stable").reset_index(drop=True)


def regular(values: pd.Series, device: str = "dev", target: str = "temp") -> RegularSeries:
    """Wrap a series as RegularSeries, with its gaps listed as build_series would."""
    from iot_telemetry.forecast.series import gaps_of

    values = values.copy()
    values.index.freq = values.index.freq or pd.infer_freq(values.index)
    return RegularSeries(device, target, values, n_readings=int(values.notna().sum()),
                         gaps=gaps_of(values))


@pytest.fixture
def hourly_params():
    """Backtest settings for hourly test series: season 24 steps, 6 h horizon."""
    return load_forecast_params(
        resample_rule="1h",
        horizons_hours=[6],
        n_cutoffs=3,
        min_train_hours=12,
        interpolate_limit_minutes=120,
        models=["naive", "seasonal_naive", "ets", "stl_arima"],
        n_jobs=1,
    )


@pytest.fixture(scope="session")
def make_daily():
    """The `daily_series` factory."""
    return daily_series


@pytest.fixture(scope="session")
def make_readings():
    """The `readings_from` factory."""
    return readings_from


@pytest.fixture(scope="session")
def make_regular():
    """The `regular` factory."""
    return regular
