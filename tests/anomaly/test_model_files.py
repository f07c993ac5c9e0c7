"""models/selected/: writing, verification before unpickling, and the score command."""

from __future__ import annotations

import json
import pickle
import zipfile

import pandas as pd
import pytest

from iot_telemetry.anomaly import stage
from iot_telemetry.anomaly.model import (
    DUPLICATE_REASON,
    ModelVerificationError,
    load_selected,
    verify_artifacts,
)
from iot_telemetry.anomaly.select import write_selected
from iot_telemetry.cli import main
from iot_telemetry.data.readers import read_inputs


@pytest.fixture(scope="module")
def model_dir(study, tmp_path_factory):
    """models/selected/ written from the small study, as the select stage does."""
    root = tmp_path_factory.mktemp("models")
    study.params.candidates_dir = str(root / "anomaly")
    stage.save_study_models(study)
    metrics = stage.write_metrics(stage.metrics_document(study, None), root / "anomaly.json")
    out = root / "selected"
    write_selected(root / "anomaly", metrics, out, study.params.selection_metric,
                   study.params.max_false_alarms_per_day)
    return out


def test_selected_folder_contents(model_dir, study):
    names = {path.name for path in model_dir.iterdir()}
    assert {"model.joblib", "thresholds.json", "features.json", "fault_sizes.json",
            "profiles.json", "model_card.json", "model_card.md"} <= names
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["candidate"] == study.selected
    assert set(card["artifacts"]) == names - {"model_card.json", "model_card.md"}
    assert len(card["training"]["sha256"]) == 64
    assert card["libraries"]["scikit-learn"]
    assert card["fault_sizes"]["spike_sigma"] == 6.0
    assert set(card["metrics"]["input"]["f1"]) == set(card["fault_kinds"])
    assert study.selected in (model_dir / "model_card.md").read_text()


def test_loaded_model_scores_like_fitted(model_dir, selected_model, clean_readings):
    loaded = load_selected(model_dir)
    frame = clean_readings.head(400)
    pd.testing.assert_frame_equal(loaded.score(frame), selected_model.score(frame))
    assert loaded.context_seconds > 0


