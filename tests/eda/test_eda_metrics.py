"""The eda stage's metrics and report sentences from computed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eda_helpers import BASE_TS, build_readings, combine
from iot_telemetry.eda import coverage, glitches, mq2, narrative, sensors, units
from iot_telemetry.eda.metrics import eda_metrics


@pytest.fixture
def tables():
    temp = np.full(40, 20.0)
    temp[7] = 3.0
    a = build_readings("a", BASE_TS + np.arange(40) * 5.0, temp=temp)
    b = build_readings("b", BASE_TS + np.concatenate([np.arange(20), 200 + np.arange(20)]) * 4.0)
    readings = combine(a, b)
    found = glitches.find_glitches(readings)
    return {
        "readings": readings,
        "found": found,
        "intervals": coverage.sampling_intervals(readings),
        "identity": mq2.identity_check(readings),
        "glitch_counts": glitches.count_glitches(found, ["a", "b"]),
        "units": units.unit_evidence(readings),
        "gaps": coverage.find_gaps(readings),
    }


def test_metrics_headline_numbers(tables):
    metrics = eda_metrics(tables["intervals"], tables["identity"], tables["glitch_counts"],
                          tables["units"], tables["gaps"])
    assert metrics["readings"] == 80
    assert metrics["devices"] == 2
    assert metrics["glitch_readings"] == 1
    assert metrics["gaps"] == 1
    assert metrics["mq2_max_relative_deviation"] < 1e-14
    assert metrics["duplicates"] is None
    assert metrics["ks_max"] is None
    assert metrics["by_device"]["a"]["glitches_temp"] == 1
    assert metrics["by_device"]["b"]["max_interval_s"] == 724.0


def test_metrics_with_summary_truth_and_ks(tables):
    truth_match = pd.DataFrame({"injected": [2], "flagged": [1], "matched": [1]},
                               index=pd.MultiIndex.from_tuples([("a", "temp")]))
    ks = pd.DataFrame({"device": ["a", "a"], "sensor": ["temp", "co"],
                       "ks_statistic": [0.2, 0.4], "p_value": [0.0, 0.0],
                       "n_twin": [5, 5], "n_real": [6, 6]})
    metrics = eda_metrics(tables["intervals"], tables["identity"], tables["glitch_counts"],
                          tables["units"], tables["gaps"],
                          summary={"duplicates": 3, "quarantined": 4},
                          truth_match=truth_match, ks=ks)
    assert metrics["duplicates"] == 3
    assert metrics["quarantined"] == 4
    assert metrics["glitch_recall"] == 0.5
    assert metrics["glitch_precision"] == 1.0
    assert metrics["ks_max"] == 0.4
    assert metrics["ks"] == {"a": {"temp": 0.2, "co": 0.4}}


def test_glitch_sentence_quotes_counts(tables):
    text = narrative.glitch_sentence(tables["glitch_counts"], tables["found"], 80)
    assert "flags 1 of 80 readings" in text
    assert "temp 3.0 on a" in text


def test_quality_sentence_names_longest_gap(tables):
    summary = {"read": 81, "kept": 80, "duplicates": 1, "quarantined": 0}
    reasons = pd.DataFrame(columns=["all"])
    text = narrative.quality_sentence(summary, None, reasons, tables["gaps"])
    assert "read 81 rows and kept 80: 1 exact duplicate dropped and 0 rows" in text
    assert "1 interval exceeds 60 s" in text
    assert "12.1 min on b" in text


def test_skip_sentences_give_the_reason():
    assert "no ground truth" in narrative.truth_sentence(None, "no ground truth here")
    assert narrative.ks_sentence(None, "file absent") == "Section skipped: file absent."


def test_units_sentence_quotes_both_readings(tables):
    clean = tables["units"].loc[["b"]]
    text = narrative.units_sentence(clean, "July")
    assert "spans 20.0 to 20.0 degC" in text
    assert "would be -6.7 to -6.7 degC" in text
    assert "below freezing indoors in July" in text
    assert "plausible indoor temperatures" in text
    assert "summer air under degC, winter air under degF" in text


def test_units_sentence_omits_unsupported_verdicts(tables):
    warm = tables["units"].loc[["b"]].copy()
    # Values of 60-70 read as degF would be 15.6-21.1 degC, not freezing.
    warm[["temp_low", "temp_high"]] = [60.0, 70.0]
    warm[["as_f_low_c", "as_f_high_c"]] = [15.6, 21.1]
    warm["dew_point_if_f"] = 5.0
    text = narrative.units_sentence(warm, "July")
    assert "indoor temperatures" not in text
    assert "below freezing" not in text
    assert "winter air" not in text


def test_identity_sentence_concludes_only_when_exact(tables):
    correlations = sensors.sensor_correlations(tables["readings"])
    exact = narrative.identity_sentence(tables["identity"], correlations)
    assert "to floating-point rounding" in exact
    broken = tables["identity"].copy()
    broken.loc["b", "max_rel_dev"] = 1e-4
    text = narrative.identity_sentence(broken, correlations)
    assert "1.0e-04" in text
    assert "largest on b" in text
    assert "floating-point rounding" not in text
