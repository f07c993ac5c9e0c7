"""Labeled fault injection: the benchmark that anomaly detectors are measured on.

Each device's readings are split in time (train, then test), and labeled
fault events are injected into the test part only, deterministically by
seed. Sizes are in units of the device's own standard deviation sigma
(`DeviceProfile.scale`, learned on the train part), except the glitches,
which copy the DHT sensor's real failure values:

- spike: one reading of one sensor moved by +-`spike_sigma` sigma;
- glitch: one reading of temp at 0-7 degC or humidity at 8-25 %;
- stuck: one sensor repeats its value for `stuck_minutes`, and at least
  `stuck_over_longest_run` times the longest run of equal values the sensor
  shows on the device's clean data, because healthy 0.1-resolution sensors
  repeat values for many minutes;
- drift: a ramp of `drift_sigma_per_hour` up to `drift_max_sigma`, then held
  for `drift_hold_hours`;
- mq2_break: lpg or smoke 5-20 % off the value the MQ-2 identity gives from
  co, for `mq2_break_minutes`.

The MQ-2 gas sensor measures one resistance, so spike, stuck and drift on
the `gas` channel move co, lpg and smoke together and keep the identity.
Only mq2_break breaks it. Injected temp and humidity values are rounded to
the sensor's 0.1 resolution, and widened from float32 on devices that report
float32 values, so no detector can find a fault by its digits.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from iot_telemetry.data.columns import HUMIDITY_RANGE, TEMP_RANGE_C
from iot_telemetry.features.telemetry import (
    MQ2_CURVES,
    DeviceProfile,
    device_array,
    device_bounds,
    run_seconds,
)

log = logging.getLogger(__name__)

FAULT_KINDS = ("spike", "glitch", "stuck", "drift", "mq2_break")

# Channels (or columns, for mq2_break) each kind is injected into.
KIND_TARGETS = {
    "spike": ("temp", "humidity", "gas"),
    "glitch": ("temp", "humidity"),
    "stuck": ("temp", "humidity", "gas"),
    "drift": ("temp", "humidity", "gas"),
    "mq2_break": ("lpg", "smoke"),
}

# `settle_ts` ends the time after an event in which readings are back to
# normal but a detector may still react to the event's end (for drift: the
# offset vanishing); evaluation ignores readings in (end_ts, settle_ts].
EVENT_COLUMNS = (
    "event", "device", "kind", "target", "start_ts", "end_ts", "settle_ts", "size", "source"
)

_GAS = ("co", "lpg", "smoke")

# Clean time kept around a glitch already in the data: enough for the
# rolling features to forget it, shorter than `guard_minutes` because real
# captures have dozens of glitches a day.
BACKGROUND_GUARD_SECONDS = 120.0
_RANGES = {"temp": TEMP_RANGE_C, "humidity": HUMIDITY_RANGE}


@dataclass(frozen=True)
class FaultSizes:
    """Sizes and counts of the injected faults (kept in the model card).

    Attributes:
        spike_sigma: spike size in device standard deviations.
        glitch_temp_c: (low, high) of a temp glitch's value, degC.
        glitch_humidity: (low, high) of a humidity glitch's value, %.
        stuck_minutes: (low, high) of a stuck event's duration.
        stuck_over_longest_run: a stuck event lasts at least this times the
            sensor's longest run of equal values on clean data.
        drift_sigma_per_hour: drift rate in device standard deviations per hour.
        drift_max_sigma: largest drift offset.
        drift_hold_hours: time the drift stays at its largest offset.
        drift_recovery_hours: time after a drift event that evaluation
            ignores, because the offset ends with a step back.
        mq2_break_fraction: (low, high) relative error of lpg or smoke.
        mq2_break_minutes: (low, high) of an MQ-2 break's duration.
        events_per_day: events per kind per device and test day (at least
            one per device).
        guard_minutes: clean time kept between events and after the start
            of the test part, so every event starts from normal readings.
    """

    spike_sigma: float = 6.0
    glitch_temp_c: tuple[float, float] = (0.0, 7.0)
    glitch_humidity: tuple[float, float] = (8.0, 25.0)
    stuck_minutes: tuple[float, float] = (10.0, 30.0)
    stuck_over_longest_run: float = 2.5
    drift_sigma_per_hour: float = 0.5
    drift_max_sigma: float = 3.0
    drift_hold_hours: float = 1.0
    drift_recovery_hours: float = 3.0
    mq2_break_fraction: tuple[float, float] = (0.05, 0.20)
    mq2_break_minutes: tuple[float, float] = (5.0, 30.0)
    events_per_day: dict[str, float] = field(
        default_factory=lambda: {"spike": 8, "glitch": 8, "stuck": 3, "drift": 1, "mq2_break": 4}
    )
    guard_minutes: float = 15.0

    def to_dict(self) -> dict:
        """Return the sizes as JSON-ready values."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @property
    def drift_hours(self) -> float:
        """Duration of a drift event: the ramp plus the hold."""
        return self.drift_max_sigma / self.drift_sigma_per_hour + self.drift_hold_hours


