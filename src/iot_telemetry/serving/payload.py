"""Parse endpoint request bodies into a readings frame, with a reason per error.

The accepted bodies are described by ``schemas/request.v1.json``. This module
implements those rules with the standard library, numpy and pandas only,
because it ships inside the model archive and the SageMaker scikit-learn image
has no jsonschema. Tests validate the same bodies against the JSON Schema so
that the two cannot drift apart.

The parsed frame has the columns device (string), ts (float64 epoch seconds),
co, humidity, lpg, smoke, temp (float64, NaN for null), light, motion (pandas
nullable boolean) and context (numpy bool), one row per reading in request
order.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import math
import operator

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import (
    BOOL_SENSORS,
    FLOAT_SENSORS,
    KAGGLE_COLUMNS,
    TS_RANGE,
)
from iot_telemetry.data.device_ids import is_unicode_text

JSON = "application/json"
CSV = "text/csv"
ACCEPTED_TYPES = (JSON, CSV)

# SageMaker real-time endpoints accept request payloads of at most 6 MB.
MAX_BODY_BYTES = 6 * 1024 * 1024

# A request with many bad readings reports this many and a total count.
MAX_REPORTED_ERRORS = 10

FRAME_COLUMNS = ("device", "ts", *FLOAT_SENSORS, *BOOL_SENSORS, "context")
CSV_CONTEXT_COLUMN = "context"
# Header names accepted for the device column: the Kaggle name and the
# message field name.
DEVICE_HEADER_NAMES = ("device", "device_id")

_TRUE_TOKEN = "true"
_FALSE_TOKEN = "false"


class RequestError(ValueError):
    """A request the caller must fix, with the HTTP status it maps to.

    Attributes:
        status: 400 (malformed or invalid body), 406 (unsupported Accept),
            413 (body too large) or 415 (unsupported Content-Type or charset).
        errors: one message per invalid reading or field, at most
            MAX_REPORTED_ERRORS of them.
    """

    def __init__(
        self, message: str, status: int = 400, errors: list[str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.errors = list(errors or [])


class _ErrorList:
    """Collect field errors up to MAX_REPORTED_ERRORS while counting all."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.messages) < MAX_REPORTED_ERRORS:
            self.messages.append(message)

    def raise_if_any(self, what: str) -> None:
        if not self.count:
            return
        shown = "; ".join(self.messages)
        more = self.count - len(self.messages)
        suffix = f" (and {more} more)" if more else ""
        noun = "error" if self.count == 1 else "errors"
        raise RequestError(
            f"{what}: {self.count} {noun}: {shown}{suffix}", errors=self.messages
        )


def split_media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """Split a Content-Type or Accept value into its media type and parameters.

    A missing header means application/json, as in the SageMaker container.
    The media type is lower-cased; parameter values keep their case.
    """
    if not header or not header.strip():
        return JSON, {}
    media, *params = header.split(";")
    parsed = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), parsed


def parse_body(body: bytes | str | None, content_type: str | None) -> pd.DataFrame:
    """Parse a request body of either accepted type into a readings frame.

    Args:
        body: the raw body; the SageMaker toolkit passes text for plain
            application/json and text/csv and bytes when a charset is given.
        content_type: the Content-Type header, such as
            "text/csv; charset=utf-8"; None means application/json.

    Returns:
        The readings frame described in the module docstring.

    Raises:
        RequestError: 415 for another media type or an unknown charset, 413
            for a body over MAX_BODY_BYTES, 400 for an empty, undecodable or
            invalid body (the message names each bad field and reading).
    """
    media, params = split_media_type(content_type)
    if media not in ACCEPTED_TYPES:
        raise RequestError(
            f"unsupported Content-Type {media!r}; accepted: {', '.join(ACCEPTED_TYPES)}",
            status=415,
        )
    text = decode_body(body, params.get("charset", "utf-8"))
    if not text.strip():
        raise RequestError("empty request body; send at least one reading")
    if media == JSON:
        frame = frame_from_messages(load_messages(text))
    else:
        frame = parse_csv(text)
    if frame["context"].all():
        raise RequestError(
            "every reading is marked as context, so there is nothing to score"
        )
    return frame


