"""The `sagemaker` target end to end against moto's server on loopback.

moto returns queued results for invoke_endpoint. Each queued body is the
real handler's output for the same request, computed here from the same
archive.
moto 5.2.5 has no update_endpoint, so that one call goes to a botocore
Stubber while every other call still reaches moto.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from iot_telemetry.deploy import sagemaker, stages, targets
from iot_telemetry.deploy.settings import Deploy, SageMakerTarget
from iot_telemetry.errors import InputError
from iot_telemetry.serving.server import LoadedArchive

BUCKET = "iot-telemetry-models-test"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
# sagemaker.core.image_uris for sklearn 1.9-0 in us-east-1 (sagemaker 3.27).
IMAGE = (
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
)


def settings(**changes) -> SageMakerTarget:
    values = {"bucket": BUCKET, "role_arn": ROLE, "endpoint_name": "iot-anomaly-test"}
    return SageMakerTarget(**{**values, **changes})


@pytest.fixture
def clients(aws_env):
    clients = sagemaker.make_clients(aws_env.region, endpoint_url=aws_env.url)
    clients.s3.create_bucket(Bucket=BUCKET)
    return clients


@pytest.fixture(scope="module")
def expected_bodies(package_dir, smoke_requests) -> list[str]:
    """The real handler's response body to each smoke request, to queue in moto."""
    with LoadedArchive(package_dir) as loaded:
        return [
            loaded.invoke(
                request.body, request.content_type, "application/json"
            ).body.decode()
            for request in smoke_requests
        ]


def queue(aws_env, bodies: list[str]) -> None:
    aws_env.queue_endpoint_results(
        [{"Body": body, "ContentType": "application/json"} for body in bodies]
    )


def deploy(target: SageMakerTarget, package_dir, smoke_requests, clients) -> dict:
    return targets.deploy_sagemaker(
        Deploy(target="sagemaker", sagemaker=target),
        package_dir,
        smoke_requests,
        Path("."),
        clients,
    )


def test_deploy_creates_everything(
    aws_env, clients, package_dir, sample_build, smoke_requests, expected_bodies
):
    queue(aws_env, expected_bodies)
    record = deploy(settings(), package_dir, smoke_requests, clients)
    details = record["sagemaker"]
    sha = sample_build.sha256
    key = f"iot-telemetry/models/{sha}/model.tar.gz"

    # S3: the object is the archive, byte for byte.
    body = clients.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha
    assert details["model_data_url"] == f"s3://{BUCKET}/{key}"

    # Model: image, environment, artifact, role.
    model = clients.sagemaker.describe_model(ModelName=f"iot-anomaly-test-{sha[:12]}")
    container = model["PrimaryContainer"]
    assert container["Image"] == IMAGE
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/{key}"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert (
        container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    )
    assert container["Environment"]["SAGEMAKER_REGION"] == "us-east-1"
    assert model["ExecutionRoleArn"] == ROLE

    # Endpoint config and endpoint.
    config = clients.sagemaker.describe_endpoint_config(
        EndpointConfigName=details["endpoint_config_name"]
    )
    variant = config["ProductionVariants"][0]
    assert variant["ModelName"] == f"iot-anomaly-test-{sha[:12]}"
    assert variant["InstanceType"] == "ml.m5.large"
    assert variant["InitialInstanceCount"] == 1
    assert variant["VariantName"] == "AllTraffic"
    endpoint = clients.sagemaker.describe_endpoint(EndpointName="iot-anomaly-test")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == details["endpoint_config_name"]
    assert details["endpoint_action"] == "created"

    # Autoscaling: target tracking on invocations per instance.
    resource = "endpoint/iot-anomaly-test/variant/AllTraffic"
    target = clients.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource]
    )["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in target] == [(1, 2)]
    policy = clients.autoscaling.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=resource
    )["ScalingPolicies"][0]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 100.0
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )

    # Smoke test through invoke_endpoint, checked against the handler.
    smoke = record["smoke_test"]
    assert smoke["passed"], smoke["problems"]
    assert smoke["matches_in_process_handler"]
    assert smoke["readings_scored"] == 10
    assert record["archive"]["sha256"] == sha


def test_redeploy_same_archive_changes_nothing(
    aws_env, clients, package_dir, smoke_requests, expected_bodies
):
    queue(aws_env, expected_bodies)
    deploy(settings(), package_dir, smoke_requests, clients)
    again = deploy(settings(), package_dir, smoke_requests, clients)["sagemaker"]
    assert again["endpoint_action"] == "unchanged"
    assert again["model_created"] is False
    assert again["endpoint_config_created"] is False
    assert len(clients.sagemaker.list_models()["Models"]) == 1


class UpdateEndpointStub:
    """A sagemaker client that sends update_endpoint to a Stubber, the rest to moto."""

    def __init__(self, moto_client, stubbed_client):
        self._moto = moto_client
        self._stubbed = stubbed_client

    def update_endpoint(self, **kwargs):
        return self._stubbed.update_endpoint(**kwargs)

    def __getattr__(self, name):
        return getattr(self._moto, name)


