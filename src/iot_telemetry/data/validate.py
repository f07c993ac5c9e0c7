"""Turn loosely typed rows into the readings table, with a reason per rejection.

Every reader (CSV exports, MQTT dumps, stream captures) and the streaming
ingester go through `normalize` and `deduplicate`, so a reading is accepted
or rejected by the same rules wherever it comes from.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import (
    BOOL_SENSORS,
    FLOAT_SENSORS,
    HUMIDITY_RANGE,
    KEY,
    QUARANTINE_COLUMNS,
    RAW_MAX_CHARS,
    READING_COLUMNS,
    READING_DTYPES,
    SENSORS,
    TEMP_RANGE_C,
    TS_RANGE,
)
from iot_telemetry.data.device_ids import (
    REASON_INVALID_DEVICE,
    device_id_problem,
    is_unicode_text,
)
from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)

NAN_TOKENS = frozenset({"nan", "-nan", "+nan"})
TRUE_TOKENS = frozenset({"true", "t", "1", "1.0", "yes", "y", "on"})
FALSE_TOKENS = frozenset({"false", "f", "0", "0.0", "no", "n", "off"})

# Fixed reason phrases, so counts by reason stay comparable across runs.
REASON_MISSING_DEVICE = "missing device"
REASON_UNPARSEABLE_TS = "unparseable ts"
REASON_IMPLAUSIBLE_TS = "implausible ts"
REASON_CONFLICT = "conflicting duplicate"

# Hidden columns that carry each reading's source and line through
# deduplication, so a conflicting duplicate can be quarantined with both.
PROVENANCE = ("_source", "_line")


@dataclass
class Batch:
    """Rows of one source, loosely typed, with where each came from.

    `frame` has the columns device, ts and the sensors (any dtype; strings are
    parsed), plus optional `alias`. `lines` gives each row's line or message
    number in the source, and `raw` each row's original text (or None, in
    which case the row's fields are rendered as the raw text on rejection).
    """

    frame: pd.DataFrame
    source: str
    lines: np.ndarray
    raw: Sequence[str] | None = None
    rejected: list[dict | pd.DataFrame] = field(default_factory=list)


def quarantine_frame(records: list[dict | pd.DataFrame]) -> pd.DataFrame:
    """Build the quarantine table from record dicts and DataFrame chunks."""
    dicts = [record for record in records if isinstance(record, dict)]
    chunks = [record for record in records if isinstance(record, pd.DataFrame)]
    parts = [pd.DataFrame.from_records(dicts, columns=list(QUARANTINE_COLUMNS)), *chunks]
    parts = [part for part in parts if len(part)] or parts[:1]
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    frame = frame[list(QUARANTINE_COLUMNS)]
    return frame.astype(
        {
            "source": "string",
            "line": "int64",
            "device": "string",
            "ts": "float64",
            "reason": "string",
            "detail": "string",
            "raw": "string",
        }
    )


def quarantine_record(
    source: str,
    line: int,
    reason: str,
    raw: str,
    detail: str = "",
    device: str | None = None,
    ts: float | None = None,
) -> dict:
    """Build one quarantine record; `raw` is truncated to RAW_MAX_CHARS."""
    raw = _truncate(raw)
    return {
        "source": source,
        "line": int(line),
        "device": device,
        "ts": np.nan if ts is None else float(ts),
        "reason": reason,
        "detail": detail,
        "raw": raw,
    }


def parse_bool_column(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Map boolean spellings to a nullable boolean column.

    Accepts real booleans, 0/1 numbers and the tokens in TRUE_TOKENS and
    FALSE_TOKENS (case-insensitive). Blank and missing values become <NA>.
    Returns (parsed, unknown) where `unknown` marks tokens that are neither.
    """
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean"), pd.Series(False, index=values.index)
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64")
        parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
        parsed[numbers == 1] = True
        parsed[numbers == 0] = False
        return parsed, numbers.notna() & ~numbers.isin([0.0, 1.0])
    tokens = values.astype("string").str.strip().str.lower()
    # Numbers equal to 1 or 0 ("01", "+1", "1e0") count as true or false, the
    # same whether pandas read the column as numbers or as text.
    numbers = pd.to_numeric(tokens, errors="coerce")
    is_true = (tokens.isin(TRUE_TOKENS) | (numbers == 1)).fillna(False).astype(bool)
    is_false = (tokens.isin(FALSE_TOKENS) | (numbers == 0)).fillna(False).astype(bool)
    blank = tokens.isna() | (tokens == "")
    blank = blank.fillna(True).astype(bool)
    parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
    parsed[is_true] = True
    parsed[is_false] = False
    unknown = ~(is_true | is_false | blank)
    return parsed, unknown


