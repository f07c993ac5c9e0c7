"""The synthetic twin against the real 24-hour capture: two-sample KS distances."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from iot_telemetry.data.devices import CAPTURE_TO_KAGGLE
from iot_telemetry.data.readers import read_inputs
from iot_telemetry.data.synthetic import ks_distances
from iot_telemetry.paths import resolve

log = logging.getLogger(__name__)


def load_reference(path: str | Path) -> pd.DataFrame:
    """Read the real capture (any input read_inputs accepts) with Kaggle device ids.

    The capture's anonymised ids are mapped through CAPTURE_TO_KAGGLE so its
    devices line up with the twin's.

    Raises:
        InputError: the path is missing or unreadable.
    """
    result = read_inputs([path], aliases=CAPTURE_TO_KAGGLE)
    log.info("read %d reference readings from %s", len(result.readings), path)
    return result.readings


def ks_table(twin: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Return the two-sample KS distance per device and float sensor, twin vs reference.

    Returns:
        Columns device, sensor, ks_statistic, p_value, n_twin, n_real, for the
        devices both tables contain.
    """
    return ks_distances(twin, reference)


def compare_with_reference(
    readings: pd.DataFrame, is_twin: bool, reference_path: str
) -> tuple[pd.DataFrame | None, str]:
    """Compute the KS table when the readings are the twin and the reference exists.

    Args:
        readings: the analysed readings.
        is_twin: whether `readings` come from the synthetic twin.
        reference_path: the real capture, relative to the project root; "" for none.

    Returns:
        (ks table, "") or (None, the reason the comparison was skipped).
    """
    if not is_twin:
        return None, "the readings are not the synthetic twin, so there is no twin to compare"
    if not reference_path:
        return None, "no reference path is set (parameter reference_path)"
    path = resolve(reference_path)
    if not path.exists():
        return None, f"the reference file {reference_path} is not present on this machine"
    return ks_table(readings, load_reference(path)), ""