def events_frame(rows: list[dict] | None = None) -> pd.DataFrame:
    """Build an events table with EVENT_COLUMNS and typed columns (empty when no rows)."""
    frame = pd.DataFrame(rows or [], columns=list(EVENT_COLUMNS))
    return frame.astype({
        "event": str, "device": str, "kind": str, "target": str, "start_ts": float,
        "end_ts": float, "settle_ts": float, "size": float, "source": str,
    })


def split_by_time(readings: pd.DataFrame, train_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split each device's readings at `train_fraction` of its time span.

    Args:
        readings: sorted by device then ts.

    Returns:
        (train, test), each sorted by device then ts with a fresh index.

    Raises:
        ValueError: train_fraction outside (0, 1).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    ts = readings["ts"].to_numpy(dtype=float)
    is_train = np.zeros(len(readings), dtype=bool)
    for _, start, stop in device_bounds(device_array(readings)):
        cut = ts[start] + train_fraction * (ts[stop - 1] - ts[start])
        is_train[start:stop] = ts[start:stop] < cut
    return (
        readings[is_train].reset_index(drop=True),
        readings[~is_train].reset_index(drop=True),
    )


def longest_runs(readings: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Return device -> channel -> longest run (s) of exactly equal values."""
    result = {}
    ts = readings["ts"].to_numpy(dtype=float)
    for device, start, stop in device_bounds(device_array(readings)):
        block_ts = ts[start:stop]
        runs = {}
        for channel, column in (("temp", "temp"), ("humidity", "humidity"), ("gas", "co")):
            values = readings[column].to_numpy(dtype=float)[start:stop]
            runs[channel] = float(run_seconds(values, block_ts).max()) if stop > start else 0.0
        result[device] = runs
    return result


def is_float32(values: np.ndarray) -> bool:
    """Return True when most values are float32 numbers widened to float64."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return False
    widened = values.astype(np.float32).astype(np.float64) == values
    decimal = np.round(values, 1) == values
    return bool(np.mean(widened & ~decimal) > 0.5)


def quantize(values: np.ndarray, float32: bool, sensor: str) -> np.ndarray:
    """Round to the DHT sensor's 0.1 resolution inside its range, as the device would."""
    low, high = _RANGES[sensor]
    rounded = np.clip(np.round(np.asarray(values, dtype=float), 1), low, high)
    return rounded.astype(np.float32).astype(np.float64) if float32 else rounded


@dataclass
class _Placement:
    """Free time on one device's test part, for events that must not overlap."""

    start: float
    stop: float
    guard: float
    taken: list[tuple[float, float, float]] = field(default_factory=list)

    def take(self, begin: float, end: float, guard: float | None = None) -> None:
        self.taken.append((begin, end, self.guard if guard is None else guard))

    def fits(self, begin: float, end: float) -> bool:
        return begin >= self.start and end <= self.stop and all(
            end + guard <= a or begin - guard >= b for a, b, guard in self.taken
        )


def _gas_shift(block: pd.DataFrame, rows: np.ndarray, delta: np.ndarray) -> dict[str, np.ndarray]:
    """Move ln(co) by `delta` and lpg, smoke with it, so the MQ-2 identity holds."""
    slope_co = MQ2_CURVES["co"][1]
    return {
        name: block[name].to_numpy(dtype=float)[rows] * np.exp(delta * slope_co / MQ2_CURVES[name][1])
        for name in _GAS
    }


class _Injector:
    """Inject one kind of fault into one device's block of test readings."""

    def __init__(self, block, profile, sizes, rng, runs, float32):
        self.block = block
        self.ts = block["ts"].to_numpy(dtype=float)
        self.profile = profile
        self.sizes = sizes
        self.rng = rng
        self.runs = runs
        self.float32 = float32
        self.changes: dict[str, dict[int, float]] = {}

    def set(self, column: str, rows: np.ndarray, values: np.ndarray) -> None:
        target = self.changes.setdefault(column, {})
        for row, value in zip(np.atleast_1d(rows), np.atleast_1d(values)):
            target[int(row)] = float(value)

    def duration(self, kind: str, target: str) -> float:
        """Event duration in seconds (0 for single-reading kinds)."""
        if kind in ("spike", "glitch"):
            return 0.0
        if kind == "stuck":
            minutes = self.rng.uniform(*self.sizes.stuck_minutes)
            return max(60.0 * minutes, self.sizes.stuck_over_longest_run * self.runs[target])
        if kind == "drift":
            return 3600.0 * self.sizes.drift_hours
        return 60.0 * self.rng.uniform(*self.sizes.mq2_break_minutes)

    def apply(self, kind: str, target: str, rows: np.ndarray, begin: float) -> float:
        """Change the readings at `rows`; return the event size."""
        return getattr(self, f"_{kind}")(target, rows, begin)

    def _shift_channel(self, target: str, rows: np.ndarray, offset_sigma: np.ndarray) -> None:
        if target == "gas":
            for name, values in _gas_shift(self.block, rows, offset_sigma * self.profile.scale["gas"]).items():
                self.set(name, rows, values)
            return
        values = self.block[target].to_numpy(dtype=float)[rows]
        self.set(target, rows, quantize(values + offset_sigma * self.profile.scale[target], self.float32, target))

    def _spike(self, target, rows, begin):
        sign = self.rng.choice([-1.0, 1.0])
        if target in _RANGES:
            value = self.block[target].to_numpy(dtype=float)[rows[0]]
            low, high = _RANGES[target]
            if not low <= value + sign * self.sizes.spike_sigma * self.profile.scale[target] <= high:
                sign = -sign
        self._shift_channel(target, rows, np.array([sign * self.sizes.spike_sigma]))
        return sign * self.sizes.spike_sigma

    def _glitch(self, target, rows, begin):
        low, high = self.sizes.glitch_temp_c if target == "temp" else self.sizes.glitch_humidity
        value = quantize(np.array([self.rng.uniform(low, high)]), self.float32, target)
        self.set(target, rows, value)
        return float(value[0])

    def _stuck(self, target, rows, begin):
        columns = _GAS if target == "gas" else (target,)
        for column in columns:
            frozen = self.block[column].to_numpy(dtype=float)[rows[0]]
            self.set(column, rows, np.full(len(rows), frozen))
        return float(self.ts[rows[-1]] - self.ts[rows[0]])

    def _drift(self, target, rows, begin):
        sign = self.rng.choice([-1.0, 1.0])
        hours = (self.ts[rows] - begin) / 3600.0
        offset = np.minimum(self.sizes.drift_sigma_per_hour * hours, self.sizes.drift_max_sigma)
        self._shift_channel(target, rows, sign * offset)
        return sign * self.sizes.drift_max_sigma

    def _mq2_break(self, target, rows, begin):
        sign = self.rng.choice([-1.0, 1.0])
        fraction = sign * self.rng.uniform(*self.sizes.mq2_break_fraction)
        self.set(target, rows, self.block[target].to_numpy(dtype=float)[rows] * (1.0 + fraction))
        return fraction


def inject_faults(
    test: pd.DataFrame,
    kind: str,
    profiles: dict[str, DeviceProfile],
    sizes: FaultSizes,
    seed: int,
    runs: dict[str, dict[str, float]],
    avoid: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Inject labeled events of one fault kind into test readings.

    Args:
        test: clean test readings, sorted by device then ts.
        kind: one of FAULT_KINDS.
        profiles: device -> profile fitted on the train part (sigma).
        sizes: fault sizes and counts.
        seed: random seed; the same inputs and seed give the same faults.
        runs: `longest_runs` of each device's clean readings.
        avoid: events already in the data (for example the twin's own
            glitches); new events keep BACKGROUND_GUARD_SECONDS away from
            them, except drift events, which last hours and may contain
            them (such readings are labeled with the older event).

    Returns:
        (faulty readings with the index of `test`, events with
        EVENT_COLUMNS, source "injected").

    Raises:
        ValueError: an unknown kind, or a device without a profile.
    """
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
    faulty = test.copy()
    events = []
    devices = device_array(test)
    for device_number, (device, start, stop) in enumerate(device_bounds(devices)):
        if device not in profiles:
            raise ValueError(f"no profile for device {device!r}")
        rng = np.random.default_rng([seed, FAULT_KINDS.index(kind), device_number])
        block = test.iloc[start:stop]
        injector = _Injector(
            block, profiles[device], sizes, rng, runs.get(device, {}),
            is_float32(block["temp"].to_numpy(dtype=float)),
        )
        events += _place_events(injector, kind, device, avoid)
        for column, changes in injector.changes.items():
            rows = np.fromiter(changes.keys(), dtype=int)
            positions = faulty.columns.get_loc(column)
            faulty.iloc[start + rows, positions] = np.fromiter(changes.values(), dtype=float)
    return faulty, events_frame(events)


def _place_events(injector: _Injector, kind: str, device: str, avoid) -> list[dict]:
    ts = injector.ts
    sizes = injector.sizes
    guard = 60.0 * sizes.guard_minutes
    placement = _Placement(ts[0] + guard, ts[-1] - guard, guard)
    if avoid is not None and len(avoid) and kind != "drift":
        mine = avoid[avoid["device"] == device]
        for begin, end in zip(mine["start_ts"], mine["end_ts"]):
            placement.take(begin, end, BACKGROUND_GUARD_SECONDS)
    test_days = (ts[-1] - ts[0]) / 86400.0
    wanted = max(1, int(round(sizes.events_per_day[kind] * test_days)))
    targets = KIND_TARGETS[kind]

    # Draw start times until an event fits between the ones placed so far.
    events = []
    for number in range(wanted):
        target = targets[number % len(targets)]
        duration = injector.duration(kind, target)
        for _ in range(200):
            begin = injector.rng.uniform(placement.start, max(placement.start, placement.stop - duration))
            rows = np.flatnonzero((ts >= begin) & (ts <= begin + duration))
            if duration == 0.0:
                rows = np.searchsorted(ts, [begin])
                rows = rows[rows < len(ts)]
            if len(rows) == 0:
                continue
            first, last = ts[rows[0]], ts[rows[-1]]
            if placement.fits(first, last):
                break
        else:
            log.warning("placed %d of %d %s events on %s: no free time left", number, wanted, kind, device)
            break
        settle = last + (3600.0 * sizes.drift_recovery_hours if kind == "drift" else 0.0)
        placement.take(first, settle)

        size = injector.apply(kind, target, rows, first)
        events.append({"device": device, "kind": kind, "target": target, "start_ts": first,
                       "end_ts": last, "settle_ts": settle, "size": size, "source": "injected"})
    for number, event in enumerate(events):
        event["event"] = f"{kind}-{device}-{number}"
    return events


def label_readings(readings: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Return, per reading, the position of its event in `events` (-1 for none).

    A reading belongs to an event when its device matches and its ts lies
    in [start_ts, end_ts]. Events must not overlap on a device.
    """
    labels = np.full(len(readings), -1, dtype=int)
    ts = readings["ts"].to_numpy(dtype=float)
    bounds = {device: (a, b) for device, a, b in device_bounds(device_array(readings))}
    for position, event in enumerate(events.itertuples(index=False)):
        if event.device not in bounds:
            continue
        a, b = bounds[event.device]
        lo = a + np.searchsorted(ts[a:b], event.start_ts, side="left")
        hi = a + np.searchsorted(ts[a:b], event.end_ts, side="right")
        labels[lo:hi] = position
    return labels


def settling(readings: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Return True for readings in (end_ts, settle_ts] of an event of their device."""
    after = events[events["settle_ts"] > events["end_ts"]]
    shifted = after.assign(start_ts=np.nextafter(after["end_ts"].to_numpy(dtype=float), np.inf),
                           end_ts=after["settle_ts"])
    return label_readings(readings, shifted.reset_index(drop=True)) >= 0


def reference_glitches(readings: pd.DataFrame, min_jump: dict[str, float] | None = None) -> pd.DataFrame:
    """Label the glitches already present in real readings, as events.

    Real data has no labels, but its DHT glitches are unmistakable: one
    reading 3 or more degC or % from the median of its neighbours on both
    sides (`features.telemetry.isolated_outliers`). They count as glitch
    faults in the benchmark, not as false alarms.

    Returns:
        Events with EVENT_COLUMNS, kind "glitch", source "reference".
    """
    from iot_telemetry.features.telemetry import GLITCH_MIN_JUMP, isolated_outliers

    min_jump = GLITCH_MIN_JUMP if min_jump is None else min_jump
    rows = []
    for sensor, jump in min_jump.items():
        marked = np.flatnonzero(isolated_outliers(readings, {sensor: jump}))
        for row in marked:
            ts = float(readings["ts"].iat[row])
            rows.append({"device": str(readings["device"].iat[row]), "kind": "glitch",
                         "target": sensor, "start_ts": ts, "end_ts": ts, "settle_ts": ts,
                         "size": float(readings[sensor].iat[row]), "source": "reference"})
    return _merge_same_reading(events_frame(rows))


def _merge_same_reading(events: pd.DataFrame) -> pd.DataFrame:
    """Keep one event per reading, so two glitchy sensors make one event."""
    events = events.sort_values(["device", "start_ts", "target"]).drop_duplicates(["device", "start_ts"])
    events = events.reset_index(drop=True)
    events["event"] = [f"{row.kind}-{row.device}-{row.source}-{i}" for i, row in enumerate(events.itertuples())]
    return events_frame(events.to_dict("records"))


def truth_events(truth: pd.DataFrame) -> pd.DataFrame:
    """Convert the synthetic twin's ground-truth table to glitch events.

    Args:
        truth: the twin's truth file (one row per injected glitch or
            duplicate; rows whose kind is not a glitch are ignored).

    Returns:
        Events with EVENT_COLUMNS, kind "glitch", source "truth".
    """
    frame = truth.copy()
    kind_column = next((c for c in ("kind", "type", "fault") if c in frame), None)
    if kind_column is not None:
        frame = frame[frame[kind_column].astype(str).str.contains("glitch", case=False)]
    target_column = next((c for c in ("sensor", "column", "field", "target") if c in frame), None)
    events = pd.DataFrame({
        "device": frame["device"].astype(str).to_numpy(),
        "kind": "glitch",
        "target": frame[target_column].astype(str).to_numpy() if target_column else "",
        "start_ts": frame["ts"].astype(float).to_numpy(),
        "end_ts": frame["ts"].astype(float).to_numpy(),
        "settle_ts": frame["ts"].astype(float).to_numpy(),
        "size": np.nan,
        "source": "truth",
    })
    return _merge_same_reading(events)
