"""Copies of the project for smoke runs and benchmarks of the whole pipeline.

A copy contains the files git tracks, with their uncommitted changes, in a
fresh git repository, so `dvc repro` there cannot touch the original's
outputs or cache. Untracked files are left out: they may be pipeline
outputs, which DVC refuses to write over when git tracks them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


def tracked_files(root: Path) -> list[Path]:
    """Return the files git tracks under `root` that exist in the work tree."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "-z"],
        cwd=root, check=True, capture_output=True,
    ).stdout.decode()
    return [Path(name) for name in listing.split("\0") if name and (root / name).is_file()]


def copy_project(root: Path, dest: Path, params: dict | None = None) -> Path:
    """Copy the project into `dest` as a new git repository and return `dest`.

    `params` overrides params.yaml keys, as {section: {key: value}}.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for relative in tracked_files(root):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    if params:
        override_params(dest / "params.yaml", params)
    env = {**os.environ, "GIT_AUTHOR_NAME": "sandbox", "GIT_AUTHOR_EMAIL": "sandbox@localhost",
           "GIT_COMMITTER_NAME": "sandbox", "GIT_COMMITTER_EMAIL": "sandbox@localhost"}
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", "sandbox copy"]):
        subprocess.run(command, cwd=dest, check=True, env=env, capture_output=True)
    return dest


def override_params(path: Path, overrides: dict) -> None:
    """Update params.yaml sections in place with the given keys."""
    params = yaml.safe_load(path.read_text())
    for section, values in overrides.items():
        params.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
