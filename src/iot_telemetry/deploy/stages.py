"""The `package` and `deploy` pipeline stages, called by `iot-telemetry run STAGE`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from iot_telemetry.deploy.settings import (
    Deploy,
    Package,
    check_sagemaker,
    parse_section,
)
from iot_telemetry.paths import resolve

log = logging.getLogger(__name__)

METRICS_PATH = "reports/metrics/package.json"


def run_package(
    params: dict[str, Any],
    root: Path,
    model_dir: str | None = None,
    out_dir: str | None = None,
):
    """Build models/package/ from models/selected/ and write its metrics.

    `model_dir` and `out_dir` override the params' folders.

    Returns:
        The PackageResult.
    """
    from iot_telemetry.deploy.package import build_package

    section = parse_section(Package, params.get("package"), "package")
    result = build_package(
        resolve(model_dir or section.model_dir, root),
        resolve(out_dir or section.out_dir, root),
    )
    manifest = json.loads(result.manifest.read_text())
    metrics = {
        "archive_bytes": manifest["bytes"],
        "files": len(manifest["files"]),
        "code_files": sum(
            1 for entry in manifest["files"] if entry["path"].startswith("code/")
        ),
    }
    path = root / METRICS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return result


def training_seed(params: dict[str, Any]) -> int | None:
    """Return the twin seed the model was trained on, or None for real input data."""
    if (params.get("data") or {}).get("input", "synthetic") != "synthetic":
        return None
    return int((params.get("synthesize") or {}).get("seed", 0))


def run_deploy(params: dict[str, Any], root: Path, clients=None) -> dict:
    """Deploy to deploy.target (local unless params set sagemaker) and write the record.

    Args:
        params: the loaded params.yaml.
        root: project root.
        clients: boto3 clients for the sagemaker target; None creates them
            from the standard credential chain.

    Returns:
        The deployment record.

    Raises:
        InputError: invalid settings, or sagemaker requested inside a DVC
            experiment.
        RuntimeError: the smoke test failed (the record is written first).
    """
    from iot_telemetry.deploy import record, smoke, targets

    settings = parse_section(Deploy, params.get("deploy"), "deploy")
    if settings.target == "sagemaker":
        # Checked first, before any readings are generated or AWS is called.
        check_sagemaker(settings.sagemaker)
    package = resolve(settings.package_dir, root)
    local = settings.local
    readings, source = smoke.unseen_readings(
        local.smoke_input,
        local.smoke_days,
        local.smoke_seed,
        training_seed(params),
        root,
    )
    requests = smoke.build_requests(
        readings,
        local.smoke_requests,
        local.readings_per_request,
        local.context_readings,
    )
    if settings.target == "local":
        deployment = targets.deploy_local(settings, package, requests, root)
    else:
        from iot_telemetry.deploy.sagemaker import make_clients

        clients = clients or make_clients(settings.sagemaker.region)
        deployment = targets.deploy_sagemaker(
            settings, package, requests, root, clients
        )
    deployment["smoke_test"]["readings_source"] = source

    record.write_record(resolve(settings.record_path, root), deployment)
    if not deployment["smoke_test"]["passed"]:
        raise RuntimeError(
            f"smoke test of the {settings.target} endpoint failed:"
            f" {deployment['smoke_test']['problems'][:3]}; see {settings.record_path}"
        )
    return deployment
