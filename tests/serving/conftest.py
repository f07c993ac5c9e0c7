"""Fixtures for the serving tests: a real (small) packaged model, its in-process
handler, the local endpoint serving it on loopback, and real MQTT messages."""

from __future__ import annotations

import http.client
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory) -> Path:
    """A package (model.tar.gz + manifest.json) of a small model fitted on the twin."""
    from iot_telemetry.deploy.sample import sample_package

    result = sample_package(tmp_path_factory.mktemp("sample"))
    return result.archive.parent


@pytest.fixture(scope="session")
def loaded(package_dir):
    """The archive's handler functions and model, loaded in this process."""
    from iot_telemetry.serving.server import LoadedArchive

    with LoadedArchive(package_dir) as archive:
        yield archive


@dataclass
class Served:
    """A running local endpoint and the file its log goes to."""

    host: str
    port: int
    log_path: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def invoke(
        self, body: bytes | str, content_type: str | None, accept: str | None = None
    ):
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        data = body.encode() if isinstance(body, str) else body
        return self.request("POST", "/invocations", data, headers)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def served(package_dir, tmp_path_factory):
    """The local endpoint (gunicorn, 2 workers) on a free 127.0.0.1 port."""
    from iot_telemetry.serving.server import LocalEndpoint

    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with open(log_path, "wb") as log_file:
        endpoint = LocalEndpoint(package_dir, port=0, workers=2, log_file=log_file)
        with endpoint:
            yield Served(endpoint.host, endpoint.port, log_path)


@pytest.fixture(scope="session")
def capture_messages(mqtt_capture) -> list[dict]:
    """The first 400 messages of the real MQTT capture, in the devices' payload shape."""
    with zipfile.ZipFile(mqtt_capture) as archive:
        name = archive.namelist()[0]
        messages = json.loads(archive.read(name))
    return messages[:400]


@pytest.fixture(scope="session")
def window(capture_messages):
    """Return window(device, size, context): copies of one device's first messages.

    `device` is a Kaggle device id; the capture's anonymised id is mapped to
    it, as ingest does, so the model has a profile for the device. The first `context`
    messages carry "context": true.
    """
    from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE

    def build(device: str, size: int, context: int = 0) -> list[dict]:
        chosen = [
            m for m in capture_messages if CAPTURE_TO_KAGGLE[m["device_id"]] == device
        ]
        assert len(chosen) >= size, f"only {len(chosen)} messages for {device}"
        copies = [json.loads(json.dumps(m)) for m in chosen[:size]]
        for message in copies:
            message["device_id"] = device
        for message in copies[:context]:
            message["context"] = True
        return copies

    return build
