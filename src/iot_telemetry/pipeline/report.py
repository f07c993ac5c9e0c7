"""The `report` stage: reports/index.html linking every stage's report.

It reads the metric files in reports/metrics/ and the HTML pages that the
notebook stages wrote, so a stage added before `report` appears here once it
writes either.
"""

from __future__ import annotations

import html
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Headline metrics shown per stage: (label, dotted key in the stage's JSON).
HEADLINES: dict[str, list[tuple[str, str]]] = {
    "ingest": [
        ("rows read", "read"),
        ("readings kept", "kept"),
        ("exact duplicates", "duplicates"),
        ("quarantined", "quarantined"),
    ],
    "eda": [
        ("MQ-2 max relative deviation", "mq2_max_relative_deviation"),
        ("glitch readings", "glitch_readings"),
        ("glitch recall", "glitch_recall"),
        ("max KS distance", "ks_max"),
    ],
    "forecast": [
        ("series backtested", "n_series"),
        ("series ok", "series_by_status.ok"),
        ("stage seconds", "stage_seconds"),
    ],
    "anomaly": [
        ("selected detector", "selection.selected"),
        ("selection metric", "selection.metric"),
        ("false-alarm budget per day", "selection.max_false_alarms_per_day"),
    ],
    "characterize": [
        ("device classifier accuracy", "classifier_accuracy"),
        ("majority baseline", "baseline_accuracy"),
        ("variable devices", "variable_devices"),
    ],
}


def anomaly_headlines(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """Return the selected detector's F1 per fault kind and false alarms, per benchmark."""
    selected = lookup(metrics, "selection.selected")
    items: list[tuple[str, Any]] = []
    for benchmark in ("input", "real"):
        summary = lookup(metrics, f"candidates.{selected}.{benchmark}") if selected else None
        if not isinstance(summary, dict):
            continue
        for kind, f1 in (summary.get("f1") or {}).items():
            items.append((f"F1 {kind}, {benchmark} benchmark", f1))
        items.append(
            (f"false alarms per device-day, {benchmark} benchmark", summary.get("false_alarms_per_day"))
        )
    return items


# Stages whose headlines are computed from their metrics, after HEADLINES' values.
DERIVED_HEADLINES = {"anomaly": anomaly_headlines}


def lookup(metrics: dict[str, Any], dotted: str) -> Any:
    """Return metrics[a][b]... for "a.b...", or None where a key is missing."""
    value: Any = metrics
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _scalar_items(metrics: dict[str, Any], limit: int = 8) -> list[tuple[str, Any]]:
    """Return the first top-level numbers of a metrics file, for stages without HEADLINES."""
    items = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float, str))]
    return items[:limit]


def _metrics_link(stage: str) -> str:
    return "deploy.json" if stage == "deploy" else f"metrics/{html.escape(stage)}.json"


def build_index(root: Path) -> str:
    """Render the index page from reports/metrics/*.json and reports/*.html."""
    # inputs
    reports = root / "reports"
    pages = sorted(reports.glob("[0-9][0-9]-*.html"))
    metrics = {
        path.stem: json.loads(path.read_text())
        for path in sorted((reports / "metrics").glob("*.json"))
    }
    # The deployment record sits beside the metrics, not among them.
    deploy = reports / "deploy.json"
    if deploy.is_file():
        metrics["deploy"] = json.loads(deploy.read_text())

    # page links and one table of headline numbers per stage
    rows = []
    for page in pages:
        rows.append(f'<li><a href="{html.escape(page.name)}">{html.escape(page.stem)}</a></li>')
    sections = []
    for stage, values in metrics.items():
        headlines = HEADLINES.get(stage)
        if headlines:
            items = [(label, lookup(values, key)) for label, key in headlines]
        else:
            items = _scalar_items(values)
        derived = DERIVED_HEADLINES.get(stage)
        if derived is not None:
            items += derived(values)
        cells = "".join(
            f"<tr><th>{html.escape(label)}</th><td>{_format(value)}</td></tr>"
            for label, value in items
            if value is not None
        )
        sections.append(
            f"<section><h2>{html.escape(stage)}</h2><table>{cells}</table>"
            f'<p><a href="{_metrics_link(stage)}">all metrics</a></p></section>'
        )

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>IoT telemetry reports</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: .2rem .8rem; border-bottom: 1px solid #ddd; }}
section {{ display: inline-block; vertical-align: top; margin: 0 2rem 1rem 0; }}
</style></head><body>
<h1>IoT telemetry reports</h1>
<p>Built {stamp}. Each stage's page is the executed notebook with code hidden.</p>
<h2>Stage reports</h2><ul>{"".join(rows)}</ul>
<h2>Headline metrics</h2>
{"".join(sections)}
</body></html>
"""


def run_report(params: dict[str, Any], root: Path) -> None:
    """Write reports/index.html."""
    index = root / "reports" / "index.html"
    index.write_text(build_index(root), encoding="utf-8")
    log.info("wrote %s", index)
