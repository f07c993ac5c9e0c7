"""Ingest against a bare pandas.read_csv, and the pipeline's repro times.

    python benchmarks/bench_ingest.py [--smoke]

Each measurement runs in its own process after imports, so peak memory is
that step's alone: the increase of peak RSS (VmHWM, reset after imports)
over the RSS after imports.
Full size is the default 8-day twin (about 405k rows, 61 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3


def status_bytes(field: str) -> int:
    """Return a /proc/self/status memory field (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux 4.0+), so the peak is this step's."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def worker(kind: str, csv_path: Path, out: Path) -> None:
    """Time one step REPEATS times in this process and print JSON."""
    import pandas as pd

    from iot_telemetry.data.readers import read_inputs, write_outputs

    reset_peak()
    before = status_bytes("VmRSS")
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        if kind == "read_csv":
            pd.read_csv(csv_path)
        else:
            write_outputs(read_inputs([csv_path]), out)
        times.append(time.perf_counter() - started)
    peak = status_bytes("VmHWM")
    print(json.dumps({"best_s": min(times), "median_s": sorted(times)[len(times) // 2],
                      "peak_increase_bytes": peak - before}))


def measure(kind: str, csv_path: Path, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(csv_path), str(out)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def repro_times(days: float, workdir: Path) -> tuple[float, float]:
    """Return (full repro from clean, no-op repro) seconds in a project copy."""
    from iot_telemetry.pipeline.sandbox import copy_project

    copy = copy_project(ROOT, workdir / "project", params={"synthesize": {"days": days}})
    bin_dir = Path(sys.executable).parent
    # Stages call `iot-telemetry`, so the environment's bin folder goes first.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    times = []
    for _ in range(2):
        started = time.perf_counter()
        done = subprocess.run([str(bin_dir / "dvc"), "repro", "-q"], cwd=copy, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"dvc repro failed in {copy}:\n{done.stdout[-3000:]}"
                               f"{done.stderr[-3000:]}")
        times.append(time.perf_counter() - started)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "CSV", "OUT"))
    args = parser.parse_args()
    if args.worker:
        kind, csv_path, out = args.worker
        worker(kind, Path(csv_path), Path(out))
        return

    from iot_telemetry.data.synthetic import write_twin

    days = 0.25 if args.smoke else 8.0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv_path = tmp / "iot_telemetry_data.csv"
        write_twin(csv_path, days=days, seed=0)
        size = csv_path.stat().st_size
        rows = sum(1 for _ in csv_path.open()) - 1
        bare = measure("read_csv", csv_path, tmp / "out")
        ingest = measure("ingest", csv_path, tmp / "out")
        # The smoke run leaves out the pipeline: tests/pipeline runs it already.
        full, noop = (None, None) if args.smoke else repro_times(days, tmp)

    ratio = ingest["best_s"] / bare["best_s"]
    memory_ratio = ingest["peak_increase_bytes"] / size
    print("## Ingest and pipeline (`python benchmarks/bench_ingest.py"
          + (" --smoke" if args.smoke else "") + "`)\n")
    print(f"Input: synthetic twin, {days:g} days, {rows:,} rows, {size / 1e6:.1f} MB. "
          f"Best of {REPEATS} runs in one process after imports.\n")
    print("| step | best s | median s | peak memory increase | vs bare read_csv | target |")
    print("|---|---|---|---|---|---|")
    print(f"| bare `pandas.read_csv` | {bare['best_s']:.3f} | {bare['median_s']:.3f} | "
          f"{bare['peak_increase_bytes'] / 1e6:.0f} MB | 1.00x | baseline |")
    print(f"| `ingest` (parse, validate, dedupe, quarantine, write Parquet) | "
          f"{ingest['best_s']:.3f} | {ingest['median_s']:.3f} | "
          f"{ingest['peak_increase_bytes'] / 1e6:.0f} MB ({memory_ratio:.2f}x file size) | "
          f"{ratio:.2f}x | <= 3x time, <= 4x file size memory |")
    if full is None:
        return
    print()
    print("| pipeline | seconds | target |")
    print("|---|---|---|")
    print(f"| `dvc repro` of every stage from clean ({days:g}-day twin) | {full:.1f} | <= 300 |")
    print(f"| no-op `dvc repro` | {noop:.2f} | <= 2 |")


if __name__ == "__main__":
    main()
