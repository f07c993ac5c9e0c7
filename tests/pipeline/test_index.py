"""Report index: headline numbers per stage from reports/metrics."""

from __future__ import annotations

import json

from iot_telemetry.pipeline.report import build_index


def test_index_shows_selected_detector_f1(tmp_path):
    metrics = tmp_path / "reports" / "metrics"
    metrics.mkdir(parents=True)
    summary = {"f1": {"spike": 0.875, "drift": 0.5}, "false_alarms_per_day": 0.25}
    document = {
        "selection": {"selected": "mq2+stuck", "metric": "f1_mean"},
        "candidates": {
            "mq2+stuck": {"input": summary},
            "lof": {"input": {"f1": {"spike": 0.125}, "false_alarms_per_day": 9.0}},
        },
    }
    (metrics / "anomaly.json").write_text(json.dumps(document))

    page = build_index(tmp_path)

    assert "<th>F1 spike, input benchmark</th><td>0.875</td>" in page
    assert "<th>F1 drift, input benchmark</th><td>0.5</td>" in page
    assert "<th>false alarms per device-day, input benchmark</th><td>0.25</td>" in page
    # Other candidates and the missing real benchmark add no rows.
    assert "0.125" not in page
    assert "real benchmark" not in page
