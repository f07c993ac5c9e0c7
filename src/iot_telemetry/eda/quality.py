"""Duplicates and quarantined rows, from the ingest summary and quarantine table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

INGEST_COUNTS = ("read", "kept", "duplicates", "quarantined")


def load_summary(path: str | Path) -> dict:
    """Read an ingest.json summary.

    Raises:
        FileNotFoundError: `path` does not exist.
    """
    return json.loads(Path(path).read_text())


def ingest_counts(summary: dict) -> pd.DataFrame:
    """Return rows read, kept, dropped as exact duplicates and quarantined, per device.

    Returns:
        Index `device` (sorted) plus a final `all` row; columns INGEST_COUNTS.
        Quarantined rows without a device id count under "(unknown)".
    """
    by_device = pd.DataFrame.from_dict(summary.get("by_device", {}), orient="index")
    by_device = by_device.reindex(columns=list(INGEST_COUNTS)).fillna(0).astype("int64")
    by_device = by_device.sort_index()
    total = pd.DataFrame([{name: int(summary.get(name, 0)) for name in INGEST_COUNTS}],
                         index=["all"])
    counts = pd.concat([by_device, total])
    counts.index.name = "device"
    return counts


def quarantine_reasons(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Count quarantined rows by reason and device.

    Returns:
        Index `reason`, one column per device (null devices as "(unknown)")
        plus `all`; empty (no rows) when nothing was quarantined.
    """
    if quarantine.empty:
        return pd.DataFrame(columns=["all"], index=pd.Index([], name="reason"), dtype="int64")
    devices = quarantine["device"].astype("string").fillna("(unknown)")
    table = pd.crosstab(quarantine["reason"], devices)
    table["all"] = table.sum(axis=1)
    table.columns.name = None
    return table.sort_values("all", ascending=False, kind="stable")
