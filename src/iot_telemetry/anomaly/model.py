"""The deployable anomaly model: scoring contract, artifact checks and loader.

Contract (shared with `iot-telemetry score`, the serving code and the
streaming scorer):

- This module, `anomaly.detectors` and `iot_telemetry.features` import only
  the standard library, numpy, pandas, scipy, scikit-learn, joblib,
  `iot_telemetry.features`, `iot_telemetry.data.columns` and
  `iot_telemetry.data.device_ids`. So they run in
  the SageMaker scikit-learn container (Python 3.12, scikit-learn 1.9.0,
  pandas 2.2.3, numpy 2.5.1, scipy 1.18.0; no pandera, matplotlib or
  statsmodels). They work on pandas 2.2 and 3.x.
- `load_selected(model_dir) -> SelectedModel` reads `model_card.json`,
  checks the sha256 of every artifact it lists BEFORE unpickling anything,
  and raises `ModelVerificationError` naming the file when the card is
  missing or a file is missing or altered.
- `SelectedModel.score(readings) -> DataFrame`. Input: columns device, ts
  (epoch seconds), co, humidity, lpg, smoke, temp (float), light, motion
  (boolean), and optionally `context` (boolean): rows marked True are
  history only; they feed the features of later readings of their device
  but get no output row. Any row order; features that need history use the
  earlier readings (by ts) of the same device in the same frame.
  Output: one row per scored reading, in input order, with columns
  device, ts, score (float; 1.0 is the alarm threshold, NaN when invalid),
  flag (bool), status ("ok", "invalid", "stuck", "unknown_device") and
  reasons (string; the channels or rules behind a flag, or why a reading is
  invalid, joined by ";", for example "humidity;mq2"; "" when none).
- Status rules: a missing or invalid device id (`data.device_ids`), a
  missing or non-finite sensor value, a value outside the
  sensor's range or a non-positive MQ-2 value makes the reading `invalid`
  (never flagged, left out of every device's history). A device whose five
  float sensors have all kept their values for longer than its limit is
  `stuck`: one flag at the first reading past the limit, then status
  `stuck` without flags. A device absent from training is scored with the
  fleet profile and gets status `unknown_device`.
- `models/selected/` holds model.joblib, thresholds.json, features.json,
  fault_sizes.json, model_card.json and model_card.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from iot_telemetry.data.columns import (
    BOOL_SENSORS,
    FLOAT_SENSORS,
    HUMIDITY_RANGE,
    TEMP_RANGE_C,
)
from iot_telemetry.data.device_ids import device_id_problem
from iot_telemetry.anomaly.detectors import Combined, Detector, by_profile, build_detector
from iot_telemetry.features.telemetry import (
    FLEET,
    DeviceProfile,
    FeatureConfig,
    compute_features,
    fit_profiles,
    isolated_outliers,
)

log = logging.getLogger(__name__)
# Reason of a reading whose device and ts repeat an earlier reading's.
DUPLICATE_REASON = "duplicate (device, ts)"

OUTPUT_COLUMNS = ("device", "ts", "score", "flag", "status", "reasons")
STATUSES = ("ok", "invalid", "stuck", "unknown_device")

MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
# Device id -> id the model was trained with, applied by the endpoint.
ALIASES_FILE = "device_aliases.json"

REASON_DEVICE_STUCK = "device_stuck"

_RANGES = {"humidity": HUMIDITY_RANGE, "temp": TEMP_RANGE_C}
_POSITIVE = ("co", "lpg", "smoke")


class ModelVerificationError(RuntimeError):
    """A model folder whose card is missing or whose files do not match it."""


@dataclass
class TrainingData:
    """Profiles and the clean training features that detectors learn from."""

    profiles: dict[str, DeviceProfile]
    clean: pd.DataFrame


def prepare_training(readings: pd.DataFrame, config: FeatureConfig) -> TrainingData:
    """Fit profiles and compute training features without glitches.

    Readings that `isolated_outliers` marks, and the reading after each,
    are dropped from the features, so learned thresholds do not absorb the
    glitches of real data.
    """
    profiles = fit_profiles(readings, config)
    features = compute_features(readings, profiles, config)
    outliers = isolated_outliers(readings)
    after_outlier = np.r_[False, outliers[:-1]] & _same_device(features)
    return TrainingData(profiles, features[~(outliers | after_outlier)])


@dataclass
class AnomalyModel:
    """A detector with the per-device profiles and feature settings it was fitted on.

    Attributes:
        spec: detector spec, for example "mq2+stuck+robust_z".
        settings: constructor arguments per detector name.
        feature_config: window settings of the features.
        device_stuck_margin: a device counts as stuck once all its float
            sensors kept their values longer than this times the longest
            such time in training (at least `device_stuck_min_seconds`), or
            than the earliest per-sensor stuck limit if that is sooner.
        device_stuck_min_seconds: floor of that limit.
        seed: random state of the learned detectors.
    """

    spec: str
    settings: dict = field(default_factory=dict)
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    device_stuck_margin: float = 1.5
    device_stuck_min_seconds: float = 120.0
    seed: int = 0
    profiles: dict[str, DeviceProfile] = field(default_factory=dict)
    detector: Detector | None = None
    device_stuck_seconds: dict[str, float] = field(default_factory=dict)

    def fit(
        self, readings: pd.DataFrame, training: TrainingData | None = None,
        fitted_parts: dict[str, Detector] | None = None,
    ) -> AnomalyModel:
        """Fit profiles, thresholds and detector on clean training readings.

        Args:
            readings: readings table (device, ts, the float sensors), sorted
                by device then ts, all values finite. Readings marked by
                `isolated_outliers` (and the reading after each) are left
                out of threshold learning.
            training: `prepare_training(readings, ...)` when the caller has
                it already (several candidates on one train part).
            fitted_parts: detector name -> detector already fitted on the
                same training data with the same settings; reused, and
                newly fitted parts are added to it.

        Returns:
            self.
        """
        training = training or prepare_training(readings, self.feature_config)
        self.profiles = training.profiles
        parts = []
        for name in self.spec.split("+"):
            name = name.strip()
            if fitted_parts is None or name not in fitted_parts:
                part = build_detector(name, self.settings, self.seed).fit(training.clean, self.profiles)
                if fitted_parts is not None:
                    fitted_parts[name] = part
            parts.append(part if fitted_parts is None else fitted_parts[name])
        self.detector = parts[0] if len(parts) == 1 else Combined(parts)
        self.device_stuck_seconds = {
            key: self._device_stuck_limit(profile) for key, profile in self.profiles.items()
        }
        log.debug("fitted %s on %d readings of %d devices", self.spec, len(readings), len(self.profiles) - 1)
        return self

    def _device_stuck_limit(self, profile: DeviceProfile) -> float:
        learned = max(self.device_stuck_min_seconds, self.device_stuck_margin * profile.max_constant_seconds)
        per_sensor = _find_thresholds(self.thresholds(), "run_seconds")
        if not per_sensor:
            return float(learned)
        # Never later than the first per-sensor stuck alarm, so a device whose
        # sensors all froze gives one device-level finding, not one per sensor.
        earliest = min(limits.get(profile.device, limits[FLEET]) for limits in per_sensor)
        return float(min(learned, earliest))

    @property
    def devices(self) -> list[str]:
        """Device ids seen in training."""
        return sorted(key for key in self.profiles if key != FLEET)

    @property
    def context_seconds(self) -> float:
        """History (s) per device that a caller should send for full features.

        The maximum of the devices' stuck limits and the history the
        detector's features need. Shorter windows still score, but can miss
        a stuck sensor or a drift.
        """
        limits = [max(self.device_stuck_seconds.values(), default=0.0)]
        stuck = _find_thresholds(self.thresholds(), "run_seconds")
        limits += [value for per_device in stuck for value in per_device.values()]
        if self.detector is not None:
            limits.append(self.detector.history_seconds(self.feature_config))
        return float(max(limits))

    def thresholds(self) -> dict:
        """Return the detector's learned thresholds by detector and device."""
        if self.detector is None:
            return {}
        values = self.detector.thresholds()
        return values if "+" in self.spec else {self.spec: values}

    def score(self, readings: pd.DataFrame) -> pd.DataFrame:
        """Score readings; see the module docstring for the contract.

        Raises:
            ValueError: a required column is missing.
        """
        frame = _prepare(readings)
        reasons = _invalid_reasons(frame).to_numpy(dtype=object, copy=True)
        count = len(frame)
        score = np.full(count, np.nan)
        flag = np.zeros(count, dtype=bool)
        status = np.full(count, "invalid", dtype=object)

        # Valid readings in device blocks, by ts; a repeated (device, ts)
        # keeps its first reading.
        rows = np.flatnonzero(reasons == "")
        codes = pd.factorize(frame["device"].to_numpy()[rows])[0]
        order = np.lexsort((frame["ts"].to_numpy()[rows], codes))
        rows, codes = rows[order], codes[order]
        ts = frame["ts"].to_numpy()[rows]
        repeated = np.zeros(len(rows), dtype=bool)
        repeated[1:] = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
        reasons[rows[repeated]] = DUPLICATE_REASON
        rows = rows[~repeated]

        if len(rows):
            scored = self.score_valid(frame.take(rows).reset_index(drop=True))
            score[rows] = scored["score"].to_numpy()
            flag[rows] = scored["flag"].to_numpy()
            status[rows] = scored["status"].to_numpy()
            reasons[rows] = scored["reasons"].to_numpy()

        keep = ~frame["context"].to_numpy()
        return pd.DataFrame({
            "device": pd.array(frame["device"].to_numpy()[keep], dtype="string"),
            "ts": frame["ts"].to_numpy()[keep],
            "score": score[keep],
            "flag": flag[keep],
            "status": pd.array(status[keep], dtype="string"),
            "reasons": pd.array(reasons[keep], dtype="string"),
        })

    def score_valid(
        self, readings: pd.DataFrame, features: pd.DataFrame | None = None,
        components: dict[str, np.ndarray] | None = None,
    ) -> pd.DataFrame:
        """Score valid readings sorted by device then ts.

        Args:
            readings: finite sensor values, (device, ts) unique.
            features: `compute_features` of `readings` with this model's
                profiles, when the caller has them already.
            components: `self.detector.components(features)`, likewise.

        Returns:
            score, flag, status and reasons, with the index of `readings`.
        """
        if features is None:
            features = compute_features(readings, self.profiles, self.feature_config)
        if components is None:
            components = self.detector.components(features)
        tags = list(components)
        matrix = np.nan_to_num(np.vstack([components[tag] for tag in tags]).T, nan=0.0) if tags else np.zeros((len(features), 0))
        score = matrix.max(axis=1) if tags else np.zeros(len(features))
        flag = score >= 1.0
        reasons = _join_reasons(matrix >= 1.0, tags)

        status = np.where(features["profile"].to_numpy() == FLEET, "unknown_device", "ok").astype(object)
        limit = by_profile(features, {FLEET: np.inf, **self.device_stuck_seconds})
        stuck = features["constant_seconds"].to_numpy() >= limit
        onset = stuck & ~(np.r_[False, stuck[:-1]] & _same_device(features))
        status[stuck] = "stuck"
        flag = np.where(stuck, onset, flag)
        reasons = np.where(stuck, REASON_DEVICE_STUCK, reasons)
        # Object columns stay object: inferring a string dtype per call is
        # slow on pandas 3, and `score` converts once at the end.
        return pd.DataFrame({
            "score": score,
            "flag": flag,
            "status": pd.Series(status, index=readings.index, dtype=object),
            "reasons": pd.Series(reasons, index=readings.index, dtype=object),
        }, index=readings.index)


