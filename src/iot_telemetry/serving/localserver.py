"""Gunicorn entry point that serves an unpacked model archive.

Run by `iot_telemetry.serving.server.LocalEndpoint` as::

    PYTHONPATH=MODEL_DIR/code python -m iot_telemetry.serving.localserver \\
        --model-dir MODEL_DIR --fd FD --workers N

so that the handler and the ``iot_telemetry`` modules come from the archive,
as in the container. The parent binds the listening socket and passes its file
descriptor, so the port is known before start-up and never raced for. The
model is loaded once in the gunicorn master and shared by the forked sync
workers.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from pathlib import Path

import iot_telemetry
from iot_telemetry.serving.archive import import_handler
from iot_telemetry.serving.wsgi import EndpointApp

# Named explicitly: the module runs as __main__.
log = logging.getLogger("iot_telemetry.serving.localserver")

# SageMaker expects an invocation to respond within 60 s, so gunicorn
# restarts a worker that is silent for longer.
WORKER_TIMEOUT_S = 60
SHARED_MEMORY_DIR = "/dev/shm"


def load_app(model_dir: Path) -> EndpointApp:
    """Import the archive's handler, load its model and wrap both in the WSGI app.

    Then moves every object allocated so far (libraries, model) to the
    garbage collector's permanent generation with `gc.freeze`, so full
    collections skip them. Without it, one full collection of a process
    with the model loaded took about 90 ms on the 2-core machine the load
    test ran on. As Python's gc.freeze documentation explains, forked
    workers then also keep sharing those pages with the master.
    """
    handler = import_handler(model_dir)
    model = handler.model_fn(str(model_dir))
    log.info(
        "handler %s uses the iot_telemetry package at %s",
        handler.__file__,
        Path(iot_telemetry.__file__).parent,
    )
    app = EndpointApp(handler, model)
    gc.collect()
    gc.freeze()
    return app


def build_application(model_dir: Path, bind: str, workers: int, timeout_s: int):
    """Return a gunicorn application serving the archive in model_dir."""
    from gunicorn.app.base import BaseApplication

    app = load_app(model_dir)
    options = {
        "bind": [bind],
        "workers": workers,
        # NOTE: a sync worker serves one connection at a time. A client that
        # never finishes its request head blocks a worker until `timeout`
        # (bodies time out sooner, in the app). SageMaker puts nginx in front.
        "worker_class": "sync",
        "timeout": timeout_s,
        "graceful_timeout": 10,
        "preload_app": True,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "iot-telemetry-endpoint",
        # Gunicorn 26 opens a control socket at a fixed path in the home
        # folder; two local endpoints would contend for it.
        "control_socket_disable": True,
    }
    if Path(SHARED_MEMORY_DIR).is_dir():
        # Each worker's heartbeat updates a file before every request, and
        # gunicorn 26's worker_tmp_dir help warns that this can block on a
        # disk-backed folder. /dev/shm is a tmpfs on Linux.
        options["worker_tmp_dir"] = SHARED_MEMORY_DIR

    class Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):
            return app

    return Application()


def serve_wsgiref(model_dir: Path, fd: int) -> None:
    """Serve the archive with wsgiref: one process, one request at a time.

    The load test's baseline, the simplest server the standard library has;
    not for production use.
    """
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Skip wsgiref's access log; the app logs each request."""

    app = load_app(model_dir)
    listener = socket.socket(fileno=fd)
    server = WSGIServer(
        listener.getsockname()[:2], QuietHandler, bind_and_activate=False
    )
    server.socket.close()
    server.socket = listener
    server.server_address = listener.getsockname()[:2]
    # server_bind() would set these; the socket is bound by the parent.
    server.server_name, server.server_port = server.server_address
    server.setup_environ()
    server.set_app(app)
    log.info("wsgiref serving %s on %s:%d", model_dir, *server.server_address)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run gunicorn until it is stopped."""
    parser = argparse.ArgumentParser(prog="python -m iot_telemetry.serving.localserver")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--fd", type=int, help="file descriptor of a bound socket")
    parser.add_argument("--bind", help="gunicorn bind address, when --fd is not given")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=WORKER_TIMEOUT_S)
    parser.add_argument(
        "--server",
        choices=("gunicorn", "wsgiref"),
        default="gunicorn",
        help="wsgiref: single-process baseline for the load test (needs --fd)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.server == "wsgiref":
        if args.fd is None:
            parser.error("--server wsgiref needs --fd")
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        serve_wsgiref(args.model_dir, args.fd)
        return 0
    bind = f"fd://{args.fd}" if args.fd is not None else args.bind
    if not bind:
        parser.error("give --fd or --bind")
    build_application(args.model_dir, bind, args.workers, args.timeout).run()
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    raise SystemExit(main())
