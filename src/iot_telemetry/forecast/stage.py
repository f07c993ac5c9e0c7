"""The forecast stage end to end: readings in; metrics, selection and plot data out.

The notebook notebooks/03-forecast.ipynb calls these functions in order,
with the narrative between them. The benchmark calls `run_forecast` directly.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed

from iot_telemetry.forecast.backtest import (
    FITTED,
    OK,
    BacktestResult,
    SeriesPlan,
    Task,
    make_tasks,
    run_backtest,
    run_task,
)
from iot_telemetry.forecast.params import ForecastParams
from iot_telemetry.forecast.report import (
    metrics_document,
    scaled_error_by_lead,
    select_models,
    summarize,
)
from iot_telemetry.forecast.series import RegularSeries, build_series

log = logging.getLogger(__name__)


@dataclass
class ForecastRun:
    """Everything one run of the stage computed.

    Attributes:
        series: the regular series, one per device and target.
        result: plans, per-fold scores and forecast steps of the backtest.
        summary: one row per device, target, horizon and model.
        selection: the chosen model per series, with its score and reason.
        selected: selection.json's document, with the refitted parameters.
        metrics: forecast.json's document.
        lead_errors: mean absolute scaled error per lead time and model.
        seconds: wall time of the run.
    """

    series: list[RegularSeries]
    result: BacktestResult
    summary: pd.DataFrame
    selection: pd.DataFrame
    selected: dict
    metrics: dict
    lead_errors: pd.DataFrame
    seconds: float


def load_input(readings_path: str, sample_days: float, seed: int) -> pd.DataFrame:
    """Load readings.parquet, or a small twin sample when the path is "".

    Raises:
        InputError: the path does not exist or lacks a readings column.
    """
    if not readings_path:
        from iot_telemetry.data.sample import sample_readings

        return sample_readings(days=sample_days, seed=seed)
    from iot_telemetry.data.readers import load_readings
    from iot_telemetry.paths import resolve

    return load_readings(resolve(readings_path))


def run_forecast(readings: pd.DataFrame, params: ForecastParams) -> ForecastRun:
    """Build the series, backtest every model, select and refit the best ones.

    Raises:
        InputError: a target column is missing or the reading times are naive.
    """
    started = time.perf_counter()
    series = build_series(readings, params.targets, params.resample_rule,
                          params.interpolate_limit_steps)
    result = run_backtest(series, params)
    summary = summarize(result.scores)
    selection = select_models(summary, params.selection_metric)
    selected = refit_selected(result, selection, summary, params)
    metrics = metrics_document(result, summary, selection, settings_of(params))
    lead_errors = scaled_error_by_lead(result.forecasts, params.step / pd.Timedelta(minutes=1),
                                       list(params.models))
    seconds = time.perf_counter() - started
    metrics["stage_seconds"] = round(seconds, 2)
    log.info("forecast stage took %.1f s", seconds)
    return ForecastRun(series, result, summary, selection, selected, metrics, lead_errors,
                       seconds)


def settings_of(params: ForecastParams) -> dict:
    """Return the settings that shape the results, for the metrics file."""
    return {
        "targets": list(params.targets),
        "resample_rule": params.resample_rule,
        "interpolate_limit_minutes": params.interpolate_limit_minutes,
        "season_hours": params.season_hours,
        "horizons_hours": list(params.horizons_hours),
        "n_cutoffs": params.n_cutoffs,
        "models": list(params.models),
        "selection_metric": params.selection_metric,
    }


def refit_selected(
    result: BacktestResult,
    selection: pd.DataFrame,
    summary: pd.DataFrame,
    params: ForecastParams,
) -> dict:
    """Refit each series' chosen model on all its data; return selection.json.

    The refit uses the same code path as a backtest fold, with the cutoff at
    the last grid label, so its variant (with or without season) and its
    fitted parameters are the ones a forecast from now on would use. Each
    entry carries the interval scales fitted on the model's latest backtest folds
    (forecast/calibrate.py); a forecast from the refit multiplies its
    half-intervals by them, band by band.
    """
    plans = result.plans
    chosen = selection.dropna(subset=["model"]).set_index(["device", "target"])["model"]
    refits: list[Task] = []
    for task in make_tasks(_full_history_plans(plans), params):
        model = chosen.get((task.device, task.target))
        if model is not None:
            task.models = (model,)
            refits.append(task)
    if params.n_jobs == 1 or len(refits) <= 1:
        runs = [run_task(task) for task in refits]
    else:
        runs = Parallel(n_jobs=params.n_jobs)(delayed(run_task)(task) for task in refits)
    fitted = {(run.device, run.target): run for batch in runs for run in batch}

    document = {
        "selection_metric": params.selection_metric,
        "resample_rule": params.resample_rule,
        "season_steps": params.season_steps,
        "series": {},
    }
    for row in selection.itertuples():
        key = (row.device, row.target)
        entry = {"device": row.device, "target": row.target, "model": row.model,
                 "score": None if pd.isna(row.score) else float(row.score),
                 "reason": row.reason}
        run = fitted.get(key)
        if run is not None:
            plan = next(p for p in plans if (p.series.device, p.series.target) == key)
            values = plan.series.values
            entry.update(
                status=run.status,
                variant=run.variant,
                note=run.note,
                fitted_on={"start": values.index[0].isoformat(),
                           "end": values.index[-1].isoformat(), "n_points": run.n_train},
                params=run.params if run.status == FITTED else {},
                interval_scales=[band.as_dict(params.step) for band in
                                 result.interval_scales.get((*key, row.model), [])],
                backtest=_backtest_metrics(summary, key, row.model),
            )
        document["series"][f"{row.device}/{row.target}"] = entry
    return document


def _full_history_plans(plans: list[SeriesPlan]) -> list[SeriesPlan]:
    """Copy each backtested plan with one cutoff at the series' last label."""
    full = []
    for plan in plans:
        if plan.status == OK:
            full.append(SeriesPlan(plan.series, plan.status, plan.flags, plan.notes,
                                   [plan.series.values.index[-1]], plan.steps, plan.windows))
    return full


