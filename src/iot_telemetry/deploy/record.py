"""reports/deploy.json, the deployment record: what, from which code and data.

The record contains names, hashes, versions and smoke-test numbers only. No
credential, key or environment value is written, and `write_record` raises
if a value looks like an AWS secret before anything reaches the disk.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import subprocess
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

# dvc.lock outputs that identify the data a deployed model was trained on.
DATA_OUTPUTS = ("data/interim/readings.parquet",)

# An AWS access key id or a 40-character secret access key.
_SECRET_PATTERNS = (
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),
)


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def code_version(root: Path, manifest: dict) -> dict:
    """Return the git commit (None without commits), dirty flag and archive code hash."""
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git(root, "rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "archive_code_sha256": manifest.get("code_sha256"),
    }


def data_version(root: Path, manifest: dict) -> dict:
    """Return the model card's training data and the dvc.lock hashes of the data."""
    version: dict = {}
    training = manifest.get("model", {}).get("training")
    if training:
        version["training"] = training
    lock = root / "dvc.lock"
    if lock.is_file():
        outs = {}
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []):
                if out.get("path") in DATA_OUTPUTS:
                    outs[out["path"]] = out.get("md5")
        version["dvc_lock"] = outs
    return version


def archive_summary(archive: Path, manifest: dict, root: Path) -> dict:
    """Return the archive's path (relative to root when inside it), sha256 and size."""
    try:
        shown = str(archive.resolve().relative_to(root.resolve()))
    except ValueError:
        shown = str(archive)
    return {"path": shown, "sha256": manifest["sha256"], "bytes": manifest.get("bytes")}


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 with a Z suffix, to the second."""
    return (
        dt.datetime.now(dt.timezone.utc)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


def find_secrets(text: str) -> list[str]:
    """Return substrings of `text` shaped like AWS access key ids or secret keys."""
    key_id, secret = _SECRET_PATTERNS
    found = [match.group(0) for match in key_id.finditer(text)]
    # A random 40-character secret key almost always mixes upper case, lower
    # case and digits; hex hashes and lower-case paths do not.
    for match in secret.finditer(text):
        value = match.group(0)
        if all(re.search(kind, value) for kind in ("[A-Z]", "[a-z]", "[0-9]")):
            found.append(value)
    return found


def write_record(path: Path, record: dict) -> Path:
    """Write the record as indented JSON.

    Raises:
        ValueError: a value looks like an AWS credential; nothing is written.
    """
    text = json.dumps(record, indent=2, sort_keys=False) + "\n"
    if find_secrets(text):
        raise ValueError(
            f"refusing to write {path}: a value looks like an AWS access key or secret"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    log.info("wrote the deployment record %s", path)
    return path
