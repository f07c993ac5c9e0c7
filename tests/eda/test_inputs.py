"""The EDA inputs: ingest outputs from files, or the in-memory twin sample."""

from __future__ import annotations

import pandas as pd
import pytest

from iot_telemetry.data.readers import read_inputs, write_outputs
from iot_telemetry.eda.inputs import load_eda_inputs
from iot_telemetry.errors import InputError


@pytest.fixture
def ingest_dir(tmp_path, kaggle_head):
    write_outputs(read_inputs([kaggle_head]), tmp_path)
    return tmp_path


def load(folder, truth_path="", data_input="synthetic"):
    return load_eda_inputs(str(folder / "readings.parquet"),
                           str(folder / "quarantine.parquet"),
                           str(folder / "ingest.json"), truth_path, data_input,
                           sample_days=0.1, seed=0)


def test_ingest_outputs_loaded(ingest_dir):
    inputs = load(ingest_dir)
    assert len(inputs.readings) == 9
    assert inputs.summary["kept"] == 9
    assert inputs.quarantine.empty
    assert inputs.is_twin
    assert inputs.truth is None
    assert "no ground-truth file" in inputs.truth_note


def test_truth_read_for_synthetic_input(ingest_dir):
    truth_path = ingest_dir / "truth.csv"
    truth_path.write_text("kind,device,ts,sensor,value,clean_value\n"
                          "duplicate,b8:27:eb:bf:9d:51,1594512094.3859746,,,\n")
    inputs = load(ingest_dir, truth_path=str(truth_path))
    assert inputs.truth_note == ""
    assert inputs.truth["ts"].tolist() == [1594512094.3859746]


def test_truth_ignored_for_real_input(ingest_dir):
    truth_path = ingest_dir / "truth.csv"
    truth_path.write_text("kind,device,ts,sensor,value,clean_value\n")
    inputs = load(ingest_dir, truth_path=str(truth_path), data_input="capture.json.zip")
    assert inputs.truth is None
    assert not inputs.is_twin
    assert "capture.json.zip" in inputs.truth_note
    assert inputs.source == "capture.json.zip"


def test_missing_readings_file_raises(tmp_path):
    with pytest.raises(InputError, match="readings not found"):
        load(tmp_path)


def test_empty_path_generates_sample():
    inputs = load_eda_inputs("", "", "", "", "synthetic", sample_days=0.05, seed=0)
    assert inputs.summary is None
    assert inputs.truth is not None
    assert inputs.is_twin
    span = inputs.readings["time"].max() - inputs.readings["time"].min()
    assert span < pd.Timedelta(hours=1.2)
    assert "0.05 days" in inputs.source
