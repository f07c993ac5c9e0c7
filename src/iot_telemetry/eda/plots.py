"""Figures of the EDA report. Each function returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from iot_telemetry.eda.sensors import DIURNAL_SENSORS

DISTRIBUTION_SENSORS = ("temp", "humidity", "co")
UNITS = {"temp": "degC", "humidity": "% RH", "co": "ppm, MQ-2 curve"}
# Histogram bin widths: multiples of the 0.1 resolution of temp and humidity,
# so that every bin contains the same number of possible values.
BIN_WIDTHS = {"temp": 0.2, "humidity": 0.5}
INTERVAL_TICKS_S = (4, 5, 6, 8, 10, 15, 20, 30, 40)


def plot_intervals(intervals: pd.DataFrame):
    """Plot a histogram of the seconds between consecutive readings per device, log-scaled."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    positive = intervals[intervals["interval_s"] > 0]
    bins = np.logspace(np.log10(positive["interval_s"].min()),
                       np.log10(positive["interval_s"].max()), 60)
    sns.histplot(positive, x="interval_s", hue="device", bins=bins, element="step",
                 stat="probability", common_norm=False, ax=ax)
    ax.set_xscale("log")
    ticks = [tick for tick in INTERVAL_TICKS_S if bins[0] <= tick <= bins[-1]]
    ax.set_xticks(ticks, [str(tick) for tick in ticks])
    ax.minorticks_off()
    ax.set_xlabel("interval between readings (s, log scale)")
    ax.set_ylabel("share of intervals")
    ax.set_title("Sampling intervals")
    return fig


def plot_distributions(readings: pd.DataFrame, sensors=DISTRIBUTION_SENSORS):
    """Plot histograms of the float sensors, one panel per sensor, devices overlaid.

    The x range is clipped to the 0.5-99.5 % quantiles so that isolated
    glitches do not squeeze the bulk of the distribution.
    """
    fig, axes = plt.subplots(1, len(sensors), figsize=(4.2 * len(sensors), 3.5))
    for ax, sensor in zip(np.atleast_1d(axes), sensors):
        low, high = readings[sensor].quantile([0.005, 0.995])
        clipped = readings[readings[sensor].between(low, high)]
        binning = ({"binwidth": BIN_WIDTHS[sensor]} if sensor in BIN_WIDTHS
                   else {"bins": 60})
        sns.histplot(clipped, x=sensor, hue="device", element="step", stat="density",
                     common_norm=False, ax=ax, legend=ax is axes[0], **binning)
        ax.set_xlabel(f"{sensor} ({UNITS.get(sensor, '')})")
    fig.suptitle("Distributions per device")
    fig.tight_layout()
    return fig


def plot_diurnal(profile: pd.DataFrame, sensors=DIURNAL_SENSORS):
    """Plot the hourly means (UTC) per device, one panel per sensor."""
    fig, axes = plt.subplots(1, len(sensors), figsize=(4.2 * len(sensors), 3.5))
    data = profile.reset_index()
    for ax, sensor in zip(np.atleast_1d(axes), sensors):
        sns.lineplot(data, x="hour", y=sensor, hue="device", marker="o", ax=ax,
                     legend=ax is axes[0])
        ax.set_xlabel("hour of day (UTC)")
        ax.set_xticks(range(0, 24, 6))
    fig.suptitle("Diurnal profiles")
    fig.tight_layout()
    return fig


def plot_correlations(correlations: pd.DataFrame):
    """Draw one Spearman correlation heatmap per device."""
    devices = correlations.index.get_level_values("device").unique()
    fig, axes = plt.subplots(1, len(devices), figsize=(5.2 * len(devices), 4.8))
    for ax, device in zip(np.atleast_1d(axes), devices):
        sns.heatmap(correlations.loc[device], vmin=-1, vmax=1, cmap="vlag", annot=True,
                    fmt=".2f", annot_kws={"size": 7}, cbar=False, square=True, ax=ax)
        ax.set_title(device)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", labelrotation=45)
        ax.tick_params(axis="y", labelrotation=0)
    fig.suptitle("Rank correlations between sensors")
    fig.tight_layout()
    return fig


def plot_glitches(readings: pd.DataFrame, glitches: pd.DataFrame,
                  sensors=("temp", "humidity")):
    """Plot each sensor over time per device and mark the flagged glitches."""
    fig, axes = plt.subplots(len(sensors), 1, figsize=(10, 2.8 * len(sensors)), sharex=True)
    for ax, sensor in zip(np.atleast_1d(axes), sensors):
        for device, group in readings.groupby("device", sort=True):
            ax.plot(group["time"], group[sensor], linewidth=0.6, label=device)
        marked = glitches[glitches["sensor"] == sensor]
        ax.scatter(marked["time"], marked["value"], color="red", marker="x", s=18,
                   zorder=3, label="glitch")
        ax.set_ylabel(f"{sensor} ({UNITS.get(sensor, '')})")
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=7, ncol=4)
    fig.suptitle("Readings over time with flagged glitches")
    fig.tight_layout()
    return fig


def plot_ks(ks: pd.DataFrame):
    """Draw a heatmap of the twin-vs-real KS statistic, device by sensor."""
    table = ks.pivot(index="device", columns="sensor", values="ks_statistic")
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    sns.heatmap(table, vmin=0, vmax=1, cmap="rocket_r", annot=True, fmt=".2f", ax=ax)
    ax.set_title("KS distance, synthetic twin vs real day")
    return fig
