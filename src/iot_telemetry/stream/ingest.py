"""Lossless MQTT ingest into the partitioned Parquet store.

Delivery guarantee: a QoS 1 message is acknowledged to the broker only after
it is durable here, either in the write-ahead journal or as a dead-letter
record. Until then the broker keeps it in the ingester's persistent session
and delivers it again after a crash, a restart or a reconnect. Readings are
validated in batches by the batch reader's own code (`parse_messages`, then
`deduplicate` on (device, ts)), checked against the keys already stored, and
written as one atomic Parquet file per (date, device) partition.

The loop is single-threaded: paho's `loop()` runs in the caller's thread,
and between calls the ingester commits the journal, acknowledges, flushes
and logs. A SIGTERM or SIGINT (through `stop()`) ends the loop after a final
commit, acknowledgement and flush.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import paho.mqtt.client as mqtt

from iot_telemetry.data.messages import parse_messages
from iot_telemetry.data.validate import PROVENANCE, REASON_CONFLICT, deduplicate
from iot_telemetry.errors import InputError
from iot_telemetry.stream.client import Backoff, connect, make_client, reason_text
from iot_telemetry.stream.deadletter import DeadLetterWriter
from iot_telemetry.stream.journal import (
    GroupCommitter,
    Journal,
    JournalRecord,
    read_segment,
)
from iot_telemetry.stream.payload import device_from_topic
from iot_telemetry.stream.settings import StreamParams
from iot_telemetry.stream.store import ReadingStore

log = logging.getLogger(__name__)

JOURNAL_FOLDER = ".journal"
LOCK_FILE = ".ingest.lock"
SOURCE = "mqtt"

# Fixed dead-letter reasons for checks made here; schema and value checks use
# the batch reader's reasons.
REASON_TOO_LARGE = "payload too large"
REASON_EMPTY = "empty payload"
REASON_INVALID_JSON = "invalid JSON"
REASON_TOPIC = "device_id does not match topic"
REASON_INTERNAL = "ingester error"
REASON_STORAGE = "storage error"
# Storage errors caused by the partition path itself, which a retry cannot fix.
PERMANENT_STORAGE_ERRORS = frozenset({errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ})

# Acknowledge at least this often: with fewer unacknowledged messages than
# the broker's in-flight limit, delivery never stalls on a pending commit.
COMMIT_MAX_MESSAGES = 500
LOOP_TIMEOUT_S = 0.01
# MQTT 5 CONNACK reason codes that retrying cannot fix.
FATAL_CONNACK = {0x85: "client id not valid", 0x86: "bad user name or password",
                 0x87: "not authorized", 0x8C: "bad authentication method"}


@dataclass
class IngestCounters:
    """Running totals since start-up (messages, not bytes; times in epoch s)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    recovered: int = 0
    flushes: int = 0
    reconnects: int = 0
    first_received: float = 0.0
    last_received: float = 0.0


@dataclass
class Pending:
    """A received, decoded message waiting for the next flush."""

    topic: str
    payload: bytes
    message: object
    received: float


