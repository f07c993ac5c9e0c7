"""Write-ahead journal of received MQTT payloads.

The ingester appends every accepted payload here and fsyncs the journal
before it acknowledges the messages to the broker, so a message the broker
considers delivered is on disk even if the ingester is killed before its next
Parquet flush. After a flush the journal segment is deleted. At start-up the
ingester passes leftover segments through the same validation, and readings
already in Parquet are then dropped as duplicates.

Record layout (little-endian): CRC-32 of the rest of the record (uint32),
payload length (uint32), topic length (uint16), receive time in epoch
seconds (float64), topic (UTF-8), payload. A record cut short by a crash, or
one whose CRC does not match, ends the segment: it was never acknowledged,
so the broker delivers it again.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HEADER = struct.Struct("<IIHd")
SEGMENT_PREFIX = "journal-"
SEGMENT_SUFFIX = ".bin"


@dataclass(frozen=True)
class JournalRecord:
    """One received message: topic, raw payload and receive time (epoch s)."""

    topic: str
    payload: bytes
    received: float


def fsync_directory(path: Path) -> None:
    """Make a rename or unlink inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Append-only, segmented journal in one folder (one writer at a time)."""

    def __init__(self, directory: Path, buffer_bytes: int = 1 << 20):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._buffer_bytes = buffer_bytes
        existing = self.segments()
        self._sequence = self._sequence_of(existing[-1]) + 1 if existing else 1
        self._file = None
        self._path: Path | None = None
        self._dirty = False

    def segments(self) -> list[Path]:
        """Return the segment files on disk, oldest first."""
        return sorted(self.directory.glob(f"{SEGMENT_PREFIX}*{SEGMENT_SUFFIX}"))

    def append(self, record: JournalRecord) -> None:
        """Buffer one record; it is durable only after the next `commit()`."""
        if self._file is None:
            self._open_segment()
        topic = record.topic.encode("utf-8")
        body = HEADER.pack(0, len(record.payload), len(topic), record.received)[4:]
        checksum = zlib.crc32(record.payload, zlib.crc32(topic, zlib.crc32(body)))
        self._file.write(struct.pack("<I", checksum) + body + topic + record.payload)
        self._dirty = True

    def commit(self) -> None:
        """Flush buffered records to the OS and fsync the segment."""
        if self._file is not None and self._dirty:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._dirty = False

    def flush(self) -> int | None:
        """Hand buffered records to the OS without fsync; return the file descriptor.

        Returns None when no segment is open. The caller fsyncs the descriptor
        (see GroupCommitter) before it treats the records as durable.
        """
        if self._file is None:
            return None
        self._file.flush()
        self._dirty = False
        return self._file.fileno()

    def rotate(self) -> list[Path]:
        """Commit and close the current segment; return every closed segment.

        The caller deletes them with `discard()` once their readings are in
        Parquet. The next `append()` opens a new segment.
        """
        self.commit()
        if self._file is not None:
            self._file.close()
            self._file = None
        return self.segments()

    def discard(self, paths: list[Path]) -> None:
        """Delete closed segments whose content is stored elsewhere."""
        for path in paths:
            if path == self._path and self._file is not None:
                raise ValueError(f"cannot discard the open journal segment {path}")
            path.unlink(missing_ok=True)
        if paths:
            fsync_directory(self.directory)

    def close(self) -> None:
        """Commit and close the open segment, keeping it on disk."""
        self.rotate()

    def _open_segment(self) -> None:
        self._path = self.directory / f"{SEGMENT_PREFIX}{self._sequence:010d}{SEGMENT_SUFFIX}"
        self._sequence += 1
        self._file = open(self._path, "ab", buffering=self._buffer_bytes)
        fsync_directory(self.directory)

    @staticmethod
    def _sequence_of(path: Path) -> int:
        return int(path.name[len(SEGMENT_PREFIX):-len(SEGMENT_SUFFIX)])


def read_segment(path: Path) -> Iterator[JournalRecord]:
    """Yield the intact records of one segment, stopping at a torn record."""
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        if offset + HEADER.size > len(data):
            _warn_torn(path, offset, len(data), "truncated header")
            return
        checksum, payload_size, topic_size, received = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        end = start + topic_size + payload_size
        if end > len(data):
            _warn_torn(path, offset, len(data), "truncated record")
            return
        body = data[offset + 4:start]
        topic = data[start:start + topic_size]
        payload = data[start + topic_size:end]
        if zlib.crc32(payload, zlib.crc32(topic, zlib.crc32(body))) != checksum:
            _warn_torn(path, offset, len(data), "checksum mismatch")
            return
        yield JournalRecord(topic.decode("utf-8", errors="replace"), payload, received)
        offset = end


def _warn_torn(path: Path, offset: int, size: int, problem: str) -> None:
    log.warning(
        "journal %s: %s at byte %d; ignored the last %d bytes, which were never "
        "acknowledged, so the broker delivers them again",
        path, problem, offset, size - offset,
    )


class GroupCommitter:
    """Background thread that fsyncs files and then releases acknowledgements.

    The caller writes its records (to the OS, not yet durable), then submits
    the file descriptors with the acknowledgements those records cover. The
    thread fsyncs duplicates of the descriptors, so the caller may close or
    rotate its files meanwhile, and queues the acknowledgements for
    `take_done()` in submission order. fsync releases the GIL, so receiving
    continues while the disk works.
    """

    def __init__(self, name: str = "group-commit"):
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._done: deque = deque()
        self._pending = 0
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, descriptors: list[int | None], payload: object) -> None:
        """Queue an fsync of `descriptors`; `payload` is released once it is done."""
        duplicates = [os.dup(fd) for fd in descriptors if fd is not None]
        with self._condition:
            self._pending += 1
        self._requests.put((duplicates, payload))

    def take_done(self) -> list:
        """Return the payloads whose fsync finished, oldest first."""
        done = []
        while self._done:
            done.append(self._done.popleft())
        return done

    def drain(self) -> None:
        """Block until every submitted fsync has finished."""
        with self._condition:
            while self._pending:
                self._condition.wait(0.1)

    def close(self) -> None:
        """Finish queued fsyncs and stop the thread."""
        self._requests.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            duplicates, payload = request
            failed = False
            for fd in duplicates:
                try:
                    os.fsync(fd)
                except OSError:
                    failed = True
                    log.exception("fsync failed; the messages it covers stay "
                                  "unacknowledged")
                finally:
                    os.close(fd)
            if not failed:
                self._done.append(payload)
            with self._condition:
                self._pending -= 1
                self._condition.notify_all()
