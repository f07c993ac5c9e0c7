"""The EDA notebook's inputs: pipeline files, or an in-memory sample of the twin."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from iot_telemetry.data.readers import load_readings
from iot_telemetry.data.sample import sample_with_truth
from iot_telemetry.data.validate import quarantine_frame
from iot_telemetry.eda.glitches import load_truth
from iot_telemetry.eda.quality import load_summary
from iot_telemetry.paths import resolve

log = logging.getLogger(__name__)

SYNTHETIC_INPUT = "synthetic"


@dataclass
class EdaInputs:
    """What the EDA notebook analyses.

    `summary` is the ingest.json content, None for the in-memory sample.
    `truth` is the twin's ground truth, None when the readings are not the
    twin's or no truth file exists, and `truth_note` then gives the reason.
    `is_twin` is whether the readings come from the synthetic twin.
    """

    readings: pd.DataFrame
    quarantine: pd.DataFrame
    summary: dict | None
    truth: pd.DataFrame | None
    truth_note: str
    source: str
    is_twin: bool


def load_eda_inputs(
    readings_path: str,
    quarantine_path: str,
    summary_path: str,
    truth_path: str,
    data_input: str,
    sample_days: float,
    seed: int,
) -> EdaInputs:
    """Load the pipeline's ingest outputs, or generate a sample when `readings_path` is "".

    With `readings_path` "", the readings are `sample_days` of the twin with
    `seed` (duplicates removed as ingest removes them) plus its truth, and
    the other paths are ignored. Otherwise the paths resolve from the
    project root, and an empty quarantine or summary path means none. The
    truth file is read only when `data_input` is "synthetic" and it exists.

    Raises:
        InputError: the readings file is missing or malformed.
    """
    if not readings_path:
        readings, truth = sample_with_truth(days=sample_days, seed=seed)
        return EdaInputs(readings, quarantine_frame([]), None, truth, "",
                         f"in-memory sample of the synthetic twin ({sample_days:g} days, "
                         f"seed {seed})", True)

    readings = load_readings(resolve(readings_path))
    quarantine = (pd.read_parquet(resolve(quarantine_path)) if quarantine_path
                  else quarantine_frame([]))
    summary = load_summary(resolve(summary_path)) if summary_path else None
    is_twin = data_input == SYNTHETIC_INPUT
    truth, note = None, ""
    if not is_twin:
        note = f"the input {data_input} is not the synthetic twin, so there is no ground truth"
    elif not truth_path or not resolve(truth_path).is_file():
        note = f"no ground-truth file at {truth_path or '(not set)'}"
    else:
        truth = load_truth(resolve(truth_path))
    source = "synthetic twin" if is_twin else str(data_input)
    return EdaInputs(readings, quarantine, summary, truth, note, source, is_twin)
