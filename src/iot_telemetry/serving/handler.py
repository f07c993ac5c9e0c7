"""The endpoint's model loading, prediction and response encoding.

`code/inference.py` in the model archive delegates its four SageMaker handler
functions to this module, and the local server calls them the same way.

The scikit-learn image serves with sagemaker-containers, which re-raises any
exception from a user handler function as its ClientError, and its Flask app
returns HTTP 500 for it (`_functions.error_wrapper` and
`_transformer.Transformer` in sagemaker-containers). So `input_fn` returns a
`RequestError` instead of raising it, `predict_fn` passes it through, and
`output_fn` turns it into a 4xx response with a JSON error body
(``schemas/error.v1.json``).

NOTE: that toolkit behaviour was read in its source, not observed on the
1.9-0 image, which is not available here.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iot_telemetry.serving.payload import (
    ACCEPTED_TYPES,
    CSV,
    JSON,
    RequestError,
    parse_body,
    split_media_type,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
RESPONSE_SCHEMA = "urn:iot-telemetry:schema:response:v1"
ERROR_SCHEMA = "urn:iot-telemetry:schema:error:v1"
PREDICTION_COLUMNS = ("device_id", "ts", "score", "flag", "status", "reasons")
# Separator of the reasons list inside one text/csv field.
CSV_REASON_SEPARATOR = ";"


@dataclass(frozen=True)
class Response:
    """An encoded response: body bytes, media type and HTTP status."""

    body: bytes
    content_type: str
    status: int = 200


@dataclass
class ServingModel:
    """The selected anomaly model plus what the response reports about it.

    Attributes:
        selected: the object returned by
            `iot_telemetry.anomaly.model.load_selected`.
        info: name and sha256 of the model, copied from the model card into
            every response.
    """

    selected: Any
    info: dict[str, str]


@dataclass
class Prediction:
    """Scores of the non-context readings of one request, in request order."""

    frame: pd.DataFrame
    info: dict[str, str]


def model_info(card: dict) -> dict[str, str]:
    """Return the model's name, creation time and model.joblib sha256 from its card."""
    info = {"name": str(card.get("candidate") or card.get("name") or "unknown")}
    artifact = (card.get("artifacts") or {}).get(MODEL_FILE) or {}
    if isinstance(artifact.get("sha256"), str):
        info["sha256"] = artifact["sha256"]
    if card.get("created"):
        info["created"] = str(card["created"])
    return info


def model_fn(model_dir: str | Path) -> ServingModel:
    """Load and verify the selected model from an unpacked archive folder.

    Raises:
        ModelVerificationError: model_card.json or a file it lists is
            missing, or a file's sha256 differs from the card.
    """
    from iot_telemetry.anomaly.model import load_selected

    selected = load_selected(Path(model_dir))
    return ServingModel(selected=selected, info=model_info(selected.card))


def input_fn(
    body: bytes | str | None, content_type: str | None
) -> pd.DataFrame | RequestError:
    """Parse a request body; return the RequestError instead of raising it."""
    try:
        return parse_body(body, content_type)
    except RequestError as error:
        return error


def predict_fn(
    data: pd.DataFrame | RequestError, model: ServingModel
) -> Prediction | RequestError:
    """Score every reading not marked as context, in request order.

    Raises:
        RuntimeError: the model returned a different set of readings than it
            was given (a model bug, so the server returns HTTP 500).
    """
    if isinstance(data, RequestError):
        return data
    aliases = getattr(model.selected, "device_aliases", None) or {}
    scored = with_aliases(data, aliases)
    scores = model.selected.score(scored)
    frame = align_scores(scored, scores)
    if scored is not data:
        # Responses carry the device ids as the caller sent them.
        frame["device_id"] = _text_array(data["device"])[~data["context"].to_numpy(dtype=bool)]
    return Prediction(frame=frame, info=model.info)


def with_aliases(readings: pd.DataFrame, aliases: dict[str, str]) -> pd.DataFrame:
    """Return `readings` with device ids mapped through `aliases`.

    The selected model's device_aliases.json maps ids that a source uses
    (the MQTT capture's) to the ids the model was trained with, as
    `devices.aliases` does for ingest and `score`. Returns the same frame
    when no id needs mapping.
    """
    if not aliases or not readings["device"].isin(list(aliases)).any():
        return readings
    mapped = readings.copy()
    mapped["device"] = readings["device"].replace(aliases)
    return mapped


