"""Read CSV exports of the Kaggle table, keeping each row's line and raw text.

pandas' C parser does the parsing. This module adds three things that a
quarantine needs and pandas does not report. These are the line each row
came from (also when a quoted field spans lines), the raw text of a rejected
row, and the rows with too many or too few fields.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import re
import warnings

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import KAGGLE_COLUMNS, SENSORS
from iot_telemetry.data.validate import Batch, normalize, quarantine_frame, quarantine_record
from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)

EXTRA_COLUMN = "__extra_field__"
INDEX_COLUMN_NAMES = {"", "index", "unnamed: 0", "id", "row"}
REQUIRED = ("ts", "device", *SENSORS)
REASON_FIELD_COUNT = "wrong number of fields"
# pandas' C parser ends a line at \r\n, \n or a lone \r, and so does this split.
LINE_BREAK = re.compile(r"\r\n|\n|\r")


class SourceText:
    """The decoded text of a CSV source, split into lines on first use."""

    def __init__(self, data: bytes):
        self._data = data
        self._lines: list[str] | None = None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            text = self._data.decode("utf-8-sig", errors="replace")
            self._lines = LINE_BREAK.split(text)
        return self._lines

    def span(self, first: int, last: int) -> str:
        """Return lines `first` to `last` (1-based, inclusive) joined by newlines."""
        return "\n".join(self.lines[first - 1 : last])


class RowText:
    """Raw text of each parsed row, by row position, for `validate.Batch`."""

    def __init__(self, text: SourceText, starts: np.ndarray, ends: np.ndarray):
        self.text, self.starts, self.ends = text, starts, ends

    def __getitem__(self, row: int) -> str:
        return self.text.span(int(self.starts[row]), int(self.ends[row]))

    def by_line(self, line: int) -> str:
        """Return the raw text of the row that starts on `line`."""
        position = int(np.searchsorted(self.starts, line))
        if position < len(self.starts) and self.starts[position] == line:
            return self[position]
        return self.text.span(line, line)


def count_lines(data: bytes) -> int:
    """Count lines as pandas does: \r\n, \n and lone \r end a line."""
    breaks = data.count(b"\n")
    if b"\r" in data:
        breaks += data.count(b"\r") - data.count(b"\r\n")
    return breaks + (0 if not data or data.endswith((b"\n", b"\r")) else 1)


def read_csv(data: bytes, name: str, timezone: str | None = None,
             aliases: dict[str, str] | None = None):
    """Read one CSV export into (readings, quarantine, raw_lookup).

    Readings are not yet deduplicated. `raw_lookup(line)` returns the raw
    text of the row starting on that line, for later quarantine records.

    Raises:
        InputError: no header, duplicate column names, a missing required
            column, or text that pandas cannot parse as CSV at all.
    """
    text = SourceText(data)
    names, has_header = _header(data, name)
    frame, bad_lines = _parse(data, name, names, has_header)
    starts, ends = _row_spans(data, text, len(frame), bad_lines, has_header, name)
    rows = RowText(text, starts, ends)
    rejected = [
        quarantine_record(name, line, REASON_FIELD_COUNT, rows.by_line(line),
                          detail=f"expected {len(names)} fields")
        for line in bad_lines
    ]

    # Rows with one field too many fill the spare column; blank lines are no rows.
    extra = frame.pop(EXTRA_COLUMN).notna().to_numpy()
    blank = _blank_rows(frame, rows)
    short = _short_rows(frame, rows, len(names), ~(extra | blank))
    for position in np.flatnonzero(extra | short):
        found = "more" if extra[position] else "fewer"
        rejected.append(quarantine_record(name, int(starts[position]), REASON_FIELD_COUNT,
                                          rows[position],
                                          detail=f"{found} than the {len(names)} header fields"))
    if blank.any():
        log.info("%s: skipped %d blank line(s)", name, int(blank.sum()))

    keep = ~(extra | blank | short)
    frame = _check_columns(frame.loc[keep].reset_index(drop=True), name)
    kept_rows = RowText(text, starts[keep], ends[keep])
    batch = Batch(frame, name, starts[keep], kept_rows, rejected)
    readings = normalize(batch, timezone=timezone, aliases=aliases)
    return readings, quarantine_frame(batch.rejected), rows.by_line


def _header(data: bytes, name: str) -> tuple[list[str], bool]:
    """Return (column names, whether the first line is a header).

    A first line of nine fields that names no required column and starts
    with a number is data in the Kaggle column order.
    """
    head = data[:65536].decode("utf-8-sig", errors="replace")
    first = LINE_BREAK.split(head, maxsplit=1)[0]
    fields = next(csv.reader([first]), [])
    if not any(field.strip() for field in fields):
        raise InputError(f"input is empty or its first line is blank: {name}")
    normalized = [field.strip().lower() for field in fields]
    looks_like_data = (
        len(fields) == len(KAGGLE_COLUMNS)
        and not set(normalized) & {"ts", "device", "temp"}
        and re.match(r"^[\d.+-]", fields[0].strip()) is not None
    )
    if looks_like_data:
        log.info("%s: no header line; reading columns in the Kaggle order", name)
        return list(KAGGLE_COLUMNS), False
    duplicates = sorted({n for n in normalized if normalized.count(n) > 1})
    if duplicates:
        raise InputError(
            f"{name}: duplicate column name(s) {', '.join(map(repr, duplicates))} in the "
            "header; rename or remove them"
        )
    return fields, True


def _parse(data: bytes, name: str, names: list[str], has_header: bool):
    """Run pandas' parser; return (frame, sorted lines it skipped)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pd.read_csv(
                io.BytesIO(data),
                header=None,
                skiprows=1 if has_header else 0,
                names=[*names, EXTRA_COLUMN],
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
                on_bad_lines="warn",
                encoding="utf-8-sig",
                encoding_errors="replace",
            )
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise InputError(f"{name}: malformed CSV: {error}") from error
    bad = []
    for warning in caught:
        bad += [int(n) for n in re.findall(r"Skipping line (\d+)", str(warning.message))]
    return frame, sorted(bad)


