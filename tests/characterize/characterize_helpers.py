"""Builders of small readings tables for the characterization tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iot_telemetry.data.validate import to_readings

BASE_TS = 1_594_512_000.0  # 2020-07-12T00:00:00Z


def build_readings(device: str, ts, **columns) -> pd.DataFrame:
    """Return a readings table for one device; unspecified sensors get plain constants."""
    ts = np.asarray(ts, dtype="float64")
    count = len(ts)
    values = {
        "temp": np.full(count, 20.0),
        "humidity": np.full(count, 50.0),
        "co": np.full(count, 0.005),
        "lpg": np.full(count, 0.008),
        "smoke": np.full(count, 0.02),
        "light": np.zeros(count, dtype=bool),
        "motion": np.zeros(count, dtype=bool),
    }
    values.update({name: np.asarray(value) for name, value in columns.items()})
    return to_readings(pd.DataFrame({"device": device, "ts": ts, **values}))


def combine(*frames: pd.DataFrame) -> pd.DataFrame:
    """Concatenate per-device tables, sorted by device then ts as ingest writes them."""
    return pd.concat(frames, ignore_index=True).sort_values(
        ["device", "ts"], kind="stable").reset_index(drop=True)
