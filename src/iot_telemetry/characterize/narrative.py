"""Sentences of the characterization report that depend on the computed values."""

from __future__ import annotations

import pandas as pd


def flags_sentence(flags: pd.DataFrame) -> str:
    """Describe light and motion per device from `behaviour.light_motion` output."""
    parts = []
    for device, row in flags.iterrows():
        parts.append(f"**{device}**: {_light_phrase(row)}; {_motion_phrase(row)}.")
    return " ".join(parts)


def _light_phrase(row: pd.Series) -> str:
    if row["light_rate"] == 1.0:
        return "light on in every reading"
    if row["light_runs"] == 0:
        return "light never on"
    return (
        f"light on in {row['light_rate']:.1%} of readings, {int(row['light_runs'])} times "
        f"({row['light_runs_per_day']:.1f} a day) for {row['light_mean_run_s']:.0f} s "
        "on average"
    )


def _motion_phrase(row: pd.Series) -> str:
    if row["motion_runs"] == 0:
        return "no motion"
    return (
        f"motion in {row['motion_rate']:.2%} of readings, {int(row['motion_runs'])} runs "
        f"({row['motion_runs_per_day']:.1f} a day) of {row['motion_mean_run_readings']:.1f} "
        "readings on average"
    )
