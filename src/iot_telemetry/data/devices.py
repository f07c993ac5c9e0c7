"""Known devices of the Environmental Sensor Telemetry dataset."""

from __future__ import annotations

KAGGLE_DEVICES = ("00:0f:00:70:91:0a", "1c:bf:ce:15:ec:4d", "b8:27:eb:bf:9d:51")

# The dataset author's MQTT capture anonymises device ids differently from the
# Kaggle file. Matched by value profile: stable, cool and humid; variable with
# the light always on; stable, warm and dry.
CAPTURE_TO_KAGGLE = {
    "0e:9c:00:4c:1c:51": "00:0f:00:70:91:0a",
    "5e:44:3b:f3:79:c8": "1c:bf:ce:15:ec:4d",
    "f3:6b:f4:34:c0:17": "b8:27:eb:bf:9d:51",
}


def parse_alias_options(options: list[str]) -> dict[str, str]:
    """Parse `OLD=NEW` command-line options into a device id mapping.

    Raises:
        ValueError: an option has no `=` or an empty side.
    """
    mapping = {}
    for option in options:
        old, sep, new = option.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValueError(f"invalid alias {option!r}: expected OLD_ID=NEW_ID")
        mapping[old.strip()] = new.strip()
    return mapping
