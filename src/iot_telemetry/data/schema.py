"""Pandera schemas of the readings and quarantine tables.

`validate.normalize` builds frames that satisfy READINGS_SCHEMA by
construction; the schema checks that contract wherever a table is loaded or
written, and states it in one place.
"""

from __future__ import annotations

import pandera.pandas as pa

from iot_telemetry.data.columns import (
    BOOL_SENSORS,
    HUMIDITY_RANGE,
    KEY,
    TEMP_RANGE_C,
    TS_RANGE,
)


def _finite(series):
    return series.abs() < float("inf")


def _sorted_by_key(frame) -> bool:
    """Check that rows are sorted by device, then ts within each device."""
    device = frame["device"].astype(str).to_numpy()
    ts = frame["ts"].to_numpy()
    same_device = device[1:] == device[:-1]
    ordered = (device[1:] > device[:-1]) | (same_device & (ts[1:] > ts[:-1]))
    return bool(ordered.all())


READINGS_SCHEMA = pa.DataFrameSchema(
    {
        "device": pa.Column("string", pa.Check.str_length(min_value=1)),
        "ts": pa.Column("float64", pa.Check.in_range(*TS_RANGE)),
        "time": pa.Column("datetime64[us, UTC]"),
        "co": pa.Column("float64", [pa.Check.gt(0), pa.Check(_finite)]),
        "humidity": pa.Column("float64", pa.Check.in_range(*HUMIDITY_RANGE)),
        "lpg": pa.Column("float64", [pa.Check.gt(0), pa.Check(_finite)]),
        "smoke": pa.Column("float64", [pa.Check.gt(0), pa.Check(_finite)]),
        "temp": pa.Column("float64", pa.Check.in_range(*TEMP_RANGE_C)),
        **{name: pa.Column("boolean", nullable=True) for name in BOOL_SENSORS},
        "alias": pa.Column("string", nullable=True),
    },
    checks=[pa.Check(_sorted_by_key, error="rows not sorted by device then ts")],
    unique=list(KEY),
    strict=True,
    ordered=True,
    name="readings",
)

QUARANTINE_SCHEMA = pa.DataFrameSchema(
    {
        "source": pa.Column("string"),
        "line": pa.Column("int64"),
        "device": pa.Column("string", nullable=True),
        "ts": pa.Column("float64", nullable=True),
        "reason": pa.Column("string", pa.Check.str_length(min_value=1)),
        "detail": pa.Column("string", nullable=True),
        "raw": pa.Column("string"),
    },
    strict=True,
    name="quarantine",
)
