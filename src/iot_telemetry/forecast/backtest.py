"""Rolling-origin backtest of every model on every regular series.

Leakage-proof by construction: each fit is a `Task` that carries only the
series up to its cutoff (inclusive), and is run in a joblib worker that
never receives the rest. Forecasts are scored against the readings after the
cutoff only when they come back. `make_tasks` checks the slice, and
`run_model` checks that a forecast starts one grid step after its cutoff.

Each horizon is scored on cutoffs spaced one of its own windows apart,
ending one window before the last reading, so its test windows do not
overlap, and spanning `n_cutoffs` windows of the longest horizon. With
`fold_spacing` "shortest", a 6 h horizon next to a 24 h one thus gets four
times the folds. The 24 h cutoffs are among them, and both horizons are
scored on the first steps of the same forecasts. With "longest", every
horizon uses the longest one's cutoffs. When a series is too short for the
longest horizon, the horizon shrinks to what fits, and the series' notes
state it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from iot_telemetry.forecast.base import LEVELS, ModelOptions
from iot_telemetry.forecast.calibrate import BandScale, apply_scales, band_edges, fit_scales
from iot_telemetry.forecast.metrics import mase_scale, score
from iot_telemetry.forecast.models import MODELS, ModelSpec
from iot_telemetry.forecast.params import ForecastParams
from iot_telemetry.forecast.series import RegularSeries, gaps_of

log = logging.getLogger(__name__)

# Series status: why a series was or was not backtested.
OK = "ok"
NO_DATA = "no_data"
SINGLE_READING = "single_reading"
CONSTANT = "constant"
TOO_LITTLE_DATA = "too_little_data"
# Series flags: conditions a backtested series carries.
HORIZON_SHORTENED = "horizon_shortened"
NO_SEASON = "no_season"
LONG_GAPS = "long_gaps"
TIMEZONE_CONVERTED = "timezone_converted"
UNCALIBRATED = "uncalibrated"

# Model run status.
FITTED = "ok"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass
class Window:
    """One requested horizon, the horizon the backtest could use, and its folds.

    Attributes:
        cutoffs: the scored cutoffs of this horizon, oldest first.
    """

    requested_hours: float
    steps: int
    hours: float
    cutoffs: list[pd.Timestamp] = field(default_factory=list)


@dataclass
class SeriesPlan:
    """The backtest's decisions for one series, with their reasons.

    Attributes:
        status: OK, or the reason the series is not backtested.
        flags: conditions of a backtested series (HORIZON_SHORTENED, ...).
        notes: one sentence per status or flag, with the numbers behind it.
        cutoffs: last training label of each scored fold, oldest first: the
            union of the windows' cutoffs.
        steps: forecast length in grid steps (the longest window).
        windows: one per requested horizon.
        calibration_cutoffs: last training label of each calibration fold,
            oldest first, all before `cutoffs[0]`; their forecasts are not
            scored, they calibrate the intervals of the folds after them.
        spacing: grid steps between folds (the shortest window's steps with
            `fold_spacing` "shortest", else `steps`).
    """

    series: RegularSeries
    status: str = OK
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cutoffs: list[pd.Timestamp] = field(default_factory=list)
    steps: int = 0
    windows: list[Window] = field(default_factory=list)
    calibration_cutoffs: list[pd.Timestamp] = field(default_factory=list)
    spacing: int = 0


@dataclass
class Task:
    """One fold of one series: the training slice and the models to fit on it."""

    device: str
    target: str
    cutoff: pd.Timestamp
    steps: int
    train: pd.Series
    models: tuple[str, ...]
    season: int
    min_train_steps: int
    options: ModelOptions
    specs: dict[str, ModelSpec] | None = None


@dataclass
class ModelRun:
    """The outcome of fitting one model on one training slice."""

    device: str
    target: str
    model: str
    cutoff: pd.Timestamp
    status: str
    note: str = ""
    variant: str = ""
    fit_seconds: float = float("nan")
    n_train: int = 0
    forecast: pd.DataFrame | None = None
    params: dict = field(default_factory=dict)


@dataclass
class BacktestResult:
    """Everything the backtest produced, in tidy tables.

    Attributes:
        plans: one SeriesPlan per series.
        scores: one row per device, target, model, requested horizon and
            cutoff, with status, note and metrics (NaN where not scored).
        forecasts: one row per forecast step of the longest window of each
            scored fold, calibrated, with the actual value and the MASE scale
            of its fold.
        interval_scales: per (device, target, model), the band scales fitted
            on the raw forecasts of the folds within `calibration_folds`
            longest horizons before the last reading, for forecasts after it.
    """

    plans: list[SeriesPlan]
    scores: pd.DataFrame
    forecasts: pd.DataFrame
    interval_scales: dict[tuple[str, str, str], list[BandScale]] = field(default_factory=dict)


def _hours(steps: int, step: pd.Timedelta) -> float:
    return round(steps * step / pd.Timedelta(hours=1), 4)


def _text_hours(steps: int, step: pd.Timedelta) -> str:
    """Format a number of grid steps as hours for notes, such as "24.1 h"."""
    return f"{steps * step / pd.Timedelta(hours=1):.1f} h"


def plan_series(series: RegularSeries, params: ForecastParams) -> SeriesPlan:
    """Decide status, horizon and cutoffs of one series.

    The longest requested horizon is kept when the series contains, before
    the first cutoff, one season plus a step for the seasonal naive baseline
    (and at least `min_train_hours`), followed by `n_cutoffs` test windows.
    Otherwise the horizon shrinks to what fits, in whole hours when at least
    one hour. When not even `min_horizon_hours` fits with the season, the
    season is dropped from the requirement, and seasonal naive is skipped.
    """
    plan = SeriesPlan(series)
    step = params.step
    if series.source_timezone:
        plan.flags.append(TIMEZONE_CONVERTED)
        plan.notes.append(f"input times were in {series.source_timezone}, converted to UTC")
    if _set_unusable_status(plan, series):
        return plan
    if series.gaps:
        longest = max(length for _, length in series.gaps)
        plan.flags.append(LONG_GAPS)
        plan.notes.append(
            f"{len(series.gaps)} gap(s) longer than the {params.interpolate_limit_minutes:g} min "
            f"interpolation limit stay missing (longest {_text_hours(longest, step)}); "
            "ETS and STL + ARIMA fit on the data after the last gap before each cutoff"
        )

    steps = _forecast_steps(plan, params)
    if steps is None:
        return plan
    plan.steps = steps
    _add_windows(plan, params)
    _add_cutoffs(plan, params)
    return plan


def _add_cutoffs(plan: SeriesPlan, params: ForecastParams) -> None:
    """Set each window's scored cutoffs, their union, the spacing and the calibration folds.

    A window of w steps gets the cutoffs n - 1 - w k (n grid labels) that
    leave at most `n_cutoffs` longest windows after them. With
    `fold_spacing` "longest" every window takes the longest one's cutoffs.
    """
    n = len(plan.series.values)
    index = plan.series.values.index
    span = params.n_cutoffs * plan.steps
    shortest = params.fold_spacing == "shortest"
    plan.spacing = min(w.steps for w in plan.windows) if shortest else plan.steps
    for window in plan.windows:
        every = window.steps if shortest else plan.steps
        window.cutoffs = [index[n - 1 - every * k] for k in range(span // every, 0, -1)]
    plan.cutoffs = sorted({cutoff for window in plan.windows for cutoff in window.cutoffs})
    _add_calibration_folds(plan, params, n - 1 - span)


def _add_calibration_folds(plan: SeriesPlan, params: ForecastParams, first: int) -> None:
    """Add calibration cutoffs, `plan.spacing` apart, before position `first`.

    They span `calibration_folds` longest windows: two folds with spacing
    "longest", eight of 6 h before a 24 h horizon with "shortest". A
    calibration fold needs the same history before its cutoff as the first
    scored fold (the season plus a step, unless the series runs without it).
    Fewer folds than requested are noted. None at all flags UNCALIBRATED:
    the first scored fold then has nothing to calibrate on.
    """
    if params.calibration_folds == 0:
        return
    need = max(2, params.hours_to_steps(params.min_train_hours))
    if NO_SEASON not in plan.flags:
        need = max(need, params.season_steps + 1)
    expected = params.calibration_folds * plan.steps // plan.spacing
    positions = [first - plan.spacing * k for k in range(expected, 0, -1)]
    positions = [p for p in positions if p + 1 >= need]
    plan.calibration_cutoffs = [plan.series.values.index[p] for p in positions]
    if len(positions) == expected:
        return
    window = _text_hours(plan.steps, params.step)
    if not positions:
        plan.flags.append(UNCALIBRATED)
        plan.notes.append(
            f"no room for a calibration fold of {window} before the first cutoff: the first "
            "scored fold keeps the models' own intervals, and later folds are calibrated "
            "on the scored folds before them"
        )
    else:
        plan.notes.append(
            f"{len(positions)} of {expected} calibration folds of {window} fit "
            "before the first cutoff"
        )


def _forecast_steps(plan: SeriesPlan, params: ForecastParams) -> int | None:
    """Return the forecast length in steps, or None with TOO_LITTLE_DATA set."""
    n = len(plan.series.values)
    step = params.step
    min_train = max(2, params.hours_to_steps(params.min_train_hours))
    requested = max(1, params.hours_to_steps(max(params.horizons_hours)))
    min_steps = max(1, params.hours_to_steps(params.min_horizon_hours))

    # With the season before the first cutoff, then without it.
    steps = min(requested, (n - max(min_train, params.season_steps + 1)) // params.n_cutoffs)
    if steps < min_steps:
        steps = min(requested, (n - min_train) // params.n_cutoffs)
        if steps >= min_steps:
            plan.flags.append(NO_SEASON)
            plan.notes.append(
                f"{_text_hours(n, step)} of data is too little for a daily season before "
                f"{params.n_cutoffs} test windows: seasonal naive is skipped and the "
                "other models run without their season"
            )
    if steps < min_steps:
        need = min_train + params.n_cutoffs * min_steps
        plan.status = TOO_LITTLE_DATA
        plan.notes.append(
            f"{_text_hours(n, step)} of data; a backtest needs at least {_text_hours(need, step)} "
            f"({params.min_train_hours:g} h of training plus {params.n_cutoffs} windows of "
            f"{params.min_horizon_hours:g} h)"
        )
        return None

    per_hour = params.hours_to_steps(1.0)
    if steps < requested and per_hour and steps >= per_hour:
        steps = steps // per_hour * per_hour
    return steps


def _add_windows(plan: SeriesPlan, params: ForecastParams) -> None:
    """Add one window per requested horizon, noting each one shortened."""
    step = params.step
    n = len(plan.series.values)
    for hours in params.horizons_hours:
        requested_steps = max(1, params.hours_to_steps(hours))
        used = min(requested_steps, plan.steps)
        plan.windows.append(Window(hours, used, _hours(used, step)))
        if used < requested_steps:
            if HORIZON_SHORTENED not in plan.flags:
                plan.flags.append(HORIZON_SHORTENED)
            plan.notes.append(
                f"{hours:g} h horizon shortened to {_text_hours(used, step)}: "
                f"{_text_hours(n, step)} of data cannot hold the training history and "
                f"{params.n_cutoffs} windows of {hours:g} h"
            )


def _set_unusable_status(plan: SeriesPlan, series: RegularSeries) -> bool:
    """Set a status for a series no model can use; return whether it was set."""
    observed = series.values.dropna()
    if series.n_readings == 0 or observed.empty:
        plan.status = NO_DATA
        plan.notes.append(f"no {series.target} readings")
    elif series.n_readings == 1 or len(observed) == 1:
        plan.status = SINGLE_READING
        plan.notes.append(
            f"{series.n_readings} reading(s) in one grid step at "
            f"{observed.index[0].isoformat()}: nothing to fit"
        )
    elif float(observed.max() - observed.min()) == 0.0:
        plan.status = CONSTANT
        plan.notes.append(
            f"constant series: all {series.n_readings} readings are "
            f"{float(observed.iloc[0]):g} (a stuck sensor?); nothing to forecast"
        )
    return plan.status != OK


def make_tasks(
    plans: list[SeriesPlan],
    params: ForecastParams,
    specs: dict[str, ModelSpec] | None = None,
) -> list[Task]:
    """Cut one training slice per fold, ending at the cutoff.

    Raises:
        RuntimeError: a slice reaches past its cutoff (a bug, never data).
    """
    options = ModelOptions(
        arima_order=tuple(params.arima_order),
        prophet_uncertainty_samples=params.prophet_uncertainty_samples,
        seed=params.seed,
    )
    tasks = []
    for plan in plans:
        if plan.status != OK:
            continue
        for cutoff in [*plan.calibration_cutoffs, *plan.cutoffs]:
            train = plan.series.values.loc[:cutoff]
            if train.index[-1] > cutoff:
                raise RuntimeError(f"training slice ends after its cutoff {cutoff}")
            tasks.append(
                Task(
                    device=plan.series.device,
                    target=plan.series.target,
                    cutoff=cutoff,
                    steps=plan.steps,
                    train=train,
                    models=tuple(params.models),
                    season=params.season_steps,
                    min_train_steps=max(2, params.hours_to_steps(params.min_train_hours)),
                    options=options,
                    specs=specs,
                )
            )
    return tasks


def run_task(task: Task) -> list[ModelRun]:
    """Fit every model of a task on its training slice.

    A model's exception becomes a FAILED run (see `run_model`).
    """
    specs = task.specs or MODELS
    return [run_model(specs[name], task) for name in task.models]


def run_model(spec: ModelSpec, task: Task) -> ModelRun:
    """Fit one model on the task's slice and forecast `task.steps` after the cutoff.

    Models that cannot take NaN get the data after the last unfilled gap.
    When the slice ends in a gap, the model forecasts from its last reading
    and the steps up to the cutoff are dropped, so every forecast starts one
    grid step after the cutoff. A model that raises gets status FAILED with
    the error as its note.
    """
    run = ModelRun(task.device, task.target, spec.name, task.cutoff, SKIPPED)
    data, notes = _usable_history(spec, task.train)
    run.n_train = int(data.notna().sum())
    step = task.train.index.freq
    seasonal, reason = _choose_variant(spec, data, task)
    if seasonal is None:
        run.note = reason
        return run
    if reason:
        notes.append(reason)

    offset = int((task.cutoff - data.index[-1]) / step)
    if spec.load is not None:
        spec.load()
    started = time.perf_counter()
    try:
        # One BLAS thread per fit: the small matrices of a state-space filter
        # run slower when threads contend, and joblib parallelises the folds.
        with threadpool_limits(1):
            forecast = spec.fit_predict(
                data, offset + task.steps, task.season if seasonal else None, task.options
            )
    except Exception as error:  # noqa: BLE001 - any model error becomes a status
        run.status, run.note = FAILED, f"{type(error).__name__}: {error}"
        log.warning("%s failed on %s/%s at %s: %s", spec.name, task.device, task.target,
                    task.cutoff, run.note)
        return run
    run.fit_seconds = time.perf_counter() - started

    frame = forecast.frame.iloc[offset:]
    if len(frame) != task.steps or frame.index[0] != task.cutoff + step:
        raise RuntimeError(f"{spec.name} returned a forecast that does not start after "
                           f"its cutoff {task.cutoff}")
    if frame["point"].isna().any():
        run.status, run.note = FAILED, "model returned NaN point forecasts"
        return run
    run.status, run.forecast, run.params = FITTED, frame, forecast.params
    run.variant = forecast.variant
    run.note = "; ".join(notes)
    return run


def _usable_history(spec: ModelSpec, train: pd.Series) -> tuple[pd.Series, list[str]]:
    """Return the part of `train` a model can use and notes on what was cut."""
    notes = []
    data = train
    if not spec.handles_missing:
        gaps = gaps_of(train)
        if gaps:
            start, length = gaps[-1]
            data = train.loc[start + length * train.index.freq :]
            notes.append(f"fitted on the {_text_hours(len(data), train.index.freq)} after the "
                         "last unfilled gap")
    last = data.last_valid_index()
    first = data.first_valid_index()
    return data.loc[first:last], notes


def _choose_variant(spec: ModelSpec, data: pd.Series, task: Task) -> tuple[bool | None, str]:
    """Return (seasonal?, note); seasonal is None when the model cannot run."""
    freq = data.index.freq
    have = len(data)
    if spec.seasons_required:
        need = spec.min_steps(task.season, task.min_train_steps, seasonal=True)
        if have >= need:
            return True, ""
        shortfall = (f"its daily season needs {_text_hours(need, freq)} of history before the "
                     f"cutoff, {_text_hours(have, freq)} available")
        if not spec.drops_season:
            return None, f"not fitted: {shortfall}"
        if have >= task.min_train_steps:
            return False, f"fitted without its season: {shortfall}"
    if have < task.min_train_steps:
        return None, (f"not fitted: needs {_text_hours(task.min_train_steps, freq)} of history "
                      f"before the cutoff, {_text_hours(have, freq)} available")
    return False, ""


def run_backtest(
    series: list[RegularSeries],
    params: ForecastParams,
    specs: dict[str, ModelSpec] | None = None,
) -> BacktestResult:
    """Plan, fit in parallel, and score every series, model and fold.

    Args:
        series: regular series from `build_series`.
        params: forecast settings; `n_jobs` worker processes fit the folds.
        specs: model table to use instead of MODELS (tests register spies).

    Returns:
        The plans, the tidy score table and the forecast steps.
    """
    plans = [plan_series(item, params) for item in series]
    tasks = make_tasks(plans, params, specs)
    log.info("backtest: %d series, %d folds, models %s, %d jobs", len(plans), len(tasks),
             ", ".join(params.models), params.n_jobs)
    started = time.perf_counter()
    if params.n_jobs == 1 or len(tasks) <= 1:
        batches = [run_task(task) for task in tasks]
    else:
        batches = Parallel(n_jobs=params.n_jobs)(delayed(run_task)(task) for task in tasks)
    log.info("backtest fits took %.1f s", time.perf_counter() - started)

    runs = [run for batch in batches for run in batch]
    scores, forecasts, scales = score_runs(plans, runs, params)
    return BacktestResult(plans, scores, forecasts, scales)


def score_runs(
    plans: list[SeriesPlan], runs: list[ModelRun], params: ForecastParams
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Calibrate each run's intervals, then score it against the readings after its cutoff.

    Runs of one series and model are taken oldest first, so each scored fold
    is calibrated on the raw forecasts of the folds whose cutoffs lie within
    `calibration_folds` longest windows before it (calibration folds or
    scored ones), as far as their readings reach its cutoff. Older folds are
    left out: they trained on less history and missed by more, so they would
    widen later intervals too much. Calibration folds are not scored, and a
    scored fold only for the windows whose cutoffs include it. The scores
    keep the uncalibrated coverage too.

    Returns:
        The score table, the calibrated forecast steps, and per series and
        model the scales fitted on all its folds (see BacktestResult).
    """
    by_series = {(p.series.device, p.series.target): p for p in plans}
    rows, steps = [], []
    history: dict[tuple[str, str, str], list[pd.DataFrame]] = {}
    for run in sorted(runs, key=lambda r: (r.device, r.target, r.model, r.cutoff)):
        plan = by_series[(run.device, run.target)]
        actual = plan.series.values
        earlier = history.setdefault((run.device, run.target, run.model), [])
        raw = None if run.forecast is None else _step_frame(run, run.forecast, actual)
        if run.cutoff in plan.calibration_cutoffs:
            if raw is not None:
                earlier.append(raw)
            continue
        forecast, bands = run.forecast, []
        if forecast is not None and params.calibration_folds:
            edges = band_edges([window.steps for window in plan.windows])
            past = recent_folds(earlier, run.cutoff, _calibration_span(plan, params))
            bands = fit_scales(raw.iloc[:0] if past is None else past, run.cutoff, edges)
            forecast = apply_scales(run.forecast, bands)
        if raw is not None:
            earlier.append(raw)
        scale, lag = mase_scale(actual.loc[: run.cutoff], params.season_steps)
        windows = [window for window in plan.windows if run.cutoff in window.cutoffs]
        for window in windows:
            row = _row(plan, run.model, window, run.cutoff)
            row.update(status=run.status, note=run.note, variant=run.variant,
                       n_train=run.n_train, fit_seconds=run.fit_seconds,
                       mase_lag=lag, mase_scale=scale)
            if forecast is not None:
                row.update(score(actual, forecast.iloc[: window.steps], scale))
                uncalibrated = score(actual, run.forecast.iloc[: window.steps], scale)
                for level in LEVELS:
                    row[f"raw_coverage_{level}"] = uncalibrated[f"coverage_{level}"]
                row["calibration_points"] = sum(
                    band.n_points for band in bands
                    if band.calibrated and band.first_lead <= window.steps)
            rows.append(row)
        if forecast is not None:
            longest = max(window.steps for window in windows)
            steps.append(_step_frame(run, forecast.iloc[:longest], actual, scale))
    rows += _unplanned_rows(plans, params)
    final = {}
    if params.calibration_folds:
        for key, frames in history.items():
            plan = by_series[key[:2]]
            recent = recent_folds(frames, plan.series.values.index[-1],
                                  _calibration_span(plan, params))
            if recent is not None:
                final[key] = fit_scales(recent, None,
                                        band_edges([window.steps for window in plan.windows]))
    return _score_frame(rows), _forecast_frame(steps), final


