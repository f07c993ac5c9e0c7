"""Build models/package/model.tar.gz in the SageMaker scikit-learn layout.

Archive layout (extracted by SageMaker into /opt/ml/model)::

    model_card.json, <model files>      every file of the selected model folder
    code/inference.py                    the handler functions
    code/iot_telemetry/...               the project modules the handler imports

The archive must start on the sklearn 1.9-0 image with no network, so no
requirements.txt is shipped and every vendored module may import only the
standard library and packages that image has (ALLOWED_THIRD_PARTY). The
module list is found by following the imports, including those inside
functions, from the serving entry modules.

The archive is byte-reproducible: members are sorted, with fixed owner,
mode and mtime, and gzip carries no name or time stamp, so the same inputs
give the same sha256.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import logging
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import iot_telemetry
from iot_telemetry.errors import InputError
from iot_telemetry.serving.archive import (
    ARCHIVE_NAME,
    CODE_DIR,
    HANDLER_PATH,
    MANIFEST_NAME,
    sha256_file,
)

log = logging.getLogger(__name__)

PACKAGE_NAME = "iot_telemetry"
# Modules the archive's code starts from: the handler's delegate, the local
# server's WSGI app and gunicorn entry point, and the model loader that
# handler.model_fn imports.
ENTRY_MODULES = (
    "iot_telemetry.serving.handler",
    "iot_telemetry.serving.wsgi",
    "iot_telemetry.serving.localserver",
    "iot_telemetry.anomaly.model",
)
HANDLER_SOURCE = "serving/inference.py"
SCHEMA_GLOB = "serving/schemas/*.json"

# Third-party packages on the sklearn 1.9-0 image that vendored code may use.
# gunicorn is the image's server (used here by the local endpoint only);
# sagemaker_containers is the image's serving toolkit.
ALLOWED_THIRD_PARTY = frozenset(
    {
        "numpy",
        "pandas",
        "scipy",
        "sklearn",
        "joblib",
        "gunicorn",
        "sagemaker_containers",
    }
)

CONTAINER = {
    "framework": "sklearn",
    "framework_version": "1.9-0",
    "python": "3.12",
    "packages": {
        "scikit-learn": "1.9.0",
        "pandas": "2.2.3",
        "numpy": "2.5.1",
        "scipy": "1.18.0",
    },
    "environment": {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    },
}

MANIFEST_FORMAT = 1
_FILE_MODE = 0o644


@dataclass(frozen=True)
class PackageResult:
    """Paths and sha256 of a built package."""

    archive: Path
    manifest: Path
    sha256: str


def package_root() -> Path:
    """Return the folder of the installed iot_telemetry package."""
    return Path(iot_telemetry.__file__).resolve().parent


def module_file(name: str, root: Path) -> Path | None:
    """Return the source file of iot_telemetry module `name`, or None if absent."""
    parts = name.split(".")[1:]
    base = root.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(path: Path, module: str) -> list[tuple[str, list[str]]]:
    """Return (imported module, names) for every import in a file, nested ones too."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                target = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                target = node.module or ""
            found.append((target, [alias.name for alias in node.names]))
    return found


def vendored_modules(
    entries: tuple[str, ...] = ENTRY_MODULES, root: Path | None = None
) -> dict[str, Path]:
    """Find the iot_telemetry modules the entry modules import, transitively.

    Returns:
        Module name to source file, parent packages included.

    Raises:
        InputError: an entry module is missing, or a module imports a
            third-party package the container image lacks.
    """
    root = root or package_root()
    found: dict[str, Path] = {}
    pending = list(entries)
    foreign: list[str] = []
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = module_file(name, root)
        if path is None:
            raise InputError(
                f"module {name} not found under {root}; the archive needs it"
            )
        found[name] = path
        parts = name.split(".")
        pending.extend(".".join(parts[:end]) for end in range(1, len(parts)))
        for target, names in _imports(path, name):
            top = target.split(".")[0]
            if top == PACKAGE_NAME:
                pending.append(target)
                pending.extend(
                    f"{target}.{item}"
                    for item in names
                    if module_file(f"{target}.{item}", root) is not None
                )
            elif top not in sys.stdlib_module_names and top not in ALLOWED_THIRD_PARTY:
                foreign.append(f"{path.relative_to(root.parent)} imports {target}")
    if foreign:
        raise InputError(
            "the archive's code must run on the sklearn 1.9-0 image, which lacks: "
            + "; ".join(sorted(set(foreign)))
            + ". Move that code out of the modules the endpoint imports."
        )
    return dict(sorted(found.items()))


