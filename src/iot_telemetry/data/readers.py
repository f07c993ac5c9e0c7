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

import csv
import io
import json
import logging
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import KEY, READING_COLUMNS, SENSORS
from iot_telemetry.data.messages import parse_messages
from iot_telemetry.data.validate import (
    PROVENANCE,
    REASON_CONFLICT,
    Batch,
    deduplicate,
    normalize,
    quarantine_frame,
    quarantine_record,
)
from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)

INDEX_COLUMN_NAMES = {"", "index", "unnamed: 0", "id", "row"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
EXTRA_COLUMN = "__extra_field__"


@dataclass
class IngestResult:
    """Validated readings, rejected rows and the counts of one ingest."""

    readings: pd.DataFrame
    quarantine: pd.DataFrame
    summary: dict


class LazyLines:
    """A text file's lines, read only when a rejected row needs its raw text.

    Indexing by row position returns that row's line; `line(n)` returns line n
    of the file (1-based).
    """

    def __init__(self, read_text, row_lines: np.ndarray):
        self._read_text = read_text
        self._row_lines = row_lines
        self._lines: list[str] | None = None

    def __getitem__(self, row: int) -> str:
        return self.line(int(self._row_lines[row]))

    def line(self, number: int) -> str:
        if self._lines is None:
            self._lines = self._read_text().splitlines()
        index = int(number) - 1
        return self._lines[index] if 0 <= index < len(self._lines) else ""


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
        InputError: a path is missing, empty, of an unknown kind, or lacks a
            required column.
    """
    parts, rejected, inputs = [], [], []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(f"input not found: {path}")
        for readings, quarantine, kind in _read_path(path, timezone, aliases):
            parts.append(readings)
            rejected.append(quarantine)
            inputs.append({"path": str(path), "format": kind,
                           "rows": int(len(readings) + len(quarantine))})

    readings = pd.concat(parts, ignore_index=True) if parts else _empty_readings()
    quarantine = pd.concat(rejected, ignore_index=True) if rejected else quarantine_frame([])
    if aliases and len(quarantine):
        quarantine["device"] = quarantine["device"].replace(aliases)

    dedupe = deduplicate(readings)
    conflicts = _conflict_records(dedupe.conflicts)
    quarantine = pd.concat([quarantine, conflicts], ignore_index=True)
    kept = dedupe.readings.drop(columns=list(PROVENANCE), errors="ignore")
    summary = summarize(inputs, kept, quarantine, dedupe.exact_duplicates,
                        dedupe.duplicates_by_device)
    log.info(
        "read %d rows: kept %d, %d exact duplicates, %d quarantined",
        summary["read"], summary["kept"], summary["duplicates"], summary["quarantined"],
    )
    return IngestResult(kept, quarantine.reset_index(drop=True), summary)


def _read_path(path: Path, timezone, aliases):
    """Yield (readings, quarantine, kind) for each part of one input path."""
    if path.is_dir():
        yield from _read_folder(path, timezone, aliases)
        return
    if path.stat().st_size == 0:
        raise InputError(f"input is empty: {path}")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        yield from _read_zip(path, timezone, aliases)
    elif suffix in JSON_SUFFIXES:
        yield (*_read_json_bytes(path.read_bytes(), str(path), timezone, aliases), "json")
    elif suffix == ".parquet":
        yield (*_read_parquet(path, timezone, aliases), "parquet")
    else:
        yield (*read_csv(path, timezone, aliases), "csv")


def _read_folder(path: Path, timezone, aliases):
    files = sorted(
        file for file in path.rglob("*.parquet")
        if not file.name.startswith(("quarantine", ".")) and ".tmp" not in file.name
    )
    if not files:
        raise InputError(f"no Parquet files in folder {path}")
    for file in files:
        yield (*_read_parquet(file, timezone, aliases), "parquet")


def _read_zip(path: Path, timezone, aliases):
    with zipfile.ZipFile(path) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if not members:
            raise InputError(f"zip archive has no files: {path}")
        for info in members:
            source = f"{path}:{info.filename}"
            data = archive.read(info)
            suffix = Path(info.filename).suffix.lower()
            if suffix in JSON_SUFFIXES:
                yield (*_read_json_bytes(data, source, timezone, aliases), "json")
            elif suffix == ".csv":
                yield (*read_csv(io.BytesIO(data), timezone, aliases, source_name=source), "csv")
            else:
                log.warning("skipped zip member %s: not .json, .jsonl, .ndjson or .csv",
                            source)


def _read_json_bytes(data: bytes, source: str, timezone, aliases):
    """Parse a JSON array, one object, or JSON Lines."""
    text = data.decode("utf-8-sig")
    stripped = text.lstrip()
    if not stripped:
        raise InputError(f"input is empty: {source}")
    if stripped[0] == "[":
        try:
            messages = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{source}: invalid JSON array: {error}") from error
        return parse_messages(messages, source, first_line=1, timezone=timezone,
                              aliases=aliases)
    return _read_json_lines(text, source, timezone, aliases)


def _read_json_lines(text: str, source: str, timezone, aliases):
    messages, raws, lines, rejected = [], [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages.append(json.loads(line))
        except json.JSONDecodeError as error:
            rejected.append(quarantine_record(source, number, "invalid JSON", line,
                                              detail=str(error)))
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
    return readings, pd.concat([quarantine, quarantine_frame(rejected)], ignore_index=True)


def read_csv(source, timezone=None, aliases=None, source_name: str | None = None):
    """Read one CSV export into (readings, quarantine), not yet deduplicated.

    Line numbers assume one row per line (no newlines inside quoted fields).
    Rows with more fields than the header are quarantined; rows with fewer
    get missing values and are quarantined by the value checks.
    """
    name = source_name or str(source)
    header = _read_header(source, name)
    bad_lines: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # One spare column catches rows with one field too many; pandas would
        # otherwise take the first column as an index. Longer rows are skipped
        # with a warning that names their line.
        frame = pd.read_csv(
            source,
            header=None,
            skiprows=1,
            names=[*header, EXTRA_COLUMN],
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            on_bad_lines="warn",
            encoding_errors="replace",
        )
    for warning in caught:
        bad_lines += [int(n) for n in re.findall(r"Skipping line (\d+)", str(warning.message))]

    lines = _row_lines(len(frame), sorted(bad_lines))
    one_too_many = frame.pop(EXTRA_COLUMN).notna().to_numpy()
    raw = LazyLines(lambda: _read_text(source), lines)
    rejected = [
        quarantine_record(name, number, "wrong number of fields", raw.line(number),
                          detail=f"expected {len(header)} fields")
        for number in sorted([*bad_lines, *lines[one_too_many].tolist()])
    ]
    frame = _normalize_header(frame.loc[~one_too_many].reset_index(drop=True), name)
    lines = lines[~one_too_many]
    batch = Batch(frame, name, lines, LazyLines(raw._read_text, lines), rejected)
    readings = normalize(batch, timezone=timezone, aliases=aliases)
    return readings, quarantine_frame(batch.rejected)


def _read_header(source, name: str) -> list[str]:
    """Return the CSV header's field names, unquoted."""
    if isinstance(source, io.BytesIO):
        first = source.getvalue().split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
    else:
        with open(source, encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline()
    fields = next(csv.reader([first.strip("\r\n")]), [])
    if not any(field.strip() for field in fields):
        raise InputError(f"input is empty or has no header line: {name}")
    return fields


def _read_text(source) -> str:
    if isinstance(source, io.BytesIO):
        return source.getvalue().decode("utf-8", errors="replace")
    return Path(source).read_text(encoding="utf-8", errors="replace")


def _row_lines(count: int, bad_lines: list[int]) -> np.ndarray:
    """Map data rows to file lines: the header is line 1, skipped lines shift rows."""
    lines = np.arange(count, dtype="int64") + 2
    for bad in bad_lines:
        lines[lines >= bad] += 1
    return lines


def _normalize_header(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Lower-case the header, drop an index column, and check required columns."""
    frame.columns = [str(name).strip().strip('"').lower() for name in frame.columns]
    first = frame.columns[0] if len(frame.columns) else None
    if first in INDEX_COLUMN_NAMES or (first or "").startswith("unnamed:"):
        frame = frame.drop(columns=first)
    required = ["ts", "device", *SENSORS]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)}; found "
            f"{', '.join(frame.columns)}; expected {', '.join(required)}"
        )
    extra = [name for name in frame.columns if name not in (*required, "alias")]
    if extra:
        log.info("%s: ignored column(s) %s", source, ", ".join(extra))
    return frame


def _read_parquet(path: Path, timezone, aliases):
    frame = pd.read_parquet(path)
    missing = [name for name in ("device", "ts", *SENSORS) if name not in frame]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    frame = frame.reset_index(drop=True)
    lines = np.arange(len(frame), dtype="int64") + 1
    batch = Batch(frame, str(path), lines, None)
    readings = normalize(batch, timezone=timezone, aliases=aliases)
    return readings, quarantine_frame(batch.rejected)


def _conflict_records(conflicts: pd.DataFrame) -> pd.DataFrame:
    records = []
    for row in conflicts.to_dict("records"):
        fields = {name: row[name] for name in ("device", "ts", *SENSORS)}
        raw = ",".join(f"{name}={value!r}" for name, value in fields.items())
        records.append(quarantine_record(
            str(row.get("_source", "")), int(row.get("_line", 0)),
            REASON_CONFLICT, raw, detail="same (device, ts) as an earlier reading "
            "with different values", device=row["device"], ts=row["ts"]))
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


def write_outputs(result: IngestResult, out: Path) -> dict[str, Path]:
    """Write readings.parquet, quarantine.parquet and ingest.json into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "readings": out / "readings.parquet",
        "quarantine": out / "quarantine.parquet",
        "summary": out / "ingest.json",
    }
    # Dictionary encoding pays off only for the few distinct device ids; on
    # float columns pyarrow tries it and falls back, which triples write time.
    dictionary = ["device", "alias"]
    result.readings.to_parquet(paths["readings"], index=False, use_dictionary=dictionary)
    result.quarantine.to_parquet(paths["quarantine"], index=False)
    paths["summary"].write_text(json.dumps(result.summary, indent=2) + "\n")
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
