"""Candidate anomaly detectors over the shared per-reading features.

Every detector turns a feature frame (`iot_telemetry.features.telemetry`)
into named components: one array per reason tag, scaled so that 1.0 is the
detector's threshold for that reading's device. A reading is flagged when
any component reaches 1.0, and its reasons are the tags that do. Tags name a
channel (`temp`, `humidity`, `gas` for the MQ-2 sensor) or a rule (`mq2` for
the identity between co, lpg and smoke, `stuck:SENSOR`, `level:CHANNEL`).

Thresholds are learned per device from clean training features; the FLEET
profile's threshold, used for unknown devices, is the largest of any device.

This module ships in the model archive: it imports only numpy, pandas,
scikit-learn and the feature module.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor

from iot_telemetry.data.columns import FLOAT_SENSORS
from iot_telemetry.features.telemetry import (
    CHANNELS,
    FLEET,
    DeviceProfile,
    FeatureConfig,
    device_bounds,
)

Components = dict[str, np.ndarray]


def by_profile(features: pd.DataFrame, values: dict[str, float]) -> np.ndarray:
    """Map each row's profile key to its value in `values` (FLEET if absent)."""
    keys = features["profile"].to_numpy()
    result = np.empty(len(keys), dtype=float)
    # Rows come sorted by device, so keys form a few contiguous blocks.
    for key, start, stop in device_bounds(keys):
        result[start:stop] = values.get(key, values[FLEET])
    return result


def _with_fleet(values: dict[str, float]) -> dict[str, float]:
    devices = {key: value for key, value in values.items() if key != FLEET}
    return {**devices, FLEET: max(devices.values()) if devices else np.inf}


def _quantile_by_profile(features: pd.DataFrame, raw: np.ndarray, quantile: float):
    """Return profile key -> nan-quantile of `raw` over that profile's rows."""
    result = {}
    for key, rows in features.groupby("profile", sort=False).indices.items():
        values = raw[rows]
        values = values[np.isfinite(values)]
        result[key] = float(np.quantile(values, quantile)) if len(values) else 0.0
    return result


class Detector:
    """Base class: `fit` learns thresholds, `components` scores readings."""

    name = "detector"

    def fit(self, features: pd.DataFrame, profiles: dict[str, DeviceProfile]) -> Detector:
        """Learn from clean training features; returns self."""
        return self

    def components(self, features: pd.DataFrame) -> Components:
        """Return reason tag -> score per row (1.0 = threshold, NaN counts as 0)."""
        raise NotImplementedError

    def thresholds(self) -> dict:
        """Return the learned thresholds as JSON-ready values."""
        return {}

    def history_seconds(self, config: FeatureConfig) -> float:
        """Return the history (s) per device that the detector's features need."""
        return 0.0


class RobustZ(Detector):
    """Rolling median / MAD z-score of each channel against its recent past.

    The z-score is the distance from the median of the device's previous
    readings, divided by the larger of the window's MAD-based scale and a
    floor. Both are in units of the device's standard deviation (see
    FeatureConfig).
    Its threshold per device and channel is the larger of `min_threshold`
    and `margin` times the `quantile` of |z| on clean training readings.
    """

    name = "robust_z"
    column = "z"

    def __init__(self, min_threshold: float = 3.0, quantile: float = 0.9999, margin: float = 1.1):
        self.min_threshold = min_threshold
        self.quantile = quantile
        self.margin = margin
        self.limits: dict[str, dict[str, float]] = {}

    def fit(self, features, profiles):
        for channel in CHANNELS:
            raw = np.abs(features[f"{channel}_{self.column}"].to_numpy())
            learned = _quantile_by_profile(features, raw, self.quantile)
            limits = {key: max(self.min_threshold, self.margin * value) for key, value in learned.items()}
            self.limits[channel] = _with_fleet(limits)
        return self

    def components(self, features):
        return {
            channel: np.abs(features[f"{channel}_{self.column}"].to_numpy())
            / by_profile(features, self.limits[channel])
            for channel in CHANNELS
        }

    def thresholds(self):
        return {f"{channel}_{self.column}": limits for channel, limits in self.limits.items()}


class RobustJump(RobustZ):
    """Robust z-score of jumps: far from the recent median and the previous reading.

    The score is the smaller of the two distances over the robust scale of
    RobustZ. So a fast but gradual real change, or the first reading after
    a glitch, does not score. Thresholds are learned as in RobustZ.
    """

    name = "robust_jump"
    column = "jump"


