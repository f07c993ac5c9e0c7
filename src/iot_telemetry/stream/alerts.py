"""Anomaly events per device and the alerts that announce them.

Flagged readings of one device less than `gap_s` apart (by reading ts) form
one event. The tracker emits one alert when an event opens and one when it
closes: at the next flagged reading `gap_s` or more after the last one
(which also opens a new event), or at any reading of the device that comes
`gap_s` or more after the last flagged one. Alerts follow
`schemas/alert.v1.json`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

ALERT_SCHEMA = "urn:iot-telemetry:schema:alert:v1"
# Namespace of the event ids (uuid5 of device and opening ts).
EVENT_NAMESPACE = uuid.UUID("5b0f3a52-8d1e-4c7e-9a61-0d2c7f4e9b13")


def alert_schema() -> dict:
    """Return the alert JSON Schema shipped with the package."""
    text = resources.files("iot_telemetry.stream").joinpath("schemas/alert.v1.json").read_text()
    return json.loads(text)


def event_id(device: str, opened_ts: float) -> str:
    """Return the event's stable id: uuid5 of the device and the opening ts."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{device}|{opened_ts!r}"))


@dataclass
class ScoredReading:
    """A reading with the endpoint's prediction for it."""

    message: dict
    score: float | None
    flag: bool
    status: str
    reasons: list[str]

    @property
    def device(self) -> str:
        """The reading's device id."""
        return str(self.message["device_id"])

    @property
    def ts(self) -> float:
        """The reading's ts (epoch seconds)."""
        return float(self.message["ts"])


@dataclass
class Event:
    """An open event of one device."""

    event_id: str
    first: ScoredReading
    last: ScoredReading
    count: int = 1
    max_score: float = 0.0
    reasons: list[str] = field(default_factory=list)


class EventTracker:
    """Turn scored readings into open/close alerts (dicts), device by device."""

    def __init__(self, gap_s: float, model: dict | None = None):
        self.gap_s = gap_s
        self.model = model or {"name": "unknown"}
        self.open_events: dict[str, Event] = {}

    def update(self, reading: ScoredReading) -> list[dict]:
        """Feed one scored reading (per device in ts order); return alerts to publish."""
        alerts = []
        event = self.open_events.get(reading.device)
        if event is not None and reading.ts - event.last.ts >= self.gap_s:
            alerts.append(self._close(event))
            del self.open_events[reading.device]
            event = None
        if not reading.flag:
            return alerts
        if event is None:
            event = Event(event_id(reading.device, reading.ts), reading, reading,
                          max_score=_score(reading), reasons=list(reading.reasons))
            self.open_events[reading.device] = event
            alerts.append(self._alert(event, "open", reading, _score(reading),
                                      reading.reasons))
            return alerts
        event.last = reading
        event.count += 1
        event.max_score = max(event.max_score, _score(reading))
        event.reasons += [reason for reason in reading.reasons if reason not in event.reasons]
        return alerts

    def _close(self, event: Event) -> dict:
        return self._alert(event, "close", event.last, event.max_score, event.reasons)

    def _alert(self, event: Event, state: str, reading: ScoredReading, score: float,
               reasons: list[str]) -> dict:
        return {
            "schema": ALERT_SCHEMA,
            "event_id": event.event_id,
            "state": state,
            "device_id": reading.device,
            "opened_ts": event.first.ts,
            "closed_ts": event.last.ts if state == "close" else None,
            "reading": reading.message,
            "score": score,
            "status": reading.status,
            "reasons": list(reasons),
            "flagged_readings": event.count,
            "model": self.model,
            "published_at": datetime.now(UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }


def _score(reading: ScoredReading) -> float:
    return float(reading.score) if reading.score is not None else 0.0