class Ingester:
    """Subscribe to the telemetry topics and store every reading once.

    Args:
        params: stream settings (broker, client id, limits, triggers).
        out: output folder; a valid batch-reader input.
        topic: subscription filter; default `<telemetry_topic>/+`.

    Raises:
        InputError: another ingester holds the folder's lock.
    """

    def __init__(self, params: StreamParams, out: Path, topic: str | None = None):
        self.params = params
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.topic = topic or f"{params.telemetry_topic}/+"
        self._lock_handle = self._acquire_lock()

        self.store = ReadingStore(self.out)
        self.dead_letters = DeadLetterWriter(self.out)
        self.journal = Journal(self.out / JOURNAL_FOLDER)
        self.committer = GroupCommitter()
        self.counters = IngestCounters()
        self.subscribed = threading.Event()

        self._stop = threading.Event()
        self._connected = False
        self._buffer: list[Pending] = []
        self._acks: list[tuple[int, int]] = []
        # Incremented per connection: acknowledgements are sent only on the
        # connection that received their messages.
        self._generation = 0
        self._oldest_unacked = 0.0
        self._last_flush = time.monotonic()
        self._last_log = time.monotonic()
        self._logged = IngestCounters()
        self._last_message = time.monotonic()
        self._internal_errors = 0
        self.connect_error: str | None = None

        self.client = make_client(params, params.ingest_client_id, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # Public control.

    def stop(self) -> None:
        """Ask the loop to finish; safe from a signal handler or another thread."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT call `stop()` (main thread only)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def run(self, idle_exit_s: float | None = None) -> IngestCounters:
        """Recover the journal, then ingest until `stop()` (or idle_exit_s of silence).

        Returns the counters. The broker connection is retried with backoff
        for as long as the loop runs.
        """
        self.recover()
        log.info("ingest: writing to %s; subscribing to %s on %s:%d as %s", self.out,
                 self.topic, self.params.host, self.params.port,
                 self.params.ingest_client_id)
        backoff = Backoff()
        try:
            while not self._stop.is_set():
                if not self._connected and not self._connect(backoff):
                    continue
                before = self.counters.received
                started = time.monotonic()
                rc = self.client.loop(timeout=LOOP_TIMEOUT_S)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    self._connection_lost(rc)
                    continue
                # Idle: the whole select() timeout passed without a message.
                waited = time.monotonic() - started >= 0.9 * LOOP_TIMEOUT_S
                self._tick(idle=waited and self.counters.received == before)
                if idle_exit_s and time.monotonic() - self._last_message > idle_exit_s:
                    log.info("ingest: no message for %.0f s; stopping", idle_exit_s)
                    break
        finally:
            self._shutdown()
        return self.counters

    # Start-up.

    def recover(self) -> int:
        """Store what an earlier run journaled but did not flush, and return the count.

        Messages that cannot be stored yet stay buffered and journaled for the
        next flush, so a storage error never stops the start-up.
        """
        segments = self.journal.segments()
        if not segments:
            return 0
        batch = []
        for path in segments:
            for record in read_segment(path):
                pending = self._decode(record.topic, record.payload, record.received)
                if pending is not None:
                    batch.append(pending)
        log.info("ingest: recovering %d journaled messages from %d segment(s)",
                 len(batch), len(segments))
        # NOTE: a crash after a flush wrote its dead letters but before it
        # deleted the segment makes this write those dead letters a second time.
        self._store_batch(batch)
        self.counters.recovered = len(batch)
        return len(batch)

    def _acquire_lock(self):
        handle = open(self.out / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.close()
            raise InputError(
                f"another ingester is writing to {self.out} (lock {LOCK_FILE} is held); "
                "stop it or choose another --out folder"
            ) from error
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return handle

    # Connection.

    def _connect(self, backoff: Backoff) -> bool:
        try:
            if backoff.attempt == 0 and self.counters.reconnects == 0:
                connect(self.client, self.params, persistent=True)
            else:
                self.client.reconnect()
        except OSError as error:
            self._wait(backoff, f"connect to {self.params.host}:{self.params.port} "
                                f"failed ({error})")
            return False
        deadline = time.monotonic() + max(5.0, self.params.keepalive_s)
        while not self._connected and time.monotonic() < deadline:
            if self._stop.is_set():
                return False
            if self.client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
        if not self._connected:
            self._wait(backoff, "no CONNACK from the broker")
            return False
        backoff.reset()
        return True

    def _wait(self, backoff: Backoff, problem: str) -> None:
        delay = backoff.next_delay()
        log.warning("ingest: %s; retrying in %.1f s", problem, delay)
        self.counters.reconnects += 1
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self._stop.is_set():
            self._tick(idle=True)
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            code = reason_code.value
            if code in FATAL_CONNACK:
                log.error("ingest: broker rejected the connection: %s; stopping",
                          FATAL_CONNACK[code])
                self.connect_error = FATAL_CONNACK[code]
                self.stop()
            else:
                log.warning("ingest: broker rejected the connection: %s",
                            reason_text(reason_code))
            return
        self._connected = True
        self._generation += 1
        log.info("ingest: connected (session present: %s)", flags.session_present)
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        failures = [code for code in reason_codes if code.is_failure]
        if failures:
            log.error("ingest: subscription to %s rejected: %s", self.topic,
                      ", ".join(map(reason_text, failures)))
            return
        log.info("ingest: subscribed to %s at QoS 1", self.topic)
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self._connected:
            log.warning("ingest: disconnected (%s)", reason_text(reason_code))
        self._connected = False

    def _connection_lost(self, rc) -> None:
        # Unacknowledged messages are delivered again on the next session, so
        # their acknowledgements are dropped rather than sent on a new one.
        if self._connected:
            log.warning("ingest: connection lost (%s)", mqtt.error_string(rc))
        self._connected = False
        self._acks.clear()

    # Receiving.

    def _on_message(self, client, userdata, message) -> None:
        received = time.time()
        self._last_message = time.monotonic()
        self.counters.received += 1
        if not self.counters.first_received:
            self.counters.first_received = received
        self.counters.last_received = received
        try:
            topic = message.topic
            pending = self._decode(topic, message.payload, received)
            if pending is not None:
                self.journal.append(JournalRecord(topic, message.payload, received))
                self._buffer.append(pending)
        except Exception as error:  # noqa: BLE001 - one message must not stop the loop
            if not self._dead_letter_internal(message, received, error):
                return  # not durable anywhere: leave it unacknowledged
        if message.qos > 0:
            if not self._acks:
                self._oldest_unacked = time.monotonic()
            self._acks.append((message.mid, message.qos))

    def _decode(self, topic: str, payload: bytes, received: float) -> Pending | None:
        """Return the decoded message, or None after writing a dead-letter record."""
        limit = self.params.max_payload_bytes
        if len(payload) > limit:
            self._reject(topic, payload, REASON_TOO_LARGE, received,
                         f"{len(payload)} bytes, limit {limit}")
            return None
        if not payload:
            self._reject(topic, payload, REASON_EMPTY, received)
            return None
        try:
            message = json.loads(payload)
        except (ValueError, RecursionError) as error:
            self._reject(topic, payload, REASON_INVALID_JSON, received, str(error)[:200])
            return None
        return Pending(topic, payload, message, received)

    def _reject(self, topic, payload, reason, received, detail="", device=None, ts=None):
        self.dead_letters.write(topic, payload, reason, received, detail=detail,
                                device=device, ts=ts)
        self.counters.rejected += 1

    def _dead_letter_internal(self, message, received: float, error: Exception) -> bool:
        self._internal_errors += 1
        if self._internal_errors <= 10 or self._internal_errors % 1000 == 0:
            log.exception("ingest: error #%d while handling a message on %r",
                          self._internal_errors, getattr(message, "_topic", b""))
        try:
            topic = message._topic.decode("utf-8", errors="replace")
            self._reject(topic, message.payload, REASON_INTERNAL, received,
                         f"{type(error).__name__}: {error}"[:200])
            return True
        except Exception:  # noqa: BLE001 - e.g. disk full: keep the message unacknowledged
            log.exception("ingest: could not write a dead-letter record")
            return False

    # Periodic work.

    def _tick(self, idle: bool) -> None:
        now = time.monotonic()
        self._send_committed_acks()
        if self._acks and (
            idle
            or len(self._acks) >= COMMIT_MAX_MESSAGES
            or (now - self._oldest_unacked) * 1000 >= self.params.commit_interval_ms
        ):
            self._commit()
        if self._buffer and (
            len(self._buffer) >= self.params.flush_rows
            or now - self._last_flush >= self.params.flush_interval_s
        ):
            self.flush()
        if now - self._last_log >= self.params.log_interval_s:
            self._log_progress(now)

    def _commit(self, wait: bool = False) -> None:
        """Make journal and dead-letter records durable, then acknowledge them.

        Without `wait` the fsync runs in the committer thread and the
        acknowledgements go out on a later tick.
        """
        try:
            descriptors = [self.journal.flush(), self.dead_letters.flush()]
        except OSError as error:
            # NOTE: unacknowledged, these messages come back only after the
            # next reconnect, because the broker does not resend on a live session.
            log.error("ingest: could not write the journal (%s); %d messages stay "
                      "unacknowledged", error, len(self._acks))
            self._acks = []
            return
        self.committer.submit(descriptors, (self._generation, self._acks))
        self._acks = []
        if wait:
            self.committer.drain()
            self._send_committed_acks()

    def _send_committed_acks(self) -> None:
        for generation, acks in self.committer.take_done():
            if not self._connected or generation != self._generation:
                continue  # the broker delivers these again on the new session
            for mid, qos in acks:
                self.client.ack(mid, qos)

    def flush(self) -> int:
        """Validate and store the buffered messages; return the readings written.

        When a partition cannot be written because of a storage error such as
        a full disk, its messages stay buffered and journaled, and the next
        flush tries them again. The other partitions are stored. When the
        dead-letter file cannot be written, the whole batch stays buffered.
        """
        self._commit(wait=True)
        batch, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        if not batch:
            return 0
        return self._store_batch(batch)

    def _store_batch(self, batch: list[Pending]) -> int:
        """Process a batch, keep what could not be stored, and drop the stored journal.

        Messages kept for a retry are appended to a new journal segment and
        fsynced before the old segments are deleted, so they stay durable.
        """
        try:
            written, retained = self._process_safely(batch)
            self.dead_letters.commit()
        except OSError as error:
            log.error("ingest: could not store %d messages (%s); they stay in the journal "
                      "and the next flush retries", len(batch), error)
            self._buffer = batch + self._buffer
            return 0
        self._buffer = retained + self._buffer
        done = self.journal.rotate()
        try:
            for pending in retained:
                self.journal.append(JournalRecord(pending.topic, pending.payload,
                                                  pending.received))
            self.journal.commit()
        except OSError as error:
            # The old segments still contain the kept messages, so they stay.
            # Their stored readings come back as duplicates on a restart.
            log.error("ingest: could not journal %d messages kept for a retry (%s); "
                      "keeping the old journal segments", len(retained), error)
            return written
        self.journal.discard(done)
        self.counters.flushes += 1
        return written

    def _process_safely(self, batch: list[Pending]) -> tuple[int, list[Pending]]:
        """Process a batch, and if validation raises, retry message by message.

        Returns the readings written and the messages kept for a retry. A
        message whose validation still raises goes to the dead letters with
        the exception, so it cannot hold back the others. An OSError outside
        the partition checks and writes (such as writing a dead letter)
        propagates.
        """
        try:
            return self._process(batch)
        except OSError:
            raise
        except Exception:  # noqa: BLE001 - isolate the message that breaks validation
            log.exception("ingest: validating a batch of %d messages failed; retrying them "
                          "one by one", len(batch))
        written, retained = 0, []
        for pending in batch:
            try:
                count, to_retry = self._process([pending])
            except OSError:
                raise
            except Exception as error:  # noqa: BLE001 - recorded as a dead letter
                self._reject(pending.topic, pending.payload, REASON_INTERNAL, pending.received,
                             f"{type(error).__name__}: {error}"[:200])
                continue
            written += count
            retained += to_retry
        return written, retained

    def _process(self, batch: list[Pending]) -> tuple[int, list[Pending]]:
        """Validate, deduplicate and store one batch; rejects go to dead letters.

        Each (date, device) partition is checked and written on its own, so a
        storage error in one partition does not hold back the others.
        Returns the readings written and the messages kept for a retry.
        Dead-letter records are written after the readings, so a message kept
        for a retry leaves none behind for the retry to repeat.
        """
        raws = [pending.payload.decode("utf-8", errors="backslashreplace")
                for pending in batch]
        readings, quarantine = parse_messages([p.message for p in batch], SOURCE, raw=raws)
        rejects = [
            (batch[int(row.line) - 1], str(row.reason), _text(row.detail), _text(row.device),
             _number(row.ts))
            for row in quarantine.itertuples(index=False)
        ]
        readings = self._check_topics(readings, batch, rejects)
        dedupe = deduplicate(readings)
        self._conflicts(dedupe.conflicts, batch, "an earlier message in this batch", rejects)

        written, duplicates, retained = 0, dedupe.exact_duplicates, []
        for folder, positions in self.store.partitions(dedupe.readings).items():
            part = dedupe.readings.iloc[positions]
            try:
                check = self.store.check(part)
                self.store.write(check.new.drop(columns=list(PROVENANCE)))
            except Exception as error:  # noqa: BLE001 - one partition must not block the others
                retained += self._storage_failed(folder, part, batch, error, rejects)
                continue
            self._conflicts(check.conflicts, batch, "a stored reading", rejects)
            written += len(check.new)
            duplicates += check.exact_duplicates
        self.counters.stored += written
        self.counters.duplicates += duplicates
        for pending, reason, detail, device, ts in rejects:
            self._reject(pending.topic, pending.payload, reason, pending.received, detail or "",
                         device=device, ts=ts)
        return written, retained

    def _storage_failed(self, folder: Path, part: pd.DataFrame, batch: list[Pending],
                        error: Exception, rejects: list) -> list[Pending]:
        """Handle a partition that could not be checked or written.

        An OSError other than an invalid path (full disk, permissions, I/O
        error) keeps the messages for the next flush. An invalid path, which
        a retry cannot fix, or any other exception (such as an unreadable
        Parquet file in the partition) makes each message a dead letter.
        Returns the messages kept.
        """
        messages = [batch[int(line) - 1] for line in part["_line"].to_numpy()]
        transient = isinstance(error, OSError) and error.errno not in PERMANENT_STORAGE_ERRORS
        if transient:
            log.error("ingest: could not store %d readings in %s (%s); they stay in the "
                      "journal and the next flush retries", len(messages), folder, error)
            return messages
        log.error("ingest: storing %d readings in %s failed (%s: %s) and a retry cannot "
                  "fix it; writing them to the dead letters", len(messages), folder,
                  type(error).__name__, error)
        detail = f"{type(error).__name__}: {error}"[:200]
        devices = part["device"].to_numpy(dtype=object)
        ts_values = part["ts"].to_numpy(dtype=float)
        for pending, device, ts in zip(messages, devices, ts_values, strict=True):
            rejects.append((pending, REASON_STORAGE, detail, str(device), float(ts)))
        return []

    def _check_topics(self, readings: pd.DataFrame, batch: list[Pending],
                      rejects: list) -> pd.DataFrame:
        """Drop readings whose device_id differs from their topic's device level."""
        if readings.empty:
            return readings
        prefix = self.params.telemetry_topic
        topic_devices = np.asarray(
            [device_from_topic(pending.topic, prefix) for pending in batch], dtype=object
        )
        lines = readings["_line"].to_numpy() - 1
        expected = topic_devices[lines]
        mismatch = readings["device"].to_numpy(dtype=object) != expected
        for position in np.flatnonzero(mismatch):
            device = str(readings["device"].iat[position])
            rejects.append((batch[lines[position]], REASON_TOPIC,
                            f"device_id {device!r}, topic device {expected[position]!r}",
                            device, float(readings["ts"].iat[position])))
        return readings.loc[~mismatch]

    def _conflicts(self, conflicts: pd.DataFrame, batch: list[Pending], other: str,
                   rejects: list) -> None:
        # Columns by name: itertuples renames fields that start with "_".
        rows = zip(conflicts["_line"].to_numpy(), conflicts["device"].to_numpy(dtype=object),
                   conflicts["ts"].to_numpy(dtype=float))
        for line, device, ts in rows:
            rejects.append((batch[int(line) - 1], REASON_CONFLICT,
                            f"same (device, ts) as {other} with different values",
                            str(device), float(ts)))

    def _log_progress(self, now: float) -> None:
        elapsed = now - self._last_log
        current, last = self.counters, self._logged
        log.info(
            "ingest: %.0f msg/s over %.0f s; received %d, stored %d, duplicates %d "
            "(+%d), rejected %d (+%d), buffered %d",
            (current.received - last.received) / elapsed, elapsed, current.received,
            current.stored, current.duplicates, current.duplicates - last.duplicates,
            current.rejected, current.rejected - last.rejected, len(self._buffer),
        )
        self._logged = IngestCounters(**asdict(current))
        self._last_log = now

    # Shutdown.

    def _shutdown(self) -> None:
        try:
            self.flush()
            if self._connected:
                deadline = time.monotonic() + 2.0
                while self.client.want_write() and time.monotonic() < deadline:
                    self.client.loop_write()
                self._connected = False
                self.client.disconnect()
        finally:
            self.committer.close()
            self.journal.close()
            self.dead_letters.close()
            self._lock_handle.close()
        c = self.counters
        log.info("ingest: stopped; received %d, stored %d, duplicates %d, rejected %d, "
                 "recovered %d, left in the journal %d", c.received, c.stored, c.duplicates,
                 c.rejected, c.recovered, len(self._buffer))


def _text(value) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
