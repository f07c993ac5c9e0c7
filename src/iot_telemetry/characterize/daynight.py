"""Day versus night per device, with the day a window of UTC hours."""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY_NIGHT_SENSORS = ("temp", "humidity", "co", "light", "motion")


def is_day(time: pd.Series, start_hour: int, end_hour: int) -> pd.Series:
    """Mark times whose UTC hour lies in [start_hour, end_hour).

    A window that wraps midnight (start_hour > end_hour, e.g. 20 to 6) is
    allowed.

    Raises:
        ValueError: an hour outside 0-24 or an empty window (start == end).
    """
    if not (0 <= start_hour <= 24 and 0 <= end_hour <= 24) or start_hour == end_hour:
        raise ValueError(
            f"invalid day window {start_hour}-{end_hour}: use two different hours in 0-24"
        )
    hour = time.dt.hour
    if start_hour < end_hour:
        return (hour >= start_hour) & (hour < end_hour)
    return (hour >= start_hour) | (hour < end_hour)


def day_night(readings: pd.DataFrame, start_hour: int, end_hour: int,
              sensors=DAY_NIGHT_SENSORS) -> pd.DataFrame:
    """Average each sensor over day and night readings, per device.

    Booleans average to the share of true readings.

    Returns:
        Index (`device`, `period` "day" or "night"); columns `readings` and
        one mean per sensor. A period without readings is absent.
    """
    period = np.where(is_day(readings["time"], start_hour, end_hour), "day", "night")
    values = readings[["device", *sensors]].astype({s: "float64" for s in sensors})
    values["period"] = period
    grouped = values.groupby(["device", "period"], sort=True)
    table = grouped[list(sensors)].mean()
    table.insert(0, "readings", grouped.size())
    return table


def day_minus_night(table: pd.DataFrame) -> pd.DataFrame:
    """Return day mean minus night mean per device and sensor (NaN where a period is absent)."""
    means = table.drop(columns="readings")
    wide = means.unstack("period")
    return pd.DataFrame({
        sensor: wide[(sensor, "day")] - wide[(sensor, "night")]
        if (sensor, "day") in wide and (sensor, "night") in wide else np.nan
        for sensor in means.columns
    })
