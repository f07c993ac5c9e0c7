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
from collections import Counter, deque
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from iot_telemetry.data.columns import SENSORS, TS_RANGE
from iot_telemetry.data.messages import check_message
from iot_telemetry.data.device_ids import REASON_INVALID_DEVICE, device_id_problem
from iot_telemetry.data.validate import REASON_IMPLAUSIBLE_TS
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

# Maximum JSON body of one endpoint request with more than one reading. The
# endpoint rejects bodies over serving.payload.MAX_BODY_BYTES (6 MiB, from
# SageMaker's 6 MB payload limit), and the margin keeps requests below 6 MB
# in either reading of "MB".
MAX_REQUEST_BYTES = 5_000_000
REASON_NOT_JSON = "invalid JSON"
REASON_NOT_FINITE = "number not valid in JSON"
REASON_SCORER = "scorer error"
# Log the first few messages per reason, then every LOG_EVERY-th.
LOG_FIRST = 10
LOG_EVERY = 1000


@dataclass
class ScoreCounters:
    """Running totals since start-up.

    Each received message ends as exactly one of scored, duplicates,
    invalid (rejected before the request) or failed (no score from the
    endpoint), except messages left unacknowledged when the scorer stops.
    `invalid_reasons` and `failed_reasons` count them by reason.
    """

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
    invalid_reasons: Counter = field(default_factory=Counter)
    failed_reasons: Counter = field(default_factory=Counter)


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
        max_request_bytes: maximum JSON body of one endpoint request with
            more than one reading.
    """

    def __init__(self, params: StreamParams, endpoint: EndpointClient,
                 topic: str | None = None, retry_initial_s: float = 0.5,
                 retry_max_s: float = 30.0, aliases: dict[str, str] | None = None,
                 max_request_bytes: int = MAX_REQUEST_BYTES):
        self.params = params
        self.max_request_bytes = max_request_bytes
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
                 "%d alerts not published, %d duplicates, %d invalid %s, %d failed %s",
                 c.scored, c.flagged, c.alerts, c.events, c.alert_errors, c.duplicates,
                 c.invalid, dict(c.invalid_reasons), c.failed, dict(c.failed_reasons))
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
        """Score a batch, publish its alerts, then acknowledge it.

        An unexpected error fails the batch's unscored readings with a log
        line and still acknowledges it, so one message cannot make every
        restart crash again.
        """
        self.counters.received += len(batch)
        done = self.counters.scored + self.counters.failed
        fresh = []
        try:
            fresh = self._fresh_messages(batch)
            for chunk in self._chunks(fresh):
                if not self._score_chunk(chunk):
                    return  # stopping: leave the batch unacknowledged for the next run
        except Exception as error:  # noqa: BLE001 - a crash would repeat on every restart
            unscored = len(fresh) - (self.counters.scored + self.counters.failed - done)
            self._fail(max(unscored, 0), REASON_SCORER)
            log.exception("score: scoring a batch of %d messages failed (%s: %s); %d "
                          "readings get no score", len(batch), type(error).__name__, error,
                          max(unscored, 0))
        self._ack(batch)

    def _fresh_messages(self, batch: list[Incoming]) -> list[dict]:
        """Decode the batch, dropping invalid messages and repeats of known readings."""
        fresh, seen = [], set()
        for incoming in batch:
            try:
                message, reason = _decode(incoming.payload)
            except Exception as error:  # noqa: BLE001 - one message must not stop the batch
                message, reason = None, f"{REASON_SCORER}: {type(error).__name__}"
            if message is None:
                self._invalid(incoming, reason)
                continue
            key = (message["device_id"], float(message["ts"]))
            if key in seen or self._in_window(*key):
                self.counters.duplicates += 1
                continue
            seen.add(key)
            fresh.append(message)
        return fresh

    def _invalid(self, incoming: Incoming, reason: str) -> None:
        self.counters.invalid += 1
        self.counters.invalid_reasons[reason] += 1
        count = self.counters.invalid_reasons[reason]
        if count <= LOG_FIRST or count % LOG_EVERY == 0:
            log.warning("score: ignored an invalid message on %r (%d bytes): %s (%d so far)",
                        incoming.topic, len(incoming.payload), reason, count)

    def _fail(self, count: int, reason: str) -> None:
        self.counters.failed += count
        self.counters.failed_reasons[reason] += count

    def _chunks(self, fresh: list[dict]) -> list[list[dict]]:
        """Plan requests of at most `max_request_bytes` from the fresh readings.

        Each request carries the context window of every device it scores,
        so a device's window counts once per request it appears in. Aliases
        can make a request larger than planned, which `_score_chunk` checks.
        """
        chunks: list[list[dict]] = []
        current: list[dict] = []
        devices: set[str] = set()
        size = len('{"instances": []}')
        for message in fresh:
            device = message["device_id"]
            cost = _json_size(message) + (0 if device in devices
                                          else self._context_size(device))
            if current and size + cost > self.max_request_bytes:
                chunks.append(current)
                current, devices = [], set()
                size = len('{"instances": []}')
                cost = _json_size(message) + self._context_size(device)
            current.append(message)
            devices.add(device)
            size += cost
        if current:
            chunks.append(current)
        return chunks

    def _context_size(self, device: str) -> int:
        return sum(_json_size(message) + len(', "context": true')
                   for message in self._context(device))

    def _context(self, device: str) -> list[dict]:
        """Return the device's window, newest last, cut to half the request limit."""
        window = list(self.windows.get(device, ()))
        budget = self.max_request_bytes // 2
        newest_first: list[dict] = []
        for message in reversed(window):
            budget -= _json_size(message) + len(', "context": true')
            if budget < 0:
                break
            newest_first.append(message)
        return newest_first[::-1]

    def _score_chunk(self, chunk: list[dict]) -> bool:
        """Score one request's readings, or return False when the scorer is stopping.

        When the endpoint rejects the request (HTTP 4xx), the chunk is split
        in halves and each half sent again, so only the rejected readings
        go without a score.
        """
        request = self._request(chunk)
        # The plan in `_chunks` used the context windows before this batch's
        # earlier requests grew them, so check the exact size here.
        if len(chunk) > 1 and _request_size(request) > self.max_request_bytes:
            middle = len(chunk) // 2
            return self._score_chunk(chunk[:middle]) and self._score_chunk(chunk[middle:])
        response = self._invoke(request, len(chunk))
        if response is None:
            return False
        if isinstance(response, EndpointRequestError):
            if len(chunk) > 1:
                middle = len(chunk) // 2
                return self._score_chunk(chunk[:middle]) and self._score_chunk(chunk[middle:])
            reading = chunk[0]
            self._fail(1, f"HTTP {response.status}")
            log.error("score: endpoint rejected the reading of %r at ts %s: %s",
                      reading["device_id"], reading["ts"], response)
            return True
        self._handle_predictions(chunk, response)
        for message in chunk:
            self._remember(message)
        return True

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
            for message in self._context(device)
        ]
        return {"instances": instances + [self._aliased(dict(message)) for message in fresh]}

    def _aliased(self, message: dict) -> dict:
        device = message["device_id"]
        message["device_id"] = self.aliases.get(device, device)
        return message

    def _invoke(self, request: dict, count: int) -> dict | EndpointRequestError | None:
        """Call the endpoint, retrying with backoff while it is unavailable.

        Returns the response, the error when the endpoint rejected the
        request (HTTP 4xx, which a retry cannot fix), or None when the scorer
        is stopping.
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
                if count > 1:
                    log.warning("score: endpoint rejected a request of %d readings (%s); "
                                "sending it again in halves", count, error)
                return error
            if backoff.attempt:
                log.info("score: endpoint responded again after %d retries", backoff.attempt)
            return response

    def _handle_predictions(self, fresh: list[dict], response: dict) -> None:
        predictions = response.get("predictions") if isinstance(response, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(fresh):
            self._fail(len(fresh), "wrong prediction count")
            log.error("score: endpoint returned %s predictions for %d readings",
                      len(predictions) if isinstance(predictions, list) else "no",
                      len(fresh))
            return
        if response.get("model"):
            self.tracker.model = response["model"]
        scored = []
        for message, prediction in zip(fresh, predictions, strict=True):
            if not isinstance(prediction, dict):
                self._fail(1, "invalid prediction")
                log.error("score: endpoint returned a prediction that is not an object for "
                          "%r at ts %s", message["device_id"], message["ts"])
                continue
            scored.append(ScoredReading(
                message, prediction.get("score"), bool(prediction.get("flag")),
                str(prediction.get("status", "")), list(prediction.get("reasons") or [])))
        scored.sort(key=lambda reading: (reading.device, reading.ts))
        for reading in scored:
            self.counters.scored += 1
            self.counters.flagged += reading.flag
            for alert in self.tracker.update(reading):
                self._publish_alert(alert)

    def _publish_alert(self, alert: dict) -> None:
        """Publish one alert at QoS 1, logging and counting a failure instead of raising."""
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


def _decode(payload: bytes) -> tuple[dict | None, str]:
    """Return (message, "") for a device message the endpoint accepts, else (None, reason).

    The batch reader's `check_message` checks structure and JSON types. The
    ts must be inside TS_RANGE, the device id must pass the batch reader's
    device id rule, and no sensor value may be NaN or infinite because JSON
    cannot carry them to the endpoint. The returned message has only the
    fields of the endpoint's request contract (`device_id`, `ts` and the
    sensors in `data`), so extra fields never reach the request, the
    context windows or the alerts. Range checks on the sensor values are
    left to the endpoint, which returns status "invalid" for them.
    """
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        return None, REASON_NOT_JSON
    row, reason, detail = check_message(message)
    if row is None:
        return None, f"{reason}: {detail}" if detail else reason
    device = message["device_id"]
    if not _valid_device_id(device):
        return None, REASON_INVALID_DEVICE
    if not TS_RANGE[0] <= row["ts"] <= TS_RANGE[1]:
        return None, REASON_IMPLAUSIBLE_TS
    data = {name: message["data"][name] for name in SENSORS}
    trimmed = {"data": data, "device_id": device, "ts": message["ts"]}
    try:
        json.dumps(trimmed, allow_nan=False)
    except ValueError:
        return None, REASON_NOT_FINITE
    return trimmed, ""


def _valid_device_id(device: str) -> bool:
    """Apply the batch reader's device id rule (data.device_ids)."""
    return bool(device.strip()) and not device_id_problem(device)


def _request_size(request: dict) -> int:
    """Return the bytes of the request body as the endpoint clients encode it."""
    return len(json.dumps(request, allow_nan=False).encode("utf-8"))


def _json_size(message: dict) -> int:
    """Return the bytes `message` takes in a request, with its separator."""
    return len(json.dumps(message, allow_nan=False).encode("utf-8")) + len(", ")