def _backtest_metrics(summary: pd.DataFrame, key: tuple[str, str], model: str) -> dict:
    rows = summary[(summary["device"] == key[0]) & (summary["target"] == key[1])
                   & (summary["model"] == model)]
    out = {}
    for row in rows.itertuples():
        out[f"{row.requested_horizon_hours:g}h"] = {
            "horizon_hours": row.horizon_hours,
            **{name: None if pd.isna(getattr(row, name)) else float(getattr(row, name))
               for name in ("mae", "rmse", "mase", "coverage_80", "coverage_95")},
        }
    return out


def write_outputs(
    run: ForecastRun,
    metrics_path: str = "",
    backtest_path: str = "",
    selection_path: str = "",
    lead_errors_path: str = "",
) -> list[Path]:
    """Write the files the DVC stage declares; an empty path skips that file.

    Relative paths resolve from the project root.
    """
    from iot_telemetry.paths import resolve

    written = []
    documents = {metrics_path: run.metrics, selection_path: run.selected}
    for path, document in documents.items():
        if path:
            target = _prepare(resolve(path))
            target.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
            written.append(target)
    if backtest_path:
        target = _prepare(resolve(backtest_path))
        frame = run.result.scores.copy()
        frame["cutoff"] = frame["cutoff"].map(lambda t: "" if pd.isna(t) else t.isoformat())
        frame.to_csv(target, index=False, float_format="%.6g")
        written.append(target)
    if lead_errors_path:
        target = _prepare(resolve(lead_errors_path))
        run.lead_errors.to_csv(target, index=False, float_format="%.6g")
        written.append(target)
    log.info("wrote %s", ", ".join(str(p) for p in written) or "no files")
    return written


def _prepare(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
