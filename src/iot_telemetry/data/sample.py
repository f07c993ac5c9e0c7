"""Small in-memory samples of the synthetic twin, for notebook defaults and tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iot_telemetry.data.validate import Batch, deduplicate, normalize


def sample_readings(days: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Generate `days` of the twin and return it as a validated readings table.

    The twin's duplicate rows are removed as ingest would remove them; its
    glitches stay in, as they would in real data.
    """
    frame, _ = sample_with_truth(days, seed)
    return frame


def sample_with_truth(days: float = 0.5, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (readings, truth) of a small twin; see `synthetic.generate_twin`."""
    from iot_telemetry.data.synthetic import generate_twin

    rows, truth = generate_twin(days=days, seed=seed)
    batch = Batch(rows.reset_index(drop=True), "synthetic", np.arange(len(rows)) + 2)
    readings = normalize(batch)
    kept = deduplicate(readings).readings
    return kept.drop(columns=["_source", "_line"], errors="ignore"), truth
