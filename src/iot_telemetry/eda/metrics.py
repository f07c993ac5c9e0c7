"""The eda stage's headline metrics (reports/metrics/eda.json)."""

from __future__ import annotations

import pandas as pd


def eda_metrics(
    intervals: pd.DataFrame,
    identity: pd.DataFrame,
    glitch_counts: pd.DataFrame,
    units: pd.DataFrame,
    gaps: pd.DataFrame,
    summary: dict | None = None,
    truth_match: pd.DataFrame | None = None,
    ks: pd.DataFrame | None = None,
) -> dict:
    """Collect the headline numbers of the EDA into one JSON-ready mapping.

    Args:
        intervals: `coverage.sampling_intervals` output.
        identity: `mq2.identity_check` output.
        glitch_counts: `glitches.count_glitches` output.
        units: `units.unit_evidence` output.
        gaps: `coverage.find_gaps` output.
        summary: ingest.json content, when the readings came from ingest.
        truth_match: `glitches.compare_with_truth` output, when truth exists.
        ks: twin-vs-real KS table, when it was computed.

    Returns:
        Top-level scalars first (readings, devices, mq2_max_relative_deviation,
        glitch_readings, gaps, and where available duplicates, quarantined,
        glitch_recall, glitch_precision, ks_max), then `by_device` and `ks`
        ({device: {sensor: statistic}}). Missing parts are None.
    """
    metrics = {
        "readings": int(intervals["readings"].sum()),
        "devices": int(len(intervals)),
        "mq2_max_relative_deviation": float(identity["max_rel_dev"].max()),
        "glitch_readings": int(glitch_counts["readings"].sum()),
        "gaps": int(len(gaps)),
        "duplicates": None if summary is None else int(summary.get("duplicates", 0)),
        "quarantined": None if summary is None else int(summary.get("quarantined", 0)),
        "glitch_recall": None,
        "glitch_precision": None,
        "ks_max": None if ks is None else float(ks["ks_statistic"].max()),
    }
    if truth_match is not None and len(truth_match):
        totals = truth_match[["injected", "flagged", "matched"]].sum()
        metrics["glitch_recall"] = _ratio(totals["matched"], totals["injected"])
        metrics["glitch_precision"] = _ratio(totals["matched"], totals["flagged"])

    by_device = {}
    for device, row in intervals.iterrows():
        by_device[str(device)] = {
            "readings": int(row["readings"]),
            "span_hours": row["span_hours"],
            "median_interval_s": row["median_interval_s"],
            "mean_interval_s": row["mean_interval_s"],
            "max_interval_s": row["max_interval_s"],
            "gap_share": row["gap_share"],
            "mq2_max_relative_deviation": identity.loc[device, "max_rel_dev"],
            "glitches_temp": int(glitch_counts.loc[device, "temp"]),
            "glitches_humidity": int(glitch_counts.loc[device, "humidity"]),
            "temp_median_c": units.loc[device, "temp_median"],
            "temp_median_if_fahrenheit_c": units.loc[device, "as_f_median_c"],
        }
    metrics["by_device"] = by_device
    if ks is not None:
        metrics["ks"] = {
            str(device): dict(zip(group["sensor"], group["ks_statistic"]))
            for device, group in ks.groupby("device", sort=True)
        }
    return metrics


def _ratio(numerator, denominator) -> float | None:
    return float(numerator / denominator) if denominator else None
