"""Request parsing: every accepted shape gives the right frame, every bad body a reason.

The same bodies are validated against schemas/request.v1.json, so the
hand-written rules (which run in the container without jsonschema) and the
published schema accept and reject the same JSON documents.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from iot_telemetry.serving.payload import (
    MAX_BODY_BYTES,
    RequestError,
    parse_body,
    split_media_type,
)
from iot_telemetry.serving.schemas import load_schema, validation_errors

MESSAGE = {
    "data": {
        "co": 0.0061,
        "humidity": 55.1,
        "light": True,
        "lpg": 0.0089,
        "motion": False,
        "smoke": 0.0239,
        "temp": 31.8,
    },
    "device_id": "6e:81:c9:d4:9e:58",
    "ts": 1594419195.292461,
}


def message(**changes) -> dict:
    copy = json.loads(json.dumps(MESSAGE))
    for key, value in changes.items():
        if key in copy["data"]:
            copy["data"][key] = value
        else:
            copy[key] = value
    return copy


def error_of(body, content_type="application/json") -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse_body(body, content_type)
    return caught.value


# JSON shapes


@pytest.mark.parametrize(
    "document",
    [MESSAGE, [MESSAGE], {"instances": [MESSAGE]}],
    ids=["message", "array", "instances"],
)
def test_json_shapes_parse_alike(document):
    frame = parse_body(json.dumps(document), "application/json")
    assert len(frame) == 1
    assert frame.loc[0, "device"] == "6e:81:c9:d4:9e:58"
    assert frame.loc[0, "ts"] == 1594419195.292461
    assert frame.loc[0, "temp"] == 31.8
    assert bool(frame.loc[0, "light"]) is True
    assert bool(frame.loc[0, "context"]) is False
    assert validation_errors(document, "request") == []


def test_json_frame_dtypes():
    frame = parse_body(json.dumps([MESSAGE]), "application/json")
    assert str(frame["ts"].dtype) == "float64"
    assert str(frame["temp"].dtype) == "float64"
    assert isinstance(frame["light"].dtype, pd.BooleanDtype)
    assert frame["context"].dtype == bool


def test_ts_keeps_every_digit():
    ts = float("1.5945120943859746E9")
    frame = parse_body(json.dumps(message(ts=ts)), "application/json")
    assert frame.loc[0, "ts"] == ts


def test_context_marks_history_rows():
    body = [message(ts=1594419190.0, context=True), message(ts=1594419195.0)]
    frame = parse_body(json.dumps(body), "application/json")
    assert frame["context"].tolist() == [True, False]


def test_null_sensor_becomes_missing():
    frame = parse_body(
        json.dumps(message(humidity=None, motion=None)), "application/json"
    )
    assert math.isnan(frame.loc[0, "humidity"])
    assert frame["motion"].isna().tolist() == [True]
    assert validation_errors(message(humidity=None, motion=None), "request") == []


def test_extra_fields_ignored():
    body = message(device="iot-device-01", firmware="1.2")
    frame = parse_body(json.dumps(body), "application/json")
    assert list(frame.columns) == [
        "device",
        "ts",
        "co",
        "humidity",
        "lpg",
        "smoke",
        "temp",
        "light",
        "motion",
        "context",
    ]


def test_huge_number_passes_as_inf():
    # 1e999 is valid JSON for an unbounded number; the model reports it invalid.
    frame = parse_body(
        '{"data": {"co": 1e999, "humidity": 50, "light": false, "lpg": 0.01,'
        ' "motion": false, "smoke": 0.02, "temp": 20}, "device_id": "d",'
        ' "ts": 1594419195}',
        "application/json",
    )
    assert frame.loc[0, "co"] == math.inf


def test_bytes_with_charset():
    body = json.dumps([MESSAGE]).encode("utf-16")
    frame = parse_body(body, "application/json; charset=utf-16")
    assert len(frame) == 1


# JSON errors: status, a reason naming the field, and the schema agrees


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ([], "empty"),
        ({"instances": []}, "empty"),
        ({"instances": {"a": 1}}, "instances must be an array"),
        (5, "got int"),
        ([5], "[0] is number"),
        (message(ts="1594419195"), "[0].ts is string"),
        (message(ts=1594419195292), "outside"),
        (message(ts=None), "[0].ts is missing"),
        (message(device_id=""), "[0].device_id"),
        (message(device_id=7), "[0].device_id"),
        (message(temp="31.8"), "[0].data.temp is string"),
        (message(temp=True), "[0].data.temp is boolean"),
        (message(light="true"), "[0].data.light is string"),
        (message(context="yes"), "[0].context is string"),
        ({"device_id": "d", "ts": 1594419195.0}, "[0].data is null"),
        (
            {"device_id": "d", "ts": 1594419195.0, "data": {"co": 0.1}},
            "[0].data.humidity is missing",
        ),
    ],
)
def test_invalid_json_rejected(document, fragment):
    error = error_of(json.dumps(document))
    assert error.status == 400
    assert fragment in str(error)
    assert validation_errors(document, "request") != []


@pytest.mark.parametrize("fast_path", [True, False])
def test_device_id_spaces_stripped(fast_path, monkeypatch):
    from iot_telemetry.serving import payload

    if not fast_path:
        # Send every request through the per-field pass.
        monkeypatch.setattr(payload, "_fast_frame", lambda messages: None)
    frame = parse_body(json.dumps(message(device_id=" 6e:81:c9:d4:9e:58\t")), None)
    assert frame["device"].tolist() == ["6e:81:c9:d4:9e:58"]


def test_blank_device_id_rejected():
    error = error_of(json.dumps(message(device_id="   ")))
    assert error.status == 400
    assert "[0].device_id is missing" in str(error)


def test_lone_surrogate_device_rejected():
    body = json.dumps(message(device_id="\ud800"))
    assert '"\\ud800"' in body  # the escape is valid JSON text
    error = error_of(body)
    assert error.status == 400
    assert "[0].device_id" in str(error)
    assert "surrogate" in str(error)


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_text_body_bom_stripped(content_type):
    if content_type == "text/csv":
        body = "ts,device,co,humidity,light,lpg,motion,smoke,temp\n" \
               "1594419195.292461,6e:81:c9:d4:9e:58,0.0061,55.1,true,0.0089,false,0.0239,31.8\n"
    else:
        body = json.dumps(MESSAGE)
    plain = parse_body(body, content_type)
    pd.testing.assert_frame_equal(parse_body("\ufeff" + body, content_type), plain)
    pd.testing.assert_frame_equal(parse_body(("\ufeff" + body).encode(), content_type), plain)


def test_nan_literal_rejected():
    error = error_of('{"data": {"co": NaN}}')
    assert error.status == 400
    assert "NaN" in str(error)


def test_malformed_json_rejected():
    error = error_of('{"data": ')
    assert error.status == 400
    assert "malformed JSON" in str(error)


def test_many_errors_counted_and_capped():
    error = error_of(json.dumps([message(temp="x", ts=index) for index in range(30)]))
    assert "60 errors" in str(error)
    assert "(and 50 more)" in str(error)
    assert len(error.errors) == 10


def test_empty_body_rejected():
    for body in ("", "   \n", b"", None):
        error = error_of(body)
        assert error.status == 400
        assert "empty request body" in str(error)


def test_all_context_rejected():
    error = error_of(json.dumps([message(context=True)]))
    assert error.status == 400
    assert "nothing to score" in str(error)


def test_oversized_body_413():
    body = b" " * (MAX_BODY_BYTES + 1)
    error = error_of(body)
    assert error.status == 413
    assert str(MAX_BODY_BYTES) in str(error)


def test_unsupported_type_415():
    error = error_of("x", "application/x-www-form-urlencoded")
    assert error.status == 415
    assert "application/json, text/csv" in str(error)


def test_unknown_charset_415():
    error = error_of(b"[]", "application/json; charset=klingon")
    assert error.status == 415
    assert "klingon" in str(error)


@pytest.mark.parametrize("charset", ["rot13", "hex", "base64", "zlib", "uu_codec"])
def test_non_text_charset_415(charset):
    error = error_of(b"[]", f"application/json; charset={charset}")
    assert error.status == 415
    assert charset in str(error)
    assert "not a text encoding" in str(error)


def test_undecodable_body_400():
    error = error_of(b"\xff\xfe\xfa", "application/json; charset=utf-8")
    assert error.status == 400
    assert "not valid utf-8" in str(error)


def test_missing_content_type_means_json():
    frame = parse_body(json.dumps(MESSAGE), None)
    assert len(frame) == 1


def test_media_type_split():
    assert split_media_type('Text/CSV; Charset="UTF-8"') == (
        "text/csv",
        {"charset": "UTF-8"},
    )
    assert split_media_type(None) == ("application/json", {})


# CSV


HEADER = '"ts","device","co","humidity","light","lpg","motion","smoke","temp"'
ROW = '"1.5945120943859746E9","b8:27:eb:bf:9d:51","0.0049","51.0","false","0.0076","false","0.0204","22.7"'


def test_kaggle_head_with_header(kaggle_head):
    frame = parse_body(kaggle_head.read_bytes(), "text/csv")
    raw = pd.read_csv(kaggle_head, dtype=str)
    assert len(frame) == len(raw) == 9
    assert frame["ts"].tolist() == [float(value) for value in raw["ts"]]
    assert frame["device"].tolist() == raw["device"].tolist()
    assert frame["light"].tolist() == [value == "true" for value in raw["light"]]
    assert frame["temp"].tolist() == [float(value) for value in raw["temp"]]


def test_kaggle_head_without_header(kaggle_head):
    lines = kaggle_head.read_text().splitlines()
    with_header = parse_body("\n".join(lines), "text/csv")
    without = parse_body("\n".join(lines[1:]) + "\n", "text/csv; charset=utf-8")
    pd.testing.assert_frame_equal(with_header, without)


def test_csv_header_in_any_order():
    header = "temp,smoke,motion,lpg,light,humidity,co,device_id,ts,context"
    row = "22.7,0.0204,TRUE,0.0076,False,51.0,0.0049,b8,1594512094.3859746,false"
    frame = parse_body(f"{header}\n{row}\n", "text/csv")
    assert frame.loc[0, "device"] == "b8"
    assert frame.loc[0, "temp"] == 22.7
    assert bool(frame.loc[0, "motion"]) is True
    assert bool(frame.loc[0, "light"]) is False
    assert bool(frame.loc[0, "context"]) is False


def test_csv_context_column_headerless():
    rows = [
        ROW + ',"true"',
        ROW.replace("1.5945120943859746E9", "1594512100.5") + ",false",
    ]
    frame = parse_body("\r\n".join(rows), "text/csv")
    assert frame["context"].tolist() == [True, False]


def test_csv_empty_fields_missing():
    row = "1594512094.5,b8,0.0049,,true,0.0076,,0.0204,22.7"
    frame = parse_body(row, "text/csv")
    assert math.isnan(frame.loc[0, "humidity"])
    assert frame["motion"].isna().tolist() == [True]


def test_csv_blank_lines_skipped():
    frame = parse_body(f"{HEADER}\n\n{ROW}\n\n", "text/csv")
    assert len(frame) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (HEADER + "\n", "no readings"),
        ("1,2,3", "must have 9 fields"),
        (f"{ROW}\n1594512094.0,b8", "row 2 has 2 fields, expected 9"),
        (
            ROW.replace('"false","0.0076"', '"maybe","0.0076"'),
            "row 1, column light: 'maybe'",
        ),
        (ROW.replace('"22.7"', '"warm"'), "row 1, column temp: 'warm' is not a number"),
        (ROW.replace("1.5945120943859746E9", "1594512094385"), "row 1, column ts"),
        (ROW.replace('"1.5945120943859746E9"', '""'), "row 1, column ts: empty"),
        (ROW.replace('"b8:27:eb:bf:9d:51"', '""'), "row 1, column device: empty"),
        ("ts,device,co\n1594512094.0,b8,0.1", "lacks column(s) humidity"),
        ("ts,device,ts,co\n1,2,3,4", "twice"),
        ('"unterminated', "malformed CSV"),
        ('"a"b,c', "malformed CSV"),
    ],
)
def test_invalid_csv_rejected(body, fragment):
    error = error_of(body, "text/csv")
    assert error.status == 400
    assert fragment in str(error)


def test_schema_files_are_valid_schemas():
    import jsonschema

    for name in ("request", "response", "error"):
        schema = load_schema(name)
        jsonschema.validators.validator_for(schema).check_schema(schema)
        assert schema["$id"] == f"urn:iot-telemetry:schema:{name}:v1"
