"""Twin-vs-real KS table and the cases where it is skipped."""

from __future__ import annotations

import numpy as np

from eda_helpers import BASE_TS, build_readings
from iot_telemetry.data.devices import KAGGLE_DEVICES
from iot_telemetry.eda.twin import compare_with_reference, ks_table


def test_skipped_when_readings_are_not_twin():
    readings = build_readings("a", [BASE_TS])
    ks, note = compare_with_reference(readings, is_twin=False, reference_path="x.zip")
    assert ks is None
    assert "not the synthetic twin" in note


def test_skipped_without_reference_path():
    ks, note = compare_with_reference(build_readings("a", [BASE_TS]), True, "")
    assert ks is None
    assert "reference_path" in note


def test_skipped_when_reference_file_absent(tmp_path):
    missing = tmp_path / "absent.json.zip"
    ks, note = compare_with_reference(build_readings("a", [BASE_TS]), True, str(missing))
    assert ks is None
    assert "not present" in note
    assert str(missing) in note


def test_reference_uses_kaggle_ids(mqtt_readings):
    assert sorted(mqtt_readings["device"].unique()) == list(KAGGLE_DEVICES)


def test_ks_of_real_day_against_itself_is_zero(mqtt_readings):
    table = ks_table(mqtt_readings, mqtt_readings)
    assert len(table) == 15
    assert (table["ks_statistic"] == 0).all()


def test_ks_twin_against_real_day(twin_sample, mqtt_capture):
    readings, _ = twin_sample
    ks, note = compare_with_reference(readings, True, str(mqtt_capture))
    assert note == ""
    assert sorted(ks["device"].unique()) == list(KAGGLE_DEVICES)
    assert ks["ks_statistic"].between(0, 1).all()
    # lpg and smoke are monotone functions of co, so their KS distances are co's.
    for device, group in ks.groupby("device"):
        by_sensor = dict(zip(group["sensor"], group["ks_statistic"]))
        assert np.isclose(by_sensor["lpg"], by_sensor["co"])
        assert np.isclose(by_sensor["smoke"], by_sensor["co"])
