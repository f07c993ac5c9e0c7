"""Live scoring: events and alerts, retries while the endpoint is down, the real model."""

from __future__ import annotations

import json
import socket
import time

import jsonschema
import numpy as np
import pandas as pd
import pytest

from iot_telemetry.stream.alerts import EventTracker, ScoredReading, alert_schema, event_id
from iot_telemetry.stream.endpoint import (
    EndpointRequestError,
    EndpointUnavailable,
    HttpEndpoint,
)
from iot_telemetry.data.columns import SENSORS
from iot_telemetry.stream.replay import (
    OutgoingMessage,
    WindowedPublisher,
    messages_from_readings,
    replay,
)
from iot_telemetry.stream.score import LiveScorer
from iot_telemetry.stream.settings import StreamParams

from stream_helpers import AlertCollector, RuleEndpoint, running_scorer, wait_until

DEVICES = ("00:0f:00:70:91:0a", "1c:bf:ce:15:ec:4d", "b8:27:eb:bf:9d:51")


def reading(ts: float, flag: bool, device: str = DEVICES[0], score: float = 0.5,
            reasons: tuple[str, ...] = ()) -> ScoredReading:
    message = {"data": {"temp": 20.0}, "device_id": device, "ts": ts}
    return ScoredReading(message, score, flag, "ok", list(reasons))


def test_tracker_opens_and_closes_events_by_gap():
    tracker = EventTracker(gap_s=60.0, model={"name": "m"})
    alerts = []
    for ts, flag in [(0, True), (10, True), (30, False), (69, True), (120, False),
                     (129, False), (200, True), (260, True)]:
        alerts += tracker.update(reading(1.6e9 + ts, flag, score=1.0 + ts / 1000,
                                         reasons=("temp",) if flag else ()))
    states = [(alert["state"], alert["opened_ts"] - 1.6e9) for alert in alerts]
    assert states == [("open", 0), ("close", 0), ("open", 200), ("close", 200),
                      ("open", 260)]
    first_close = alerts[1]
    assert first_close["flagged_readings"] == 3
    assert first_close["closed_ts"] == 1.6e9 + 69
    assert first_close["score"] == pytest.approx(1.069)
    assert first_close["event_id"] == alerts[0]["event_id"] == event_id(DEVICES[0], 1.6e9)
    assert alerts[0]["closed_ts"] is None
    for alert in alerts:
        jsonschema.validate(alert, alert_schema())


def test_tracker_keeps_devices_apart():
    tracker = EventTracker(gap_s=60.0)
    alerts = tracker.update(reading(1.6e9, True, DEVICES[0]))
    alerts += tracker.update(reading(1.6e9 + 1, True, DEVICES[1]))
    alerts += tracker.update(reading(1.6e9 + 100, False, DEVICES[0]))
    assert [(a["state"], a["device_id"]) for a in alerts] == [
        ("open", DEVICES[0]), ("open", DEVICES[1]), ("close", DEVICES[0])]
    assert set(tracker.open_events) == {DEVICES[1]}


def test_http_endpoint_maps_errors():
    endpoint_server = RuleEndpoint()
    try:
        client = HttpEndpoint(endpoint_server.url, timeout_s=5)
        message = {"data": {"temp": 50.0}, "device_id": DEVICES[0], "ts": 1.6e9}
        assert client.invoke({"instances": [message]})["predictions"][0]["flag"] is True
        endpoint_server.fail_next(1)
        with pytest.raises(EndpointUnavailable, match="HTTP 503"):
            client.invoke({"instances": [message]})
        with pytest.raises(EndpointRequestError, match="HTTP 404"):
            HttpEndpoint(endpoint_server.url + "/other").invoke({"instances": [message]})
    finally:
        endpoint_server.close()
    with pytest.raises(EndpointUnavailable, match="ConnectionRefused"):
        client.invoke({"instances": [message]})


def rule_readings(count: int, hot: dict[int, float]) -> pd.DataFrame:
    """Readings of three devices, 2 s apart; rows in `hot` get that temp."""
    from iot_telemetry.data.validate import Batch, normalize

    index = np.arange(count)
    temp = np.full(count, 21.5)
    for row, value in hot.items():
        temp[row] = value
    frame = pd.DataFrame({
        "device": [DEVICES[i % 3] for i in index], "ts": 1594512000.25 + 2.0 * index,
        "co": 0.005, "humidity": 50.0, "lpg": 0.008, "smoke": 0.02, "temp": temp,
        "light": False, "motion": False,
    })
    return normalize(Batch(frame, "test", index + 1)).drop(columns=["_source", "_line"])