def _same_device(features: pd.DataFrame) -> np.ndarray:
    devices = features["device"].to_numpy()
    return np.r_[False, devices[1:] == devices[:-1]] if len(devices) else np.zeros(0, bool)


def _find_thresholds(values: dict, suffix: str) -> list[dict]:
    found = []
    for key, value in values.items():
        if isinstance(value, dict):
            if key.endswith(suffix):
                found.append(value)
            else:
                found.extend(_find_thresholds(value, suffix))
    return found


def _join_reasons(hits: np.ndarray, tags: list[str]) -> np.ndarray:
    reasons = np.full(len(hits), "", dtype=object)
    for column, tag in enumerate(tags):
        mark = hits[:, column]
        reasons[mark] = np.where(reasons[mark] == "", tag, reasons[mark] + ";" + tag)
    return reasons


def _numbers(values: pd.Series) -> np.ndarray:
    """Return values as float64; text that is not a number becomes NaN."""
    if pd.api.types.is_float_dtype(values.dtype) and not isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
        return values.to_numpy(dtype=float, copy=False)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _prepare(readings: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with typed sensor columns, a RangeIndex and a boolean `context`."""
    missing = [name for name in ("device", "ts", *FLOAT_SENSORS, *BOOL_SENSORS) if name not in readings]
    if missing:
        raise ValueError(f"readings lack column(s) {', '.join(missing)}")
    device = readings["device"]
    columns = {
        "device": pd.Series(
            np.where(device.isna().to_numpy(), None, device.to_numpy(dtype=object)), dtype=object
        ),
        "ts": _numbers(readings["ts"]),
    }
    for name in FLOAT_SENSORS:
        columns[name] = _numbers(readings[name])
    for name in BOOL_SENSORS:
        columns[name] = _flags(readings[name])
    context = readings["context"] if "context" in readings else None
    columns["context"] = (
        np.zeros(len(readings), dtype=bool) if context is None
        else _flags(context).fillna(False).to_numpy(dtype=bool)
    )
    return pd.DataFrame(columns)


def _flags(values: pd.Series) -> pd.arrays.BooleanArray:
    """Return values as a new nullable boolean array."""
    if isinstance(values.dtype, pd.BooleanDtype):
        return values.array.copy()
    if values.dtype == bool:
        return pd.arrays.BooleanArray(values.to_numpy(copy=True), np.zeros(len(values), dtype=bool))
    return pd.array(values.to_numpy(dtype=object), dtype="boolean")


def _invalid_reasons(frame: pd.DataFrame) -> pd.Series:
    """Return why each reading cannot be scored ("" when it can)."""
    checks: list[tuple[np.ndarray, str]] = []
    # A request has few distinct device ids, so each is checked once. NA gets code -1.
    codes, devices = pd.factorize(frame["device"].to_numpy(dtype=object))
    bad_device = np.array([not isinstance(d, str) or not d.strip() for d in devices] + [True])
    checks.append((bad_device[codes], "device:missing"))
    # The same rules as the file readers, so a reading gets the same verdict on every path.
    invalid_device = np.array(
        [isinstance(d, str) and bool(device_id_problem(d)) for d in devices] + [False]
    )
    checks.append((invalid_device[codes], "device:invalid"))
    checks.append((~np.isfinite(frame["ts"].to_numpy()), "ts:invalid"))
    for name in FLOAT_SENSORS:
        values = frame[name].to_numpy()
        finite = np.isfinite(values)
        checks.append((np.isnan(values), f"{name}:missing"))
        checks.append((np.isinf(values), f"{name}:inf"))
        if name in _RANGES:
            low, high = _RANGES[name]
            with np.errstate(invalid="ignore"):
                checks.append((finite & ((values < low) | (values > high)), f"{name}:out_of_range"))
        if name in _POSITIVE:
            with np.errstate(invalid="ignore"):
                checks.append((finite & (values <= 0), f"{name}:not_positive"))
    for name in BOOL_SENSORS:
        checks.append((frame[name].isna().to_numpy(bool), f"{name}:missing"))

    reasons = np.full(len(frame), "", dtype=object)
    for mask, text in checks:
        if mask.any():
            marked = reasons[mask]
            reasons[mask] = np.where(marked == "", text, marked + (";" + text))
    return pd.Series(reasons, index=frame.index, dtype=object)


@dataclass
class SelectedModel:
    """The verified model of a `models/selected/` folder and its card."""

    model: AnomalyModel
    card: dict
    model_dir: Path
    device_aliases: dict[str, str] = field(default_factory=dict)

    def score(self, readings: pd.DataFrame) -> pd.DataFrame:
        """Score readings; see the module docstring for the contract."""
        return self.model.score(readings)

    @property
    def context_seconds(self) -> float:
        """Seconds of history per device a caller should send; see AnomalyModel."""
        return self.model.context_seconds


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_artifacts(model_dir: str | Path) -> dict:
    """Check every artifact in model_card.json against its sha256.

    Returns:
        The parsed card.

    Raises:
        ModelVerificationError: the card is missing or unreadable, lists no
            artifacts, or a listed file is missing or has another sha256.
    """
    model_dir = Path(model_dir)
    card_path = model_dir / CARD_FILE
    if not card_path.is_file():
        raise ModelVerificationError(
            f"{card_path} not found: refusing to load an unverified model; run "
            "`iot-telemetry select` to write the model and its card"
        )
    try:
        card = json.loads(card_path.read_text())
        artifacts = card["artifacts"]
    except (ValueError, KeyError, TypeError) as error:
        raise ModelVerificationError(f"{card_path} is not a valid model card: {error}") from error
    if not isinstance(artifacts, dict) or MODEL_FILE not in artifacts:
        raise ModelVerificationError(f"{card_path} lists no sha256 for {MODEL_FILE}")
    for name, expected in artifacts.items():
        path = model_dir / name
        if Path(name).name != name:
            raise ModelVerificationError(f"{card_path}: artifact {name!r} is not a plain file name")
        if not path.is_file():
            raise ModelVerificationError(f"{path} is listed in {CARD_FILE} but missing")
        actual = sha256_file(path)
        if actual != expected.get("sha256"):
            raise ModelVerificationError(
                f"{path} does not match {CARD_FILE}: sha256 {actual}, card "
                f"{expected.get('sha256')}; refusing to load an altered or unverified file"
            )
    return card


def load_selected(model_dir: str | Path) -> SelectedModel:
    """Verify a `models/selected/` folder, then load its model.

    Raises:
        ModelVerificationError: see `verify_artifacts`; also when the
            verified thresholds.json differs from the model's thresholds.
    """
    model_dir = Path(model_dir)
    card = verify_artifacts(model_dir)
    model = joblib.load(model_dir / MODEL_FILE)
    if not isinstance(model, AnomalyModel):
        raise ModelVerificationError(
            f"{model_dir / MODEL_FILE} contains a {type(model).__name__}, expected an AnomalyModel"
        )
    thresholds_path = model_dir / "thresholds.json"
    if thresholds_path.is_file():
        stored = json.loads(thresholds_path.read_text())
        if stored != json.loads(json.dumps(model.thresholds())):
            raise ModelVerificationError(f"{thresholds_path} differs from the thresholds inside {MODEL_FILE}")
    aliases = {}
    if ALIASES_FILE in card["artifacts"]:
        aliases = json.loads((model_dir / ALIASES_FILE).read_text())
    log.info("loaded %s from %s", card.get("candidate", model.spec), model_dir)
    return SelectedModel(model, card, model_dir, aliases)
