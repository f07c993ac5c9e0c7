"""Commands `ingest` and `synthesize`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data commands to the top-level parser."""
    ingest = subparsers.add_parser(
        "ingest",
        help="validate telemetry files into readings.parquet and quarantine.parquet",
        description="Read Kaggle CSV exports, MQTT dumps (JSON, JSON Lines, zip) or "
        "stream captures; write readings.parquet, quarantine.parquet and ingest.json.",
    )
    ingest.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    ingest.add_argument("--out", required=True, type=Path, help="output folder")
    ingest.add_argument(
        "--timezone",
        default=None,
        help="IANA zone of naive ISO-8601 times in the input (default: UTC)",
    )
    ingest.add_argument(
        "--alias",
        action="append",
        default=None,
        metavar="OLD=NEW",
        help="map a device id (repeatable); default: the MQTT capture's ids to the "
        "Kaggle ids",
    )
    ingest.add_argument(
        "--no-aliases", action="store_true", help="keep device ids as they are"
    )
    ingest.set_defaults(handler=run_ingest)

    synthesize = subparsers.add_parser(
        "synthesize",
        help="write the synthetic twin of the Kaggle file",
        description="Write a calibrated synthetic twin in the raw Kaggle CSV format, "
        "plus FILE.truth.csv listing its injected glitches and duplicates.",
    )
    synthesize.add_argument("--out", required=True, type=Path, help="CSV file to write")
    synthesize.add_argument("--days", type=float, default=8.0, help="length in days")
    synthesize.add_argument("--seed", type=int, default=0, help="random seed")
    synthesize.add_argument(
        "--start", default="2020-07-12T00:00:00Z", help="first timestamp (ISO-8601, UTC)"
    )
    synthesize.set_defaults(handler=run_synthesize)


def run_ingest(args: argparse.Namespace) -> int:
    from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE, parse_alias_options
    from iot_telemetry.data.readers import check_outputs, read_inputs, write_outputs
    from iot_telemetry.data.validate import check_timezone

    if args.no_aliases:
        aliases = {}
    elif args.alias:
        try:
            aliases = parse_alias_options(args.alias)
        except ValueError as error:
            raise InputError(str(error)) from error
    else:
        aliases = dict(CAPTURE_TO_KAGGLE)
    check_timezone(args.timezone)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create output folder --out {args.out}: {error}") from error
    check_outputs(args.out)
    result = read_inputs(args.inputs, timezone=args.timezone, aliases=aliases)
    paths = write_outputs(result, args.out)
    counts = {key: result.summary[key] for key in ("read", "kept", "duplicates", "quarantined")}
    print(json.dumps({"out": str(args.out), **counts}))
    log.info("wrote %s", ", ".join(str(path) for path in paths.values()))
    if not counts["kept"]:
        log.warning(
            "no valid readings in the input: see the reasons in %s",
            paths["quarantine"],
        )
    return 0


def run_synthesize(args: argparse.Namespace) -> int:
    from iot_telemetry.data.synthetic import write_twin
    from iot_telemetry.data.twin_profiles import MAX_DAYS

    if not 0 < args.days <= MAX_DAYS:
        raise InputError(f"--days must be above 0 and at most {MAX_DAYS:g}, got {args.days:g}")
    truth = write_twin(args.out, days=args.days, seed=args.seed, start=args.start)
    print(json.dumps({"out": str(args.out), "truth": str(truth)}))
    return 0
