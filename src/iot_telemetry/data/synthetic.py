"""Calibrated synthetic twin of the Kaggle Environmental Sensor Telemetry file.

The twin has the file's three devices and columns. It is calibrated to the
full 8-day file (rows per device, per-device mean and std of temp and
humidity with glitches included, mean CO, light and motion rates, 13 exact
duplicate rows) and to the dataset author's 24-hour MQTT capture of
2020-07-13 (within-day structure, clocks, glitches, light and motion runs).
The facts and profiles live in `iot_telemetry.data.twin_profiles`.

Each temp, humidity and log-CO signal is a mean, 24 h and 12 h harmonics,
three Ornstein-Uhlenbeck processes (36 h "weather", 90 min, 10 min),
air-conditioning dips and per-reading noise. The 36-hour process is scaled
so that the rows of the calibration window (at least 8 days) have the
file's mean and std exactly, injected glitches included. A twin shorter
than 8 days is therefore the first part of the 8-day twin with the same
seed, not a rescaled day.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from iot_telemetry.data.columns import (
    FLOAT_SENSORS,
    HUMIDITY_RANGE,
    KAGGLE_COLUMNS,
    TEMP_RANGE_C,
)
from iot_telemetry.data.kaggle_csv import write_kaggle_csv
from iot_telemetry.data.twin_profiles import (
    ACTIVITY_OU,
    CALIBRATION_DAYS,
    DAY_S,
    DeviceProfile,
    GLITCH_EXTRA_BIT_PROBABILITY,
    GLITCH_RANGE_TENTHS,
    HOURLY_OU,
    HVAC_PERIOD_S,
    HVAC_PERIOD_STD_S,
    IRREGULAR_BASE_S,
    IRREGULAR_JITTER_S,
    IRREGULAR_K_SHAPE,
    IRREGULAR_STEP_S,
    MOTION_BURST_P,
    MOTION_CONCENTRATION,
    MOTION_EXTRA_BURSTS,
    MOTION_GAP_S,
    MOTION_PEAK_HOUR,
    PROFILES,
    REGULAR_EARLY,
    REGULAR_JITTER_S,
    REGULAR_LATE,
    SHORT_OU,
    SLOW_OU,
    SignalProfile,
)
from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_START = "2020-07-12T00:00:00Z"
DUPLICATES_PER_8_DAYS = 13
TRUTH_COLUMNS = ("kind", "device", "ts", "sensor", "value", "clean_value")

# MQ-2 curves as (a, b, m): log10(gas ppm) = (ln r - b) / m + a, where r = Rs/R0.
MQ2_CURVES = {
    "co": (2.3, 0.72, -0.34),
    "lpg": (2.3, 0.21, -0.47),
    "smoke": (2.3, 0.53, -0.44),
}

_GLITCH_MODULI = 2 ** np.arange(10, 1, -1)
_MAX_CALIBRATION_ROUNDS = 6


# Independent random streams per device, so that changing one part of the
# model leaves the draws of the others unchanged.
_STREAMS = {
    "clock": 0,
    "temp": 1,
    "humidity": 2,
    "co": 3,
    "light": 4,
    "motion": 5,
    "glitch": 6,
    "activity": 7,
}
_DUPLICATE_STREAM = 99
_HVAC_STREAM = 98


def mq2_log_ratio(co: np.ndarray) -> np.ndarray:
    """Invert the MQ-2 CO curve: ln(Rs/R0) from CO in ppm."""
    a, b, m = MQ2_CURVES["co"]
    return (np.log10(co) - a) * m + b


def mq2_gas(log_ratio: np.ndarray, gas: str) -> np.ndarray:
    """Apply the MQ-2 curve of `gas` ("co", "lpg" or "smoke") to ln(Rs/R0)."""
    a, b, m = MQ2_CURVES[gas]
    return 10.0 ** ((log_ratio - b) / m + a)


def generate_twin(
    days: float = 8.0, seed: int = 0, start: str = DEFAULT_START
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate the twin in memory.

    Args:
        days: length in days from `start`; rows have start <= ts < start + days.
        seed: non-negative random seed; the same seed gives the same twin.
        start: ISO-8601 time of the window start (naive times are UTC).

    Returns:
        (rows, truth). `rows` has KAGGLE_COLUMNS: ts (float64 epoch seconds),
        device (string), the float sensors as float64 (float32-widened on
        00:0f and 1c:bf) and light/motion as bool. It is sorted by ts with
        devices interleaved, each duplicate directly after its original.
        `truth` has TRUTH_COLUMNS, one row per injected glitch or duplicate,
        sorted by ts: kind "glitch" or "duplicate", the row's device and ts,
        and for glitches the sensor ("temp" or "humidity"), the written value
        and the clean value it replaced (sensor "" and NaN values for
        duplicates).

    A twin shorter than 8 days is simulated over 8 days and cut, so it costs
    as much as the 8-day twin (about a second) and is its first part.

    Raises:
        InputError: `days` is not a positive finite number, `seed` is
            negative, or `start` is not a valid time.
    """
    start_s = _check_arguments(days, seed, start)
    window_days = max(float(days), CALIBRATION_DAYS)
    window_end = start_s + window_days * DAY_S

    hvac_starts = _hvac_starts(seed, start_s, window_end)
    parts = [
        _simulate_device(profile, index, seed, start_s, window_end, hvac_starts)
        for index, profile in enumerate(PROFILES)
    ]
    rows, glitches, is_glitch = _merge_devices(parts)
    rows, duplicates = _add_duplicates(rows, is_glitch, seed, window_days)

    end_s = start_s + float(days) * DAY_S
    rows = rows.loc[rows["ts"].to_numpy() < end_s].reset_index(drop=True)
    truth = _truth_table(glitches, duplicates, end_s)
    log.debug(
        "twin: %d rows, %d glitches, %d duplicates over %.3g days",
        len(rows),
        int((truth["kind"] == "glitch").sum()),
        int((truth["kind"] == "duplicate").sum()),
        days,
    )
    return rows, truth


