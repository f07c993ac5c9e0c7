"""Scoring throughput of the selected anomaly model against a bare IsolationForest.

    python benchmarks/bench_anomaly.py [--smoke] [--model models/selected]

Measures `SelectedModel.score` (validation, features, detector, statuses)
on one reading per call and on batches of 1,000 readings, in readings per
second, and `IsolationForest.score_samples` of scikit-learn (100 trees, its
default size) on the same rows' standardized features, in the same process.
The model is models/selected/ when it exists, verified as `score` loads it;
otherwise (and always in smoke mode) the candidate --spec, by default
FALLBACK_SPEC, fitted here on a small twin. Readings are the
twin's, in time order per device, so batches carry their own history.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The select stage's choice on the default 8-day twin, as its model card
# recorded here on 4 December 2026.
FALLBACK_SPEC = "mq2+stuck+robust_jump+drift"
BATCH = 1000


def load_model(model_dir: Path, smoke: bool, readings, spec: str):
    """Return (model with .score, description)."""
    from iot_telemetry.anomaly.model import AnomalyModel, load_selected

    if not smoke and (model_dir / "model_card.json").is_file():
        selected = load_selected(model_dir)
        return selected, f"{selected.card['candidate']} from {model_dir}"
    model = AnomalyModel(spec).fit(readings)
    return model, f"{spec} fitted on {len(readings):,} twin readings"


def rate(function, rows_per_call: int, calls: int, repeats: int) -> float:
    """Return the median readings per second of `calls` calls, over repeats."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for index in range(calls):
            function(index)
        rates.append(rows_per_call * calls / (time.perf_counter() - started))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes, seconds in total")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "selected")
    parser.add_argument(
        "--spec",
        default=FALLBACK_SPEC,
        help=f"candidate fitted when --model is missing or in smoke mode (default: {FALLBACK_SPEC})",
    )
    args = parser.parse_args(argv)

    import numpy as np
    from sklearn.ensemble import IsolationForest

    from iot_telemetry.anomaly.detectors import learned_matrix
    from iot_telemetry.data.sample import sample_readings
    from iot_telemetry.features.telemetry import compute_features, fit_profiles

    days = 0.25 if args.smoke else 1.0
    readings = sample_readings(days=days, seed=0)
    columns = ["device", "ts", "co", "humidity", "lpg", "smoke", "temp", "light", "motion"]
    readings = readings[columns].reset_index(drop=True)
    model, description = load_model(args.model, args.smoke, readings, args.spec)

    # Baseline: a plain IsolationForest on the standardized features.
    profiles = fit_profiles(readings)
    matrix = learned_matrix(compute_features(readings, profiles))
    forest = IsolationForest(n_estimators=100, random_state=0).fit(matrix)

    single_calls, batch_calls, repeats = (50, 3, 3) if args.smoke else (300, 20, 5)
    batches = [readings.iloc[i * BATCH:(i + 1) * BATCH] for i in range(len(readings) // BATCH)]
    batch_rows = [matrix[i * BATCH:(i + 1) * BATCH] for i in range(len(batches))]
    results = {
        "single": (
            rate(lambda i: model.score(readings.iloc[[i % len(readings)]]), 1, single_calls, repeats),
            rate(lambda i: forest.score_samples(matrix[[i % len(matrix)]]), 1, single_calls, repeats),
        ),
        "batch": (
            rate(lambda i: model.score(batches[i % len(batches)]), BATCH, batch_calls, repeats),
            rate(lambda i: forest.score_samples(batch_rows[i % len(batch_rows)]), BATCH,
                 batch_calls, repeats),
        ),
    }

    command = "python benchmarks/bench_anomaly.py" + (" --smoke" if args.smoke else "")
    if args.spec != FALLBACK_SPEC:
        command += f" --spec {args.spec}"
    print("## Anomaly scoring throughput\n")
    print(f"Model: {description}. Baseline: IsolationForest(n_estimators=100).score_samples "
          f"on the same readings' {matrix.shape[1]} standardized features.\n")
    print("| request | selected model (readings/s) | IsolationForest (readings/s) | ratio |")
    print("|---|---|---|---|")
    for name, label in (("single", "1 reading"), ("batch", f"batch of {BATCH:,}")):
        ours, baseline = results[name]
        print(f"| {label} | {ours:,.0f} | {baseline:,.0f} | {ours / baseline:.2f} |")
    print(f"\nMedian of {repeats} repeats; {single_calls} single calls and {batch_calls} batches "
          f"per repeat, one process, numpy {np.__version__}.\n")
    print(f"Command: `{command}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
