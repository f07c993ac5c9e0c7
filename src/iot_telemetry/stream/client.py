"""paho-mqtt 2.x clients configured from the stream settings.

All clients speak MQTT 5. Persistent ones connect with a fixed client id,
`clean_start=False` and a session expiry interval, so the broker keeps their
subscriptions and unacknowledged QoS 1 messages while they are away.
"""

from __future__ import annotations

import logging
import random
import ssl
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iot_telemetry.stream.settings import StreamParams

log = logging.getLogger(__name__)

# MQTT 5 maximum for Receive Maximum: QoS 1 messages the broker may have in
# flight to this client before it waits for acknowledgements.
RECEIVE_MAXIMUM = 65_535


def make_client(
    params: StreamParams,
    client_id: str,
    manual_ack: bool = False,
) -> mqtt.Client:
    """Create a paho client with the settings' credentials and TLS files.

    The client is not connected; call `connect()` (or `connect_async()`).
    Exceptions raised in callbacks are logged by paho instead of stopping its
    network loop (`suppress_exceptions`); callbacks here also catch their own.
    """
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    client.suppress_exceptions = True
    client.enable_logger(logging.getLogger("paho.mqtt"))
    if params.username:
        client.username_pw_set(params.username, params.password)
    if params.tls:
        client.tls_set(
            ca_certs=params.ca_certs,
            certfile=params.certfile or None,
            keyfile=params.keyfile or None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(params.tls_insecure)
    return client


def connect_properties(session_expiry_s: int) -> Properties:
    """Return CONNECT properties: session expiry and Receive Maximum."""
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = session_expiry_s
    properties.ReceiveMaximum = RECEIVE_MAXIMUM
    return properties


def connect(
    client: mqtt.Client,
    params: StreamParams,
    persistent: bool,
    session_expiry_s: int | None = None,
) -> None:
    """Open the TCP (or TLS) connection and send CONNECT; CONNACK comes later.

    Raises:
        OSError: the broker is unreachable (refused, timed out, TLS failure).
    """
    expiry = params.session_expiry_s if session_expiry_s is None else session_expiry_s
    client.connect(
        params.host,
        params.port,
        keepalive=params.keepalive_s,
        clean_start=not persistent,
        properties=connect_properties(expiry if persistent else 0),
    )


class Backoff:
    """Exponential reconnect delays with jitter: initial, x2 each time, capped."""

    def __init__(self, initial_s: float = 0.5, maximum_s: float = 30.0):
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.attempt = 0

    def next_delay(self) -> float:
        """Return the delay before the next attempt (seconds) and count it."""
        delay = min(self.maximum_s, self.initial_s * 2**self.attempt)
        self.attempt += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        """Start again from the initial delay after a success."""
        self.attempt = 0


def wait_connected(client: mqtt.Client, timeout_s: float) -> bool:
    """Poll `is_connected()` (for clients running `loop_start()`); False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.is_connected():
            return True
        time.sleep(0.01)
    return False


def reason_text(reason_code) -> str:
    """Render a paho ReasonCode or error code for log lines."""
    if reason_code is None:
        return "none"
    name = getattr(reason_code, "getName", None)
    return name() if callable(name) else str(reason_code)
