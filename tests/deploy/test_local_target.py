"""The `local` target and the stage functions: record, settings, unseen readings."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from iot_telemetry.deploy import stages
from iot_telemetry.deploy.record import find_secrets, write_record
from iot_telemetry.deploy.settings import Deploy, parse_section
from iot_telemetry.deploy.smoke import (
    build_requests,
    compare_predictions,
    unseen_readings,
)
from iot_telemetry.errors import InputError


def local_params(package_dir, tmp_path, **local) -> dict:
    return {
        "data": {"input": "synthetic"},
        "synthesize": {"seed": 0},
        "deploy": {
            "package_dir": str(package_dir),
            "record_path": str(tmp_path / "deploy.json"),
            "local": {
                "smoke_requests": 4,
                "readings_per_request": 10,
                "context_readings": 5,
                **local,
            },
        },
    }


def test_local_deploy_writes_record(package_dir, sample_build, tmp_path):
    record = stages.run_deploy(local_params(package_dir, tmp_path), Path("."))
    written = json.loads((tmp_path / "deploy.json").read_text())
    assert written == record
    assert record["target"] == "local"
    assert record["archive"]["sha256"] == sample_build.sha256
    assert record["model"]["name"] == "mq2+stuck+robust_z+isolation_forest"
    assert len(record["code_version"]["archive_code_sha256"]) == 64

    smoke = record["smoke_test"]
    assert smoke["passed"], smoke["problems"]
    assert smoke["matches_in_process_handler"] is True
    assert smoke["requests"] == 4
    assert smoke["readings_scored"] == 40
    assert (
        0
        < smoke["latency_ms"]["p50"]
        <= smoke["latency_ms"]["p95"]
        <= smoke["latency_ms"]["max"]
    )
    assert smoke["readings_source"]["seed"] == 101

    # The endpoint was stopped: its port no longer accepts connections.
    assert record["endpoint"]["stopped"] is True
    port = int(record["endpoint"]["url"].rsplit(":", 1)[1])
    assert record["endpoint"]["url"].startswith("http://127.0.0.1:")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_smoke_seed_must_differ_from_training(tmp_path):
    with pytest.raises(InputError, match="not be unseen"):
        unseen_readings("", days=0.01, seed=0, training_seed=0, root=tmp_path)


def test_smoke_input_missing(tmp_path):
    with pytest.raises(InputError, match="not found"):
        unseen_readings(
            "nope.csv", days=0.01, seed=1, training_seed=None, root=tmp_path
        )


def test_smoke_requests_from_real_capture(mqtt_capture, tmp_path):
    readings, source = unseen_readings(str(mqtt_capture), 0.01, 1, None, tmp_path)
    requests = build_requests(readings.head(3000), requests=4, per_request=3, context=2)
    assert source["readings"] == len(readings) > 50_000 - 100
    assert [r.content_type for r in requests] == ["application/json"] * 3 + ["text/csv"]
    first = json.loads(requests[0].body)["instances"]
    assert [m.get("context", False) for m in first] == [True, True, False, False, False]
    assert len(requests[-1].body.decode().splitlines()) == 5
    assert all(r.scored == 3 for r in requests)


def test_too_few_readings_rejected(mqtt_capture, tmp_path):
    readings, _ = unseen_readings(str(mqtt_capture), 0.01, 1, None, tmp_path)
    with pytest.raises(InputError, match="too few smoke readings"):
        build_requests(readings.head(30), requests=3, per_request=20, context=5)


def test_compare_predictions_reports_differences():
    base = {
        "device_id": "d",
        "ts": 1.0,
        "score": 0.5,
        "flag": False,
        "status": "ok",
        "reasons": [],
    }
    assert compare_predictions([base], [dict(base)]) == []
    assert compare_predictions([base], [dict(base, score=0.6)]) == [
        "prediction 0: score 0.5 != 0.6"
    ]
    assert compare_predictions([base], [dict(base, score=None)]) == [
        "prediction 0: score 0.5 != None"
    ]
    assert compare_predictions([base], []) == ["1 predictions, expected 0"]


def test_deploy_settings_defaults():
    settings = parse_section(Deploy, None, "deploy")
    assert settings.target == "local"
    assert settings.local.host == "127.0.0.1"
    assert settings.sagemaker.autoscaling.min_capacity == 1


@pytest.mark.parametrize(
    "section",
    [
        {"target": "cloud"},
        {"local": {"smoke_requests": 0}},
        {"unknown": 1},
        {"sagemaker": {"serverless": {"memory_size_mb": 1000}}},
        {"sagemaker": {"autoscaling": {"min_capacity": 3, "max_capacity": 2}}},
    ],
)
def test_invalid_deploy_settings(section):
    with pytest.raises(InputError, match="invalid section 'deploy'"):
        parse_section(Deploy, section, "deploy")


def test_record_refuses_secret_shaped_values(tmp_path):
    path = tmp_path / "deploy.json"
    with pytest.raises(ValueError, match="looks like an AWS"):
        write_record(path, {"note": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
    assert not path.exists()
    assert find_secrets("sha256 " + "ab12" * 16) == []
    assert find_secrets("key AKIAIOSFODNN7EXAMPLE") == ["AKIAIOSFODNN7EXAMPLE"]


def test_package_stage_writes_metrics(sample_build, tmp_path):
    root = tmp_path
    params = {
        "package": {
            "model_dir": str(sample_build.archive.parent.parent / "selected"),
            "out_dir": str(tmp_path / "package"),
        }
    }
    stages.run_package(params, root)
    metrics = json.loads((root / "reports" / "metrics" / "package.json").read_text())
    manifest = json.loads((tmp_path / "package" / "manifest.json").read_text())
    assert metrics["files"] == len(manifest["files"])
    assert metrics["archive_bytes"] == manifest["bytes"]
    assert manifest["sha256"] == sample_build.sha256
