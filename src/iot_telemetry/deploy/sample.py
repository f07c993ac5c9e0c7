"""A small selected model and package built from the synthetic twin.

For tests, the load test (`benchmarks/loadtest.py`) and demos on a fresh
clone, where the pipeline's `select` stage has not produced models/selected/
yet. The model is real (fitted with the anomaly stage's API on a few hours of
twin readings by default), only small.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from iot_telemetry.deploy.package import PackageResult, build_package

log = logging.getLogger(__name__)

SAMPLE_SPEC = "mq2+stuck+robust_z+isolation_forest"
SAMPLE_DAYS = 0.1
SAMPLE_METRIC = "f1_mean"


def sample_selected(
    model_dir: str | Path,
    days: float = SAMPLE_DAYS,
    seed: int = 0,
    spec: str = SAMPLE_SPEC,
    model_options: dict | None = None,
) -> Path:
    """Fit a small anomaly model on `days` of the twin; write a selected-model folder.

    Uses the anomaly stage's own writers (candidate manifest, then
    `write_selected`), so the folder has the same files and model card as
    models/selected/. The model is not evaluated: its selection metric is null.
    `model_options` are further AnomalyModel arguments, such as the
    `settings` and `feature_config` of params.yaml; the defaults when None.

    Returns:
        model_dir, with model.joblib, model_card.json and the other files.
    """
    from iot_telemetry.anomaly.benchmark import training_hash
    from iot_telemetry.anomaly.model import AnomalyModel
    from iot_telemetry.anomaly.select import save_candidates, write_selected
    from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE
    from iot_telemetry.data.sample import sample_readings

    model_dir = Path(model_dir)
    work = model_dir.parent / f"{model_dir.name}-candidates"
    readings = sample_readings(days=days, seed=seed)
    model = AnomalyModel(spec=spec, seed=seed, **(model_options or {})).fit(readings)
    training = {
        "sha256": training_hash(readings),
        "readings": len(readings),
        "devices": sorted(readings["device"].astype(str).unique().tolist()),
        "source": f"synthetic twin, {days} days, seed {seed}",
    }
    save_candidates({spec: model}, work, {"training": training, "fault_kinds": []})
    # No benchmark ran: every metric is null, in the shape of anomaly.json.
    unevaluated = {SAMPLE_METRIC: None, "false_alarms_per_day": None, "f1": {}}
    metrics = work / "metrics.json"
    metrics.write_text(json.dumps({"candidates": {spec: {"input": unevaluated}}}))
    write_selected(work, metrics, model_dir, SAMPLE_METRIC, device_aliases=CAPTURE_TO_KAGGLE)
    log.info(
        "wrote a sample %s model fitted on %d readings to %s",
        spec,
        len(readings),
        model_dir,
    )
    return model_dir


def sample_package(
    out_dir: str | Path,
    days: float = SAMPLE_DAYS,
    seed: int = 0,
    spec: str = SAMPLE_SPEC,
    model_options: dict | None = None,
) -> PackageResult:
    """Build out_dir/selected (a sample model) and out_dir/package (its archive)."""
    out_dir = Path(out_dir)
    model_dir = sample_selected(
        out_dir / "selected", days=days, seed=seed, spec=spec, model_options=model_options
    )
    return build_package(model_dir, out_dir / "package")
