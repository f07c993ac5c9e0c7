"""Model selection: rank candidates by a named metric and write `models/selected/`.

The anomaly stage saves every fitted candidate to `models/anomaly/` with a
manifest of sha256 sums, and its metrics to `reports/metrics/anomaly.json`.
Selection verifies the chosen candidate's file against the manifest before
loading it, then writes the model folder described in `anomaly.model`:
model.joblib, thresholds.json, features.json, fault_sizes.json,
profiles.json, model_card.json (with the sha256 of every other file) and
model_card.md.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import shutil
from importlib import metadata
from pathlib import Path

import joblib

from iot_telemetry.anomaly.model import (
    ALIASES_FILE,
    CARD_FILE,
    MODEL_FILE,
    AnomalyModel,
    ModelVerificationError,
    sha256_file,
)
from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
SELECTION_BENCHMARK = "input"
LIBRARIES = ("numpy", "pandas", "scipy", "scikit-learn", "joblib")
# One-sided significance at which a false-alarm count breaks the budget.
BUDGET_P_VALUE = 0.05


def rank_candidates(
    candidates: dict[str, dict], metric: str, max_false_alarms_per_day: float | None = None
) -> list[dict]:
    """Order candidates by `metric` on the input benchmark, best first.

    Candidates over the alarm budget rank after all others. A candidate is
    over it when its false alarms on clean data are more than a Poisson
    count at `max_false_alarms_per_day` would give with probability
    BUDGET_P_VALUE (`over_alarm_budget`). On a short clean part this keeps
    chance from deciding: 3 alarms in 1.5 device-days (2 per day) fit a
    budget of 1 per day with p = 0.19, while 147 in 12 device-days do not.
    Ties go to fewer false alarms per day, then to fewer detector parts,
    then to the name. NaN metrics rank last.

    Args:
        candidates: spec -> {"input": summary, ...} as in anomaly.json.
        metric: a summary key such as "f1_mean".
        max_false_alarms_per_day: the alarm budget; None for no limit.

    Returns:
        One dict per candidate: spec, metric value, false_alarms_per_day.

    Raises:
        InputError: no candidate has the metric.
    """
    rows = []
    for spec, benchmarks in candidates.items():
        summary = benchmarks.get(SELECTION_BENCHMARK, {})
        if metric not in summary:
            continue
        value = summary[metric]
        alarms = summary.get("false_alarms_per_day")
        alarms = alarms if _is_number(alarms) else math.inf
        within = max_false_alarms_per_day is None or not over_alarm_budget(
            summary, max_false_alarms_per_day
        )
        rows.append({"candidate": spec, metric: value, "false_alarms_per_day": alarms,
                     "within_alarm_budget": within})
    if not rows:
        raise InputError(f"no candidate has the metric {metric!r} on the {SELECTION_BENCHMARK} benchmark")

    def key(row):
        value = row[metric]
        missing = not _is_number(value)
        return (not row["within_alarm_budget"], missing, 0.0 if missing else -value,
                row["false_alarms_per_day"], row["candidate"].count("+"), row["candidate"])

    return sorted(rows, key=key)


def over_alarm_budget(summary: dict, budget_per_day: float) -> bool:
    """Return whether a candidate's clean-data false alarms exceed the budget.

    With the count and the device-days of the clean part (anomaly.json
    stores both), the count is tested against a Poisson count of mean
    `budget_per_day` times the days: over when P(X >= count) is below
    BUDGET_P_VALUE. Summaries without the count compare the rate alone.
    """
    rate = summary.get("false_alarms_per_day")
    if not _is_number(rate):
        return True
    count, days = _alarm_count(summary), summary.get("clean_device_days")
    if not (_is_number(count) and _is_number(days) and days > 0):
        return rate > budget_per_day
    if rate <= budget_per_day:
        return False
    from scipy.stats import poisson

    return float(poisson.sf(count - 1, budget_per_day * days)) < BUDGET_P_VALUE


def _alarm_count(summary: dict):
    """Return the clean-part false-alarm count of an anomaly.json summary, or None.

    The stage stores {"all": {"false_alarms": N, ...}, "by_device": ...}.
    """
    alarms = summary.get("false_alarms")
    if isinstance(alarms, dict):
        return (alarms.get("all") or {}).get("false_alarms")
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def _number(value, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else "n/a"


def candidate_file(spec: str) -> str:
    """Return the file name of a candidate's pickle in the candidates folder."""
    return spec.replace("+", "-") + ".joblib"


def save_candidates(models: dict[str, AnomalyModel], out: Path, extra: dict) -> dict:
    """Pickle fitted candidates into `out` with a manifest of their sha256.

    Args:
        models: spec -> fitted model.
        extra: values stored in the manifest (training hash, params, ...).

    Returns:
        The manifest.
    """
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.joblib"):
        stale.unlink()
    files = {}
    for spec, model in models.items():
        path = out / candidate_file(spec)
        joblib.dump(model, path)
        files[spec] = {"file": path.name, "sha256": sha256_file(path)}
    manifest = {**extra, "candidates": files}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_candidate(candidates_dir: Path, spec: str) -> tuple[AnomalyModel, dict]:
    """Verify a candidate's pickle against the manifest, then load it.

    Raises:
        ModelVerificationError: the manifest is missing, lacks the candidate,
            or the file's sha256 differs.
    """
    manifest_path = candidates_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ModelVerificationError(f"{manifest_path} not found: run the anomaly stage first")
    manifest = json.loads(manifest_path.read_text())
    entry = manifest.get("candidates", {}).get(spec)
    if entry is None:
        raise ModelVerificationError(f"{manifest_path} has no candidate {spec!r}")
    path = candidates_dir / entry["file"]
    if not path.is_file() or sha256_file(path) != entry["sha256"]:
        raise ModelVerificationError(
            f"{path} is missing or does not match the sha256 in {manifest_path}; "
            "refusing to unpickle it"
        )
    return joblib.load(path), manifest


