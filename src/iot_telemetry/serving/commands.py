"""Command `serve`: the local endpoint with the SageMaker container's contract."""

from __future__ import annotations

import argparse
import signal

from iot_telemetry.options import port_number

DEFAULT_PACKAGE = "models/package"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` command to the top-level parser."""
    serve = subparsers.add_parser(
        "serve",
        help="serve the packaged model on GET /ping and POST /invocations",
        description="Verify the model archive against its manifest, unpack it as the "
        "SageMaker container does and serve it with gunicorn until interrupted.",
    )
    serve.add_argument(
        "--model",
        default=DEFAULT_PACKAGE,
        help="package folder holding model.tar.gz and manifest.json, or the archive "
        f"itself (default: {DEFAULT_PACKAGE})",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=port_number, default=8080, help="TCP port (default: 8080)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gunicorn worker processes (default: one per CPU, at least 2)",
    )
    serve.set_defaults(handler=run_serve)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from iot_telemetry.paths import resolve
    from iot_telemetry.serving.server import LocalEndpoint

    package = Path(args.model)
    if not package.exists():
        package = resolve(args.model)
    endpoint = LocalEndpoint(
        package, host=args.host, port=args.port, workers=args.workers
    )
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        endpoint.start()
        print(f"serving on {endpoint.url} (POST /invocations, GET /ping); Ctrl-C stops")
        return endpoint.wait()
    finally:
        endpoint.stop()