def publish(params, messages, speed=None):
    publisher = WindowedPublisher(params, client_id="test-publisher", persistent=False)
    publisher.start()
    try:
        return replay(messages, publisher, speed=speed)
    finally:
        publisher.close()


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_one_alert_pair_per_event(params, tmp_path):
    # Device 0 sits on rows 0, 3, 6, ...: rows 30 and 33 are 6 s apart (one
    # event), row 300 is 534 s later (a second event), row 597 opens a third
    # that the stream ends before closing. Device 1: row 151.
    hot = {30: 45.0, 33: 47.0, 300: 50.0, 597: 46.0, 151: 44.0}
    messages = messages_from_readings(rule_readings(600, hot))
    endpoint_server = RuleEndpoint()
    collector = AlertCollector(params)
    try:
        with running_scorer(params, HttpEndpoint(endpoint_server.url)) as scorer:
            publish(params, messages)
            assert wait_until(lambda: scorer.counters.scored == len(messages), 20)
            assert wait_until(lambda: len(collector.alerts) >= 7, 10)
            time.sleep(0.3)  # an unexpected extra alert would arrive by now
    finally:
        collector.close()
        endpoint_server.close()

    alerts = collector.alerts
    summary = sorted((a["device_id"], a["state"], a["opened_ts"]) for a in alerts)
    ts = [message.ts for message in messages]
    assert summary == sorted([
        (DEVICES[0], "open", ts[30]), (DEVICES[0], "close", ts[30]),
        (DEVICES[0], "open", ts[300]), (DEVICES[0], "close", ts[300]),
        (DEVICES[0], "open", ts[597]),
        (DEVICES[1], "open", ts[151]), (DEVICES[1], "close", ts[151]),
    ])
    (first_close,) = [a for a in alerts if a["state"] == "close" and a["opened_ts"] == ts[30]]
    assert first_close["flagged_readings"] == 2
    assert first_close["closed_ts"] == ts[33]
    assert first_close["reading"]["data"]["temp"] == 47.0
    assert first_close["score"] == pytest.approx(47.0 / 40.0)
    assert all(a["model"] == {"name": "temp-rule"} for a in alerts)
    for alert in alerts:
        jsonschema.validate(alert, alert_schema())
    assert scorer.counters.flagged == 5
    assert scorer.counters.events == 4
    assert sorted(endpoint_server.scored) == sorted(
        (json.loads(m.payload)["device_id"], m.ts) for m in messages)


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_endpoint_down_loses_no_reading(params):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    messages = messages_from_readings(rule_readings(90, {45: 50.0}))
    quick = params.model_copy(update={"score_batch_size": 8})
    endpoint = HttpEndpoint(f"http://127.0.0.1:{port}", timeout_s=2)
    with running_scorer(quick, endpoint, retry_initial_s=0.1, retry_max_s=0.5) as scorer:
        publish(params, messages)
        # Nothing listens yet, so the scorer retries with backoff and keeps the batch.
        assert wait_until(lambda: scorer.counters.retries >= 2, 15)
        assert scorer.counters.scored == 0
        endpoint_server = RuleEndpoint(port=port)
        endpoint_server.fail_next(2)  # then two HTTP 503 responses
        try:
            assert wait_until(lambda: scorer.counters.scored == len(messages), 40), (
                scorer.counters)
        finally:
            endpoint_server.close()
    expected = sorted((json.loads(m.payload)["device_id"], m.ts) for m in messages)
    assert sorted(endpoint_server.scored) == expected
    assert scorer.counters.retries >= 4
    assert scorer.counters.failed == 0
    assert scorer.counters.flagged == 1


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_aliases_map_request_not_alerts(params):
    messages = messages_from_readings(rule_readings(30, {12: 50.0}))
    aliases = {DEVICES[0]: "0e:9c:00:4c:1c:51"}
    endpoint_server = RuleEndpoint()
    collector = AlertCollector(params)
    try:
        with running_scorer(params, HttpEndpoint(endpoint_server.url), aliases=aliases) as scorer:
            publish(params, messages)
            assert wait_until(lambda: scorer.counters.scored == len(messages), 20)
            assert wait_until(lambda: len(collector.alerts) >= 1, 10)
    finally:
        collector.close()
        endpoint_server.close()
    sent = {device for device, _ in endpoint_server.scored}
    assert "0e:9c:00:4c:1c:51" in sent
    assert DEVICES[0] not in sent
    assert DEVICES[1] in sent
    assert {alert["device_id"] for alert in collector.alerts} == {DEVICES[0]}


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_redelivered_reading_scored_once(params):
    messages = messages_from_readings(rule_readings(12, {}))
    endpoint_server = RuleEndpoint()
    try:
        with running_scorer(params, HttpEndpoint(endpoint_server.url)) as scorer:
            publish(params, messages + messages[3:6])
            assert wait_until(lambda: scorer.counters.received == 15, 15)
    finally:
        endpoint_server.close()
    assert scorer.counters.duplicates == 3
    assert len(endpoint_server.scored) == 12


