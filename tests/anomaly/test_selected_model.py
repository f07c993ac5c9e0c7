"""The selected model on the small seeded benchmark and on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.anomaly.inject import FAULT_KINDS
from iot_telemetry.anomaly.model import OUTPUT_COLUMNS, STATUSES


def test_selection_prefers_rules_with_robust_jump(study):
    ranking = study.ranking()
    assert ranking[0]["candidate"] == study.selected
    assert ranking[0]["within_alarm_budget"]
    # The statistical detectors alone miss stuck sensors and MQ-2 breaks.
    assert "mq2" in study.selected.split("+")
    assert "stuck" in study.selected.split("+")


@pytest.mark.parametrize("kind", ["spike", "glitch", "stuck", "mq2_break"])
def test_selected_model_finds_kind(study, kind):
    result = study.results["input"][study.selected]["kinds"][kind]["all"]
    assert result["events"] >= 3
    assert result["recall"] >= 0.9
    assert result["f1"] >= 0.9


# TODO: the `drift` detector needs two days of training for the daily
# profile, so on this 1.5-day series no candidate within the false-alarm
# budget finds a 0.5 sigma/h drift. On the 8-day twin the selected model
# finds some (test_drift.py), but fewer than the 0.80 F1 target.
@pytest.mark.xfail(strict=True, reason="no candidate within the false-alarm budget "
                   "detects a 0.5 sigma/h drift with under two days of training")
def test_selected_model_finds_drift(study):
    result = study.results["input"][study.selected]["kinds"]["drift"]["all"]
    assert result["events"] >= 1
    assert result["recall"] >= 0.5


def test_selected_model_quiet_on_clean_data(study):
    alarms = study.results["input"][study.selected]["false_alarms"]["all"]
    assert alarms["days"] > 1.0
    assert alarms["false_alarms_per_day"] <= 1.0


def test_every_kind_evaluated(study):
    assert set(study.results["input"][study.selected]["kinds"]) == set(FAULT_KINDS)


def _frame(readings: pd.DataFrame) -> pd.DataFrame:
    return readings[["device", "ts", "co", "humidity", "lpg", "smoke", "temp", "light", "motion"]].copy()


def test_score_output_contract(selected_model, clean_readings):
    frame = _frame(clean_readings.head(500))
    scored = selected_model.score(frame)
    assert list(scored.columns) == list(OUTPUT_COLUMNS)
    assert len(scored) == len(frame)
    assert scored["flag"].dtype == bool
    assert set(scored["status"]) <= set(STATUSES)
    assert scored["ts"].tolist() == frame["ts"].tolist()


def test_nan_and_inf_are_invalid_not_flagged(selected_model, clean_readings):
    frame = _frame(clean_readings.head(300)).reset_index(drop=True)
    baseline = selected_model.score(frame)
    frame.loc[100, "temp"] = np.nan
    frame.loc[150, "humidity"] = np.inf
    frame.loc[200, "co"] = -np.inf
    frame.loc[250, "light"] = pd.NA
    scored = selected_model.score(frame)
    for row, reason in [(100, "temp:missing"), (150, "humidity:inf"), (200, "co:inf"),
                        (250, "light:missing")]:
        assert scored.loc[row, "status"] == "invalid"
        assert not scored.loc[row, "flag"]
        assert reason in scored.loc[row, "reasons"]
        assert np.isnan(scored.loc[row, "score"])
    # The other readings score as before: invalid ones stay out of history.
    others = scored.drop(index=[100, 150, 200, 250])
    assert (others["status"] == "ok").all()
    pd.testing.assert_series_equal(others["flag"], baseline["flag"].drop(index=[100, 150, 200, 250]))


def test_out_of_range_values_are_invalid(selected_model, clean_readings):
    frame = _frame(clean_readings.head(50)).reset_index(drop=True)
    frame.loc[10, "humidity"] = 130.0
    frame.loc[20, "smoke"] = 0.0
    scored = selected_model.score(frame)
    assert scored.loc[10, "reasons"] == "humidity:out_of_range"
    assert scored.loc[20, "reasons"] == "smoke:not_positive"
    assert not scored["flag"].any()


def test_constant_series_is_stuck_once(selected_model, clean_readings):
    device = clean_readings["device"].iloc[0]
    frame = _frame(clean_readings[clean_readings["device"] == device].head(2000)).reset_index(drop=True)
    for column in ("co", "humidity", "lpg", "smoke", "temp"):
        frame[column] = frame[column].iloc[0]
    scored = selected_model.score(frame)
    span = frame["ts"].iloc[-1] - frame["ts"].iloc[0]
    assert span > 2 * selected_model.device_stuck_seconds[device]
    assert (scored["status"] == "stuck").mean() > 0.5
    assert scored["flag"].sum() == 1
    assert scored.loc[scored["flag"], "reasons"].item() == "device_stuck"
    # Before the stuck limit the readings are plain, unflagged readings.
    assert (scored.loc[scored["status"] != "stuck", "status"] == "ok").all()


def test_stable_series_with_long_runs_no_stuck_alarm(selected_model, clean_readings):
    frame = _frame(clean_readings)
    scored = selected_model.score(frame)
    from iot_telemetry.features.telemetry import compute_features

    features = compute_features(frame, selected_model.profiles, selected_model.feature_config)
    # Healthy sensors here repeat one value for many minutes.
    assert features["temp_run_seconds"].max() > 600
    assert not scored["reasons"].str.contains("stuck").any()
    assert not (scored["status"] == "stuck").any()


def test_context_rows_feed_history_only(selected_model, clean_readings):
    frame = _frame(clean_readings.head(400)).reset_index(drop=True)
    full = selected_model.score(frame)
    frame["context"] = False
    frame.loc[:299, "context"] = True
    partial = selected_model.score(frame)
    assert len(partial) == 100
    np.testing.assert_allclose(partial["score"].to_numpy(), full["score"].iloc[300:].to_numpy())


def test_unknown_device_uses_fleet_profile(selected_model, clean_readings):
    frame = _frame(clean_readings.head(300)).reset_index(drop=True)
    frame["device"] = "aa:bb:cc:dd:ee:ff"
    frame.loc[200, "temp"] = 2.0
    scored = selected_model.score(frame)
    assert (scored["status"] == "unknown_device").all()
    assert scored.loc[200, "flag"]
    assert "temp" in scored.loc[200, "reasons"]


def test_rows_in_any_order_scored_by_ts(selected_model, clean_readings):
    frame = _frame(clean_readings.head(300)).reset_index(drop=True)
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    direct = selected_model.score(frame).set_index("ts")["score"]
    mixed = selected_model.score(shuffled).set_index("ts")["score"]
    pd.testing.assert_series_equal(direct.sort_index(), mixed.sort_index())


def test_only_invalid_readings_score_invalid(selected_model, clean_readings):
    frame = _frame(clean_readings.head(3)).reset_index(drop=True)
    frame["co"] = np.nan
    scored = selected_model.score(frame)
    assert len(scored) == 3
    assert (scored["status"] == "invalid").all()
    assert not scored["flag"].any()
    assert (scored["reasons"] == "co:missing").all()
    empty = selected_model.score(frame.iloc[:0])
    assert len(empty) == 0
