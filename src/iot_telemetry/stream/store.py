"""Parquet store of streamed readings, partitioned by UTC date and device.

Layout under the output folder::

    date=2020-07-13/device=0e%3A9c.../part-<ns>-<pid>-<n>.parquet

Each file contains full readings-table rows (device included, so no partition
discovery is needed). The device id is percent-encoded in the folder name
(colons too, and anything outside letters, digits, `.`, `_`, `-` and `~`), so
an id such as `../x` cannot escape the folder. An id whose encoded form is
longer than MAX_DEVICE_FOLDER_CHARS gets the first part of that form, `+`
and a hash of the whole id instead, so the folder name stays under the
255-byte limit of common file systems. Percent-encoding never outputs `+`,
so a shortened name cannot equal the full name of another id. Files are written atomically: a
hidden temporary file in the same folder, fsync, rename, fsync of the folder;
the batch reader skips hidden files, so a crash leaves no half-written data
in its view.

The store also answers "is this (device, ts) already stored, and with the
same values?" across restarts: it loads the ts and a hash of the sensor
values of a partition the first time a batch touches it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import KEY, READING_COLUMNS, SENSORS
from iot_telemetry.stream.journal import fsync_directory

log = logging.getLogger(__name__)

PART_PREFIX = "part-"
# Maximum length of a percent-encoded device id kept whole in a folder name.
# With the `device=` prefix that is 207 bytes, below the 255-byte file name
# limit of ext4, XFS and btrfs.
MAX_DEVICE_FOLDER_CHARS = 200
# A shortened name keeps this much of the encoded id, then `+` and the hash.
SHORTENED_PREFIX_CHARS = 96
HASH_HEX_DIGITS = 32


def device_folder_name(device: str) -> str:
    """Return the folder name part of a device id: percent-encoded, bounded.

    Ids whose encoded form fits in MAX_DEVICE_FOLDER_CHARS keep it whole.
    Longer ones become an encoded prefix, `+` and 128 bits of the SHA-256 of
    the id, so two ids share a folder only on a hash collision.
    """
    # surrogatepass: an id that is not valid Unicode still gets a name.
    encoded = device.encode("utf-8", errors="surrogatepass")
    escaped = urllib.parse.quote(encoded, safe="")
    if len(escaped) <= MAX_DEVICE_FOLDER_CHARS:
        return escaped
    prefix = escaped[:SHORTENED_PREFIX_CHARS]
    # Cut before an escape sequence split by the prefix length.
    split_escape = prefix.rfind("%", len(prefix) - 2)
    if split_escape != -1:
        prefix = prefix[:split_escape]
    digest = hashlib.sha256(encoded).hexdigest()[:HASH_HEX_DIGITS]
    return f"{prefix}+{digest}"


def partition_dir(root: Path, date: str, device: str) -> Path:
    """Return the folder of one (UTC date, device) partition."""
    return root / f"date={date}" / f"device={device_folder_name(device)}"


def value_hashes(readings: pd.DataFrame) -> np.ndarray:
    """Return a uint64 hash of each row's sensor values (NaN and NA hash alike)."""
    return pd.util.hash_pandas_object(readings[list(SENSORS)], index=False).to_numpy()


@dataclass
class StoreCheck:
    """A batch split against what is already stored."""

    new: pd.DataFrame
    exact_duplicates: int
    conflicts: pd.DataFrame


