"""Project-root discovery, so notebooks and tests resolve paths the same way.

nbval and papermill run a notebook with its own folder as the working
directory, so relative paths are resolved from the project root instead.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_MARKER = "dvc.yaml"


def project_root(start: Path | None = None) -> Path:
    """Return the nearest folder at or above `start` that contains dvc.yaml.

    `IOT_TELEMETRY_ROOT` overrides the search. Raises FileNotFoundError when no
    folder up to the file-system root contains dvc.yaml.
    """
    override = os.environ.get("IOT_TELEMETRY_ROOT")
    if override:
        return Path(override).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ROOT_MARKER).is_file():
            return folder
    raise FileNotFoundError(
        f"no {ROOT_MARKER} found in {here} or any parent folder; run from inside "
        "the project or set IOT_TELEMETRY_ROOT"
    )


def resolve(path: str | Path, root: Path | None = None) -> Path:
    """Resolve a relative path against the project root; absolute paths pass."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return (root or project_root()) / path