def decode_body(body: bytes | str | None, charset: str) -> str:
    """Decode a body to text, enforcing the size limit on the encoded bytes."""
    if body is None:
        return ""
    if isinstance(body, str):
        size = len(body.encode("utf-8", errors="surrogatepass"))
    else:
        size = len(body)
    if size > MAX_BODY_BYTES:
        raise RequestError(
            f"request body of {size} bytes exceeds the limit of {MAX_BODY_BYTES} bytes;"
            " split it into smaller requests",
            status=413,
        )
    if isinstance(body, str):
        return body.removeprefix("\ufeff")
    try:
        codecs.lookup(charset)
    except LookupError:
        raise RequestError(f"unsupported charset {charset!r}", status=415) from None
    try:
        text = bytes(body).decode(charset)
    except LookupError:
        # Python also names non-text codecs (rot13, hex, base64, zlib) by
        # lookup, but bytes.decode rejects them with LookupError.
        raise RequestError(
            f"unsupported charset {charset!r}: not a text encoding", status=415
        ) from None
    except UnicodeError as error:
        raise RequestError(f"body is not valid {charset}: {error}") from None
    return text.removeprefix("\ufeff")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a valid JSON number")


def load_messages(text: str) -> list[object]:
    """Decode a JSON body into its list of messages.

    Accepts one message object, a non-empty array of them, or an object with
    an "instances" array. The messages themselves are checked by
    `frame_from_messages`.

    Raises:
        RequestError: 400 for malformed JSON (NaN and Infinity included) or a
            top-level value of another shape.
    """
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise RequestError(f"malformed JSON body: {error}") from None
    if isinstance(document, list):
        messages = document
        where = "the body array"
    elif isinstance(document, dict) and "instances" in document:
        messages = document["instances"]
        where = "instances"
        if not isinstance(messages, list):
            raise RequestError(
                f"instances must be an array, got {type(messages).__name__}"
            )
    elif isinstance(document, dict):
        return [document]
    else:
        raise RequestError(
            "JSON body must be a message object, an array of messages or"
            f' {{"instances": [...]}}, got {type(document).__name__}'
        )
    if not messages:
        raise RequestError(f"{where} is empty; send at least one reading")
    return messages