def test_new_config_updates_endpoint(
    aws_env, clients, package_dir, smoke_requests, expected_bodies
):
    import boto3

    queue(aws_env, expected_bodies)
    first = deploy(settings(), package_dir, smoke_requests, clients)["sagemaker"]
    bigger = settings(instance_count=2, instance_type="ml.c5.xlarge")

    stubbed = boto3.client(
        "sagemaker", region_name=aws_env.region, endpoint_url=aws_env.url
    )
    stubber = Stubber(stubbed)
    model_name, config_name = sagemaker.resource_names(
        bigger, json.loads((package_dir / "manifest.json").read_text())["sha256"]
    )
    stubber.add_response(
        "update_endpoint",
        {
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/iot-anomaly-test"
        },
        {"EndpointName": "iot-anomaly-test", "EndpointConfigName": config_name},
    )
    clients.sagemaker = UpdateEndpointStub(clients.sagemaker, stubbed)
    with stubber:
        second = deploy(bigger, package_dir, smoke_requests, clients)["sagemaker"]
        stubber.assert_no_pending_responses()
    assert second["endpoint_action"] == "updated"
    assert (
        second["endpoint_config_name"] == config_name != first["endpoint_config_name"]
    )
    assert second["model_name"] == model_name == first["model_name"]
    config = clients.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    assert config["ProductionVariants"][0]["InitialInstanceCount"] == 2
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.c5.xlarge"


def test_serverless_config(
    aws_env, clients, package_dir, smoke_requests, expected_bodies
):
    queue(aws_env, expected_bodies)
    target = settings(serverless={"memory_size_mb": 3072, "max_concurrency": 4})
    details = deploy(target, package_dir, smoke_requests, clients)["sagemaker"]
    config = clients.sagemaker.describe_endpoint_config(
        EndpointConfigName=details["endpoint_config_name"]
    )
    variant = config["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 4}
    assert "InstanceType" not in variant
    assert details["autoscaling"] is None
    assert (
        clients.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")[
            "ScalableTargets"
        ]
        == []
    )


def test_teardown_deletes_only_own_resources(
    aws_env, clients, package_dir, smoke_requests, expected_bodies
):
    queue(aws_env, expected_bodies)
    details = deploy(settings(), package_dir, smoke_requests, clients)["sagemaker"]
    # Another team's model whose name starts the same way must survive.
    clients.sagemaker.create_model(
        ModelName="iot-anomaly-test-other",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/x.tar.gz"},
    )
    deleted = sagemaker.teardown(settings(), clients)
    assert deleted["endpoint"] == "iot-anomaly-test"
    assert deleted["endpoint_configs"] == [details["endpoint_config_name"]]
    assert deleted["models"] == [details["model_name"]]
    assert deleted["autoscaling"] == "endpoint/iot-anomaly-test/variant/AllTraffic"
    with pytest.raises(ClientError):
        clients.sagemaker.describe_endpoint(EndpointName="iot-anomaly-test")
    remaining = [m["ModelName"] for m in clients.sagemaker.list_models()["Models"]]
    assert remaining == ["iot-anomaly-test-other"]
    assert clients.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert (
        clients.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")[
            "ScalableTargets"
        ]
        == []
    )
    # The archive stays in S3 as a versioned artifact.
    assert clients.s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1


def test_teardown_without_endpoint(aws_env, clients):
    deleted = sagemaker.teardown(settings(), clients)
    assert deleted == {
        "endpoint": None,
        "endpoint_configs": [],
        "models": [],
        "autoscaling": None,
    }


def stage_params(tmp_path, **sagemaker_changes) -> dict:
    return {
        "data": {"input": "synthetic"},
        "synthesize": {"seed": 0},
        "deploy": {
            "target": "sagemaker",
            "record_path": str(tmp_path / "deploy.json"),
            "local": {
                "smoke_requests": 2,
                "readings_per_request": 5,
                "context_readings": 5,
                "smoke_days": 0.02,
            },
            "sagemaker": {
                "bucket": BUCKET,
                "role_arn": ROLE,
                "endpoint_name": "iot-anomaly-test",
                **sagemaker_changes,
            },
        },
    }


def test_stage_record_has_no_secrets(
    aws_env, clients, package_dir, smoke_requests, expected_bodies, tmp_path, caplog
):
    params = stage_params(tmp_path)
    params["deploy"]["package_dir"] = str(package_dir)
    queue(aws_env, expected_bodies)
    with caplog.at_level(logging.DEBUG):
        stages.run_deploy(params, Path("."), clients=clients)
    text = (tmp_path / "deploy.json").read_text()
    record = json.loads(text)
    assert record["target"] == "sagemaker"
    assert record["smoke_test"]["passed"]
    assert record["sagemaker"]["image_uri"] == IMAGE
    assert aws_env.secret_access_key not in text
    assert aws_env.access_key_id not in text
    # Even botocore's DEBUG lines never carry the secret key; the project's
    # own log lines carry neither the key id nor the secret.
    assert aws_env.secret_access_key not in caplog.text
    own = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("iot_telemetry")
    )
    assert "iot-anomaly-test" in own
    assert aws_env.access_key_id not in own
    assert aws_env.secret_access_key not in own


def test_experiment_never_deploys(aws_env, clients, package_dir, tmp_path, monkeypatch):
    params = stage_params(tmp_path)
    params["deploy"]["package_dir"] = str(package_dir)
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    with pytest.raises(InputError, match="inside a DVC experiment"):
        stages.run_deploy(params, Path("."), clients=clients)
    assert clients.sagemaker.list_models()["Models"] == []
    assert not (tmp_path / "deploy.json").exists()


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"bucket": ""}, "bucket"),
        ({"role_arn": "SageMakerRole"}, "role_arn"),
        ({"endpoint_name": "bad_name!"}, "endpoint_name"),
    ],
)
def test_incomplete_settings_rejected(aws_env, clients, tmp_path, changes, fragment):
    with pytest.raises(InputError, match=fragment):
        stages.run_deploy(stage_params(tmp_path, **changes), Path("."), clients=clients)
    assert clients.sagemaker.list_models()["Models"] == []
