"""The two deploy targets and the deployment record they write.

`local`: start the local endpoint on a free loopback port, smoke-test it with
unseen readings, record latency, stop it. `sagemaker`: the boto3 path in
`iot_telemetry.deploy.sagemaker`, then the same smoke test through
invoke_endpoint. Both compare the endpoint's responses with the same archive's
handler run in this process, and write reports/deploy.json.
"""

from __future__ import annotations

import http.client
import logging
from pathlib import Path

from iot_telemetry.deploy import record, smoke
from iot_telemetry.deploy.sagemaker import AwsClients
from iot_telemetry.deploy.settings import Deploy, check_sagemaker
from iot_telemetry.serving.archive import locate_package
from iot_telemetry.serving.server import LoadedArchive, LocalEndpoint

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 60.0


def http_sender(host: str, port: int) -> smoke.Sender:
    """Return a smoke-test sender posting to http://HOST:PORT/invocations."""

    def send(request: smoke.SmokeRequest) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT_S)
        try:
            connection.request(
                "POST",
                "/invocations",
                body=request.body,
                headers={
                    "Content-Type": request.content_type,
                    "Accept": "application/json",
                },
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    return send


def in_process_sender(loaded: LoadedArchive) -> smoke.Sender:
    """Return a sender that runs the archive's handler functions in this process."""

    def send(request: smoke.SmokeRequest) -> tuple[int, bytes]:
        response = loaded.invoke(request.body, request.content_type, "application/json")
        return response.status, response.body

    return send


def base_record(target: str, package: Path, manifest: dict, root: Path) -> dict:
    """Return the fields every deployment record has."""
    archive, _ = locate_package(package)
    return {
        "target": target,
        "deployed_at": record.utc_now(),
        "archive": record.archive_summary(archive, manifest, root),
        "model": manifest.get("model", {}),
        "code_version": record.code_version(root, manifest),
        "data_version": record.data_version(root, manifest),
    }


def deploy_local(
    settings: Deploy, package: Path, requests: list[smoke.SmokeRequest], root: Path
) -> dict:
    """Serve the package locally, smoke-test it, stop it; return the record."""
    local = settings.local
    with (
        LoadedArchive(package) as loaded,
        LocalEndpoint(
            package, host=local.host, port=0, workers=local.workers
        ) as endpoint,
    ):
        result = smoke.run_smoke(
            http_sender(endpoint.host, endpoint.port),
            requests,
            in_process_sender(loaded),
        )
        entry = {"url": endpoint.url, "workers": endpoint.workers}
        manifest = endpoint.manifest
    entry["stopped"] = True
    return {
        **base_record("local", package, manifest, root),
        "endpoint": entry,
        "smoke_test": result,
    }


def deploy_sagemaker(
    settings: Deploy,
    package: Path,
    requests: list[smoke.SmokeRequest],
    root: Path,
    clients: AwsClients,
) -> dict:
    """Deploy to SageMaker, smoke-test through invoke_endpoint; return the record."""
    from iot_telemetry.deploy import sagemaker

    target = settings.sagemaker
    check_sagemaker(target)
    details = sagemaker.deploy(target, package, clients)

    def send(request: smoke.SmokeRequest) -> tuple[int, bytes]:
        return sagemaker.invoke(
            clients.runtime, target.endpoint_name, request.body, request.content_type
        )

    with LoadedArchive(package) as loaded:
        result = smoke.run_smoke(send, requests, in_process_sender(loaded))
        manifest = loaded.manifest
    return {
        **base_record("sagemaker", package, manifest, root),
        "endpoint": {"name": target.endpoint_name, "arn": details["endpoint_arn"]},
        "sagemaker": details,
        "smoke_test": result,
    }
