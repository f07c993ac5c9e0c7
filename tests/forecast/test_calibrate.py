"""Interval calibration: conformal scores, quantiles, bands, leakage and effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
from iot_telemetry.forecast.backtest import run_backtest
from iot_telemetry.forecast.base import forecast_frame
from iot_telemetry.forecast.calibrate import (
    MIN_POINTS,
    apply_scales,
    band_edges,
    conformal_quantile,
    fit_scales,
    interval_scores,
)
from iot_telemetry.forecast.report import summarize

CUTOFF = pd.Timestamp("2020-07-12T12:00:00Z")


def _history(actual, point=0.0, half_80=1.0, half_95=2.0, start=CUTOFF, leads=None):
    """Forecast steps with symmetric intervals around `point`, one hour apart."""
    actual = np.asarray(actual, dtype="float64")
    n = len(actual)
    return pd.DataFrame({
        "time": pd.date_range(start, periods=n, freq="1h"),
        "lead_steps": np.arange(1, n + 1) if leads is None else leads,
        "actual": actual,
        "point": point,
        "lower_80": point - half_80, "upper_80": point + half_80,
        "lower_95": point - half_95, "upper_95": point + half_95,
    })


def test_conformal_quantile_finite_sample_rank():
    scores = np.arange(1.0, 10.0)  # nine scores: ceil(10 * 0.8) = 8th smallest
    assert conformal_quantile(scores, 80) == 8.0
    assert conformal_quantile(scores, 95) == 9.0  # rank 10 is past n: the largest
    assert conformal_quantile(np.array([3.0, 1.0, 2.0, 5.0, 4.0]), 50) == 3.0


def test_scores_use_reading_side():
    history = pd.DataFrame({
        "actual": [3.0, -1.0, 0.0, 2.0, np.nan],
        "point": [0.0, 0.0, 0.0, 0.0, 0.0],
        "lower_80": [-4.0, -4.0, 0.0, 0.0, -1.0],
        "upper_80": [1.0, 1.0, 0.0, 0.0, 1.0],
    })
    # Scores: 3 above a +1 bound gives 3, 1 below a -4 bound gives 0.25, and a
    # reading on a zero-width point gives 0. A reading above a zero-width bound
    # is left out, because no factor can cover it, and so is a missing reading.
    np.testing.assert_allclose(interval_scores(history, 80), [3.0, 0.25, 0.0])


def test_band_edges_follow_windows():
    assert band_edges([72, 288]) == [(1, 72), (73, 288)]
    assert band_edges([6, 6]) == [(1, 6)]
    assert band_edges([288, 72, 12]) == [(1, 12), (13, 72), (73, 288)]


def test_fit_scales_per_band():
    # Leads 1-20 miss by 0.5 half-widths, leads 21-40 by 3 half-widths.
    errors = np.r_[np.full(20, 0.5), np.full(20, 3.0)]
    history = _history(errors, leads=np.r_[np.arange(1, 21), np.arange(21, 41)])
    near, far = fit_scales(history, None, [(1, 20), (21, 40)])
    assert (near.n_points, far.n_points) == (20, 20)
    assert near.scales == {80: 0.5, 95: 0.25}  # the 95 % half-width is 2
    assert far.scales == {80: 3.0, 95: 1.5}
    assert near.calibrated and far.calibrated


def test_fit_scales_ignores_later_readings():
    before = _history(np.full(30, 0.5), start=CUTOFF - pd.Timedelta(hours=29))
    after = _history(np.full(30, 50.0), start=CUTOFF + pd.Timedelta(hours=1))
    history = pd.concat([before, after], ignore_index=True)
    history["lead_steps"] = 1
    [band] = fit_scales(history, CUTOFF, [(1, 1)])
    assert band.n_points == 30
    assert band.scales[80] == 0.5
    # The same history without a cutoff includes the large errors.
    [unbounded] = fit_scales(history, None, [(1, 1)])
    assert unbounded.scales[80] == 50.0


def test_few_points_keep_intervals():
    history = _history(np.full(MIN_POINTS - 1, 5.0))
    [band] = fit_scales(history, None, [(1, 50)])
    assert band.n_points == MIN_POINTS - 1
    assert not band.calibrated
    assert band.scales == {80: 1.0, 95: 1.0}


def test_apply_scales_per_band():
    index = pd.date_range(CUTOFF, periods=4, freq="1h")
    point = np.array([1.0, 2.0, 3.0, 4.0])
    raw = forecast_frame(index, point, {
        "lower_80": point - 1, "upper_80": point + 2,
        "lower_95": point - 2, "upper_95": point + 4,
    })
    history = _history(np.r_[np.full(10, 0.5), np.full(10, 2.0)],
                       leads=np.r_[np.full(10, 1), np.full(10, 2)])
    bands = fit_scales(history, None, [(1, 1), (2, 2)])
    calibrated = apply_scales(raw, bands)
    # Lead 1 takes the first band's scales (0.5, 0.25), leads 2-4 the last
    # band's (2.0, 1.0): later leads than any band keep the last one.
    np.testing.assert_allclose(calibrated["point"], point)
    np.testing.assert_allclose(calibrated["lower_80"], point - [0.5, 2, 2, 2])
    np.testing.assert_allclose(calibrated["upper_80"], point + [1, 4, 4, 4])
    # A 95 % bound inside the 80 % one is moved out to it, so intervals nest.
    np.testing.assert_allclose(calibrated["lower_95"], point - [0.5, 2, 2, 2])
    np.testing.assert_allclose(calibrated["upper_95"], point + [1, 4, 4, 4])


def test_calibration_moves_coverage_to_nominal(make_daily, make_regular, hourly_params):
    # Naive intervals come from the step-to-step noise, but over hours the
    # daily cycle moves the series much further: the raw intervals are too narrow.
    series = [make_regular(make_daily(9, seed=seed), device=f"d{seed}") for seed in range(3)]
    params = hourly_params.model_copy(update={"models": ["naive"], "horizons_hours": [6, 24]})
    result = run_backtest(series, params)
    scored = result.scores[result.scores["status"] == "ok"]
    assert (scored["calibration_points"] > 0).all()
    assert len(result.plans[0].calibration_cutoffs) == 2
    summary = summarize(result.scores)
    raw = summary["raw_coverage_80"].mean()
    calibrated = summary["coverage_80"].mean()
    assert raw < 0.5
    assert abs(calibrated - 0.8) < abs(raw - 0.8) / 2
    # The same folds without calibration: same cutoffs, the models' own intervals.
    own = summarize(run_backtest(series, params.model_copy(update={"calibration_folds": 0}))
                    .scores)
    np.testing.assert_allclose(own["coverage_80"], summary["raw_coverage_80"])
    assert summary["width_80"].mean() > 1.25 * own["width_80"].mean()
    # Scales for forecasts after the last reading come from the last two folds.
    [near, far] = result.interval_scales[("d0", "temp", "naive")]
    assert (near.first_lead, near.last_lead, far.last_lead) == (1, 6, 24)
    assert near.scales[80] > 1
    assert far.scales[80] > 1


def test_zero_calibration_folds_keep_intervals(make_daily, make_regular, hourly_params):
    params = hourly_params.model_copy(update={"models": ["naive"], "calibration_folds": 0})
    result = run_backtest([make_regular(make_daily(6))], params)
    scored = result.scores[result.scores["status"] == "ok"]
    assert result.plans[0].calibration_cutoffs == []
    np.testing.assert_allclose(scored["coverage_80"], scored["raw_coverage_80"])
    assert (scored["calibration_points"] == 0).all()
    assert result.interval_scales == {}
