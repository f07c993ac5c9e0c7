"""Dead-letter file: every message the ingester rejects, with its reason.

One JSON object per line in `deadletter/deadletter-YYYY-MM-DD.jsonl` (UTC
date of receipt) under the ingest output folder. The fields are `time`
(receipt, ISO-8601 UTC), `topic`, `reason` (a fixed phrase, for counting),
`detail`, `size_bytes` of the original payload, and `truncated`. `raw` is the
payload decoded as UTF-8 with undecodable bytes escaped, cut to
RAW_MAX_CHARS. `device` and `ts` are set when the payload had them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from iot_telemetry.data.columns import RAW_MAX_CHARS

log = logging.getLogger(__name__)

FOLDER = "deadletter"


class DeadLetterWriter:
    """Append-only JSONL writer; `commit()` makes written records durable."""

    def __init__(self, root: Path):
        self.directory = root / FOLDER
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.by_reason: Counter[str] = Counter()
        self._file = None
        self._date = ""
        self._dirty = False

    def write(
        self,
        topic: str,
        payload: bytes | str,
        reason: str,
        received: float,
        detail: str = "",
        device: str | None = None,
        ts: float | None = None,
    ) -> None:
        """Buffer one record (`received` is the receive time in epoch seconds)."""
        if isinstance(payload, bytes):
            size = len(payload)
            text = payload[: RAW_MAX_CHARS * 4].decode("utf-8", errors="backslashreplace")
        else:
            size = len(payload.encode("utf-8", errors="replace"))
            text = payload
        stamp = datetime.fromtimestamp(received, UTC)
        record = {
            "time": stamp.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "topic": topic,
            "reason": reason,
            "detail": detail,
            "size_bytes": size,
            "raw": text[:RAW_MAX_CHARS],
            "truncated": len(text) > RAW_MAX_CHARS or size > RAW_MAX_CHARS * 4,
            "device": device,
            "ts": ts if ts is not None and math.isfinite(ts) else None,
        }
        self._file_for(stamp.strftime("%Y-%m-%d")).write(
            json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"
        )
        self._dirty = True
        self.count += 1
        self.by_reason[reason] += 1

    def commit(self) -> None:
        """Flush and fsync the open file."""
        if self._file is not None and self._dirty:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._dirty = False

    def flush(self) -> int | None:
        """Hand written records to the OS without fsync; return the descriptor.

        Returns None when no file is open.
        """
        if self._file is None:
            return None
        self._file.flush()
        self._dirty = False
        return self._file.fileno()

    def close(self) -> None:
        """Commit and close the open file."""
        self.commit()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _file_for(self, date: str):
        if date != self._date or self._file is None:
            self.close()
            self._file = open(self.directory / f"deadletter-{date}.jsonl", "a",
                              encoding="utf-8")
            self._date = date
        return self._file


def read_dead_letters(root: Path) -> list[dict]:
    """Read every dead-letter record under an ingest output folder, oldest file first."""
    records = []
    for path in sorted((root / FOLDER).glob("deadletter-*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            records += [json.loads(line) for line in handle if line.strip()]
    return records
