"""The MQ-2 identity: co, lpg and smoke are functions of one resistance ratio.

The devices convert one MQ-2 reading, the resistance ratio r = Rs/R0, into
three "ppm" values with power-law curves of the form

    log10(ppm) = (ln r - intercept) / slope + 2.3

so lpg and smoke follow from co exactly. Inverting co's curve gives ln r,
from which lpg and smoke are predicted and compared with the recorded values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LOG10_OFFSET = 2.3

# (intercept, slope) of each gas curve; the constants reproduce the recorded
# values to about 5e-15 relative error on the real 24-hour capture.
CURVES = {
    "co": (0.72, -0.34),
    "lpg": (0.21, -0.47),
    "smoke": (0.53, -0.44),
}


def ln_ratio_from_co(co: np.ndarray | pd.Series) -> np.ndarray:
    """Invert co's curve: return ln r for co values in "ppm" (must be > 0)."""
    intercept, slope = CURVES["co"]
    return intercept + slope * (np.log10(np.asarray(co, dtype="float64")) - LOG10_OFFSET)


def gas_from_ln_ratio(ln_ratio: np.ndarray, gas: str) -> np.ndarray:
    """Return the "ppm" value the curve of `gas` ("co", "lpg", "smoke") gives for ln r."""
    intercept, slope = CURVES[gas]
    return 10.0 ** ((np.asarray(ln_ratio) - intercept) / slope + LOG10_OFFSET)


def relative_deviations(readings: pd.DataFrame) -> pd.DataFrame:
    """Predict lpg and smoke from co and return |predicted / recorded - 1| per reading.

    Returns:
        Columns `device`, `ln_ratio`, `lpg_rel_dev`, `smoke_rel_dev`, on the
        readings' index.
    """
    ln_ratio = ln_ratio_from_co(readings["co"])
    out = pd.DataFrame({"device": readings["device"], "ln_ratio": ln_ratio},
                       index=readings.index)
    for gas in ("lpg", "smoke"):
        predicted = gas_from_ln_ratio(ln_ratio, gas)
        out[f"{gas}_rel_dev"] = np.abs(predicted / readings[gas].to_numpy() - 1.0)
    return out


def identity_check(readings: pd.DataFrame) -> pd.DataFrame:
    """Return the maximum relative deviation of lpg and smoke from the identity, per device.

    Returns:
        Index `device`, columns `readings`, `lpg_max_rel_dev`,
        `smoke_max_rel_dev`, `max_rel_dev` (the larger of the two), and the
        range of the resistance ratio `ln_ratio_min`, `ln_ratio_max`.
    """
    deviations = relative_deviations(readings)
    grouped = deviations.groupby("device", sort=True)
    table = pd.DataFrame({
        "readings": grouped.size(),
        "lpg_max_rel_dev": grouped["lpg_rel_dev"].max(),
        "smoke_max_rel_dev": grouped["smoke_rel_dev"].max(),
        "ln_ratio_min": grouped["ln_ratio"].min(),
        "ln_ratio_max": grouped["ln_ratio"].max(),
    })
    table.insert(3, "max_rel_dev", table[["lpg_max_rel_dev", "smoke_max_rel_dev"]].max(axis=1))
    return table
