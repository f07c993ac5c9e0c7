"""Smoke run of the whole DVC pipeline on a tiny twin, in a copy of the project.

The executed notebooks of that run then go through nbval, so the headline
cells marked `# NBVAL_CHECK_OUTPUT` must reproduce when re-executed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iot_telemetry.pipeline.sandbox import copy_project

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# Small enough for CI, long enough that every stage has data to fit.
SMOKE_PARAMS_FILE = Path(__file__).with_name("smoke_params.yaml")


def run(command: list[str], cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("IOT_TELEMETRY_ROOT", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def smoke_project(tmp_path_factory, project_root) -> Path:
    overrides = yaml.safe_load(SMOKE_PARAMS_FILE.read_text())
    copy = copy_project(project_root, tmp_path_factory.mktemp("smoke") / "project", overrides)
    done = run([str(BIN / "dvc"), "repro"], copy)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return copy


def test_repro_writes_reports(smoke_project):
    reports = smoke_project / "reports"
    assert (reports / "index.html").is_file()
    assert (reports / "01-eda.html").is_file()
    assert (reports / "02-characterize.html").is_file()
    index = (reports / "index.html").read_text()
    assert "01-eda.html" in index
    assert "readings kept" in index


def test_repro_ingest_metrics(smoke_project):
    metrics = json.loads((smoke_project / "reports" / "metrics" / "ingest.json").read_text())
    assert metrics["read"] == metrics["kept"] + metrics["duplicates"] + metrics["quarantined"]
    assert metrics["kept"] > 10_000
    assert set(metrics["by_device"]) == {"00:0f:00:70:91:0a", "1c:bf:ce:15:ec:4d",
                                         "b8:27:eb:bf:9d:51"}


def test_second_repro_runs_nothing(smoke_project):
    done = run([str(BIN / "dvc"), "repro"], smoke_project)
    assert done.returncode == 0, done.stderr
    assert "Running stage" not in done.stdout
    status = run([str(BIN / "dvc"), "status"], smoke_project)
    assert "up to date" in status.stdout


def test_executed_notebooks_pass_nbval(smoke_project):
    executed = sorted((smoke_project / "reports" / "notebooks").glob("*.ipynb"))
    assert len(executed) >= 2
    done = run(
        [str(BIN / "python"), "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
         "--nbval-sanitize-with", str(Path(__file__).with_name("nbval_sanitize.cfg")),
         *map(str, executed)],
        smoke_project,
    )
    assert done.returncode == 0, done.stdout[-6000:]
    assert " passed" in done.stdout
    assert "failed" not in done.stdout.splitlines()[-1]


def test_exp_run_on_real_capture(smoke_project, mqtt_capture):
    done = run([str(BIN / "dvc"), "exp", "run", "-S", f"data.input={mqtt_capture}"],
               smoke_project)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    metrics = json.loads((smoke_project / "reports" / "metrics" / "ingest.json").read_text())
    assert metrics["read"] == 50270
    assert metrics["kept"] == 50269
    assert metrics["duplicates"] == 1
