"""Writing a notebook stage's figures and metrics, shared by the eda and characterize stages.

An empty path means "do not write", which is what the notebooks' default
parameters use so that running a source notebook writes nothing.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iot_telemetry.paths import resolve

log = logging.getLogger(__name__)

FIGURE_DPI = 110


def save_figure(fig, figures_dir: str, name: str) -> None:
    """Save a matplotlib figure as FIGURES_DIR/NAME.png; do nothing when `figures_dir` is "".

    Relative folders resolve from the project root.
    """
    if not figures_dir:
        return
    folder = resolve(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
    log.info("saved figure %s", path)


def to_jsonable(value: Any) -> Any:
    """Convert numpy and pandas scalars, NaN and timestamps to JSON-ready values.

    NaN and missing values become None; timestamps become ISO-8601 strings;
    mappings and sequences are converted item by item.
    """
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def table_to_dict(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Return {index value: {column: value}} for a table indexed by device (or similar)."""
    return to_jsonable({str(key): row.to_dict() for key, row in table.iterrows()})


def write_json(data: dict[str, Any], path: str) -> None:
    """Write `data` as indented JSON to `path`; do nothing when `path` is "".

    Relative paths resolve from the project root; parent folders are created.
    """
    if not path:
        return
    target = resolve(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(to_jsonable(data), indent=2) + "\n")
    log.info("wrote %s", target)
