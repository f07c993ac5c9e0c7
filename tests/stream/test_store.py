"""Journal, Parquet store, journal recovery and settings, without a broker."""

from __future__ import annotations

import errno
import json

import numpy as np
import pandas as pd
import pytest
from paho.mqtt.client import MQTTMessage

from iot_telemetry.data.readers import read_inputs
from iot_telemetry.data.validate import Batch, normalize
from iot_telemetry.errors import InputError
from iot_telemetry.stream.deadletter import read_dead_letters
from iot_telemetry.stream.ingest import JOURNAL_FOLDER, Ingester
from iot_telemetry.stream.journal import Journal, JournalRecord, read_segment
from iot_telemetry.stream.settings import StreamParams, load_params, parse_params
from iot_telemetry.stream.store import ReadingStore, partition_dir

DEVICE = "b8:27:eb:bf:9d:51"


def readings(count: int, device: str = DEVICE, start: float = 1594598400.5,
             temp: float = 22.0) -> pd.DataFrame:
    index = np.arange(count)
    frame = pd.DataFrame({
        "device": device, "ts": start + 3.7 * index, "co": 0.005, "humidity": 50.0,
        "lpg": 0.008, "smoke": 0.02, "temp": temp, "light": False, "motion": False,
    })
    return normalize(Batch(frame, "test", index + 1)).drop(columns=["_source", "_line"])


def test_journal_round_trip_and_torn_tail(tmp_path):
    journal = Journal(tmp_path)
    records = [JournalRecord("telemetry/a", f"payload {i}".encode(), 1.5 + i) for i in range(5)]
    for record in records:
        journal.append(record)
    journal.commit()
    (segment,) = journal.segments()
    assert list(read_segment(segment)) == records

    # A crash in the middle of the last record leaves a torn tail.
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])
    assert list(read_segment(segment)) == records[:4]
    # A flipped byte inside record 2 ends the segment there.
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(damaged))
    assert len(list(read_segment(segment))) < 5


def test_journal_rotation_and_discard(tmp_path):
    journal = Journal(tmp_path)
    journal.append(JournalRecord("t", b"1", 0.0))
    closed = journal.rotate()
    journal.append(JournalRecord("t", b"2", 0.0))
    journal.commit()
    assert len(journal.segments()) == 2
    journal.discard(closed)
    (left,) = journal.segments()
    assert [record.payload for record in read_segment(left)] == [b"2"]
    assert Journal(tmp_path).segments() == [left]


def test_store_detects_duplicates_and_conflicts_after_restart(tmp_path):
    first = readings(10)
    ReadingStore(tmp_path).write(first)

    store = ReadingStore(tmp_path)  # a restarted ingester
    changed = readings(3, temp=30.0)  # the keys of the first 3, other values
    fresh = readings(2, start=1594598500.25)
    check = store.check(pd.concat([first.iloc[5:8], changed, fresh], ignore_index=True))
    assert check.exact_duplicates == 3
    assert list(check.conflicts["ts"]) == list(first["ts"].iloc[:3])
    assert list(check.conflicts["temp"]) == [30.0] * 3
    assert list(check.new["ts"]) == list(fresh["ts"])


def test_store_layout_is_a_reader_input(tmp_path):
    store = ReadingStore(tmp_path)
    day_one = readings(5)
    day_two = readings(5, start=1594598400.5 + 86400)
    other = readings(4, device="../escape/x")
    for part in (day_one, day_two, other):
        store.write(part)
    assert (partition_dir(tmp_path, "2020-07-13", DEVICE)).is_dir()
    assert (partition_dir(tmp_path, "2020-07-14", DEVICE)).is_dir()
    escaped = partition_dir(tmp_path, "2020-07-13", "../escape/x")
    assert escaped.parent == tmp_path / "date=2020-07-13"
    assert escaped.is_dir()
    result = read_inputs([tmp_path])
    expected = pd.concat([other, day_one, day_two], ignore_index=True)
    pd.testing.assert_frame_equal(result.readings, expected)


