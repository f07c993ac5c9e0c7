"""Read telemetry files of every supported kind into one validated table.

Supported inputs, detected from the path:

- CSV exports of the Kaggle table: the raw Kaggle format (every field quoted,
  Java-style epoch seconds), or other tools' exports (unquoted, CRLF, other
  column order, an extra index column, ISO-8601 times, other boolean
  spellings, rows out of order);
- MQTT message dumps: a JSON array, JSON Lines (.jsonl, .ndjson, or .json
  with one object per line), or a .zip of those;
- Parquet: an earlier `readings.parquet`, or a folder of Parquet files such
  as a stream capture partitioned by date and device.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from iot_telemetry.data.columns import KEY, READING_COLUMNS, SENSORS
from iot_telemetry.data.csv_reader import read_csv
from iot_telemetry.data.messages import parse_messages
from iot_telemetry.data.validate import (
    PROVENANCE,
    REASON_CONFLICT,
    Batch,
    DedupeResult,
    deduplicate,
    normalize,
    quarantine_frame,
    quarantine_record,
)
from iot_telemetry.errors import InputError
from iot_telemetry.output_paths import check_output_file, write_failed

log = logging.getLogger(__name__)

JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
# A zip member is read into memory whole; larger ones must be unzipped first.
MAX_ZIP_MEMBER_BYTES = 1 << 30
# Maximum expansion (uncompressed / compressed size) of a zip member over
# MIN_RATIO_CHECK_BYTES. The MQTT capture mqtt_dump_2020-07-13.json.zip
# expands 11.8 times. Deflate reaches about 1,030 times on repeated bytes,
# and parsing costs far more memory than the text (8 MB of blank CSV lines
# took 1.4 GB), so such members are rejected before they are decompressed.
# NOTE: an uncompressed file gets no such check. Blank CSV lines still cost
# about 170 bytes of memory each (1.4 GB for 8 million).
MAX_ZIP_RATIO = 100
MIN_RATIO_CHECK_BYTES = 1 << 20


def require_readings(result: "IngestResult", out: Path) -> None:
    """Raise InputError naming the quarantine file when ingest kept no reading.

    Call it after writing the outputs, so the quarantine can be read.
    """
    if len(result.readings):
        return
    summary = result.summary
    raise InputError(
        f"no valid readings: {summary['read']} rows read, {summary['quarantined']} quarantined"
        f" and {summary['duplicates']} duplicates; see the reasons in"
        f" {Path(out) / 'quarantine.parquet'}, fix or replace the input and run again"
    )


@dataclass
class IngestResult:
    """Validated readings, rejected rows and the counts of one ingest."""

    readings: pd.DataFrame
    quarantine: pd.DataFrame
    summary: dict
    # Device and ts of each exact duplicate dropped (the summary counts them).
    duplicates: pd.DataFrame | None = None


def read_inputs(
    paths: list[str | Path],
    timezone: str | None = None,
    aliases: dict[str, str] | None = None,
) -> IngestResult:
    """Read, validate and deduplicate one or more inputs.

    Args:
        paths: files or folders, of any kind in the module docstring.
        timezone: IANA zone for naive ISO-8601 times (UTC when None).
        aliases: device id mapping, applied before deduplication.

    Returns:
        Readings sorted by device then ts with each (device, ts) once, the
        quarantine table, and the summary that `ingest.json` stores.

    Raises:
        InputError: a path is missing, empty, corrupt, of an unknown kind, or
            lacks a required column.
    """
    parts, rejected, inputs, raw_lookups = [], [], [], {}
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(f"input not found: {path}")
        for part in _read_path(path, timezone, aliases):
            parts.append(part.readings)
            rejected.append(part.quarantine)
            raw_lookups[part.source] = part.raw_lookup
            inputs.append({"path": part.source, "format": part.kind,
                           "rows": int(len(part.readings) + len(part.quarantine))})

    readings = pd.concat(parts, ignore_index=True) if parts else _empty_readings()
    quarantine = pd.concat(rejected, ignore_index=True) if rejected else quarantine_frame([])
    if aliases and len(quarantine):
        quarantine["device"] = quarantine["device"].replace(aliases)

    dedupe = deduplicate(readings)
    conflicts = _conflict_records(dedupe, raw_lookups)
    quarantine = pd.concat([quarantine, conflicts], ignore_index=True)
    kept = dedupe.readings.drop(columns=list(PROVENANCE), errors="ignore")
    summary = summarize(inputs, kept, quarantine, dedupe.exact_duplicates,
                        dedupe.duplicates_by_device)
    log.info(
        "read %d rows: kept %d, %d exact duplicates, %d quarantined",
        summary["read"], summary["kept"], summary["duplicates"], summary["quarantined"],
    )
    exact = dedupe.exact if dedupe.exact is not None else readings.iloc[0:0]
    duplicates = exact[["device", "ts"]].reset_index(drop=True)
    return IngestResult(kept, quarantine.reset_index(drop=True), summary, duplicates)


@dataclass
class Part:
    """Readings of one file or zip member, not yet deduplicated, and its rejects."""

    readings: pd.DataFrame
    quarantine: pd.DataFrame
    source: str
    kind: str
    raw_lookup: Callable[[int], str]


def _read_path(path: Path, timezone, aliases) -> Iterator[Part]:
    """Yield a Part for each file of one input path."""
    if path.is_dir():
        yield from _read_folder(path, timezone, aliases)
        return
    if path.stat().st_size == 0:
        raise InputError(f"input is empty: {path}")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        yield from _read_zip(path, timezone, aliases)
    elif suffix == ".parquet":
        yield _read_parquet(path, timezone, aliases)
    else:
        yield _read_bytes(path.read_bytes(), str(path), suffix, timezone, aliases)


def _read_bytes(data: bytes, source: str, suffix: str, timezone, aliases) -> Part:
    if suffix in JSON_SUFFIXES:
        return _read_json_bytes(data, source, timezone, aliases)
    readings, quarantine, lookup = read_csv(data, source, timezone, aliases)
    return Part(readings, quarantine, source, "csv", lookup)


def _read_folder(path: Path, timezone, aliases) -> Iterator[Part]:
    files = sorted(
        file for file in path.rglob("*.parquet")
        if not file.name.startswith(("quarantine", ".")) and ".tmp" not in file.name
    )
    if not files:
        raise InputError(f"no Parquet files in folder {path}")
    for file in files:
        yield _read_parquet(file, timezone, aliases)


def _read_zip(path: Path, timezone, aliases) -> Iterator[Part]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"invalid zip archive {path}: {error}") from error
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        readable = [info for info in members
                    if Path(info.filename).suffix.lower() in (*JSON_SUFFIXES, ".csv")]
        if not readable:
            names = ", ".join(info.filename for info in members) or "no files"
            raise InputError(
                f"zip archive {path} has no .json, .jsonl, .ndjson or .csv member ({names})"
            )
        for info in members:
            if info not in readable:
                log.warning("skipped zip member %s:%s: not .json, .jsonl, .ndjson or .csv",
                            path, info.filename)
                continue
            _check_zip_member_size(path, info)
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                raise InputError(f"corrupt zip member {path}:{info.filename}: {error}") from error
            yield _read_bytes(data, f"{path}:{info.filename}",
                              Path(info.filename).suffix.lower(), timezone, aliases)


def _check_zip_member_size(path: Path, info: zipfile.ZipInfo) -> None:
    """Raise InputError for a member too large, or compressed too well, to read in memory."""
    name = f"{path}:{info.filename}"
    if info.file_size > MAX_ZIP_MEMBER_BYTES:
        raise InputError(
            f"zip member {name} expands to {info.file_size:,} bytes, "
            f"over the {MAX_ZIP_MEMBER_BYTES:,}-byte limit; unzip it and pass the file"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > MIN_RATIO_CHECK_BYTES and ratio > MAX_ZIP_RATIO:
        raise InputError(
            f"zip member {name} expands {ratio:,.0f} times ({info.compress_size:,} to "
            f"{info.file_size:,} bytes), over the limit of {MAX_ZIP_RATIO} times for "
            "telemetry, which suggests mostly blank or repeated content; if the file is "
            "genuine, unzip it and pass the file"
        )


def decode_json_text(data: bytes, source: str) -> str:
    """Decode JSON bytes as UTF-8 (with or without BOM) or BOM-marked UTF-16/32.

    Raises:
        InputError: the bytes are in no such encoding.
    """
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                       (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(codec)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{source}: not UTF-8 text ({error}); JSON must be UTF-8 (RFC 8259)"
        ) from error


def _read_json_bytes(data: bytes, source: str, timezone, aliases) -> Part:
    """Parse a JSON array, one JSON object, or JSON Lines."""
    text = decode_json_text(data, source)
    stripped = text.lstrip()
    if not stripped:
        raise InputError(f"input is empty: {source}")
    if stripped[0] in "[{":
        try:
            decoded = json.loads(text)
        except RecursionError as error:
            raise InputError(f"{source}: JSON nested too deeply to parse") from error
        except ValueError as error:
            # JSONDecodeError, or a number over Python's digit limit for int
            # conversion (sys.get_int_max_str_digits()).
            if stripped[0] == "[":
                raise InputError(
                    f"{source}: invalid JSON array: {_json_error_detail(error)}"
                ) from error
            decoded = None  # several objects: JSON Lines
        if decoded is not None:
            messages = decoded if isinstance(decoded, list) else [decoded]
            readings, quarantine = parse_messages(messages, source, timezone=timezone,
                                                  aliases=aliases)
            return Part(readings, quarantine, source, "json",
                        lambda line: _encode_message(messages, line))
    return _read_json_lines(text, source, timezone, aliases)


def _json_error_detail(error: Exception) -> str:
    """Describe why json.loads failed, without Python's advice to call sys functions."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, json.JSONDecodeError):
        return str(error)
    # The int conversion limit: "Exceeds the limit (4300 digits) for integer
    # string conversion: value has 5000 digits; use sys.set_int_max_str_digits()..."
    return str(error).partition(";")[0]


