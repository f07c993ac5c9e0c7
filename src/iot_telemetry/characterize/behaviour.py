"""Light and motion behaviour: rates and runs of consecutive true readings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import BOOL_SENSORS

DAY_S = 86_400.0


def true_runs(flags: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
    """Find the runs of consecutive true readings in one device's sequence.

    Args:
        flags: booleans in reading order (missing values count as false).
        ts: epoch seconds of the same readings.

    Returns:
        One row per run: `start_ts`, `readings` (length in readings) and
        `duration_s`, from the run's first reading to the first false reading
        after it (to the run's last reading when the series ends true).
    """
    flags = np.asarray(flags, dtype=bool)
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)  # index of the first false after each run
    ends_ts = np.where(stops < len(ts), ts[np.minimum(stops, len(ts) - 1)], ts[stops - 1])
    return pd.DataFrame({
        "start_ts": ts[starts],
        "readings": stops - starts,
        "duration_s": ends_ts - ts[starts],
    })


def light_motion(readings: pd.DataFrame, sensors=BOOL_SENSORS) -> pd.DataFrame:
    """Summarise each boolean sensor per device: rate and runs.

    Returns:
        Index `device`; for each sensor S the columns `S_rate` (share of
        readings true), `S_runs` (count of runs), `S_runs_per_day`,
        `S_mean_run_readings`, `S_max_run_readings` and `S_mean_run_s`.
        Run statistics are NaN for a device with no true reading.
    """
    rows = []
    for device, group in readings.groupby("device", sort=True):
        ts = group["ts"].to_numpy(dtype="float64")
        span_days = max(ts[-1] - ts[0], 1.0) / DAY_S
        row = {"device": device}
        for sensor in sensors:
            flags = group[sensor].fillna(False).to_numpy(dtype=bool)
            runs = true_runs(flags, ts)
            has_runs = len(runs) > 0
            row[f"{sensor}_rate"] = float(flags.mean())
            row[f"{sensor}_runs"] = len(runs)
            row[f"{sensor}_runs_per_day"] = len(runs) / span_days
            row[f"{sensor}_mean_run_readings"] = runs["readings"].mean() if has_runs else np.nan
            row[f"{sensor}_max_run_readings"] = runs["readings"].max() if has_runs else np.nan
            row[f"{sensor}_mean_run_s"] = runs["duration_s"].mean() if has_runs else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("device")
