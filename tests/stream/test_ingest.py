"""Replay -> Mosquitto -> ingest on loopback: equality, duplicates, dead letters, restarts."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.data.readers import read_inputs
from iot_telemetry.stream.check import compare_keys, stored_keys
from iot_telemetry.stream.deadletter import read_dead_letters
from iot_telemetry.stream.payload import encode
from iot_telemetry.stream.replay import (
    WindowedPublisher,
    load_messages,
    messages_from_readings,
    replay,
)

from stream_helpers import (
    capture_messages,
    ingest_process,
    running_ingester,
    wait_until,
    write_params_file,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]

VALID = {
    "data": {"co": 0.0061, "humidity": 55.1, "light": True, "lpg": 0.0089,
             "motion": False, "smoke": 0.0239, "temp": 31.8},
    "device_id": "6e:81:c9:d4:9e:58",
    "ts": 1594419195.292461,
}


def valid_message(offset: int) -> dict:
    message = json.loads(json.dumps(VALID))
    message["ts"] = VALID["ts"] + offset
    return message


def publish_raw(params, items: list[tuple[str, bytes]]) -> None:
    publisher = WindowedPublisher(params, client_id="test-raw-publisher", persistent=False)
    publisher.start()
    try:
        for topic, payload in items:
            publisher.publish(topic, payload)
        publisher.drain()
    finally:
        publisher.close()


def test_replay_of_capture_matches_batch_reader(params, tmp_path, mqtt_capture):
    source = tmp_path / "first_2000.json"
    source.write_text(json.dumps(capture_messages(mqtt_capture, 2000)))
    expected = read_inputs([source]).readings

    with running_ingester(params, tmp_path / "out") as ingester:
        publisher = WindowedPublisher(params)
        publisher.start()
        stats = replay(load_messages([source]), publisher, speed=None)
        publisher.close()
        assert wait_until(lambda: ingester.counters.stored == len(expected), 20)

    assert stats.acknowledged == len(expected)
    stored = read_inputs([tmp_path / "out"]).readings
    pd.testing.assert_frame_equal(stored, expected)
    assert ingester.counters.duplicates == 0
    assert ingester.counters.rejected == 0


def test_message_published_twice_is_stored_once(params, tmp_path):
    out = tmp_path / "out"
    topic = f"telemetry/{VALID['device_id']}"
    first, second = encode(valid_message(0)), encode(valid_message(1))
    with running_ingester(params, out) as ingester:
        # The same batch, then again after a flush: both paths must drop repeats.
        publish_raw(params, [(topic, first), (topic, second), (topic, first)])
        assert wait_until(lambda: ingester.counters.flushes >= 1
                          and ingester.counters.stored == 2, 10)
        publish_raw(params, [(topic, second)])
        assert wait_until(lambda: ingester.counters.duplicates == 2, 10)

    keys = stored_keys(out)
    assert len(keys) == 2
    assert sorted(keys["ts"]) == [VALID["ts"], VALID["ts"] + 1]
    assert ingester.counters.rejected == 0


def test_invalid_messages_go_to_dead_letters(params, tmp_path):
    out = tmp_path / "out"
    topic = f"telemetry/{VALID['device_id']}"
    missing_data = valid_message(100)
    del missing_data["data"]
    missing_ts = valid_message(101)
    del missing_ts["ts"]
    wrong_type = valid_message(102)
    wrong_type["data"]["temp"] = "31.8"
    oversized = encode(valid_message(103)) + b" " * (params.max_payload_bytes + 1)
    bad = [
        (b"not json {", "invalid JSON"),
        (b"42", "message is not a JSON object"),
        (b"", "empty payload"),
        (encode(missing_data), "missing field"),
        (encode(missing_ts), "missing field"),
        (encode(wrong_type), "wrong type"),
        (oversized, "payload too large"),
    ]
    items = []
    for index, (payload, _) in enumerate(bad):
        items.append((topic, encode(valid_message(index))))
        items.append((topic, payload))
    items.append((topic, encode(valid_message(len(bad)))))

    with running_ingester(params, out) as ingester:
        publish_raw(params, items)
        assert wait_until(lambda: ingester.counters.stored == len(bad) + 1
                          and ingester.counters.rejected == len(bad), 10)

    records = read_dead_letters(out)
    # Structural rejects are written on receipt, schema rejects at the flush,
    # so the file order differs from the publish order.
    assert sorted(record["reason"] for record in records) == sorted(r for _, r in bad)
    by_raw = {record["raw"]: record for record in records}
    assert by_raw["not json {"]["reason"] == "invalid JSON"
    assert by_raw["not json {"]["topic"] == topic
    assert by_raw["42"]["reason"] == "message is not a JSON object"
    assert by_raw[""]["reason"] == "empty payload"
    assert by_raw[""]["size_bytes"] == 0
    assert by_raw[encode(missing_data).decode()]["detail"] == "data"
    assert by_raw[encode(missing_ts).decode()]["detail"] == "ts"
    assert "data.temp" in by_raw[encode(wrong_type).decode()]["detail"]
    (too_large,) = [r for r in records if r["reason"] == "payload too large"]
    assert too_large["size_bytes"] == len(oversized)
    assert too_large["truncated"] is True
    assert len(too_large["raw"]) < len(oversized)
    assert all(record["time"].endswith("Z") for record in records)
    assert len(read_inputs([out]).readings) == len(bad) + 1


def test_conflicting_duplicates_are_dead_letters(params, tmp_path):
    out = tmp_path / "out"
    topic = f"telemetry/{VALID['device_id']}"
    changed = valid_message(0)
    changed["data"]["temp"] += 1.0
    later = valid_message(1)
    later["data"]["temp"] -= 1.0
    with running_ingester(params, out) as ingester:
        # One conflict inside a batch, then one against a stored reading.
        publish_raw(params, [(topic, encode(valid_message(0))), (topic, encode(changed)),
                             (topic, encode(valid_message(1)))])
        assert wait_until(lambda: ingester.counters.flushes >= 1
                          and ingester.counters.stored == 2, 10)
        publish_raw(params, [(topic, encode(later))])
        assert wait_until(lambda: ingester.counters.rejected == 2, 10)

    records = sorted(read_dead_letters(out), key=lambda record: record["ts"])
    assert [record["reason"] for record in records] == ["conflicting duplicate"] * 2
    assert [record["ts"] for record in records] == [VALID["ts"], VALID["ts"] + 1]
    assert all(record["device"] == VALID["device_id"] for record in records)
    assert "earlier message in this batch" in records[0]["detail"]
    assert "stored reading" in records[1]["detail"]
    stored = read_inputs([out]).readings
    assert sorted(stored["temp"]) == [VALID["data"]["temp"]] * 2
    assert ingester.counters.flushes <= 3


def test_topic_and_device_id_mismatch_is_rejected(params, tmp_path):
    out = tmp_path / "out"
    with running_ingester(params, out) as ingester:
        publish_raw(params, [("telemetry/aa:bb", encode(valid_message(0))),
                             (f"telemetry/{VALID['device_id']}", encode(valid_message(1)))])
        assert wait_until(lambda: ingester.counters.stored == 1
                          and ingester.counters.rejected == 1, 10)
    (record,) = read_dead_letters(out)
    assert record["reason"] == "device_id does not match topic"
    assert record["device"] == VALID["device_id"]


def test_restarted_ingester_skips_stored_keys(params, tmp_path):
    out = tmp_path / "out"
    topic = f"telemetry/{VALID['device_id']}"
    batch = [(topic, encode(valid_message(index))) for index in range(20)]
    with running_ingester(params, out) as ingester:
        publish_raw(params, batch)
        assert wait_until(lambda: ingester.counters.stored == 20, 10)
    with running_ingester(params, out) as ingester:
        publish_raw(params, batch[5:15] + [(topic, encode(valid_message(20)))])
        assert wait_until(lambda: ingester.counters.stored == 1
                          and ingester.counters.duplicates == 10, 10)
    keys = stored_keys(out)
    assert len(keys) == 21
    assert not keys.duplicated().any()


def replay_in_thread(params, messages, speed=None):
    """Replay messages from a thread; returns (thread, result dict)."""
    result: dict = {}

    def target():
        publisher = WindowedPublisher(params)
        publisher.start()
        try:
            result["stats"] = replay(messages, publisher, speed=speed)
        except BaseException as error:  # noqa: BLE001 - checked by the test
            result["error"] = error
        finally:
            publisher.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


@pytest.fixture(scope="module")
def twin_messages():
    """3,000 device messages of three devices, 1.2 s apart, with unique keys."""
    from iot_telemetry.data.validate import Batch, normalize

    devices = ["00:0f:00:70:91:0a", "1c:bf:ce:15:ec:4d", "b8:27:eb:bf:9d:51"]
    count = 3000
    index = np.arange(count)
    frame = pd.DataFrame({
        "device": [devices[i % 3] for i in index],
        "ts": 1594512094.3859746 + 1.2 * index,
        "co": 0.004 + 0.001 * np.sin(index / 50),
        "humidity": 50 + 5 * np.cos(index / 70),
        "lpg": 0.007 + 0.001 * np.sin(index / 50),
        "smoke": 0.02 + 0.002 * np.sin(index / 50),
        "temp": 22 + np.sin(index / 90),
        "light": index % 7 == 0,
        "motion": index % 97 == 0,
    })
    readings = normalize(Batch(frame, "test", index + 1)).drop(columns=["_source", "_line"])
    messages = messages_from_readings(readings)
    assert len(messages) == count
    return readings, messages


def expected_keys(readings, messages):
    ts = {message.ts for message in messages}
    return readings.loc[readings["ts"].isin(ts), ["device", "ts"]]


def test_killed_ingester_loses_nothing(params, tmp_path, twin_messages):
    readings, messages = twin_messages
    out = tmp_path / "out"
    params_file = write_params_file(tmp_path / "params.yaml", params)
    with ingest_process(params_file, out, tmp_path, "first") as first:
        # A rate the ingester keeps up with, so the kill lands mid-stream.
        thread, result = replay_in_thread(params, messages, speed=2000.0)
        assert wait_until(lambda: len(stored_keys(out)) >= 300, 30), first.log_text()
        first.kill()
    thread.join(60)
    assert "error" not in result
    killed_at = len(stored_keys(out))
    assert killed_at < len(messages)

    with ingest_process(params_file, out, tmp_path, "second",
                        extra=["--idle-exit-s", "1.5"]) as second:
        assert second.process.wait(60) == 0, second.log_text()
    report = compare_keys(expected_keys(readings, messages), stored_keys(out))
    assert report.missing == 0
    assert report.extra == 0
    assert report.doubled == 0
    assert report.stored == len(messages)


def test_broker_restart_mid_stream_loses_nothing(broker, params, tmp_path, twin_messages):
    readings, messages = twin_messages
    out = tmp_path / "out"
    with running_ingester(params, out) as ingester:
        thread, result = replay_in_thread(params, messages, speed=2000.0)
        assert wait_until(lambda: ingester.counters.received >= 500, 30)
        assert broker.stop() == 0  # SIGTERM: the broker saves its sessions
        time.sleep(0.5)
        broker.start()
        thread.join(60)
        assert "error" not in result, result.get("error")
        assert wait_until(lambda: ingester.counters.stored == len(messages), 30), (
            ingester.counters)
    report = compare_keys(expected_keys(readings, messages), stored_keys(out))
    assert report.missing == 0
    assert report.doubled == 0
    assert ingester.counters.reconnects >= 1


def test_broker_kill_loss_is_counted(broker, params, tmp_path, twin_messages):
    readings, messages = twin_messages
    out = tmp_path / "out"
    before, after = messages[:2000], messages[2000:]
    with running_ingester(params, out) as ingester:
        thread, result = replay_in_thread(params, before, speed=2000.0)
        assert wait_until(lambda: ingester.counters.received >= 500, 30)
        ingester.subscribed.clear()
        broker.kill()  # SIGKILL: no database save
        time.sleep(0.5)
        broker.start()
        thread.join(60)
        assert "error" not in result, result.get("error")
        # The restarted broker lost the session, so the ingester subscribes
        # again; messages published after that must all arrive.
        assert ingester.subscribed.wait(20)
        thread, result = replay_in_thread(params, after)
        thread.join(60)
        assert "error" not in result, result.get("error")
        after_keys = expected_keys(readings, after)
        assert wait_until(
            lambda: compare_keys(after_keys, stored_keys(out)).missing == 0, 30, 0.2)

    report = compare_keys(expected_keys(readings, messages), stored_keys(out))
    stored = set(map(tuple, stored_keys(out)[["device", "ts"]].itertuples(index=False)))
    lost = [m for m in messages if (json.loads(m.payload)["device_id"], m.ts) not in stored]
    assert report.missing == len(lost)
    assert report.stored == len(messages) - len(lost)
    assert report.doubled == 0
    assert f"| missing | {len(lost)} |" in report.to_markdown()


def test_sigterm_flushes_everything_received(params, tmp_path, twin_messages):
    _, messages = twin_messages
    out = tmp_path / "out"
    slow = params.model_copy(update={"flush_interval_s": 600.0, "flush_rows": 1_000_000})
    params_file = write_params_file(tmp_path / "params.yaml", slow)
    with ingest_process(params_file, out, tmp_path) as child:
        thread, result = replay_in_thread(params, messages[:1000])
        thread.join(30)
        assert "error" not in result
        assert child.wait_for_log("received 1000,", 15), child.log_text()
        assert stored_keys(out).empty  # nothing flushed before the signal
        assert child.terminate() == 0, child.log_text()
    summary = child.stdout()
    assert "received 1000, stored 1000, duplicates 0, rejected 0" in summary
    assert len(stored_keys(out)) == 1000
    assert not list((out / ".journal").glob("*.bin"))