@pytest.fixture(scope="module")
def sample_package_dir(tmp_path_factory):
    """A package of the small real anomaly model fitted on 0.1 day of the twin."""
    from iot_telemetry.deploy.sample import sample_package

    return sample_package(tmp_path_factory.mktemp("model")).archive.parent


def clean_twin_with_glitches(minutes: float, rows_per_device: tuple[float, ...]):
    """Return the twin's first minutes, without its own glitches, and the injected keys.

    temp is set to 3.0 degC at the given fractions of each device's readings.
    """
    from iot_telemetry.data.sample import sample_with_truth

    readings, truth = sample_with_truth(days=0.1, seed=0)
    glitches = truth.loc[truth["kind"] == "glitch", ["device", "ts"]]
    keys = pd.MultiIndex.from_frame(readings[["device", "ts"]])
    clean = readings.loc[~keys.isin(pd.MultiIndex.from_frame(glitches))]
    clean = clean.loc[clean["ts"] < clean["ts"].min() + minutes * 60].reset_index(drop=True)
    injected = {}
    for device, group in clean.groupby("device"):
        for fraction in rows_per_device:
            row = group.index[int(len(group) * fraction)]
            clean.loc[row, "temp"] = 3.0
            injected[(device, float(clean.loc[row, "ts"]))] = row
    return clean, injected


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.timeout(120)
def test_real_model_alerts_once_per_glitch(params, tmp_path, sample_package_dir):
    from iot_telemetry.serving.server import LocalEndpoint

    readings, injected = clean_twin_with_glitches(40, (0.3, 0.7))
    messages = messages_from_readings(readings)
    # The sample model's context_seconds is about 1,960 s.
    scoring = params.model_copy(update={"score_batch_size": 100, "score_context_s": 2000.0})
    collector = AlertCollector(params)
    with open(tmp_path / "server.log", "wb") as server_log:
        endpoint = LocalEndpoint(sample_package_dir, port=0, workers=1, log_file=server_log)
        with endpoint:
            with running_scorer(scoring, HttpEndpoint(endpoint.url, timeout_s=30)) as scorer:
                publish(params, messages)
                assert wait_until(lambda: scorer.counters.scored == len(messages), 90), (
                    scorer.counters)
                time.sleep(0.3)
    collector.close()

    opened = sorted((a["device_id"], a["opened_ts"]) for a in collector.alerts
                    if a["state"] == "open")
    closed = sorted((a["device_id"], a["opened_ts"]) for a in collector.alerts
                    if a["state"] == "close")
    assert opened == sorted(injected)
    assert closed == sorted(injected)
    assert all("temp" in a["reasons"] for a in collector.alerts)
    assert scorer.counters.failed == 0
    for alert in collector.alerts:
        jsonschema.validate(alert, alert_schema())


def test_endpoint_choice_follows_params():
    from iot_telemetry.stream.endpoint import SageMakerEndpoint
    from iot_telemetry.stream.score import endpoint_from_params
    from iot_telemetry.stream.settings import StreamParams

    local = endpoint_from_params(StreamParams(endpoint_url="http://127.0.0.1:8081"))
    assert isinstance(local, HttpEndpoint)
    assert local.name == "http://127.0.0.1:8081"
    remote = endpoint_from_params(StreamParams(endpoint_name="telemetry", region="eu-west-1"))
    assert isinstance(remote, SageMakerEndpoint)
    assert remote.name == "sagemaker:telemetry"
    with pytest.raises(ValueError, match="endpoint URL must be"):
        HttpEndpoint("127.0.0.1:8080")


def test_score_aliases_default_to_params(tmp_path):
    import argparse

    from iot_telemetry.stream.commands import _score_aliases

    params_file = tmp_path / "params.yaml"
    params_file.write_text("devices:\n  aliases:\n    aa:aa: bb:bb\n")
    base = {"params": str(params_file), "alias": None, "no_aliases": False}
    assert _score_aliases(argparse.Namespace(**base)) == {"aa:aa": "bb:bb"}
    flagged = argparse.Namespace(**{**base, "alias": ["cc:cc=dd:dd"]})
    assert _score_aliases(flagged) == {"cc:cc": "dd:dd"}
    assert _score_aliases(argparse.Namespace(**{**base, "no_aliases": True})) == {}


def raw_message(device: str, offset: float, temp: float = 21.5, topic_device: str = "x",
                data_extra: dict | None = None, **extra) -> OutgoingMessage:
    """A device message as JSON text, NaN and Infinity allowed, on telemetry/<topic_device>."""
    data = {"co": 0.005, "humidity": 50.0, "light": False, "lpg": 0.008, "motion": False,
            "smoke": 0.02, "temp": temp, **(data_extra or {})}
    ts = 1594512000.25 + offset
    payload = json.dumps({"data": data, "device_id": device, "ts": ts, **extra}).encode()
    return OutgoingMessage(f"telemetry/{topic_device}", payload, ts)


