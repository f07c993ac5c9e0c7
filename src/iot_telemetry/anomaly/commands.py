"""Commands `score` (score telemetry files) and `select` (write models/selected/)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".csv", ".parquet", ".pq")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the anomaly commands to the top-level parser."""
    score = subparsers.add_parser(
        "score",
        help="score telemetry files with the selected anomaly model",
        description="Read any input `ingest` reads and write one row per reading with "
        "device, ts, score, flag, status and reasons. Rows the reader quarantines "
        "appear with status invalid and the quarantine reason.",
    )
    score.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    score.add_argument(
        "--out", required=True, type=Path, help="output file, .csv or .parquet"
    )
    score.add_argument(
        "--model", type=Path, default=Path("models/selected"),
        help="selected model folder (default: models/selected under the project root)",
    )
    score.add_argument(
        "--alias", action="append", default=None, metavar="OLD=NEW",
        help="map a device id (repeatable); default: the MQTT capture's ids to the Kaggle ids",
    )
    score.add_argument("--no-aliases", action="store_true", help="keep device ids as they are")
    score.set_defaults(handler=run_score)

    select = subparsers.add_parser(
        "select",
        help="pick the best anomaly candidate and write models/selected/",
        description="Rank the anomaly stage's candidates by anomaly.selection_metric "
        "within anomaly.max_false_alarms_per_day and write the chosen model with its thresholds, features, fault sizes and "
        "model card (sha256 of every file).",
    )
    select.add_argument(
        "--params", type=Path, default=None, help="params file (default: params.yaml)"
    )
    select.add_argument(
        "--metric", default=None, help="override anomaly.selection_metric, e.g. f1_mean"
    )
    select.set_defaults(handler=run_select)


def _aliases(args: argparse.Namespace) -> dict[str, str] | None:
    from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE, parse_alias_options

    if args.no_aliases:
        return None
    if args.alias:
        try:
            return parse_alias_options(args.alias)
        except ValueError as error:
            raise InputError(str(error)) from error
    return dict(CAPTURE_TO_KAGGLE)


def score_inputs(paths: list[Path], model_dir: Path, aliases: dict[str, str] | None):
    """Read inputs and score them; returns the output table.

    Quarantined rows follow the scored readings, with status invalid, a
    NaN score and the reason prefixed by "quarantined: ". Exact duplicates
    (a repeated device and ts with equal values, which ingest drops) come
    last, invalid with the reason the endpoint gives them, so every input
    reading has one output row.
    """
    import pandas as pd

    from iot_telemetry.anomaly.model import DUPLICATE_REASON, ModelVerificationError, load_selected
    from iot_telemetry.data.readers import read_inputs

    try:
        model = load_selected(model_dir)
    except ModelVerificationError as error:
        raise InputError(str(error)) from error
    result = read_inputs(paths, aliases=aliases)
    scored = model.score(result.readings)
    parts = [scored]
    quarantine = result.quarantine
    if len(quarantine):
        reasons = "quarantined: " + quarantine["reason"].astype(str)
        parts.append(_invalid_rows(quarantine, reasons))
    duplicates = result.duplicates
    if duplicates is not None and len(duplicates):
        parts.append(_invalid_rows(duplicates, DUPLICATE_REASON))
    if len(parts) == 1:
        return scored
    dtypes = scored.dtypes.to_dict()
    return pd.concat([parts[0], *(part.astype(dtypes) for part in parts[1:])], ignore_index=True)


def _invalid_rows(rows, reasons):
    """Return output rows with status invalid for readings that were not scored."""
    import pandas as pd

    return pd.DataFrame({
        "device": rows["device"].astype("string"),
        "ts": rows["ts"].astype("float64"),
        "score": float("nan"),
        "flag": False,
        "status": "invalid",
        "reasons": pd.Series(reasons, index=rows.index).astype("string"),
    })


def run_score(args: argparse.Namespace) -> int:
    from iot_telemetry.output_paths import check_output_file, write_failed
    from iot_telemetry.paths import resolve

    suffix = args.out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InputError(
            f"--out {args.out}: unknown output type {suffix or '(none)'}; use .csv or .parquet"
        )
    # Checked first, so a bad path fails before the reading and scoring work.
    check_output_file(args.out)
    model_dir = args.model if args.model.is_absolute() or args.model.exists() else resolve(args.model)
    scored = score_inputs(args.inputs, model_dir, _aliases(args))
    try:
        if suffix == ".csv":
            scored.to_csv(args.out, index=False)
        else:
            scored.to_parquet(args.out, index=False)
    except OSError as error:
        raise write_failed(args.out, error) from error
    counts = scored["status"].value_counts().to_dict()
    print(
        f"scored {len(scored)} readings: {int(scored['flag'].sum())} flagged; status "
        + ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
        + f"; wrote {args.out}"
    )
    return 0


def run_select(args: argparse.Namespace) -> int:
    from iot_telemetry.anomaly.params import SELECTION_METRICS, load_anomaly_params, load_select_params
    from iot_telemetry.anomaly.select import write_selected
    from iot_telemetry.paths import project_root, resolve
    from iot_telemetry.pipeline.params import load_params

    params = load_params(args.params or project_root() / "params.yaml")
    anomaly = load_anomaly_params(params.get("anomaly"))
    select = load_select_params(params.get("select"))
    metric = args.metric or anomaly.selection_metric
    if metric not in SELECTION_METRICS:
        raise InputError(f"--metric {metric!r}: use one of {', '.join(SELECTION_METRICS)}")
    card = write_selected(
        resolve(anomaly.candidates_dir), resolve(select.metrics_path), resolve(select.out), metric,
        anomaly.max_false_alarms_per_day, params["devices"]["aliases"],
    )
    print(f"selected {card['candidate']} by {metric}; wrote {resolve(select.out)}")
    return 0