class Trend(RobustZ):
    """Slow drift: change of the smoothed level over `FeatureConfig.trend_hours`.

    Thresholds per device and channel are learned as in RobustZ, from the
    trends of clean training readings.

    NOTE: on the 8-day twin this finds half of the 0.5 sigma/h drifts but
    raises about 70 false alarms per device-day, because healthy readings
    trend as fast over 3 hours; no drift detector here meets the default
    alarm budget.
    """

    name = "trend"
    column = "trend"

    def __init__(self, min_threshold: float = 1.5, quantile: float = 0.9999, margin: float = 1.1):
        super().__init__(min_threshold, quantile, margin)

    def components(self, features):
        # Tags such as "trend:temp" keep these flags apart from the jump ones.
        return {f"{self.name}:{tag}": values for tag, values in super().components(features).items()}


class Drift(Trend):
    """Slow drift: a sustained change of the level against the daily profile.

    The feature (`features.telemetry.drift_feature`) is the smallest of
    three consecutive 2-hour changes of the 30-minute mean level, when all
    have one sign, after the device's daily profile is removed (when the
    training spans at least two days). The threshold per device and
    channel is the larger of `min_threshold` and `margin` times the
    `quantile` of |feature| on clean training readings. Reasons are tagged
    "drift:CHANNEL".

    The default `min_threshold` sits just above the 1.0 sigma step of a
    0.5 sigma/h drift, so it finds such a drift only where the natural level
    moves along with it. A threshold of 0.8 finds 10 of 12 drifts on the
    8-day twin but raises 25 false alarms per device-day, because healthy
    levels change as fast for hours at a time.

    NOTE: with the defaults, the drift F1 is 0.59 on the pipeline's 8-day
    twin (seed 0), without false alarms. On 8-day twins of seeds 1, 2 and 5
    it is 0.40, 0.14 and 0.27, and the last raises 21 false alarms per
    device-day.
    """

    name = "drift"
    column = "drift"

    def __init__(self, min_threshold: float = 1.05, quantile: float = 1.0, margin: float = 1.0):
        super().__init__(min_threshold, quantile, margin)

    def history_seconds(self, config):
        return config.drift_history_seconds


class EwmaResidual(RobustZ):
    """One-step forecast residual: distance from the exponentially weighted mean.

    The forecast is the EWMA of the device's previous readings, so a spike
    also pulls the next forecasts off. This is the non-robust counterpart of
    RobustZ, with thresholds learned the same way.
    """

    name = "ewma"
    column = "ewma"


class Mq2Identity(Detector):
    """Physical rule: lpg and smoke must equal what the MQ-2 curves give from co.

    The residual is |ln(value / identity value)|, and the tolerance per
    device is the larger of `min_tolerance` and `margin` times the largest
    residual on training readings (about 5e-15 on the real capture).
    """

    name = "mq2"

    def __init__(self, min_tolerance: float = 1e-3, margin: float = 10.0):
        self.min_tolerance = min_tolerance
        self.margin = margin
        self.tolerance: dict[str, float] = {}

    def fit(self, features, profiles):
        self.tolerance = {
            key: max(self.min_tolerance, self.margin * profile.mq2_max_residual)
            for key, profile in profiles.items()
        }
        return self

    def components(self, features):
        residual = np.fmax(features["lpg_resid"].abs(), features["smoke_resid"].abs()).to_numpy()
        return {"mq2": residual / by_profile(features, self.tolerance)}

    def thresholds(self):
        return {"mq2_log_residual": self.tolerance}


class StuckRun(Detector):
    """Rule: a sensor kept one exact value longer than it ever did in training.

    The limit per device and sensor is the larger of `min_seconds` and
    `margin` times the longest run of equal values in the training
    readings, because healthy 0.1-resolution sensors repeat a value for
    many minutes. The default floor of 5 minutes covers the real capture's
    MQ-2 values, which repeat for up to 3.6 minutes, also when a model is
    trained on data whose runs are shorter.
    """

    name = "stuck"

    def __init__(self, min_seconds: float = 300.0, margin: float = 2.0):
        self.min_seconds = min_seconds
        self.margin = margin
        self.limits: dict[str, dict[str, float]] = {}

    def fit(self, features, profiles):
        for sensor in FLOAT_SENSORS:
            self.limits[sensor] = {
                key: max(self.min_seconds, self.margin * profile.max_run_seconds[sensor])
                for key, profile in profiles.items()
            }
        return self

    def components(self, features):
        return {
            f"stuck:{sensor}": features[f"{sensor}_run_seconds"].to_numpy()
            / by_profile(features, self.limits[sensor])
            for sensor in FLOAT_SENSORS
        }

    def thresholds(self):
        return {f"{sensor}_run_seconds": limits for sensor, limits in self.limits.items()}


