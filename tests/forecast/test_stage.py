"""The stage end to end: output files, edge cases side by side, the real day, settings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from iot_telemetry.errors import InputError
from iot_telemetry.forecast.params import ForecastSection, load_forecast_params
from iot_telemetry.forecast.report import describe_device
from iot_telemetry.forecast.stage import load_input, run_forecast, write_outputs


@pytest.fixture(scope="module")
def mixed_run(make_daily, make_readings):
    """A normal device, a stuck one and one with a single reading, on an hourly grid."""
    single = make_daily(1).iloc[:1]
    readings = make_readings({
        "normal": make_daily(6),
        "stuck": make_daily(6) * 0 + 19.5,
        "single": single,
    })
    params = load_forecast_params(
        resample_rule="1h", horizons_hours=[3, 6], min_train_hours=12, n_jobs=1,
        models=["naive", "seasonal_naive", "ets"],
    )
    return run_forecast(readings, params)


def test_outputs_written(mixed_run, tmp_path):
    paths = {
        "metrics_path": tmp_path / "metrics" / "forecast.json",
        "backtest_path": tmp_path / "metrics" / "forecast_backtest.csv",
        "selection_path": tmp_path / "models" / "selection.json",
        "lead_errors_path": tmp_path / "metrics" / "lead.csv",
    }
    written = write_outputs(mixed_run, **{key: str(path) for key, path in paths.items()})
    assert sorted(written) == sorted(paths.values())

    metrics = json.loads(paths["metrics_path"].read_text())
    assert metrics["n_series"] == 6
    assert metrics["series_by_status"] == {"constant": 2, "ok": 2, "single_reading": 2}
    ets = metrics["series"]["normal/temp"]["horizons"]["6h"]["models"]["ets"]
    assert ets["status"] == "ok"
    assert ets["mae"] > 0
    assert 0 <= ets["coverage_80"] <= 1
    assert metrics["series"]["stuck/temp"]["status"] == "constant"
    assert "constant series" in metrics["series"]["stuck/temp"]["notes"][0]

    backtest = pd.read_csv(paths["backtest_path"])
    # 2 backtested series x 3 models x 3 folds x 2 horizons, plus one skipped
    # row per model and horizon for each of the 4 unusable series.
    assert len(backtest) == 2 * 3 * 3 * 2 + 4 * 3 * 2
    assert {"mae", "rmse", "mase", "coverage_80", "width_95", "fit_seconds",
            "raw_coverage_80", "calibration_points"} <= set(backtest)
    # Each lead band (1-3 h, 4-6 h) gets 3 scores from each of the 2 folds
    # before a fold, under the 10 a band needs: no fold here is calibrated.
    ok = backtest[backtest["status"] == "ok"]
    assert (ok["calibration_points"] == 0).all()
    np.testing.assert_allclose(ok["coverage_80"], ok["raw_coverage_80"])

    lead = pd.read_csv(paths["lead_errors_path"])
    assert list(lead.columns) == ["lead_hours", "naive", "seasonal_naive", "ets"]
    assert list(lead["lead_hours"]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_selection_has_fitted_params(mixed_run, tmp_path):
    path = tmp_path / "selection.json"
    write_outputs(mixed_run, selection_path=str(path))
    selected = json.loads(path.read_text())
    assert selected["selection_metric"] == "mase"
    assert selected["season_steps"] == 24
    normal = selected["series"]["normal/temp"]
    assert normal["model"] in {"naive", "seasonal_naive", "ets"}
    assert normal["status"] == "ok"
    assert normal["params"]
    assert normal["fitted_on"]["n_points"] == 144
    assert set(normal["backtest"]) == {"3h", "6h"}
    # Interval scales for forecasts from the refit: leads up to 3 h, then to 6 h,
    # from the last 2 folds (calibration_folds). That is 2 x 3 scores per band,
    # under the 10 a band needs, so the model's own intervals stay.
    near, far = normal["interval_scales"]
    assert (near["first_lead_hours"], near["last_lead_hours"]) == (1.0, 3.0)
    assert (far["first_lead_hours"], far["last_lead_hours"]) == (4.0, 6.0)
    assert near["n_points"] == far["n_points"] == 2 * 3
    assert not near["calibrated"]
    assert near["scale_80"] == 1.0
    assert far["scale_95"] == 1.0
    stuck = selected["series"]["stuck/humidity"]
    assert stuck["model"] is None
    assert "constant series" in stuck["reason"]


def test_sentences_for_every_device(mixed_run):
    normal = describe_device(mixed_run.summary, mixed_run.selection, "normal")
    assert normal.startswith("**normal**: ")
    assert "temp is best forecast by" in normal
    assert "humidity is best forecast by" in normal
    single = describe_device(mixed_run.summary, mixed_run.selection, "single")
    assert "temp was not forecast: 3 reading(s) in one grid step" in single


def test_empty_paths_write_nothing(mixed_run):
    assert write_outputs(mixed_run) == []


@pytest.mark.parametrize("spacing", ["longest", "shortest"])
def test_real_day_fits_what_it_can(mqtt_capture, spacing):
    from iot_telemetry.data.readers import read_inputs

    readings = read_inputs([mqtt_capture]).readings
    params = load_forecast_params(models=["naive", "seasonal_naive", "ets"], n_jobs=1,
                                  fold_spacing=spacing)
    run = run_forecast(readings, params)
    assert {plan.status for plan in run.result.plans} == {"ok"}
    assert {tuple(plan.flags) for plan in run.result.plans} == {
        ("no_season", "horizon_shortened", "uncalibrated")}
    summary = run.summary
    assert set(summary["horizon_hours"]) == {6.0}
    # Both horizons shrink to 6 h, so folds stay 6 h apart with either spacing.
    assert {len(plan.cutoffs) for plan in run.result.plans} == {3}
    seasonal = summary[summary["model"] == "seasonal_naive"]
    assert set(seasonal["status"]) == {"skipped"}
    assert set(seasonal["note"]) == {
        "not fitted: its daily season needs 24.1 h of history before the cutoff"
    }
    others = summary[summary["model"] != "seasonal_naive"]
    assert set(others["status"]) == {"ok"}
    assert (others["mae"] > 0).all()
    assert set(run.selection["model"]) <= {"naive", "ets"}


def test_load_input_sample_and_missing_file():
    sample = load_input("", 0.1, 0)
    assert sample["device"].nunique() == 3
    assert str(sample["time"].dtype) == "datetime64[us, UTC]"
    with pytest.raises(InputError, match="readings not found"):
        load_input("/nonexistent/readings.parquet", 0.1, 0)


def test_invalid_settings_raise():
    with pytest.raises(InputError, match="targets"):
        load_forecast_params(targets=["light"])
    with pytest.raises(InputError, match="horizon"):
        load_forecast_params(horizons_hours=[0])
    with pytest.raises(InputError, match="fixed frequency"):
        load_forecast_params(resample_rule="MS")
    with pytest.raises(InputError, match="Extra inputs"):
        load_forecast_params(horizon_hours=[6])
    with pytest.raises(InputError, match="n_cutoffs"):
        load_forecast_params(n_cutoffs=2)
    with pytest.raises(InputError, match="without repeats"):
        load_forecast_params(models=["ets", "ets"])
    with pytest.raises(InputError, match="models"):
        load_forecast_params(models=["sarimax"])


def test_params_yaml_section_fits_the_notebook(project_root):
    from iot_telemetry.pipeline import runner
    from iot_telemetry.pipeline.stages import notebook_parameters

    params = yaml.safe_load((project_root / "params.yaml").read_text())
    section = ForecastSection.model_validate(params["forecast"])
    assert section.n_jobs == 2
    notebook = project_root / "notebooks" / "03-forecast.ipynb"
    declared = runner.declared_parameters(notebook)
    parameters = notebook_parameters("forecast", params, declared)
    checked = runner.check_parameters(notebook, parameters)
    assert checked["resample_rule"] == params["base"]["resample_rule"]
    assert checked["metrics_path"] == "reports/metrics/forecast.json"
    assert checked["figures_dir"] == "reports/figures/forecast"
    assert checked["readings_path"] == "data/interim/readings.parquet"
    assert np.isclose(checked["interpolate_limit_minutes"], 15)