def _row_spans(data: bytes, text: SourceText, count: int, bad_lines: list[int],
               has_header: bool, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return each parsed row's first and last line (1-based).

    When every record is one line (the usual case) this is arithmetic on the
    line count. Otherwise a quoted field spans lines, so the csv module finds
    where each record starts.
    """
    header = 1 if has_header else 0
    if count_lines(data) == count + header + len(bad_lines):
        rows = np.arange(count, dtype="int64")
        if bad_lines:
            # Row i comes after the bad lines that precede `i` good rows.
            bad = np.asarray(bad_lines, dtype="int64")
            good_before_bad = bad - np.arange(len(bad)) - header - 1
            rows = rows + np.searchsorted(good_before_bad, rows, side="right")
        starts = rows + header + 1
        return starts, starts.copy()

    spans = []
    joined = "\n".join(text.lines)
    reader = csv.reader(io.StringIO(joined, newline=""))
    end = 0
    with _csv_field_limit(len(joined)):
        for _ in reader:
            spans.append((end + 1, reader.line_num))
            end = reader.line_num
    skipped = set(bad_lines)
    spans = [span for span in spans[header:] if span[0] not in skipped]
    if len(spans) != count:
        # NOTE: pandas and the csv module disagree on this file's records, so
        # quarantine line numbers fall back to one line per row.
        log.warning("%s: could not map rows to lines exactly (%d rows, %d records)",
                    name, count, len(spans))
        starts = np.arange(count, dtype="int64") + header + 1
        return starts, starts.copy()
    array = np.asarray(spans, dtype="int64").reshape(-1, 2)
    return array[:, 0], array[:, 1]


def _blank_rows(frame: pd.DataFrame, rows: RowText) -> np.ndarray:
    """Mark rows that pandas made from blank or whitespace-only lines."""
    empty = frame.isna().all(axis=1).to_numpy().copy()
    for position in np.flatnonzero(empty):
        empty[position] = rows[position].strip() == ""
    return empty


def _short_rows(frame: pd.DataFrame, rows: RowText, expected: int,
                candidates: np.ndarray) -> np.ndarray:
    """Mark rows with fewer fields than the header.

    pandas fills missing trailing fields with NaN, which for a boolean column
    would pass as a missing value, so rows whose last field is missing are
    re-split with the csv module to count their fields.
    """
    short = np.zeros(len(frame), dtype=bool)
    if not len(frame.columns):
        return short
    last_missing = frame.iloc[:, -1].isna().to_numpy() & candidates
    for position in np.flatnonzero(last_missing):
        text = rows[position]
        with _csv_field_limit(len(text)):
            fields = next(csv.reader([text]), [])
        short[position] = len(fields) < expected
    return short


@contextlib.contextmanager
def _csv_field_limit(size: int):
    """Let the csv module read fields of up to `size` characters, then restore its limit.

    pandas has already parsed the same text in memory, so the csv module's
    default limit (131,072 characters) would only turn a long field into a
    csv.Error. The limit is process-wide, so concurrent csv readers in other
    threads see the raised value while this runs.
    """
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, size))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _check_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Lower-case the header, drop an index column, and check required columns."""
    frame.columns = [str(name).strip().strip('"').lower() for name in frame.columns]
    first = frame.columns[0] if len(frame.columns) else None
    if first in INDEX_COLUMN_NAMES or (first or "").startswith("unnamed:"):
        frame = frame.drop(columns=first)
    missing = [name for name in REQUIRED if name not in frame.columns]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {', '.join(missing)}; found "
            f"{', '.join(frame.columns)}; expected {', '.join(REQUIRED)}"
        )
    extra = [name for name in frame.columns if name not in (*REQUIRED, "alias")]
    if extra:
        log.info("%s: ignored column(s) %s", source, ", ".join(extra))
    return frame
