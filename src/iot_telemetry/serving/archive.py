"""Verify a model archive against its manifest and unpack it like the container.

The manifest (written by the package stage) is JSON next to the archive::

    {"archive": "model.tar.gz", "sha256": "<hex>", "bytes": 123456,
     "files": [{"path": "code/inference.py", "sha256": "<hex>", "bytes": 2100}, ...],
     ...}

SageMaker extracts model.tar.gz into /opt/ml/model, so model files sit at the
folder root and the handler at code/inference.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import tarfile
from pathlib import Path
from types import ModuleType

from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)

ARCHIVE_NAME = "model.tar.gz"
MANIFEST_NAME = "manifest.json"
HANDLER_PATH = "code/inference.py"
CODE_DIR = "code"

_CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def locate_package(path: str | Path) -> tuple[Path, Path]:
    """Return (archive, manifest) for a package folder or an archive path.

    A folder must contain model.tar.gz and manifest.json; for an archive
    path the manifest is the manifest.json beside it.

    Raises:
        InputError: either file is missing.
    """
    path = Path(path)
    is_archive = path.is_file() or path.name.endswith(".tar.gz")
    archive = path if is_archive else path / ARCHIVE_NAME
    manifest = archive.parent / MANIFEST_NAME
    for needed in (archive, manifest):
        if not needed.is_file():
            raise InputError(
                f"{needed} not found; build the package with `iot-telemetry package`"
                " (DVC stage `package`) or pass --model PATH to a package folder"
            )
    return archive, manifest


def verify_archive(archive: Path, manifest: Path) -> dict:
    """Check the archive's size and sha256 against the manifest.

    Returns:
        The manifest as a dict.

    Raises:
        InputError: the manifest is unreadable or the archive differs from it,
            so an altered or truncated archive is never unpacked or imported.
    """
    try:
        record = json.loads(Path(manifest).read_text(encoding="utf-8"))
        expected = record["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"invalid manifest {manifest}: {error}") from None
    actual = sha256_file(archive)
    if actual != expected:
        raise InputError(
            f"{archive} has sha256 {actual} but {manifest} records {expected}:"
            " the archive was altered or belongs to another build; rebuild it with"
            " `iot-telemetry package`"
        )
    log.info("verified %s (sha256 %s)", archive, actual)
    return record


def unpack_archive(archive: Path, model_dir: Path) -> Path:
    """Extract the archive into model_dir, rejecting unsafe members.

    Returns:
        model_dir, now holding the model files and code/inference.py.

    Raises:
        InputError: a member would land outside model_dir (absolute path,
            "..", a link or device file) or the handler is missing.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        try:
            tar.extractall(model_dir, filter="data")
        except tarfile.FilterError as error:
            raise InputError(f"{archive} has an unsafe member: {error}") from None
    if not (model_dir / HANDLER_PATH).is_file():
        raise InputError(f"{archive} has no {HANDLER_PATH}")
    return model_dir


def import_handler(model_dir: Path, module_name: str = "inference") -> ModuleType:
    """Import code/inference.py from an unpacked archive by file path.

    In a process that already imported ``iot_telemetry`` (the project
    environment), the handler uses that package. In a fresh interpreter it
    uses the copy vendored under code/.
    """
    path = Path(model_dir) / HANDLER_PATH
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
