"""Turn loosely typed rows into the readings table, with a reason per rejection.

Every reader (CSV exports, MQTT dumps, stream captures) and the streaming
ingester go through `normalize` and `deduplicate`, so a reading is accepted
or rejected by the same rules wherever it comes from.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

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
    rejected: list[dict] = field(default_factory=list)


def quarantine_frame(records: list[dict]) -> pd.DataFrame:
    """Build the quarantine table from record dicts with QUARANTINE_COLUMNS keys."""
    frame = pd.DataFrame.from_records(records, columns=list(QUARANTINE_COLUMNS))
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
    if len(raw) > RAW_MAX_CHARS:
        raw = raw[:RAW_MAX_CHARS] + f"... ({len(raw)} chars)"
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
    tokens = values.astype("string").str.strip().str.lower()
    is_true = tokens.isin(TRUE_TOKENS).fillna(False).astype(bool)
    is_false = tokens.isin(FALSE_TOKENS).fillna(False).astype(bool)
    blank = tokens.isna() | (tokens == "")
    blank = blank.fillna(True).astype(bool)
    parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
    parsed[is_true] = True
    parsed[is_false] = False
    unknown = ~(is_true | is_false | blank)
    return parsed, unknown


def parse_ts_column(values: pd.Series, timezone: str | None) -> pd.Series:
    """Convert epoch seconds or ISO-8601 strings to float64 epoch seconds.

    Numbers pass through unchanged, so an epoch value keeps its exact bits.
    ISO strings with an offset are converted to UTC; naive ones are taken in
    `timezone` (UTC when None). Unparseable values become NaN.
    """
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_integer_dtype(values):
        return values.astype("float64")
    text = values.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    pending = numbers.isna() & text.notna() & (text != "")
    if pending.any():
        numbers[pending] = _iso_to_epoch(text[pending], timezone)
    return numbers


def _iso_to_epoch(text: pd.Series, timezone: str | None) -> pd.Series:
    """Parse ISO-8601 strings one by one, so naive and offset forms can mix."""
    out = np.full(len(text), np.nan)
    for position, value in enumerate(text.to_numpy()):
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError):
            continue
        if stamp is pd.NaT:
            continue
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(timezone or "UTC", ambiguous="raise")
        out[position] = stamp.tz_convert("UTC").value / 1e9
    return pd.Series(out, index=text.index)


def _reject(
    batch: Batch, frame: pd.DataFrame, mask: pd.Series, reason: str, column: str
) -> pd.Series:
    """Move the rows in `mask` to the batch's rejected list; return the keep mask."""
    for position in np.flatnonzero(mask.to_numpy()):
        index = frame.index[position]
        batch.rejected.append(
            quarantine_record(
                source=batch.source,
                line=int(batch.lines[index]),
                reason=reason,
                detail=f"{column}={frame[column].iloc[position]!r}" if column else "",
                raw=_raw_text(batch, frame, index),
                device=_text_or_none(frame["device"].iloc[position]),
                ts=_float_or_none(frame["ts"].iloc[position]),
            )
        )
    return ~mask


def _raw_text(batch: Batch, frame: pd.DataFrame, index: int) -> str:
    if batch.raw is not None:
        return batch.raw[index]
    row = frame.loc[index]
    return ",".join(f"{name}={row[name]!r}" for name in frame.columns)


