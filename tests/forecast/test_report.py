"""Pooling folds, skill, model selection and generated sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.forecast.backtest import run_backtest
from iot_telemetry.forecast.plots import plot_coverage
from iot_telemetry.forecast.report import (
    coverage_table,
    describe_device,
    describe_problems,
    metric_table,
    note_lines,
    plan_table,
    problem_table,
    select_models,
    summarize,
)


def _fold(model, cutoff, mae, n_points=4, status="ok", mase=None, note="", hours=6.0):
    return {
        "device": "dev", "target": "temp", "model": model, "requested_horizon_hours": hours,
        "horizon_hours": hours, "cutoff": pd.Timestamp(cutoff, tz="UTC"),
        "series_status": "ok", "series_flags": "", "status": status, "variant": "seasonal",
        "note": note, "n_train": 100, "n_points": n_points if status == "ok" else 0,
        "mae": mae, "rmse": mae, "mase": mae if mase is None else mase, "mase_lag": 24,
        "mase_scale": 1.0, "coverage_80": 0.75, "width_80": 1.0, "coverage_95": 1.0,
        "width_95": 2.0, "raw_coverage_80": 0.5, "raw_coverage_95": 0.75,
        "calibration_points": 40, "fit_seconds": 0.5,
    }


def test_summarize_pools_folds_by_points():
    scores = pd.DataFrame([
        _fold("ets", "2020-07-15", 1.0, n_points=2),
        _fold("ets", "2020-07-16", 4.0, n_points=6),
        _fold("seasonal_naive", "2020-07-15", 2.0),
        _fold("seasonal_naive", "2020-07-16", 6.0),
        _fold("naive", "2020-07-15", 5.0),
        _fold("naive", "2020-07-16", 5.0),
    ])
    summary = summarize(scores).set_index("model")
    assert summary.loc["ets", "mae"] == pytest.approx((1 * 2 + 4 * 6) / 8)
    assert summary.loc["ets", "rmse"] == pytest.approx(np.sqrt((1 * 2 + 16 * 6) / 8))
    assert summary.loc["ets", "mase"] == pytest.approx(2.5)
    assert summary.loc["ets", "n_points"] == 8
    assert summary.loc["ets", "skill_vs_seasonal_naive"] == pytest.approx(1 - 3.25 / 4.0)
    assert summary.loc["ets", "skill_vs_naive"] == pytest.approx(1 - 3.25 / 5.0)
    assert summary.loc["seasonal_naive", "skill_vs_seasonal_naive"] == pytest.approx(0.0)


def test_summarize_coverage_standard_error():
    folds = [_fold("ets", f"2020-07-1{day}", 1.0) | {"coverage_80": cover}
             for day, cover in ((5, 0.6), (6, 0.8), (7, 1.0))]
    summary = summarize(pd.DataFrame(folds))
    [row] = summary.to_dict("records")
    assert row["coverage_80"] == pytest.approx(0.8)
    assert row["coverage_80_se"] == pytest.approx(0.2 / np.sqrt(3))
    assert row["raw_coverage_80"] == pytest.approx(0.5)
    assert row["calibration_points"] == 40
    assert row["calibrated_folds"] == 3
    table = coverage_table(summary, select_models(summary, "mae"))
    assert table.index.tolist() == [("dev", "temp", 6.0, "ets")]
    assert table.loc[("dev", "temp", 6.0, "ets"), "coverage_80"] == pytest.approx(0.8)
    fig = plot_coverage(table)
    [ax] = fig.axes
    assert ax.get_ylim() == (0, 1.02)
    assert [text.get_text() for text in ax.get_xticklabels()] == ["dev\ntemp\nETS"]


def test_summarize_partial_and_skipped_status():
    scores = pd.DataFrame([
        _fold("ets", "2020-07-15", float("nan"), status="failed", note="ValueError: boom"),
        _fold("ets", "2020-07-16", 1.0),
        _fold("seasonal_naive", "2020-07-15", float("nan"), status="skipped",
              note="not fitted: its daily season needs 24.1 h of history before the "
                   "cutoff, 6.1 h available"),
        _fold("seasonal_naive", "2020-07-16", float("nan"), status="skipped",
              note="not fitted: its daily season needs 24.1 h of history before the "
                   "cutoff, 12.1 h available"),
    ])
    summary = summarize(scores).set_index("model")
    assert summary.loc["ets", "status"] == "partial"
    assert summary.loc["ets", "mae"] == pytest.approx(1.0)
    assert summary.loc["seasonal_naive", "status"] == "skipped"
    assert summary.loc["seasonal_naive", "note"] == (
        "not fitted: its daily season needs 24.1 h of history before the cutoff"
    )
    assert np.isnan(summary.loc["ets", "skill_vs_seasonal_naive"])


def test_selection_needs_every_fold_and_horizon():
    scores = pd.DataFrame([
        # Prophet has the best 6 h score but failed at 24 h: it cannot win.
        _fold("prophet", "2020-07-15", 0.1, hours=6.0),
        _fold("prophet", "2020-07-15", float("nan"), status="failed", hours=24.0),
        _fold("ets", "2020-07-15", 0.5, hours=6.0),
        _fold("ets", "2020-07-15", 0.7, hours=24.0),
        _fold("naive", "2020-07-15", 0.4, hours=6.0),
        _fold("naive", "2020-07-15", 0.9, hours=24.0),
    ])
    selection = select_models(summarize(scores), "mase")
    [row] = selection.itertuples()
    assert row.model == "ets"
    assert row.score == pytest.approx(0.6)
    assert row.reason == "lowest mean mase over 2 horizon(s) among 2 model(s)"


def test_selection_without_candidates_gives_reason():
    scores = pd.DataFrame([_fold("ets", "2020-07-15", float("nan"), status="skipped",
                                 note="constant series: nothing to forecast")])
    [row] = select_models(summarize(scores), "mase").itertuples()
    assert row.model is None
    assert row.reason == "constant series: nothing to forecast"


def test_describe_device_reads_the_numbers():
    scores = pd.DataFrame([
        _fold("ets", "2020-07-15", 0.21),
        _fold("seasonal_naive", "2020-07-15", 0.35),
        _fold("naive", "2020-07-15", 0.48),
    ])
    summary = summarize(scores)
    text = describe_device(summary, select_models(summary, "mae"), "dev")
    assert text == (
        "**dev**: temp is best forecast by ETS: 6 h ahead its MAE is 0.21 °C, against "
        "0.35 °C for seasonal naive and 0.48 °C for naive, and its 80 % interval held "
        "75% of the readings (50% before calibration)."
    )
    uncalibrated = pd.DataFrame([_fold("ets", "2020-07-15", 0.21) | {"calibration_points": 0}])
    summary = summarize(uncalibrated)
    text = describe_device(summary, select_models(summary, "mae"), "dev")
    assert text.endswith("its 80 % interval held 75% of the readings (not calibrated).")
    partial = pd.DataFrame([_fold("ets", "2020-07-15", 0.21) | {"calibration_points": 0},
                            _fold("ets", "2020-07-16", 0.21)])
    summary = summarize(partial)
    text = describe_device(summary, select_models(summary, "mae"), "dev")
    assert text.endswith("(50% before calibration, which ran on 1 of 2 folds).")


def test_describe_device_without_seasonal_baseline():
    scores = pd.DataFrame([
        _fold("ets", "2020-07-15", 0.2),
        _fold("seasonal_naive", "2020-07-15", float("nan"), status="skipped"),
        _fold("naive", "2020-07-15", 0.3),
    ])
    summary = summarize(scores)
    text = describe_device(summary, select_models(summary, "mae"), "dev")
    assert "against no seasonal naive forecast and 0.30 °C for naive" in text


def test_report_tables_on_a_backtest(make_daily, make_regular, hourly_params):
    result = run_backtest([make_regular(make_daily(1))], hourly_params)
    summary = summarize(result.scores)
    table = metric_table(summary)
    assert "fit_seconds" not in table.columns
    # One day leaves no room for calibration folds: coverage is the models' own.
    scored = table[table["status"] == "ok"]
    assert (scored["coverage_80"] == scored["raw_coverage_80"]).all()
    assert len(table) == 4
    problems = problem_table(result.scores).set_index("model")
    assert problems.loc["seasonal_naive", "status"] == "skipped"
    assert problems.loc["seasonal_naive", "folds"] == 3
    assert problems.loc["seasonal_naive", "series"] == 1
    assert problems.loc["ets", "reason"] == (
        "fitted without its season: its daily season needs 49.0 h of history before the cutoff"
    )
    assert "naive" not in problems.index
    text = describe_problems(problem_table(result.scores))
    assert ("Seasonal naive was not fitted on 3 fold(s) of 1 series: its daily season needs "
            "25.0 h of history before the cutoff.") in text


def test_note_lines_group_shared_notes(make_daily, make_regular, hourly_params):
    series = [make_regular(make_daily(1), device="a"), make_regular(make_daily(1), device="b"),
              make_regular(make_daily(6) * 0 + 20, device="c")]
    result = run_backtest(series, hourly_params.model_copy(update={"models": ["naive"]}))
    lines = note_lines(result.plans)
    assert len(lines) == 4
    assert lines[0].startswith("- **a/temp, b/temp**: 24.0 h of data is too little")
    assert lines[2].startswith("- **a/temp, b/temp**: no room for a calibration fold of 4.0 h")
    assert lines[3].startswith("- **c/temp**: constant series")


def test_plan_table_counts_calibration_folds(make_daily, make_regular, hourly_params):
    series = [make_regular(make_daily(6), device="long"),
              make_regular(make_daily(1), device="short")]
    table = plan_table(run_backtest(series, hourly_params).plans)
    assert table.loc[("long", "temp"), "folds"] == 3
    assert table.loc[("long", "temp"), "calibration_folds"] == 2
    assert table.loc[("short", "temp"), "calibration_folds"] == 0
    assert "uncalibrated" in table.loc[("short", "temp"), "flags"]
