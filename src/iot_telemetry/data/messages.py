"""Parse MQTT messages in the devices' payload shape into readings.

A message looks like::

    {"data": {"co": 0.0061, "humidity": 55.1, "light": true, "lpg": 0.0089,
              "motion": false, "smoke": 0.0239, "temp": 31.8},
     "device_id": "6e:81:c9:d4:9e:58", "ts": 1594419195.292461}

Extra fields are ignored except `device`, the capture's device nickname
(such as "iot-device-01"), which is kept as `alias`. JSON types are checked
strictly: a sensor value sent as a string is a wrong-typed field, unlike in
CSV exports where every field is text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import BOOL_SENSORS, FLOAT_SENSORS
from iot_telemetry.data.device_ids import (
    REASON_INVALID_DEVICE,
    device_id_problem,
    is_unicode_text,
)
from iot_telemetry.data.validate import (
    Batch,
    normalize,
    quarantine_frame,
    quarantine_record,
)

MISSING = object()


def check_message(message: object) -> tuple[dict | None, str, str]:
    """Check one decoded message's structure and JSON types.

    Returns (row, reason, detail): `row` is a flat dict with device, ts, the
    sensors and alias when the message is well formed, else None with the
    reason and the offending field in `detail`.
    """
    if not isinstance(message, dict):
        return None, "message is not a JSON object", type(message).__name__
    data = message.get("data", MISSING)
    if data is MISSING:
        return None, "missing field", "data"
    if not isinstance(data, dict):
        return None, "wrong type", f"data is {type(data).__name__}, expected object"
    device = message.get("device_id", MISSING)
    if device is MISSING:
        return None, "missing field", "device_id"
    if not isinstance(device, str):
        return None, "wrong type", f"device_id is {type(device).__name__}, expected string"
    problem = device_id_problem(device)
    if problem:
        return None, REASON_INVALID_DEVICE, f"device_id {device!r:.200} {problem}"
    ts = message.get("ts", MISSING)
    if ts is MISSING:
        return None, "missing field", "ts"
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return None, "wrong type", f"ts is {type(ts).__name__}, expected number"
    try:
        row = {"device": device, "ts": float(ts)}
    except OverflowError:
        return None, "implausible ts", f"ts has {len(str(ts))} digits"
    for name in FLOAT_SENSORS:
        value = data.get(name, MISSING)
        if value is MISSING:
            return None, "missing field", f"data.{name}"
        if value is None:
            row[name] = math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, "wrong type", f"data.{name} is {type(value).__name__}, expected number"
        try:
            number = float(value)
        except OverflowError:
            return None, f"non-finite {name}", f"data.{name} has {len(str(value))} digits"
        if math.isnan(number):
            return None, f"non-finite {name}", f"data.{name} is NaN"
        row[name] = number
    for name in BOOL_SENSORS:
        value = data.get(name, MISSING)
        if value is MISSING:
            return None, "missing field", f"data.{name}"
        if value is not None and not isinstance(value, bool):
            return None, "wrong type", f"data.{name} is {type(value).__name__}, expected boolean"
        row[name] = value
    alias = message.get("device")
    if isinstance(alias, str) and not is_unicode_text(alias):
        # pandas cannot store a lone surrogate in a string column.
        return None, REASON_INVALID_DEVICE, f"device {alias!r:.200} is not valid Unicode text"
    row["alias"] = alias if isinstance(alias, str) else None
    return row, "", ""


def parse_messages(
    messages: Iterable[object],
    source: str,
    first_line: int = 1,
    raw: list[str] | None = None,
    timezone: str | None = None,
    aliases: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse decoded messages into (readings, quarantine).

    Args:
        messages: decoded JSON values, one per message.
        source: file name or topic, recorded in quarantine rows.
        first_line: number of the first message in its source (line or array
            position), so quarantine rows point back to it.
        raw: each message's original text; when None the message is
            re-encoded as JSON for the quarantine record.
        timezone: unused for numeric ts; kept for parity with the CSV reader.
        aliases: device id mapping applied to kept readings.

    Returns:
        The kept readings in input order, not deduplicated (see
        `validate.deduplicate`), with hidden `_source`/`_line` columns, and
        the quarantine table of rejected messages.
    """
    rows, lines, raws, rejected = [], [], [], []
    for offset, message in enumerate(messages):
        line = first_line + offset
        row, reason, detail = check_message(message)
        text = raw[offset] if raw is not None else _encode(message)
        if row is None:
            rejected.append(quarantine_record(source, line, reason, text, detail=detail,
                                              **_key_hint(message)))
            continue
        rows.append(row)
        lines.append(line)
        raws.append(text)

    columns = ["device", "ts", *FLOAT_SENSORS, *BOOL_SENSORS, "alias"]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for name in BOOL_SENSORS:
        frame[name] = frame[name].astype("boolean")
    batch = Batch(frame, source, np.asarray(lines, dtype="int64"), raws, rejected)
    readings = normalize(batch, timezone=timezone, aliases=aliases)
    return readings, quarantine_frame(batch.rejected)


def _encode(message: object) -> str:
    """Re-encode a decoded message as JSON for its quarantine record.

    This call runs deeper in the stack than json.loads did, so a message
    nested just below the parse limit can hit the recursion limit here. Its
    raw text is then a placeholder.
    """
    try:
        return json.dumps(message, allow_nan=True)
    except (TypeError, ValueError):
        pass
    except RecursionError:
        return "(message nested too deeply to re-encode)"
    try:
        return repr(message)
    except RecursionError:
        return "(message nested too deeply to re-encode)"


def _key_hint(message: object) -> dict:
    """Return whatever device and ts a rejected message has, for the record."""
    if not isinstance(message, dict):
        return {}
    device = message.get("device_id")
    ts = message.get("ts")
    hint = {}
    if isinstance(device, str) and is_unicode_text(device):
        hint["device"] = device
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        try:
            if math.isfinite(ts):
                hint["ts"] = float(ts)
        except OverflowError:
            pass
    return hint
