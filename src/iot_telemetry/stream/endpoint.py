"""Clients of the scoring endpoint: the local HTTP server or SageMaker.

Both send the endpoint's JSON request (`{"instances": [messages]}`, see
`iot_telemetry/serving/schemas/request.v1.json`) and return the decoded
response. They raise `EndpointUnavailable` for failures worth retrying (no
connection, timeout, HTTP 5xx, throttling) and `EndpointRequestError` for a
request the endpoint rejected (HTTP 4xx), which a retry would not fix.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from typing import Protocol

log = logging.getLogger(__name__)

JSON = "application/json"


class EndpointUnavailable(RuntimeError):
    """The endpoint did not respond, or responded with a server-side error."""


class EndpointRequestError(ValueError):
    """The endpoint rejected the request (HTTP 4xx); `status` is the code."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class EndpointClient(Protocol):
    """Interface of an endpoint client, as the live scorer uses it."""

    name: str

    def invoke(self, request: dict) -> dict:
        """Send one request body; return the decoded JSON response."""


class HttpEndpoint:
    """POST /invocations on an endpoint with the SageMaker container contract.

    Keeps one HTTP/1.1 connection open and reopens it after an error.
    """

    def __init__(self, url: str, timeout_s: float = 10.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"endpoint URL must be http(s)://host[:port], got {url!r}")
        self.name = url
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port or (443 if self._https else 80)
        self._path = parsed.path.rstrip("/") + "/invocations"
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def invoke(self, request: dict) -> dict:
        """POST the request as JSON.

        Raises:
            EndpointUnavailable: connection failure, timeout or HTTP 5xx.
            EndpointRequestError: HTTP 4xx, with the endpoint's message.
        """
        body = json.dumps(request, allow_nan=False).encode("utf-8")
        try:
            connection = self._connect()
            connection.request("POST", self._path, body=body,
                               headers={"Content-Type": JSON, "Accept": JSON})
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise EndpointUnavailable(f"{self.name}: {type(error).__name__}: {error}") from error
        if response.status >= 500:
            self.close()
            raise EndpointUnavailable(f"{self.name}: HTTP {response.status}: "
                                      f"{_message(payload)}")
        if response.status != 200:
            raise EndpointRequestError(f"{self.name}: HTTP {response.status}: "
                                       f"{_message(payload)}", response.status)
        return json.loads(payload)

    def close(self) -> None:
        """Close the kept-open connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = factory(self._host, self._port, timeout=self._timeout_s)
        return self._connection


class SageMakerEndpoint:
    """`invoke_endpoint` of boto3's sagemaker-runtime client.

    Args:
        endpoint_name: the SageMaker endpoint.
        region: AWS region; None uses the default chain (AWS_REGION, config).
        endpoint_url: override of the runtime API URL (tests use moto on
            loopback).
    """

    RETRYABLE = {"ServiceUnavailable", "ThrottlingException", "InternalFailure",
                 "InternalServerError", "ModelNotReadyException"}

    def __init__(self, endpoint_name: str, region: str | None = None,
                 endpoint_url: str | None = None, timeout_s: float = 60.0):
        import boto3
        from botocore.config import Config

        self.name = f"sagemaker:{endpoint_name}"
        self.endpoint_name = endpoint_name
        self._client = boto3.client(
            "sagemaker-runtime", region_name=region or None, endpoint_url=endpoint_url,
            config=Config(read_timeout=timeout_s, retries={"max_attempts": 1}),
        )

    def invoke(self, request: dict) -> dict:
        """Invoke the endpoint with the JSON request.

        Raises:
            EndpointUnavailable: network errors, throttling, 5xx service errors.
            EndpointRequestError: the model container returned 4xx
                (`ModelError`) or the request was invalid.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        body = json.dumps(request, allow_nan=False).encode("utf-8")
        try:
            response = self._client.invoke_endpoint(
                EndpointName=self.endpoint_name, ContentType=JSON, Accept=JSON, Body=body)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in self.RETRYABLE or status >= 500:
                raise EndpointUnavailable(f"{self.name}: {code}: {error}") from error
            raise EndpointRequestError(f"{self.name}: {code}: {error}", status or 400) from error
        except BotoCoreError as error:
            raise EndpointUnavailable(f"{self.name}: {error}") from error
        return json.loads(response["Body"].read())

    def close(self) -> None:
        """Nothing to release; present for symmetry with HttpEndpoint."""


def _message(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("message", ""))[:300]
    except (ValueError, AttributeError):
        return payload[:300].decode("utf-8", errors="replace")