def align_scores(readings: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Check the model's output against the scored readings and rename for the response.

    The model returns one row per reading not marked as context, in request
    order. Returns a frame with PREDICTION_COLUMNS; `reasons` contains lists.

    Raises:
        RuntimeError: the output rows do not match the scored readings (a
            model bug, so the server returns HTTP 500).
    """
    scored = ~readings["context"].to_numpy(dtype=bool)
    devices = _text_array(readings["device"])[scored]
    stamps = readings["ts"].to_numpy(dtype="float64")[scored]
    if len(scores) != len(devices):
        raise RuntimeError(
            f"model returned {len(scores)} rows for {len(devices)} readings"
        )
    same_ts = np.array_equal(
        scores["ts"].to_numpy(dtype="float64"), stamps, equal_nan=True
    )
    if not same_ts or not (_text_array(scores["device"]) == devices).all():
        raise RuntimeError("model output is not in the order of the scored readings")
    return pd.DataFrame(
        {
            "device_id": pd.Series(devices, dtype=object),
            "ts": stamps,
            "score": scores["score"].to_numpy(dtype="float64"),
            "flag": scores["flag"].to_numpy(dtype=bool),
            "status": pd.Series(_text_array(scores["status"]), dtype=object),
            "reasons": pd.Series(_reason_lists(scores["reasons"]), dtype=object),
        }
    )


def _text_array(values: pd.Series) -> np.ndarray:
    """Return a text column as a numpy object array of str, with "<NA>" for NA."""
    return values.to_numpy(dtype=object, na_value="<NA>")


def _reason_lists(values: pd.Series) -> list[list[str]]:
    """Split each of the model's ';'-joined reasons into a list ([] when missing or empty).

    A batch has few distinct reasons, so each is split once and copied per row.
    """
    codes, uniques = pd.factorize(values.to_numpy(dtype=object, na_value=None))
    lists = [_reason_list(value) for value in uniques] + [[]]
    return [lists[code].copy() for code in codes.tolist()]


def _reason_list(value: object) -> list[str]:
    """Split the model's ';'-joined reasons; missing or empty gives []."""
    if not isinstance(value, str):
        return []
    return [part for part in value.split(CSV_REASON_SEPARATOR) if part]


def choose_accept(accept: str | None) -> str | None:
    """Return the response media type for an Accept header, or None if none fits.

    A missing header, */* or application/* means application/json; a
    comma-separated list is tried in order (quality values are ignored).
    """
    if not accept or not accept.strip():
        return JSON
    for candidate in accept.split(","):
        media, _ = split_media_type(candidate)
        if media in ("*/*", "application/*"):
            return JSON
        if media == "text/*":
            return CSV
        if media in ACCEPTED_TYPES:
            return media
    return None


def output_fn(prediction: Prediction | RequestError, accept: str | None) -> Response:
    """Encode a prediction, or a request error, as the response."""
    if isinstance(prediction, RequestError):
        return error_response(prediction)
    media = choose_accept(accept)
    if media is None:
        return error_response(
            RequestError(
                f"unsupported Accept {accept!r}; accepted: {', '.join(ACCEPTED_TYPES)}",
                status=406,
            )
        )
    if media == CSV:
        return Response(encode_csv(prediction.frame), f"{CSV}; charset=utf-8")
    return Response(encode_json(prediction), JSON)


def error_response(error: RequestError) -> Response:
    """Encode a RequestError as a JSON error body with its HTTP status."""
    body = {
        "schema": ERROR_SCHEMA,
        "status": error.status,
        "message": str(error),
        "errors": error.errors,
    }
    if error.status in (406, 415):
        body["accepted"] = list(ACCEPTED_TYPES)
    return Response(json.dumps(body).encode("utf-8"), JSON, status=error.status)


def prediction_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Turn aligned scores into response records; a NaN score becomes null."""
    scores = [None if math.isnan(score) else score for score in frame["score"].tolist()]
    return [
        {
            "device_id": device,
            "ts": ts,
            "score": score,
            "flag": flag,
            "status": status,
            "reasons": reasons,
        }
        for device, ts, score, flag, status, reasons in zip(
            frame["device_id"].tolist(),
            frame["ts"].tolist(),
            scores,
            frame["flag"].tolist(),
            frame["status"].tolist(),
            frame["reasons"],
        )
    ]


def encode_json(prediction: Prediction) -> bytes:
    """Encode a prediction as the response.v1 JSON document."""
    document = {
        "schema": RESPONSE_SCHEMA,
        "model": prediction.info,
        "predictions": prediction_records(prediction.frame),
    }
    return json.dumps(document, allow_nan=False).encode("utf-8")


def encode_csv(frame: pd.DataFrame) -> bytes:
    """Encode scores as CSV with a header row; reasons are joined by ';'."""
    lines = [",".join(PREDICTION_COLUMNS)]
    for record in prediction_records(frame):
        score = "" if record["score"] is None else repr(record["score"])
        fields = [
            _csv_field(record["device_id"]),
            repr(record["ts"]),
            score,
            "true" if record["flag"] else "false",
            _csv_field(record["status"]),
            _csv_field(CSV_REASON_SEPARATOR.join(record["reasons"])),
        ]
        lines.append(",".join(fields))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _csv_field(text: str) -> str:
    if any(char in text for char in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