class ReadingStore:
    """Writes readings batches and remembers which keys are stored.

    Args:
        root: the output folder (a valid batch-reader input).
        max_cached_partitions: partitions whose keys stay in memory; the
            least recently used ones are dropped and reloaded from disk when
            touched again.
        compact_after_files: merge a partition's files into one once it has
            more than this many, so a long run at a low rate does not leave
            thousands of small files.
    """

    def __init__(self, root: Path, max_cached_partitions: int = 64,
                 compact_after_files: int = 16):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_cached_partitions = max_cached_partitions
        self.compact_after_files = compact_after_files
        self._index: OrderedDict[Path, dict[float, int]] = OrderedDict()
        self._sequence = 0

    def check(self, readings: pd.DataFrame) -> StoreCheck:
        """Split readings (each key once) into new rows, exact duplicates of
        stored rows (dropped, counted) and conflicts (same key, other values).
        """
        if readings.empty:
            return StoreCheck(readings, 0, readings.iloc[0:0])
        hashes = value_hashes(readings)
        ts_values = readings["ts"].to_numpy(dtype="float64")
        stored = np.zeros(len(readings), dtype=bool)
        same = np.zeros(len(readings), dtype=bool)
        for folder, positions in self.partitions(readings).items():
            index = self._load_index(folder)
            if not index:
                continue
            for position in positions:
                known = index.get(float(ts_values[position]))
                if known is not None:
                    stored[position] = True
                    same[position] = known == hashes[position]
        return StoreCheck(
            readings.loc[~stored],
            int((stored & same).sum()),
            readings.loc[stored & ~same],
        )

    def write(self, readings: pd.DataFrame) -> list[Path]:
        """Write new readings, one atomic file per partition; return the files.

        The caller must pass only rows that `check` found new.
        """
        written = []
        if readings.empty:
            return written
        hashes = value_hashes(readings)
        for folder, positions in self.partitions(readings).items():
            index = self._load_index(folder)
            part = readings.iloc[positions].sort_values("ts", kind="stable")
            written.append(self._write_file(folder, part))
            for ts, value_hash in zip(readings["ts"].to_numpy()[positions],
                                      hashes[positions], strict=True):
                index[float(ts)] = int(value_hash)
            if len(self._part_files(folder)) > self.compact_after_files:
                self.compact(folder)
        return written

    def compact(self, folder: Path) -> Path:
        """Merge a partition's files into one file, atomically replacing them.

        A crash after the merged file is renamed but before the old files are
        deleted leaves exact duplicates, which the batch reader drops.
        """
        files = self._part_files(folder)
        merged = pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)
        merged = merged.drop_duplicates(list(KEY)).sort_values("ts", kind="stable")
        target = self._write_file(folder, merged)
        for path in files:
            path.unlink()
        fsync_directory(folder)
        log.info("compacted %d files into %s (%d readings)", len(files), target,
                 len(merged))
        return target

    def partitions(self, readings: pd.DataFrame) -> dict[Path, np.ndarray]:
        """Group rows by partition folder; return folder -> row positions."""
        keys = pd.DataFrame({
            "date": readings["time"].dt.strftime("%Y-%m-%d").to_numpy(),
            "device": readings["device"].astype(str).to_numpy(),
        })
        groups = keys.groupby(["date", "device"], sort=True).indices
        return {
            partition_dir(self.root, date, device): positions
            for (date, device), positions in groups.items()
        }

    def _load_index(self, folder: Path) -> dict[float, int]:
        index = self._index.get(folder)
        if index is not None:
            self._index.move_to_end(folder)
            return index
        index = {}
        files = self._part_files(folder)
        if files:
            stored = pd.concat(
                [pd.read_parquet(path, columns=["ts", *SENSORS]) for path in files],
                ignore_index=True,
            ).drop_duplicates("ts")
            index = dict(zip(stored["ts"].astype(float), map(int, value_hashes(stored)),
                             strict=True))
        self._index[folder] = index
        while len(self._index) > self.max_cached_partitions:
            self._index.popitem(last=False)
        return index

    def _part_files(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted(folder.glob(f"{PART_PREFIX}*.parquet"))

    def _write_file(self, folder: Path, readings: pd.DataFrame) -> Path:
        new_folder = not folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if new_folder:
            fsync_directory(folder.parent)
            fsync_directory(folder.parent.parent)
        self._sequence += 1
        name = f"{PART_PREFIX}{time.time_ns()}-{os.getpid()}-{self._sequence}.parquet"
        target = folder / name
        temporary = folder / f".{name}.tmp"
        table = readings[list(READING_COLUMNS)].reset_index(drop=True)
        with open(temporary, "wb") as handle:
            table.to_parquet(handle, index=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        fsync_directory(folder)
        return target