def assert_contract_fields_only(instances: list[dict]) -> None:
    for instance in instances:
        assert set(instance) <= {"data", "device_id", "ts", "context"}
        assert set(instance["data"]) == set(SENSORS)


def score_until(params, endpoint_server, messages, scored: int):
    """Run a scorer against `endpoint_server` until it received and scored the messages."""
    with running_scorer(params, HttpEndpoint(endpoint_server.url)) as scorer:
        publish(params, messages)
        assert wait_until(lambda: scorer.counters.received == len(messages), 15)
        assert wait_until(lambda: scorer.counters.scored == scored, 10), scorer.counters
    return scorer


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_nan_outside_data_is_not_sent(params):
    messages = [raw_message(DEVICES[0], offset) for offset in range(5)]
    messages.append(raw_message(DEVICES[0], 10, note=float("nan")))
    messages.append(raw_message(DEVICES[1], 11, data_extra={"x": [float("nan")]}))
    messages.append(raw_message(DEVICES[2], 12, temp=float("inf")))
    endpoint_server = RuleEndpoint()
    try:
        scorer = score_until(params, endpoint_server, messages, scored=7)
    finally:
        endpoint_server.close()
    assert scorer.counters.invalid == 1
    assert scorer.counters.invalid_reasons == {"number not valid in JSON": 1}
    assert scorer.counters.failed == 0
    assert_contract_fields_only(endpoint_server.instances)


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_wildcard_device_alert_topic_is_escaped(params):
    devices = ["evil#", "a+b", "a/b", "a//b"]
    messages = [raw_message(device, offset, temp=50.0)
                for offset, device in enumerate(devices)]
    endpoint_server = RuleEndpoint()
    collector = AlertCollector(params)
    try:
        with running_scorer(params, HttpEndpoint(endpoint_server.url)) as scorer:
            publish(params, messages)
            assert wait_until(lambda: len(collector.alerts) == len(devices), 15), (
                scorer.counters)
    finally:
        collector.close()
        endpoint_server.close()
    assert sorted(collector.topics) == sorted(
        ["alerts/evil%23", "alerts/a%2Bb", "alerts/a%2Fb", "alerts/a%2F%2Fb"])
    assert sorted(alert["device_id"] for alert in collector.alerts) == sorted(devices)
    assert scorer.counters.alert_errors == 0


def test_alert_publish_error_is_logged(caplog):
    scorer = LiveScorer(StreamParams(), endpoint=None)
    (alert,) = scorer.tracker.update(reading(1.6e9, True))

    def broken_publish(topic, payload, qos):
        raise ValueError("Publish topic cannot contain wildcards.")

    scorer.client.publish = broken_publish
    scorer._publish_alert(alert)
    assert scorer.counters.alert_errors == 1
    assert scorer.counters.alerts == 0
    assert "could not publish alert" in caplog.text


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_rejected_reading_spares_its_batch(params):
    messages = [raw_message(DEVICES[offset % 3], offset) for offset in range(10)]
    messages.insert(4, raw_message("bad-device", 20))
    messages.insert(7, raw_message("", 21))
    one_batch = params.model_copy(update={"score_batch_wait_ms": 1000.0})
    endpoint_server = RuleEndpoint(reject_devices=frozenset({"bad-device"}))
    try:
        scorer = score_until(one_batch, endpoint_server, messages, scored=10)
    finally:
        endpoint_server.close()
    assert scorer.counters.failed == 1
    assert scorer.counters.failed_reasons == {"HTTP 400": 1}
    assert scorer.counters.invalid == 1
    assert scorer.counters.invalid_reasons == {"invalid device id": 1}
    assert len(set(endpoint_server.scored)) == 10
    counters = scorer.counters
    assert counters.received == (counters.scored + counters.failed + counters.invalid
                                 + counters.duplicates)


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_requests_stay_under_size_limit(params):
    limit = 20_000
    padding = "x" * 60_000
    messages = [raw_message(DEVICES[offset % 3], 2.0 * offset, pad=padding)
                for offset in range(60)]
    endpoint_server = RuleEndpoint(max_body_bytes=limit)
    try:
        with running_scorer(params, HttpEndpoint(endpoint_server.url),
                            max_request_bytes=limit) as scorer:
            publish(params, messages)
            assert wait_until(lambda: scorer.counters.scored == 60, 20), scorer.counters
    finally:
        endpoint_server.close()
    assert scorer.counters.failed == 0
    assert max(endpoint_server.body_sizes) <= limit
    assert len(endpoint_server.body_sizes) > 1
    assert_contract_fields_only(endpoint_server.instances)
    # Context readings were sent too, trimmed like the fresh ones.
    assert any(instance.get("context") for instance in endpoint_server.instances)
