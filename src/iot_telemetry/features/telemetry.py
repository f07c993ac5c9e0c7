"""Per-reading features of the readings table, shared by training, scoring and serving.

The anomaly detectors, the `score` command and the SageMaker inference code
all call `compute_features`, so a model gets the same numbers in training and
in production. This module imports only numpy, pandas, scipy and
`iot_telemetry.data.columns`, because it ships inside the model archive.

Features are causal: each reading's features use that reading and the earlier
readings of the same device in the same frame, never later ones. A reading
with little history gets NaN for the history features (see `FeatureConfig`).

Channels are the three physical sensors of a device: `temp` and `humidity`
(the DHT sensor, in degC and %) and `gas`, the natural log of `co`. The MQ-2
gas sensor reports one resistance ratio from which co, lpg and smoke follow
by fixed power laws, so one channel describes it, and lpg and smoke enter
only through their residuals against that identity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from iot_telemetry.data.columns import FLOAT_SENSORS

CHANNELS = ("temp", "humidity", "gas")

# Key of the profile used for devices absent from training.
FLEET = "__fleet__"

# MQ-2 curves: log10(value) = (ln r - intercept) / slope + 2.3 for the sensor's
# resistance ratio r = Rs/R0. Fitted to the Kaggle file, where lpg and smoke
# follow from co with a relative error below 5e-15.
MQ2_CURVES = {"co": (0.72, -0.34), "lpg": (0.21, -0.47), "smoke": (0.53, -0.44)}

# Scale of a normal distribution's standard deviation relative to its MAD.
MAD_TO_SIGMA = 1.4826

# Smallest scale a channel gets, so a sensor that never moved in training does
# not turn every later change into an infinite z-score: 0.05 degC or %, and a
# 0.1 % relative change of co.
MIN_SCALE = {"temp": 0.05, "humidity": 0.05, "gas": 0.001}

# Smallest jump (degC, %) of a DHT glitch: the real capture's glitches are
# multiples of 3.2, while healthy readings stay within 2 of their neighbours.
GLITCH_MIN_JUMP = {"temp": 3.0, "humidity": 3.0}


@dataclass(frozen=True)
class FeatureConfig:
    """Window settings of the history features.

    Attributes:
        window: number of earlier readings of the device that the rolling
            median and MAD use.
        min_periods: fewest earlier readings for which the rolling features
            are computed; below that they are NaN.
        mad_floor: smallest robust scale of the rolling z-score, in units of
            the device's standard deviation. 0.1-resolution sensors often
            have a MAD of zero over a few minutes; with the default 1.0 the
            z-score is the deviation in standard deviations unless the
            window is noisier than that.
        ewma_halflife: half-life, in readings, of the exponentially weighted
            one-step forecast.
        trend_hours: span of the trend feature: the change of the smoothed
            level over this many hours (NaN until the device has that much
            history in the frame).
        drift_level_minutes: the drift feature's level is the mean of the
            readings in this many minutes up to and including each reading.
        drift_step_hours: length of each step of the drift feature.
        drift_steps: number of consecutive steps of the drift feature; it
            needs drift_steps * drift_step_hours plus drift_level_minutes
            of history (NaN before).
        daily_profile_days: shortest training span, in days, from which a
            device's daily profile is learned; shorter training gets none.
    """

    window: int = 30
    min_periods: int = 5
    mad_floor: float = 1.0
    ewma_halflife: float = 10.0
    trend_hours: float = 3.0
    drift_level_minutes: float = 30.0
    drift_step_hours: float = 2.0
    drift_steps: int = 3
    daily_profile_days: float = 2.0

    @property
    def drift_history_seconds(self) -> float:
        """History (s) a reading needs for a finite drift feature."""
        return 3600.0 * self.drift_step_hours * self.drift_steps + 60.0 * self.drift_level_minutes


@dataclass
class DeviceProfile:
    """Per-device statistics learned from training readings.

    Attributes:
        device: device id, or FLEET for the profile of unknown devices.
        readings: training readings behind the statistics.
        center: median of each channel.
        scale: standard deviation of each channel without the readings that
            `isolated_outliers` marks, so a few glitches do not inflate it;
            floored at MIN_SCALE.
        envelope: (low, high) of the smoothed level (rolling median of the
            previous readings), in units of `scale` around `center`.
        max_run_seconds: longest time each float sensor kept one exact value.
        max_constant_seconds: longest time all five float sensors kept their
            values at once.
        mq2_max_residual: largest |ln(value / identity value)| of lpg and smoke.
        median_interval_seconds: median time between consecutive readings.
        daily: per channel, the coefficients of the daily profile of the
            level in units of `scale` (see `daily_design`); empty when the
            training span is shorter than `FeatureConfig.daily_profile_days`.
    """

    device: str
    readings: int
    center: dict[str, float]
    scale: dict[str, float]
    envelope: dict[str, tuple[float, float]] = field(default_factory=dict)
    max_run_seconds: dict[str, float] = field(default_factory=dict)
    max_constant_seconds: float = 0.0
    mq2_max_residual: float = 0.0
    median_interval_seconds: float = float("nan")
    daily: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the profile as JSON-ready values."""
        values = asdict(self)
        values["envelope"] = {name: list(pair) for name, pair in self.envelope.items()}
        return values


