"""Figures of the forecast report: forecasts against readings, and skill bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from iot_telemetry.forecast.report import LABELS, UNITS
from iot_telemetry.forecast.series import RegularSeries

HISTORY_DAYS = 1.0


def plot_forecasts(
    series: list[RegularSeries],
    forecasts: pd.DataFrame,
    selection: pd.DataFrame,
    device: str,
) -> plt.Figure:
    """Draw each target of a device: readings, and every fold of its chosen model.

    Each fold's point forecast is drawn with its 80 % and 95 % bands over the
    grid values. Seasonal naive's point forecast is dashed for comparison. A
    target without a chosen model shows its readings only.
    """
    items = [item for item in series if item.device == device]
    fig, axes = plt.subplots(len(items), 1, figsize=(11, 3.2 * len(items)), squeeze=False)
    chosen = selection.set_index(["device", "target"])["model"].to_dict()
    for ax, item in zip(axes[:, 0], items):
        model = chosen.get((device, item.target))
        folds = forecasts[(forecasts["device"] == device) & (forecasts["target"] == item.target)]
        _draw_target(ax, item, folds, model)
    fig.suptitle(f"Backtest forecasts, device {device}")
    fig.tight_layout()
    return fig


def _draw_target(ax, item: RegularSeries, folds: pd.DataFrame, model: str | None) -> None:
    values = item.values
    start = values.index[-1] - pd.Timedelta(days=HISTORY_DAYS)
    if len(folds):
        start = min(start, folds["cutoff"].min() - pd.Timedelta(days=HISTORY_DAYS / 4))
    recent = values.loc[start:]
    ax.plot(recent.index, recent.to_numpy(), color="black", lw=0.8, label="readings (grid)")
    label = LABELS.get(model, model) if model else "no model"
    for number, (_, fold) in enumerate(folds[folds["model"] == model].groupby("cutoff")):
        first = number == 0
        ax.fill_between(fold["time"], fold["lower_95"], fold["upper_95"], color="tab:blue",
                        alpha=0.15, lw=0, label="95 % interval" if first else None)
        ax.fill_between(fold["time"], fold["lower_80"], fold["upper_80"], color="tab:blue",
                        alpha=0.3, lw=0, label="80 % interval" if first else None)
        ax.plot(fold["time"], fold["point"], color="tab:blue", lw=1.2,
                label=label if first else None)
        ax.axvline(fold["cutoff"].iloc[0], color="grey", lw=0.6, ls=":")
    for number, (_, fold) in enumerate(folds[folds["model"] == "seasonal_naive"]
                                       .groupby("cutoff")):
        if model != "seasonal_naive":
            ax.plot(fold["time"], fold["point"], color="tab:orange", lw=0.9, ls="--",
                    label="seasonal naive" if number == 0 else None)
    ax.set_ylabel(f"{item.target} ({UNITS.get(item.target, '')})")
    ax.set_title(f"{item.target}: {label}", loc="left", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, ncol=5)


def plot_skill(summary: pd.DataFrame) -> plt.Figure:
    """Bar chart of each model's MAE skill against seasonal naive, per horizon.

    Skill is 1 - MAE / MAE(seasonal naive): above 0 beats the baseline. When
    seasonal naive was fitted on no series (less than a day of data), the
    bars compare with naive instead and the title names that baseline.
    """
    baseline = "seasonal_naive"
    if not np.isfinite(summary.get(f"skill_vs_{baseline}", pd.Series(dtype=float))).any():
        baseline = "naive"
    column = f"skill_vs_{baseline}"
    # Models never scored (seasonal naive on a short series) get no bars.
    scored = summary.dropna(subset=[column])
    models = [m for m in summary["model"].unique() if m != baseline and m in set(scored["model"])]
    horizons = sorted(summary["requested_horizon_hours"].unique())
    fig, axes = plt.subplots(1, len(horizons), figsize=(5.5 * len(horizons), 4), squeeze=False,
                             sharey=True)
    for ax, hours in zip(axes[0], horizons):
        rows = summary[summary["requested_horizon_hours"] == hours]
        table = rows.pivot_table(index=["device", "target"], columns="model", values=column,
                                 aggfunc="first").reindex(columns=models)
        labels = [f"{device[-5:]}\n{target}" for device, target in table.index]
        width = 0.8 / max(1, len(models))
        positions = np.arange(len(table))
        for number, model in enumerate(models):
            ax.bar(positions + number * width, table[model].to_numpy(), width,
                   label=LABELS.get(model, model))
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(positions + width * (len(models) - 1) / 2, labels, fontsize=8)
        used = rows["horizon_hours"].max()
        suffix = f" (used {used:g} h)" if used < hours else ""
        ax.set_title(f"{hours:g} h ahead{suffix}", fontsize=10)
    axes[0, 0].set_ylabel(f"skill vs {LABELS[baseline]} (1 - MAE ratio)")
    axes[0, -1].legend(fontsize=8, loc="best")
    fig.suptitle(f"MAE skill against {LABELS[baseline]}; device ids shortened to their "
                 "last 5 characters")
    fig.tight_layout()
    return fig


def plot_coverage(coverage: pd.DataFrame) -> plt.Figure:
    """Draw the selected models' 80 % coverage before and after calibration.

    There is one panel per horizon. Each series gets an arrow from its raw
    coverage to the calibrated one, with a bar of one standard error across
    folds. The shaded band is 75-85 %.

    Args:
        coverage: `report.coverage_table`.
    """
    frame = coverage.reset_index()
    horizons = sorted(frame["requested_horizon_hours"].unique())
    fig, axes = plt.subplots(1, len(horizons), figsize=(5.5 * len(horizons), 3.8),
                             squeeze=False, sharey=True)
    for ax, hours in zip(axes[0], horizons):
        rows = frame[frame["requested_horizon_hours"] == hours].reset_index(drop=True)
        positions = np.arange(len(rows))
        ax.axhspan(0.75, 0.85, color="tab:green", alpha=0.12, lw=0, label="75-85 %")
        ax.axhline(0.80, color="tab:green", lw=0.8)
        ax.scatter(positions, rows["raw_coverage_80"], color="grey", marker="o",
                   label="model's own interval")
        ax.errorbar(positions, rows["coverage_80"], yerr=rows["coverage_80_se"], fmt="D",
                    color="tab:blue", capsize=3, label="calibrated (+- 1 s.e.)")
        for x, raw, calibrated in zip(positions, rows["raw_coverage_80"], rows["coverage_80"]):
            ax.annotate("", (x, calibrated), (x, raw),
                        arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.8})
        labels = [f"{d[-5:]}\n{t}\n{LABELS.get(m, m)}"
                  for d, t, m in zip(rows["device"], rows["target"], rows["model"])]
        ax.set_xticks(positions, labels, fontsize=7)
        used = rows["horizon_hours"].max() if len(rows) else hours
        suffix = f" (used {used:g} h)" if used < hours else ""
        ax.set_title(f"{hours:g} h ahead{suffix}", fontsize=10)
        ax.set_ylim(0, 1.02)
    axes[0, 0].set_ylabel("share of readings inside the 80 % interval")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    fig.suptitle("80 % interval coverage of the selected models, before and after calibration")
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, figures_dir: str, name: str) -> Path | None:
    """Save `fig` as figures_dir/name.png; an empty figures_dir saves nothing."""
    if not figures_dir:
        return None
    from iot_telemetry.paths import resolve

    folder = resolve(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=110)
    return path
