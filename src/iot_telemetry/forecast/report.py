"""Backtest summaries: per-model metrics, skill, model selection and sentences."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from iot_telemetry.forecast.backtest import FITTED, BacktestResult, SeriesPlan
from iot_telemetry.forecast.base import LEVELS, json_number

GROUP = ["device", "target", "requested_horizon_hours", "model"]
RAW_COVERAGE = tuple(f"raw_coverage_{level}" for level in LEVELS)
UNITS = {"temp": "°C", "humidity": "% RH", "co": "ppm", "lpg": "ppm", "smoke": "ppm"}
LABELS = {
    "naive": "naive",
    "seasonal_naive": "seasonal naive",
    "ets": "ETS",
    "stl_arima": "STL + ARIMA",
    "prophet": "Prophet",
}


def summarize(scores: pd.DataFrame) -> pd.DataFrame:
    """Pool each model's folds into one row per device, target, horizon and model.

    MAE, RMSE, coverage and width are pooled over all scored points of the
    folds; MASE is the mean of the folds' MASE, since each fold has its own
    in-sample scale. coverage_L_se is the standard error of the mean of the
    folds' coverage, and raw_coverage_L the coverage before calibration. `status` is "ok" when every fold was scored, "partial"
    when some were, else the folds' common status ("skipped" or "failed").
    Skill columns compare MAE with each baseline on the same series and
    horizon: 1 - MAE / MAE_baseline (positive is better, NaN without it).
    """
    rows = [_pool(keys, group) for keys, group in scores.groupby(GROUP, sort=True)]
    summary = pd.DataFrame.from_records(rows)
    if summary.empty:
        return summary
    for baseline in ("seasonal_naive", "naive"):
        reference = summary.loc[summary["model"] == baseline].set_index(GROUP[:3])["mae"]
        keyed = summary.set_index(GROUP[:3]).index
        base_mae = reference.reindex(keyed).to_numpy()
        summary[f"skill_vs_{baseline}"] = 1 - summary["mae"].to_numpy() / base_mae
    return summary


def _pool(keys: tuple, group: pd.DataFrame) -> dict:
    row = dict(zip(GROUP, keys))
    fitted = group[group["status"] == FITTED]
    scored = fitted[fitted["n_points"] > 0]
    n = scored["n_points"].to_numpy(dtype="float64")

    # Status and descriptive columns.
    statuses = sorted(set(group["status"]))
    if len(fitted) == len(group) and len(group):
        row["status"] = FITTED
    elif len(fitted):
        row["status"] = "partial"
    else:
        row["status"] = "/".join(statuses)
    row["horizon_hours"] = float(group["horizon_hours"].max())
    row["series_status"] = str(group["series_status"].iloc[0])
    row["series_flags"] = str(group["series_flags"].iloc[0])
    row["variant"] = ",".join(sorted({v for v in fitted["variant"] if v}))
    row["note"] = "; ".join(dict.fromkeys(reason_of(note) for note in group["note"] if note))
    row["n_folds"] = int(len(fitted))
    row["n_points"] = int(n.sum())
    row["mase_lag"] = int(group["mase_lag"].max()) if group["mase_lag"].notna().any() else None

    # Metrics pooled over the scored points of all folds.
    if n.sum() == 0:
        for name in ("mae", "rmse", "mase", *_interval_names(), *RAW_COVERAGE):
            row[name] = float("nan")
    else:
        row["mae"] = float(np.average(scored["mae"], weights=n))
        row["rmse"] = float(np.sqrt(np.average(scored["rmse"] ** 2, weights=n)))
        row["mase"] = float(scored["mase"].mean())
        for name in (*_interval_names(), *RAW_COVERAGE):
            row[name] = float(np.average(scored[name], weights=n))
    # Folds are few and errors within a fold are correlated, so the spread of
    # per-fold coverage shows how far the pooled coverage could move by chance.
    for level in LEVELS:
        folds = scored[f"coverage_{level}"].to_numpy(dtype="float64")
        row[f"coverage_{level}_se"] = (float(folds.std(ddof=1) / np.sqrt(len(folds)))
                                       if len(folds) > 1 else float("nan"))
    row["calibration_points"] = int(fitted["calibration_points"].min()) if len(fitted) else 0
    row["calibrated_folds"] = int((scored["calibration_points"] > 0).sum())
    row["fit_seconds"] = float(fitted["fit_seconds"].mean()) if len(fitted) else float("nan")
    return row


def _interval_names() -> list[str]:
    return [f"{kind}_{level}" for level in LEVELS for kind in ("coverage", "width")]


def reason_of(note: str) -> str:
    """Drop a fold's "N h available" from a note, so the folds' notes group."""
    return re.sub(r", \d+(\.\d+)? h available", "", note)


def select_models(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Pick the best model per series: lowest mean `metric` over the horizons.

    Only models scored on every fold of every horizon compete, so a model
    that failed on a hard fold cannot win on the easy ones.

    Returns:
        One row per device and target: model (None when nothing competed),
        score (the mean metric), and reason.
    """
    rows = []
    for (device, target), group in summary.groupby(["device", "target"], sort=True):
        n_horizons = group["requested_horizon_hours"].nunique()
        complete = group[(group["status"] == FITTED) & group[metric].notna()]
        counts = complete.groupby("model")[metric].count()
        eligible = counts[counts == n_horizons].index
        means = complete[complete["model"].isin(eligible)].groupby("model")[metric].mean()
        row = {"device": device, "target": target}
        if means.empty:
            notes = "; ".join(dict.fromkeys(n for n in group["note"] if n))
            row.update(model=None, score=float("nan"),
                       reason=notes or "no model was scored on every fold")
        else:
            best = means.idxmin()
            row.update(model=best, score=float(means[best]),
                       reason=f"lowest mean {metric} over {n_horizons} horizon(s) among "
                              f"{len(means)} model(s)")
        rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=["device", "target", "model", "score",
                                                     "reason"])
    # Keep None (not NaN) for "no model", so JSON gets null and `is None` holds.
    frame["model"] = pd.Series([row["model"] for row in rows], index=frame.index,
                               dtype="object")
    return frame


