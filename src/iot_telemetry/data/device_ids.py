"""Rules for device ids, shared by the file readers, `score` and the endpoint.

This module imports only the standard library, because the model archive
vendors it for the SageMaker image (see `deploy.package`).
"""

from __future__ import annotations

import re

# Quarantine reason of a reading whose device id breaks these rules.
REASON_INVALID_DEVICE = "invalid device id"
# Device ids are MAC-address-like strings. Any printable id up to
# MAX_DEVICE_ID_CHARS is accepted, but control characters and U+FFFD (the
# replacement for undecodable bytes) are rejected because they would pass
# into file and topic names.
MAX_DEVICE_ID_CHARS = 128
INVALID_DEVICE_CHARS = re.compile(r"[\x00-\x1f\x7f\ufffd]")


def is_unicode_text(text: str) -> bool:
    """Return whether `text` encodes as UTF-8, which fails on a lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def device_id_problem(device: str) -> str:
    """Return why `device` is not a valid device id, or "" when it is valid.

    Surrounding whitespace is ignored because the file readers strip it. An
    id that is empty after stripping passes here: callers report it as
    missing.
    """
    device = device.strip()
    if len(device) > MAX_DEVICE_ID_CHARS:
        return f"has {len(device)} characters, over the limit of {MAX_DEVICE_ID_CHARS}"
    if not is_unicode_text(device):
        return "is not valid Unicode text (it has a lone surrogate)"
    match = INVALID_DEVICE_CHARS.search(device)
    if match:
        return f"contains the character U+{ord(match.group()):04X}"
    return ""
