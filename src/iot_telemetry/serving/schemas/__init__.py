"""Versioned JSON Schemas of the endpoint's request, response and error bodies.

`load_schema("request")` returns the newest version; the files are
``NAME.vN.json`` in this folder. Validation with jsonschema is for the
project environment (tests, `score`, the streaming scorer): the archive's
handler applies the same rules in `iot_telemetry.serving.payload` without it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
NAMES = ("request", "response", "error")
CURRENT_VERSION = 1


@lru_cache(maxsize=None)
def load_schema(name: str, version: int = CURRENT_VERSION) -> dict:
    """Return a schema as a dict.

    Raises:
        ValueError: an unknown name or version.
    """
    path = SCHEMA_DIR / f"{name}.v{version}.json"
    if name not in NAMES or not path.is_file():
        raise ValueError(
            f"no schema {name!r} version {version}; known: {', '.join(NAMES)}"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def validator(name: str, version: int = CURRENT_VERSION):
    """Return a jsonschema validator for a schema (needs the jsonschema package)."""
    import jsonschema

    schema = load_schema(name, version)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validation_errors(
    document: object, name: str, version: int = CURRENT_VERSION
) -> list[str]:
    """Return one message per schema violation in `document` ([] if valid)."""
    errors = validator(name, version).iter_errors(document)
    return [
        f"{error.json_path}: {error.message}"
        for error in sorted(errors, key=lambda e: e.json_path)
    ]