def _encode_message(messages: list, line: int) -> str:
    try:
        return json.dumps(messages[line - 1])
    except (TypeError, ValueError, IndexError, RecursionError):
        return ""


def _read_json_lines(text: str, source: str, timezone, aliases) -> Part:
    # JSON Lines ends records at \n only: a U+2028 inside a string is data.
    messages, raws, lines, rejected = [], [], [], []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            messages.append(json.loads(line))
        except (ValueError, RecursionError) as error:
            rejected.append(quarantine_record(source, number, "invalid JSON", line,
                                              detail=_json_error_detail(error)))
            continue
        raws.append(line)
        lines.append(number)
    readings, quarantine = parse_messages(messages, source, raw=raws, timezone=timezone,
                                          aliases=aliases)
    # parse_messages numbers messages 1..n; map them back to file lines.
    line_of = np.asarray(lines, dtype="int64")
    if len(readings):
        readings["_line"] = line_of[readings["_line"].to_numpy() - 1]
    if len(quarantine):
        quarantine["line"] = line_of[quarantine["line"].to_numpy() - 1]
    raw_by_line = dict(zip(lines, raws))
    return Part(readings, pd.concat([quarantine, quarantine_frame(rejected)], ignore_index=True),
                source, "jsonl", lambda number: raw_by_line.get(number, ""))