def _calibration_span(plan: SeriesPlan, params: ForecastParams) -> pd.Timedelta:
    """Return how far back from a cutoff calibration folds may start."""
    return params.calibration_folds * plan.steps * params.step


def recent_folds(frames: list[pd.DataFrame], cutoff: pd.Timestamp,
                 span: pd.Timedelta) -> pd.DataFrame | None:
    """Stack the step frames of the folds cut in [cutoff - span, cutoff).

    Args:
        frames: one `_step_frame` per earlier fold, each with a cutoff column.
        cutoff: the fold to calibrate.
        span: how far back a fold's cutoff may lie.

    Returns:
        Their rows in one frame, or None when no fold is in range.
    """
    recent = [frame for frame in frames
              if cutoff - span <= frame["cutoff"].iloc[0] < cutoff]
    return pd.concat(recent, ignore_index=True) if recent else None


def _step_frame(run: ModelRun, forecast: pd.DataFrame, actual: pd.Series,
                scale: float = float("nan")) -> pd.DataFrame:
    """Lay out a forecast as one row per step, with its reading and lead."""
    frame = forecast.copy()
    frame["actual"] = actual.reindex(frame.index).to_numpy()
    frame["lead_steps"] = np.arange(1, len(frame) + 1)
    frame["scale"] = scale
    frame = frame.rename_axis("time").reset_index()
    frame.insert(0, "cutoff", run.cutoff)
    frame.insert(0, "model", run.model)
    frame.insert(0, "target", run.target)
    frame.insert(0, "device", run.device)
    return frame


