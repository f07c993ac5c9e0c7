"""Stage dispatch for `iot-telemetry run STAGE`, one entry per DVC stage.

A stage is either a Python function listed in PYTHON_STAGES, or a notebook
`notebooks/NN-STAGE.ipynb` executed with the params.yaml section named STAGE.
Notebook stages also receive, for parameters the notebook declares and the
section leaves out: a `base` key of the same name, `data_input` from
`data.input`, `figures_dir` (reports/figures/STAGE) and `metrics_path`
(reports/metrics/STAGE.json).
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

from iot_telemetry.errors import InputError
from iot_telemetry.pipeline import runner
from iot_telemetry.pipeline.params import load_params
from iot_telemetry.paths import project_root, resolve

log = logging.getLogger(__name__)

# Stages run by a Python function "module:function" taking (params, root).
PYTHON_STAGES = {
    "synthesize": "iot_telemetry.pipeline.stages:run_synthesize",
    "ingest": "iot_telemetry.pipeline.stages:run_ingest",
    "report": "iot_telemetry.pipeline.report:run_report",
}

SYNTHETIC_INPUT = "synthetic"

# Notebook-stage sections whose schema lives with the stage's own code,
# checked before papermill starts: "module:function" taking the section.
SECTION_CHECKS = {
    "anomaly": "iot_telemetry.anomaly.params:load_anomaly_params",
}


# Stages of dvc.yaml that have their own command instead of `run STAGE`.
OWN_COMMANDS = ("select", "package", "deploy")


def run_stage(stage: str, params_file: Path | None = None) -> None:
    """Run one pipeline stage from the project root.

    Raises:
        InputError: the stage is unknown or has its own command.
    """
    root = project_root()
    if stage in OWN_COMMANDS:
        raise InputError(f"stage {stage!r} runs as `iot-telemetry {stage}`, not `run {stage}`")
    notebook_stages = [path.stem.split("-", 1)[1] for path in runner.stage_notebooks(root)]
    if stage not in PYTHON_STAGES and stage not in notebook_stages:
        known = ", ".join([*PYTHON_STAGES, *notebook_stages])
        raise InputError(f"unknown stage {stage!r}; `run` takes one of: {known}")
    params = load_params(params_file or root / "params.yaml")
    target = PYTHON_STAGES.get(stage)
    if target is not None:
        module, _, function = target.partition(":")
        getattr(importlib.import_module(module), function)(params, root)
        return
    run_notebook_stage(stage, params, root)


def notebook_parameters(stage: str, params: dict[str, Any], declared: dict[str, Any]) -> dict:
    """Build a notebook stage's parameters from its section and the defaults above."""
    section = dict(params.get(stage) or {})
    injected = {
        "data_input": params["data"]["input"],
        "figures_dir": f"reports/figures/{stage}",
        "metrics_path": f"reports/metrics/{stage}.json",
    }
    for name in declared:
        if name in section:
            continue
        if name in params["base"]:
            section[name] = params["base"][name]
        elif name in injected:
            section[name] = injected[name]
    return section


def run_notebook_stage(stage: str, params: dict[str, Any], root: Path) -> None:
    """Execute notebooks/NN-STAGE.ipynb into reports/notebooks/ and render HTML."""
    check = SECTION_CHECKS.get(stage)
    if check is not None:
        module, _, function = check.partition(":")
        getattr(importlib.import_module(module), function)(params.get(stage) or {})
    notebook = runner.notebook_for(stage, root)
    declared = runner.declared_parameters(notebook)
    parameters = notebook_parameters(stage, params, declared)
    executed = root / "reports" / "notebooks" / notebook.name
    runner.execute(notebook, executed, parameters, root)
    runner.render_html(executed, root / "reports" / f"{notebook.stem}.html")


def input_paths(params: dict[str, Any], root: Path) -> list[Path]:
    """Return the files the ingest stage reads, per `data.input`."""
    choice = params["data"]["input"]
    if choice == SYNTHETIC_INPUT:
        return [resolve(params["synthesize"]["out"], root)]
    path = resolve(choice, root)
    if not path.exists():
        raise InputError(
            f"data.input {choice!r} not found (resolved to {path}); use 'synthetic' or "
            "a path to a Kaggle CSV, an MQTT dump or a stream capture folder"
        )
    return [path]


def run_synthesize(params: dict[str, Any], root: Path) -> None:
    from iot_telemetry.data.synthetic import write_twin

    section = params["synthesize"]
    out = resolve(section["out"], root)
    truth = write_twin(out, days=section["days"], seed=section["seed"], start=section["start"])
    log.info("wrote the synthetic twin %s and its ground truth %s", out, truth)


def run_ingest(params: dict[str, Any], root: Path) -> None:
    from iot_telemetry.data.readers import read_inputs, require_readings, write_outputs

    section = params["ingest"]
    result = read_inputs(
        input_paths(params, root),
        timezone=section["source_timezone"],
        aliases=params["devices"]["aliases"],
    )
    out = resolve(section["out"], root)
    write_outputs(result, out)
    metrics = root / "reports" / "metrics" / "ingest.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps(result.summary, indent=2) + "\n")
    require_readings(result, out)
