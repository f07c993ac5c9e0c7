"""Rolling-origin backtest: cutoffs, leakage, edge-case statuses and parallel runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.forecast.backtest import (
    CONSTANT,
    FAILED,
    FITTED,
    HORIZON_SHORTENED,
    LONG_GAPS,
    NO_SEASON,
    OK,
    SINGLE_READING,
    SKIPPED,
    TIMEZONE_CONVERTED,
    TOO_LITTLE_DATA,
    UNCALIBRATED,
    make_tasks,
    plan_series,
    recent_folds,
    run_backtest,
)
from iot_telemetry.forecast.baselines import naive
from iot_telemetry.forecast.models import MODELS, ModelSpec
from iot_telemetry.forecast.series import build_series

ALL_MODELS = ["naive", "seasonal_naive", "ets", "stl_arima", "prophet"]


def _with_models(params, models, **update):
    return params.model_copy(update={"models": models, **update})


def test_plan_cutoffs_end_one_horizon_before_last(make_daily, make_regular, hourly_params):
    series = make_regular(make_daily(6))
    plan = plan_series(series, hourly_params)
    index = series.values.index
    assert plan.status == OK
    assert plan.flags == []
    assert plan.steps == 6
    assert plan.cutoffs == [index[-19], index[-13], index[-7]]
    assert [(w.requested_hours, w.steps, w.hours) for w in plan.windows] == [(6, 6, 6.0)]


def test_shorter_horizons_share_the_longest_cutoffs(make_daily, make_regular, hourly_params):
    params = hourly_params.model_copy(update={"horizons_hours": [2, 6]})
    plan = plan_series(make_regular(make_daily(6)), params)
    assert plan.steps == 6
    assert [(w.requested_hours, w.steps) for w in plan.windows] == [(2, 2), (6, 6)]


def _shortest(params, **update):
    return params.model_copy(update={"horizons_hours": [2, 6], "fold_spacing": "shortest",
                                     **update})


def test_shortest_spacing_adds_short_folds(make_daily, make_regular, hourly_params):
    series = make_regular(make_daily(6))
    plan = plan_series(series, _shortest(hourly_params))
    index = series.values.index
    assert (plan.steps, plan.spacing) == (6, 2)
    short, long = plan.windows
    # Each window's folds are one window length apart, over 3 x 6 h.
    assert short.cutoffs == [index[-1 - 2 * k] for k in range(9, 0, -1)]
    assert long.cutoffs == [index[-19], index[-13], index[-7]]
    assert plan.cutoffs == short.cutoffs
    # Calibration folds span 2 x 6 h before the first cutoff, 2 h apart.
    assert plan.calibration_cutoffs == [index[-19 - 2 * k] for k in range(6, 0, -1)]
    tasks = make_tasks([plan], hourly_params)
    assert [task.cutoff for task in tasks] == [*plan.calibration_cutoffs, *plan.cutoffs]


def test_shortest_spacing_scores_own_folds(make_daily, make_regular, hourly_params):
    params = _shortest(hourly_params, models=["naive"])
    result = run_backtest([make_regular(make_daily(6))], params)
    [plan] = result.plans
    scores = result.scores
    for window in plan.windows:
        rows = scores[scores["requested_horizon_hours"] == window.requested_hours]
        assert list(rows["cutoff"]) == window.cutoffs
        assert (rows["n_points"] == window.steps).all()
    # The steps kept per fold run to the longest window scored on it.
    lengths = result.forecasts.groupby("cutoff").size()
    assert set(lengths[plan.windows[1].cutoffs]) == {6}
    assert set(lengths.drop(plan.windows[1].cutoffs)) == {2}


def test_recent_folds_within_span():
    hour = pd.Timedelta(hours=1)
    start = pd.Timestamp("2020-07-12T00:00:00Z")
    frames = [pd.DataFrame({"cutoff": [start + k * hour] * 2, "lead_steps": [1, 2]})
              for k in range(6)]
    recent = recent_folds(frames, start + 5 * hour, 3 * hour)
    assert sorted(set(recent["cutoff"])) == [start + k * hour for k in (2, 3, 4)]
    assert recent_folds(frames, start, 3 * hour) is None


def test_shortest_spacing_has_no_leakage(make_daily, make_regular, hourly_params):
    seen: list[pd.Timestamp] = []

    def spy(train, steps, season, options):
        seen.append(train.index.max())
        return naive(train, steps, season, options)

    specs = {**MODELS, "spy": ModelSpec("spy", spy, 0, False, True)}
    params = _shortest(hourly_params, models=["naive", "ets", "spy"])
    original = make_regular(make_daily(6, seed=1))
    plan = plan_series(original, params)
    first = plan.cutoffs[0]
    values = original.values.copy()
    after = values.index > first
    values[after] = values[after] * 3 + 100

    clean = run_backtest([original], params, specs)
    assert seen == [*plan.calibration_cutoffs, *plan.cutoffs]
    dirty = run_backtest([make_regular(values)], params, specs)
    columns = ["model", "time", "point", "lower_80", "upper_80", "lower_95", "upper_95"]
    # The first fold's calibrated intervals use only folds before it, up to its cutoff.
    assert (clean.scores.query("cutoff == @first")["calibration_points"] > 0).all()
    pd.testing.assert_frame_equal(
        clean.forecasts.query("cutoff == @first")[columns].reset_index(drop=True),
        dirty.forecasts.query("cutoff == @first")[columns].reset_index(drop=True))
    later = clean.forecasts.query("cutoff > @first")
    assert not np.allclose(later[columns[2:]],
                           dirty.forecasts.query("cutoff > @first")[columns[2:]])


def test_tasks_end_at_their_cutoff(make_daily, make_regular, hourly_params):
    plan = plan_series(make_regular(make_daily(6)), hourly_params)
    tasks = make_tasks([plan], hourly_params)
    assert len(plan.calibration_cutoffs) == hourly_params.calibration_folds == 2
    assert [task.cutoff for task in tasks] == [*plan.calibration_cutoffs, *plan.cutoffs]
    for task in tasks:
        assert task.train.index[-1] == task.cutoff
        assert task.train.index[0] == plan.series.values.index[0]


def test_no_model_sees_data_after_its_cutoff(make_daily, make_regular, hourly_params):
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def spy(train, steps, season, options):
        seen.append((train.index.max(), train.dropna().index.max()))
        return naive(train, steps, season, options)

    specs = {**MODELS, "spy": ModelSpec("spy", spy, 0, False, True)}
    params = _with_models(hourly_params, [*ALL_MODELS, "spy"],
                          prophet_uncertainty_samples=100)
    original = make_regular(make_daily(6, seed=1))
    first_cutoff = plan_series(original, params).cutoffs[0]

    # Every value after the first cutoff is replaced: if any model of that fold
    # read past its cutoff, its forecast would change.
    corrupted_values = original.values.copy()
    after = corrupted_values.index > first_cutoff
    corrupted_values[after] = corrupted_values[after] * 3 + 100
    corrupted = make_regular(corrupted_values)

    clean_run = run_backtest([original], params, specs)
    seen_clean = list(seen)
    corrupted_run = run_backtest([corrupted], params, specs)

    plan = plan_series(original, params)
    assert [last for last, _ in seen_clean] == [*plan.calibration_cutoffs, *plan.cutoffs]
    columns = ["model", "time", "point", "lower_80", "upper_80", "lower_95", "upper_95"]
    for model in [*ALL_MODELS, "spy"]:
        clean = clean_run.forecasts.query("model == @model and cutoff == @first_cutoff")
        dirty = corrupted_run.forecasts.query("model == @model and cutoff == @first_cutoff")
        assert len(clean) == 6, model
        pd.testing.assert_frame_equal(clean[columns].reset_index(drop=True),
                                      dirty[columns].reset_index(drop=True), obj=model)
        # Later folds train on the corrupted values, so the test can fail.
        # (Seasonal naive's points come from a day before, but its spread changes.)
        later = corrupted_run.forecasts.query("model == @model and cutoff > @first_cutoff")
        before = clean_run.forecasts.query("model == @model and cutoff > @first_cutoff")
        assert not np.allclose(later[columns[2:]], before[columns[2:]]), model
    assert (clean_run.scores["status"] == FITTED).all()


def test_every_forecast_starts_after_its_cutoff(make_daily, make_regular, hourly_params):
    result = run_backtest([make_regular(make_daily(6))], hourly_params)
    for (_, cutoff), group in result.forecasts.groupby(["model", "cutoff"]):
        assert group["time"].min() == cutoff + pd.Timedelta(hours=1)
        assert len(group) == 6
        assert group["point"].notna().all()
        assert (group["lower_80"] <= group["point"]).all()
        assert (group["point"] <= group["upper_80"]).all()


def test_too_little_data_shortens_horizon(make_daily, make_regular, hourly_params):
    # 36 h: one season (24 + 1 steps) leaves 11 h, so 3 windows of 3 h.
    result = run_backtest([make_regular(make_daily(1.5))], hourly_params)
    [plan] = result.plans
    assert plan.status == OK
    # The first cutoff leaves 27 h before it: a 3 h calibration fold would
    # have 24 h of history, less than the season plus a step.
    assert plan.flags == [HORIZON_SHORTENED, UNCALIBRATED]
    assert plan.calibration_cutoffs == []
    assert "6 h horizon shortened to 3.0 h" in plan.notes[0]
    scores = result.scores
    assert set(scores["horizon_hours"]) == {3.0}
    assert (scores["requested_horizon_hours"] == 6).all()
    assert set(scores.loc[scores["model"] == "seasonal_naive", "status"]) == {FITTED}
    ets = scores[scores["model"] == "ets"]
    assert set(ets["variant"]) == {"non-seasonal"}
    assert ets["note"].str.startswith("fitted without its season").all()


def test_one_day_has_no_season(make_daily, make_regular, hourly_params):
    result = run_backtest([make_regular(make_daily(1))], hourly_params)
    [plan] = result.plans
    assert plan.status == OK
    assert plan.flags == [NO_SEASON, HORIZON_SHORTENED, UNCALIBRATED]
    assert plan.steps == 4
    scores = result.scores
    seasonal = scores[scores["model"] == "seasonal_naive"]
    assert set(seasonal["status"]) == {SKIPPED}
    assert seasonal["note"].str.contains("daily season needs 25.0 h").all()
    others = scores[scores["model"] != "seasonal_naive"]
    assert set(others["status"]) == {FITTED}
    # No seasonal pair in the training data: MASE is scaled by the naive MAE.
    assert set(others["mase_lag"]) == {1}
    assert others["mase"].notna().all()


def test_too_little_data_status(make_daily, make_regular, hourly_params):
    result = run_backtest([make_regular(make_daily(14 / 24))], hourly_params)
    [plan] = result.plans
    assert plan.status == TOO_LITTLE_DATA
    assert "needs at least 15.0 h" in plan.notes[0]
    assert set(result.scores["status"]) == {SKIPPED}
    assert len(result.scores) == len(hourly_params.models)


def test_constant_series_status_and_others_go_on(make_daily, make_regular, hourly_params):
    stuck = make_daily(6) * 0 + 21.0
    result = run_backtest(
        [make_regular(stuck, device="stuck"), make_regular(make_daily(6), device="fine")],
        hourly_params,
    )
    status = {plan.series.device: plan.status for plan in result.plans}
    assert status == {"stuck": CONSTANT, "fine": OK}
    stuck_rows = result.scores[result.scores["device"] == "stuck"]
    assert set(stuck_rows["status"]) == {SKIPPED}
    assert stuck_rows["note"].str.contains("constant series: all 144 readings are 21").all()
    fine_rows = result.scores[result.scores["device"] == "fine"]
    assert set(fine_rows["status"]) == {FITTED}


def test_single_reading_status(make_daily, make_regular, hourly_params):
    single = make_daily(6).iloc[:1]
    single.index.freq = "h"
    result = run_backtest([make_regular(single)], hourly_params)
    [plan] = result.plans
    assert plan.status == SINGLE_READING
    assert "2020-07-12T00:00:00+00:00" in plan.notes[0]
    assert set(result.scores["status"]) == {SKIPPED}


def test_long_gap_status_and_fit_after_gap(make_daily, make_regular, hourly_params):
    values = make_daily(7)
    values.iloc[60:72] = np.nan
    result = run_backtest([make_regular(values)], hourly_params)
    [plan] = result.plans
    assert plan.flags == [LONG_GAPS]
    assert "1 gap(s) longer than the 120 min interpolation limit" in plan.notes[0]
    ets = result.scores[result.scores["model"] == "ets"]
    assert set(ets["status"]) == {FITTED}
    assert ets["note"].str.contains("after the last unfilled gap").all()
    # ETS trains on the 72 + steps after the gap; naive on everything observed.
    naive_rows = result.scores[result.scores["model"] == "naive"]
    assert (ets["n_train"].to_numpy() < naive_rows["n_train"].to_numpy()).all()
    assert (naive_rows["n_train"] == naive_rows["n_train"].iloc[0] + np.array([0, 6, 12])).all()


def test_gap_in_test_window_is_not_scored(make_daily, make_regular, hourly_params):
    values = make_daily(6)
    values.iloc[-3:-1] = np.nan
    result = run_backtest([make_regular(values)], hourly_params)
    last_fold = result.scores[result.scores["cutoff"] == result.plans[0].cutoffs[-1]]
    assert set(last_fold["n_points"]) == {4}
    assert last_fold["mae"].notna().all()


def test_forecast_from_a_cutoff_inside_a_gap(make_daily, make_regular, hourly_params):
    values = make_daily(6)
    index = values.index
    cutoff = plan_series(make_regular(values), hourly_params).cutoffs[1]
    position = index.get_loc(cutoff)
    values.iloc[position - 4 : position + 1] = np.nan
    result = run_backtest([make_regular(values)], hourly_params)
    fold = result.forecasts[result.forecasts["cutoff"] == cutoff]
    for _, group in fold.groupby("model"):
        assert group["time"].iloc[0] == cutoff + pd.Timedelta(hours=1)
        assert len(group) == 6
    scores = result.scores
    assert (scores.loc[scores["cutoff"] <= cutoff, "status"] == FITTED).all()
    # In the next fold the gap is 6 h back: too little history after it for
    # the models that cannot take NaN, while the others use all of it.
    last = scores[scores["cutoff"] > cutoff].set_index("model")
    assert last.loc["ets", "status"] == SKIPPED
    assert last.loc["stl_arima", "note"] == (
        "not fitted: needs 12.0 h of history before the cutoff, 6.0 h available"
    )
    assert last.loc["naive", "status"] == FITTED


def test_timezone_aware_input_gives_status(make_daily, make_readings, hourly_params):
    readings = make_readings({"dev": make_daily(6)})
    berlin = readings.assign(time=readings["time"].dt.tz_convert("Europe/Berlin"))
    params = _with_models(hourly_params, ["naive", "seasonal_naive"])
    utc_result = run_backtest(build_series(readings, ["temp"], "1h", 2), params)
    berlin_result = run_backtest(build_series(berlin, ["temp"], "1h", 2), params)
    assert berlin_result.plans[0].flags == [TIMEZONE_CONVERTED]
    assert "Europe/Berlin, converted to UTC" in berlin_result.plans[0].notes[0]
    assert utc_result.plans[0].flags == []
    metrics = ["cutoff", "mae", "rmse", "mase", "coverage_80", "width_95"]
    pd.testing.assert_frame_equal(utc_result.scores[metrics], berlin_result.scores[metrics])


def test_failing_model_gets_status(make_daily, make_regular, hourly_params):
    def broken(train, steps, season, options):
        raise np.linalg.LinAlgError("singular matrix")

    specs = {**MODELS, "broken": ModelSpec("broken", broken, 0, False, True)}
    params = _with_models(hourly_params, ["naive", "broken"])
    result = run_backtest([make_regular(make_daily(6))], params, specs)
    broken_rows = result.scores[result.scores["model"] == "broken"]
    assert set(broken_rows["status"]) == {FAILED}
    assert set(broken_rows["note"]) == {"LinAlgError: singular matrix"}
    assert set(result.scores.loc[result.scores["model"] == "naive", "status"]) == {FITTED}


@pytest.mark.slow
def test_parallel_matches_sequential(make_daily, make_regular, hourly_params):
    series = [make_regular(make_daily(6, seed=s), device=f"d{s}") for s in range(3)]
    params = _with_models(hourly_params, ["naive", "seasonal_naive", "ets"])
    sequential = run_backtest(series, params)
    parallel = run_backtest(series, params.model_copy(update={"n_jobs": 2}))
    columns = ["device", "model", "cutoff", "status", "mae", "rmse", "mase", "coverage_80"]
    pd.testing.assert_frame_equal(sequential.scores[columns], parallel.scores[columns])


@pytest.mark.slow
def test_five_minute_grid_all_models(make_daily, make_regular):
    from iot_telemetry.forecast.params import load_forecast_params

    params = load_forecast_params(horizons_hours=[2, 6], n_cutoffs=3, n_jobs=1,
                                  prophet_uncertainty_samples=100)
    result = run_backtest([make_regular(make_daily(3, freq="5min"))], params)
    [plan] = result.plans
    assert plan.steps == 72
    assert plan.flags == []
    scores = result.scores
    assert (scores["status"] == FITTED).all()
    assert set(scores.loc[scores["model"] != "naive", "variant"]) == {"seasonal"}
    assert set(scores["mase_lag"]) == {288}
