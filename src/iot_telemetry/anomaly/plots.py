"""Figures of the anomaly stage (matplotlib; not shipped with the model)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from iot_telemetry.paths import resolve


def save(figure, figures_dir: str, name: str) -> Path | None:
    """Save a figure as PNG under `figures_dir` ("" saves nothing)."""
    if not figures_dir:
        return None
    path = resolve(figures_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_score_table(frame: pd.DataFrame, title: str, vmax: float = 1.0):
    """Heat map of a candidates x fault kinds table of scores in [0, vmax]."""
    figure, axes = plt.subplots(figsize=(1.3 * frame.shape[1] + 3, 0.42 * frame.shape[0] + 1.2))
    values = frame.to_numpy(dtype=float)
    image = axes.imshow(values, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
    axes.set_xticks(range(frame.shape[1]), frame.columns, rotation=30, ha="right")
    axes.set_yticks(range(frame.shape[0]), frame.index)
    for (row, column), value in np.ndenumerate(values):
        text = "n/a" if np.isnan(value) else f"{value:.2f}"
        axes.text(column, row, text, ha="center", va="center",
                  color="white" if np.isnan(value) or value < 0.6 * vmax else "black", fontsize=8)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.03)
    return figure


def plot_event_examples(readings: dict[str, pd.DataFrame], events: dict[str, pd.DataFrame],
                        scored: dict[str, pd.DataFrame], margin_seconds: float = 1800.0):
    """One panel per fault kind: an injected event, its channel and the flags.

    Args:
        readings, events, scored: kind -> the run's readings, its events and
            the model's output aligned with the readings.
    """
    kinds = [kind for kind in events if len(events[kind])]
    figure, axes = plt.subplots(len(kinds), 1, figsize=(9, 2.3 * len(kinds)), squeeze=False)
    for axis, kind in zip(axes[:, 0], kinds):
        event = events[kind].iloc[0]
        column = "co" if event["target"] == "gas" else event["target"]
        run, result = readings[kind], scored[kind]
        near = ((run["device"] == event["device"]) & (run["ts"] >= event["start_ts"] - margin_seconds)
                & (run["ts"] <= event["end_ts"] + margin_seconds)).to_numpy()
        hours = (run["ts"][near] - event["start_ts"]) / 3600.0
        axis.plot(hours, run[column][near], lw=0.8, color="0.3")
        flagged = near & result["flag"].to_numpy()
        axis.scatter((run["ts"][flagged] - event["start_ts"]) / 3600.0, run[column][flagged],
                     color="crimson", s=14, zorder=3, label="flagged")
        axis.axvspan(0.0, (event["end_ts"] - event["start_ts"]) / 3600.0 or 0.01, color="orange", alpha=0.25,
                     label="injected")
        axis.set_title(f"{kind} on {column}, device {event['device']}", fontsize=9)
        axis.set_ylabel(column)
        axis.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("hours from the event's start")
    figure.tight_layout()
    return figure


def plot_flagged_neighbours(scored: pd.DataFrame, max_panels: int = 6, margin_seconds: float = 600.0):
    """Flagged real readings against their neighbours, one panel per flagged reading.

    Args:
        scored: `stage.real_check` output (readings plus score columns).
    """
    flagged = scored[scored["flag"]].head(max_panels)
    count = max(len(flagged), 1)
    figure, axes = plt.subplots(count, 1, figsize=(9, 2.2 * count), squeeze=False)
    for axis, (_, row) in zip(axes[:, 0], flagged.iterrows()):
        reason = str(row["reasons"]).split(";")[0]
        column = {"gas": "co", "mq2": "lpg"}.get(reason.split(":")[-1], reason.split(":")[-1])
        column = column if column in scored else "temp"
        near = ((scored["device"] == row["device"]) & (scored["ts"] - row["ts"]).abs().le(margin_seconds))
        window = scored[near]
        minutes = (window["ts"] - row["ts"]) / 60.0
        axis.plot(minutes, window[column], lw=0.8, color="0.3", marker=".", ms=3)
        axis.scatter([0.0], [row[column]], color="crimson", s=30, zorder=3)
        axis.set_title(f"{row['device']}: {row['reasons']}", fontsize=9)
        axis.set_ylabel(column)
    if flagged.empty:
        axes[0, 0].text(0.5, 0.5, "no flagged readings", ha="center", va="center")
    axes[-1, 0].set_xlabel("minutes from the flagged reading")
    figure.tight_layout()
    return figure
