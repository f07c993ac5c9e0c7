"""The archive: container layout, manifest hashes, reproducibility, import checks."""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest

from iot_telemetry.deploy.package import (
    ALLOWED_THIRD_PARTY,
    build_package,
    vendored_modules,
)
from iot_telemetry.errors import InputError
from iot_telemetry.serving.archive import unpack_archive, verify_archive


def members(archive) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


def test_container_layout(sample_build):
    names = members(sample_build.archive)
    assert "model.joblib" in names
    assert "model_card.json" in names
    assert "code/inference.py" in names
    for module in (
        "serving/handler.py",
        "serving/payload.py",
        "anomaly/model.py",
        "features/telemetry.py",
        "data/columns.py",
        "__init__.py",
    ):
        assert f"code/iot_telemetry/{module}" in names
    assert "code/iot_telemetry/serving/schemas/request.v1.json" in names
    # No requirements.txt: the container would pip-install at start-up.
    assert not [name for name in names if name.endswith("requirements.txt")]
    # Nothing the endpoint does not import: no deploy, stream or pipeline code.
    for excluded in ("deploy", "stream", "pipeline", "cli.py"):
        assert not [
            name for name in names if name.startswith(f"code/iot_telemetry/{excluded}")
        ]


def test_members_are_plain_files(sample_build):
    for info in members(sample_build.archive).values():
        assert info.isfile()
        assert info.mode == 0o644
        assert info.uid == info.gid == 0
        assert info.mtime == 0


def test_manifest_hashes(sample_build, tmp_path):
    manifest = json.loads(sample_build.manifest.read_text())
    archive_bytes = sample_build.archive.read_bytes()
    assert manifest["sha256"] == hashlib.sha256(archive_bytes).hexdigest()
    assert manifest["bytes"] == len(archive_bytes)
    unpacked = unpack_archive(sample_build.archive, tmp_path / "model")
    listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    on_disk = {
        str(path.relative_to(unpacked)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in unpacked.rglob("*")
        if path.is_file()
    }
    assert listed == on_disk
    assert manifest["container"]["environment"] == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    }
    assert manifest["model"]["name"] == "mq2+stuck+robust_z+isolation_forest"


def test_build_is_reproducible(sample_build, tmp_path):
    again = build_package(sample_build.archive.parent.parent / "selected", tmp_path)
    assert again.sha256 == sample_build.sha256
    assert again.manifest.read_text() == sample_build.manifest.read_text()


def test_verify_rejects_other_manifest(sample_build, tmp_path):
    manifest = json.loads(sample_build.manifest.read_text())
    manifest["sha256"] = "0" * 64
    other = tmp_path / "manifest.json"
    other.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="altered"):
        verify_archive(sample_build.archive, other)


def test_unpack_rejects_path_traversal(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="../outside.txt")
    with pytest.raises(InputError, match="unsafe member"):
        unpack_archive(evil, tmp_path / "model")
    assert not (tmp_path / "outside.txt").exists()


def test_model_dir_without_card_rejected(tmp_path):
    (tmp_path / "selected").mkdir()
    (tmp_path / "selected" / "model.joblib").write_bytes(b"x")
    with pytest.raises(InputError, match="model_card.json"):
        build_package(tmp_path / "selected", tmp_path / "package")


def fake_package(root, files: dict[str, str]):
    package = root / "iot_telemetry"
    for relative, text in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_vendoring_follows_nested_imports(tmp_path):
    package = fake_package(
        tmp_path,
        {
            "__init__.py": "",
            "a/__init__.py": "",
            "a/entry.py": "import json\n\ndef f():\n    from iot_telemetry.b import helper\n",
            "b/__init__.py": "",
            "b/helper.py": "from . import sibling\nimport numpy\n",
            "b/sibling.py": "import pandas as pd\n",
            "c/unused.py": "import matplotlib\n",
        },
    )
    found = vendored_modules(("iot_telemetry.a.entry",), root=package)
    assert sorted(found) == [
        "iot_telemetry",
        "iot_telemetry.a",
        "iot_telemetry.a.entry",
        "iot_telemetry.b",
        "iot_telemetry.b.helper",
        "iot_telemetry.b.sibling",
    ]


def test_vendoring_rejects_missing_package(tmp_path):
    package = fake_package(
        tmp_path,
        {
            "__init__.py": "",
            "entry.py": "def plot():\n    import matplotlib.pyplot as plt\n",
        },
    )
    with pytest.raises(InputError, match="entry.py imports matplotlib.pyplot"):
        vendored_modules(("iot_telemetry.entry",), root=package)


def test_project_entry_modules_use_allowed_packages():
    found = vendored_modules()
    assert "iot_telemetry.anomaly.model" in found
    assert "iot_telemetry.serving.handler" in found
    assert "gunicorn" in ALLOWED_THIRD_PARTY


def test_dvc_package_deps_cover_vendored_code(project_root):
    import yaml

    stage = yaml.safe_load((project_root / "dvc.yaml").read_text())["stages"]["package"]
    deps = [project_root / dep for dep in stage["deps"]]
    for name, path in vendored_modules().items():
        covered = [dep for dep in deps if path == dep or dep in path.parents]
        assert (
            covered
        ), f"{name} ({path}) is vendored but not a dep of the package stage"
