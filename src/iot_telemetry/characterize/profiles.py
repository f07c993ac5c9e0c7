"""Per-device profiles: variability label, levels, and the device_profiles.json file."""

from __future__ import annotations

import numpy as np
import pandas as pd

PROFILE_SENSORS = ("temp", "humidity", "co")
STABLE, VARIABLE = "stable", "variable"


def variability(readings: pd.DataFrame, sensors=PROFILE_SENSORS) -> pd.DataFrame:
    """Return mean, std, median and interquartile range of each sensor, per device.

    Returns:
        Index `device`; columns `<sensor>_mean`, `<sensor>_std`,
        `<sensor>_median`, `<sensor>_iqr` for each sensor, in sensor order.
    """
    by_device = readings.groupby("device", sort=True)
    columns = {}
    for sensor in sensors:
        values = by_device[sensor]
        quartiles = values.quantile([0.25, 0.5, 0.75]).unstack()
        columns[f"{sensor}_mean"] = values.mean()
        columns[f"{sensor}_std"] = values.std()
        columns[f"{sensor}_median"] = quartiles[0.5]
        columns[f"{sensor}_iqr"] = quartiles[0.75] - quartiles[0.25]
    table = pd.DataFrame(columns)
    table.index.name = "device"
    return table


def label_profiles(table: pd.DataFrame, temp_iqr_c: float, humidity_iqr_pct: float) -> pd.Series:
    """Label each device "variable" or "stable" from its measured variability.

    A device is variable when the IQR of temp exceeds `temp_iqr_c` (degC) or
    the IQR of humidity exceeds `humidity_iqr_pct` (% RH). The IQR, not the
    std, decides, so that a few isolated glitches cannot.

    Args:
        table: output of `variability` (needs `temp_iqr` and `humidity_iqr`).
    """
    variable = (table["temp_iqr"] > temp_iqr_c) | (table["humidity_iqr"] > humidity_iqr_pct)
    return variable.map({True: VARIABLE, False: STABLE}).rename("profile")


def build_profiles(
    readings: pd.DataFrame,
    labels: pd.Series,
    stats: pd.DataFrame,
    behaviour: pd.DataFrame,
    day_night: pd.DataFrame,
    thresholds: dict[str, float],
    day_hours_utc: tuple[int, int],
) -> dict:
    """Assemble the content of device_profiles.json.

    Args:
        readings: the readings the tables were computed from (for the period).
        labels: `label_profiles` output.
        stats: `variability` output.
        behaviour: `behaviour.light_motion` output.
        day_night: `daynight.day_night` output.
        thresholds: the IQR thresholds used for `labels`.
        day_hours_utc: (start, end) UTC hours of the day window.

    Returns:
        {"period": {...}, "thresholds": {...}, "day_hours_utc": [start, end],
        "devices": {device: {"profile", "readings", "median_interval_s",
        "temp": {mean, std, median, iqr}, "humidity": {...}, "co": {...},
        "light": {rate, runs, ...}, "motion": {...}, "day": {readings, means},
        "night": {...}}}}. A period without readings is None. Values are
        plain Python numbers, NaN as None once written by `write_json`.
    """
    devices = {}
    for device in labels.index:
        ts = readings.loc[readings["device"] == device, "ts"].to_numpy()
        entry = {
            "profile": labels[device],
            "readings": len(ts),
            "median_interval_s": float(np.median(np.diff(ts))) if len(ts) > 1 else None,
        }
        for sensor in PROFILE_SENSORS:
            entry[sensor] = {
                stat: float(stats.loc[device, f"{sensor}_{stat}"])
                for stat in ("mean", "std", "median", "iqr")
            }
        row = _row_dict(behaviour, device)
        for flag in ("light", "motion"):
            entry[flag] = {
                name.removeprefix(f"{flag}_"): value
                for name, value in row.items() if name.startswith(f"{flag}_")
            }
        for period in ("day", "night"):
            key = (device, period)
            entry[period] = _row_dict(day_night, key) if key in day_night.index else None
        devices[str(device)] = entry
    return {
        "period": {
            "start": readings["time"].min(),
            "end": readings["time"].max(),
            "readings": int(len(readings)),
        },
        "thresholds": thresholds,
        "day_hours_utc": list(day_hours_utc),
        "devices": devices,
    }


def _row_dict(table: pd.DataFrame, key) -> dict:
    """Return one row as a dict, each value boxed by its column's dtype (ints stay ints)."""
    return table.loc[[key]].to_dict("records")[0]


def characterize_metrics(labels: pd.Series, accuracy: pd.DataFrame, cv_folds: int,
                         behaviour: pd.DataFrame) -> dict:
    """Collect the characterize stage's headline numbers.

    Args:
        labels: `label_profiles` output.
        accuracy: `separability.accuracy_table` output; its first row is the
            headline classifier.
        cv_folds: number of cross-validation folds.
        behaviour: `behaviour.light_motion` output.

    Returns:
        Top-level scalars first (classifier_accuracy, its fold std, the
        majority-class baseline, cv_folds, rows used, counts of stable and
        variable devices), then `profiles` {device: label},
        `accuracy_by_feature_set` {name: accuracy} and `light_motion`
        {device: {light_rate, motion_rate}}.
    """
    headline = accuracy.iloc[0]
    return {
        "classifier_accuracy": float(headline["accuracy"]),
        "classifier_accuracy_std": float(headline["accuracy_std"]),
        "baseline_accuracy": float(headline["baseline"]),
        "cv_folds": int(cv_folds),
        "classifier_rows": int(headline["rows"]),
        "stable_devices": int((labels == STABLE).sum()),
        "variable_devices": int((labels == VARIABLE).sum()),
        "profiles": labels.to_dict(),
        "accuracy_by_feature_set": accuracy["accuracy"].to_dict(),
        "light_motion": {
            str(device): {"light_rate": row["light_rate"], "motion_rate": row["motion_rate"]}
            for device, row in behaviour.iterrows()
        },
    }