def _text_or_none(value) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _float_or_none(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


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
    frame = batch.frame.reset_index(drop=True)
    missing = [name for name in ("device", "ts", *SENSORS) if name not in frame]
    if missing:
        raise KeyError(f"{batch.source}: missing column(s) {', '.join(missing)}")
    keep = pd.Series(True, index=frame.index)

    device = frame["device"].astype("string").str.strip()
    frame["device"] = device
    keep &= _reject(batch, frame, device.isna() | (device == ""), REASON_MISSING_DEVICE, "")

    ts = parse_ts_column(frame["ts"], timezone)
    bad_ts = keep & ts.isna()
    keep &= _reject(batch, frame, bad_ts, REASON_UNPARSEABLE_TS, "ts")
    implausible = keep & ((ts < TS_RANGE[0]) | (ts > TS_RANGE[1]))
    keep &= _reject(batch, frame, implausible, REASON_IMPLAUSIBLE_TS, "ts")
    frame["ts"] = ts

    for name in FLOAT_SENSORS:
        keep &= _check_float(batch, frame, name, keep)

    for name in BOOL_SENSORS:
        parsed, unknown = parse_bool_column(frame[name])
        keep &= _reject(batch, frame, keep & unknown, f"unknown boolean token in {name}", name)
        frame[name] = parsed

    kept = frame.loc[keep.to_numpy()].copy()
    if aliases:
        kept["device"] = kept["device"].replace(aliases)
    readings = to_readings(kept)
    readings[PROVENANCE[0]] = batch.source
    readings[PROVENANCE[1]] = batch.lines[kept.index.to_numpy()]
    return readings


def _check_float(batch: Batch, frame: pd.DataFrame, name: str, keep: pd.Series) -> pd.Series:
    """Parse one float sensor in place; return the keep mask for its checks."""
    original = frame[name]
    if pd.api.types.is_float_dtype(original) or pd.api.types.is_integer_dtype(original):
        values = original.astype("float64")
        unparseable = pd.Series(False, index=frame.index)
    else:
        text = original.astype("string").str.strip()
        values = pd.to_numeric(text, errors="coerce").astype("float64")
        unparseable = values.isna() & text.notna() & (text != "")
    ok = pd.Series(True, index=frame.index)
    ok &= _reject(batch, frame, keep & unparseable, f"unparseable number in {name}", name)
    ok &= _reject(batch, frame, keep & ok & values.isna(), f"missing {name}", name)
    ok &= _reject(batch, frame, keep & ok & np.isinf(values), f"non-finite {name}", name)
    live = keep & ok
    if name == "humidity":
        low, high = HUMIDITY_RANGE
        outside = live & ((values < low) | (values > high))
        ok &= _reject(batch, frame, outside, "humidity outside 0-100 %", name)
    elif name == "temp":
        low, high = TEMP_RANGE_C
        outside = live & ((values < low) | (values > high))
        ok &= _reject(batch, frame, outside, "temp outside sensor range -40-80 degC", name)
    else:
        ok &= _reject(batch, frame, live & (values <= 0), f"non-positive {name}", name)
    frame[name] = values
    return ok


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
    """Convert float epoch seconds to a UTC timestamp column with µs resolution."""
    micros = np.floor(ts.to_numpy(dtype="float64") * 1e6).astype("int64")
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


def deduplicate(readings: pd.DataFrame, order: np.ndarray | None = None) -> DedupeResult:
    """Keep the first reading of each (device, ts) and sort by device then ts.

    `order` gives each row's arrival rank (input order when None); "first"
    means lowest rank. A repeat equal in every sensor is an exact duplicate
    (dropped, counted); a repeat with any sensor different is a conflict,
    returned so the caller can quarantine it. NaN compares equal to NaN here.
    """
    if order is None:
        order = np.arange(len(readings))
    frame = readings.assign(_order=order)
    frame = frame.sort_values(["device", "ts", "_order"], kind="stable")
    repeated = frame.duplicated(list(KEY), keep="first").to_numpy()
    if not repeated.any():
        return DedupeResult(
            _finish(frame), 0, {}, frame.iloc[0:0].drop(columns="_order")
        )

    firsts = frame.loc[~repeated, [*KEY, *SENSORS]]
    repeats = frame.loc[repeated]
    merged = repeats[[*KEY, *SENSORS]].merge(
        firsts, on=list(KEY), how="left", suffixes=("", "_first")
    )
    same = np.ones(len(merged), dtype=bool)
    for name in SENSORS:
        left = merged[name].astype("object").where(merged[name].notna(), None)
        right = merged[f"{name}_first"].astype("object").where(
            merged[f"{name}_first"].notna(), None
        )
        same &= (left.to_numpy() == right.to_numpy())
    exact = repeats.loc[same]
    conflicts = repeats.loc[~same].drop(columns="_order")
    by_device = exact["device"].value_counts().to_dict()
    return DedupeResult(
        _finish(frame.loc[~repeated]),
        int(same.sum()),
        {str(k): int(v) for k, v in by_device.items()},
        conflicts,
    )


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="_order").reset_index(drop=True)