def archive_members(model_dir: Path, root: Path | None = None) -> dict[str, Path]:
    """Map each archive path to its source file: model files, handler, code.

    Raises:
        InputError: the model folder is missing, lacks model_card.json, or
            contains a file under code/.
    """
    root = root or package_root()
    model_dir = Path(model_dir)
    if not (model_dir / "model_card.json").is_file():
        raise InputError(
            f"{model_dir} has no model_card.json; run the `select` stage first"
            " (dvc repro select) or pass the selected model folder"
        )
    members: dict[str, Path] = {}
    for path in sorted(model_dir.rglob("*")):
        if path.is_file():
            relative = path.relative_to(model_dir).as_posix()
            if relative.split("/")[0] == CODE_DIR:
                raise InputError(f"{path}: a model file may not live under {CODE_DIR}/")
            members[relative] = path
    members[HANDLER_PATH] = root / HANDLER_SOURCE
    for path in vendored_modules(root=root).values():
        members[f"{CODE_DIR}/{path.relative_to(root.parent).as_posix()}"] = path
    for path in sorted(root.glob(SCHEMA_GLOB)):
        members[f"{CODE_DIR}/{path.relative_to(root.parent).as_posix()}"] = path
    return dict(sorted(members.items()))


def write_archive(members: dict[str, Path], archive: Path, mtime: int = 0) -> None:
    """Write a reproducible tar.gz of `members` (archive path to source file)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, source in members.items():
            data = source.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            info.mode = _FILE_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    archive.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(archive, "wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=mtime, compresslevel=9
        ) as stream,
    ):
        stream.write(buffer.getvalue())


def code_sha256(files: list[dict]) -> str:
    """Return one sha256 over the archive's code files (path and content hash)."""
    digest = hashlib.sha256()
    for entry in files:
        if entry["path"].startswith(f"{CODE_DIR}/"):
            digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()


def _model_summary(model_dir: Path) -> dict:
    """Return the model's name, sha256 and training-data fields from its card."""
    from iot_telemetry.serving.handler import model_info

    card = json.loads((model_dir / "model_card.json").read_text(encoding="utf-8"))
    summary = model_info(card)
    for key in ("training", "libraries"):
        if key in card:
            summary[key] = card[key]
    return summary


def build_package(model_dir: str | Path, out_dir: str | Path) -> PackageResult:
    """Build model.tar.gz and manifest.json for the selected model.

    Args:
        model_dir: the selected model folder (models/selected), with
            model_card.json and the files it lists.
        out_dir: destination folder; existing archive and manifest are replaced.

    Raises:
        InputError: see `archive_members` and `vendored_modules`.
    """
    model_dir = Path(model_dir)
    out_dir = Path(out_dir)
    members = archive_members(model_dir)
    archive = out_dir / ARCHIVE_NAME
    write_archive(members, archive)

    files = [
        {"path": name, "sha256": sha256_file(source), "bytes": source.stat().st_size}
        for name, source in members.items()
    ]
    digest = sha256_file(archive)
    manifest = {
        "format": MANIFEST_FORMAT,
        "archive": ARCHIVE_NAME,
        "sha256": digest,
        "bytes": archive.stat().st_size,
        "code_sha256": code_sha256(files),
        "model": _model_summary(model_dir),
        "container": CONTAINER,
        "files": files,
    }
    manifest_path = out_dir / MANIFEST_NAME
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info(
        "packaged %d files (%d code) into %s, %d bytes, sha256 %s",
        len(files),
        sum(1 for entry in files if entry["path"].startswith(f"{CODE_DIR}/")),
        archive,
        manifest["bytes"],
        digest,
    )
    return PackageResult(archive=archive, manifest=manifest_path, sha256=digest)
