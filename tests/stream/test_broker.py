"""Generated Mosquitto configs, the `stream broker` command, and the production
config (TLS listener, password file, ACL) running on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from iot_telemetry.stream.broker import (
    BrokerConfig,
    MosquittoProcess,
    device_username,
    free_port,
    render_acl,
    render_config,
    running_as_root,
    wait_for_port,
)
from iot_telemetry.stream.client import make_client
from iot_telemetry.stream.settings import StreamParams

from stream_helpers import ROOT, wait_until

DEVICE = "6e:81:c9:d4:9e:58"
OTHER_DEVICE = "00:0f:00:70:91:0a"


def test_local_config_is_loopback_and_sized_for_qos1(tmp_path):
    text = render_config(BrokerConfig(directory=tmp_path, port=18830))
    lines = text.splitlines()
    assert "listener 18830 127.0.0.1" in lines
    assert "allow_anonymous true" in lines
    assert "persistence true" in lines
    assert f"persistence_location {tmp_path.resolve()}/" in lines
    assert "max_queued_messages 1000000" in lines
    assert "max_inflight_messages 1000" in lines
    assert "max_packet_size 262144" in lines
    assert not any(line.startswith("password_file") for line in lines)


def test_production_config_needs_tls_and_auth_files(tmp_path):
    with pytest.raises(ValueError, match="cafile, certfile, keyfile, password_file"):
        render_config(BrokerConfig(directory=tmp_path), production=True)


def test_acl_limits_devices_to_their_topic():
    acl = render_acl([DEVICE])
    assert f"user {device_username(DEVICE)}\ntopic write telemetry/{DEVICE}\n" in acl
    assert "user ingest\ntopic read telemetry/#" in acl
    assert "user score\ntopic read telemetry/#\ntopic write alerts/#" in acl
    assert device_username(DEVICE) == "device-6e81c9d49e58"


def test_print_config_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "iot_telemetry", "stream", "broker", "--print-config",
         "--dir", str(tmp_path), "--port", "18831"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "listener 18831 127.0.0.1" in result.stdout
    assert not (tmp_path / "mosquitto.conf").exists()


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_broker_command_runs_until_sigterm(tmp_path, mosquitto_binary):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "iot_telemetry", "stream", "broker", "--dir", str(tmp_path),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 30), process.stderr.read1().decode()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=20)
        assert status == 0, process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            # Mosquitto runs in its own session, so it outlives a killed parent.
            pid_file = tmp_path / "mosquitto.pid"
            if pid_file.is_file():
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
    assert (tmp_path / "mosquitto.db").is_file()  # saved on the way out


def make_certificates(folder):
    """A CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed; it generates the test certificates")

    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=iot-telemetry test CA", "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def write_passwords(path, users: dict[str, str]):
    tool = shutil.which("mosquitto_passwd") or shutil.which(
        "mosquitto_passwd", path="/usr/bin:/usr/sbin")
    if tool is None:
        pytest.skip("mosquitto_passwd not installed (Debian package mosquitto)")
    path.touch()
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True,
                       capture_output=True)


class Session:
    """A connected paho client over TLS that records what it receives."""

    def __init__(self, params: StreamParams, client_id: str):
        self.messages: list[tuple[str, bytes]] = []
        self.refused: str | None = None
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client = make_client(params, client_id)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.connect(params.host, params.port)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.refused = reason_code.getName()
        else:
            self.connected.set()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_production_config_enforces_tls_passwords_and_acl(tmp_path, mosquitto_binary,
                                                          monkeypatch):
    cafile, certfile, keyfile = make_certificates(tmp_path)
    passwords = tmp_path / "passwd"
    write_passwords(passwords, {device_username(DEVICE): "device-secret",
                                "ingest": "ingest-secret"})
    acl = tmp_path / "acl"
    acl.write_text(render_acl([DEVICE, OTHER_DEVICE]))
    config = BrokerConfig(
        directory=tmp_path / "broker", port=free_port(), tls_port=free_port(),
        tls_bind="127.0.0.1", cafile=str(cafile), certfile=str(certfile),
        keyfile=str(keyfile), password_file=str(passwords), acl_file=str(acl),
        run_as_user="root" if running_as_root() else "",
    )
    tls = StreamParams(port=config.tls_port, ca_certs=str(cafile))
    monkeypatch.setenv("TEST_DEVICE_PASSWORD", "device-secret")
    monkeypatch.setenv("TEST_INGEST_PASSWORD", "ingest-secret")
    monkeypatch.setenv("TEST_WRONG_PASSWORD", "not-the-password")
    device = tls.model_copy(update={"username": device_username(DEVICE),
                                    "password_env": "TEST_DEVICE_PASSWORD"})
    ingest = tls.model_copy(update={"username": "ingest",
                                    "password_env": "TEST_INGEST_PASSWORD"})
    wrong = ingest.model_copy(update={"password_env": "TEST_WRONG_PASSWORD"})

    with MosquittoProcess(config, production=True, binary=mosquitto_binary):
        assert wait_for_port("127.0.0.1", config.tls_port, 10)
        reader = Session(ingest, "test-ingest")
        writer = Session(device, "test-device")
        intruder = Session(wrong, "test-wrong")
        anonymous = Session(tls, "test-anonymous")
        try:
            assert reader.connected.wait(10), reader.refused
            assert writer.connected.wait(10), writer.refused
            reader.client.subscribe("telemetry/#", qos=1)
            assert reader.subscribed.wait(10)
            # Allowed: its own topic. Denied by the ACL: another device's topic.
            writer.client.publish(f"telemetry/{OTHER_DEVICE}", b"spoofed", qos=1)
            writer.client.publish(f"telemetry/{DEVICE}", b"reading", qos=1).wait_for_publish(10)
            assert wait_until(lambda: reader.messages, 10)
            time.sleep(0.3)
            assert wait_until(lambda: intruder.refused, 10)
            assert wait_until(lambda: anonymous.refused, 10)
        finally:
            for session in (reader, writer, intruder, anonymous):
                session.close()
    assert reader.messages == [(f"telemetry/{DEVICE}", b"reading")]
    # Mosquitto 2.0.11 rejects a wrong password with "Not authorized" too.
    refusals = ("Not authorized", "Bad user name or password")
    assert intruder.refused in refusals
    assert anonymous.refused in refusals
    assert not intruder.connected.is_set()
    assert not anonymous.connected.is_set()