def write_twin(
    out: Path, days: float = 8.0, seed: int = 0, start: str = DEFAULT_START
) -> Path:
    """Write the twin to `out` in the raw Kaggle CSV format, and its truth table.

    The truth table goes to `out.with_suffix(".truth.csv")` as plain CSV
    (header, pandas quoting, floats in round-trip repr). Parent folders are
    created. The same arguments give byte-identical files.

    Returns:
        The path of the truth file.

    Raises:
        InputError: invalid `days`, `seed` or `start` (see `generate_twin`).
    """
    out = Path(out)
    rows, truth = generate_twin(days=days, seed=seed, start=start)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_kaggle_csv(rows, out)
    truth_path = out.with_suffix(".truth.csv")
    truth.to_csv(truth_path, index=False, lineterminator="\n")
    log.info(
        "wrote %d rows to %s and %d truth records to %s",
        len(rows),
        out,
        len(truth),
        truth_path,
    )
    return truth_path


def ks_distances(twin: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    """Compare two readings tables per device and float sensor by two-sample KS test.

    Devices are matched by id; a device present in only one table is skipped
    (logged at INFO). NaN readings are left out of both samples; a sensor with
    no values on one side gets NaN statistic and p-value.

    Returns:
        Columns device, sensor, ks_statistic, p_value, n_twin, n_real; one row
        per common device and FLOAT_SENSORS entry, sorted by device.

    Raises:
        InputError: a table is missing the device column or a float sensor,
            or the tables have no device in common.
    """
    from scipy.stats import ks_2samp

    for name, frame in (("twin", twin), ("real", real)):
        missing = [
            column for column in ("device", *FLOAT_SENSORS) if column not in frame
        ]
        if missing:
            raise InputError(
                f"{name} readings are missing column(s) {', '.join(missing)}"
            )
    twin_devices = set(twin["device"].dropna().astype(str))
    real_devices = set(real["device"].dropna().astype(str))
    common = sorted(twin_devices & real_devices)
    if not common:
        raise InputError(
            f"no device in common: twin has {sorted(twin_devices)}, real has "
            f"{sorted(real_devices)}; map the real ids to the Kaggle ids "
            "(devices.aliases)"
        )
    skipped = sorted(twin_devices ^ real_devices)
    if skipped:
        log.info("KS distances skip devices present in one table only: %s", skipped)

    records = []
    for device in common:
        twin_rows = twin.loc[twin["device"].astype(str) == device]
        real_rows = real.loc[real["device"].astype(str) == device]
        for sensor in FLOAT_SENSORS:
            a = twin_rows[sensor].dropna().to_numpy(dtype="float64")
            b = real_rows[sensor].dropna().to_numpy(dtype="float64")
            statistic = p_value = math.nan
            if len(a) and len(b):
                result = ks_2samp(a, b)
                statistic, p_value = float(result.statistic), float(result.pvalue)
            records.append((device, sensor, statistic, p_value, len(a), len(b)))
    columns = ["device", "sensor", "ks_statistic", "p_value", "n_twin", "n_real"]
    return pd.DataFrame.from_records(records, columns=columns)


def _check_arguments(days: float, seed: int, start: str) -> float:
    """Validate the public arguments and return `start` as epoch seconds."""
    if isinstance(days, bool) or not isinstance(
        days, (int, float, np.integer, np.floating)
    ):
        raise InputError(f"days must be a number, got {days!r}")
    if not math.isfinite(days) or days <= 0:
        raise InputError(f"days must be positive and finite, got {days!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        stamp = pd.Timestamp(start)
    except (TypeError, ValueError) as error:
        raise InputError(
            f"invalid start time {start!r}: use ISO-8601, e.g. {DEFAULT_START}"
        ) from error
    if pd.isna(stamp):
        raise InputError(
            f"invalid start time {start!r}: use ISO-8601, e.g. {DEFAULT_START}"
        )
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return float(stamp.timestamp())


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *key]))


