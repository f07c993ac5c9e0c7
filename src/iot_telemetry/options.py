"""Argument types shared by the command-line subcommands."""

from __future__ import annotations

import argparse


def port_number(text: str) -> int:
    """Parse a TCP port for argparse: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected an integer") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: expected 0 to 65535")
    return port
