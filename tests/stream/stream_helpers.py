"""Helpers for the MQTT tests: ingesters in a thread or a child process, polling."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from iot_telemetry.stream.ingest import Ingester
from iot_telemetry.stream.settings import StreamParams

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_ingester(params: StreamParams, out: Path, timeout_s: float = 10.0
                     ) -> Iterator[Ingester]:
    """Run an Ingester in a thread until the block ends, then stop and join it."""
    ingester = Ingester(params, out)
    errors: list[BaseException] = []

    def target():
        try:
            ingester.run()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test thread
            errors.append(error)

    thread = threading.Thread(target=target, name="ingester", daemon=True)
    thread.start()
    assert ingester.subscribed.wait(timeout_s), "ingester did not subscribe in time"
    try:
        yield ingester
    finally:
        ingester.stop()
        thread.join(timeout_s)
        assert not thread.is_alive(), "ingester did not stop in time"
        if errors:
            raise errors[0]


def wait_until(condition, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll `condition()` until it is true; False after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return bool(condition())


def write_params_file(path: Path, params: StreamParams) -> Path:
    """Write a params.yaml holding only a `stream` section."""
    path.write_text(yaml.safe_dump({"stream": params.model_dump()}))
    return path


@dataclass
class IngestProcess:
    """`iot-telemetry stream ingest` running as a child process."""

    process: subprocess.Popen
    log_path: Path
    stdout_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float) -> bool:
        return wait_until(lambda: text in self.log_text(), timeout_s)

    def terminate(self, timeout_s: float = 20.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> int:
        self.process.kill()
        return self.process.wait(timeout=10)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")


@contextmanager
def ingest_process(params_file: Path, out: Path, folder: Path, name: str = "ingest",
                   extra: list[str] | None = None) -> Iterator[IngestProcess]:
    """Start the ingest command, wait until it subscribed, and kill it after the block."""
    log_path = folder / f"{name}.log"
    stdout_path = folder / f"{name}.out"
    command = [sys.executable, "-m", "iot_telemetry", "stream", "ingest",
               "--params", str(params_file), "--out", str(out), *(extra or [])]
    with open(log_path, "wb") as stderr, open(stdout_path, "wb") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=ROOT)
    child = IngestProcess(process, log_path, stdout_path)
    try:
        assert child.wait_for_log("ingest: subscribed", 30), child.log_text()
        yield child
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def capture_messages(path: Path, count: int | None = None) -> list[dict]:
    """The real capture's messages in file order (the first `count` when given)."""
    with zipfile.ZipFile(path) as archive:
        messages = json.loads(archive.read("raw_data_xlarge.json"))
    return messages[:count] if count else messages


class RuleEndpoint:
    """A stand-in endpoint on 127.0.0.1 with the SageMaker container's HTTP contract.

    It flags readings whose temp is above `temp_limit` and records every
    scored (device_id, ts) and every request's instances and body size.
    After `fail_next(n)` the next n requests get HTTP 503. Like the real
    endpoint, it rejects a body over `max_body_bytes` with HTTP 413, and it
    rejects a request with a device id in `reject_devices` with HTTP 400.
    """

    def __init__(self, port: int = 0, temp_limit: float = 40.0,
                 max_body_bytes: int = 6 * 1024 * 1024,
                 reject_devices: frozenset[str] = frozenset()):
        import http.server

        self.temp_limit = temp_limit
        self.max_body_bytes = max_body_bytes
        self.reject_devices = reject_devices
        self.scored: list[tuple[str, float]] = []
        self.instances: list[dict] = []
        self.body_sizes: list[int] = []
        self.requests = 0
        self.failures_left = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's method name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = endpoint.answer(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, count: int) -> None:
        with self._lock:
            self.failures_left = count

    def answer(self, path: str, body: bytes) -> tuple[int, dict]:
        with self._lock:
            self.requests += 1
            if self.failures_left:
                self.failures_left -= 1
                return 503, {"message": "unavailable (test)"}
        if path != "/invocations":
            return 404, {"message": f"no route {path}"}
        if len(body) > self.max_body_bytes:
            return 413, {"message": f"request body of {len(body)} bytes exceeds the limit"}
        instances = json.loads(body)["instances"]
        with self._lock:
            self.body_sizes.append(len(body))
            self.instances += instances
        for position, message in enumerate(instances):
            if message["device_id"] in self.reject_devices:
                return 400, {"message": f"[{position}].device_id is rejected (test)"}
        predictions = []
        for message in instances:
            if message.get("context"):
                continue
            temp = message["data"]["temp"]
            flag = temp is not None and temp > self.temp_limit
            predictions.append({
                "device_id": message["device_id"], "ts": message["ts"],
                "score": (temp or 0.0) / self.temp_limit, "flag": flag, "status": "ok",
                "reasons": ["temp"] if flag else [],
            })
            with self._lock:
                self.scored.append((message["device_id"], float(message["ts"])))
        return 200, {"schema": "urn:iot-telemetry:schema:response:v1",
                     "model": {"name": "temp-rule"}, "predictions": predictions}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AlertCollector:
    """A paho subscriber on alerts/# that keeps every alert with its receive time."""

    def __init__(self, params: StreamParams, topic: str = "alerts/#"):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.alerts: list[dict] = []
        self.topics: list[str] = []
        self.received_at: list[float] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-alerts",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(params.host, params.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "alert subscriber did not subscribe"

    def _on_message(self, client, userdata, message):
        self.received_at.append(time.time())
        self.topics.append(message.topic)
        self.alerts.append(json.loads(message.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def running_scorer(params: StreamParams, endpoint, timeout_s: float = 10.0, **options):
    """Run a LiveScorer in a thread until the block ends."""
    from iot_telemetry.stream.score import LiveScorer

    scorer = LiveScorer(params, endpoint, **options)
    errors: list[BaseException] = []

    def target():
        try:
            scorer.run()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test thread
            errors.append(error)

    thread = threading.Thread(target=target, name="scorer", daemon=True)
    thread.start()
    assert scorer.subscribed.wait(timeout_s), "scorer did not subscribe in time"
    try:
        yield scorer
    finally:
        scorer.stop()
        thread.join(timeout_s)
        assert not thread.is_alive(), "scorer did not stop in time"
        if errors:
            raise errors[0]
