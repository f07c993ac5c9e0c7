"""The devices' MQTT payload shape and topic names.

A device publishes one JSON object per reading to `telemetry/<device_id>`::

    {"data": {"co": 0.0061, "humidity": 55.1, "light": true, "lpg": 0.0089,
              "motion": false, "smoke": 0.0239, "temp": 31.8},
     "device_id": "6e:81:c9:d4:9e:58", "ts": 1594419195.292461}

plus, in the real capture, `device` with the device's alias. JSON numbers are
written with Python's shortest round-trip repr, so float64 values (ts
included) arrive with their exact bits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pandas as pd

from iot_telemetry.data.columns import BOOL_SENSORS, FLOAT_SENSORS, SENSORS


def telemetry_topic(prefix: str, device: str) -> str:
    """Return the topic a device publishes to, e.g. `telemetry/<device_id>`."""
    return f"{prefix}/{device}"


def alert_topic(prefix: str, device: str) -> str:
    """Return the topic alerts for a device go to, e.g. `alerts/<device_id>`.

    The device level is `topic_level(device)`, so any id gives a valid MQTT
    topic name of exactly one level below `prefix`.
    """
    return f"{prefix}/{topic_level(device)}"


def topic_level(device: str) -> str:
    """Escape a device id for use as one MQTT topic level.

    `%`, the wildcards `#` and `+`, the level separator `/`, control
    characters (U+0000 to U+001F and U+007F to U+009F) and lone surrogates
    become `%XX` per UTF-8 byte, like percent-encoding. An empty id becomes
    `%`, which no escaped id can equal. Ids without those characters, such
    as MAC addresses, stay as they are.
    """
    if not device:
        return "%"
    return "".join(_escape_topic_char(char) for char in device)


def _escape_topic_char(char: str) -> str:
    code = ord(char)
    if (char in "%#+/" or code <= 0x1F or 0x7F <= code <= 0x9F
            or 0xD800 <= code <= 0xDFFF):
        encoded = char.encode("utf-8", errors="surrogatepass")
        return "".join(f"%{byte:02X}" for byte in encoded)
    return char


def device_from_topic(topic: str, prefix: str) -> str | None:
    """Return the device id level of `prefix/<device_id>`, or None for other topics."""
    head, _, device = topic.rpartition("/")
    return device if head == prefix and device else None


def message_from_row(row: dict) -> dict:
    """Build one payload dict from a readings-table row (as a dict).

    NaN floats and <NA> booleans become JSON null; `alias` becomes the
    `device` field when present.
    """
    data = {}
    for name in SENSORS:
        value = row[name]
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            data[name] = None
        elif name in BOOL_SENSORS:
            data[name] = bool(value)
        else:
            data[name] = float(value)
    message = {"data": data, "device_id": str(row["device"]), "ts": float(row["ts"])}
    alias = row.get("alias")
    if isinstance(alias, str):
        message["device"] = alias
    return message


def iter_messages(readings: pd.DataFrame) -> Iterator[dict]:
    """Yield payload dicts in ts order (ties keep the table's order)."""
    ordered = readings.sort_values("ts", kind="stable")
    columns = ["device", "ts", *FLOAT_SENSORS, *BOOL_SENSORS]
    if "alias" in ordered:
        columns.append("alias")
    for row in ordered[columns].to_dict("records"):
        yield message_from_row(row)


def encode(message: dict) -> bytes:
    """Serialize a payload dict as compact UTF-8 JSON (NaN is rejected)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
