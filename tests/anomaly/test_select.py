"""Ranking of candidates by a metric under the false-alarm budget."""

from __future__ import annotations

from iot_telemetry.anomaly.select import over_alarm_budget, rank_candidates


def _summary(f1_mean: float, alarms: int | None, days: float | None) -> dict:
    """Build a candidate summary in the shape the anomaly stage writes."""
    summary = {"f1_mean": f1_mean}
    if alarms is not None:
        summary["false_alarms"] = {
            "all": {"days": days, "false_alarms": alarms, "false_alarms_per_day": alarms / days},
            "by_device": {},
        }
        summary["clean_device_days"] = days
        summary["false_alarms_per_day"] = alarms / days
    return summary


def test_few_alarms_short_part_within_budget():
    assert not over_alarm_budget(_summary(0.9, 3, 1.5), 1.0)


def test_many_alarms_long_part_over_budget():
    assert over_alarm_budget(_summary(0.6, 147, 12.0), 1.0)


def test_rate_under_budget_is_within():
    assert not over_alarm_budget(_summary(0.6, 10, 12.0), 1.0)


def test_rate_only_summary_compares_rate():
    assert over_alarm_budget({"false_alarms_per_day": 1.5}, 1.0)
    assert not over_alarm_budget({"false_alarms_per_day": 0.5}, 1.0)


def test_missing_rate_is_over_budget():
    assert over_alarm_budget({"f1_mean": 0.5}, 1.0)


def test_noisy_count_does_not_demote_best():
    candidates = {
        "mq2": {"input": _summary(0.20, 0, 1.5)},
        "mq2+stuck+robust_jump": {"input": _summary(0.92, 3, 1.5)},
        "lof": {"input": _summary(0.95, 40, 1.5)},
    }
    ranking = rank_candidates(candidates, "f1_mean", 1.0)
    assert [row["candidate"] for row in ranking] == ["mq2+stuck+robust_jump", "mq2", "lof"]
    assert ranking[0]["within_alarm_budget"]
    assert not ranking[2]["within_alarm_budget"]


def test_no_budget_ranks_by_metric():
    candidates = {
        "a": {"input": _summary(0.5, 0, 2.0)},
        "b": {"input": _summary(0.7, 100, 2.0)},
    }
    ranking = rank_candidates(candidates, "f1_mean", None)
    assert [row["candidate"] for row in ranking] == ["b", "a"]



def test_budget_on_stage_summary():
    # The summary shape of a real anomaly.json, so the count is found there.
    from iot_telemetry.anomaly import stage

    evaluation = {
        "f1": {}, "recall": {}, "precision": {}, "pr_auc": {}, "delay_seconds_median": {},
        "false_alarms_per_day": 3 / 1.5, "false_alarm_episodes_per_day": 3 / 1.5,
        "false_alarms": {"all": {"days": 1.5, "false_alarms": 3}, "by_device": {}},
        "clean_device_days": 1.5, "f1_min": 0.6, "f1_mean": 0.9, "pr_auc_mean": 0.8,
        "kinds": {},
    }
    summary = stage.compact(evaluation)
    assert not over_alarm_budget(summary, 1.0)
    summary["false_alarms"]["all"]["false_alarms"] = 12
    summary["false_alarms_per_day"] = 12 / 1.5
    assert over_alarm_budget(summary, 1.0)
