"""Readers and validation: each kind of input gives the right value or a reason."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.data.columns import READING_COLUMNS
from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE
from iot_telemetry.data.readers import load_readings, read_inputs, write_outputs
from iot_telemetry.data.schema import QUARANTINE_SCHEMA, READINGS_SCHEMA
from iot_telemetry.errors import InputError

HEADER = '"ts","device","co","humidity","light","lpg","motion","smoke","temp"'


def row(ts="1.5945120943859746E9", device="b8:27:eb:bf:9d:51", co="0.0049", hum="51.0",
        light="false", lpg="0.0076", motion="false", smoke="0.0204", temp="22.7"):
    fields = [ts, device, co, hum, light, lpg, motion, smoke, temp]
    return ",".join(f'"{value}"' for value in fields)


def write(tmp_path: Path, text: str, name: str = "input.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def reasons(result) -> list[str]:
    return sorted(result.quarantine["reason"].tolist())


# Kaggle raw format


def test_kaggle_head_exact_ts(kaggle_head):
    result = read_inputs([kaggle_head])
    first = result.readings.loc[result.readings["device"] == "b8:27:eb:bf:9d:51"].iloc[0]
    assert first["ts"] == float("1.5945120943859746E9")
    assert first["ts"] == 1594512094.3859746
    assert first["temp"] == 22.7
    assert result.summary["kept"] == 9
    assert result.summary["quarantined"] == 0


def test_kaggle_head_every_ts_bit_equal(kaggle_head):
    import csv

    with kaggle_head.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = sorted(float(r["ts"]) for r in rows)
    result = read_inputs([kaggle_head])
    assert sorted(result.readings["ts"].tolist()) == expected


def test_kaggle_head_dtypes_and_schema(kaggle_head):
    readings = read_inputs([kaggle_head]).readings
    assert list(readings.columns) == list(READING_COLUMNS)
    assert str(readings["time"].dtype) == "datetime64[us, UTC]"
    assert str(readings["light"].dtype) == "boolean"
    assert readings["device"].dtype == "string"
    READINGS_SCHEMA.validate(readings)


def test_kaggle_head_float32_widening_kept(kaggle_head):
    readings = read_inputs([kaggle_head]).readings
    device = readings[readings["device"] == "00:0f:00:70:91:0a"]
    assert device["temp"].iloc[0] == 19.700000762939453


def test_false_token_read_as_false(tmp_path):
    path = write(tmp_path, "\n".join([HEADER, row(light="false", motion="true")]) + "\n")
    readings = read_inputs([path]).readings
    assert bool(readings["light"].iloc[0]) is False
    assert bool(readings["motion"].iloc[0]) is True


@pytest.mark.parametrize(
    ("token", "expected"),
    [("True", True), ("FALSE", False), ("1", True), ("0", False), ("yes", True),
     ("no", False), ("t", True), ("off", False)],
)
def test_boolean_spellings(tmp_path, token, expected):
    text = "\n".join([HEADER, row(light=token), row(ts="1.5945121E9", light="false")])
    readings = read_inputs([write(tmp_path, text + "\n")]).readings
    first = readings.sort_values("ts").iloc[0]
    assert bool(first["light"]) is expected


def test_blank_boolean_is_missing_not_false(tmp_path):
    text = "\n".join([HEADER, row(light="")]) + "\n"
    result = read_inputs([write(tmp_path, text)])
    assert result.summary["kept"] == 1
    assert result.readings["light"].isna().iloc[0]


def test_odd_boolean_token_quarantined(tmp_path):
    text = "\n".join([HEADER, row(light="maybe"), row(ts="1.5945121E9")]) + "\n"
    result = read_inputs([write(tmp_path, text)])
    assert reasons(result) == ["unknown boolean token in light"]
    record = result.quarantine.iloc[0]
    assert record["line"] == 2
    assert "maybe" in record["raw"]
    assert result.summary["kept"] == 1


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("hum", "120.5", "humidity outside 0-100 %"),
        ("hum", "-1", "humidity outside 0-100 %"),
        ("temp", "95.0", "temp outside sensor range -40-80 degC"),
        ("temp", "inf", "non-finite temp"),
        ("co", "abc", "unparseable number in co"),
        ("co", "", "missing co"),
        ("co", "-0.1", "non-positive co"),
        ("ts", "yesterday", "unparseable ts"),
        ("ts", "1594512094385", "implausible ts"),
        ("device", "", "missing device"),
    ],
)
def test_bad_value_quarantined_with_reason(tmp_path, field, value, reason):
    text = "\n".join([HEADER, row(**{field: value}), row(ts="1.5945121E9")]) + "\n"
    result = read_inputs([write(tmp_path, text)])
    assert reasons(result) == [reason]
    assert result.summary["kept"] == 1
    assert result.summary["read"] == 2


def test_exact_duplicate_dropped_and_counted(tmp_path):
    text = "\n".join([HEADER, row(), row(), row(ts="1.5945121E9")]) + "\n"
    result = read_inputs([write(tmp_path, text)])
    assert result.summary["kept"] == 2
    assert result.summary["duplicates"] == 1
    assert result.summary["quarantined"] == 0
    assert result.summary["by_device"]["b8:27:eb:bf:9d:51"]["duplicates"] == 1


def test_conflicting_duplicate_quarantined_first_kept(tmp_path):
    text = "\n".join([HEADER, row(temp="22.7"), row(temp="23.9")]) + "\n"
    result = read_inputs([write(tmp_path, text)])
    assert result.readings["temp"].tolist() == [22.7]
    assert reasons(result) == ["conflicting duplicate"]
    assert result.quarantine["line"].tolist() == [3]
    assert "23.9" in result.quarantine["raw"].iloc[0]


def test_duplicates_found_across_unsorted_rows(tmp_path):
    text = "\n".join([HEADER, row(), row(ts="1.5945125E9"), row(ts="1.5945121E9"), row()])
    result = read_inputs([write(tmp_path, text + "\n")])
    assert result.summary["duplicates"] == 1
    assert result.readings["ts"].is_monotonic_increasing


def test_unquoted_crlf_reordered_with_index(tmp_path):
    lines = [
        ",temp,device,ts,light,motion,co,lpg,smoke,humidity",
        "0,22.7,b8:27:eb:bf:9d:51,1594512094.3859746,False,False,0.0049,0.0076,0.0204,51.0",
        "1,22.6,b8:27:eb:bf:9d:51,1594512090.0,True,False,0.0049,0.0076,0.0204,50.9",
    ]
    path = write(tmp_path, "\r\n".join(lines) + "\r\n")
    result = read_inputs([path])
    readings = result.readings
    assert result.summary["quarantined"] == 0
    assert readings["ts"].tolist() == [1594512090.0, 1594512094.3859746]
    assert readings["humidity"].tolist() == [50.9, 51.0]
    assert readings["light"].tolist() == [True, False]


def test_iso_times_naive_are_utc(tmp_path):
    text = "\n".join([HEADER, row(ts="2020-07-12T00:01:34.385975")]) + "\n"
    readings = read_inputs([write(tmp_path, text)]).readings
    assert readings["time"].iloc[0] == pd.Timestamp("2020-07-12T00:01:34.385975Z")
    assert readings["ts"].iloc[0] == pytest.approx(1594512094.385975, abs=1e-6)


def test_iso_times_with_timezone_option(tmp_path):
    text = "\n".join([HEADER, row(ts="2020-07-12 02:00:00")]) + "\n"
    readings = read_inputs([write(tmp_path, text)], timezone="Europe/Berlin").readings
    assert readings["time"].iloc[0] == pd.Timestamp("2020-07-12T00:00:00Z")


def test_iso_times_with_offset_normalised(tmp_path):
    text = "\n".join([HEADER, row(ts="2020-07-11T20:00:00-04:00")]) + "\n"
    readings = read_inputs([write(tmp_path, text)], timezone="Asia/Tokyo").readings
    assert readings["time"].iloc[0] == pd.Timestamp("2020-07-12T00:00:00Z")
    assert readings["ts"].iloc[0] == 1594512000.0


def test_missing_column_raises(tmp_path):
    header = '"ts","device","co","humidity","light","lpg","motion","smoke"'
    path = write(tmp_path, header + "\n" + row()[: row().rindex(",")] + "\n")
    with pytest.raises(InputError, match="missing column.*temp"):
        read_inputs([path])


def test_empty_file_raises(tmp_path):
    with pytest.raises(InputError, match="empty"):
        read_inputs([write(tmp_path, "")])


def test_header_only_gives_no_readings(tmp_path):
    result = read_inputs([write(tmp_path, HEADER + "\n")])
    assert result.summary["read"] == 0
    assert len(result.readings) == 0
    assert list(result.readings.columns) == list(READING_COLUMNS)


def test_missing_input_raises(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_inputs([tmp_path / "nope.csv"])


def test_too_many_fields_quarantined(tmp_path):
    text = "\n".join([HEADER, row() + ',"extra"', row(ts="1.5945121E9")]) + "\n"
    result = read_inputs([write(tmp_path, text)])
    assert reasons(result) == ["wrong number of fields"]
    assert result.quarantine["line"].tolist() == [2]
    assert result.summary["kept"] == 1


def test_counts_add_up(tmp_path):
    text = "\n".join([HEADER, row(), row(), row(temp="99"), row(ts="1.5945121E9"),
                      row(ts="1.5945121E9", temp="1.0")]) + "\n"
    summary = read_inputs([write(tmp_path, text)]).summary
    assert summary["read"] == 5
    assert summary["read"] == summary["kept"] + summary["duplicates"] + summary["quarantined"]
    assert summary["quarantined_by_reason"] == {
        "conflicting duplicate": 1,
        "temp outside sensor range -40-80 degC": 1,
    }


# MQTT message dumps

MESSAGE = {
    "data": {"co": 0.0061, "humidity": 55.1, "light": True, "lpg": 0.0089,
             "motion": False, "smoke": 0.0239, "temp": 31.8},
    "device_id": "6e:81:c9:d4:9e:58",
    "ts": 1594419195.292461,
}


def message(**changes):
    out = json.loads(json.dumps(MESSAGE))
    for key, value in changes.items():
        if key in out["data"]:
            out["data"][key] = value
        else:
            out[key] = value
    return out


def test_message_unknown_device_kept_extra_fields_ignored(tmp_path):
    path = tmp_path / "dump.json"
    path.write_text(json.dumps([message(extra="x", device="iot-device-09")]))
    readings = read_inputs([path]).readings
    assert readings["device"].tolist() == ["6e:81:c9:d4:9e:58"]
    assert readings["alias"].tolist() == ["iot-device-09"]
    assert readings["ts"].tolist() == [1594419195.292461]


def test_json_lines_with_bad_lines(tmp_path):
    lines = [
        json.dumps(message()),
        "not json",
        "",
        json.dumps({"device_id": "x", "ts": 1594419195.0}),
        json.dumps(message(temp="hot", ts=1594419196.0)),
        json.dumps(message(ts=1594419197.0)),
    ]
    path = tmp_path / "dump.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = read_inputs([path])
    assert result.summary["kept"] == 2
    quarantine = result.quarantine.sort_values("line")
    assert quarantine["line"].tolist() == [2, 4, 5]
    assert quarantine["reason"].tolist() == ["invalid JSON", "missing field", "wrong type"]
    assert quarantine["detail"].iloc[1] == "data"
    QUARANTINE_SCHEMA.validate(result.quarantine)


def test_json_null_sensor_quarantined(tmp_path):
    path = tmp_path / "dump.json"
    path.write_text(json.dumps([message(humidity=None)]))
    assert reasons(read_inputs([path])) == ["missing humidity"]


def test_json_non_finite_quarantined(tmp_path):
    path = tmp_path / "dump.json"
    path.write_text('[{"data": {"co": NaN, "humidity": 50, "light": false, "lpg": 0.01,'
                    ' "motion": false, "smoke": 0.02, "temp": Infinity},'
                    ' "device_id": "d", "ts": 1594419195.0}]')
    assert reasons(read_inputs([path])) == ["non-finite co"]


def test_json_array_of_non_objects(tmp_path):
    path = tmp_path / "dump.json"
    path.write_text(json.dumps([42, "x", message()]))
    result = read_inputs([path])
    assert reasons(result) == ["message is not a JSON object"] * 2
    assert result.summary["kept"] == 1


def test_zip_of_json_array(tmp_path):
    path = tmp_path / "dump.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("raw.json", json.dumps([message(), message(ts=1594419196.0)]))
    assert read_inputs([path]).summary["kept"] == 2


def test_aliases_map_devices_before_dedupe(tmp_path):
    path = tmp_path / "dump.json"
    path.write_text(json.dumps([message(device_id="a"), message(device_id="b")]))
    result = read_inputs([path], aliases={"a": "c", "b": "c"})
    assert result.readings["device"].tolist() == ["c"]
    assert result.summary["duplicates"] == 1


def test_outputs_round_trip(tmp_path, kaggle_head):
    result = read_inputs([kaggle_head])
    paths = write_outputs(result, tmp_path / "out")
    loaded = load_readings(tmp_path / "out")
    pd.testing.assert_frame_equal(loaded, result.readings)
    assert json.loads(paths["summary"].read_text())["kept"] == 9
    READINGS_SCHEMA.validate(loaded)


def test_readings_parquet_is_valid_input(tmp_path, kaggle_head):
    write_outputs(read_inputs([kaggle_head]), tmp_path / "out")
    again = read_inputs([tmp_path / "out"])
    assert again.summary["kept"] == 9
    assert again.summary["quarantined"] == 0


# The real capture


@pytest.fixture(scope="module")
def capture_result(mqtt_capture):
    return read_inputs([mqtt_capture])


def test_capture_counts(capture_result):
    summary = capture_result.summary
    assert summary["read"] == 50270
    assert summary["kept"] == 50269
    assert summary["duplicates"] == 1
    assert summary["quarantined"] == 0


def test_capture_per_device_counts(capture_result):
    by_device = capture_result.summary["by_device"]
    reads = {device: counts["read"] for device, counts in by_device.items()}
    assert reads == {"0e:9c:00:4c:1c:51": 13821, "5e:44:3b:f3:79:c8": 12959,
                     "f3:6b:f4:34:c0:17": 23490}


def test_capture_aliases_to_kaggle_ids(mqtt_capture):
    result = read_inputs([mqtt_capture], aliases=CAPTURE_TO_KAGGLE)
    assert set(result.readings["device"]) == set(CAPTURE_TO_KAGGLE.values())
    assert result.summary["by_device"]["b8:27:eb:bf:9d:51"]["read"] == 23490


def test_capture_sorted_unique_monotonic(capture_result):
    readings = capture_result.readings
    READINGS_SCHEMA.validate(readings)
    for _, group in readings.groupby("device"):
        assert group["ts"].is_monotonic_increasing
    assert readings["time"].min() == pd.Timestamp("2020-07-13T00:00:24.502334Z")
