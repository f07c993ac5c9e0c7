"""Replay: payload shape, flow-control window, pacing, and the replay/check commands."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.data.messages import parse_messages
from iot_telemetry.data.validate import Batch, normalize
from iot_telemetry.stream.check import compare_capture
from iot_telemetry.stream.replay import WindowedPublisher, messages_from_readings, replay

from stream_helpers import ROOT, running_ingester, wait_until

DEVICES = ("00:0f:00:70:91:0a", "b8:27:eb:bf:9d:51")


def readings_frame(count: int, step_s: float = 1.0) -> pd.DataFrame:
    index = np.arange(count)
    frame = pd.DataFrame({
        "device": [DEVICES[i % 2] for i in index],
        "ts": 1594512094.3859746 + step_s * index,
        "co": 0.0049559386483912 + 1e-6 * index,
        "humidity": np.where(index % 2, 51.0, 19.700000762939453),
        "lpg": 0.0076508222705571, "smoke": 0.0204112701224129,
        "temp": 22.7 + 0.1 * (index % 50),
        "light": index % 3 == 0, "motion": False,
        "alias": [None if i % 4 else f"iot-device-0{i % 2 + 1}" for i in index],
    })
    readings = normalize(Batch(frame, "test", index + 1))
    assert len(readings) == count
    return readings.drop(columns=["_source", "_line"])


def test_payloads_parse_back_to_the_same_readings():
    readings = readings_frame(40)
    readings.loc[5, "motion"] = pd.NA
    messages = messages_from_readings(readings)
    decoded = [json.loads(message.payload) for message in messages]
    assert decoded[0]["device_id"] == DEVICES[0]
    assert decoded[0]["device"] == "iot-device-01"
    assert "device" not in decoded[1]
    assert decoded[5]["data"]["motion"] is None
    assert [message.topic for message in messages[:2]] == [
        f"telemetry/{DEVICES[0]}", f"telemetry/{DEVICES[1]}"]
    parsed, quarantine = parse_messages(decoded, "replay")
    assert quarantine.empty
    parsed = parsed.drop(columns=["_source", "_line"])
    pd.testing.assert_frame_equal(parsed.reset_index(drop=True),
                                  readings.sort_values("ts").reset_index(drop=True))


def test_messages_are_in_ts_order():
    readings = readings_frame(30).sort_values(["device", "ts"])
    ts = [message.ts for message in messages_from_readings(readings)]
    assert ts == sorted(ts)


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_window_bounds_unacknowledged_publishes(params, tmp_path):
    messages = messages_from_readings(readings_frame(600))
    peak = 0
    with running_ingester(params, tmp_path / "out") as ingester:
        publisher = WindowedPublisher(params, window=16)
        publisher.start()
        try:
            for message in messages:
                publisher.publish(message.topic, message.payload)
                peak = max(peak, publisher.outstanding)
            stats = publisher.drain()
        finally:
            publisher.close()
        assert wait_until(lambda: ingester.counters.stored == 600, 20), ingester.counters
    assert peak <= 16
    assert peak >= 2  # the window was actually used
    assert stats.acknowledged == 600
    assert stats.rejected == 0


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_speed_keeps_scaled_gaps(params):
    messages = messages_from_readings(readings_frame(11, step_s=0.2))
    publisher = WindowedPublisher(params)
    publisher.start()
    try:
        started = time.monotonic()
        replay(messages, publisher, speed=2.0)
        elapsed = time.monotonic() - started
    finally:
        publisher.close()
    # 10 gaps of 0.2 s at speed 2: the last message goes out 1.0 s after the first.
    assert elapsed >= 0.95


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "iot_telemetry", "stream", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)


@pytest.mark.broker
@pytest.mark.timeout(120)
def test_replay_and_check_commands(params, tmp_path):
    source = tmp_path / "readings.parquet"
    readings_frame(100).to_parquet(source)
    out = tmp_path / "out"
    connection = ["--host", "127.0.0.1", "--port", str(params.port)]
    with running_ingester(params, out) as ingester:
        result = run_cli("replay", str(source), "--max-rate", "--limit", "60", *connection)
        assert result.returncode == 0, result.stderr
        assert "published 60 messages" in result.stdout
        assert wait_until(lambda: ingester.counters.stored == 60, 20)

    result = run_cli("check", str(source), "--out", str(out))
    assert result.returncode == 1
    assert "| missing | 40 |" in result.stdout
    assert "| doubled | 0 |" in result.stdout

    # The whole input again: the first 60 are duplicates, the rest fill the gap.
    with running_ingester(params, out) as ingester:
        publisher = WindowedPublisher(params)
        publisher.start()
        replay(messages_from_readings(pd.read_parquet(source)), publisher, speed=None)
        publisher.close()
        assert wait_until(lambda: ingester.counters.received == 100, 20)
    assert ingester.counters.duplicates == 60
    report = compare_capture([source], out)
    assert report.ok
    assert report.stored == 100


def test_replay_of_missing_input_exits_2(tmp_path):
    result = run_cli("replay", str(tmp_path / "absent.csv"), "--port", "1")
    assert result.returncode == 2
    assert "input not found" in result.stderr


def test_check_of_missing_folder_exits_2(tmp_path):
    source = tmp_path / "readings.parquet"
    readings_frame(3).to_parquet(source)
    absent = tmp_path / "absent"
    result = run_cli("check", str(source), "--out", str(absent))
    assert result.returncode == 2
    assert f"ingest output folder {absent} not found" in result.stderr
    assert "missing" not in result.stdout
    not_folder = run_cli("check", str(source), "--out", str(source))
    assert not_folder.returncode == 2
    assert "is not a folder" in not_folder.stderr
