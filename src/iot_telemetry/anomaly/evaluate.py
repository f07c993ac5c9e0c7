"""Detection quality on the fault-injection benchmark.

Definitions (per fault kind, per device and pooled over devices):

- a flag counts for an event only when the event's reading is flagged for
  the event's channel: its reasons name the channel or a rule on it (see
  TARGET_TAGS), so a long drift event is not "found" by an unrelated alarm
  that happens to fall inside it;
- event recall: the share of events with at least one such flag between
  their first and last reading;
- point precision: such flags inside events of the kind, over all flags
  outside events of other kinds (the benchmark's own glitches are neither
  true nor false alarms for the other kinds); a flag inside an event for
  another channel counts as a false alarm;
- F1 of the two (NaN when the benchmark has no event of the kind); PR-AUC: average precision of the score over readings;
- readings in the settling time after an event (`inject.settling`) are
  left out;
- detection delay: seconds from an event's first reading to its first
  flagged reading, over found events;
- false alarms per day: flagged readings of the clean test part (no
  injected faults) outside the benchmark's own glitches, per device-day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from iot_telemetry.anomaly.inject import label_readings, settling
from iot_telemetry.features.telemetry import device_array

# Reason tags that attribute a flag to an event's target channel or column.
TARGET_TAGS = {
    "temp": ("temp",),
    "humidity": ("humidity",),
    "gas": ("gas", "co", "lpg", "smoke", "mq2"),
    "lpg": ("lpg", "mq2", "gas"),
    "smoke": ("smoke", "mq2", "gas"),
}

# Consecutive false alarms of one device closer than this form one episode.
EPISODE_GAP_SECONDS = 60.0


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def _f1(precision: float, recall: float) -> float:
    if not np.isfinite(recall):
        return float("nan")
    if not np.isfinite(precision) or precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def attributed(reasons: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Return True where a reading's reasons name its event's target.

    Args:
        reasons: ";"-joined reason tags per reading.
        targets: the target channel of each reading's event ("" for none).
    """
    result = np.zeros(len(reasons), dtype=bool)
    for target, tokens in TARGET_TAGS.items():
        rows = np.flatnonzero(targets == target)
        if len(rows) == 0:
            continue
        text = pd.Series(reasons[rows], dtype=object).fillna("")
        result[rows] = text.str.contains("|".join(tokens), regex=True).to_numpy()
    # Events without a known target (for example truth rows without a
    # sensor) accept any reason.
    unknown = ~np.isin(targets, list(TARGET_TAGS)) & (targets != "")
    result[unknown] = True
    return result


def _quality(pos, neg, flag, score, found, n_events, delays, with_auc: bool = True) -> dict:
    tp = int(np.sum(flag & pos))
    fp = int(np.sum(flag & neg))
    recall = _ratio(found, n_events)
    precision = _ratio(tp, tp + fp) if tp + fp else 0.0
    keep = pos | neg
    pr_auc = (
        float(average_precision_score(pos[keep], np.nan_to_num(score[keep])))
        if with_auc and pos.any() and neg.any() else float("nan")
    )
    return {
        "events": int(n_events),
        "found": int(found),
        "recall": recall,
        "precision": precision,
        "f1": _f1(precision, recall),
        "pr_auc": pr_auc,
        "flagged_in_events": tp,
        "false_alarms": fp,
        "delay_seconds_median": float(np.median(delays)) if len(delays) else float("nan"),
        "delay_seconds_max": float(np.max(delays)) if len(delays) else float("nan"),
    }


