"""Calibration facts of the synthetic twin: device profiles and measured constants.

The moments, row counts and CO means come from the full Kaggle file. The
within-day structure, clocks, glitches, light and motion runs and the
air-conditioning cycle were measured on the dataset author's 24-hour MQTT
capture of 2020-07-13. `iot_telemetry.data.synthetic` simulates from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_S = 86_400.0
CALIBRATION_DAYS = 8.0
# Maximum length of a twin in days. The twin has about 50,000 rows a day, so
# a year is 18 million rows and an estimated several GiB while it is generated.
MAX_DAYS = 366.0

# Ornstein-Uhlenbeck processes as (time constant, grid step), both in
# seconds. Each is simulated on its grid and linearly interpolated to the
# reading times, which keeps it smooth below the grid step. A raw OU path is
# rough at every scale: with 1c:bf's humidity spread, a 36-hour one moves
# about 0.09 % between samples, so nearly every reading would change.
SLOW_OU = (36 * 3600.0, 7200.0)
HOURLY_OU = (90 * 60.0, 300.0)
SHORT_OU = (10 * 60.0, 30.0)
# Quiet and busy spells: the 10-minute process and the noise of a device with
# a `quiet_spread` are scaled by a lognormal factor that follows this OU
# process, so the sensor sometimes keeps one value for many minutes.
ACTIVITY_OU = (60 * 60.0, 60.0)

# Irregular clock (00:0f, 1c:bf): in the capture, intervals sit on a lattice
# of 3.81 s plus k steps of 0.538 s, and k is close to geometric. The twin
# draws k from a negative binomial with this shape and the device's mean.
IRREGULAR_BASE_S = 3.81
IRREGULAR_STEP_S = 0.538
IRREGULAR_JITTER_S = 0.007
IRREGULAR_K_SHAPE = 1.2

# Regular clock (b8:27), from the capture: 95 % of intervals within a few ms
# of the mean, 1.6 % about 0.25 s late, 3.2 % 0.02-0.16 s early.
REGULAR_JITTER_S = 0.0032
REGULAR_LATE = (0.0162, 0.248)
REGULAR_EARLY = (0.0315, 0.02, 0.16)

# Glitch values land in these ranges, in tenths of a unit (temp 0-7 degC,
# humidity 8-25 %), like the capture's farthest-off readings. The capture
# also has smaller ones (12.8 below the clean value), which the twin omits.
GLITCH_RANGE_TENTHS = {"temp": (0, 70), "humidity": (80, 250)}
# In the capture a glitch equals the clean reading in tenths with its high
# bits cleared (18.9 -> 6.1 is 189 - 128 tenths, 75.4 -> 24.2 is 754 - 512).
# Usually the fewest bits that reach the range are cleared, sometimes one more.
GLITCH_EXTRA_BIT_PROBABILITY = 0.1


@dataclass(frozen=True)
class SignalProfile:
    """Target moments and within-day structure of one signal on one device.

    Units are the sensor's (degC, % relative humidity), or natural-log ppm
    for CO. `mean` and `std` are the full file's over 8 days, glitches
    included. `daily` and `half_daily` are (amplitude, UTC hour of the first
    peak) of the 24 h and 12 h harmonics. The three stds scale the 90-minute
    and 10-minute processes and the per-reading noise. `hvac` is (depth,
    time constant in seconds) of the dip each air-conditioning cycle causes,
    zero for none. The 36-hour process takes the variance left over to reach
    `std`.
    """

    mean: float
    std: float
    daily: tuple[float, float]
    half_daily: tuple[float, float]
    hourly_std: float
    short_std: float
    noise_std: float
    hvac: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class DeviceProfile:
    """Everything the twin needs to simulate one device.

    `float32` marks devices whose temp and humidity pass through float32
    before publishing (the file then contains values like 19.700000762939453).
    `log_co` sets the spread and structure of ln(co); CO is then scaled so
    that its mean is `co_mean`. `quiet_spread` is the log-scale spread of the
    factor on the short-term variation of temp and humidity (0 for none).
    Episode rates are per day; light runs have exponential durations with
    mean `light_mean_s`, centred on `light_peak_hour` (UTC).
    """

    device: str
    rows_per_8_days: int
    float32: bool
    regular_clock: bool
    temp: SignalProfile
    humidity: SignalProfile
    log_co: SignalProfile
    co_mean: float
    light_always_on: bool
    light_episodes_per_day: float
    light_mean_s: float
    light_peak_hour: float
    light_concentration: float
    motion_episodes_per_day: float
    glitches_per_day: tuple[tuple[str, float], ...]
    quiet_spread: float = 0.0

    @property
    def mean_interval_s(self) -> float:
        """Mean sampling interval that gives `rows_per_8_days` rows in 8 days."""
        return CALIBRATION_DAYS * DAY_S / self.rows_per_8_days


# Moments, rows and CO means: the full file. Harmonics, process scales,
# air-conditioning dips and glitch rates: measured on the 2020-07-13 capture.
# Temp and humidity noise: tuned so that the share of consecutive readings
# that differ matches the capture's (temp 14 / 13 / 19 %, humidity
# 47 / 39 / 29 % on 00:0f / 1c:bf / b8:27). Light: runs like the capture's,
# on about 0.5 % and 2.5 % of rows (the full file: 0.3-3 %). Motion: rates
# that give about 0.12 % of all rows, as in the full file. b8:27's quiet
# spells: per day the capture has about 9 temp runs of one value over 400 s
# and 7 humidity runs over 200 s, the longest 1,184 s and 561 s. Without
# quiet spells the twin had about one such run in 8 days.
# NOTE: the full file's CO spread is not published; log_co.std is the
# capture day's spread of ln(co), an estimate for the 8 days.
PROFILES = (
    DeviceProfile(
        device="00:0f:00:70:91:0a",
        rows_per_8_days=111_815,
        float32=True,
        regular_clock=False,
        temp=SignalProfile(
            19.36, 0.64, (0.329, 10.2), (0.041, 7.7), 0.060, 0.030, 0.014, (0.3, 300.0)
        ),
        humidity=SignalProfile(
            75.44, 1.98, (0.762, 10.8), (0.185, 4.7), 0.322, 0.150, 0.045, (1.6, 180.0)
        ),
        log_co=SignalProfile(
            math.log(0.00353), 0.25, (0.218, 0.9), (0.136, 5.8), 0.168, 0.020, 0.011
        ),
        co_mean=0.00353,
        light_always_on=False,
        light_episodes_per_day=6.0,
        light_mean_s=80.0,
        light_peak_hour=20.0,
        light_concentration=1.0,
        motion_episodes_per_day=0.8,
        glitches_per_day=(("temp", 21.0), ("humidity", 4.0)),
    ),
    DeviceProfile(
        device="1c:bf:ce:15:ec:4d",
        rows_per_8_days=105_918,
        float32=True,
        regular_clock=False,
        temp=SignalProfile(
            26.03, 2.03, (1.395, 23.9), (0.034, 0.5), 0.166, 0.056, 0.010
        ),
        humidity=SignalProfile(
            61.91, 8.94, (1.717, 17.0), (0.576, 11.8), 0.832, 0.480, 0.028
        ),
        log_co=SignalProfile(
            math.log(0.00418), 0.07, (0.061, 7.6), (0.014, 6.3), 0.023, 0.009, 0.006
        ),
        co_mean=0.00418,
        light_always_on=True,
        light_episodes_per_day=0.0,
        light_mean_s=0.0,
        light_peak_hour=0.0,
        light_concentration=0.0,
        motion_episodes_per_day=8.0,
        glitches_per_day=(("temp", 3.0), ("humidity", 9.0)),
    ),
    DeviceProfile(
        device="b8:27:eb:bf:9d:51",
        rows_per_8_days=187_451,
        float32=False,
        regular_clock=True,
        temp=SignalProfile(
            22.28, 0.48, (0.310, 22.5), (0.053, 2.2), 0.140, 0.100, 0.016, (0.6, 180.0)
        ),
        humidity=SignalProfile(
            50.81, 1.89, (1.253, 11.4), (0.325, 2.8), 0.419, 0.400, 0.020, (2.7, 150.0)
        ),
        log_co=SignalProfile(
            math.log(0.00556), 0.03, (0.017, 22.1), (0.012, 10.9), 0.013, 0.003, 0.003
        ),
        co_mean=0.00556,
        light_always_on=False,
        light_episodes_per_day=20.0,
        light_mean_s=110.0,
        light_peak_hour=19.5,
        light_concentration=4.0,
        motion_episodes_per_day=9.0,
        glitches_per_day=(),
        quiet_spread=0.6,
    ),
)

# Motion episodes: 1 + Poisson(1) bursts, spaced by exponential gaps (mean
# 60 s), each a geometric number of readings long (at least 1, mean 1.7):
# clusters of short runs, as in the capture.
MOTION_EXTRA_BURSTS = 1.0
MOTION_GAP_S = 60.0
MOTION_BURST_P = 0.6
MOTION_PEAK_HOUR = 18.0
MOTION_CONCENTRATION = 0.5

# Air-conditioning cycles, shared by 00:0f and b8:27 (their dips coincide in
# the capture): one every 52 min on average, std 15 min (gamma-distributed
# gaps). Each cycle adds -depth * (u / tau) * exp(1 - u / tau) at time u after
# its start: a dip of `depth` at u = tau, back to within 9 % of it at 5 tau.
HVAC_PERIOD_S = 52 * 60.0
HVAC_PERIOD_STD_S = 15 * 60.0