def _row(plan: SeriesPlan, model: str, window: Window, cutoff) -> dict:
    return {
        "device": plan.series.device,
        "target": plan.series.target,
        "model": model,
        "requested_horizon_hours": window.requested_hours,
        "horizon_hours": window.hours,
        "cutoff": cutoff,
        "series_status": plan.status,
        "series_flags": ",".join(plan.flags),
    }


def _unplanned_rows(plans: list[SeriesPlan], params: ForecastParams) -> list[dict]:
    """Build one SKIPPED row per model and horizon of each series not backtested."""
    rows = []
    for plan in plans:
        if plan.status == OK:
            continue
        for hours in params.horizons_hours:
            for model in params.models:
                row = _row(plan, model, Window(hours, 0, float("nan")), pd.NaT)
                row.update(status=SKIPPED, note="; ".join(plan.notes))
                rows.append(row)
    return rows


SCORE_COLUMNS = (
    "device", "target", "model", "requested_horizon_hours", "horizon_hours", "cutoff",
    "series_status", "series_flags", "status", "variant", "note", "n_train", "n_points",
    "mae", "rmse", "mase", "mase_lag", "mase_scale",
    *[f"{kind}_{level}" for level in LEVELS for kind in ("coverage", "width")],
    *[f"raw_coverage_{level}" for level in LEVELS], "calibration_points",
    "fit_seconds",
)


def _score_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(SCORE_COLUMNS))
    frame["cutoff"] = pd.to_datetime(frame["cutoff"], utc=True)
    for name in ("device", "target", "model", "series_status", "series_flags", "status",
                 "variant", "note"):
        frame[name] = frame[name].astype("string").fillna("")
    frame["n_train"] = frame["n_train"].fillna(0).astype("int64")
    frame["n_points"] = frame["n_points"].fillna(0).astype("int64")
    frame["calibration_points"] = frame["calibration_points"].fillna(0).astype("int64")
    frame["mase_lag"] = frame["mase_lag"].astype("Int64")
    return frame.sort_values(
        ["device", "target", "requested_horizon_hours", "model", "cutoff"], kind="stable"
    ).reset_index(drop=True)


def _forecast_frame(steps: list[pd.DataFrame]) -> pd.DataFrame:
    if steps:
        return pd.concat(steps, ignore_index=True)
    columns = ["device", "target", "model", "cutoff", "time", "point", "lower_80",
               "upper_80", "lower_95", "upper_95", "actual", "lead_steps", "scale"]
    return pd.DataFrame(columns=columns)