def evaluate_kind(
    readings: pd.DataFrame,
    scored: pd.DataFrame,
    events: pd.DataFrame,
    background: pd.DataFrame,
    kind: str,
) -> dict:
    """Measure detection of one fault kind in one benchmark run.

    Args:
        readings: the run's readings (device, ts), sorted by device then ts.
        scored: `score` and `flag` aligned with `readings`.
        events: the run's injected events (inject.EVENT_COLUMNS).
        background: faults already in the data (the twin's truth, the real
            capture's reference glitches); they are events of kind glitch.
        kind: the injected kind.

    Returns:
        {"all": metrics, "by_device": {device: metrics}}; metrics as in
        the module docstring (PR-AUC only for "all").
    """
    all_events = pd.concat([events, background], ignore_index=True)
    positive_event = (all_events["kind"] == kind).to_numpy()
    labels = label_readings(readings, all_events)
    in_event = labels >= 0
    pos = in_event & positive_event[np.where(in_event, labels, 0)]
    neg = ~in_event & ~settling(readings, all_events)
    targets = np.where(in_event, all_events["target"].astype(str).to_numpy()[np.where(in_event, labels, 0)], "")
    flag = scored["flag"].to_numpy(dtype=bool)
    on_target = np.zeros(len(flag), dtype=bool)
    check = flag & in_event
    on_target[check] = attributed(scored["reasons"].to_numpy(dtype=object)[check], targets[check])
    # A flag inside an event but for another channel is a false alarm.
    neg = neg | (pos & flag & ~on_target)
    pos = pos & ~(flag & ~on_target)
    score = scored["score"].to_numpy(dtype=float)
    ts = readings["ts"].to_numpy(dtype=float)

    hits = flag & pos
    first = pd.Series(ts[hits]).groupby(labels[hits]).min()
    found = first.index.to_numpy(dtype=int)
    delays = first.to_numpy() - all_events["start_ts"].to_numpy()[found]
    found_events = np.zeros(len(all_events), dtype=bool)
    found_events[found] = True

    devices = device_array(readings)
    event_devices = device_array(all_events)
    result = {
        "all": _quality(pos, neg, flag, score, found_events[positive_event].sum(),
                        positive_event.sum(), delays),
        "by_device": {},
    }
    for device in sorted(set(devices)):
        rows = devices == device
        mine = positive_event & (event_devices == device)
        result["by_device"][device] = _quality(
            pos[rows], neg[rows], flag[rows], score[rows], found_events[mine].sum(),
            mine.sum(), delays[event_devices[found] == device], with_auc=False,
        )
    return result


def false_alarms(readings: pd.DataFrame, scored: pd.DataFrame, background: pd.DataFrame) -> dict:
    """Count flags on clean readings (outside `background` events), per day.

    Returns:
        {"all": {...}, "by_device": {device: {...}}} with `days`,
        `false_alarms`, `false_alarms_per_day`, `episodes` (runs of alarms
        less than EPISODE_GAP_SECONDS apart) and `episodes_per_day`.
    """
    labels = label_readings(readings, background)
    alarm = scored["flag"].to_numpy(dtype=bool) & (labels < 0)
    devices = device_array(readings)
    ts = readings["ts"].to_numpy(dtype=float)
    by_device = {}
    for device in sorted(set(devices)):
        rows = devices == device
        days = float(ts[rows].max() - ts[rows].min()) / 86400.0
        alarm_ts = ts[rows][alarm[rows]]
        episodes = int(np.sum(np.diff(alarm_ts) > EPISODE_GAP_SECONDS) + 1) if len(alarm_ts) else 0
        by_device[device] = {
            "days": days,
            "false_alarms": int(alarm[rows].sum()),
            "false_alarms_per_day": _ratio(alarm[rows].sum(), days),
            "episodes": episodes,
            "episodes_per_day": _ratio(episodes, days),
        }
    days = sum(item["days"] for item in by_device.values())
    total = sum(item["false_alarms"] for item in by_device.values())
    episodes = sum(item["episodes"] for item in by_device.values())
    pooled = {"days": days, "false_alarms": total, "false_alarms_per_day": _ratio(total, days),
              "episodes": episodes, "episodes_per_day": _ratio(episodes, days)}
    return {"all": pooled, "by_device": by_device}