def test_store_compacts_small_files(tmp_path):
    store = ReadingStore(tmp_path, compact_after_files=4)
    for index in range(10):
        store.write(readings(3, start=1594598400.5 + 20 * index))
    files = list(partition_dir(tmp_path, "2020-07-13", DEVICE).glob("part-*.parquet"))
    assert len(files) <= 4
    stored = read_inputs([tmp_path]).readings
    assert len(stored) == 30
    assert ReadingStore(tmp_path).check(readings(3)).exact_duplicates == 3


def mqtt_message(mid: int, payload: bytes, topic: str = f"telemetry/{DEVICE}") -> MQTTMessage:
    message = MQTTMessage(mid, topic.encode())
    message.payload = payload
    message.qos = 1
    return message


def test_journal_recovery_after_crash(tmp_path):
    params = StreamParams(flush_interval_s=600, flush_rows=10_000)
    ingester = Ingester(params, tmp_path)
    payloads = [
        json.dumps({"data": {"co": 0.005, "humidity": 50.0, "light": False, "lpg": 0.008,
                             "motion": False, "smoke": 0.02, "temp": 22.0},
                    "device_id": DEVICE, "ts": 1594598400.5 + i}).encode()
        for i in range(25)
    ]
    for mid, payload in enumerate(payloads, start=1):
        ingester._on_message(ingester.client, None, mqtt_message(mid, payload))
    ingester._commit(wait=True)  # what happens before the acknowledgements go out
    assert len(ingester._buffer) == 25
    # Crash: no flush, no shutdown; only the OS releases the lock.
    ingester.committer.close()
    ingester._lock_handle.close()
    assert not list(tmp_path.rglob("part-*.parquet"))

    restarted = Ingester(params, tmp_path)
    assert restarted.recover() == 25
    assert len(read_inputs([tmp_path]).readings) == 25
    assert not list((tmp_path / JOURNAL_FOLDER).glob("*.bin"))
    assert restarted.counters.stored == 25


def test_second_ingester_on_same_folder_is_rejected(tmp_path):
    first = Ingester(StreamParams(), tmp_path)
    with pytest.raises(InputError, match="another ingester is writing"):
        Ingester(StreamParams(), tmp_path)
    first._lock_handle.close()
    first.committer.close()


