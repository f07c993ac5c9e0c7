"""Distributions, diurnal profiles and correlations of the sensor values."""

from __future__ import annotations

import pandas as pd

from iot_telemetry.data.columns import BOOL_SENSORS, FLOAT_SENSORS

# Sensors shown in the diurnal profiles: lpg and smoke follow from co exactly.
DIURNAL_SENSORS = ("temp", "humidity", "co")


def describe_sensors(readings: pd.DataFrame, sensors=FLOAT_SENSORS) -> pd.DataFrame:
    """Describe each float sensor per device.

    Returns:
        Index (`device`, `sensor`), columns `count`, `mean`, `std`, `min`,
        `25%`, `50%`, `75%`, `max`.
    """
    long = readings.melt(id_vars="device", value_vars=list(sensors), var_name="sensor")
    table = long.groupby(["device", "sensor"], sort=True)["value"].describe()
    return table.astype({"count": "int64"})


def boolean_rates(readings: pd.DataFrame) -> pd.DataFrame:
    """Return the share of readings with light and motion true, per device.

    Missing values (<NA>) are left out of the share.
    """
    rates = readings.groupby("device", sort=True)[list(BOOL_SENSORS)].mean()
    return rates.astype("float64").add_suffix("_rate")


def diurnal_profile(readings: pd.DataFrame, sensors=DIURNAL_SENSORS) -> pd.DataFrame:
    """Average each sensor by UTC hour of day, per device.

    Returns:
        Index (`device`, `hour` 0-23), one column per sensor. Hours without a
        reading are absent.
    """
    hour = readings["time"].dt.hour.rename("hour")
    return readings.groupby([readings["device"], hour], sort=True)[list(sensors)].mean()


def diurnal_amplitude(profile: pd.DataFrame) -> pd.DataFrame:
    """Return the max minus min of the hourly means, per device and sensor."""
    grouped = profile.groupby(level="device")
    return grouped.max() - grouped.min()


def sensor_correlations(readings: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Correlate every pair of sensors within each device.

    Booleans count as 0/1. Spearman (the default) measures monotone relations,
    so the exact but non-linear co-lpg-smoke relation shows as 1.

    Returns:
        Index (`device`, sensor), one column per sensor: one correlation
        matrix per device, stacked. A constant sensor (light always true)
        gives NaN entries.
    """
    columns = [*FLOAT_SENSORS, *BOOL_SENSORS]
    values = readings[["device", *columns]].astype({name: "float64" for name in BOOL_SENSORS})
    matrices = {
        device: group[columns].corr(method=method)
        for device, group in values.groupby("device", sort=True)
    }
    return pd.concat(matrices, names=["device", "sensor"])


def diurnal_peak_hours(profile: pd.DataFrame) -> pd.DataFrame:
    """Return the UTC hour with the highest hourly mean, per device and sensor."""
    peaks = {
        sensor: profile[sensor].groupby(level="device").idxmax().map(lambda key: key[1])
        for sensor in profile.columns
    }
    return pd.DataFrame(peaks)
