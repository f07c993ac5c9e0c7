"""Deploy the packaged model to a SageMaker real-time endpoint with boto3.

Steps: upload model.tar.gz to S3 (key by sha256, skipped when present),
create_model with the scikit-learn image and the container environment,
create_endpoint_config, then create_endpoint or update_endpoint, wait for
InService, smoke-invoke, and register target-tracking autoscaling. Resource
names derive from the endpoint name and the archive sha256, so re-running
with an unchanged archive and settings creates nothing new.

Plain boto3 instead of the sagemaker SDK's resource classes, because those
validate responses and cannot be exercised against moto; the SDK is used
only for the image URI, imported lazily (it takes seconds and needs a region).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iot_telemetry.deploy.package import CONTAINER
from iot_telemetry.deploy.settings import SageMakerTarget
from iot_telemetry.serving.archive import locate_package, verify_archive

log = logging.getLogger(__name__)

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"
WAITER_DELAY_S = 30
TAG_ENDPOINT = "iot-telemetry:endpoint"
TAG_ARCHIVE = "iot-telemetry:archive-sha256"


@dataclass
class AwsClients:
    """The boto3 clients the deployment uses."""

    s3: Any
    sagemaker: Any
    runtime: Any
    autoscaling: Any


def make_clients(region: str, endpoint_url: str | None = None) -> AwsClients:
    """Create boto3 clients from the standard credential chain.

    Args:
        region: AWS region, such as us-east-1.
        endpoint_url: one URL for every service (a moto server or an
            S3-compatible gateway); None uses AWS, or AWS_ENDPOINT_URL when set.
    """
    import boto3

    session = boto3.session.Session(region_name=region)
    extra = {"endpoint_url": endpoint_url} if endpoint_url else {}
    return AwsClients(
        s3=session.client("s3", **extra),
        sagemaker=session.client("sagemaker", **extra),
        runtime=session.client("sagemaker-runtime", **extra),
        autoscaling=session.client("application-autoscaling", **extra),
    )


def image_uri(settings: SageMakerTarget) -> str:
    """Return the scikit-learn serving image for the region, or the configured one."""
    if settings.image_uri:
        return settings.image_uri
    from sagemaker.core import image_uris

    instance_type = None if settings.serverless else settings.instance_type
    return image_uris.retrieve(
        "sklearn",
        settings.region,
        version=settings.framework_version,
        instance_type=instance_type,
        image_scope="inference",
    )


def container_environment(settings: SageMakerTarget) -> dict[str, str]:
    """Return the container environment: handler location, region and log level."""
    return {
        **CONTAINER["environment"],
        "SAGEMAKER_REGION": settings.region,
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    }


def variant_settings(settings: SageMakerTarget) -> dict:
    """Return the production variant of the endpoint config, instances or serverless."""
    variant: dict[str, Any] = {"VariantName": settings.variant_name}
    if settings.serverless is not None:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings.serverless.memory_size_mb,
            "MaxConcurrency": settings.serverless.max_concurrency,
        }
    else:
        variant["InstanceType"] = settings.instance_type
        variant["InitialInstanceCount"] = settings.instance_count
        variant["InitialVariantWeight"] = 1.0
    return variant


def resource_names(settings: SageMakerTarget, sha256: str) -> tuple[str, str]:
    """Return (model name, endpoint config name) for an archive and variant settings."""
    model_name = f"{settings.endpoint_name}-{sha256[:12]}"
    variant = json.dumps(variant_settings(settings), sort_keys=True).encode()
    config_name = f"{model_name}-{hashlib.sha256(variant).hexdigest()[:8]}"
    return model_name, config_name


def _owned_names(settings: SageMakerTarget) -> tuple[re.Pattern, re.Pattern]:
    prefix = re.escape(settings.endpoint_name)
    return re.compile(rf"^{prefix}-[0-9a-f]{{12}}$"), re.compile(
        rf"^{prefix}-[0-9a-f]{{12}}-[0-9a-f]{{8}}$"
    )


def _tags(settings: SageMakerTarget, sha256: str) -> list[dict[str, str]]:
    return [
        {"Key": TAG_ENDPOINT, "Value": settings.endpoint_name},
        {"Key": TAG_ARCHIVE, "Value": sha256},
    ]


def _not_found(error: Exception) -> bool:
    """Return True for the error SageMaker raises for a missing resource."""
    response = getattr(error, "response", {}) or {}
    code = response.get("Error", {}).get("Code", "")
    message = response.get("Error", {}).get("Message", "")
    return code in ("ValidationException", "ResourceNotFound") and (
        "not find" in message.lower()
        or "not found" in message.lower()
        or "does not exist" in message.lower()
    )


def upload_archive(
    s3: Any, archive: Path, sha256: str, bucket: str, prefix: str
) -> str:
    """Upload the archive under PREFIX/SHA256/model.tar.gz unless it is already there.

    Returns:
        The s3:// URL of the object.
    """
    from botocore.exceptions import ClientError

    key = f"{prefix.strip('/')}/{sha256}/model.tar.gz"
    url = f"s3://{bucket}/{key}"
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get("sha256") == sha256:
            log.info("archive already in %s", url)
            return url
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in (
            "404",
            "NoSuchKey",
            "NotFound",
        ):
            raise
    s3.upload_file(
        str(archive),
        bucket,
        key,
        ExtraArgs={"Metadata": {"sha256": sha256}, "ContentType": "application/gzip"},
    )
    log.info("uploaded %s to %s", archive, url)
    return url


def ensure_model(
    sm: Any,
    name: str,
    image: str,
    model_data_url: str,
    settings: SageMakerTarget,
    sha256: str,
) -> bool:
    """Create the SageMaker model unless it exists; return True when created."""
    from botocore.exceptions import ClientError

    try:
        sm.describe_model(ModelName=name)
        return False
    except ClientError as error:
        if not _not_found(error):
            raise
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": model_data_url,
            "Environment": container_environment(settings),
        },
        ExecutionRoleArn=settings.role_arn,
        Tags=_tags(settings, sha256),
    )
    log.info("created model %s (image %s)", name, image)
    return True


def ensure_endpoint_config(
    sm: Any, name: str, model_name: str, settings: SageMakerTarget, sha256: str
) -> bool:
    """Create the endpoint config unless it exists; return True when created."""
    from botocore.exceptions import ClientError

    try:
        sm.describe_endpoint_config(EndpointConfigName=name)
        return False
    except ClientError as error:
        if not _not_found(error):
            raise
    variant = {**variant_settings(settings), "ModelName": model_name}
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[variant],
        Tags=_tags(settings, sha256),
    )
    log.info("created endpoint config %s", name)
    return True


def ensure_endpoint(
    sm: Any, settings: SageMakerTarget, config_name: str, sha256: str
) -> str:
    """Create the endpoint, or move it to `config_name`.

    Returns:
        "created", "updated" or "unchanged".
    """
    from botocore.exceptions import ClientError

    name = settings.endpoint_name
    try:
        current = sm.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if not _not_found(error):
            raise
        sm.create_endpoint(
            EndpointName=name,
            EndpointConfigName=config_name,
            Tags=_tags(settings, sha256),
        )
        log.info("creating endpoint %s with config %s", name, config_name)
        return "created"
    if current.get("EndpointConfigName") == config_name:
        log.info("endpoint %s already uses config %s", name, config_name)
        return "unchanged"
    sm.update_endpoint(EndpointName=name, EndpointConfigName=config_name)
    log.info(
        "updating endpoint %s from config %s to %s",
        name,
        current.get("EndpointConfigName"),
        config_name,
    )
    return "updated"


def wait_in_service(sm: Any, settings: SageMakerTarget) -> dict:
    """Wait until the endpoint is InService; return its description.

    Raises:
        RuntimeError: the endpoint failed or did not reach InService within
            wait_timeout_s, with SageMaker's failure reason.
    """
    from botocore.exceptions import WaiterError

    attempts = max(1, settings.wait_timeout_s // WAITER_DELAY_S)
    try:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=settings.endpoint_name,
            WaiterConfig={"Delay": WAITER_DELAY_S, "MaxAttempts": attempts},
        )
    except WaiterError as error:
        described = sm.describe_endpoint(EndpointName=settings.endpoint_name)
        raise RuntimeError(
            f"endpoint {settings.endpoint_name} is {described.get('EndpointStatus')}:"
            f" {described.get('FailureReason', error)}"
        ) from error
    return sm.describe_endpoint(EndpointName=settings.endpoint_name)


def invoke(
    runtime: Any, endpoint_name: str, body: bytes, content_type: str
) -> tuple[int, bytes]:
    """Invoke the endpoint once; return (HTTP status, body), 4xx/5xx included."""
    from botocore.exceptions import ClientError

    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType=content_type,
            Accept="application/json",
            Body=body,
        )
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        return int(status), str(error).encode()
    return 200, response["Body"].read()


def register_autoscaling(aas: Any, settings: SageMakerTarget) -> dict | None:
    """Register the variant with application-autoscaling and a target-tracking policy.

    Returns None for serverless endpoints, which scale by concurrency instead.
    """
    scaling = settings.autoscaling
    if scaling is None or settings.serverless is not None:
        return None
    resource_id = f"endpoint/{settings.endpoint_name}/variant/{settings.variant_name}"
    aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource_id,
        ScalableDimension=SCALABLE_DIMENSION,
        MinCapacity=scaling.min_capacity,
        MaxCapacity=scaling.max_capacity,
    )
    policy_name = f"{settings.endpoint_name}-invocations-target"
    aas.put_scaling_policy(
        PolicyName=policy_name,
        ServiceNamespace="sagemaker",
        ResourceId=resource_id,
        ScalableDimension=SCALABLE_DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": scaling.target_invocations_per_instance,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": INVOCATIONS_METRIC
            },
            "ScaleInCooldown": scaling.scale_in_cooldown_s,
            "ScaleOutCooldown": scaling.scale_out_cooldown_s,
        },
    )
    log.info(
        "registered autoscaling %s (%d-%d instances)",
        resource_id,
        scaling.min_capacity,
        scaling.max_capacity,
    )
    return {
        "resource_id": resource_id,
        "policy": policy_name,
        "min_capacity": scaling.min_capacity,
        "max_capacity": scaling.max_capacity,
        "target_invocations_per_instance": scaling.target_invocations_per_instance,
    }


def deploy(settings: SageMakerTarget, package: Path, clients: AwsClients) -> dict:
    """Deploy the package and return the SageMaker part of the deployment record.

    The caller smoke-tests the endpoint afterwards (see `invoke`).

    Raises:
        InputError: the archive differs from its manifest.
        RuntimeError: the endpoint did not reach InService.
        botocore.exceptions.ClientError: an AWS call failed (permissions,
            quotas, a missing bucket).
    """
    archive, manifest_path = locate_package(package)
    manifest = verify_archive(archive, manifest_path)
    sha256 = manifest["sha256"]
    model_name, config_name = resource_names(settings, sha256)

    model_data_url = upload_archive(
        clients.s3, archive, sha256, settings.bucket, settings.prefix
    )
    image = image_uri(settings)
    model_created = ensure_model(
        clients.sagemaker, model_name, image, model_data_url, settings, sha256
    )
    config_created = ensure_endpoint_config(
        clients.sagemaker, config_name, model_name, settings, sha256
    )
    action = ensure_endpoint(clients.sagemaker, settings, config_name, sha256)
    described = wait_in_service(clients.sagemaker, settings)
    autoscaling = register_autoscaling(clients.autoscaling, settings)
    return {
        "region": settings.region,
        "endpoint_name": settings.endpoint_name,
        "endpoint_arn": described.get("EndpointArn"),
        "endpoint_status": described.get("EndpointStatus"),
        "endpoint_action": action,
        "model_name": model_name,
        "model_created": model_created,
        "endpoint_config_name": config_name,
        "endpoint_config_created": config_created,
        "image_uri": image,
        "model_data_url": model_data_url,
        "variant": variant_settings(settings),
        "autoscaling": autoscaling,
    }


def teardown(settings: SageMakerTarget, clients: AwsClients) -> dict:
    """Delete the endpoint, its autoscaling, and the configs and models this tool named.

    Only resources named ENDPOINT-<sha12> (models) and ENDPOINT-<sha12>-<hash8>
    (configs) are deleted, so other endpoints' resources are left alone. The
    archives in S3 stay, as versioned artifacts.

    Returns:
        The names of what was deleted.
    """
    from botocore.exceptions import ClientError

    sm, aas = clients.sagemaker, clients.autoscaling
    name = settings.endpoint_name
    deleted: dict[str, Any] = {
        "endpoint": None,
        "endpoint_configs": [],
        "models": [],
        "autoscaling": None,
    }

    resource_id = f"endpoint/{name}/variant/{settings.variant_name}"
    targets = aas.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource_id]
    )
    if targets.get("ScalableTargets"):
        policies = aas.describe_scaling_policies(
            ServiceNamespace="sagemaker", ResourceId=resource_id
        )
        for policy in policies.get("ScalingPolicies", []):
            aas.delete_scaling_policy(
                PolicyName=policy["PolicyName"],
                ServiceNamespace="sagemaker",
                ResourceId=resource_id,
                ScalableDimension=SCALABLE_DIMENSION,
            )
        aas.deregister_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource_id,
            ScalableDimension=SCALABLE_DIMENSION,
        )
        deleted["autoscaling"] = resource_id

    try:
        sm.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if not _not_found(error):
            raise
    else:
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(
            EndpointName=name, WaiterConfig={"Delay": WAITER_DELAY_S, "MaxAttempts": 60}
        )
        deleted["endpoint"] = name

    model_pattern, config_pattern = _owned_names(settings)
    for config in _paginate(
        sm, "list_endpoint_configs", "EndpointConfigs", NameContains=name
    ):
        config_name = config["EndpointConfigName"]
        if config_pattern.match(config_name):
            sm.delete_endpoint_config(EndpointConfigName=config_name)
            deleted["endpoint_configs"].append(config_name)
    for model in _paginate(sm, "list_models", "Models", NameContains=name):
        if model_pattern.match(model["ModelName"]):
            sm.delete_model(ModelName=model["ModelName"])
            deleted["models"].append(model["ModelName"])
    log.info(
        "teardown of %s: endpoint %s, %d configs, %d models",
        name,
        "deleted" if deleted["endpoint"] else "absent",
        len(deleted["endpoint_configs"]),
        len(deleted["models"]),
    )
    return deleted


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict]:
    pages = client.get_paginator(operation).paginate(**kwargs)
    return [item for page in pages for item in page.get(key, [])]
