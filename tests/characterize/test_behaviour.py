"""Light and motion runs and rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from characterize_helpers import BASE_TS, build_readings, combine
from iot_telemetry.characterize.behaviour import light_motion, true_runs
from iot_telemetry.characterize.narrative import flags_sentence


def test_runs_of_true_readings():
    flags = np.array([False, True, True, False, False, True])
    ts = np.array([0.0, 5.0, 10.0, 15.0, 20.0, 25.0])
    runs = true_runs(flags, ts)
    assert runs["start_ts"].tolist() == [5.0, 25.0]
    assert runs["readings"].tolist() == [2, 1]
    # The first run lasts until the first false reading; the last ends the series.
    assert runs["duration_s"].tolist() == [10.0, 0.0]


def test_no_runs_when_all_false():
    runs = true_runs(np.zeros(4, dtype=bool), np.arange(4.0))
    assert runs.empty


def test_light_motion_rates_and_runs():
    ts = BASE_TS + np.arange(8640) * 10.0  # one day every 10 s
    light = np.zeros(8640, dtype=bool)
    light[100:130] = True
    light[5000:5010] = True
    motion = np.zeros(8640, dtype=bool)
    motion[[7, 8, 400]] = True
    lamp = build_readings("lamp", ts, light=light, motion=motion)
    bright = build_readings("bright", ts, light=np.ones(8640, dtype=bool))
    table = light_motion(combine(lamp, bright))
    lamp_row = table.loc["lamp"]
    assert lamp_row["light_rate"] == pytest.approx(40 / 8640)
    assert lamp_row["light_runs"] == 2
    assert lamp_row["light_mean_run_readings"] == 20.0
    assert lamp_row["light_max_run_readings"] == 30
    assert lamp_row["light_mean_run_s"] == pytest.approx((300.0 + 100.0) / 2)
    assert lamp_row["light_runs_per_day"] == pytest.approx(2 / (8639 * 10 / 86400))
    assert lamp_row["motion_runs"] == 2
    assert lamp_row["motion_mean_run_readings"] == 1.5
    assert table.loc["bright", "light_rate"] == 1.0
    assert table.loc["bright", "light_runs"] == 1
    assert math.isnan(table.loc["bright", "motion_mean_run_s"])


def test_missing_flags_count_as_false():
    readings = build_readings("a", BASE_TS + np.arange(4.0), light=[True, True, False, True])
    readings.loc[1, "light"] = None
    row = light_motion(readings).loc["a"]
    assert row["light_rate"] == 0.5
    assert row["light_runs"] == 2


def test_flags_sentence_phrases():
    ts = BASE_TS + np.arange(100) * 10.0
    bright = build_readings("bright", ts, light=np.ones(100, dtype=bool))
    dark = build_readings("dark", ts, motion=np.arange(100) == 3)
    text = flags_sentence(light_motion(combine(bright, dark)))
    assert "**bright**: light on in every reading; no motion." in text
    assert "**dark**: light never on; motion in 1.00% of readings, 1 runs" in text