def _read_parquet(path: Path, timezone, aliases) -> Part:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise InputError(f"invalid Parquet file {path}: {error}") from error
    missing = [name for name in ("device", "ts", *SENSORS) if name not in frame]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    frame = frame.reset_index(drop=True)
    lines = np.arange(len(frame), dtype="int64") + 1
    batch = Batch(frame, str(path), lines, None)
    readings = normalize(batch, timezone=timezone, aliases=aliases)

    def lookup(line: int) -> str:
        row = frame.iloc[line - 1]
        return ",".join(f"{name}={_plain(row[name])!r}" for name in frame.columns)

    return Part(readings, quarantine_frame(batch.rejected), str(path), "parquet", lookup)


def _plain(value):
    """Return numpy scalars as Python values, so raw text reads `0.5`, not `np.float64(0.5)`."""
    return value.item() if hasattr(value, "item") else value


def _conflict_records(dedupe: DedupeResult, raw_lookups: dict) -> pd.DataFrame:
    records = []
    for row in dedupe.conflicts.to_dict("records"):
        source, line = str(row.get("_source", "")), int(row.get("_line", 0))
        lookup = raw_lookups.get(source)
        raw = lookup(line) if lookup else ""
        records.append(quarantine_record(
            source, line, REASON_CONFLICT, raw,
            detail="same (device, ts) as an earlier reading with different values",
            device=row["device"], ts=row["ts"]))
    return quarantine_frame(records)