def check_timezone(zone: str | None) -> None:
    """Raise InputError unless `zone` is None or an IANA time zone name."""
    if zone is None:
        return
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    # ZoneInfoNotFoundError is a KeyError, so callers that turn ValueError
    # into a message (argparse, pydantic) would not catch it.
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise InputError(
            f"unknown time zone {zone!r}: use an IANA name such as Europe/Berlin"
        ) from error


def parse_ts_column(values: pd.Series, timezone: str | None) -> pd.Series:
    """Convert epoch seconds or ISO-8601 strings to float64 epoch seconds.

    Numbers pass through unchanged, so an epoch value keeps its exact bits.
    ISO strings with an offset are converted to UTC; naive ones are taken in
    `timezone` (UTC when None). Unparseable values become NaN.
    """
    return parse_ts(values, timezone)[0]


def parse_ts(values: pd.Series, timezone: str | None) -> tuple[pd.Series, np.ndarray]:
    """Convert ts values like `parse_ts_column`, and return why local times failed.

    Returns the float64 epoch seconds and, per value, "" or the rejection
    reason of a naive time that daylight saving makes ambiguous or skips in
    `timezone` (its epoch value is NaN).
    """
    notes = np.full(len(values), "", dtype=object)
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_integer_dtype(values):
        return values.astype("float64"), notes
    text = values.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    pending = numbers.isna() & text.notna() & (text != "")
    if pending.any():
        parsed, pending_notes = _iso_to_epoch(text[pending], timezone)
        numbers[pending] = parsed
        notes[pending.to_numpy(dtype=bool)] = pending_notes
    return numbers, notes


# ISO-8601 date and time, optional fraction and offset. Anything else (a
# slash date, "now") is rejected rather than guessed.
ISO_8601 = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)


def _iso_to_epoch(text: pd.Series, timezone: str | None) -> tuple[pd.Series, np.ndarray]:
    """Parse ISO-8601 strings one by one, so naive and offset forms can mix.

    The result is the float nearest to the exact instant: nanoseconds are
    divided as integers, not rounded to float first. Local times that a
    daylight-saving change makes ambiguous or skips become NaN, with a
    reason in the second array ("" for every other value).
    """
    zone = timezone or "UTC"
    out = np.full(len(text), np.nan)
    notes = np.full(len(text), "", dtype=object)
    for position, value in enumerate(text.to_numpy()):
        if not isinstance(value, str) or not ISO_8601.match(value):
            continue
        try:
            stamp = pd.Timestamp(value)
            if stamp.tzinfo is None:
                naive = stamp
                stamp = naive.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
                if stamp is pd.NaT:
                    notes[position] = _daylight_saving_reason(naive, zone)
                    continue
        except (ValueError, TypeError, OverflowError):
            continue
        out[position] = float(Fraction(stamp.tz_convert("UTC").value, 1_000_000_000))
    return pd.Series(out, index=text.index), notes


def _daylight_saving_reason(naive: pd.Timestamp, zone: str) -> str:
    """Name the daylight-saving problem of a naive time that `zone` cannot place."""
    earlier = naive.tz_localize(zone, ambiguous=True, nonexistent="NaT")
    if earlier is pd.NaT:
        return f"nonexistent local time in {zone} (daylight saving)"
    return f"ambiguous local time in {zone} (daylight saving)"


def _reject(batch: Batch, frame: pd.DataFrame, ts: np.ndarray, mask: np.ndarray,
            reason: str, column: str) -> np.ndarray:
    """Record the rows in `mask` as rejected with `reason`; return the keep mask.

    `frame` contains the original values, so `detail` shows what was rejected.
    """
    positions = np.flatnonzero(mask)
    if len(positions):
        if column:
            values = frame[column].to_numpy(dtype=object)[positions]
            detail = [f"{column}={value!r}" for value in values]
        else:
            detail = [""] * len(positions)
        devices = frame["device"].to_numpy(dtype=object)[positions]
        raws = [_raw_text(batch, frame, position) for position in positions]
        bad_ts = ts[positions]
        batch.rejected.append(pd.DataFrame({
            "source": batch.source,
            "line": batch.lines[positions].astype("int64"),
            "device": [_device_label(d) for d in devices],
            "ts": np.where(np.isfinite(bad_ts), bad_ts, np.nan),
            "reason": reason,
            "detail": detail,
            "raw": [_truncate(raw) for raw in raws],
        }))
    return ~mask


def _raw_text(batch: Batch, frame: pd.DataFrame, position: int) -> str:
    if batch.raw is not None:
        return batch.raw[position]
    row = frame.iloc[position]
    values = {name: row[name].item() if hasattr(row[name], "item") else row[name]
              for name in frame.columns}
    return ",".join(f"{name}={value!r}" for name, value in values.items())


