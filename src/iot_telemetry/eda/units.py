"""Evidence that `temp` is in degrees Celsius, not the Fahrenheit the dataset claims.

Two checks, both per device: the plausible range of the values under each
reading, and the moisture content the humidity implies under each reading.
Humidity is relative, so the same percentage means about a fifth as much
water vapour at -5 degC as at 20 degC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Magnus formula for saturation vapour pressure over water, in hPa, with the
# constants of the WMO Guide to Instruments and Methods of Observation (2008).
MAGNUS_HPA = 6.112
MAGNUS_B = 17.62
MAGNUS_C_DEGC = 243.12
# Water vapour density in g/m3 is 216.7 * e[hPa] / T[K] (ideal gas, R_v = 461.5).
VAPOUR_DENSITY_FACTOR = 216.7

# Quantiles that bound the bulk of the values, so isolated glitches do not set the range.
LOW_QUANTILE, HIGH_QUANTILE = 0.01, 0.99


def fahrenheit_to_celsius(value):
    """Convert degrees Fahrenheit to degrees Celsius (array-like or scalar)."""
    return (np.asarray(value, dtype="float64") - 32.0) * 5.0 / 9.0


def saturation_vapour_pressure_hpa(temp_c):
    """Return the saturation vapour pressure over water in hPa at `temp_c` degC."""
    temp_c = np.asarray(temp_c, dtype="float64")
    return MAGNUS_HPA * np.exp(MAGNUS_B * temp_c / (MAGNUS_C_DEGC + temp_c))


def absolute_humidity_g_m3(temp_c, relative_humidity_pct):
    """Return water vapour density in g/m3 from temperature (degC) and relative humidity (%)."""
    vapour_hpa = np.asarray(relative_humidity_pct, dtype="float64") / 100.0 * (
        saturation_vapour_pressure_hpa(temp_c)
    )
    return VAPOUR_DENSITY_FACTOR * vapour_hpa / (np.asarray(temp_c) + 273.15)


def dew_point_c(temp_c, relative_humidity_pct):
    """Return the dew point in degC (inverse Magnus formula)."""
    gamma = np.log(np.asarray(relative_humidity_pct, dtype="float64") / 100.0) + (
        MAGNUS_B * np.asarray(temp_c) / (MAGNUS_C_DEGC + np.asarray(temp_c))
    )
    return MAGNUS_C_DEGC * gamma / (MAGNUS_B - gamma)


def unit_evidence(readings: pd.DataFrame) -> pd.DataFrame:
    """Compare the Celsius and Fahrenheit readings of `temp`, per device.

    Returns:
        Index `device`. Columns `temp_low`, `temp_median` and `temp_high` are
        the 1 %, 50 % and 99 % quantiles as recorded (read as degC), and
        `as_f_low_c`, `as_f_median_c`, `as_f_high_c` the same values converted
        from degF. `humidity_median` is in %. At the medians, the water vapour
        density and dew point under each reading are `abs_humidity_if_c_g_m3`,
        `abs_humidity_if_f_g_m3`, `dew_point_if_c` and `dew_point_if_f`.
        `temp_humidity_spearman` is the rank correlation of temp with humidity.
    """
    rows = []
    for device, group in readings.groupby("device", sort=True):
        temp = group["temp"]
        low, median, high = temp.quantile([LOW_QUANTILE, 0.5, HIGH_QUANTILE]).to_numpy()
        humidity = float(group["humidity"].median())
        as_f = fahrenheit_to_celsius([low, median, high])
        rows.append({
            "device": device,
            "temp_low": low,
            "temp_median": median,
            "temp_high": high,
            "as_f_low_c": as_f[0],
            "as_f_median_c": as_f[1],
            "as_f_high_c": as_f[2],
            "humidity_median": humidity,
            "abs_humidity_if_c_g_m3": float(absolute_humidity_g_m3(median, humidity)),
            "abs_humidity_if_f_g_m3": float(absolute_humidity_g_m3(as_f[1], humidity)),
            "dew_point_if_c": float(dew_point_c(median, humidity)),
            "dew_point_if_f": float(dew_point_c(as_f[1], humidity)),
            # DataFrame.corr gives NaN for a constant column without scipy's warning.
            "temp_humidity_spearman": group[["temp", "humidity"]].corr("spearman").iloc[0, 1],
        })
    return pd.DataFrame(rows).set_index("device")
