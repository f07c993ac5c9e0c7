"""Synthetic twin: calibration to the full Kaggle file, raw format, ground truth."""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.data.columns import FLOAT_SENSORS, KAGGLE_COLUMNS
from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE
from iot_telemetry.data.kaggle_csv import (
    format_kaggle_lines,
    java_double_string,
    java_double_strings,
)
from iot_telemetry.data.readers import read_inputs
from iot_telemetry.data.synthetic import (
    TRUTH_COLUMNS,
    generate_twin,
    ks_distances,
    write_twin,
)
from iot_telemetry.errors import InputError

START_S = 1594512000.0  # 2020-07-12T00:00:00Z
DAY_S = 86400.0

# Facts of the full Kaggle file (405,184 rows over 8 days):
# rows, temp mean and std, humidity mean and std, mean interval, mean CO.
TARGETS = {
    "00:0f:00:70:91:0a": (111_815, 19.36, 0.64, 75.44, 1.98, 6.18, 0.00353),
    "1c:bf:ce:15:ec:4d": (105_918, 26.03, 2.03, 61.91, 8.94, 6.53, 0.00418),
    "b8:27:eb:bf:9d:51": (187_451, 22.28, 0.48, 50.81, 1.89, 3.69, 0.00556),
}
FLOAT32_DEVICES = ("00:0f:00:70:91:0a", "1c:bf:ce:15:ec:4d")
OTHER_LIGHT_DEVICES = ("00:0f:00:70:91:0a", "b8:27:eb:bf:9d:51")
GLITCH_LIMITS = {"temp": (0.0, 7.0), "humidity": (8.0, 25.0)}
JAVA_TS = re.compile(r"^[1-9]\.\d+E9$")
QUOTED_LINE = re.compile(r'^"[^"]*"(,"[^"]*"){8}$')


def within(value: float, target: float, tolerance: float = 0.05) -> bool:
    return abs(value - target) <= tolerance * abs(target)


def device_rows(rows: pd.DataFrame, device: str) -> pd.DataFrame:
    return rows.loc[rows["device"] == device]


