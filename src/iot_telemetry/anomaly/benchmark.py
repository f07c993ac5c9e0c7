"""Build the fault-injection benchmark and measure every candidate detector on it.

One benchmark is one readings table split in time per device. Each fault
kind gets its own run: a copy of the test part with only that kind
injected, so a kind's precision counts the false alarms of the clean
readings around it. The clean test part is one more run, for false alarms
per day. Candidates are fitted once on the train part and score every run
through `AnomalyModel.score_valid`, the same path `score` and serving use.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from iot_telemetry.anomaly.evaluate import evaluate_kind, false_alarms
from iot_telemetry.anomaly.inject import (
    EVENT_COLUMNS,
    FAULT_KINDS,
    FaultSizes,
    events_frame,
    inject_faults,
    longest_runs,
    split_by_time,
)
from iot_telemetry.anomaly.detectors import Combined
from iot_telemetry.anomaly.model import AnomalyModel, prepare_training
from iot_telemetry.data.columns import FLOAT_SENSORS
from iot_telemetry.features.telemetry import (
    FeatureConfig,
    compute_features,
    device_array,
    fit_profiles,
)

log = logging.getLogger(__name__)

CLEAN = "clean"


@dataclass
class Benchmark:
    """Train part, clean test part and one faulty copy of it per fault kind.

    Attributes:
        name: "input" (the pipeline's data) or "real" (the real capture).
        train: clean training readings.
        test: clean test readings.
        background: events already in the test part (the twin's truth or the
            real capture's reference glitches), kind glitch.
        runs: kind -> (readings, injected events); CLEAN has no events.
        sizes: fault sizes used.
    """

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    background: pd.DataFrame
    runs: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    sizes: FaultSizes = field(default_factory=FaultSizes)

    def summary(self) -> dict:
        """Return sizes of the benchmark: readings, days and events per kind."""
        test_days = {
            str(device): float(group["ts"].max() - group["ts"].min()) / 86400.0
            for device, group in self.test.groupby("device", observed=True)
        }
        return {
            "devices": len(test_days),
            "train_readings": len(self.train),
            "test_readings": len(self.test),
            "test_days": float(sum(test_days.values())),
            "events": {kind: len(self.runs[kind][1]) for kind in FAULT_KINDS if kind in self.runs},
            "background_glitches": len(self.background),
        }


def _in_test(events: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    if events is None or len(events) == 0:
        return events_frame()
    spans = test.groupby("device", observed=True)["ts"].agg(["min", "max"])
    spans.index = spans.index.astype(str)
    joined = events.join(spans, on="device", how="inner")
    keep = (joined["start_ts"] >= joined["min"]) & (joined["end_ts"] <= joined["max"])
    return events_frame(joined.loc[keep, list(EVENT_COLUMNS)].to_dict("records"))


def build_benchmark(
    name: str,
    readings: pd.DataFrame,
    background: pd.DataFrame | None,
    sizes: FaultSizes,
    train_fraction: float,
    seed: int,
    feature_config: FeatureConfig | None = None,
) -> Benchmark:
    """Split readings, then inject each fault kind into its own test copy.

    Args:
        readings: validated readings (finite values), sorted by device then ts.
        background: events already in the data (see `Benchmark.background`).
        sizes: fault sizes and counts.
        train_fraction: share of each device's time span used for training.
        seed: random seed of the injection.
        feature_config: window settings (for sigma, which the profile holds).
    """
    readings = readings.sort_values(["device", "ts"], kind="stable").reset_index(drop=True)
    # An object column of device ids: the benchmark reads it many times, and
    # converting pandas 3's Arrow strings each time dominates the run time.
    readings["device"] = pd.Series(device_array(readings), dtype=object)
    train, test = split_by_time(readings, train_fraction)
    profiles = fit_profiles(train, feature_config)
    runs = longest_runs(readings)
    benchmark = Benchmark(name, train, test, _in_test(background, test), sizes=sizes)
    benchmark.runs[CLEAN] = (test, events_frame())
    for kind in FAULT_KINDS:
        benchmark.runs[kind] = inject_faults(test, kind, profiles, sizes, seed, runs, benchmark.background)
    log.info("benchmark %s: %s", name, benchmark.summary())
    return benchmark


def _nan_stat(function, values: list[float]) -> float:
    values = np.asarray(values, dtype=float)
    return float(function(values)) if np.isfinite(values).any() else float("nan")


def _summarize(kinds: dict[str, dict], clean: dict) -> dict:
    f1 = {kind: result["all"]["f1"] for kind, result in kinds.items()}
    pr_auc = [result["all"]["pr_auc"] for result in kinds.values()]
    return {
        "f1": f1,
        "recall": {kind: result["all"]["recall"] for kind, result in kinds.items()},
        "precision": {kind: result["all"]["precision"] for kind, result in kinds.items()},
        "pr_auc": {kind: result["all"]["pr_auc"] for kind, result in kinds.items()},
        "delay_seconds_median": {
            kind: kinds[kind]["all"]["delay_seconds_median"] for kind in ("stuck", "drift") if kind in kinds
        },
        "false_alarms_per_day": clean["all"]["false_alarms_per_day"],
        "false_alarm_episodes_per_day": clean["all"]["episodes_per_day"],
        "false_alarms": clean["all"]["false_alarms"],
        "clean_device_days": clean["all"]["days"],
        # Kinds without events (a test part too short for a drift) have NaN
        # F1 and do not count.
        "f1_min": _nan_stat(np.nanmin, list(f1.values())),
        "f1_mean": _nan_stat(np.nanmean, list(f1.values())),
        "pr_auc_mean": float(np.nanmean(pr_auc)) if np.isfinite(pr_auc).any() else float("nan"),
    }


def evaluate_model(
    model: AnomalyModel,
    benchmark: Benchmark,
    features: dict[str, pd.DataFrame] | None = None,
    part_components: dict[str, dict[str, dict]] | None = None,
) -> dict:
    """Score every run of a benchmark with a fitted model and measure it.

    Args:
        model: fitted on `benchmark.train`.
        features: run name -> features computed with the model's profiles,
            to share between candidates; computed here when None.
        part_components: run name -> detector part name -> components,
            shared between candidates made of the same fitted parts.

    Returns:
        The summary of `_summarize` plus "kinds" (per kind, pooled and by
        device) and "false_alarms" (pooled and by device).
    """
    kinds, clean = {}, None
    for run, (readings, events) in benchmark.runs.items():
        run_features = features[run] if features else None
        components = None
        if part_components is not None and run_features is not None:
            components = _merged_components(model, run_features, part_components.setdefault(run, {}))
        scored = model.score_valid(readings, run_features, components)
        if run == CLEAN:
            clean = false_alarms(readings, scored, benchmark.background)
        else:
            kinds[run] = evaluate_kind(readings, scored, events, benchmark.background, run)
    summary = _summarize(kinds, clean)
    summary["kinds"] = kinds
    summary["false_alarms"] = clean
    return summary


def _merged_components(model: AnomalyModel, features: pd.DataFrame, cache: dict) -> dict:
    parts = model.detector.parts if isinstance(model.detector, Combined) else [model.detector]
    merged: dict[str, np.ndarray] = {}
    for part in parts:
        if part.name not in cache:
            cache[part.name] = part.components(features)
        for tag, values in cache[part.name].items():
            merged[tag] = np.fmax(merged[tag], values) if tag in merged else values
    return merged


def run_candidates(
    benchmark: Benchmark,
    specs: list[str],
    settings: dict | None = None,
    feature_config: FeatureConfig | None = None,
    model_options: dict | None = None,
    seed: int = 0,
) -> tuple[dict[str, dict], dict[str, AnomalyModel]]:
    """Fit each candidate on the train part and evaluate it on every run.

    Candidates share the training features, each fitted detector part and
    its scores on each run, so "mq2+stuck+lof" costs little once "lof" ran.

    Args:
        specs: detector specs such as "mq2+stuck+robust_jump".
        settings: constructor arguments per detector name.
        model_options: extra AnomalyModel fields (device stuck settings).

    Returns:
        (spec -> evaluation, spec -> fitted model).
    """
    feature_config = feature_config or FeatureConfig()
    training = prepare_training(benchmark.train, feature_config)
    features = {
        run: compute_features(readings, training.profiles, feature_config)
        for run, (readings, _) in benchmark.runs.items()
    }
    results, models, parts, components = {}, {}, {}, {}
    for spec in specs:
        started = time.perf_counter()
        model = AnomalyModel(spec, settings or {}, feature_config, seed=seed, **(model_options or {}))
        model.fit(benchmark.train, training, parts)
        results[spec] = evaluate_model(model, benchmark, features, components)
        models[spec] = model
        log.info("%s on %s: f1 %s in %.1f s", spec, benchmark.name,
                 {k: round(v, 3) for k, v in results[spec]["f1"].items()}, time.perf_counter() - started)
    return results, models


def training_hash(readings: pd.DataFrame) -> str:
    """Return a sha256 of the training readings' device, ts and sensor values."""
    import hashlib

    columns = ["device", "ts", *FLOAT_SENSORS]
    hashed = pd.util.hash_pandas_object(readings[columns].astype({"device": str}), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()