def test_altered_model_file_rejected(model_dir, tmp_path):
    copy = tmp_path / "selected"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    data = bytearray((copy / "model.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.joblib").write_bytes(bytes(data))
    with pytest.raises(ModelVerificationError, match="model.joblib does not match"):
        load_selected(copy)


class _Marker:
    """Unpickling this writes a file: proof that a pickle was loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_unverified_pickle_never_loaded(model_dir, tmp_path):
    copy = tmp_path / "selected"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    marker = tmp_path / "unpickled"
    (copy / "model.joblib").write_bytes(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(ModelVerificationError, match="model.joblib"):
        load_selected(copy)
    assert not marker.exists()


def test_missing_card_rejected(model_dir, tmp_path):
    (tmp_path / "model.joblib").write_bytes((model_dir / "model.joblib").read_bytes())
    with pytest.raises(ModelVerificationError, match="model_card.json not found"):
        load_selected(tmp_path)


def test_altered_thresholds_rejected(model_dir, tmp_path):
    copy = tmp_path / "selected"
    copy.mkdir()
    for path in model_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "thresholds.json").write_text("{}\n")
    with pytest.raises(ModelVerificationError, match="thresholds.json does not match"):
        verify_artifacts(copy)


@pytest.fixture(scope="module")
def capture_head(mqtt_capture, tmp_path_factory):
    """The first 2,000 messages of the real capture, plus one with a NaN temp."""
    with zipfile.ZipFile(mqtt_capture) as archive:
        messages = json.loads(archive.read(archive.namelist()[0]))[:2000]
    bad = json.loads(json.dumps(messages[5]))
    bad["ts"] += 0.5
    bad["data"]["temp"] = float("nan")
    path = tmp_path_factory.mktemp("capture") / "head.json"
    path.write_text(json.dumps(messages + [bad]))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_command_one_row_per_reading(model_dir, capture_head, tmp_path, suffix, capsys):
    out = tmp_path / f"scored{suffix}"
    status = main(["score", str(capture_head), "--out", str(out), "--model", str(model_dir)])
    assert status == 0
    scored = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    ingested = read_inputs([capture_head])
    expected_rows = len(ingested.readings) + len(ingested.quarantine) + len(ingested.duplicates)
    assert len(scored) == expected_rows
    assert len(ingested.readings) >= 1990
    assert list(scored.columns) == ["device", "ts", "score", "flag", "status", "reasons"]
    invalid = scored[scored["reasons"].fillna("").str.startswith("quarantined: ")]
    assert len(invalid) == len(ingested.quarantine) >= 1
    assert (invalid["status"] == "invalid").all()
    assert not invalid["flag"].astype(bool).any()
    # The capture's ids are mapped to the Kaggle ids the model was trained on.
    assert (scored["status"] != "unknown_device").all()
    assert "flagged" in capsys.readouterr().out


def test_score_command_keeps_exact_duplicates(model_dir, capture_head, tmp_path):
    messages = json.loads(capture_head.read_text())
    doubled = tmp_path / "doubled.json"
    doubled.write_text(json.dumps(messages + messages[10:13]))
    out = tmp_path / "scored.csv"
    assert main(["score", str(doubled), "--out", str(out), "--model", str(model_dir)]) == 0
    scored = pd.read_csv(out)
    assert len(scored) == len(messages) + 3
    repeats = scored[scored["reasons"] == DUPLICATE_REASON]
    assert len(repeats) == 3
    assert (repeats["status"] == "invalid").all()
    assert not repeats["flag"].astype(bool).any()
    assert repeats["score"].isna().all()
    originals = {message["ts"] for message in messages[10:13]}
    assert set(repeats["ts"]) == originals


def test_score_command_rejects_unknown_suffix(model_dir, capture_head, tmp_path):
    assert main(["score", str(capture_head), "--out", str(tmp_path / "x.txt"),
                 "--model", str(model_dir)]) == 2


def test_score_command_rejects_unverified_model(capture_head, tmp_path):
    assert main(["score", str(capture_head), "--out", str(tmp_path / "x.csv"),
                 "--model", str(tmp_path)]) == 2


@pytest.mark.parametrize("target", ["folder.csv", "afile/x.csv"])
def test_score_command_checks_out_first(model_dir, capture_head, tmp_path, monkeypatch,
                                        target):
    """An unwritable --out fails before any input is read or scored."""
    from iot_telemetry.anomaly import commands

    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "afile").write_text("")

    def not_called(*args, **kwargs):
        raise AssertionError("score_inputs ran before --out was checked")

    monkeypatch.setattr(commands, "score_inputs", not_called)
    status = main(["score", str(capture_head), "--out", str(tmp_path / target),
                   "--model", str(model_dir)])
    assert status == 2


def test_score_command_write_failure_clear_error(model_dir, capture_head, tmp_path,
                                                 monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    status = main(["score", str(capture_head), "--out", str(tmp_path / "x.csv"),
                   "--model", str(model_dir)])
    assert status == 2


def test_score_command_invalid_unicode_device(model_dir, capture_head, tmp_path):
    """A lone surrogate in a device id is one invalid row, not a crash."""
    messages = json.loads(capture_head.read_text())[:3]
    messages[1]["device_id"] = "\ud800abc"
    path = tmp_path / "surrogate.json"
    path.write_text(json.dumps(messages))
    out = tmp_path / "scored.csv"
    assert main(["score", str(path), "--out", str(out), "--model", str(model_dir)]) == 0
    scored = pd.read_csv(out)
    assert len(scored) == 3
    invalid = scored[scored["status"] == "invalid"]
    assert invalid["reasons"].tolist() == ["quarantined: invalid device id"]
