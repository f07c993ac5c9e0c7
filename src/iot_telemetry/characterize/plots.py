"""Figures of the characterization report. Each function returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def plot_variability(stats: pd.DataFrame, labels: pd.Series, temp_iqr_c: float,
                     humidity_iqr_pct: float):
    """Plot temp IQR against humidity IQR per device, with the thresholds as dashed lines."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    data = stats.join(labels).reset_index()
    sns.scatterplot(data, x="temp_iqr", y="humidity_iqr", hue="device", style="profile",
                    s=120, ax=ax)
    ax.axvline(temp_iqr_c, color="grey", linestyle="--", linewidth=1)
    ax.axhline(humidity_iqr_pct, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, max(stats["temp_iqr"].max(), temp_iqr_c) * 1.3)
    ax.set_ylim(0, max(stats["humidity_iqr"].max(), humidity_iqr_pct) * 1.3)
    ax.set_xlabel("temp IQR (degC)")
    ax.set_ylabel("humidity IQR (% RH)")
    ax.set_title("Variability and the stable/variable thresholds")
    ax.legend(fontsize=7)
    return fig


def plot_hourly_flags(readings: pd.DataFrame, sensors=("light", "motion")):
    """Plot the share of readings with light or motion true by UTC hour, per device."""
    fig, axes = plt.subplots(1, len(sensors), figsize=(5 * len(sensors), 3.5))
    hour = readings["time"].dt.hour.rename("hour")
    for ax, sensor in zip(np.atleast_1d(axes), sensors):
        share = readings[sensor].astype("float64").groupby(
            [readings["device"], hour]).mean().rename(sensor).reset_index()
        sns.lineplot(share, x="hour", y=sensor, hue="device", marker="o", ax=ax,
                     legend=ax is axes[0])
        ax.set_xlabel("hour of day (UTC)")
        ax.set_ylabel(f"share of readings with {sensor}")
        ax.set_xticks(range(0, 24, 6))
    fig.tight_layout()
    return fig


def plot_day_night(table: pd.DataFrame, sensors=("temp", "humidity")):
    """Plot day and night means per device, one panel per sensor.

    Points rather than bars, because the axis does not start at zero.
    """
    data = table.reset_index()
    fig, axes = plt.subplots(1, len(sensors), figsize=(5 * len(sensors), 3.5))
    for ax, sensor in zip(np.atleast_1d(axes), sensors):
        sns.pointplot(data, x="device", y=sensor, hue="period", dodge=0.3, linestyle="none",
                      markers=["o", "s"], ax=ax)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("")
    fig.tight_layout()
    return fig


def plot_confusion(confusion: pd.DataFrame):
    """Draw the cross-validated confusion matrix as a heatmap (true by predicted device)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    sns.heatmap(confusion, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_title("Device predicted from one reading (held-out folds)")
    return fig
