"""Commands `package` and `deploy` (with `--teardown`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the deployment commands to the top-level parser."""
    package = subparsers.add_parser(
        "package",
        help="build models/package/model.tar.gz and its manifest",
        description="Build the SageMaker scikit-learn archive of the selected model "
        "(model files at the root, code/inference.py and the project modules it "
        "imports) and manifest.json with its sha256.",
    )
    package.add_argument(
        "--model-dir",
        default=None,
        help="selected model folder (default: params package.model_dir)",
    )
    package.add_argument(
        "--out-dir",
        default=None,
        help="output folder (default: params package.out_dir)",
    )
    package.add_argument(
        "--params", type=Path, default=None, help="params file (default: params.yaml)"
    )
    package.set_defaults(handler=run_package)

    deploy = subparsers.add_parser(
        "deploy",
        help="deploy the package to the target in params.yaml (local or sagemaker)",
        description="Deploy models/package to deploy.target from params.yaml, smoke-test "
        "it with unseen readings and write reports/deploy.json. AWS credentials come "
        "from the standard chain (environment, ~/.aws, instance role); "
        "AWS_ENDPOINT_URL redirects every client, for example to a moto server.",
    )
    deploy.add_argument(
        "--params", type=Path, default=None, help="params file (default: params.yaml)"
    )
    deploy.add_argument(
        "--teardown",
        action="store_true",
        help="delete the SageMaker endpoint of deploy.sagemaker.endpoint_name, its "
        "autoscaling, endpoint configs and models (S3 archives are kept)",
    )
    deploy.set_defaults(handler=run_deploy)


def _params(path: Path | None) -> tuple[dict, Path]:
    from iot_telemetry.paths import project_root
    from iot_telemetry.pipeline.params import load_params

    root = project_root()
    return load_params(path or root / "params.yaml"), root


def run_package(args: argparse.Namespace) -> int:
    from iot_telemetry.deploy.stages import run_package as package

    params, root = _params(args.params)
    result = package(params, root, model_dir=args.model_dir, out_dir=args.out_dir)
    print(f"{result.archive}  sha256 {result.sha256}")
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    import json

    params, root = _params(args.params)
    if args.teardown:
        from iot_telemetry.deploy.sagemaker import make_clients, teardown
        from iot_telemetry.deploy.settings import Deploy, parse_section

        settings = parse_section(Deploy, params.get("deploy"), "deploy").sagemaker
        deleted = teardown(settings, make_clients(settings.region))
        print(json.dumps(deleted, indent=2))
        return 0

    from iot_telemetry.deploy.stages import run_deploy as deploy

    deployment = deploy(params, root)
    smoke = deployment["smoke_test"]
    print(
        f"{deployment['target']} deployment of {deployment['archive']['sha256'][:12]}: "
        f"smoke test {'passed' if smoke['passed'] else 'FAILED'}, "
        f"{smoke['readings_scored']} readings, p50 {smoke['latency_ms']['p50']} ms"
    )
    return 0
