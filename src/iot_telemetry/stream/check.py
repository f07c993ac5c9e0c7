"""Loss accounting: compare an ingest folder with what was replayed into it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from iot_telemetry.data.columns import KEY
from iot_telemetry.errors import InputError
from iot_telemetry.stream.store import PART_PREFIX


@dataclass
class LossReport:
    """Counts of readings by (device, ts) key.

    `missing`: expected keys not stored; `extra`: stored keys not expected;
    `doubled`: stored rows beyond the first for a key (across all files).
    """

    expected: int
    stored: int
    missing: int
    extra: int
    doubled: int
    missing_keys: pd.DataFrame

    @property
    def ok(self) -> bool:
        """True when nothing is missing, extra or doubled."""
        return self.missing == 0 and self.extra == 0 and self.doubled == 0

    def to_markdown(self) -> str:
        """Render the counts as a Markdown table."""
        rows = [("expected readings", self.expected), ("stored readings", self.stored),
                ("missing", self.missing), ("extra", self.extra), ("doubled", self.doubled)]
        lines = ["| | count |", "|---|---:|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
        return "\n".join(lines)


def stored_keys(out: Path) -> pd.DataFrame:
    """Return (device, ts) of every row in the store's part files, repeats kept."""
    files = sorted(Path(out).rglob(f"{PART_PREFIX}*.parquet"))
    if not files:
        return pd.DataFrame({"device": pd.Series(dtype="string"),
                             "ts": pd.Series(dtype="float64")})
    return pd.concat([pd.read_parquet(path, columns=list(KEY)) for path in files],
                     ignore_index=True)


def compare_keys(expected: pd.DataFrame, stored: pd.DataFrame) -> LossReport:
    """Compare expected keys (each once) with stored keys (repeats allowed)."""
    expected = expected[list(KEY)].astype({"device": "string", "ts": "float64"})
    stored = stored[list(KEY)].astype({"device": "string", "ts": "float64"})
    doubled = int(stored.duplicated(list(KEY)).sum())
    unique = stored.drop_duplicates(list(KEY))
    merged = expected.merge(unique, on=list(KEY), how="outer", indicator=True)
    missing = merged.loc[merged["_merge"] == "left_only", list(KEY)]
    extra = int((merged["_merge"] == "right_only").sum())
    return LossReport(len(expected), len(unique), len(missing), extra, doubled,
                      missing.reset_index(drop=True))


def compare_capture(inputs: Sequence[str | Path], out: str | Path) -> LossReport:
    """Compare the readings the batch reader finds in `inputs` with the store.

    Raises:
        InputError: `out` does not exist or is not a folder, which would
            otherwise look like the loss of every reading.
    """
    from iot_telemetry.data.readers import read_inputs

    out = Path(out)
    if not out.exists():
        raise InputError(f"ingest output folder {out} not found; pass the --out folder "
                         "that `stream ingest` wrote to")
    if not out.is_dir():
        raise InputError(f"ingest output folder {out} is not a folder; pass the --out "
                         "folder that `stream ingest` wrote to")
    expected = read_inputs(list(inputs)).readings
    return compare_keys(expected, stored_keys(out))
