"""Command `run`: one DVC pipeline stage."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the pipeline commands to the top-level parser."""
    run = subparsers.add_parser(
        "run",
        help="run one pipeline stage (what dvc.yaml calls)",
        description="Run a DVC stage: a Python stage, or notebooks/NN-STAGE.ipynb "
        "through papermill with its params.yaml section, rendered to reports/.",
    )
    run.add_argument("stage", help="stage name, for example ingest or eda")
    run.add_argument(
        "--params", type=Path, default=None, help="params file (default: params.yaml)"
    )
    run.set_defaults(handler=run_stage)


def run_stage(args: argparse.Namespace) -> int:
    from iot_telemetry.pipeline.stages import run_stage as run

    run(args.stage, args.params)
    return 0
