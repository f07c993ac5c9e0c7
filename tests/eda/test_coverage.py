"""Coverage and sampling intervals on constructed series."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from eda_helpers import BASE_TS, build_readings, combine
from iot_telemetry.eda.coverage import find_gaps, interval_series, sampling_intervals


@pytest.fixture
def readings():
    # Device a: intervals 4, 4, 92, 4 s (one gap); device b: one reading.
    a = build_readings("a", [BASE_TS + t for t in (0, 4, 8, 100, 104)])
    b = build_readings("b", [BASE_TS + 50])
    return combine(a, b)


def test_intervals_of_constructed_series(readings):
    table = sampling_intervals(readings)
    a = table.loc["a"]
    assert a["readings"] == 5
    assert a["median_interval_s"] == 4.0
    assert a["mean_interval_s"] == 26.0
    assert a["min_interval_s"] == 4.0
    assert a["max_interval_s"] == 92.0
    assert a["gaps"] == 1
    assert a["gap_share"] == 0.25
    assert a["span_hours"] == pytest.approx(104 / 3600)
    assert a["start"] == pd.Timestamp("2020-07-12T00:00:00Z")


def test_single_reading_has_no_intervals(readings):
    b = sampling_intervals(readings).loc["b"]
    assert b["readings"] == 1
    assert math.isnan(b["median_interval_s"])
    assert math.isnan(b["gap_share"])
    assert b["gaps"] == 0


def test_gap_threshold_is_exclusive(readings):
    assert sampling_intervals(readings, gap_seconds=92.0).loc["a", "gaps"] == 0
    assert sampling_intervals(readings, gap_seconds=3.0).loc["a", "gaps"] == 4


def test_find_gaps_lists_the_outage(readings):
    gaps = find_gaps(readings)
    assert len(gaps) == 1
    gap = gaps.iloc[0]
    assert gap["device"] == "a"
    assert gap["duration_s"] == 92.0
    assert gap["start"] == pd.Timestamp(BASE_TS + 8, unit="s", tz="UTC")
    assert gap["end"] == pd.Timestamp(BASE_TS + 100, unit="s", tz="UTC")


def test_find_gaps_empty_without_outage(readings):
    gaps = find_gaps(readings, gap_seconds=1000.0)
    assert gaps.empty
    assert list(gaps.columns) == ["device", "start", "end", "duration_s"]


def test_interval_series_stays_within_device(readings):
    series = interval_series(readings)
    assert series["device"].tolist() == ["a"] * 4
    assert series["interval_s"].tolist() == [4.0, 4.0, 92.0, 4.0]


def test_intervals_of_real_capture(mqtt_readings):
    table = sampling_intervals(mqtt_readings)
    assert table["readings"].to_dict() == {
        "00:0f:00:70:91:0a": 13821, "1c:bf:ce:15:ec:4d": 12958, "b8:27:eb:bf:9d:51": 23490}
    # b8:27 has the regular 3.69 s clock; the others are irregular and slower.
    assert table.loc["b8:27:eb:bf:9d:51", "median_interval_s"] == pytest.approx(3.686, abs=0.01)
    assert table.loc["b8:27:eb:bf:9d:51", "max_interval_s"] < 8
    assert table.loc["00:0f:00:70:91:0a", "max_interval_s"] > 30
    assert table["gaps"].sum() == 0
