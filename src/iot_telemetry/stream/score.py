"""Live scoring: telemetry from the broker, scores from the endpoint, alerts back.

The scorer subscribes with a persistent session and manual acknowledgements.
paho's network thread queues each message, and the scoring loop takes
batches of at most `score_batch_size`. Each batch goes to the endpoint with
the device's recent readings marked as context, because the endpoint is
stateless and history-based features need them in the request. The loop
feeds the predictions to the event tracker, publishes the alerts and only
then acknowledges the batch. While the endpoint is down the loop retries with backoff and keeps
the batch. Unacknowledged messages stay with the broker, so no reading is
skipped, including across a restart of the scorer.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from iot_telemetry.data.columns import TS_RANGE
from iot_telemetry.data.messages import check_message
from iot_telemetry.stream.alerts import EventTracker, ScoredReading
from iot_telemetry.stream.client import Backoff, connect, make_client, reason_text
from iot_telemetry.stream.endpoint import (
    EndpointClient,
    EndpointRequestError,
    EndpointUnavailable,
    HttpEndpoint,
    SageMakerEndpoint,
)
from iot_telemetry.stream.payload import alert_topic
from iot_telemetry.stream.settings import StreamParams

log = logging.getLogger(__name__)


@dataclass
class ScoreCounters:
    """Running totals since start-up."""

    received: int = 0
    scored: int = 0
    flagged: int = 0
    alerts: int = 0
    alert_errors: int = 0
    events: int = 0
    duplicates: int = 0
    invalid: int = 0
    failed: int = 0
    retries: int = 0


@dataclass
class Incoming:
    """A received message waiting to be scored."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float


def endpoint_from_params(params: StreamParams) -> EndpointClient:
    """Return the SageMaker client when `endpoint_name` is set, else the HTTP one."""
    if params.endpoint_name:
        return SageMakerEndpoint(params.endpoint_name, params.region or None,
                                 timeout_s=params.score_timeout_s)
    return HttpEndpoint(params.endpoint_url, timeout_s=params.score_timeout_s)


