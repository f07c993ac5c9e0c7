"""The boto3 sagemaker-runtime client of the live scorer, against moto on loopback."""

from __future__ import annotations

import json
import urllib.request

import pytest

from iot_telemetry.stream.endpoint import SageMakerEndpoint
from iot_telemetry.stream.replay import WindowedPublisher, messages_from_readings, replay

from stream_helpers import AlertCollector, running_scorer, wait_until

REGION = "us-east-1"


@pytest.fixture
def moto_url(monkeypatch, tmp_path):
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMOTOSTREAMTEST01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto-dummy-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def queue_results(moto_url: str, bodies: list[dict]) -> None:
    results = [{"Body": json.dumps(body), "ContentType": "application/json"} for body in bodies]
    request = urllib.request.Request(
        f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps({"region": REGION, "results": results}).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def prediction(message: dict, flag: bool) -> dict:
    return {"device_id": message["device_id"], "ts": message["ts"], "score": 1.5 if flag else 0.1,
            "flag": flag, "status": "ok", "reasons": ["temp"] if flag else []}


def test_invoke_returns_endpoint_body(moto_url):
    body = {"schema": "urn:iot-telemetry:schema:response:v1", "model": {"name": "m"},
            "predictions": []}
    queue_results(moto_url, [body])
    client = SageMakerEndpoint("telemetry-anomaly", REGION, endpoint_url=moto_url)
    answer = client.invoke({"instances": [{"device_id": "d", "ts": 1.6e9, "data": {}}]})
    assert answer == body
    assert client.name == "sagemaker:telemetry-anomaly"


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_scorer_alerts_through_sagemaker(params, moto_url):
    from test_score import rule_readings

    messages = messages_from_readings(rule_readings(1, {0: 45.0}))
    message = json.loads(messages[0].payload)
    queue_results(moto_url, [{"schema": "urn:iot-telemetry:schema:response:v1",
                              "model": {"name": "sagemaker-model"},
                              "predictions": [prediction(message, True)]}])
    endpoint = SageMakerEndpoint("telemetry-anomaly", REGION, endpoint_url=moto_url)
    collector = AlertCollector(params)
    try:
        with running_scorer(params, endpoint) as scorer:
            publisher = WindowedPublisher(params, client_id="test-publisher", persistent=False)
            publisher.start()
            replay(messages, publisher, speed=None)
            publisher.close()
            assert wait_until(lambda: collector.alerts, 15), scorer.counters
    finally:
        collector.close()
    (alert,) = collector.alerts
    assert alert["state"] == "open"
    assert alert["device_id"] == message["device_id"]
    assert alert["model"] == {"name": "sagemaker-model"}
    assert scorer.counters.scored == 1