def metrics_document(
    result: BacktestResult, summary: pd.DataFrame, selection: pd.DataFrame, settings: dict
) -> dict:
    """Build the forecast.json metrics: settings, series status, per-model metrics.

    Metrics are nested as series -> horizon ("6h") -> model, so `dvc metrics
    show` and `dvc metrics diff` list one value per path.
    """
    statuses = [plan.status for plan in result.plans]
    document = {
        "settings": settings,
        "n_series": len(result.plans),
        "series_by_status": {s: statuses.count(s) for s in sorted(set(statuses))},
        "series": {},
    }
    best = selection.set_index(["device", "target"])["model"].to_dict()
    for plan in result.plans:
        key = (plan.series.device, plan.series.target)
        rows = summary[(summary["device"] == key[0]) & (summary["target"] == key[1])]
        entry = {
            "status": plan.status,
            "flags": list(plan.flags),
            "notes": list(plan.notes),
            "best_model": best.get(key),
            "horizons": {},
        }
        for hours, by_horizon in rows.groupby("requested_horizon_hours", sort=True):
            models = {row.model: _model_metrics(row) for row in by_horizon.itertuples()}
            entry["horizons"][f"{hours:g}h"] = {
                "horizon_hours": json_number(by_horizon["horizon_hours"].max()),
                "models": models,
            }
        document["series"][f"{key[0]}/{key[1]}"] = entry
    return document


def _model_metrics(row) -> dict:
    metrics = {"status": row.status}
    if row.note:
        metrics["note"] = row.note
    for name in ("mae", "rmse", "mase", *_interval_names(), *RAW_COVERAGE, "fit_seconds",
                 "skill_vs_seasonal_naive", "skill_vs_naive"):
        metrics[name] = json_number(getattr(row, name))
    return metrics


def describe_device(summary: pd.DataFrame, selection: pd.DataFrame, device: str) -> str:
    """Write a paragraph on how well a device's targets were forecast, one sentence each.

    A sentence names the selected model, its MAE at the longest horizon
    against both baselines, and its 80 % interval coverage, all read from
    `summary`, or states why nothing was forecast.
    """
    sentences = []
    for row in selection[selection["device"] == device].itertuples():
        if row.model is None:
            sentences.append(f"{row.target} was not forecast: {row.reason}.")
            continue
        rows = summary[(summary["device"] == device) & (summary["target"] == row.target)]
        longest = rows["requested_horizon_hours"].max()
        at = rows[rows["requested_horizon_hours"] == longest].set_index("model")
        chosen = at.loc[row.model]
        unit = UNITS.get(row.target, "")
        comparisons = []
        for baseline in ("seasonal_naive", "naive"):
            if baseline == row.model or baseline not in at.index:
                continue
            base = at.loc[baseline]
            if base["status"] == FITTED and np.isfinite(base["mae"]):
                comparisons.append(f"{base['mae']:.2f} {unit} for {LABELS[baseline]}")
            else:
                comparisons.append(f"no {LABELS[baseline]} forecast")
        against = f", against {' and '.join(comparisons)}" if comparisons else ""
        sentences.append(
            f"{row.target} is best forecast by {LABELS.get(row.model, row.model)}: "
            f"{chosen['horizon_hours']:g} h ahead its MAE is {chosen['mae']:.2f} {unit}"
            f"{against}, and its 80 % interval held {chosen['coverage_80']:.0%} of the "
            f"readings{_calibration_clause(chosen)}."
        )
    if not sentences:
        return f"**{device}**: no series."
    return f"**{device}**: " + " ".join(sentences)


def _calibration_clause(chosen: pd.Series) -> str:
    """Say what the interval held before calibration, and on how many folds it ran."""
    calibrated, folds = int(chosen["calibrated_folds"]), int(chosen["n_folds"])
    if calibrated == 0 or not np.isfinite(chosen["raw_coverage_80"]):
        return " (not calibrated)"
    raw = f"{chosen['raw_coverage_80']:.0%} before calibration"
    if calibrated < folds:
        return f" ({raw}, which ran on {calibrated} of {folds} folds)"
    return f" ({raw})"


