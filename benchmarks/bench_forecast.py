"""Forecast stage time on the default 8-day twin, and fit time per model.

    python benchmarks/bench_forecast.py [--smoke]

Full size: the 8-day twin (generate_twin(8, 0)) with the `forecast` section
of params.yaml (5-minute grid, horizons 6 h and 24 h, folds every 6 h: 12
scored folds of 6 h and 3 of 24 h after 8 calibration folds, 2 jobs). The library run (series, backtest, refit) is
timed in a fresh process, and again with one job as the baseline of the
parallel speed-up. The stage is then timed on the same readings as
`iot-telemetry run forecast` runs it, with the papermill kernel, plots and
HTML. Fit times are wall times inside the workers, so they grow when other
processes share the cores.

Smoke mode: a 2.5-day twin of one target on a 15-minute grid with 1 h and
3 h horizons, library run only.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 120.0


def stage_settings(smoke: bool) -> dict:
    """Return the forecast settings of params.yaml, shrunk in smoke mode."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    settings = {key: value for key, value in params["forecast"].items()
                if not key.endswith("_path")}
    settings["resample_rule"] = params["base"]["resample_rule"]
    settings["seed"] = params["base"]["seed"]
    if smoke:
        settings.update(resample_rule="15min", horizons_hours=[1, 3], n_jobs=1,
                        targets=["temp"], prophet_uncertainty_samples=200)
    return settings


def time_library(days: float, settings: dict) -> dict:
    """Time `run_forecast` in a fresh process, as a stage run would start.

    Returns seconds, the readings count, the number of series and each fit's
    (model, seconds). Generating the twin is not timed.
    """
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps({"days": days, **settings})],
        check=True, capture_output=True, text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(arguments: str) -> None:
    """Generate the twin, time one library run and print its figures as JSON."""
    from iot_telemetry.data.sample import sample_readings
    from iot_telemetry.forecast.params import load_forecast_params
    from iot_telemetry.forecast.stage import run_forecast

    settings = json.loads(arguments)
    readings = sample_readings(days=settings.pop("days"), seed=0)
    params = load_forecast_params(settings)
    started = time.perf_counter()
    run = run_forecast(readings, params)
    seconds = time.perf_counter() - started
    fits = run.result.scores[run.result.scores["status"] == "ok"].drop_duplicates(
        ["device", "target", "model", "cutoff"])
    print(json.dumps({"seconds": seconds, "readings": len(readings), "series": len(run.series),
                      "fits": fits[["model", "fit_seconds"]].values.tolist()}))


def time_stage(days: float, settings: dict) -> float:
    """Run notebooks/03-forecast.ipynb as the pipeline does, outputs in a temp folder."""
    from iot_telemetry.data.sample import sample_readings
    from iot_telemetry.pipeline import runner

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        sample_readings(days=days, seed=0).to_parquet(out / "readings.parquet", index=False)
        parameters = {
            **settings,
            "readings_path": str(out / "readings.parquet"),
            "metrics_path": str(out / "forecast.json"),
            "backtest_path": str(out / "forecast_backtest.csv"),
            "selection_path": str(out / "selection.json"),
            "lead_errors_path": str(out / "forecast_lead_errors.csv"),
            "figures_dir": str(out / "figures"),
        }
        notebook = runner.notebook_for("forecast", ROOT)
        started = time.perf_counter()
        runner.execute(notebook, out / "executed.ipynb", parameters, ROOT)
        runner.render_html(out / "executed.ipynb", out / "03-forecast.html")
        return time.perf_counter() - started


def fit_table(fits: list[list]) -> list[str]:
    """Markdown rows: fit time per fold of each model, and its ratio to naive."""
    frame = pd.DataFrame(fits, columns=["model", "fit_seconds"])
    per_model = frame.groupby("model")["fit_seconds"].agg(["count", "mean", "sum"])
    naive = per_model.loc["naive", "mean"] if "naive" in per_model.index else float("nan")
    rows = ["| model | fits | mean fit s | total fit s | vs naive |", "|---|---|---|---|---|"]
    for model, row in per_model.sort_values("mean").iterrows():
        rows.append(f"| {model} | {int(row['count'])} | {row['mean']:.3f} | {row['sum']:.1f} "
                    f"| {row['mean'] / naive:.0f}x |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small twin, seconds")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.worker:
        worker(args.worker)
        return 0

    days = 2.5 if args.smoke else 8.0
    settings = stage_settings(args.smoke)
    library = time_library(days, settings)
    serial = None
    if not args.smoke and settings["n_jobs"] > 1:
        serial = time_library(days, {**settings, "n_jobs": 1})
    stage_seconds = None if args.smoke else time_stage(days, settings)

    fit_total = sum(seconds for _, seconds in library["fits"])
    lines = [
        "## Forecast stage",
        "",
        f"Twin of {days:g} days ({library['readings']:,} readings), "
        f"{settings['resample_rule']} grid, horizons {settings['horizons_hours']} h, "
        f"{settings['n_cutoffs']} scored folds of the longest horizon, calibration over "
        f"{settings.get('calibration_folds', 0)} of them, folds spaced by the "
        f"{settings.get('fold_spacing', 'longest')} horizon, {settings['n_jobs']} job(s), "
        f"{library['series']} series. Each library run is a fresh process.",
        "",
        f"- Library run (series, backtest, refit): **{library['seconds']:.1f} s**; the fits "
        f"of its scored folds add up to {fit_total:.1f} s (the table below; calibration "
        "folds and refits come on top).",
    ]
    if serial is not None:
        lines.append(f"- Same run with 1 job: {serial['seconds']:.1f} s, so "
                     f"{settings['n_jobs']} jobs ran {serial['seconds'] / library['seconds']:.2f}x "
                     "as fast, worker start-up included.")
    if stage_seconds is not None:
        verdict = "within" if stage_seconds <= TARGET_SECONDS else "over"
        lines.append(f"- Stage as `iot-telemetry run forecast` runs it (papermill, plots, "
                     f"HTML): **{stage_seconds:.1f} s**, {verdict} the "
                     f"{TARGET_SECONDS:.0f} s target.")
    lines += ["", *fit_table(library["fits"]), "",
              f"Command: `.venv/bin/python benchmarks/bench_forecast.py"
              f"{' --smoke' if args.smoke else ''}`"]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
