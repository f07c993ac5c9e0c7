"""Start, probe and stop the local endpoint (gunicorn serving a model archive).

`LocalEndpoint` verifies the archive against its manifest and unpacks it into
a temporary folder, as SageMaker does into /opt/ml/model. It then binds the
socket and runs `iot_telemetry.serving.localserver` in a child process whose
PYTHONPATH is the archive's code/ folder, so the code under test is the code
in the archive.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from iot_telemetry.errors import InputError
from iot_telemetry.serving.archive import (
    CODE_DIR,
    locate_package,
    sha256_file,
    unpack_archive,
    verify_archive,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_PACKAGE = "models/package"
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def default_workers() -> int:
    """Return one worker per CPU, at least two (the container runs one per CPU)."""
    return max(2, os.cpu_count() or 1)


class LocalEndpoint:
    """The local endpoint as a context manager.

    Args:
        package: a package folder (model.tar.gz + manifest.json) or the archive.
        host: address to bind, 127.0.0.1 by default.
        port: TCP port; 0 picks a free one (see `url` after start).
        workers: gunicorn sync workers; default one per CPU, at least two.
        log_file: where the server's log lines go; None inherits stderr.
        startup_timeout_s: how long to wait for GET /ping to return 200.
        server: "gunicorn", or "wsgiref" for the single-process baseline of
            the load test.
    """

    def __init__(
        self,
        package: str | Path = DEFAULT_PACKAGE,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        workers: int | None = None,
        log_file: IO[bytes] | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        server: str = "gunicorn",
    ) -> None:
        self.package = Path(package)
        self.server = server
        self.host = host
        self.port = port
        self.workers = workers or default_workers()
        self.log_file = log_file
        self.startup_timeout_s = startup_timeout_s
        self.manifest: dict = {}
        self.model_dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        """Base URL, such as http://127.0.0.1:8080."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> LocalEndpoint:
        """Verify, unpack and start serving; return once /ping returns 200.

        Raises:
            InputError: the archive is missing or differs from its manifest,
                or the address cannot be bound.
            RuntimeError: the server exited or did not become ready in time.
        """
        archive, manifest = locate_package(self.package)
        self.manifest = verify_archive(archive, manifest)
        self._tmp = tempfile.TemporaryDirectory(prefix="iot-telemetry-model-")
        try:
            self.model_dir = unpack_archive(archive, Path(self._tmp.name) / "model")
            listener = self._bind()
            with listener:
                self.process = self._spawn(listener)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info(
            "local endpoint %s serves %s (sha256 %s) with %d workers",
            self.url,
            archive,
            self.manifest.get("sha256"),
            self.workers,
        )
        return self

    def _bind(self) -> socket.socket:
        if self.host not in _LOOPBACK_HOSTS:
            log.warning(
                "binding %s: the endpoint is reachable beyond this machine", self.host
            )
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            listener = socket.create_server(
                (self.host, self.port), family=family, backlog=128
            )
        except OSError as error:
            raise InputError(
                f"cannot listen on {self.host}:{self.port}: {error.strerror or error};"
                " choose another --port or stop the process using it"
            ) from None
        self.port = listener.getsockname()[1]
        os.set_inheritable(listener.fileno(), True)
        return listener

    def _spawn(self, listener: socket.socket) -> subprocess.Popen:
        assert self.model_dir is not None
        env = dict(os.environ, PYTHONPATH=str(self.model_dir / CODE_DIR))
        command = [
            sys.executable,
            "-m",
            "iot_telemetry.serving.localserver",
            "--model-dir",
            str(self.model_dir),
            "--fd",
            str(listener.fileno()),
            "--workers",
            str(self.workers),
            "--server",
            self.server,
        ]
        return subprocess.Popen(
            command,
            env=env,
            pass_fds=(listener.fileno(),),
            stdout=self.log_file,
            stderr=subprocess.STDOUT if self.log_file is not None else None,
        )

    def ping(self, timeout_s: float = 2.0) -> int:
        """Return the HTTP status of GET /ping (SageMaker allows 2 s)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            connection.request("GET", "/ping")
            return connection.getresponse().status
        finally:
            connection.close()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"local endpoint exited with status {code} during start-up"
                )
            try:
                if self.ping() == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"local endpoint did not respond to GET /ping within {self.startup_timeout_s:.0f} s;"
            " see its log above"
        )

    def wait(self) -> int:
        """Block until the server exits; return its exit status."""
        assert self.process is not None
        return self.process.wait()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and delete the unpacked archive."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning(
                    "local endpoint ignored SIGTERM for %.0f s; killing it",
                    STOP_TIMEOUT_S,
                )
                self.process.kill()
                self.process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def stale_code(manifest: dict) -> list[str]:
    """Return the archive's vendored modules that differ from the installed package.

    Compares the sha256 values in the manifest with the files of the
    ``iot_telemetry`` package this process imports.
    """
    import iot_telemetry

    installed = Path(iot_telemetry.__file__).resolve().parent
    prefix = f"{CODE_DIR}/iot_telemetry/"
    stale = []
    for entry in manifest.get("files", []):
        if not entry["path"].startswith(prefix):
            continue
        relative = entry["path"][len(prefix) :]
        path = installed / relative
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            stale.append(f"iot_telemetry/{relative}")
    return stale


class LoadedArchive:
    """A verified archive's handler and model, called in this process.

    The reference the endpoint is compared with, and the in-process baseline
    of the load test. In this process the handler uses the installed
    ``iot_telemetry`` package, not the archive's copy.
    """

    def __init__(self, package: str | Path = DEFAULT_PACKAGE) -> None:
        from iot_telemetry.serving.archive import import_handler

        archive, manifest = locate_package(package)
        self.manifest = verify_archive(archive, manifest)
        stale = stale_code(self.manifest)
        if stale:
            raise InputError(
                f"the installed iot_telemetry differs from the code in {archive}"
                f" ({', '.join(stale[:5])}); rebuild it with `iot-telemetry package`"
            )
        self._tmp = tempfile.TemporaryDirectory(prefix="iot-telemetry-model-")
        self.model_dir = unpack_archive(archive, Path(self._tmp.name) / "model")
        self.handler = import_handler(self.model_dir)
        self.model = self.handler.model_fn(str(self.model_dir))

    def invoke(self, body: bytes | str, content_type: str, accept: str | None = None):
        """Run the four handler functions on one body; return the handler's Response."""
        data = self.handler.input_fn(body, content_type)
        prediction = self.handler.predict_fn(data, self.model)
        return self.handler.output_fn(prediction, accept)

    def close(self) -> None:
        """Delete the unpacked archive."""
        self._tmp.cleanup()

    def __enter__(self) -> LoadedArchive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
