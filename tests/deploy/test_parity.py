"""The archive gives the same scores on the container's package versions.

The sklearn 1.9-0 image has Python 3.12, scikit-learn 1.9.0, pandas 2.2.3,
numpy 2.5.1 and scipy 1.18.0. No Docker image is available here, so a
separate virtualenv pins what installs on this Python (3.11): scikit-learn
and pandas exactly, numpy and scipy at the newest release pip finds for it.
The archive is loaded there in isolated mode, without the project on the
path, and its responses are compared with the project environment's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iot_telemetry.deploy.smoke import compare_predictions
from iot_telemetry.serving.server import LoadedArchive

CONTAINER_PINS = ("scikit-learn==1.9.0", "pandas==2.2.3", "numpy", "scipy", "joblib")
VENV = Path(
    os.environ.get(
        "IOT_TELEMETRY_CONTAINER_VENV",
        Path.home() / ".cache" / "iot-telemetry" / "container-venv",
    )
)
SCRIPT = Path(__file__).with_name("container_parity.py")


def container_python() -> Path:
    """Create (once) the container-like virtualenv and return its python."""
    python = VENV / "bin" / "python"
    stamp = VENV / "pins.txt"
    wanted = "\n".join(CONTAINER_PINS)
    if python.exists() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            *CONTAINER_PINS,
        ],
        check=True,
        timeout=1200,
    )
    stamp.write_text(wanted)
    return python


def parity_requests(smoke_requests, kaggle_head, mqtt_messages) -> list[dict]:
    requests = [
        {"body": r.body.decode(), "content_type": r.content_type}
        for r in smoke_requests
    ]
    requests.append({"body": kaggle_head.read_text(), "content_type": "text/csv"})
    # Unknown devices, a missing value and a repeated reading.
    messages = mqtt_messages[:30]
    messages[3]["data"]["humidity"] = None
    requests.append(
        {
            "body": json.dumps(messages + [messages[5]]),
            "content_type": "application/json; charset=utf-8",
        }
    )
    requests.append({"body": "", "content_type": "application/json"})
    return requests


@pytest.fixture(scope="module")
def mqtt_messages(mqtt_capture):
    import zipfile

    with zipfile.ZipFile(mqtt_capture) as archive:
        return json.loads(archive.read(archive.namelist()[0]))[:30]


@pytest.mark.slow
def test_container_env_gives_same_scores(
    package_dir, smoke_requests, kaggle_head, mqtt_messages, tmp_path
):
    python = container_python()
    requests = parity_requests(smoke_requests, kaggle_head, mqtt_messages)
    requests_path = tmp_path / "requests.json"
    requests_path.write_text(json.dumps(requests))
    output = tmp_path / "container.json"
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("PYTHON")
    }
    subprocess.run(
        [
            str(python),
            "-I",
            str(SCRIPT),
            str(package_dir / "model.tar.gz"),
            str(requests_path),
            str(output),
        ],
        check=True,
        timeout=600,
        env=env,
    )
    container = json.loads(output.read_text())

    assert container["versions"]["pandas"] == "2.2.3"
    assert container["versions"]["scikit-learn"] == "1.9.0"
    assert container["iot_telemetry"] == f"{container['model_dir']}/code/iot_telemetry"

    with LoadedArchive(package_dir) as loaded:
        for number, (request, answer) in enumerate(
            zip(requests, container["responses"])
        ):
            expected = loaded.invoke(
                request["body"], request["content_type"], "application/json"
            )
            assert answer["status"] == expected.status, f"request {number}"
            got, want = json.loads(answer["body"]), json.loads(expected.body)
            if expected.status != 200:
                assert got == want
                continue
            assert got["model"] == want["model"]
            assert (
                compare_predictions(got["predictions"], want["predictions"]) == []
            ), number
            assert len(got["predictions"]) > 0