class LiveScorer:
    """Score telemetry messages with an endpoint and publish alerts.

    Args:
        params: stream settings (broker, batch size, gap, context window).
        endpoint: the endpoint client.
        topic: subscription filter; default `<telemetry_topic>/+`.
        retry_initial_s: first delay after a failed endpoint call; it doubles
            per retry up to retry_max_s.
    """

    def __init__(self, params: StreamParams, endpoint: EndpointClient,
                 topic: str | None = None, retry_initial_s: float = 0.5,
                 retry_max_s: float = 30.0, aliases: dict[str, str] | None = None):
        self.params = params
        self.aliases = dict(aliases or {})
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.endpoint = endpoint
        self.topic = topic or f"{params.telemetry_topic}/+"
        self.counters = ScoreCounters()
        self.tracker = EventTracker(params.alert_gap_s)
        self.subscribed = threading.Event()
        self.windows: dict[str, deque[dict]] = {}
        self._newest: dict[str, float] = {}
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._generation = 0
        self._last_message = time.monotonic()
        self._last_log = time.monotonic()

        self.client = make_client(params, params.score_client_id, manual_ack=True)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def stop(self) -> None:
        """Ask the loop to finish; safe from a signal handler or another thread."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT call `stop()` (main thread only)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def run(self, idle_exit_s: float | None = None) -> ScoreCounters:
        """Score until `stop()` (or idle_exit_s without a message); return the counters.

        Messages still queued when the loop stops are not acknowledged, so
        the broker delivers them to the next run.
        """
        connect(self.client, self.params, persistent=True)
        self.client.loop_start()
        log.info("score: subscribing to %s on %s:%d, endpoint %s", self.topic,
                 self.params.host, self.params.port, self.endpoint.name)
        try:
            while not self._stop.is_set():
                batch = self._next_batch()
                if batch:
                    self._score_batch(batch)
                elif idle_exit_s and time.monotonic() - self._last_message > idle_exit_s:
                    log.info("score: no message for %.0f s; stopping", idle_exit_s)
                    break
                self._maybe_log()
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            close = getattr(self.endpoint, "close", None)
            if close:
                close()
        c = self.counters
        log.info("score: stopped; scored %d, flagged %d, %d alerts for %d events, "
                 "%d duplicates, %d invalid, %d failed", c.scored, c.flagged, c.alerts,
                 c.events, c.duplicates, c.invalid, c.failed)
        return self.counters

    # paho callbacks (network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("score: broker rejected the connection: %s", reason_text(reason_code))
            return
        self._generation += 1
        log.info("score: connected (session present: %s)", flags.session_present)
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if any(code.is_failure for code in reason_codes):
            log.error("score: subscription to %s rejected", self.topic)
            return
        log.info("score: subscribed to %s at QoS 1", self.topic)
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if not self._stop.is_set():
            log.warning("score: disconnected (%s); paho reconnects", reason_text(reason_code))

    def _on_message(self, client, userdata, message):
        try:
            self._queue.put(Incoming(self._generation, message.mid, message.qos,
                                     message.topic, message.payload, time.time()))
        except Exception:  # noqa: BLE001 - one message must not stop paho's loop
            log.exception("score: could not queue a message")

    # Scoring loop

    def _next_batch(self) -> list[Incoming]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.params.score_batch_wait_ms / 1000
        while len(batch) < self.params.score_batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=max(0.0, remaining))
                             if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        self._last_message = time.monotonic()
        return batch

    def _score_batch(self, batch: list[Incoming]) -> None:
        self.counters.received += len(batch)
        fresh = self._fresh_messages(batch)
        if fresh:
            request = self._request(fresh)
            response = self._invoke(request, len(fresh))
            if response is None:
                return  # stopping: leave the batch unacknowledged for the next run
            if response:
                self._handle_predictions(fresh, response)
            for message in fresh:
                self._remember(message)
        self._ack(batch)

    def _fresh_messages(self, batch: list[Incoming]) -> list[dict]:
        """Decode the batch; drop undecodable messages and repeats of known readings."""
        fresh, seen = [], set()
        for incoming in batch:
            message = _decode(incoming.payload)
            if message is None:
                self.counters.invalid += 1
                if self.counters.invalid <= 10:
                    log.warning("score: ignored a message on %s that is not a device "
                                "message (%d bytes)", incoming.topic, len(incoming.payload))
                continue
            key = (message["device_id"], float(message["ts"]))
            if key in seen or self._in_window(*key):
                self.counters.duplicates += 1
                continue
            seen.add(key)
            fresh.append(message)
        return fresh

    def _request(self, fresh: list[dict]) -> dict:
        """Build the endpoint request: context windows, then the fresh readings.

        Device ids are mapped through `aliases` in the request only, so the
        model receives the ids it was trained on while alerts keep the ids the
        devices publish.
        """
        devices = {message["device_id"] for message in fresh}
        instances = [
            self._aliased({**message, "context": True})
            for device in sorted(devices)
            for message in self.windows.get(device, ())
        ]
        return {"instances": instances + [self._aliased(dict(message)) for message in fresh]}

    def _aliased(self, message: dict) -> dict:
        device = message["device_id"]
        message["device_id"] = self.aliases.get(device, device)
        return message

    def _invoke(self, request: dict, count: int) -> dict | None:
        """Call the endpoint, retrying with backoff while it is unavailable.

        Returns the response, {} when the endpoint rejected the request, or
        None when the scorer is stopping.
        """
        backoff = Backoff(initial_s=self.retry_initial_s, maximum_s=self.retry_max_s)
        while True:
            try:
                response = self.endpoint.invoke(request)
            except EndpointUnavailable as error:
                if self._stop.is_set():
                    return None
                delay = backoff.next_delay()
                self.counters.retries += 1
                log.warning("score: endpoint unavailable (%s); retry %d in %.1f s with "
                            "%d readings waiting", error, backoff.attempt, delay,
                            count + self._queue.qsize())
                if self._stop.wait(delay):
                    return None
                continue
            except EndpointRequestError as error:
                # NOTE: a retry cannot fix a 4xx, so these readings get no score;
                # they are counted as failed and acknowledged.
                self.counters.failed += count
                log.error("score: endpoint rejected a request of %d readings: %s", count,
                          error)
                return {}
            if backoff.attempt:
                log.info("score: endpoint responded again after %d retries", backoff.attempt)
            return response

    def _handle_predictions(self, fresh: list[dict], response: dict) -> None:
        predictions = response.get("predictions") or []
        if len(predictions) != len(fresh):
            self.counters.failed += len(fresh)
            log.error("score: endpoint returned %d predictions for %d readings",
                      len(predictions), len(fresh))
            return
        if response.get("model"):
            self.tracker.model = response["model"]
        scored = [
            ScoredReading(message, prediction.get("score"), bool(prediction.get("flag")),
                          str(prediction.get("status", "")), list(prediction.get("reasons") or []))
            for message, prediction in zip(fresh, predictions, strict=True)
        ]
        scored.sort(key=lambda reading: (reading.device, reading.ts))
        for reading in scored:
            self.counters.scored += 1
            self.counters.flagged += reading.flag
            for alert in self.tracker.update(reading):
                self._publish_alert(alert)

    def _publish_alert(self, alert: dict) -> None:
        """Publish one alert at QoS 1; log and count a failure instead of raising."""
        topic = alert_topic(self.params.alert_topic, alert["device_id"])
        try:
            info = self.client.publish(topic, json.dumps(alert, allow_nan=False), qos=1)
        except (ValueError, TypeError) as error:
            self.counters.alert_errors += 1
            log.error("score: could not publish alert %s %s for %r to %r: %s",
                      alert["event_id"], alert["state"], alert["device_id"], topic, error)
            return
        # MQTT_ERR_NO_CONN still queues a QoS 1 message for the next connection.
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.counters.alert_errors += 1
            log.error("score: could not publish alert %s %s for %r to %r: %s",
                      alert["event_id"], alert["state"], alert["device_id"], topic,
                      mqtt.error_string(info.rc))
            return
        self.counters.alerts += 1
        if alert["state"] == "open":
            self.counters.events += 1
        log.info("score: alert %s %s for %r at ts %.3f on %s (score %.2f, %s)",
                 alert["event_id"], alert["state"], alert["device_id"],
                 alert["reading"]["ts"], topic, alert["score"],
                 ";".join(alert["reasons"]) or "-")

    def _remember(self, message: dict) -> None:
        """Add a scored reading to its device's context window and trim the window.

        The window keeps readings within score_context_s of the device's
        newest ts. It is appended in arrival order, so a late reading may sit
        after newer ones until it ages out.
        """
        device = message["device_id"]
        window = self.windows.setdefault(device, deque())
        window.append(message)
        newest = max(self._newest.get(device, -math.inf), float(message["ts"]))
        self._newest[device] = newest
        while window and float(window[0]["ts"]) < newest - self.params.score_context_s:
            window.popleft()

    def _in_window(self, device: str, ts: float) -> bool:
        return any(float(message["ts"]) == ts for message in self.windows.get(device, ()))

    def _ack(self, batch: list[Incoming]) -> None:
        for incoming in batch:
            if incoming.qos and incoming.generation == self._generation:
                self.client.ack(incoming.mid, incoming.qos)

    def _maybe_log(self) -> None:
        now = time.monotonic()
        if now - self._last_log < self.params.log_interval_s:
            return
        c = self.counters
        log.info("score: received %d, scored %d, flagged %d, %d alerts, %d open events, "
                 "%d queued", c.received, c.scored, c.flagged, c.alerts,
                 len(self.tracker.open_events), self._queue.qsize())
        self._last_log = now


def _decode(payload: bytes) -> dict | None:
    """Return a well-formed device message the endpoint accepts, else None.

    The batch reader's `check_message` checks structure and JSON types. The
    ts must be inside TS_RANGE, and no number may be NaN or infinite because
    JSON cannot carry them to the endpoint. Range checks on the sensor values
    are left to the endpoint, which returns status "invalid" for them.
    """
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    row, _, _ = check_message(message)
    if row is None or not TS_RANGE[0] <= row["ts"] <= TS_RANGE[1]:
        return None
    numbers = [message["ts"], *(value for value in message["data"].values()
                                if isinstance(value, float))]
    if not all(math.isfinite(value) for value in numbers):
        return None
    message.pop("context", None)
    return message