def _valid_device_ids(device: pd.Series) -> np.ndarray:
    """Check each distinct id once: a file has few devices and many rows."""
    invalid = [value for value in device.dropna().unique() if device_id_problem(value)]
    if not invalid:
        return np.ones(len(device), dtype=bool)
    return ~device.isin(invalid).fillna(False).to_numpy(dtype=bool)


def _device_label(value) -> str | None:
    """Return a device value as storable text, escaping bytes that are not UTF-8."""
    if _is_missing(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    text = str(value)
    if is_unicode_text(text):
        return text
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _decode_text(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Decode bytes values (a Parquet binary column) as UTF-8.

    Returns the values with each invalid one (undecodable bytes, or a string
    with a lone surrogate) set to None, and the mask of those values. Each
    distinct value is checked once.
    """
    invalid = np.zeros(len(values), dtype=bool)
    if values.dtype != object:
        return values, invalid
    decoded = {}
    for value in values.dropna().unique():
        if isinstance(value, bytes):
            try:
                decoded[value] = value.decode("utf-8")
            except UnicodeDecodeError:
                decoded[value] = None
        elif isinstance(value, str) and not is_unicode_text(value):
            decoded[value] = None
    if not decoded:
        return values, invalid
    text = values.map(lambda value: decoded.get(value, value) if isinstance(value, (bytes, str))
                      else value)
    invalid = (text.isna() & values.notna()).to_numpy(dtype=bool)
    return text, invalid


def _truncate(raw: str) -> str:
    if len(raw) > RAW_MAX_CHARS:
        return raw[:RAW_MAX_CHARS] + f"... ({len(raw)} chars)"
    return raw


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def normalize(batch: Batch, timezone: str | None = None,
              aliases: dict[str, str] | None = None) -> pd.DataFrame:
    """Type and check a batch; rejected rows go to `batch.rejected`.

    Checks, in order, each rejection naming the first failed check: device
    present; ts parseable and inside TS_RANGE; each float sensor present,
    numeric and finite; humidity inside HUMIDITY_RANGE; temp inside
    TEMP_RANGE_C; gas readings positive; boolean tokens known. Device ids are
    mapped through `aliases` after the checks. Returns the kept rows with the
    READING_COLUMNS dtypes, in input order (not yet deduplicated).
    """
    original = batch.frame.reset_index(drop=True)
    missing = [name for name in ("device", "ts", *SENSORS) if name not in original]
    if missing:
        raise KeyError(f"{batch.source}: missing column(s) {', '.join(missing)}")
    typed = pd.DataFrame(index=original.index)

    # device and ts
    device_text, undecodable = _decode_text(original["device"])
    device = device_text.astype("string").str.strip()
    typed["device"] = device
    ts, ts_notes = parse_ts(original["ts"], timezone)
    ts = ts.to_numpy(dtype="float64")
    keep = _reject(batch, original, ts, undecodable, REASON_INVALID_DEVICE, "device")
    missing = keep & (device.isna() | (device == "")).to_numpy(dtype=bool)
    keep &= _reject(batch, original, ts, missing, REASON_MISSING_DEVICE, "")
    if "alias" in original:
        alias, undecodable = _decode_text(original["alias"])
        keep &= _reject(batch, original, ts, keep & undecodable, REASON_INVALID_DEVICE, "alias")
        typed["alias"] = alias
    invalid = keep & ~_valid_device_ids(device)
    keep &= _reject(batch, original, ts, invalid, REASON_INVALID_DEVICE, "device")
    for reason in sorted(set(ts_notes) - {""}):
        keep &= _reject(batch, original, ts, keep & (ts_notes == reason), reason, "ts")
    keep &= _reject(batch, original, ts, keep & np.isnan(ts), REASON_UNPARSEABLE_TS, "ts")
    implausible = keep & ((ts < TS_RANGE[0]) | (ts > TS_RANGE[1]))
    keep &= _reject(batch, original, ts, implausible, REASON_IMPLAUSIBLE_TS, "ts")
    typed["ts"] = ts

    # sensors
    for name in FLOAT_SENSORS:
        values, keep = _check_float(batch, original, ts, name, keep)
        typed[name] = values
    for name in BOOL_SENSORS:
        parsed, unknown = parse_bool_column(original[name])
        reason = f"unknown boolean token in {name}"
        keep &= _reject(batch, original, ts, keep & unknown.to_numpy(dtype=bool), reason, name)
        typed[name] = parsed

    kept = typed.loc[keep]
    if aliases:
        kept = kept.assign(device=kept["device"].replace(aliases))
    readings = to_readings(kept)
    readings[PROVENANCE[0]] = batch.source
    readings[PROVENANCE[1]] = batch.lines[np.flatnonzero(keep)]
    return readings


def _check_float(batch: Batch, original: pd.DataFrame, ts: np.ndarray, name: str,
                 keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse one float sensor; return its values and the updated keep mask."""
    column = original[name]
    if pd.api.types.is_float_dtype(column) or pd.api.types.is_integer_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        unparseable = np.zeros(len(values), dtype=bool)
    else:
        text = column.astype("string").str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        nan_text = text.str.lower().isin(NAN_TOKENS).fillna(False).to_numpy(dtype=bool)
        unparseable = np.isnan(values) & (text.notna() & (text != "")).to_numpy(dtype=bool)
        unparseable &= ~nan_text
        values = np.where(nan_text, np.inf, values)
    keep = keep & _reject(batch, original, ts, keep & unparseable,
                          f"unparseable number in {name}", name)
    keep &= _reject(batch, original, ts, keep & np.isnan(values), f"missing {name}", name)
    keep &= _reject(batch, original, ts, keep & np.isinf(values), f"non-finite {name}", name)
    if name == "humidity":
        low, high = HUMIDITY_RANGE
        outside = keep & ((values < low) | (values > high))
        keep &= _reject(batch, original, ts, outside, "humidity outside 0-100 %", name)
    elif name == "temp":
        low, high = TEMP_RANGE_C
        outside = keep & ((values < low) | (values > high))
        keep &= _reject(batch, original, ts, outside, "temp outside sensor range -40-80 degC",
                        name)
    else:
        keep &= _reject(batch, original, ts, keep & (values <= 0), f"non-positive {name}", name)
    return values, keep


def to_readings(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with the READING_COLUMNS, their dtypes and the time column."""
    out = pd.DataFrame(index=frame.index)
    out["device"] = frame["device"].astype("string")
    out["ts"] = frame["ts"].astype("float64")
    out["time"] = epoch_to_time(out["ts"])
    for name in FLOAT_SENSORS:
        out[name] = frame[name].astype("float64")
    for name in BOOL_SENSORS:
        out[name] = frame[name].astype("boolean")
    alias = frame["alias"] if "alias" in frame else pd.Series(pd.NA, index=frame.index)
    out["alias"] = alias.astype("string")
    extra = [name for name in PROVENANCE if name in frame]
    return pd.concat([out[list(READING_COLUMNS)], frame[extra]], axis=1)


def epoch_to_time(ts: pd.Series) -> pd.Series:
    """Convert float epoch seconds to a UTC timestamp column, rounded to the µs."""
    micros = np.rint(ts.to_numpy(dtype="float64") * 1e6).astype("int64")
    return pd.Series(pd.to_datetime(micros, unit="us", utc=True), index=ts.index).astype(
        READING_DTYPES["time"]
    )


@dataclass
class DedupeResult:
    """Readings with each (device, ts) once, and what was removed."""

    readings: pd.DataFrame
    exact_duplicates: int
    duplicates_by_device: dict[str, int]
    conflicts: pd.DataFrame
    # The exact duplicates that were dropped, sorted by device then ts.
    exact: pd.DataFrame | None = None


def deduplicate(readings: pd.DataFrame, order: np.ndarray | None = None) -> DedupeResult:
    """Keep the first reading of each (device, ts) and sort by device then ts.

    `order` gives each row's arrival rank (input order when None); "first"
    means lowest rank. A repeat equal in every sensor is an exact duplicate
    (dropped, counted); a repeat with any sensor different is a conflict,
    returned so the caller can quarantine it. Missing values compare equal.
    """
    if order is None:
        order = np.arange(len(readings))
    codes, _ = pd.factorize(readings["device"], sort=True)
    ts = readings["ts"].to_numpy(dtype="float64")
    permutation = np.lexsort((order, ts, codes))
    codes, ts = codes[permutation], ts[permutation]

    repeated = np.zeros(len(readings), dtype=bool)
    repeated[1:] = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
    kept = readings.iloc[permutation[~repeated]].reset_index(drop=True)
    if not repeated.any():
        return DedupeResult(kept, 0, {}, readings.iloc[0:0], readings.iloc[0:0])

    # Each repeat is compared with the first row of its run of equal keys.
    run_start = np.maximum.accumulate(np.where(repeated, 0, np.arange(len(readings))))
    repeats = permutation[np.flatnonzero(repeated)]
    firsts = permutation[run_start[np.flatnonzero(repeated)]]
    pairs = readings.iloc[np.concatenate([repeats, firsts])]
    same = np.ones(len(repeats), dtype=bool)
    for name in SENSORS:
        values = pairs[name].to_numpy(dtype=object, na_value=None)
        same &= values[: len(repeats)] == values[len(repeats) :]
    exact = readings.iloc[repeats[same]]
    conflicts = readings.iloc[repeats[~same]]
    by_device = exact["device"].value_counts().to_dict()
    return DedupeResult(
        kept,
        int(same.sum()),
        {str(k): int(v) for k, v in by_device.items()},
        conflicts,
        exact,
    )
