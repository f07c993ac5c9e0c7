"""Fixtures for the AWS paths: a moto server on loopback and dummy credentials.

Every boto3 client in these tests gets the moto URL as endpoint_url, and
AWS_ENDPOINT_URL points there too, so a client created without one still
cannot reach real AWS.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REGION = "us-east-1"
# Dummy credentials; the security tests check that the secret never shows
# up in logs or reports.
ACCESS_KEY_ID = "AKIAMOTOTESTKEY00001"
SECRET_ACCESS_KEY = "moto-dummy-secret-key-never-printed"


@dataclass(frozen=True)
class MotoAws:
    """The running moto server and the settings a client needs for it."""

    url: str
    region: str = REGION
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY

    def client(self, service: str):
        import boto3

        return boto3.client(service, region_name=self.region, endpoint_url=self.url)

    def reset(self) -> None:
        post(f"{self.url}/moto-api/reset", b"")

    def queue_endpoint_results(self, results: list[dict]) -> None:
        """Queue invoke_endpoint results (Body, ContentType) in moto."""
        body = json.dumps({"region": self.region, "results": results}).encode()
        post(f"{self.url}/moto-api/static/sagemaker/endpoint-results", body)


def post(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status < 300, f"{url} returned {response.status}"


@pytest.fixture(scope="session")
def moto_url():
    """Start moto's server on 127.0.0.1 with a free port for the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url, monkeypatch, tmp_path) -> MotoAws:
    """Dummy credentials and the moto endpoint in the environment; moto reset."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # A user's ~/.aws files must not leak into the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    # Newer botocore adds request checksums that moto's S3 may reject.
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    aws = MotoAws(moto_url)
    aws.reset()
    return aws


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory):
    """A small real model (fitted on the twin) and its package: PackageResult."""
    from iot_telemetry.deploy.sample import sample_package

    return sample_package(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def package_dir(sample_build) -> Path:
    return sample_build.archive.parent


@pytest.fixture(scope="session")
def smoke_requests():
    """Two smoke requests of unseen twin readings (seed 101; the model used seed 0)."""
    from iot_telemetry.deploy.smoke import build_requests, unseen_readings

    readings, _ = unseen_readings(
        "", days=0.02, seed=101, training_seed=0, root=Path(".")
    )
    return build_requests(readings, requests=2, per_request=5, context=5)