class LevelEnvelope(Detector):
    """Rule for slow drift: the smoothed level leaves its training envelope.

    The smoothed level is the rolling median of the previous readings in
    units of the device's standard deviation. A reading is flagged once that
    level is more than `margin` outside the range of the training readings.

    NOTE: the test part's hours of the day and slow changes leave the
    training envelope for hours, so on the 8-day twin this raises about
    2,400 false alarms per device-day.
    """

    name = "level"

    def __init__(self, margin: float = 1.0):
        self.margin = margin
        self.envelope: dict[str, dict[str, tuple[float, float]]] = {}

    def fit(self, features, profiles):
        self.envelope = {
            channel: {key: tuple(profile.envelope[channel]) for key, profile in profiles.items()}
            for channel in CHANNELS
        }
        return self

    def components(self, features):
        result = {}
        for channel in CHANNELS:
            low = by_profile(features, {k: v[0] for k, v in self.envelope[channel].items()})
            high = by_profile(features, {k: v[1] for k, v in self.envelope[channel].items()})
            smooth = features[f"{channel}_smooth"].to_numpy()
            excess = np.fmax(smooth - high, low - smooth)
            result[f"level:{channel}"] = np.clip(excess, 0.0, None) / self.margin
        return result

    def thresholds(self):
        return {
            f"{channel}_smooth_envelope": {k: list(v) for k, v in envelope.items()}
            for channel, envelope in self.envelope.items()
        }


# Inputs of the learned detectors: per channel, the deviation from the
# recent median, the one-step change and the jump (all in device standard
# deviations), plus the MQ-2 residuals on a log scale of the tolerance. The
# level itself is left out: a time split puts other hours of the day in the
# test part, and on levels the learned detectors flag those hours wholesale.
LEARNED_INPUTS = tuple(
    f"{channel}_{kind}" for channel in CHANNELS for kind in ("dev", "delta", "jump")
) + ("lpg_resid", "smoke_resid")


def learned_matrix(features: pd.DataFrame) -> np.ndarray:
    """Return the learned detectors' input matrix (NaN history features -> 0)."""
    matrix = features[list(LEARNED_INPUTS)].to_numpy(dtype=float, copy=True)
    matrix[:, -2:] = np.log10(1.0 + np.abs(matrix[:, -2:]) / 1e-3)
    return np.nan_to_num(matrix, nan=0.0, posinf=1e6, neginf=-1e6)


def _attribute(features: pd.DataFrame, score: np.ndarray) -> Components:
    """Split a multivariate score into one component per channel or rule.

    Each row's score goes to the channel with the largest standardized
    input, or to `mq2` when the identity residual dominates.
    """
    matrix = np.abs(learned_matrix(features))
    groups = [matrix[:, 3 * i : 3 * i + 3].max(axis=1) for i in range(len(CHANNELS))]
    groups.append(matrix[:, -2:].max(axis=1))
    winner = np.argmax(np.vstack(groups), axis=0)
    tags = [*CHANNELS, "mq2"]
    return {tag: np.where(winner == i, score, 0.0) for i, tag in enumerate(tags)}


