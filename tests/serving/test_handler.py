"""The four handler functions in this process, on a real model and real readings."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from iot_telemetry.serving.payload import RequestError, parse_body
from iot_telemetry.serving.schemas import validation_errors

DEVICE = "b8:27:eb:bf:9d:51"


def predictions(
    loaded, body, content_type="application/json", accept=None
) -> list[dict]:
    response = loaded.invoke(
        json.dumps(body) if not isinstance(body, (str, bytes)) else body,
        content_type,
        accept,
    )
    assert response.status == 200, response.body
    document = json.loads(response.body)
    assert validation_errors(document, "response") == []
    return document["predictions"]


def test_model_fn_reports_card(loaded):
    info = loaded.model.info
    assert info["name"] == "mq2+stuck+robust_z+isolation_forest"
    assert len(info["sha256"]) == 64


def test_scores_equal_model_scores(loaded, window):
    messages = window(DEVICE, 30, context=10)
    frame = parse_body(json.dumps(messages), "application/json")
    expected = loaded.model.selected.score(frame)
    got = predictions(loaded, messages)
    assert len(got) == 20
    assert [p["ts"] for p in got] == expected["ts"].tolist()
    np.testing.assert_array_equal(
        [p["score"] for p in got], expected["score"].to_numpy()
    )
    assert [p["flag"] for p in got] == expected["flag"].tolist()
    assert [p["status"] for p in got] == expected["status"].tolist()


def test_context_rows_get_no_prediction(loaded, window):
    messages = window(DEVICE, 12, context=11)
    got = predictions(loaded, messages)
    assert [p["ts"] for p in got] == [messages[-1]["ts"]]


def test_predictions_in_request_order(loaded, window):
    messages = window(DEVICE, 8) + window("00:0f:00:70:91:0a", 8)
    shuffled = [messages[index] for index in (9, 0, 15, 3, 8, 1)]
    got = predictions(loaded, shuffled)
    assert [(p["device_id"], p["ts"]) for p in got] == [
        (m["device_id"], m["ts"]) for m in shuffled
    ]


def test_history_changes_the_score(loaded, window):
    messages = window(DEVICE, 40, context=39)
    with_history = predictions(loaded, messages)[0]["score"]
    alone = predictions(loaded, [dict(messages[-1], context=False)])[0]["score"]
    assert with_history != alone


def test_temperature_spike_flagged(loaded, window):
    messages = window(DEVICE, 40, context=39)
    baseline = predictions(loaded, messages)[0]
    assert baseline["flag"] is False
    messages[-1]["data"]["temp"] += 10.0
    spiked = predictions(loaded, messages)[0]
    assert spiked["flag"] is True
    assert "temp" in spiked["reasons"]
    assert spiked["score"] > 1.0


def test_missing_value_is_invalid_not_flagged(loaded, window):
    messages = window(DEVICE, 20, context=19)
    messages[-1]["data"]["humidity"] = None
    got = predictions(loaded, messages)[0]
    assert got["status"] == "invalid"
    assert got["flag"] is False
    assert got["score"] is None
    assert "humidity:missing" in got["reasons"]


def test_lone_invalid_reading_is_invalid(loaded, window):
    messages = window(DEVICE, 1)
    messages[0]["data"]["co"] = None
    [got] = predictions(loaded, messages)
    assert got["status"] == "invalid"
    assert got["flag"] is False
    assert "co:missing" in got["reasons"]


def test_repeated_reading_is_invalid(loaded, window):
    messages = window(DEVICE, 5)
    got = predictions(loaded, messages + [messages[-1]])
    assert len(got) == 6
    assert got[4]["status"] == "ok"
    assert got[5]["status"] == "invalid"


@pytest.mark.parametrize("device", ["a\u0000b\nc", "d" * 129, "dev\x7f"],
                         ids=["control", "long", "delete"])
def test_invalid_device_id_is_invalid(loaded, window, device):
    """Ids that ingest quarantines are invalid here, and the rest is still scored."""
    messages = window(DEVICE, 5)
    bad = {**messages[-1], "device_id": device, "ts": messages[-1]["ts"] + 1}
    got = predictions(loaded, messages + [bad])
    assert len(got) == 6
    assert got[4]["status"] == "ok"
    assert got[5]["device_id"] == device
    assert got[5]["status"] == "invalid"
    assert got[5]["score"] is None
    assert got[5]["flag"] is False
    assert "device:invalid" in got[5]["reasons"]


def test_csv_body_invalid_device_id_is_invalid(loaded, window):
    messages = window(DEVICE, 2)
    sensors = ("co", "humidity", "light", "lpg", "motion", "smoke", "temp")
    rows = []
    for reading, device in zip(messages, [DEVICE, "a\x00b"]):
        values = [str(reading["data"][name]).lower() for name in sensors]
        rows.append(",".join([repr(reading["ts"]), device, *values]))
    got = predictions(loaded, "\n".join(rows) + "\n", "text/csv")
    assert got[0]["status"] != "invalid"
    assert got[1]["status"] == "invalid"
    assert "device:invalid" in got[1]["reasons"]


def test_unknown_device_uses_fleet(loaded, capture_messages):
    # An id that is neither a trained device nor an alias of one.
    messages = [{**message, "device_id": "6e:81:c9:d4:9e:58"} for message in capture_messages[:3]]
    got = predictions(loaded, messages)
    assert {p["status"] for p in got} == {"unknown_device"}
    assert {p["device_id"] for p in got} == {"6e:81:c9:d4:9e:58"}
    assert all(p["score"] is not None for p in got)


def test_csv_accept_matches_json(loaded, window):
    messages = window(DEVICE, 15, context=5)
    as_json = predictions(loaded, messages)
    response = loaded.invoke(json.dumps(messages), "application/json", "text/csv")
    assert response.status == 200
    assert response.content_type.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.body.decode())))
    assert len(rows) == len(as_json) == 10
    for row, record in zip(rows, as_json):
        assert row["device_id"] == record["device_id"]
        assert float(row["ts"]) == record["ts"]
        assert float(row["score"]) == record["score"]
        assert row["flag"] == ("true" if record["flag"] else "false")
        assert row["status"] == record["status"]
        assert row["reasons"] == ";".join(record["reasons"])


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "text/html, application/json"]
)
def test_accept_variants_give_json(loaded, window, accept):
    response = loaded.invoke(json.dumps(window(DEVICE, 2)), "application/json", accept)
    assert response.status == 200
    assert response.content_type == "application/json"


def test_unsupported_accept_406(loaded, window):
    response = loaded.invoke(
        json.dumps(window(DEVICE, 2)), "application/json", "image/png"
    )
    document = json.loads(response.body)
    assert response.status == 406
    assert document["accepted"] == ["application/json", "text/csv"]
    assert validation_errors(document, "error") == []


def test_input_fn_returns_error_instead_of_raising(loaded):
    result = loaded.handler.input_fn("", "application/json")
    assert isinstance(result, RequestError)
    assert loaded.handler.predict_fn(result, loaded.model) is result
    response = loaded.handler.output_fn(result, "application/json")
    document = json.loads(response.body)
    assert response.status == 400
    assert "empty request body" in document["message"]
    assert validation_errors(document, "error") == []


def test_input_fn_accepts_text_and_bytes(loaded, window):
    body = json.dumps(window(DEVICE, 3))
    from_text = loaded.handler.input_fn(body, "application/json")
    from_bytes = loaded.handler.input_fn(
        body.encode(), "application/json; charset=utf-8"
    )
    assert from_text.equals(from_bytes)
