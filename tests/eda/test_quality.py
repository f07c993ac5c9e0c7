"""Ingest counts and quarantine reasons."""

from __future__ import annotations

import json

import pandas as pd

from iot_telemetry.data.validate import quarantine_frame, quarantine_record
from iot_telemetry.eda.quality import ingest_counts, load_summary, quarantine_reasons

SUMMARY = {
    "read": 12, "kept": 9, "duplicates": 1, "quarantined": 2,
    "by_device": {
        "b": {"read": 4, "kept": 3, "duplicates": 1, "quarantined": 0},
        "a": {"read": 7, "kept": 6, "duplicates": 0, "quarantined": 1},
        "(unknown)": {"read": 1, "kept": 0, "duplicates": 0, "quarantined": 1},
    },
}


def test_ingest_counts_per_device_and_total(tmp_path):
    path = tmp_path / "ingest.json"
    path.write_text(json.dumps(SUMMARY))
    table = ingest_counts(load_summary(path))
    assert table.index.tolist() == ["(unknown)", "a", "b", "all"]
    assert table.loc["b"].to_dict() == {"read": 4, "kept": 3, "duplicates": 1, "quarantined": 0}
    assert table.loc["all"].to_dict() == {"read": 12, "kept": 9, "duplicates": 1,
                                          "quarantined": 2}


def test_quarantine_reasons_by_device():
    records = [
        quarantine_record("f.csv", 2, "missing co", "raw", device="a"),
        quarantine_record("f.csv", 3, "missing co", "raw", device="a"),
        quarantine_record("f.csv", 4, "unparseable ts", "raw", device="b"),
        quarantine_record("f.csv", 5, "missing device", "raw"),
    ]
    table = quarantine_reasons(quarantine_frame(records))
    assert table.index[0] == "missing co"
    assert table.loc["missing co", "all"] == 2
    assert table.loc["missing co", "a"] == 2
    assert table.loc["unparseable ts", "b"] == 1
    assert table.loc["missing device", "(unknown)"] == 1


def test_quarantine_reasons_empty():
    table = quarantine_reasons(quarantine_frame([]))
    assert table.empty
    assert isinstance(table, pd.DataFrame)