def coverage_table(summary: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """Return the selected models' coverage before and after calibration, per horizon."""
    chosen = selection.dropna(subset=["model"])[["device", "target", "model"]]
    rows = summary.merge(chosen, on=["device", "target", "model"])
    columns = ["horizon_hours", "raw_coverage_80", "coverage_80", "coverage_80_se",
               "raw_coverage_95", "coverage_95", "coverage_95_se", "calibrated_folds",
               "n_folds"]
    return rows.set_index(GROUP)[columns]


def scaled_error_by_lead(
    forecasts: pd.DataFrame, step_minutes: float, models: list[str]
) -> pd.DataFrame:
    """Mean absolute scaled error per model and lead time, one column per model.

    The scale is each fold's MASE denominator, so series of different units
    can be averaged. Rows are lead times in hours (DVC plots' x axis); every
    model in `models` has a column, empty where it was never fitted.
    """
    frame = forecasts.dropna(subset=["actual"])
    frame = frame[np.isfinite(frame["scale"].astype("float64")) & (frame["scale"] > 0)]
    if frame.empty:
        return pd.DataFrame(columns=["lead_hours", *models])
    scaled = (frame["actual"] - frame["point"]).abs() / frame["scale"]
    table = (
        scaled.groupby([frame["lead_steps"], frame["model"]]).mean().unstack("model")
    ).reindex(columns=models)
    table.index = table.index * step_minutes / 60
    table.index.name = "lead_hours"
    return table.reset_index()


def plan_table(plans: list[SeriesPlan]) -> pd.DataFrame:
    """Tabulate each series' readings, grid, gaps, status, flags and horizon used."""
    rows = []
    for plan in plans:
        item = plan.series
        step = item.values.index.freq
        hours = (lambda steps: steps * step / pd.Timedelta(hours=1)) if step else (lambda s: 0)
        rows.append({
            "device": item.device,
            "target": item.target,
            "readings": item.n_readings,
            "grid_points": len(item.values),
            "span_hours": round(hours(len(item.values)), 2),
            "interpolated": item.n_interpolated,
            "long_gaps": len(item.gaps),
            "longest_gap_hours": round(hours(max((n for _, n in item.gaps), default=0)), 2),
            "status": plan.status,
            "flags": ", ".join(plan.flags),
            "folds": len(plan.cutoffs),
            "calibration_folds": len(plan.calibration_cutoffs),
            "horizon_hours": round(hours(plan.steps), 2),
        })
    return pd.DataFrame.from_records(rows).set_index(["device", "target"])


def metric_table(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Round the summary's headline metrics, indexed by series, horizon and model.

    Fit time is left out because it changes from run to run.
    """
    columns = ["status", "horizon_hours", "mae", "rmse", "mase", "raw_coverage_80",
               "coverage_80", "width_80", "raw_coverage_95", "coverage_95", "width_95",
               "skill_vs_seasonal_naive"]
    return summary.set_index(GROUP)[columns].round(digits)


def problem_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Count folds that were not fitted, or fitted without their season, by reason.

    One row per model, status and reason (each fold's "N h available" left
    out), with the number of series and of folds it applies to.
    """
    without_season = (scores["variant"] == "non-seasonal") & (scores["model"] != "naive")
    problems = scores[(scores["status"] != FITTED) | without_season]
    columns = ["model", "status", "reason", "series", "folds"]
    if problems.empty:
        return pd.DataFrame(columns=columns)
    problems = problems.assign(
        reason=problems["note"].map(reason_of),
        series_key=problems["device"] + "/" + problems["target"],
    ).drop_duplicates(["series_key", "model", "cutoff"])
    grouped = problems.groupby(["model", "status", "reason"], sort=True).agg(
        series=("series_key", "nunique"), folds=("series_key", "size")
    )
    return grouped.reset_index()[columns]


def note_lines(plans: list[SeriesPlan]) -> list[str]:
    """Return one Markdown bullet per distinct series note, naming its series.

    A note shared by every series is written once, for all of them.
    """
    by_note: dict[str, list[str]] = {}
    for plan in plans:
        for note in plan.notes:
            by_note.setdefault(note, []).append(plan.series.key)
    lines = []
    for note, keys in by_note.items():
        series = f"all {len(plans)} series" if len(keys) == len(plans) > 1 else ", ".join(keys)
        lines.append(f"- **{series}**: {note}")
    return lines


def describe_problems(problems: pd.DataFrame) -> str:
    """Write one sentence per row of `problem_table`, or state that none occurred."""
    if problems.empty:
        return "Every model was fitted with its season on every fold."
    sentences = []
    for row in problems.itertuples():
        label = LABELS.get(row.model, row.model)
        label = label[0].upper() + label[1:]
        if row.status == FITTED:
            outcome, reason = "fitted without its season", row.reason.split(": ", 1)[-1]
        elif row.status == "skipped":
            outcome, reason = "not fitted", row.reason.split(": ", 1)[-1]
        else:
            outcome, reason = row.status, row.reason
        sentences.append(f"{label} was {outcome} on {row.folds} fold(s) of {row.series} "
                         f"series: {reason}.")
    return " ".join(sentences)
