"""Writer for the raw Kaggle CSV format of the Environmental Sensor Telemetry file.

The format:

- a header row, then one row per reading in KAGGLE_COLUMNS order;
- every field, header included, double-quoted, and lines ending with LF;
- numbers written like Java's `Double.toString`: positional notation for
  1e-3 <= |x| < 1e7, otherwise `d.dddE<exp>`, so ts looks like
  `"1.5945120943859746E9"`;
- booleans as `"true"` / `"false"`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import BOOL_SENSORS, KAGGLE_COLUMNS

# Java's Double.toString writes positional notation inside this range and
# computerized scientific notation outside it.
_POSITIONAL_RANGE = (1e-3, 1e7)
_CHUNK_ROWS = 50_000


def java_double_string(value: float) -> str:
    """Format one float like Java's `Double.toString` (JDK 19 and later).

    The digits are the shortest that round-trip, which is what Python's repr
    produces, so `float(java_double_string(x)) == x` for every finite x.
    Before JDK 19 (JDK-4511638), Java sometimes printed one digit more; both
    forms parse to the same double.
    """
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    if _POSITIONAL_RANGE[0] <= magnitude < _POSITIONAL_RANGE[1]:
        # Python's repr also uses positional notation here, with the same digits.
        return repr(value)
    digits, exponent = _shortest_digits(magnitude)
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def _shortest_digits(magnitude: float) -> tuple[str, int]:
    """Return the significant digits of repr(magnitude) and the decimal exponent."""
    text = repr(magnitude)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return mantissa.replace(".", ""), int(exponent)
    whole, fraction = text.split(".")
    if whole != "0":
        digits = (whole + fraction).rstrip("0")
        return digits, len(whole) - 1
    stripped = fraction.lstrip("0")
    return stripped.rstrip("0"), -(len(fraction) - len(stripped) + 1)


def java_double_strings(values: np.ndarray) -> list[str]:
    """Format an array of floats with `java_double_string`, fast where repr suffices."""
    values = np.asarray(values, dtype="float64")
    magnitude = np.abs(values)
    positional = (magnitude >= _POSITIONAL_RANGE[0]) & (
        magnitude < _POSITIONAL_RANGE[1]
    )
    if positional.all():
        return list(map(repr, values.tolist()))
    return [
        repr(value) if plain else java_double_string(value)
        for value, plain in zip(values.tolist(), positional.tolist())
    ]


def format_kaggle_lines(rows: pd.DataFrame) -> str:
    """Return `rows` as raw Kaggle CSV body lines (no header), each ending in LF.

    Raises:
        ValueError: a boolean column contains missing values, which the raw
            format cannot represent.
    """
    columns = []
    for name in KAGGLE_COLUMNS:
        series = rows[name]
        if name == "device":
            columns.append(series.astype(str).tolist())
        elif name in BOOL_SENSORS:
            if series.isna().any():
                raise ValueError(
                    f"column {name} has missing values; the raw format has none"
                )
            flags = series.to_numpy(dtype=bool)
            columns.append(np.where(flags, "true", "false").tolist())
        else:
            columns.append(java_double_strings(series.to_numpy(dtype="float64")))
    template = ",".join('"%s"' for _ in KAGGLE_COLUMNS) + "\n"
    return "".join(template % fields for fields in zip(*columns))


def write_kaggle_csv(rows: pd.DataFrame, path: Path) -> None:
    """Write `rows` (KAGGLE_COLUMNS, in that order on disk) to `path` in the raw format.

    Rows are written in their frame order, in chunks so memory stays near the
    size of one chunk's text. The file appears under its name only when it is
    complete (written to a temporary sibling, then renamed).
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    header = ",".join(f'"{name}"' for name in KAGGLE_COLUMNS) + "\n"
    try:
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            handle.write(header)
            for begin in range(0, len(rows), _CHUNK_ROWS):
                handle.write(
                    format_kaggle_lines(rows.iloc[begin : begin + _CHUNK_ROWS])
                )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