def summarize(inputs, readings, quarantine, duplicates: int,
              duplicates_by_device: dict[str, int]) -> dict:
    """Count rows read, kept, duplicated and quarantined, in all and per device."""
    kept_by_device = readings["device"].value_counts().to_dict()
    rejected_by_device = quarantine["device"].fillna("(unknown)").value_counts().to_dict()
    devices = sorted(set(kept_by_device) | set(rejected_by_device) | set(duplicates_by_device))
    by_device = {}
    for device in devices:
        kept = int(kept_by_device.get(device, 0))
        dup = int(duplicates_by_device.get(device, 0))
        bad = int(rejected_by_device.get(device, 0))
        by_device[str(device)] = {"read": kept + dup + bad, "kept": kept,
                                  "duplicates": dup, "quarantined": bad}
    reasons = quarantine["reason"].value_counts().sort_index().to_dict()
    summary = {
        "inputs": inputs,
        "read": int(len(readings) + duplicates + len(quarantine)),
        "kept": int(len(readings)),
        "duplicates": int(duplicates),
        "quarantined": int(len(quarantine)),
        "quarantined_by_reason": {str(k): int(v) for k, v in reasons.items()},
        "by_device": by_device,
    }
    if len(readings):
        summary["time_range"] = {
            "start": readings["time"].min().isoformat(),
            "end": readings["time"].max().isoformat(),
        }
    return summary


def _empty_readings() -> pd.DataFrame:
    from iot_telemetry.data.validate import to_readings

    empty = pd.DataFrame({name: pd.Series(dtype="object") for name in READING_COLUMNS})
    empty["ts"] = empty["ts"].astype("float64")
    return to_readings(empty)


def output_files(out: Path) -> dict[str, Path]:
    """Return the paths of the files `write_outputs` writes into `out`."""
    return {
        "readings": out / "readings.parquet",
        "quarantine": out / "quarantine.parquet",
        "summary": out / "ingest.json",
    }


def check_outputs(out: Path) -> None:
    """Raise InputError unless `write_outputs` can write into `out`."""
    for path in output_files(Path(out)).values():
        check_output_file(path)


def write_outputs(result: IngestResult, out: Path) -> dict[str, Path]:
    """Write readings.parquet, quarantine.parquet and ingest.json into `out`.

    Raises:
        InputError: a file cannot be written (the message names it).
    """
    paths = output_files(Path(out))
    # Dictionary encoding pays off only for the few distinct device ids; on
    # float columns pyarrow tries it and falls back, which triples write time.
    dictionary = ["device", "alias"]
    path = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = paths["readings"]
        result.readings.to_parquet(path, index=False, use_dictionary=dictionary)
        path = paths["quarantine"]
        result.quarantine.to_parquet(path, index=False)
        path = paths["summary"]
        path.write_text(json.dumps(result.summary, indent=2) + "\n")
    except OSError as error:
        raise write_failed(path, error) from error
    return paths


def load_readings(path: str | Path) -> pd.DataFrame:
    """Load a readings.parquet (or the folder holding it) with its dtypes.

    Raises:
        InputError: the file is missing or lacks a readings column.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "readings.parquet"
    if not path.is_file():
        raise InputError(f"readings not found: {path}; run `iot-telemetry ingest` first")
    frame = pd.read_parquet(path)
    missing = [name for name in READING_COLUMNS if name not in frame]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame[list(READING_COLUMNS)].sort_values(list(KEY), kind="stable").reset_index(
        drop=True
    )