def mq2_log_ratio(sensor: str, values: np.ndarray) -> np.ndarray:
    """Return ln(Rs/R0) implied by co, lpg or smoke values (NaN where <= 0)."""
    intercept, slope = MQ2_CURVES[sensor]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.log10(values) - 2.3) * slope + intercept


def mq2_value(sensor: str, log_ratio: np.ndarray) -> np.ndarray:
    """Return the co, lpg or smoke value the MQ-2 curve gives for ln(Rs/R0)."""
    intercept, slope = MQ2_CURVES[sensor]
    return 10.0 ** ((np.asarray(log_ratio) - intercept) / slope + 2.3)


def mq2_residuals(co, lpg, smoke) -> tuple[np.ndarray, np.ndarray]:
    """Return ln(lpg / identity lpg) and ln(smoke / identity smoke), given co."""
    log_ratio = mq2_log_ratio("co", np.asarray(co, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        lpg_resid = np.log(np.asarray(lpg, dtype=float) / mq2_value("lpg", log_ratio))
        smoke_resid = np.log(np.asarray(smoke, dtype=float) / mq2_value("smoke", log_ratio))
    return lpg_resid, smoke_resid


def channel_values(readings: pd.DataFrame) -> dict[str, np.ndarray]:
    """Return each channel's values as float64 arrays (gas is ln co)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gas = np.log(readings["co"].to_numpy(dtype=float))
    return {
        "temp": readings["temp"].to_numpy(dtype=float),
        "humidity": readings["humidity"].to_numpy(dtype=float),
        "gas": gas,
    }


def device_array(frame: pd.DataFrame) -> np.ndarray:
    """Return the `device` column as a numpy object array of str (NA -> "<NA>")."""
    column = frame["device"]
    if column.dtype == object:
        return column.to_numpy()
    return column.astype(object).where(column.notna(), "<NA>").to_numpy()


def device_bounds(devices: np.ndarray) -> list[tuple[str, int, int]]:
    """Return (device, start, stop) of each contiguous block of equal device ids."""
    if len(devices) == 0:
        return []
    change = np.flatnonzero(devices[1:] != devices[:-1]) + 1
    starts = np.r_[0, change]
    stops = np.r_[change, len(devices)]
    return [(str(devices[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def rolling_previous(values: np.ndarray, window: int, min_periods: int):
    """Return the median and MAD of the `window` values before each position.

    Positions with fewer than `min_periods` earlier values get NaN. `values`
    must be finite.
    """
    n = len(values)
    median = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    if n > window:
        windows = sliding_window_view(values[:-1], window)
        counts = np.full(len(windows), window)
        full = _median_of_first(windows, counts)
        median[window:] = full
        mad[window:] = _median_of_first(np.abs(windows - full[:, None]), counts)
    # Positions with fewer than `window` earlier values get one row each,
    # holding those values padded with NaN. Position 0 has no earlier values.
    start, stop = max(min_periods, 1), min(window, n)
    if stop > start:
        counts = np.arange(start, stop)
        prefix = np.where(
            np.arange(stop - 1) < counts[:, None], values[: stop - 1], np.nan
        )
        median[start:stop] = _median_of_first(prefix, counts)
        deviation = np.abs(prefix - median[start:stop, None])
        mad[start:stop] = _median_of_first(deviation, counts)
    return median, mad


def _median_of_first(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return the median of the first `counts[i]` values of each row.

    Equal to np.median of those values bit for bit: the middle value for an
    odd count, the mean of the two middle values for an even one. Values
    past each count must be NaN, which np.sort puts last, and the others
    finite. Sorting short rows in full measured five times faster than the
    partition inside np.median (numpy 2.4, 970 windows of 30 values).
    """
    ordered = np.sort(rows, axis=1)
    index = np.arange(len(counts))
    upper = ordered[index, counts // 2]
    lower = ordered[index, (counts - 1) // 2]
    return np.where(counts % 2 == 1, upper, (lower + upper) / 2.0)


def run_seconds(values: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Return, per position, how long (s) the value has been exactly equal.

    The first reading of a run gets 0; a reading equal to its predecessor gets
    its ts minus the ts of the run's first reading. `values` may be 2-D
    (readings x sensors), in which case a run continues only while every
    column is unchanged.
    """
    if len(ts) == 0:
        return np.zeros(0)
    values = values.reshape(len(ts), -1)
    changed = np.ones(len(ts), dtype=bool)
    changed[1:] = np.any(values[1:] != values[:-1], axis=1)
    run_start = np.maximum.accumulate(np.where(changed, np.arange(len(ts)), 0))
    return ts - ts[run_start]


def _change_over(values: np.ndarray, ts: np.ndarray, seconds: float) -> np.ndarray:
    """Return values minus the value `seconds` earlier (NaN without that history)."""
    earlier = np.searchsorted(ts, ts - seconds, side="right") - 1
    change = np.full(len(values), np.nan)
    known = (earlier >= 0) & (ts - seconds >= ts[0])
    change[known] = values[known] - values[earlier[known]]
    return change


def _ewma_previous(values: np.ndarray, halflife: float, min_periods: int) -> np.ndarray:
    """Return the exponentially weighted mean of the values before each position.

    Weights are normalized over the values seen so far, as pandas'
    `ewm(halflife=...).mean()` with adjust=True; NaN below `min_periods`.
    """
    decay = 0.5 ** (1.0 / halflife)
    result = np.full(len(values), np.nan)
    if len(values) < 2:
        return result
    weighted = lfilter([1.0], [1.0, -decay], values[:-1])
    weights = lfilter([1.0], [1.0, -decay], np.ones(len(values) - 1))
    result[1:] = weighted / weights
    result[: min_periods] = np.nan
    return result


def daily_design(ts: np.ndarray) -> np.ndarray:
    """Return the daily profile's regressors at epoch seconds `ts`.

    Columns are an intercept and the cosine and sine of the 24-hour and
    12-hour harmonics of the UTC time of day, shape (len(ts), 5).
    """
    angle = 2.0 * np.pi * (np.asarray(ts, dtype=float) % 86400.0) / 86400.0
    return np.column_stack(
        [np.ones(len(angle)), np.cos(angle), np.sin(angle), np.cos(2 * angle), np.sin(2 * angle)]
    )


def _drift_positions(ts: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return (window_start, lagged) positions for sorted epoch seconds `ts`.

    window_start[i] is the first position inside the level window ending at
    i, and lagged[k][i] the last position at least k + 1 steps before ts[i]
    (clipped to 0).
    """
    window_start = np.searchsorted(ts, ts - 60.0 * config.drift_level_minutes, side="right")
    step = 3600.0 * config.drift_step_hours
    targets = ts[None, :] - step * np.arange(1, config.drift_steps + 1)[:, None]
    lagged = np.maximum(np.searchsorted(ts, targets.ravel(), side="right") - 1, 0)
    return window_start, lagged.reshape(config.drift_steps, len(ts))


def drift_feature(level: np.ndarray, ts: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Return the smallest step of a sustained change of the level, signed.

    The level (in standard deviations, daily profile removed) is averaged
    over `drift_level_minutes`. Its changes over `drift_steps` consecutive
    steps of `drift_step_hours` ending at each reading are compared: when
    all have one sign, the feature is the smallest of them with that sign,
    else 0. A slow ramp moves every step, while a single jump, an
    air-conditioning cycle or a turning daily cycle moves only some. NaN
    until the frame contains `FeatureConfig.drift_history_seconds` of history.

    Args:
        level: one value per reading, or one row per channel (channels x
            readings), which shares the index work between channels.
        ts: sorted epoch seconds of the readings.

    Returns:
        An array of the shape of `level`.
    """
    level = np.asarray(level, dtype=float)
    result = np.full(level.shape, np.nan)
    if len(ts) == 0:
        return result
    window_start, lagged = _drift_positions(ts, config)
    sums = np.cumsum(level, axis=-1)
    sums = np.concatenate([np.zeros(level.shape[:-1] + (1,)), sums], axis=-1)
    stop = np.arange(1, len(ts) + 1)
    smooth = (sums[..., stop] - sums[..., window_start]) / (stop - window_start)
    levels = np.concatenate([smooth[..., None, :], smooth[..., lagged]], axis=-2)
    changes = levels[..., :-1, :] - levels[..., 1:, :]
    rising = np.all(changes > 0, axis=-2)
    falling = np.all(changes < 0, axis=-2)
    smallest = np.abs(changes).min(axis=-2)
    feature = np.where(rising, smallest, np.where(falling, -smallest, 0.0))
    known = ts - config.drift_history_seconds >= ts[0]
    result[..., known] = feature[..., known]
    return result


def _device_block_features(
    block: pd.DataFrame, profile: DeviceProfile, config: FeatureConfig
) -> dict[str, np.ndarray]:
    """Compute the features of one device's readings (sorted by ts)."""
    ts = block["ts"].to_numpy(dtype=float)
    out: dict[str, np.ndarray] = {"history": np.arange(len(block), dtype=float)}

    # Channel levels, deviations from the recent median and one-step changes,
    # all in units of the device's standard deviation.
    for name, values in channel_values(block).items():
        center, scale = profile.center[name], profile.scale[name]
        median, mad = rolling_previous(values, config.window, config.min_periods)
        robust = np.maximum(MAD_TO_SIGMA * mad / scale, config.mad_floor)
        previous = np.r_[np.nan, values[:-1]]
        forecast = _ewma_previous(values, config.ewma_halflife, config.min_periods)
        out[f"{name}_level"] = (values - center) / scale
        out[f"{name}_dev"] = (values - median) / scale
        out[f"{name}_z"] = out[f"{name}_dev"] / robust
        # A jump is far from both the recent median and the previous reading:
        # a spike is, while a fast real change (a ramp of small steps) and
        # the return from a glitch are not.
        near = np.fmin(np.abs(values - median), np.abs(values - previous)) / scale
        out[f"{name}_jump"] = np.sign(values - median) * near / robust
        out[f"{name}_delta"] = (values - previous) / scale
        out[f"{name}_ewma"] = (values - forecast) / scale
        out[f"{name}_smooth"] = (median - center) / scale
        out[f"{name}_trend"] = _change_over(out[f"{name}_smooth"], ts, 3600.0 * config.trend_hours)

    # Sustained level changes against the daily profile, all channels at once.
    levels = np.vstack([out[f"{name}_level"] for name in CHANNELS])
    if profile.daily:
        coefficients = np.array([profile.daily.get(name, [0.0] * 5) for name in CHANNELS])
        levels = levels - coefficients @ daily_design(ts).T
    drift = drift_feature(levels, ts, config)
    for row, name in enumerate(CHANNELS):
        out[f"{name}_drift"] = drift[row]

    # Runs of exactly equal values, per sensor and for all sensors at once.
    sensors = block[list(FLOAT_SENSORS)].to_numpy(dtype=float)
    for column, name in enumerate(FLOAT_SENSORS):
        out[f"{name}_run_seconds"] = run_seconds(sensors[:, column], ts)
    out["constant_seconds"] = run_seconds(sensors, ts)

    lpg_resid, smoke_resid = mq2_residuals(block["co"], block["lpg"], block["smoke"])
    out["lpg_resid"] = lpg_resid
    out["smoke_resid"] = smoke_resid
    return out


def compute_features(
    readings: pd.DataFrame,
    profiles: dict[str, DeviceProfile],
    config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """Compute per-reading features with each device's own profile.

    Args:
        readings: device, ts and the five float sensors, all finite and co,
            lpg, smoke positive, sorted by device then ts (any index).
        profiles: device id -> profile; devices not in it use `profiles[FLEET]`.
        config: window settings; the defaults when None.

    Returns:
        One row per reading with the same index, holding `device`, `ts`,
        `profile` (the profile key used), `history` (earlier readings of the
        device in the frame), and per channel `_level`, `_dev`, `_z`,
        `_jump`, `_delta`, `_ewma`, `_smooth`, `_trend`, `_drift` (NaN where
        history is too short; see `drift_feature`), per
        float sensor `_run_seconds`, plus `constant_seconds`, `lpg_resid` and
        `smoke_resid`.

    Raises:
        ValueError: readings are not sorted by device then ts, or a device
            is unknown and there is no FLEET profile.
    """
    config = config or FeatureConfig()
    devices = device_array(readings)
    ts = readings["ts"].to_numpy(dtype=float)
    blocks = device_bounds(devices)
    if len({device for device, _, _ in blocks}) != len(blocks) or any(
        np.any(np.diff(ts[a:b]) < 0) for _, a, b in blocks
    ):
        raise ValueError("readings must be sorted by device then ts")

    parts, keys = [], np.empty(len(readings), dtype=object)
    for device, start, stop in blocks:
        key = device if device in profiles else FLEET
        if key not in profiles:
            raise ValueError(f"no profile for device {device!r} and no fleet profile")
        keys[start:stop] = key
        parts.append(_device_block_features(readings.iloc[start:stop], profiles[key], config))

    columns = {
        "device": pd.Series(devices, index=readings.index, dtype=object),
        "ts": ts,
        "profile": pd.Series(keys, index=readings.index, dtype=object),
    }
    # Object columns, not pandas 3's inferred Arrow strings: detectors read
    # them as numpy arrays many times.
    if parts:
        columns.update({name: np.concatenate([part[name] for part in parts]) for name in parts[0]})
    frame = pd.DataFrame(columns, index=readings.index)
    # An object column index too: pandas 3 infers a str-dtype index, whose
    # column lookups took 15 us each against 9 us here, and the detectors
    # look up dozens of columns per call.
    frame.columns = pd.Index(frame.columns, dtype=object)
    return frame


def isolated_outliers(
    readings: pd.DataFrame, min_jump: dict[str, float] | None = None
) -> np.ndarray:
    """Mark readings far from the median of their neighbours on both sides.

    This is the signature of the DHT sensor's glitches: one reading off by
    3.2, 6.4 or 12.8 degC or % (a flipped bit of the 0.1-resolution value),
    then back to normal. It looks at later readings, so it serves training
    and benchmark labels only, never live scoring.

    Args:
        readings: sorted by device then ts.
        min_jump: sensor -> smallest distance from the centered rolling
            median of 9 readings that counts; GLITCH_MIN_JUMP when None.

    Returns:
        Boolean array, one value per row.
    """
    min_jump = GLITCH_MIN_JUMP if min_jump is None else min_jump
    mask = np.zeros(len(readings), dtype=bool)
    devices = device_array(readings)
    for _, start, stop in device_bounds(devices):
        for sensor, jump in min_jump.items():
            values = readings[sensor].iloc[start:stop].reset_index(drop=True)
            median = values.rolling(9, center=True, min_periods=1).median()
            mask[start:stop] |= ((values - median).abs() >= jump).to_numpy()
    return mask


def _initial_profile(device: str, block: pd.DataFrame) -> DeviceProfile:
    channels = channel_values(block)
    typical = ~isolated_outliers(block)
    center = {name: float(np.median(v[typical])) for name, v in channels.items()}
    scale = {name: max(float(np.std(v[typical])), MIN_SCALE[name]) for name, v in channels.items()}
    ts = block["ts"].to_numpy(dtype=float)
    interval = float(np.median(np.diff(ts))) if len(ts) > 1 else float("nan")
    return DeviceProfile(device, len(block), center, scale, median_interval_seconds=interval)


def _learn_daily_profile(
    profile: DeviceProfile, block: pd.DataFrame, config: FeatureConfig
) -> None:
    """Fit each channel's daily profile by least squares, glitches left out."""
    ts = block["ts"].to_numpy(dtype=float)
    if len(ts) < 2 or ts[-1] - ts[0] < 86400.0 * config.daily_profile_days:
        return
    typical = ~isolated_outliers(block)
    design = daily_design(ts[typical])
    for name, values in channel_values(block).items():
        level = (values[typical] - profile.center[name]) / profile.scale[name]
        profile.daily[name] = np.linalg.lstsq(design, level, rcond=None)[0].tolist()


def _learn_history_stats(profile: DeviceProfile, features: pd.DataFrame) -> None:
    for name in CHANNELS:
        smooth = features[f"{name}_smooth"].dropna().to_numpy()
        pair = (float(smooth.min()), float(smooth.max())) if len(smooth) else (-np.inf, np.inf)
        profile.envelope[name] = pair
    for name in FLOAT_SENSORS:
        profile.max_run_seconds[name] = float(features[f"{name}_run_seconds"].max())
    profile.max_constant_seconds = float(features["constant_seconds"].max())
    residuals = np.abs(features[["lpg_resid", "smoke_resid"]].to_numpy())
    profile.mq2_max_residual = float(np.nanmax(residuals)) if residuals.size else 0.0


def fit_profiles(
    readings: pd.DataFrame, config: FeatureConfig | None = None
) -> dict[str, DeviceProfile]:
    """Learn one profile per device, plus the FLEET profile for unknown devices.

    The fleet profile pools every training reading for center and scale, so
    its scale includes the spread between devices. It takes the widest
    envelope, the longest runs and the largest MQ-2 residual of any device,
    so an unknown device raises fewer alarms, not more.

    Args:
        readings: training readings, same requirements as
            `compute_features`; at least two readings per device. Readings
            that `isolated_outliers` marks do not count toward center and
            scale.

    Raises:
        ValueError: no readings.
    """
    config = config or FeatureConfig()
    if len(readings) == 0:
        raise ValueError("cannot fit profiles on an empty readings table")
    devices = device_array(readings)
    profiles = {}
    for device, start, stop in device_bounds(devices):
        block = readings.iloc[start:stop]
        profile = _initial_profile(device, block)
        _learn_daily_profile(profile, block, config)
        _learn_history_stats(profile, compute_features(block, {device: profile}, config))
        profiles[device] = profile

    fleet = _initial_profile(FLEET, readings)
    members = list(profiles.values())
    for name in CHANNELS:
        # Envelopes are in each device's own units; convert to fleet units.
        lows = [(p.center[name] + p.envelope[name][0] * p.scale[name] - fleet.center[name]) / fleet.scale[name] for p in members]
        highs = [(p.center[name] + p.envelope[name][1] * p.scale[name] - fleet.center[name]) / fleet.scale[name] for p in members]
        fleet.envelope[name] = (min(lows), max(highs))
    for name in FLOAT_SENSORS:
        fleet.max_run_seconds[name] = max(p.max_run_seconds[name] for p in members)
    fleet.max_constant_seconds = max(p.max_constant_seconds for p in members)
    fleet.mq2_max_residual = max(p.mq2_max_residual for p in members)
    fleet.median_interval_seconds = float(np.median([p.median_interval_seconds for p in members]))
    profiles[FLEET] = fleet
    return profiles