# --- one device ------------------------------------------------------------


@dataclass
class _DevicePart:
    """Simulated rows of one device over the calibration window."""

    profile: DeviceProfile
    ts: np.ndarray
    temp: np.ndarray
    humidity: np.ndarray
    co: np.ndarray
    light: np.ndarray
    motion: np.ndarray
    glitches: pd.DataFrame  # columns row, sensor, value, clean_value


def _simulate_device(
    profile: DeviceProfile,
    index: int,
    seed: int,
    start_s: float,
    end_s: float,
    hvac_starts: np.ndarray,
) -> _DevicePart:
    def stream(name: str) -> np.random.Generator:
        return _rng(seed, index, _STREAMS[name])

    ts = _sample_times(profile, start_s, end_s, stream("clock"))
    window_days = (end_s - start_s) / DAY_S
    values, glitches = _temp_and_humidity(profile, ts, window_days, stream, hvac_starts)
    return _DevicePart(
        profile=profile,
        ts=ts,
        temp=values["temp"],
        humidity=values["humidity"],
        co=_co(profile, ts, stream("co")),
        light=_light(profile, ts, start_s, end_s, stream("light")),
        motion=_motion(profile, ts, start_s, end_s, stream("motion")),
        glitches=glitches,
    )


def _temp_and_humidity(
    profile: DeviceProfile,
    ts: np.ndarray,
    window_days: float,
    stream: Callable[[str], np.random.Generator],
    hvac_starts: np.ndarray,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Return the written temp and humidity values and the glitches injected.

    The glitch frame has columns row (position in `ts`), sensor, value and
    clean_value. A row carries at most one glitch, and no glitch sits next to
    another.
    """
    glitch_rng = stream("glitch")
    rates = dict(profile.glitches_per_day)
    reserved = np.zeros(len(ts), dtype=bool)
    activity = _activity(ts, profile.quiet_spread, stream("activity"))
    values, frames = {}, []
    for sensor in ("temp", "humidity"):
        signal: SignalProfile = getattr(profile, sensor)
        within, slow = _latent(signal, ts, stream(sensor), hvac_starts, activity)
        count = int(glitch_rng.poisson(rates.get(sensor, 0.0) * window_days))
        clean, rows, glitch = _calibrated_tenths(
            signal, sensor, within, slow, count, reserved, glitch_rng
        )
        neighbours = np.concatenate([rows - 1, rows, rows + 1])
        reserved[np.clip(neighbours, 0, len(ts) - 1)] = True

        written = clean.copy()
        written[rows] = glitch
        values[sensor] = _tenths_to_values(written, profile.float32)
        frames.append(
            pd.DataFrame(
                {
                    "row": rows,
                    "sensor": sensor,
                    "value": _tenths_to_values(glitch, profile.float32),
                    "clean_value": _tenths_to_values(clean[rows], profile.float32),
                }
            )
        )
    return values, pd.concat(frames, ignore_index=True)


def _sample_times(
    profile: DeviceProfile, start_s: float, end_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw reading times in [start_s, end_s) for the device's clock."""
    mean = profile.mean_interval_s
    count = int((end_s - start_s) / mean * 1.01) + 1000
    draw = _regular_intervals if profile.regular_clock else _irregular_intervals
    intervals = draw(mean, count, rng)
    first = start_s + rng.uniform(0.0, mean)
    ts = first + np.concatenate([[0.0], np.cumsum(intervals)])
    while ts[-1] < end_s:
        more = draw(mean, count // 10 + 1000, rng)
        ts = np.concatenate([ts, ts[-1] + np.cumsum(more)])
    return ts[ts < end_s]


def _irregular_intervals(
    mean: float, count: int, rng: np.random.Generator
) -> np.ndarray:
    # The jitter is folded to stay above the 3.81 s floor: mean sigma*sqrt(2/pi).
    jitter_mean = IRREGULAR_JITTER_S * math.sqrt(2.0 / math.pi)
    steps_mean = (mean - IRREGULAR_BASE_S - jitter_mean) / IRREGULAR_STEP_S
    p = IRREGULAR_K_SHAPE / (IRREGULAR_K_SHAPE + steps_mean)
    steps = rng.negative_binomial(IRREGULAR_K_SHAPE, p, count)
    jitter = rng.normal(0.0, IRREGULAR_JITTER_S, count)
    return IRREGULAR_BASE_S + steps * IRREGULAR_STEP_S + np.abs(jitter)


def _regular_intervals(mean: float, count: int, rng: np.random.Generator) -> np.ndarray:
    late_p, late_s = REGULAR_LATE
    early_p, early_min, early_max = REGULAR_EARLY
    core = mean - late_p * late_s + early_p * (early_min + early_max) / 2
    intervals = core + rng.normal(0.0, REGULAR_JITTER_S, count)
    kind = rng.uniform(size=count)
    late = kind < late_p
    early = (kind >= late_p) & (kind < late_p + early_p)
    intervals[late] += late_s
    intervals[early] -= rng.uniform(early_min, early_max, int(early.sum()))
    return intervals


def _ornstein_uhlenbeck(
    ts: np.ndarray, process: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Simulate a unit-variance stationary OU process, interpolated to sorted `ts`."""
    tau_s, step_s = process
    grid = np.arange(ts[0] - step_s, ts[-1] + 2 * step_s, step_s)
    phi = math.exp(-step_s / tau_s)
    noise = rng.standard_normal(len(grid))
    rest, _ = lfilter(
        [math.sqrt(1.0 - phi * phi)], [1.0, -phi], noise[1:], zi=[phi * noise[0]]
    )
    return np.interp(ts, grid, np.concatenate([noise[:1], rest]))


def _hvac_starts(seed: int, start_s: float, end_s: float) -> np.ndarray:
    """Draw the air-conditioning cycle starts, from before start_s to past end_s."""
    rng = _rng(seed, _HVAC_STREAM)
    shape = (HVAC_PERIOD_S / HVAC_PERIOD_STD_S) ** 2
    count = int((end_s - start_s) / HVAC_PERIOD_S * 1.2) + 10
    starts = (
        start_s
        - HVAC_PERIOD_S
        + np.cumsum(rng.gamma(shape, HVAC_PERIOD_S / shape, count))
    )
    while starts[-1] < end_s:
        more = rng.gamma(shape, HVAC_PERIOD_S / shape, count // 10 + 10)
        starts = np.concatenate([starts, starts[-1] + np.cumsum(more)])
    return starts


def _hvac_dips(
    ts: np.ndarray, starts: np.ndarray, depth: float, tau_s: float
) -> np.ndarray:
    """Return the dip of the latest cycle at each reading (older dips have ended)."""
    latest = np.searchsorted(starts, ts, side="right") - 1
    scaled = (ts - starts[np.maximum(latest, 0)]) / tau_s
    return np.where(latest >= 0, -depth * scaled * np.exp(1.0 - scaled), 0.0)


def _activity(ts: np.ndarray, spread: float, rng: np.random.Generator) -> np.ndarray | None:
    """Return the lognormal factor of the short-term variation, or None for none.

    The factor is exp(spread * z - spread**2) for a unit OU process z, so its
    mean square is 1 and the short-term variance keeps its average.
    """
    if spread <= 0.0:
        return None
    z = _ornstein_uhlenbeck(ts, ACTIVITY_OU, rng)
    return np.exp(spread * z - spread * spread)


def _latent(
    signal: SignalProfile,
    ts: np.ndarray,
    rng: np.random.Generator,
    hvac_starts: np.ndarray,
    activity: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (within-day part around 0, standardized 36-hour part) at times `ts`.

    `activity`, when given, multiplies the 10-minute process and the
    per-reading noise (see `_activity`).
    """
    hour = (ts % DAY_S) / 3600.0
    (daily_amp, daily_peak), (half_amp, half_peak) = signal.daily, signal.half_daily
    within = daily_amp * np.cos(2 * np.pi * (hour - daily_peak) / 24.0)
    within += half_amp * np.cos(2 * np.pi * (hour - half_peak) / 12.0)
    within += signal.hourly_std * _ornstein_uhlenbeck(ts, HOURLY_OU, rng)
    short = signal.short_std * _ornstein_uhlenbeck(ts, SHORT_OU, rng)
    noise = signal.noise_std * rng.standard_normal(len(ts))
    if activity is not None:
        short, noise = activity * short, activity * noise
    within += short
    within += noise
    depth, tau_s = signal.hvac
    if depth and len(hvac_starts):
        within += _hvac_dips(ts, hvac_starts, depth, tau_s)

    slow = _ornstein_uhlenbeck(ts, SLOW_OU, rng)
    slow = (slow - slow.mean()) / slow.std()
    return within - within.mean(), slow


def _calibrated_tenths(
    signal: SignalProfile,
    sensor: str,
    within: np.ndarray,
    slow: np.ndarray,
    count: int,
    reserved: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale the slow part so that all rows, glitches included, hit the target moments.

    Returns (clean tenths for every row, glitch row indices, glitch tenths).
    Glitch rows are isolated: no other glitch on them or next to them.
    """
    # A first guess, ignoring glitches, shows which rows can take a glitch.
    leftover = max(signal.std**2 - within.var(), (0.25 * signal.std) ** 2)
    guess = signal.mean + within + math.sqrt(leftover) * slow
    candidates = rng.permutation(np.arange(1, len(within) - 1))[: 4 * count + 50]
    choice = rng.uniform(size=len(candidates))
    guess_glitch = _glitch_tenths(_to_tenths(guess[candidates], sensor), sensor, choice)
    picked = _pick_isolated(candidates, guess_glitch >= 0, count, reserved)
    rows, choice = candidates[picked], choice[picked]

    # Glitch values follow the clean values they replace, and the solved
    # scale follows the glitches: iterate until the glitches stop changing.
    # A glitch that no longer lands in its range is dropped. If a clean value
    # keeps flipping across a rounding boundary, the last round keeps the
    # glitches the moments were solved with: a few glitches are then the
    # bit-cleared form of a clean value one tenth away from the written one.
    glitch = guess_glitch[picked]
    for round_ in range(_MAX_CALIBRATION_ROUNDS):
        clean, solved = _solve_moments(signal, within, slow, rows, glitch / 10.0)
        clean_tenths = _to_tenths(clean, sensor)
        updated = _glitch_tenths(clean_tenths[rows], sensor, choice)
        keep = updated >= 0
        if (keep.all() and np.array_equal(updated, glitch)) or (
            round_ == _MAX_CALIBRATION_ROUNDS - 1
        ):
            break
        rows, choice, glitch = rows[keep], choice[keep], updated[keep]
    if not solved:
        log.warning(
            "%s: within-day variation and glitches exceed std %.3g; "
            "within-day part shrunk",
            sensor,
            signal.std,
        )
    return clean_tenths, rows, glitch


def _solve_moments(
    signal: SignalProfile,
    within: np.ndarray,
    slow: np.ndarray,
    glitch_rows: np.ndarray,
    glitch_values: np.ndarray,
) -> tuple[np.ndarray, bool]:
    """Return (mean' + within + beta * slow, True) with the target mean and std.

    The moments are over all rows, with `glitch_values` on the glitch rows;
    beta solves the quadratic from the sum of squares over the clean rows.
    If `within` alone is already too wide, it is shrunk instead, the slow
    part is left out and the flag is False.
    """
    total = len(within)
    clean_mask = np.ones(total, dtype=bool)
    clean_mask[glitch_rows] = False
    n_clean = int(clean_mask.sum())
    w = within[clean_mask] - within[clean_mask].mean()
    s = slow[clean_mask] - slow[clean_mask].mean()

    level = (total * signal.mean - glitch_values.sum()) / n_clean
    target = total * (signal.std**2 + signal.mean**2) - np.square(glitch_values).sum()
    spare = target - n_clean * level**2
    # Plain sums, not BLAS dot products: on a busy machine the threaded BLAS
    # call measured 10-20 times slower than np.sum for vectors of this size.
    s_ss, s_ws, s_ww = (float(np.sum(x * y)) for x, y in ((s, s), (w, s), (w, w)))
    discriminant = s_ws**2 - s_ss * (s_ww - spare)
    if discriminant >= 0 and spare > s_ww:
        beta = (-s_ws + math.sqrt(discriminant)) / s_ss
        centred = (
            within - within[clean_mask].mean() + beta * (slow - slow[clean_mask].mean())
        )
        return level + centred, True
    shrink = math.sqrt(max(spare, 0.0) / s_ww)
    return level + shrink * (within - within[clean_mask].mean()), False


def _to_tenths(values: np.ndarray, sensor: str) -> np.ndarray:
    """Round to tenths of a unit, inside the sensor's physical range."""
    low, high = TEMP_RANGE_C if sensor == "temp" else HUMIDITY_RANGE
    # NOTE: the profiles keep every clean value far inside these ranges, so
    # the clip guards the validator's limits without changing the moments.
    return np.rint(np.clip(values, low, high) * 10.0).astype(np.int64)


def _tenths_to_values(tenths: np.ndarray, float32: bool) -> np.ndarray:
    values = tenths / 10.0
    if float32:
        values = values.astype(np.float32).astype(np.float64)
    return values


def _glitch_tenths(clean: np.ndarray, sensor: str, choice: np.ndarray) -> np.ndarray:
    """Clear high bits of each clean value (tenths) until it lands in the glitch range.

    Returns the glitch tenths, or -1 where no bit clearing lands in range.
    Where `choice` < GLITCH_EXTRA_BIT_PROBABILITY, the next lower bit that
    still lands in range is cleared too.
    """
    low, high = GLITCH_RANGE_TENTHS[sensor]
    if len(clean) == 0:
        return np.zeros(0, dtype=np.int64)
    options = clean[:, None] % _GLITCH_MODULI[None, :]
    valid = (options >= low) & (options <= high) & (options != clean[:, None])
    first = np.argmax(valid, axis=1)
    later = valid.copy()
    later[np.arange(len(clean)), first] = False
    second = np.argmax(later, axis=1)
    use_second = (choice < GLITCH_EXTRA_BIT_PROBABILITY) & later.any(axis=1)
    column = np.where(use_second, second, first)
    glitch = options[np.arange(len(clean)), column]
    return np.where(valid.any(axis=1), glitch, -1)


def _pick_isolated(
    candidates: np.ndarray, usable: np.ndarray, count: int, reserved: np.ndarray
) -> np.ndarray:
    """Return positions in `candidates` of up to `count` usable rows, none adjacent.

    `reserved` marks rows that are already used (and their neighbours).
    """
    blocked = set(np.flatnonzero(reserved).tolist())
    picked = []
    for position, (row, ok) in enumerate(zip(candidates.tolist(), usable.tolist())):
        if len(picked) == count:
            break
        if not ok or row in blocked:
            continue
        picked.append(position)
        blocked.update((row - 1, row, row + 1))
    if len(picked) < count:
        log.warning("placed %d of %d glitches: too few usable rows", len(picked), count)
    return np.asarray(picked, dtype=np.int64)


def _co(profile: DeviceProfile, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return CO in ppm: a log-scale signal with the target spread and mean."""
    signal = profile.log_co
    within, slow = _latent(signal, ts, rng, np.zeros(0))
    leftover = max(signal.std**2 - within.var(), (0.25 * signal.std) ** 2)
    co = np.exp(within + math.sqrt(leftover) * slow)
    return co * (profile.co_mean / co.mean())


def _episode_starts(
    count: int,
    peak_hour: float,
    concentration: float,
    start_s: float,
    end_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw episode starts: a uniform day, a von Mises hour around `peak_hour`."""
    days = rng.integers(0, math.ceil((end_s - start_s) / DAY_S), count)
    if concentration > 0:
        angle = rng.vonmises(0.0, concentration, count)
    else:
        angle = rng.uniform(-np.pi, np.pi, count)
    hour = (peak_hour + angle * 24.0 / (2 * np.pi)) % 24.0
    midnight = math.floor(start_s / DAY_S) * DAY_S
    starts = midnight + days * DAY_S + hour * 3600.0
    return np.sort(starts[(starts >= start_s) & (starts < end_s)])


def _light(
    profile: DeviceProfile,
    ts: np.ndarray,
    start_s: float,
    end_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw light flags: always on, or contiguous runs (lights left on a while)."""
    if profile.light_always_on:
        return np.ones(len(ts), dtype=bool)
    count = round(profile.light_episodes_per_day * (end_s - start_s) / DAY_S)
    starts = _episode_starts(
        count, profile.light_peak_hour, profile.light_concentration, start_s, end_s, rng
    )
    if len(starts) == 0:
        return np.zeros(len(ts), dtype=bool)
    ends = starts + rng.exponential(profile.light_mean_s, len(starts))
    # The latest episode started at or before each reading, and the latest
    # end among all episodes started so far (episodes may overlap).
    latest = np.searchsorted(starts, ts, side="right") - 1
    reach = np.maximum.accumulate(ends)
    return (latest >= 0) & (ts < reach[np.maximum(latest, 0)])


def _motion(
    profile: DeviceProfile,
    ts: np.ndarray,
    start_s: float,
    end_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw motion flags: episodes of a few short bursts, mostly 1-3 readings each."""
    motion = np.zeros(len(ts), dtype=bool)
    count = round(profile.motion_episodes_per_day * (end_s - start_s) / DAY_S)
    starts = _episode_starts(
        count, MOTION_PEAK_HOUR, MOTION_CONCENTRATION, start_s, end_s, rng
    )
    bursts = 1 + rng.poisson(MOTION_EXTRA_BURSTS, len(starts))
    gaps = rng.exponential(MOTION_GAP_S, int(bursts.sum()))
    first_burst = np.cumsum(bursts) - bursts
    gaps[first_burst] = 0.0
    elapsed = np.cumsum(gaps)
    offsets = elapsed - np.repeat(elapsed[first_burst], bursts)
    times = np.repeat(starts, bursts) + offsets
    first_row = np.searchsorted(ts, times)
    lengths = rng.geometric(MOTION_BURST_P, len(times))
    rows = np.repeat(first_row, lengths) + _ranks(lengths)
    motion[rows[rows < len(ts)]] = True
    return motion


def _ranks(lengths: np.ndarray) -> np.ndarray:
    """Return 0, 1, ..., n-1 for each run length n, concatenated."""
    if len(lengths) == 0:
        return np.zeros(0, dtype=np.int64)
    run_starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(int(lengths.sum())) - run_starts


# --- all devices -------------------------------------------------------------


def _merge_devices(
    parts: list[_DevicePart],
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Interleave the devices by ts.

    Returns (rows, glitches with device and ts, glitch flag per row).
    """
    ts = np.concatenate([part.ts for part in parts])
    codes = np.concatenate([np.full(len(part.ts), i) for i, part in enumerate(parts)])
    order = np.argsort(ts, kind="stable")
    names = np.array([part.profile.device for part in parts], dtype=object)

    def column(name: str) -> np.ndarray:
        return np.concatenate([getattr(part, name) for part in parts])[order]

    rows = pd.DataFrame(
        {
            "ts": ts[order],
            "device": pd.array(names[codes[order]], dtype="string"),
            "co": column("co"),
            "humidity": column("humidity"),
            "light": column("light"),
            "motion": column("motion"),
            "temp": column("temp"),
        }
    )
    log_ratio = mq2_log_ratio(rows["co"].to_numpy())
    rows["lpg"] = mq2_gas(log_ratio, "lpg")
    rows["smoke"] = mq2_gas(log_ratio, "smoke")
    rows = rows[list(KAGGLE_COLUMNS)]

    is_glitch = np.zeros(len(ts), dtype=bool)
    frames = []
    offset = 0
    for part in parts:
        glitches = part.glitches.assign(
            device=part.profile.device, ts=part.ts[part.glitches["row"].to_numpy()]
        )
        is_glitch[offset + glitches["row"].to_numpy()] = True
        frames.append(glitches.drop(columns="row"))
        offset += len(part.ts)
    return rows, pd.concat(frames, ignore_index=True), is_glitch[order]


def _add_duplicates(
    rows: pd.DataFrame, is_glitch: np.ndarray, seed: int, window_days: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Repeat a few rows, each directly after its original (QoS 1 redelivery)."""
    count = round(DUPLICATES_PER_8_DAYS * window_days / CALIBRATION_DAYS)
    rng = _rng(seed, _DUPLICATE_STREAM)
    eligible = np.flatnonzero(~is_glitch)
    chosen = np.sort(
        rng.choice(eligible, size=min(count, len(eligible)), replace=False)
    )
    repeats = np.ones(len(rows), dtype=np.int64)
    repeats[chosen] = 2
    order = np.repeat(np.arange(len(rows)), repeats)
    duplicated = rows.iloc[order].reset_index(drop=True)
    duplicates = rows.iloc[chosen][["device", "ts"]].reset_index(drop=True)
    return duplicated, duplicates


def _truth_table(
    glitches: pd.DataFrame, duplicates: pd.DataFrame, end_s: float
) -> pd.DataFrame:
    glitches = glitches.assign(kind="glitch")
    duplicates = duplicates.assign(
        kind="duplicate", sensor="", value=np.nan, clean_value=np.nan
    )
    truth = pd.concat([glitches, duplicates], ignore_index=True)[list(TRUTH_COLUMNS)]
    truth = truth.loc[truth["ts"].to_numpy() < end_s]
    truth = truth.sort_values(["ts", "kind", "sensor"], kind="stable")
    truth = truth.reset_index(drop=True)
    return truth.astype(
        {
            "kind": "string",
            "device": "string",
            "ts": "float64",
            "sensor": "string",
            "value": "float64",
            "clean_value": "float64",
        }
    )
