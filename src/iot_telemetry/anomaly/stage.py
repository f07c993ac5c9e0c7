"""The anomaly stage's steps, called from notebooks/04-anomaly.ipynb.

The notebook contains the narrative. This module loads the inputs, runs the
benchmark on the pipeline's data ("input") and on the real capture ("real"),
ranks the candidates, saves them, checks the chosen one on the real day and
writes the metrics.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iot_telemetry.anomaly.benchmark import Benchmark, build_benchmark, run_candidates, training_hash
from iot_telemetry.anomaly.inject import FAULT_KINDS, reference_glitches, truth_events
from iot_telemetry.anomaly.model import AnomalyModel
from iot_telemetry.anomaly.params import AnomalyParams
from iot_telemetry.anomaly.select import rank_candidates, save_candidates
from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE
from iot_telemetry.paths import resolve

log = logging.getLogger(__name__)

INPUT = "input"
REAL = "real"


@dataclass
class StudyInput:
    """Readings of one benchmark and the faults already in them."""

    readings: pd.DataFrame
    background: pd.DataFrame
    source: str
    quarantine: pd.DataFrame | None = None


@dataclass
class Study:
    """Everything the notebook reports: benchmarks, evaluations, fitted models."""

    params: AnomalyParams
    inputs: dict[str, StudyInput] = field(default_factory=dict)
    benchmarks: dict[str, Benchmark] = field(default_factory=dict)
    results: dict[str, dict[str, dict]] = field(default_factory=dict)
    models: dict[str, AnomalyModel] = field(default_factory=dict)

    def ranking(self) -> list[dict]:
        """Candidates ordered by the selection metric on the input benchmark."""
        return rank_candidates(self.candidate_summaries(), self.params.selection_metric,
                               self.params.max_false_alarms_per_day)

    @property
    def selected(self) -> str:
        """Spec of the best-ranked candidate."""
        return self.ranking()[0]["candidate"]

    def candidate_summaries(self) -> dict[str, dict]:
        """spec -> benchmark -> compact summary (as stored in anomaly.json)."""
        result = {}
        for spec in self.params.candidates:
            result[spec] = {name: compact(self.results[name][spec]) for name in self.results}
        return result


def load_input(params: AnomalyParams, data_input: str) -> StudyInput:
    """Load the pipeline's readings and the faults already known in them.

    `readings_path` "" uses a small in-memory twin with its ground truth.
    The twin's truth file lists its glitches when `data_input` is
    "synthetic"; for any other input the glitches are found by
    `inject.reference_glitches`.
    """
    if not params.readings_path:
        from iot_telemetry.data.sample import sample_with_truth

        readings, truth = sample_with_truth(days=params.sample_days, seed=params.seed)
        return StudyInput(readings, truth_events(truth), f"sample twin, {params.sample_days:g} days")

    from iot_telemetry.data.readers import load_readings

    readings = load_readings(resolve(params.readings_path))
    truth_path = resolve(params.truth_path) if params.truth_path else None
    if data_input == "synthetic" and truth_path is not None and truth_path.is_file():
        background = truth_events(pd.read_csv(truth_path))
        return StudyInput(readings, background, "synthetic twin")
    return StudyInput(readings, reference_glitches(readings), str(data_input))


def load_real(params: AnomalyParams) -> StudyInput | None:
    """Read the real capture, with device ids mapped to the Kaggle ids.

    Returns None when `real_path` is "" or the file is absent.
    """
    if not params.real_path:
        return None
    path = resolve(params.real_path)
    if not path.is_file():
        log.warning("real capture %s not found; skipping the real-data benchmark", path)
        return None
    from iot_telemetry.data.readers import read_inputs

    result = read_inputs([path], aliases=CAPTURE_TO_KAGGLE)
    readings = result.readings
    if params.real_hours > 0:
        start = readings.groupby("device", observed=True)["ts"].transform("min")
        readings = readings[readings["ts"] < start + 3600.0 * params.real_hours].reset_index(drop=True)
    return StudyInput(readings, reference_glitches(readings), path.name, result.quarantine)


def run_study(params: AnomalyParams, data_input: str = "synthetic") -> Study:
    """Build both benchmarks and evaluate every candidate on each."""
    study = Study(params)
    study.inputs[INPUT] = load_input(params, data_input)
    real = load_real(params)
    if real is not None:
        study.inputs[REAL] = real
    for name, item in study.inputs.items():
        benchmark = build_benchmark(
            name, item.readings, item.background, params.faults.sizes(),
            params.train_fraction, params.seed, params.features.config(),
        )
        results, models = run_candidates(
            benchmark, params.candidates, params.detectors, params.features.config(),
            params.model_options(), params.seed,
        )
        study.benchmarks[name] = benchmark
        study.results[name] = results
        if name == INPUT:
            study.models = models
    return study


def compact(evaluation: dict) -> dict:
    """Keep the per-kind numbers and the per-device F1 of one evaluation."""
    keys = ("f1", "recall", "precision", "pr_auc", "delay_seconds_median", "false_alarms_per_day",
            "false_alarm_episodes_per_day", "false_alarms", "clean_device_days", "f1_min",
            "f1_mean", "pr_auc_mean")
    summary = {key: evaluation[key] for key in keys}
    summary["f1_by_device"] = {
        kind: {device: result["f1"] for device, result in evaluation["kinds"][kind]["by_device"].items()}
        for kind in evaluation["kinds"]
    }
    summary["false_alarms_per_day_by_device"] = {
        device: result["false_alarms_per_day"]
        for device, result in evaluation["false_alarms"]["by_device"].items()
    }
    return summary


def table(study: Study, name: str, value: str = "f1") -> pd.DataFrame:
    """Return candidates x fault kinds of one per-kind value, plus false alarms per day."""
    rows = {}
    for spec, evaluation in study.results[name].items():
        rows[spec] = {**evaluation[value], "false alarms / day": evaluation["false_alarms_per_day"]}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "candidate"
    return frame


def device_table(study: Study, name: str, spec: str) -> pd.DataFrame:
    """Return devices x fault kinds of the F1 of one candidate."""
    evaluation = study.results[name][spec]
    frame = pd.DataFrame({
        kind: {device: result["f1"] for device, result in evaluation["kinds"][kind]["by_device"].items()}
        for kind in evaluation["kinds"]
    })
    frame["false alarms / day"] = pd.Series({
        device: result["false_alarms_per_day"]
        for device, result in evaluation["false_alarms"]["by_device"].items()
    })
    frame.index.name = "device"
    return frame


def events_table(study: Study) -> pd.DataFrame:
    """Return benchmark x kind counts of events (background glitches included)."""
    rows = {}
    for name, benchmark in study.benchmarks.items():
        summary = benchmark.summary()
        rows[name] = {**summary["events"], "own glitches": summary["background_glitches"],
                      "test days": summary["test_days"]}
    return pd.DataFrame.from_dict(rows, orient="index")


def real_check(model: AnomalyModel, real: StudyInput) -> pd.DataFrame:
    """Score the whole real capture with a model; one row per reading.

    Readings the reader quarantined are appended with status invalid and
    the quarantine reason.
    """
    scored = model.score(real.readings)
    scored = pd.concat([real.readings[["temp", "humidity", "co", "lpg", "smoke"]], scored], axis=1)
    if real.quarantine is not None and len(real.quarantine):
        rejected = pd.DataFrame({
            "device": real.quarantine["device"], "ts": real.quarantine["ts"], "score": np.nan,
            "flag": False, "status": "invalid", "reasons": "quarantined: " + real.quarantine["reason"].astype(str),
        })
        scored = pd.concat([scored, rejected], ignore_index=True)
    return scored


def flag_summary(scored: pd.DataFrame) -> pd.DataFrame:
    """Return per device: readings, flagged readings, and readings per status."""
    frame = scored.assign(device=scored["device"].astype(str))
    summary = frame.groupby("device").agg(readings=("ts", "size"), flagged=("flag", "sum"))
    statuses = frame.groupby(["device", "status"]).size().unstack(fill_value=0)
    return summary.join(statuses).fillna(0).astype(int)


def metrics_document(study: Study, real_scored: pd.DataFrame | None) -> dict:
    """Build reports/metrics/anomaly.json."""
    doc = {
        "benchmarks": {name: b.summary() for name, b in study.benchmarks.items()},
        "fault_sizes": study.params.faults.sizes().to_dict(),
        "candidates": study.candidate_summaries(),
        "selection": {"metric": study.params.selection_metric, "selected": study.selected,
                      "max_false_alarms_per_day": study.params.max_false_alarms_per_day,
                      "ranking": study.ranking()},
    }
    if real_scored is not None:
        summary = flag_summary(real_scored)
        doc["real_check"] = {
            "candidate": study.selected,
            "readings": int(summary["readings"].sum()),
            "flagged": int(summary["flagged"].sum()),
            "flagged_by_device": {k: int(v) for k, v in summary["flagged"].items()},
        }
    return doc


def write_metrics(doc: dict, path: str | Path) -> Path:
    """Write the metrics document as JSON (NaN written as null)."""
    path = resolve(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(doc), indent=2, sort_keys=True) + "\n")
    return path


def _finite(value):
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def save_study_models(study: Study) -> dict:
    """Save the candidates fitted on the input benchmark, with their manifest."""
    train = study.benchmarks[INPUT].train
    extra = {
        "training": {
            "sha256": training_hash(train),
            "readings": len(train),
            "devices": sorted(train["device"].astype(str).unique().tolist()),
            "source": study.inputs[INPUT].source,
        },
        "params": study.params.model_dump(),
        "fault_sizes": study.params.faults.sizes().to_dict(),
        "fault_kinds": list(FAULT_KINDS),
        "feature_names": _feature_names(study),
    }
    return save_candidates(study.models, resolve(study.params.candidates_dir), extra)


def _feature_names(study: Study) -> list[str]:
    from iot_telemetry.features.telemetry import compute_features

    model = next(iter(study.models.values()))
    sample = study.benchmarks[INPUT].train.head(50)
    return [c for c in compute_features(sample, model.profiles, model.feature_config).columns
            if c not in ("device", "ts", "profile")]


def score_runs(study: Study, name: str, spec: str) -> dict[str, pd.DataFrame]:
    """Score every run of one benchmark with one fitted candidate.

    The input benchmark's models are the saved ones; for the real benchmark
    the candidate is refitted on its own train part.
    """
    benchmark = study.benchmarks[name]
    if name == INPUT:
        model = study.models[spec]
    else:
        model = AnomalyModel(spec, study.params.detectors, study.params.features.config(),
                             seed=study.params.seed, **study.params.model_options())
        model.fit(benchmark.train)
    return {kind: model.score_valid(readings) for kind, (readings, _) in benchmark.runs.items()}