def _json_number(value: object, path: str, errors: _ErrorList) -> float:
    """Return a JSON number as a float, NaN for null.

    Non-finite values (a literal such as 1e999 decodes to inf) pass through:
    the model reports such a reading with status "invalid" instead of the
    whole request failing.
    """
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.add(f"{path} is {_json_type(value)}, expected number or null")
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _json_type(value: object) -> str:
    names = {bool: "boolean", str: "string", list: "array", dict: "object"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "number"
    return names.get(type(value), type(value).__name__)


def _check_ts(ts: float, path: str, errors: _ErrorList) -> None:
    low, high = TS_RANGE
    if not low <= ts <= high:
        errors.add(
            f"{path} = {ts!r} is outside {low:.0f}..{high:.0f} epoch seconds"
            " (milliseconds or a wrong unit?)"
        )


_NUMBER_TYPES = frozenset({float, int, type(None)})
_FLAG_TYPES = frozenset({bool, type(None)})
_get_floats = operator.itemgetter(*FLOAT_SENSORS)
_get_flags = operator.itemgetter(*BOOL_SENSORS)


def _fast_frame(messages: list[object]) -> pd.DataFrame | None:
    """Build the frame when every message is well formed, else return None.

    Checks types column by column at C speed (about ten times faster than the
    per-field checks on batches of 1,000). Any doubt returns None, and the
    caller's per-field pass finds and reports the problem.
    """
    try:
        datas = [message["data"] for message in messages]
        devices = [message["device_id"] for message in messages]
        stamps = [message["ts"] for message in messages]
        context = [message.get("context", False) for message in messages]
        floats = [_get_floats(data) for data in datas]
        flags = [_get_flags(data) for data in datas]
    except (TypeError, KeyError, AttributeError):
        return None
    if set(map(type, devices)) != {str}:
        return None
    # The file readers strip spaces around device ids, so requests do too.
    devices = [device.strip() for device in devices]
    if not (
        all(devices)
        and set(map(type, stamps)) <= {float, int}
        and set(map(type, context)) == {bool}
        and set(map(type, itertools.chain.from_iterable(floats))) <= _NUMBER_TYPES
        and set(map(type, itertools.chain.from_iterable(flags))) <= _FLAG_TYPES
    ):
        return None
    try:
        ts = np.asarray(stamps, dtype="float64")
        values = np.asarray(floats, dtype="float64").reshape(
            len(messages), len(FLOAT_SENSORS)
        )
    except OverflowError:
        return None
    low, high = TS_RANGE
    if not ((ts >= low) & (ts <= high)).all():
        return None
    try:
        device_array = pd.array(devices, dtype="string")
    except UnicodeEncodeError:
        return None
    columns: dict[str, object] = {"device": device_array, "ts": ts}
    for position, name in enumerate(FLOAT_SENSORS):
        columns[name] = values[:, position].copy()
    # Every flag is True, False or None here, so the nullable arrays are
    # built from a value and a mask array without a per-element conversion.
    flag_values = np.array(flags, dtype=object).reshape(len(messages), -1)
    flag_missing = np.equal(flag_values, None)
    for position, name in enumerate(BOOL_SENSORS):
        missing = flag_missing[:, position]
        values = np.where(missing, False, flag_values[:, position]).astype(bool)
        columns[name] = pd.arrays.BooleanArray(values, missing)
    columns["context"] = np.asarray(context, dtype=bool)
    return pd.DataFrame(columns)


def frame_from_messages(messages: list[object]) -> pd.DataFrame:
    """Check decoded messages against the request schema and build the frame.

    A repeated (device_id, ts) is not an error here: the model returns the
    second copy with status "invalid".

    Raises:
        RequestError: 400 listing the invalid fields by JSON path, for
            example ``[3].data.temp``.
    """
    frame = _fast_frame(messages)
    if frame is not None:
        return frame
    errors = _ErrorList()
    devices: list[str] = []
    stamps: list[float] = []
    context: list[bool] = []
    floats: dict[str, list[float]] = {name: [] for name in FLOAT_SENSORS}
    flags: dict[str, list[object]] = {name: [] for name in BOOL_SENSORS}

    for index, message in enumerate(messages):
        path = f"[{index}]"
        if not isinstance(message, dict):
            errors.add(f"{path} is {_json_type(message)}, expected a message object")
            continue
        device = message.get("device_id")
        if isinstance(device, str):
            device = device.strip()
        if not isinstance(device, str) or not device:
            errors.add(f"{path}.device_id is missing or not a non-empty string")
            device = ""
        elif not is_unicode_text(device):
            errors.add(f"{path}.device_id is not valid Unicode text (it has a lone surrogate)")
            device = ""
        if message.get("ts") is None:
            errors.add(f"{path}.ts is missing or null")
            ts = math.nan
        else:
            ts = _json_number(message["ts"], f"{path}.ts", errors)
            if not math.isnan(ts):
                _check_ts(ts, f"{path}.ts", errors)
        is_context = message.get("context", False)
        if not isinstance(is_context, bool):
            errors.add(f"{path}.context is {_json_type(is_context)}, expected boolean")
            is_context = False
        data = message.get("data")
        if not isinstance(data, dict):
            errors.add(f"{path}.data is {_json_type(data)}, expected object")
            data = {}
        for name in FLOAT_SENSORS:
            if name not in data:
                errors.add(f"{path}.data.{name} is missing")
            floats[name].append(
                _json_number(data.get(name), f"{path}.data.{name}", errors)
            )
        for name in BOOL_SENSORS:
            value = data.get(name)
            if name not in data:
                errors.add(f"{path}.data.{name} is missing")
            elif value is not None and not isinstance(value, bool):
                errors.add(
                    f"{path}.data.{name} is {_json_type(value)}, expected boolean or null"
                )
                value = None
            flags[name].append(value)
        devices.append(device)
        stamps.append(ts)
        context.append(is_context)

    errors.raise_if_any("invalid readings")
    return _build_frame(devices, stamps, floats, flags, context)


def _build_frame(
    devices: list[str],
    stamps: list[float],
    floats: dict[str, list[float]],
    flags: dict[str, list[object]],
    context: list[bool],
) -> pd.DataFrame:
    try:
        device_array = pd.array(devices, dtype="string")
    except UnicodeEncodeError:
        raise RequestError("device ids must be valid Unicode text; one has a lone "
                           "surrogate") from None
    columns: dict[str, object] = {
        "device": device_array,
        "ts": np.asarray(stamps, dtype="float64"),
    }
    for name in FLOAT_SENSORS:
        columns[name] = np.asarray(floats[name], dtype="float64")
    for name in BOOL_SENSORS:
        columns[name] = pd.array(flags[name], dtype="boolean")
    columns["context"] = np.asarray(context, dtype=bool)
    return pd.DataFrame(columns)


def _csv_bool(token: str, where: str, errors: _ErrorList) -> object:
    lowered = token.strip().lower()
    if lowered == _TRUE_TOKEN:
        return True
    if lowered == _FALSE_TOKEN:
        return False
    if lowered == "":
        return None
    errors.add(f"{where}: {token!r} is not true or false")
    return None


def _csv_float(token: str, where: str, errors: _ErrorList) -> float:
    """Parse a numeric field; empty is NaN, and nan/inf tokens pass through."""
    stripped = token.strip()
    if stripped == "":
        return math.nan
    try:
        return float(stripped)
    except ValueError:
        errors.add(f"{where}: {token!r} is not a number")
        return math.nan


def _csv_ts(token: str, where: str, errors: _ErrorList) -> float:
    stripped = token.strip()
    if not stripped:
        errors.add(f"{where}: empty")
        return math.nan
    try:
        ts = float(stripped)
    except ValueError:
        errors.add(f"{where}: {token!r} is not a number")
        return math.nan
    _check_ts(ts, where, errors)
    return ts


def _is_header(row: list[str]) -> bool:
    """Return True when the first row names columns instead of holding a reading.

    A header names the ts column; no valid reading has the text "ts" in a field.
    """
    return any(field.strip().lower() == "ts" for field in row)


def _csv_layout(header: list[str] | None, width: int) -> dict[str, int]:
    """Map each column name to its position, from the header or the Kaggle order."""
    if header is None:
        if width not in (len(KAGGLE_COLUMNS), len(KAGGLE_COLUMNS) + 1):
            raise RequestError(
                f"headerless CSV rows must have {len(KAGGLE_COLUMNS)} fields"
                f" ({','.join(KAGGLE_COLUMNS)}) or one more for"
                f" {CSV_CONTEXT_COLUMN}, got {width}"
            )
        names = [*KAGGLE_COLUMNS, CSV_CONTEXT_COLUMN][:width]
        return {name: position for position, name in enumerate(names)}

    layout: dict[str, int] = {}
    for position, raw_name in enumerate(header):
        name = raw_name.strip().lower()
        if name in DEVICE_HEADER_NAMES:
            name = "device"
        if name in layout:
            raise RequestError(f"CSV header names column {raw_name!r} twice")
        layout[name] = position
    missing = [name for name in KAGGLE_COLUMNS if name not in layout]
    if missing:
        raise RequestError(
            f"CSV header lacks column(s) {', '.join(missing)}; expected"
            f" {','.join(KAGGLE_COLUMNS)} (optionally {CSV_CONTEXT_COLUMN})"
        )
    return layout


def parse_csv(text: str) -> pd.DataFrame:
    """Parse a text/csv body: Kaggle column order, optional header row.

    Quoted fields (as in the Kaggle export), blank lines and a trailing
    newline are accepted. An empty numeric field is null (NaN); booleans are
    true/false in any letter case, and an empty boolean field is null.

    Raises:
        RequestError: 400 for a malformed row, a wrong field count, a bad
            number or boolean token, or a header without the required columns.
    """
    try:
        rows = [
            row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if row
        ]
    except csv.Error as error:
        raise RequestError(f"malformed CSV body: {error}") from None
    if not rows:
        raise RequestError("CSV body has no rows; send at least one reading")

    header = rows[0] if _is_header(rows[0]) else None
    data_rows = rows[1:] if header is not None else rows
    first_line = 2 if header is not None else 1
    if not data_rows:
        raise RequestError("CSV body has a header row but no readings")
    layout = _csv_layout(header, len(data_rows[0]))
    width = len(header) if header is not None else len(data_rows[0])

    errors = _ErrorList()
    devices, stamps, context = [], [], []
    floats: dict[str, list[float]] = {name: [] for name in FLOAT_SENSORS}
    flags: dict[str, list[object]] = {name: [] for name in BOOL_SENSORS}
    context_at = layout.get(CSV_CONTEXT_COLUMN)
    for offset, row in enumerate(data_rows):
        line = first_line + offset
        if len(row) != width:
            errors.add(f"row {line} has {len(row)} fields, expected {width}")
            continue
        device = row[layout["device"]].strip()
        if not device:
            errors.add(f"row {line}, column device: empty")
        ts = _csv_ts(row[layout["ts"]], f"row {line}, column ts", errors)
        for name in FLOAT_SENSORS:
            floats[name].append(
                _csv_float(row[layout[name]], f"row {line}, column {name}", errors)
            )
        for name in BOOL_SENSORS:
            flags[name].append(
                _csv_bool(row[layout[name]], f"row {line}, column {name}", errors)
            )
        is_context = False
        if context_at is not None:
            where = f"row {line}, column context"
            is_context = _csv_bool(row[context_at], where, errors) is True
        devices.append(device)
        stamps.append(ts)
        context.append(is_context)

    errors.raise_if_any("invalid CSV rows")
    return _build_frame(devices, stamps, floats, flags, context)