def test_settings_reject_bad_values(tmp_path):
    with pytest.raises(InputError, match="max_payload_bytes"):
        parse_params({"max_payload_bytes": 300_000, "max_packet_size_bytes": 262_144})
    with pytest.raises(InputError, match="colour"):
        parse_params({"colour": "blue"})
    path = tmp_path / "params.yaml"
    path.write_text("stream:\n  flush_interval_s: 1e-1\n  port: '1884'\n")
    params = load_params(path)
    assert params.flush_interval_s == pytest.approx(0.1)
    assert params.port == 1884
    with pytest.raises(InputError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")


def device_payload(offset: int, **extra) -> bytes:
    return json.dumps({"data": {"co": 0.005, "humidity": 50.0, "light": False, "lpg": 0.008,
                                "motion": False, "smoke": 0.02, "temp": 22.0},
                       "device_id": DEVICE, "ts": 1594598400.5 + offset, **extra}).encode()


def test_message_breaking_validation_is_isolated(tmp_path, monkeypatch):
    import iot_telemetry.stream.ingest as ingest_module

    original = ingest_module.parse_messages

    def fragile(messages, source, **kwargs):
        messages = list(messages)
        if any("poison" in message for message in messages):
            raise KeyError("poison")
        return original(messages, source, **kwargs)

    monkeypatch.setattr(ingest_module, "parse_messages", fragile)
    ingester = Ingester(StreamParams(), tmp_path)
    payloads = [device_payload(0), device_payload(1, poison=True), device_payload(2)]
    for mid, payload in enumerate(payloads, start=1):
        ingester._on_message(ingester.client, None, mqtt_message(mid, payload))
    assert ingester.flush() == 2
    (record,) = read_dead_letters(tmp_path)
    assert record["reason"] == "ingester error"
    assert "KeyError" in record["detail"]
    assert len(read_inputs([tmp_path]).readings) == 2
    ingester._shutdown()


def test_failed_store_write_is_retried(tmp_path, monkeypatch):
    ingester = Ingester(StreamParams(), tmp_path)
    for mid in range(1, 4):
        ingester._on_message(ingester.client, None, mqtt_message(mid, device_payload(mid)))
    real_write = ingester.store.write
    calls = []

    def full_disk(frame):
        calls.append(len(frame))
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_write(frame)

    monkeypatch.setattr(ingester.store, "write", full_disk)
    assert ingester.flush() == 0
    assert len(ingester._buffer) == 3
    assert list((tmp_path / JOURNAL_FOLDER).glob("*.bin"))
    assert ingester.flush() == 3
    assert not list((tmp_path / JOURNAL_FOLDER).glob("*.bin"))
    assert len(read_inputs([tmp_path]).readings) == 3
    ingester._shutdown()


LONG_DEVICES = (":" * 100, "é" * 100, "é" * 128)


def device_message(mid: int, device: str, offset: int) -> MQTTMessage:
    payload = json.dumps({"data": {"co": 0.005, "humidity": 50.0, "light": False,
                                   "lpg": 0.008, "motion": False, "smoke": 0.02, "temp": 22.0},
                          "device_id": device, "ts": 1594598400.5 + offset}).encode()
    return mqtt_message(mid, payload, topic=f"telemetry/{device}")


def test_long_device_id_folder_is_bounded(tmp_path):
    store = ReadingStore(tmp_path)
    folders = {partition_dir(tmp_path, "2020-07-13", device) for device in LONG_DEVICES}
    assert len(folders) == len(LONG_DEVICES)
    for folder in folders:
        assert len(folder.name.encode("utf-8")) <= 255
    # Ids that share the kept prefix still get their own folders.
    assert (partition_dir(tmp_path, "d", ":" * 100)
            != partition_dir(tmp_path, "d", ":" * 99 + "x"))
    assert partition_dir(tmp_path, "d", DEVICE).name == "device=b8%3A27%3Aeb%3Abf%3A9d%3A51"
    parts = [readings(3, device=device) for device in LONG_DEVICES]
    for part in parts:
        store.write(part)
    stored = read_inputs([tmp_path]).readings
    assert sorted(stored["device"].unique()) == sorted(LONG_DEVICES)
    assert len(stored) == 9


def test_long_device_id_does_not_block_flush(tmp_path):
    ingester = Ingester(StreamParams(), tmp_path)
    messages = [device_message(1, ":" * 100, 0), device_message(2, "é" * 100, 0)]
    messages += [device_message(mid, DEVICE, mid) for mid in range(3, 8)]
    for message in messages:
        ingester._on_message(ingester.client, None, message)
    assert ingester.flush() == 7
    assert ingester._buffer == []
    assert read_dead_letters(tmp_path) == []
    assert len(read_inputs([tmp_path]).readings) == 7
    assert not list((tmp_path / JOURNAL_FOLDER).glob("*.bin"))
    ingester._shutdown()


def failing_write(store, device: str, error: OSError, calls: list):
    """Replace store.write with one that raises `error` for `device`'s rows."""
    real_write = store.write

    def write(frame):
        if (frame["device"] == device).any():
            calls.append(len(frame))
            raise error
        return real_write(frame)

    return write


def ingester_with_other_device(folder, other: str) -> Ingester:
    """Return an ingester that received 3 readings of DEVICE and 1 of `other`."""
    ingester = Ingester(StreamParams(), folder)
    for mid in range(1, 4):
        ingester._on_message(ingester.client, None, device_message(mid, DEVICE, mid))
    ingester._on_message(ingester.client, None, device_message(4, other, 4))
    return ingester


def test_invalid_partition_path_is_dead_lettered(tmp_path, monkeypatch):
    bad = "bad-device"
    ingester = ingester_with_other_device(tmp_path, bad)
    calls = []
    error = OSError(errno.ENAMETOOLONG, "File name too long")
    monkeypatch.setattr(ingester.store, "write", failing_write(ingester.store, bad, error, calls))
    assert ingester.flush() == 3
    assert calls == [1]
    assert ingester._buffer == []
    (record,) = read_dead_letters(tmp_path)
    assert record["reason"] == "storage error"
    assert "File name too long" in record["detail"]
    assert record["device"] == bad
    assert len(read_inputs([tmp_path]).readings) == 3
    assert not list((tmp_path / JOURNAL_FOLDER).glob("*.bin"))
    counters = ingester.counters
    assert counters.received == counters.stored + counters.duplicates + counters.rejected
    ingester._shutdown()


def test_full_disk_retries_only_its_partition(tmp_path, monkeypatch):
    other = "other-device"
    ingester = ingester_with_other_device(tmp_path, other)
    calls = []
    full = failing_write(ingester.store, other, OSError(errno.ENOSPC, "No space left"), calls)
    monkeypatch.setattr(ingester.store, "write", full)
    assert ingester.flush() == 3
    assert [pending.topic for pending in ingester._buffer] == [f"telemetry/{other}"]
    (segment,) = (tmp_path / JOURNAL_FOLDER).glob("*.bin")
    assert [record.topic for record in read_segment(segment)] == [f"telemetry/{other}"]
    assert read_dead_letters(tmp_path) == []
    monkeypatch.undo()
    assert ingester.flush() == 1
    assert ingester._buffer == []
    assert not list((tmp_path / JOURNAL_FOLDER).glob("*.bin"))
    assert len(read_inputs([tmp_path]).readings) == 4
    assert ingester.counters.stored == 4
    assert ingester.counters.duplicates == 0
    ingester._shutdown()


def crash_with_journal(tmp_path, messages: list[MQTTMessage]) -> None:
    """Journal `messages` in an ingester, then stop it without a flush."""
    params = StreamParams(flush_interval_s=600, flush_rows=10_000)
    ingester = Ingester(params, tmp_path)
    for message in messages:
        ingester._on_message(ingester.client, None, message)
    ingester._commit(wait=True)
    ingester.committer.close()
    ingester._lock_handle.close()


def test_recovery_stores_long_device_id(tmp_path):
    messages = [device_message(1, ":" * 100, 0), device_message(2, DEVICE, 1)]
    crash_with_journal(tmp_path, messages)
    restarted = Ingester(StreamParams(), tmp_path)
    assert restarted.recover() == 2
    assert len(read_inputs([tmp_path]).readings) == 2
    assert not list((tmp_path / JOURNAL_FOLDER).glob("*.bin"))
    restarted._shutdown()


def test_recovery_dead_letters_unstorable_entry(tmp_path, monkeypatch):
    bad = "bad-device"
    crash_with_journal(tmp_path, [device_message(1, bad, 0), device_message(2, DEVICE, 1)])
    restarted = Ingester(StreamParams(), tmp_path)
    error = OSError(errno.EINVAL, "Invalid argument")
    monkeypatch.setattr(restarted.store, "write",
                        failing_write(restarted.store, bad, error, []))
    assert restarted.recover() == 2
    (record,) = read_dead_letters(tmp_path)
    assert record["reason"] == "storage error"
    assert record["device"] == bad
    assert len(read_inputs([tmp_path]).readings) == 1
    assert not list((tmp_path / JOURNAL_FOLDER).glob("*.bin"))
    restarted._shutdown()