def library_versions() -> dict[str, str]:
    """Return the versions of Python and the libraries the model pickle needs."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        versions[name] = metadata.version(name)
    return versions


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, allow_nan=True) + "\n")


def _card_markdown(card: dict) -> str:
    lines = [
        f"# Model card: {card['candidate']}",
        "",
        "Anomaly detector for single telemetry readings, chosen by measured quality "
        "on a fault-injection benchmark (`reports/04-anomaly.html`).",
        "",
        f"- Selected by `{card['selection']['metric']}` = "
        f"{_number(card['selection']['value'], 3)} on the {SELECTION_BENCHMARK} benchmark",
        f"- Trained on {card['training']['readings']:,} readings of "
        f"{len(card['training']['devices'])} devices (sha256 {card['training']['sha256'][:16]}...)",
        f"- Context: send {card['context_seconds']:.0f} s of history per device for full features",
        "",
        "## Quality per fault kind",
        "",
        "| benchmark | " + " | ".join(card["fault_kinds"]) + " | false alarms / day |",
        "|---|" + "---|" * (len(card["fault_kinds"]) + 1),
    ]
    for name, summary in card["metrics"].items():
        f1 = " | ".join(_number(summary["f1"][kind]) for kind in card["fault_kinds"])
        lines.append(f"| {name} (F1) | {f1} | {_number(summary['false_alarms_per_day'])} |")
    lines += [
        "",
        "## Ranking",
        "",
        f"| candidate | {card['selection']['metric']} | false alarms / day |",
        "|---|---|---|",
    ]
    for row in card["selection"]["ranking"]:
        lines.append(
            f"| {row['candidate']} | {_number(row[card['selection']['metric']], 3)} | "
            f"{_number(row['false_alarms_per_day'])} |"
        )
    lines += [
        "",
        "## Files",
        "",
        "Load with `iot_telemetry.anomaly.model.load_selected`, which checks these sha256 "
        "sums before unpickling:",
        "",
    ]
    lines += [f"- `{name}`: {entry['sha256']}" for name, entry in sorted(card["artifacts"].items())]
    lines += ["", "Library versions: " + ", ".join(f"{k} {v}" for k, v in card["libraries"].items()), ""]
    return "\n".join(lines)


def write_selected(
    candidates_dir: Path, metrics_path: Path, out: Path, metric: str,
    max_false_alarms_per_day: float | None = None,
    device_aliases: dict[str, str] | None = None,
) -> dict:
    """Choose the best candidate by `metric` and write the model folder.

    See `rank_candidates` for the order and the alarm budget.
    `device_aliases` (device id -> id the model knows, from
    `devices.aliases`) go to device_aliases.json, which the endpoint applies
    to request device ids.

    Returns:
        The model card.

    Raises:
        InputError: the metrics file is missing or names no candidates.
        ModelVerificationError: the candidate file fails verification.
    """
    if not metrics_path.is_file():
        raise InputError(f"{metrics_path} not found: run the anomaly stage first")
    metrics = json.loads(metrics_path.read_text())
    ranking = rank_candidates(metrics.get("candidates", {}), metric, max_false_alarms_per_day)
    spec = ranking[0]["candidate"]
    model, manifest = load_candidate(candidates_dir, spec)

    # Model files first; the card lists their sha256 sums.
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copyfile(candidates_dir / manifest["candidates"][spec]["file"], out / MODEL_FILE)
    _write_json(out / "thresholds.json", model.thresholds())
    _write_json(out / "features.json", {
        "config": vars(model.feature_config),
        "features": manifest.get("feature_names", []),
        "context_seconds": model.context_seconds,
        "device_stuck_seconds": model.device_stuck_seconds,
    })
    _write_json(out / "fault_sizes.json", manifest.get("fault_sizes", {}))
    _write_json(out / ALIASES_FILE, dict(device_aliases or {}))
    _write_json(out / "profiles.json", {key: p.to_dict() for key, p in model.profiles.items()})
    artifacts = {
        path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        for path in sorted(out.iterdir())
    }

    card = {
        "candidate": spec,
        "selection": {"metric": metric, "value": ranking[0][metric],
                      "max_false_alarms_per_day": max_false_alarms_per_day, "ranking": ranking},
        "fault_kinds": manifest.get("fault_kinds", []),
        "metrics": {name: summary for name, summary in metrics["candidates"][spec].items()},
        "real_check": metrics.get("real_check"),
        "training": manifest.get("training", {}),
        "params": manifest.get("params", {}),
        "fault_sizes": manifest.get("fault_sizes", {}),
        "context_seconds": model.context_seconds,
        "libraries": library_versions(),
        "artifacts": artifacts,
    }
    _write_json(out / CARD_FILE, card)
    (out / "model_card.md").write_text(_card_markdown(card))
    log.info("selected %s (%s = %s) into %s", spec, metric, _number(ranking[0][metric], 3), out)
    return card
