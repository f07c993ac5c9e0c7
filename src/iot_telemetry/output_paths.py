"""Check that a command can write its output before it does the work."""

from __future__ import annotations

import tempfile
from pathlib import Path

from iot_telemetry.errors import InputError


def check_output_file(path: Path, option: str = "--out") -> None:
    """Raise InputError unless a file can be written at `path`.

    Creates missing parent folders, then creates and deletes a temporary
    file next to `path`, so a read-only file system or a folder without
    write permission fails here instead of after the command's work.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"cannot write {option} {path}: it is a folder; give a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(
                    f"cannot write {option} {path}: {parent} is a file, not a folder"
                )
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-check-"):
            pass
    except OSError as error:
        # strerror leaves out the probe file's random name.
        reason = error.strerror or str(error)
        raise InputError(f"cannot write {option} {path}: {reason}") from error


def write_failed(path: Path, error: OSError, option: str = "--out") -> InputError:
    """Return the InputError for an output write that failed after the checks."""
    return InputError(f"cannot write {option} {path}: {error}")
