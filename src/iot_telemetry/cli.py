"""The `iot-telemetry` command line.

Each subpackage that offers commands has a light `commands` module with a
`register(subparsers)` function. Those modules import their heavy
dependencies inside the command handlers, so `iot-telemetry --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from iot_telemetry.errors import InputError

COMMAND_MODULES = [
    "iot_telemetry.data.commands",
    "iot_telemetry.pipeline.commands",
    "iot_telemetry.stream.commands",
    "iot_telemetry.serving.commands",
    "iot_telemetry.deploy.commands",
    "iot_telemetry.anomaly.commands",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="iot-telemetry",
        description="IoT telemetry: ingest, model, deploy and stream sensor readings.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log at DEBUG level"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def configure_logging(verbose: bool) -> None:
    """Send log records to stderr; the only place handlers are configured."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("cmdstanpy", "botocore", "urllib3", "matplotlib", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        status = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except InputError as error:
        logging.getLogger("iot_telemetry").error("%s", error)
        return 2
    return int(status or 0)

