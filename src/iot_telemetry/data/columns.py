"""Column names, dtypes and sensor limits of the readings table.

This module imports only the standard library so that the serving archive,
which runs on the SageMaker scikit-learn image without pandera, can use it.
"""

from __future__ import annotations

# The Kaggle file's column order; headerless CSV bodies use it too.
KAGGLE_COLUMNS = (
    "ts", "device", "co", "humidity", "light", "lpg", "motion", "smoke", "temp"
)

FLOAT_SENSORS = ("co", "humidity", "lpg", "smoke", "temp")
BOOL_SENSORS = ("light", "motion")
SENSORS = FLOAT_SENSORS + BOOL_SENSORS

# Column order of readings.parquet. `alias` is the capture's optional device
# nickname (for example "iot-device-01"); it is null for Kaggle rows.
READING_COLUMNS = ("device", "ts", "time", *FLOAT_SENSORS, *BOOL_SENSORS, "alias")
KEY = ("device", "ts")

READING_DTYPES = {
    "device": "string",
    "ts": "float64",
    "time": "datetime64[us, UTC]",
    **{name: "float64" for name in FLOAT_SENSORS},
    **{name: "boolean" for name in BOOL_SENSORS},
    "alias": "string",
}

# One row per rejected row or message. `reason` is a fixed phrase for counting;
# `detail` names the offending value; `raw` is the original text, truncated.
QUARANTINE_COLUMNS = ("source", "line", "device", "ts", "reason", "detail", "raw")
RAW_MAX_CHARS = 2000

# Physical limits of the sensors on the devices (DHT11/DHT22 humidity 0-100 %,
# temperature -40-80 degC). MQ-2 outputs are positive by construction.
HUMIDITY_RANGE = (0.0, 100.0)
TEMP_RANGE_C = (-40.0, 80.0)

# Plausible epoch seconds: 2000-01-01 to 2100-01-01 UTC. Outside it a ts is
# almost always milliseconds or a parse error, not a real reading time.
TS_RANGE = (946_684_800.0, 4_102_444_800.0)
