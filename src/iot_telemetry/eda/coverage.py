"""Coverage and sampling intervals per device."""

from __future__ import annotations

import numpy as np
import pandas as pd

# An interval longer than this counts as a gap in the device's reporting. The
# devices report every 3.7-37 s, so a minute without a reading is an outage.
GAP_SECONDS = 60.0


def sampling_intervals(readings: pd.DataFrame, gap_seconds: float = GAP_SECONDS) -> pd.DataFrame:
    """Summarise each device's coverage and intervals between consecutive readings.

    Args:
        readings: readings table, sorted by device then ts (the ingest contract).
        gap_seconds: an interval longer than this counts as a gap.

    Returns:
        One row per device (index `device`, sorted) with `readings`, `start`,
        `end` (UTC), `span_hours`, `median_interval_s`, `mean_interval_s`,
        `min_interval_s`, `max_interval_s`, `gaps` (intervals longer than
        `gap_seconds`) and `gap_share` (gaps / intervals). Interval columns are
        NaN for a device with a single reading.
    """
    rows = []
    for device, group in readings.groupby("device", sort=True):
        ts = np.sort(group["ts"].to_numpy(dtype="float64"))
        intervals = np.diff(ts)
        has_intervals = len(intervals) > 0
        gaps = int((intervals > gap_seconds).sum())
        rows.append({
            "device": device,
            "readings": len(ts),
            "start": group["time"].min(),
            "end": group["time"].max(),
            "span_hours": (ts[-1] - ts[0]) / 3600.0,
            "median_interval_s": np.median(intervals) if has_intervals else np.nan,
            "mean_interval_s": intervals.mean() if has_intervals else np.nan,
            "min_interval_s": intervals.min() if has_intervals else np.nan,
            "max_interval_s": intervals.max() if has_intervals else np.nan,
            "gaps": gaps,
            "gap_share": gaps / len(intervals) if has_intervals else np.nan,
        })
    return pd.DataFrame(rows).set_index("device")


def find_gaps(readings: pd.DataFrame, gap_seconds: float = GAP_SECONDS) -> pd.DataFrame:
    """List every interval longer than `gap_seconds`, longest first.

    Returns:
        Columns `device`, `start`, `end` (UTC times of the readings on either
        side of the gap) and `duration_s`; empty when there is no gap.
    """
    parts = []
    for device, group in readings.groupby("device", sort=True):
        group = group.sort_values("ts")
        intervals = group["ts"].diff()
        ends = np.flatnonzero((intervals > gap_seconds).to_numpy())
        if not len(ends):
            continue
        parts.append(pd.DataFrame({
            "device": device,
            "start": group["time"].iloc[ends - 1].to_numpy(),
            "end": group["time"].iloc[ends].to_numpy(),
            "duration_s": intervals.iloc[ends].to_numpy(),
        }))
    if not parts:
        return pd.DataFrame({
            "device": pd.Series(dtype="string"),
            "start": pd.Series(dtype="datetime64[us, UTC]"),
            "end": pd.Series(dtype="datetime64[us, UTC]"),
            "duration_s": pd.Series(dtype="float64"),
        })
    gaps = pd.concat(parts, ignore_index=True)
    return gaps.sort_values("duration_s", ascending=False, kind="stable").reset_index(drop=True)


def interval_series(readings: pd.DataFrame) -> pd.DataFrame:
    """Return every interval between consecutive readings, per device, for plotting.

    Returns:
        Columns `device` and `interval_s`, one row per consecutive pair.
    """
    intervals = readings.groupby("device", sort=True)["ts"].diff()
    frame = pd.DataFrame({"device": readings["device"], "interval_s": intervals})
    return frame.dropna().reset_index(drop=True)
