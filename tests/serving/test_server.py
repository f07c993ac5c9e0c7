"""The container contract on the real local server (gunicorn on 127.0.0.1)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from iot_telemetry.errors import InputError
from iot_telemetry.serving.payload import MAX_BODY_BYTES
from iot_telemetry.serving.schemas import validation_errors
from iot_telemetry.serving.server import DEFAULT_HOST, LocalEndpoint

DEVICE = "1c:bf:ce:15:ec:4d"
HEADER = "ts,device,co,humidity,light,lpg,motion,smoke,temp"


def as_csv(messages: list[dict], header: bool = True, context: bool = False) -> str:
    lines = []
    if header:
        lines.append(HEADER + ",context" if context else HEADER)
    for m in messages:
        d = m["data"]
        fields = [
            repr(m["ts"]),
            m["device_id"],
            repr(d["co"]),
            repr(d["humidity"]),
            "TRUE" if d["light"] else "False",
            repr(d["lpg"]),
            "true" if d["motion"] else "FALSE",
            repr(d["smoke"]),
            repr(d["temp"]),
        ]
        if context:
            fields.append("true" if m.get("context") else "false")
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"


def in_process(loaded, body, content_type) -> list[dict]:
    response = loaded.invoke(body, content_type, "application/json")
    assert response.status == 200
    return json.loads(response.body)["predictions"]


def served_predictions(served, body, content_type) -> list[dict]:
    status, headers, raw = served.invoke(body, content_type)
    assert status == 200, raw
    assert headers["Content-Type"] == "application/json"
    document = json.loads(raw)
    assert validation_errors(document, "response") == []
    return document["predictions"]


def test_ping_ok_within_two_seconds(served):
    status, headers, body = served.request("GET", "/ping", timeout_s=2.0)
    assert status == 200
    assert json.loads(body)["model"]["name"] == "mq2+stuck+robust_z+isolation_forest"


@pytest.mark.parametrize("shape", ["message", "array", "instances"])
def test_json_scores_match_in_process(served, loaded, window, shape):
    messages = window(DEVICE, 25, context=5)
    document = {
        "message": messages[-1],
        "array": messages,
        "instances": {"instances": messages},
    }[shape]
    body = json.dumps(document)
    got = served_predictions(served, body, "application/json")
    assert got == in_process(loaded, body, "application/json")
    assert len(got) == (1 if shape == "message" else 20)


def test_capture_ids_scored_through_aliases(served, window):
    from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE

    kaggle_messages = window(DEVICE, 20, context=5)
    capture_id = next(old for old, new in CAPTURE_TO_KAGGLE.items() if new == DEVICE)
    capture_messages = json.loads(json.dumps(kaggle_messages))
    for message in capture_messages:
        message["device_id"] = capture_id

    by_kaggle = served_predictions(served, json.dumps(kaggle_messages), "application/json")
    by_capture = served_predictions(served, json.dumps(capture_messages), "application/json")
    assert len(by_capture) == 15
    # The response names the device as the request did, scored by its profile.
    assert {row["device_id"] for row in by_capture} == {capture_id}
    assert "unknown_device" not in {row["status"] for row in by_capture}
    assert [row["score"] for row in by_capture] == [row["score"] for row in by_kaggle]
    assert [row["flag"] for row in by_capture] == [row["flag"] for row in by_kaggle]


def test_csv_header_and_text_booleans(served, loaded, window):
    messages = window(DEVICE, 20, context=8)
    body = as_csv(messages, header=True, context=True)
    got = served_predictions(served, body, "text/csv")
    assert len(got) == 12
    assert got == in_process(loaded, json.dumps(messages), "application/json")


def test_csv_without_header(served, loaded, window):
    messages = window(DEVICE, 10)
    got = served_predictions(
        served, as_csv(messages, header=False), "text/csv; charset=utf-8"
    )
    assert got == in_process(loaded, json.dumps(messages), "application/json")


def test_large_body_matches_in_process(served, loaded, capture_messages):
    from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE

    # All devices' capture messages make a body of about 100 KB, which the
    # server reads in many socket-sized chunks.
    messages = [
        dict(message, device_id=CAPTURE_TO_KAGGLE[message["device_id"]])
        for message in capture_messages
    ]
    body = json.dumps({"instances": messages})
    assert len(body) > 64 * 1024
    got = served_predictions(served, body, "application/json")
    assert len(got) == len(messages)
    assert got == in_process(loaded, body, "application/json")


def test_kaggle_head_scored(served, loaded, kaggle_head):
    body = kaggle_head.read_bytes()
    got = served_predictions(served, body, "text/csv")
    assert len(got) == 9
    assert got == in_process(loaded, body, "text/csv")


def test_server_timing_header(served, window):
    status, headers, _ = served.invoke(
        json.dumps(window(DEVICE, 2)), "application/json"
    )
    assert status == 200
    match = re.fullmatch(
        r"handler;dur=(\d+\.\d{3}), app;dur=(\d+\.\d{3})", headers["Server-Timing"]
    )
    assert match, headers["Server-Timing"]
    handler_ms, app_ms = float(match.group(1)), float(match.group(2))
    assert handler_ms > 0
    assert app_ms >= handler_ms


def test_csv_response(served, window):
    status, headers, raw = served.invoke(
        json.dumps(window(DEVICE, 4)), "application/json", "text/csv"
    )
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    lines = raw.decode().splitlines()
    assert lines[0] == "device_id,ts,score,flag,status,reasons"
    assert len(lines) == 5


def error_document(served, body, content_type, accept=None, expected=400) -> dict:
    status, headers, raw = served.invoke(body, content_type, accept)
    assert status == expected, raw
    assert headers["Content-Type"] == "application/json"
    document = json.loads(raw)
    assert validation_errors(document, "error") == []
    assert document["status"] == expected
    return document


def test_empty_body_400(served):
    document = error_document(served, b"", "application/json")
    assert "empty request body" in document["message"]


def test_malformed_json_400(served):
    document = error_document(served, b'{"data": [', "application/json")
    assert "malformed JSON" in document["message"]


def test_invalid_field_400_names_it(served, window):
    messages = window(DEVICE, 3)
    messages[1]["data"]["temp"] = "hot"
    document = error_document(served, json.dumps(messages), "application/json")
    assert "[1].data.temp is string" in document["message"]
    assert document["errors"] == ["[1].data.temp is string, expected number or null"]


def test_wrong_content_type_415(served):
    document = error_document(
        served, b"a=1", "application/x-www-form-urlencoded", expected=415
    )
    assert document["accepted"] == ["application/json", "text/csv"]
    assert "application/json, text/csv" in document["message"]


def test_non_text_charset_415(served):
    document = error_document(
        served, b"[]", "application/json; charset=rot13", expected=415
    )
    assert "rot13" in document["message"]


def test_unsupported_accept_406(served, window):
    document = error_document(
        served,
        json.dumps(window(DEVICE, 2)),
        "application/json",
        accept="application/xml",
        expected=406,
    )
    assert document["accepted"] == ["application/json", "text/csv"]


def test_oversized_body_413(served):
    body = b"[" + b" " * MAX_BODY_BYTES + b"]"
    document = error_document(served, body, "application/json", expected=413)
    assert str(MAX_BODY_BYTES) in document["message"]


def test_oversized_chunked_body_413(served):
    connection = http.client.HTTPConnection(served.host, served.port, timeout=60)
    try:
        chunks = (b" " * (1 << 20) for _ in range(7))
        connection.request(
            "POST",
            "/invocations",
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
        assert "exceeds the limit" in json.loads(response.read())["message"]
    finally:
        connection.close()


def read_until_closed(client) -> bytes:
    """Read from a socket until the server closes the connection."""
    chunks = []
    while chunk := client.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def start_short_body(endpoint, first_bytes: bytes):
    """Open a connection and send a request whose Content-Length of 100 is not met."""
    import socket

    client = socket.create_connection((endpoint.host, endpoint.port), timeout=20)
    client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 100\r\n"
                   b"\r\n" + first_bytes)
    return client


def test_stalled_body_408_frees_worker(package_dir, monkeypatch):
    import time

    monkeypatch.setenv("IOT_TELEMETRY_BODY_TIMEOUT_S", "1")
    with LocalEndpoint(package_dir, port=0, workers=1) as endpoint:
        # 2 of the 100 bytes arrive, and the connection stays open.
        with start_short_body(endpoint, b"{}") as client:
            started = time.monotonic()
            response = read_until_closed(client)
            waited = time.monotonic() - started
        assert response.startswith(b"HTTP/1.1 408")
        assert b"Content-Length announces" in response
        assert 0.5 < waited < 10
        # The one worker serves the next request.
        assert endpoint.ping() == 200


def test_trickled_body_408_frees_worker(package_dir, monkeypatch):
    import time

    monkeypatch.setenv("IOT_TELEMETRY_BODY_TIMEOUT_S", "1")
    with LocalEndpoint(package_dir, port=0, workers=1) as endpoint:
        with start_short_body(endpoint, b"") as client:
            # One byte every 0.3 s: no single wait reaches the 1 s limit, but
            # the whole body would take 30 s.
            started = time.monotonic()
            client.settimeout(0.3)
            response = b""
            for _ in range(100):
                try:
                    client.sendall(b" ")
                    response = client.recv(65536)
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                if response:
                    client.settimeout(5)
                    response += read_until_closed(client)
                    break
            waited = time.monotonic() - started
        assert response.startswith(b"HTTP/1.1 408")
        assert b"within 1 s" in response
        assert waited < 10
        assert endpoint.ping() == 200


def test_wrong_method_and_path(served):
    status, headers, _ = served.request("GET", "/invocations")
    assert status == 405
    assert headers["Allow"] == "POST"
    status, _, body = served.request("GET", "/predict")
    assert status == 404
    assert "/invocations" in json.loads(body)["message"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"null", "application/json"),
        (b"[[]]", "application/json"),
        (b'{"instances": null}', "application/json"),
        (b'[{"device_id": "d", "ts": 1e400, "data": {}}]', "application/json"),
        (b"\x00\x01\x02", "application/json"),
        (b"\xff\xfe", "text/csv"),
        (b"ts\n", "text/csv"),
        (b",,,,,,,,", "text/csv"),
        (b"nan,d,1,1,true,1,true,1,1", "text/csv"),
        (b'{"a": ' * 5000, "application/json"),
        (b"[]", "text/csv; charset=nope"),
    ],
)
def test_bad_input_never_5xx(served, body, content_type):
    status, _, raw = served.invoke(body, content_type)
    assert 400 <= status < 500, raw


def test_log_line_per_request(served):
    served.invoke(b"", "application/json")
    served.invoke(b"x", "text/plain")
    log = served.log()
    assert re.search(
        r"POST /invocations 400 readings=0 in=0B out=\d+B \d+\.\d+ ms", log
    )
    assert re.search(r"POST /invocations 415 .* \d+\.\d+ ms", log)
    assert re.search(r"POST /invocations 200 readings=\d+ .* \d+\.\d+ ms", log)


def test_server_runs_archive_code(served):
    log = served.log()
    match = re.search(
        r"handler (\S+)/code/inference\.py uses the iot_telemetry package at (\S+)", log
    )
    assert match, log[:2000]
    assert match.group(2) == f"{match.group(1)}/code/iot_telemetry"


def test_several_workers_on_loopback(served):
    log = served.log()
    assert len(re.findall(r"Booting worker with pid", log)) == 2
    assert f"Listening at: http://127.0.0.1:{served.port}" in log


def test_default_host_is_loopback():
    assert DEFAULT_HOST == "127.0.0.1"
    assert LocalEndpoint().host == "127.0.0.1"


def test_altered_archive_refused(package_dir, tmp_path):
    copy = tmp_path / "package"
    shutil.copytree(package_dir, copy)
    archive = copy / "model.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    endpoint = LocalEndpoint(copy, port=0)
    with pytest.raises(InputError, match="sha256"):
        endpoint.start()
    assert endpoint.process is None


def test_missing_manifest_refused(package_dir, tmp_path):
    shutil.copy(package_dir / "model.tar.gz", tmp_path / "model.tar.gz")
    with pytest.raises(InputError, match="manifest.json not found"):
        LocalEndpoint(tmp_path / "model.tar.gz", port=0).start()


def test_port_in_use_refused(package_dir, served):
    with pytest.raises(InputError, match="cannot listen"):
        LocalEndpoint(package_dir, port=served.port).start()


@pytest.mark.slow
def test_serve_command_runs_and_stops(package_dir):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iot_telemetry",
            "serve",
            "--model",
            str(package_dir),
            "--port",
            "0",
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        connection = http.client.HTTPConnection(
            "127.0.0.1", int(match.group(1)), timeout=5
        )
        connection.request("GET", "/ping")
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) in (0, 130)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
