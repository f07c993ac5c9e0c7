"""Smoke test of a deployed endpoint with readings the model has not seen.

Each request contains one device's window: `context_readings` history readings
marked as context, then the readings to score. The last request is sent as
headerless CSV, the others as JSON. Every answer must be 200, match the
response schema, carry one prediction per scored reading, and equal what the
same archive's handler returns in this process for the same body.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import BOOL_SENSORS, FLOAT_SENSORS, KAGGLE_COLUMNS
from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)

# Largest score difference accepted between the endpoint and the in-process
# handler. Both run the same code on the same model, and JSON floats
# round-trip exactly, so only a different library version could differ.
SCORE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SmokeRequest:
    """One request body, its content type and how many readings it scores."""

    body: bytes
    content_type: str
    scored: int


# A sender posts one request and returns (HTTP status, response body).
Sender = Callable[[SmokeRequest], tuple[int, bytes]]


def unseen_readings(
    smoke_input: str, days: float, seed: int, training_seed: int | None, root: Path
) -> tuple[pd.DataFrame, dict]:
    """Return readings for the smoke test and a description of where they came from.

    Args:
        smoke_input: a file `ingest` reads (Kaggle CSV, MQTT dump, readings
            parquet); empty means a fresh sample of the synthetic twin.
        days: length of the twin sample.
        seed: seed of the twin sample.
        training_seed: seed of the twin the model was trained on, when it
            was trained on the twin; the smoke seed must differ from it.
        root: project root for relative paths.

    Raises:
        InputError: the twin seed equals the training seed, or the input
            file is missing.
    """
    if smoke_input:
        from iot_telemetry.data.readers import read_inputs
        from iot_telemetry.paths import resolve

        path = resolve(smoke_input, root)
        if not path.exists():
            raise InputError(
                f"deploy.local.smoke_input {smoke_input!r} not found ({path})"
            )
        readings = read_inputs([path]).readings
        return readings, {"source": smoke_input, "readings": len(readings)}
    if training_seed is not None and seed == training_seed:
        raise InputError(
            f"deploy.local.smoke_seed {seed} equals the seed of the twin the model was"
            " trained on, so the smoke readings would not be unseen; choose another seed"
        )
    from iot_telemetry.data.sample import sample_readings

    readings = sample_readings(days=days, seed=seed)
    return readings, {
        "source": "synthetic twin",
        "days": days,
        "seed": seed,
        "readings": len(readings),
    }


def _message(row: dict, context: bool) -> dict:
    data = {name: _json_value(row[name]) for name in (*FLOAT_SENSORS, *BOOL_SENSORS)}
    message = {"data": data, "device_id": str(row["device"]), "ts": float(row["ts"])}
    if context:
        message["context"] = True
    return message


def _json_value(value: object) -> object:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    number = float(value)
    return None if math.isnan(number) else number


def _csv_field(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _csv_row(row: dict, context: bool) -> str:
    """Render a reading in the Kaggle column order, plus the context column."""
    fields = {"ts": repr(float(row["ts"])), "device": str(row["device"])}
    for name in (*FLOAT_SENSORS, *BOOL_SENSORS):
        fields[name] = _csv_field(_json_value(row[name]))
    return ",".join([*(fields[name] for name in KAGGLE_COLUMNS), _csv_field(context)])


def build_requests(
    readings: pd.DataFrame,
    requests: int,
    per_request: int,
    context: int,
    csv_last: bool = True,
) -> list[SmokeRequest]:
    """Cut per-device windows out of `readings` into request bodies.

    Devices take turns; each request uses the next unused window of its
    device. With `csv_last` the last request is headerless CSV with a
    context column; the others are JSON ``{"instances": [...]}``.

    Raises:
        InputError: there are too few readings for the requested windows.
    """
    window = context + per_request
    devices = {
        device: group.sort_values("ts") for device, group in readings.groupby("device")
    }
    names = sorted(devices)
    bodies = []
    for number in range(requests):
        device = names[number % len(names)]
        start = (number // len(names)) * window
        rows = devices[device].iloc[start : start + window].to_dict("records")
        if len(rows) < window:
            raise InputError(
                f"device {device} has too few smoke readings for {requests} requests of"
                f" {window} readings; raise deploy.local.smoke_days"
            )
        marks = [position < context for position in range(window)]
        if csv_last and number == requests - 1:
            text = (
                "\n".join(_csv_row(row, mark) for row, mark in zip(rows, marks)) + "\n"
            )
            bodies.append(SmokeRequest(text.encode(), "text/csv", per_request))
        else:
            messages = [_message(row, mark) for row, mark in zip(rows, marks)]
            body = json.dumps({"instances": messages}).encode()
            bodies.append(SmokeRequest(body, "application/json", per_request))
    return bodies


def compare_predictions(actual: list[dict], expected: list[dict]) -> list[str]:
    """Return the differences between two prediction lists ([] when equal)."""
    if len(actual) != len(expected):
        return [f"{len(actual)} predictions, expected {len(expected)}"]
    problems = []
    for position, (got, want) in enumerate(zip(actual, expected)):
        for key in ("device_id", "ts", "flag", "status", "reasons"):
            if got.get(key) != want.get(key):
                problems.append(
                    f"prediction {position}: {key} {got.get(key)!r} != {want.get(key)!r}"
                )
        score, reference = got.get("score"), want.get("score")
        if (score is None) != (reference is None) or (
            score is not None and abs(score - reference) > SCORE_TOLERANCE
        ):
            problems.append(f"prediction {position}: score {score!r} != {reference!r}")
    return problems


def percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    """Return p50, p95 and max of latencies in milliseconds."""
    values = np.asarray(latencies_s, dtype=float) * 1000.0
    return {
        "p50": round(float(np.percentile(values, 50)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "max": round(float(values.max()), 3),
    }


def run_smoke(
    send: Sender, requests: list[SmokeRequest], reference: Sender | None
) -> dict:
    """Send every request, check each response and time it.

    Args:
        send: posts a request to the endpoint under test.
        requests: from `build_requests`.
        reference: posts the same request to the in-process handler of the
            same archive, whose predictions the endpoint must match; None
            skips the comparison.

    Returns:
        A summary: requests, readings scored, flagged, passed, latency_ms
        (p50, p95, max), and up to 10 problems.
    """
    from iot_telemetry.serving.schemas import validation_errors

    problems: list[str] = []
    latencies, flagged, scored = [], 0, 0
    for number, request in enumerate(requests):
        started = time.perf_counter()
        status, body = send(request)
        latencies.append(time.perf_counter() - started)
        label = f"request {number} ({request.content_type})"
        if status != 200:
            problems.append(f"{label}: HTTP {status}: {body[:200]!r}")
            continue
        document = json.loads(body)
        problems += [
            f"{label}: {error}" for error in validation_errors(document, "response")
        ]
        predictions = document.get("predictions", [])
        if len(predictions) != request.scored:
            problems.append(
                f"{label}: {len(predictions)} predictions for {request.scored} readings"
            )
        if reference is not None:
            _, expected = reference(request)
            differences = compare_predictions(
                predictions, json.loads(expected)["predictions"]
            )
            problems += [f"{label}: {difference}" for difference in differences[:3]]
        flagged += sum(1 for prediction in predictions if prediction.get("flag"))
        scored += len(predictions)
    summary = {
        "requests": len(requests),
        "readings_scored": scored,
        "flagged": flagged,
        "matches_in_process_handler": reference is not None and not problems,
        "passed": not problems,
        "latency_ms": percentiles_ms(latencies),
        "problems": problems[:10],
    }
    log.info(
        "smoke test: %d requests, %d readings, %d flagged, p50 %.1f ms, %s",
        summary["requests"],
        scored,
        flagged,
        summary["latency_ms"]["p50"],
        "passed" if summary["passed"] else f"FAILED: {problems[:3]}",
    )
    return summary