class _LearnedDetector(Detector):
    """Shared threshold logic of IsolationForest and LocalOutlierFactor."""

    def __init__(self, quantile: float = 0.9999, margin: float = 1.0, max_train: int = 20000, seed: int = 0):
        self.quantile = quantile
        self.margin = margin
        self.max_train = max_train
        self.seed = seed
        self.estimator = None
        self.limits: dict[str, float] = {}

    def _split(self, count: int) -> np.ndarray:
        """Return a mask of the rows the estimator is fitted on."""
        fitted = np.ones(count, dtype=bool)
        if count > 2 * self.max_train:
            fitted[:] = False
            fitted[np.random.default_rng(self.seed).choice(count, self.max_train, replace=False)] = True
        return fitted

    def _raw(self, matrix: np.ndarray) -> np.ndarray:
        return -self.estimator.score_samples(matrix)

    def _training_rows(self, matrix: np.ndarray) -> np.ndarray:
        return matrix

    def fit(self, features, profiles):
        matrix = learned_matrix(features)
        fitted = self._split(len(matrix))
        self.estimator = self._make().fit(self._training_rows(matrix[fitted]))
        # Thresholds come from training rows the estimator did not see when
        # there are enough of them: a novelty LOF scores its own training
        # points as more normal than new ones.
        held_out = ~fitted if (~fitted).any() else fitted
        raw = np.full(len(matrix), np.nan)
        raw[held_out] = self._raw(matrix[held_out])
        learned = _quantile_by_profile(features, raw, self.quantile)
        self.limits = _with_fleet({key: self.margin * value for key, value in learned.items()})
        return self

    def components(self, features):
        if len(features) == 0:
            return {tag: np.zeros(0) for tag in (*CHANNELS, "mq2")}
        score = self._raw(learned_matrix(features)) / by_profile(features, self.limits)
        return _attribute(features, score)

    def thresholds(self):
        return {f"{self.name}_score": self.limits}


class IsolationForestDetector(_LearnedDetector):
    """scikit-learn IsolationForest on the standardized features of all devices."""

    name = "isolation_forest"

    def __init__(self, n_estimators: int = 100, max_samples: int = 4096, **kwargs):
        super().__init__(**kwargs)
        self.n_estimators = n_estimators
        self.max_samples = max_samples

    def _make(self):
        return IsolationForest(
            n_estimators=self.n_estimators, max_samples=self.max_samples, random_state=self.seed
        )


class LofDetector(_LearnedDetector):
    """Novelty LocalOutlierFactor fitted on a subsample of training readings."""

    name = "lof"

    def __init__(self, n_neighbors: int = 20, max_train: int = 5000, **kwargs):
        super().__init__(max_train=max_train, **kwargs)
        self.n_neighbors = n_neighbors

    def _make(self):
        return LocalOutlierFactor(n_neighbors=self.n_neighbors, novelty=True)

    def _training_rows(self, matrix):
        # Slow 0.1-resolution sensors give many identical feature rows; their
        # zero distances make local densities infinite, so LOF is fitted on
        # the distinct rows.
        return np.unique(matrix, axis=0)


class Combined(Detector):
    """Several detectors at once: a reading is flagged when any of them flags it."""

    def __init__(self, parts: list[Detector]):
        self.parts = parts
        self.name = "+".join(part.name for part in parts)

    def fit(self, features, profiles):
        for part in self.parts:
            part.fit(features, profiles)
        return self

    def components(self, features):
        merged: Components = {}
        for part in self.parts:
            for tag, values in part.components(features).items():
                merged[tag] = np.fmax(merged[tag], values) if tag in merged else values
        return merged

    def thresholds(self):
        return {part.name: part.thresholds() for part in self.parts}

    def history_seconds(self, config):
        return max(part.history_seconds(config) for part in self.parts)


DETECTORS = {
    "robust_z": RobustZ,
    "robust_jump": RobustJump,
    "ewma": EwmaResidual,
    "trend": Trend,
    "drift": Drift,
    "mq2": Mq2Identity,
    "stuck": StuckRun,
    "level": LevelEnvelope,
    "isolation_forest": IsolationForestDetector,
    "lof": LofDetector,
}


def build_detector(spec: str, settings: dict[str, dict] | None = None, seed: int = 0) -> Detector:
    """Build a detector from a name such as "robust_z" or "mq2+stuck+robust_z".

    Args:
        spec: detector names from DETECTORS joined by "+".
        settings: detector name -> keyword arguments of its constructor.
        seed: random state of the learned detectors.

    Raises:
        ValueError: an unknown detector name.
    """
    settings = settings or {}
    parts = []
    for name in spec.split("+"):
        name = name.strip()
        if name not in DETECTORS:
            raise ValueError(
                f"unknown detector {name!r} in {spec!r}; known: {', '.join(DETECTORS)}"
            )
        kwargs = dict(settings.get(name, {}))
        if name in ("isolation_forest", "lof"):
            kwargs.setdefault("seed", seed)
        parts.append(DETECTORS[name](**kwargs))
    return parts[0] if len(parts) == 1 else Combined(parts)