def run_lengths(flags: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a boolean array."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def without_glitches(rows: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    glitched = truth.loc[truth["kind"] == "glitch", ["device", "ts"]]
    keys = pd.MultiIndex.from_frame(rows[["device", "ts"]])
    drop = keys.isin(pd.MultiIndex.from_frame(glitched))
    return rows.loc[~drop]


@pytest.fixture(scope="module")
def twin():
    """The default 8-day twin (seed 0), generated once: about 1 s."""
    return generate_twin(days=8.0, seed=0)


@pytest.fixture(scope="module")
def real_readings(mqtt_capture):
    """The real 24-hour capture as a readings table with Kaggle device ids."""
    return read_inputs([mqtt_capture], aliases=dict(CAPTURE_TO_KAGGLE)).readings


# Calibration against the full file


def test_twin_columns_and_dtypes(twin):
    rows, truth = twin
    assert list(rows.columns) == list(KAGGLE_COLUMNS)
    assert rows["ts"].dtype == np.float64
    for name in FLOAT_SENSORS:
        assert rows[name].dtype == np.float64, name
    assert rows["light"].dtype == np.bool_
    assert rows["motion"].dtype == np.bool_
    assert list(truth.columns) == list(TRUTH_COLUMNS)
    assert truth["ts"].dtype == np.float64


def test_twin_total_rows_near_full_file(twin):
    rows, _ = twin
    assert within(len(rows), 405_184, 0.01)


@pytest.mark.parametrize("device", TARGETS)
def test_rows_per_device_within_5_percent(twin, device):
    rows, _ = twin
    assert within(len(device_rows(rows, device)), TARGETS[device][0])


@pytest.mark.parametrize("device", TARGETS)
@pytest.mark.parametrize("sensor", ["temp", "humidity"])
def test_mean_and_std_within_5_percent(twin, device, sensor):
    rows, _ = twin
    values = device_rows(rows, device)[sensor]
    _, temp_mean, temp_std, hum_mean, hum_std, _, _ = TARGETS[device]
    mean, std = (temp_mean, temp_std) if sensor == "temp" else (hum_mean, hum_std)
    assert within(values.mean(), mean), values.mean()
    assert within(values.std(), std), values.std()


@pytest.mark.parametrize("device", TARGETS)
def test_co_mean_within_5_percent(twin, device):
    rows, _ = twin
    co = device_rows(rows, device)["co"]
    assert within(co.mean(), TARGETS[device][6]), co.mean()


def test_lpg_and_smoke_follow_co_by_mq2_identity(twin):
    rows, _ = twin
    ln_r = (np.log10(rows["co"].to_numpy()) - 2.3) * -0.34 + 0.72
    lpg = 10.0 ** ((ln_r - 0.21) / -0.47 + 2.3)
    smoke = 10.0 ** ((ln_r - 0.53) / -0.44 + 2.3)
    assert np.max(np.abs(rows["lpg"].to_numpy() / lpg - 1.0)) <= 1e-12
    assert np.max(np.abs(rows["smoke"].to_numpy() / smoke - 1.0)) <= 1e-12


@pytest.mark.parametrize("sensor", ["temp", "humidity"])
def test_plain_tenths_on_b8_27(twin, sensor):
    values = device_rows(twin[0], "b8:27:eb:bf:9d:51")[sensor].to_numpy()
    assert np.array_equal(values, np.round(values, 1))


@pytest.mark.parametrize("device", FLOAT32_DEVICES)
@pytest.mark.parametrize("sensor", ["temp", "humidity"])
def test_float32_widened_tenths(twin, device, sensor):
    values = device_rows(twin[0], device)[sensor].to_numpy()
    widened = np.round(values, 1).astype(np.float32).astype(np.float64)
    assert np.array_equal(values, widened)
    # Most tenths are not exact in float32, so widening shows in the digits.
    assert np.mean(values != np.round(values, 1)) > 0.5


def test_float32_widening_matches_python_rounding(twin):
    values = device_rows(twin[0], "00:0f:00:70:91:0a")["temp"].head(500).tolist()
    assert all(v == float(np.float32(round(v, 1))) for v in values)


def test_b8_27_clock_regular(twin):
    ts = device_rows(twin[0], "b8:27:eb:bf:9d:51")["ts"].to_numpy()
    intervals = np.diff(ts)
    intervals = intervals[intervals > 0]  # a duplicate repeats its ts
    assert within(intervals.mean(), 3.69, 0.01)
    assert np.percentile(np.abs(intervals - np.median(intervals)), 99) < 0.3
    assert intervals.min() > 3.4
    assert intervals.max() < 4.2


@pytest.mark.parametrize("device", FLOAT32_DEVICES)
def test_irregular_clock_3_8_to_37_s(twin, device):
    ts = device_rows(twin[0], device)["ts"].to_numpy()
    intervals = np.diff(ts)
    intervals = intervals[intervals > 0]
    assert within(intervals.mean(), TARGETS[device][5])
    assert intervals.min() >= 3.8
    assert intervals.max() <= 40.0
    assert intervals.std() > 2.0
    assert np.mean(intervals < 4.5) > 0.15  # many at the floor, not a shifted mean


def test_rows_sorted_and_devices_interleaved(twin):
    rows, _ = twin
    ts = rows["ts"].to_numpy()
    assert np.all(np.diff(ts) >= 0)
    assert ts[0] >= START_S
    assert ts[-1] < START_S + 8 * DAY_S
    device = rows["device"].to_numpy()
    assert np.mean(device[1:] != device[:-1]) > 0.5
    shares = rows["device"].value_counts(normalize=True)
    assert within(shares["b8:27:eb:bf:9d:51"], 187_451 / 405_184)


def test_values_inside_validator_ranges(twin):
    rows, _ = twin
    assert rows["humidity"].between(0.0, 100.0).all()
    assert rows["temp"].between(-40.0, 80.0).all()
    for name in ("co", "lpg", "smoke"):
        assert (rows[name] > 0).all(), name
    assert not rows.isna().any().any()


# Light and motion


def test_light_always_on_1c_bf(twin):
    assert device_rows(twin[0], "1c:bf:ce:15:ec:4d")["light"].all()


@pytest.mark.parametrize("device", OTHER_LIGHT_DEVICES)
def test_light_rate_in_runs(twin, device):
    light = device_rows(twin[0], device)["light"].to_numpy()
    assert 0.003 <= light.mean() <= 0.03, light.mean()
    # iid flags at these rates would give runs of about 1 reading.
    assert run_lengths(light).mean() >= 5.0


def test_motion_rate_and_short_bursts(twin):
    rows, _ = twin
    assert 0.0008 <= rows["motion"].mean() <= 0.0016, rows["motion"].mean()
    for device in TARGETS:
        runs = run_lengths(device_rows(rows, device)["motion"].to_numpy())
        if len(runs):
            assert runs.max() <= 10, device
            assert runs.mean() <= 3.0, device


# Autocorrelated variation


@pytest.mark.parametrize("device", TARGETS)
def test_hourly_temp_residuals_autocorrelated(twin, device):
    rows, truth = twin
    clean = device_rows(without_glitches(rows, truth), device)
    series = pd.Series(
        clean["temp"].to_numpy(), index=pd.to_datetime(clean["ts"], unit="s")
    )
    hourly = series.resample("1h").mean()
    residual = hourly - hourly.groupby(hourly.index.hour).transform("mean")
    # iid noise around a fixed daily cycle would give about 0.
    assert residual.autocorr(1) > 0.5


# Glitches and duplicates


def test_glitches_only_on_float32_devices(twin):
    _, truth = twin
    glitches = truth.loc[truth["kind"] == "glitch"]
    assert set(glitches["device"]) == set(FLOAT32_DEVICES)
    assert set(glitches["sensor"]) == {"temp", "humidity"}


def test_glitch_rate_a_few_dozen_per_day(twin):
    _, truth = twin
    per_day = (truth["kind"] == "glitch").sum() / 8.0
    assert 20 <= per_day <= 60, per_day


def test_glitches_present_in_rows(twin):
    rows, truth = twin
    glitches = truth.loc[truth["kind"] == "glitch"]
    merged = glitches.merge(
        rows.drop_duplicates(), on=["device", "ts"], how="left", validate="one_to_one"
    )
    for sensor, (low, high) in GLITCH_LIMITS.items():
        part = merged.loc[merged["sensor"] == sensor]
        assert len(part) > 0, sensor
        assert (part[sensor] == part["value"]).all(), sensor
        assert part["value"].between(low, high).all(), sensor
        assert ((part["clean_value"] - part["value"]) > 10.0).all(), sensor


def test_glitches_isolated_between_normal_neighbours(twin):
    rows, truth = twin
    glitches = truth.loc[truth["kind"] == "glitch"]
    for device, part in glitches.groupby("device"):
        readings = device_rows(rows, device).reset_index(drop=True)
        position = np.searchsorted(readings["ts"].to_numpy(), part["ts"].to_numpy())
        for sensor in ("temp", "humidity"):
            mask = (part["sensor"] == sensor).to_numpy()
            clean = part["clean_value"].to_numpy()[mask]
            before = readings[sensor].to_numpy()[position[mask] - 1]
            after = readings[sensor].to_numpy()[position[mask] + 1]
            assert np.all(np.abs(before - clean) < 2.0), (device, sensor)
            assert np.all(np.abs(after - clean) < 2.0), (device, sensor)


def test_every_far_off_reading_is_a_listed_glitch(twin):
    rows, truth = twin
    far_off = rows.loc[
        (rows["temp"] <= 7.0) | (rows["humidity"] <= 25.0), ["device", "ts"]
    ]
    listed = truth.loc[truth["kind"] == "glitch", ["device", "ts"]]
    assert sorted(map(tuple, far_off.to_numpy())) == sorted(
        map(tuple, listed.to_numpy())
    )


def test_13_duplicates_directly_after_original(twin):
    rows, truth = twin
    duplicates = truth.loc[truth["kind"] == "duplicate"]
    assert len(duplicates) == 13
    assert (duplicates["sensor"] == "").all()
    assert duplicates["value"].isna().all()
    repeated = rows.duplicated(keep="first").to_numpy()
    assert repeated.sum() == 13
    positions = np.flatnonzero(repeated)
    for position in positions:
        assert rows.iloc[position].equals(rows.iloc[position - 1])
    found = rows.iloc[positions][["device", "ts"]].reset_index(drop=True)
    expected = duplicates[["device", "ts"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(found, expected, check_dtype=False)
    assert rows.duplicated(subset=["device", "ts"]).sum() == 13


def test_duplicates_scale_with_days():
    _, truth = generate_twin(days=16.0, seed=0)
    assert (truth["kind"] == "duplicate").sum() == 26


# Window, determinism and arguments


def test_short_twin_is_prefix_of_8_day_twin(twin):
    rows8, truth8 = twin
    rows1, truth1 = generate_twin(days=1.0, seed=0)
    end = START_S + DAY_S
    pd.testing.assert_frame_equal(
        rows1, rows8.loc[rows8["ts"] < end].reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(
        truth1, truth8.loc[truth8["ts"] < end].reset_index(drop=True)
    )


def test_start_shifts_window():
    rows, _ = generate_twin(days=0.1, seed=0, start="2021-01-01T00:00:00Z")
    start = 1609459200.0
    assert rows["ts"].min() >= start
    assert rows["ts"].max() < start + 0.1 * DAY_S


def test_seed_changes_twin():
    first, _ = generate_twin(days=0.05, seed=0)
    second, _ = generate_twin(days=0.05, seed=1)
    assert not np.array_equal(
        first["ts"].to_numpy()[:100], second["ts"].to_numpy()[:100]
    )


def test_same_seed_byte_identical_files(tmp_path):
    first = write_twin(tmp_path / "a" / "twin.csv", days=0.25, seed=3)
    second = write_twin(tmp_path / "b" / "twin.csv", days=0.25, seed=3)
    assert (tmp_path / "a" / "twin.csv").read_bytes() == (
        tmp_path / "b" / "twin.csv"
    ).read_bytes()
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("days", [0, -1.0, math.nan, math.inf, "8", True])
def test_invalid_days_rejected(days):
    with pytest.raises(InputError, match="days"):
        generate_twin(days=days)


@pytest.mark.parametrize("seed", [-1, 1.5])
def test_invalid_seed_rejected(seed):
    with pytest.raises(InputError, match="seed"):
        generate_twin(days=0.01, seed=seed)


@pytest.mark.parametrize("start", ["not a time", "NaT", ""])
def test_invalid_start_rejected(start):
    with pytest.raises(InputError, match="start"):
        generate_twin(days=0.01, start=start)


# Raw Kaggle format


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A quarter-day twin written to disk, with its in-memory twin."""
    out = tmp_path_factory.mktemp("twin") / "nested" / "folder" / "twin.csv"
    truth_path = write_twin(out, days=0.25, seed=0)
    return out, truth_path, generate_twin(days=0.25, seed=0)


def test_write_returns_truth_path(written):
    out, truth_path, _ = written
    assert truth_path == out.with_suffix(".truth.csv")
    assert out.is_file()
    assert truth_path.is_file()
    assert not list(out.parent.glob("*.partial"))


def test_raw_lines_fully_quoted_with_lf(written):
    out, _, (rows, _) = written
    data = out.read_bytes()
    assert b"\r" not in data
    assert data.endswith(b"\n")
    lines = data.decode().split("\n")[:-1]
    assert (
        lines[0]
        == '"ts","device","co","humidity","light","lpg","motion","smoke","temp"'
    )
    assert len(lines) == len(rows) + 1
    bad = [line for line in lines if not QUOTED_LINE.match(line)]
    assert bad == []


def test_raw_fields_round_trip_exactly(written):
    out, _, (rows, _) = written
    with out.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == len(rows)
    assert all(JAVA_TS.match(record["ts"]) for record in records)
    ts = np.array([float(record["ts"]) for record in records])
    assert np.array_equal(ts, rows["ts"].to_numpy())
    for name in FLOAT_SENSORS:
        parsed = np.array([float(record[name]) for record in records])
        assert np.array_equal(parsed, rows[name].to_numpy()), name
    for name in ("light", "motion"):
        tokens = {record[name] for record in records}
        assert tokens <= {"true", "false"}, name
        parsed = np.array([record[name] == "true" for record in records])
        assert np.array_equal(parsed, rows[name].to_numpy()), name
    assert [record["device"] for record in records] == rows["device"].tolist()


def test_raw_numbers_look_like_kaggle(written):
    out, _, _ = written
    with out.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    b8 = [r for r in records if r["device"] == "b8:27:eb:bf:9d:51"]
    widened = [r for r in records if r["device"] == "00:0f:00:70:91:0a"]
    assert all(re.fullmatch(r"\d+\.\d", r["humidity"]) for r in b8)
    assert all(re.fullmatch(r"\d+\.\d", r["temp"]) for r in b8)
    # float32-widened tenths print with up to 17 digits, e.g. 19.700000762939453.
    assert any(len(r["temp"]) > 10 for r in widened)


def test_truth_file_matches_memory(written):
    _, truth_path, (_, truth) = written
    text = truth_path.read_text()
    assert text.splitlines()[0] == ",".join(TRUTH_COLUMNS)
    # pandas 3 deprecates float_precision; its default parser round-trips these.
    loaded = pd.read_csv(
        truth_path,
        keep_default_na=False,
        na_values={"value": [""], "clean_value": [""]},
    )
    assert len(loaded) == len(truth) > 0
    assert loaded["kind"].tolist() == truth["kind"].tolist()
    assert loaded["device"].tolist() == truth["device"].tolist()
    assert loaded["sensor"].tolist() == truth["sensor"].tolist()
    assert np.array_equal(loaded["ts"].to_numpy(), truth["ts"].to_numpy())
    for name in ("value", "clean_value"):
        assert np.array_equal(
            loaded[name].to_numpy(), truth[name].to_numpy(), equal_nan=True
        )


def test_ingest_reads_twin_without_quarantine(written):
    out, _, (rows, truth) = written
    result = read_inputs([out])
    duplicates = int((truth["kind"] == "duplicate").sum())
    assert result.summary["quarantined"] == 0
    assert result.summary["duplicates"] == duplicates
    assert result.summary["kept"] == len(rows) - duplicates


@pytest.mark.slow
def test_full_size_twin_file(tmp_path):
    out = tmp_path / "twin.csv"
    truth_path = write_twin(out)
    assert 55e6 < out.stat().st_size < 70e6
    truth = pd.read_csv(truth_path, keep_default_na=False)
    result = read_inputs([out])
    assert result.summary["quarantined"] == 0
    assert result.summary["duplicates"] == (truth["kind"] == "duplicate").sum() == 13
    assert within(result.summary["kept"], 405_184, 0.01)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1594512094.3859746, "1.5945120943859746E9"),
        (1594512094.0, "1.594512094E9"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (9999999.0, "9999999.0"),
        (0.001, "0.001"),
        (0.00095, "9.5E-4"),
        (1e-5, "1.0E-5"),
        (-1.5e10, "-1.5E10"),
        (51.0, "51.0"),
        (19.700000762939453, "19.700000762939453"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1e22, "1.0E22"),
        (math.inf, "Infinity"),
        (math.nan, "NaN"),
    ],
)
def test_java_double_string(value, text):
    assert java_double_string(value) == text


def test_java_double_strings_round_trip():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [rng.uniform(1.5e9, 1.7e9, 200), 10.0 ** rng.uniform(-6, 12, 200)]
    )
    texts = java_double_strings(values)
    assert [float(text) for text in texts] == values.tolist()
    assert texts == [java_double_string(value) for value in values]


def test_format_reproduces_kaggle_head_bytes(kaggle_head):
    with kaggle_head.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    frame = pd.DataFrame(
        {
            name: (
                [record[name] == "true" for record in records]
                if name in ("light", "motion")
                else (
                    [record[name] for record in records]
                    if name == "device"
                    else [float(record[name]) for record in records]
                )
            )
            for name in KAGGLE_COLUMNS
        }
    )
    body = kaggle_head.read_text().split("\n", 1)[1]
    assert format_kaggle_lines(frame) == body


# Against the real capture


def test_ks_distances_against_real_day(twin, real_readings):
    rows, _ = twin
    day = rows.loc[(rows["ts"] >= START_S + DAY_S) & (rows["ts"] < START_S + 2 * DAY_S)]
    table = ks_distances(day, real_readings)
    assert list(table.columns) == [
        "device",
        "sensor",
        "ks_statistic",
        "p_value",
        "n_twin",
        "n_real",
    ]
    assert len(table) == 15
    assert set(table["device"]) == set(TARGETS)
    assert table["ks_statistic"].between(0.0, 1.0).all()
    counts = real_readings["device"].value_counts()
    for device, n_real in table.groupby("device")["n_real"].first().items():
        assert n_real == counts[device]


def test_ks_distances_zero_for_identical_tables(twin):
    rows, _ = twin
    sample = rows.iloc[:20_000]
    table = ks_distances(sample, sample)
    assert (table["ks_statistic"] == 0.0).all()


def test_ks_distances_detects_shift(twin):
    rows, _ = twin
    sample = rows.iloc[:20_000]
    shifted = sample.assign(temp=sample["temp"] + 1.0)
    table = ks_distances(sample, shifted).set_index(["device", "sensor"])
    assert (table.xs("temp", level="sensor")["ks_statistic"] > 0.3).all()
    assert (table.xs("co", level="sensor")["ks_statistic"] == 0.0).all()


def test_ks_distances_skip_and_reject_devices(twin):
    rows, _ = twin
    sample = rows.iloc[:5_000]
    one = sample.loc[sample["device"] == "b8:27:eb:bf:9d:51"]
    assert set(ks_distances(sample, one)["device"]) == {"b8:27:eb:bf:9d:51"}
    other = one.assign(device="aa:bb:cc:dd:ee:ff")
    with pytest.raises(InputError, match="no device in common"):
        ks_distances(one, other)
    with pytest.raises(InputError, match="missing column"):
        ks_distances(one.drop(columns="co"), one)


def count_far_off(readings: pd.DataFrame) -> dict[tuple[str, str], int]:
    counts = {}
    for device in FLOAT32_DEVICES:
        part = device_rows(readings, device)
        counts[(device, "temp")] = int((part["temp"] <= 7.0).sum())
        counts[(device, "humidity")] = int((part["humidity"] <= 25.0).sum())
    return counts


def test_glitch_rates_match_real_capture(twin, real_readings):
    _, truth = twin
    span_days = (real_readings["ts"].max() - real_readings["ts"].min()) / DAY_S
    real = count_far_off(real_readings)
    glitches = truth.loc[truth["kind"] == "glitch"]
    for (device, sensor), real_count in real.items():
        twin_rate = (
            (glitches["device"] == device) & (glitches["sensor"] == sensor)
        ).sum() / 8
        real_rate = real_count / span_days
        assert real_rate / 2 <= twin_rate <= real_rate * 2, (
            device,
            sensor,
            twin_rate,
            real_rate,
        )


@pytest.mark.parametrize("device", TARGETS)
@pytest.mark.parametrize("sensor", ["temp", "humidity"])
def test_reading_changes_match_real_capture(twin, real_readings, device, sensor):
    """The share of consecutive clean readings that differ, which the noise sets."""
    rows, truth = twin

    def change_share(frame: pd.DataFrame) -> float:
        low = 7.0 if sensor == "temp" else 25.0
        values = device_rows(frame, device)[sensor].to_numpy()
        values = values[values > low]
        return float(np.mean(np.diff(values) != 0))

    twin_share = change_share(without_glitches(rows, truth))
    real_share = change_share(real_readings)
    assert abs(twin_share - real_share) < 0.07, (twin_share, real_share)


def long_runs(frame: pd.DataFrame, sensor: str, minimum_s: float) -> np.ndarray:
    """Durations (s) of the runs of one value that last longer than minimum_s."""
    ts = frame["ts"].to_numpy()
    values = frame[sensor].to_numpy()
    starts = np.flatnonzero(np.r_[True, np.diff(values) != 0])
    ends = np.r_[starts[1:] - 1, len(values) - 1]
    durations = ts[ends] - ts[starts]
    return durations[durations > minimum_s]


@pytest.mark.parametrize("sensor, minimum_s", [("temp", 400.0), ("humidity", 200.0)])
def test_b8_27_long_runs_match_real_capture(twin, real_readings, sensor, minimum_s):
    """Runs of one value on b8:27, from which a model learns its stuck-at limits."""
    rows, truth = twin
    device = "b8:27:eb:bf:9d:51"
    real = device_rows(real_readings, device)
    span_days = (real["ts"].max() - real["ts"].min()) / DAY_S
    twin_runs = long_runs(device_rows(without_glitches(rows, truth), device), sensor, minimum_s)
    real_runs = long_runs(real, sensor, minimum_s)
    twin_rate, real_rate = len(twin_runs) / 8, len(real_runs) / span_days
    assert real_rate / 2 <= twin_rate <= real_rate * 2, (twin_rate, real_rate)
    # Eight twin days hold a run at least as long as the real day's longest.
    assert twin_runs.max() >= real_runs.max()
