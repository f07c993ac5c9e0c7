"""Interval calibration from earlier folds' errors (split conformal, rolling origin).

A model's own intervals rest on its error model: ETS and the naive methods
assume errors that grow like a random walk's, so their intervals come out too
wide on these sensors, and Prophet's trend-only uncertainty comes out too
narrow. Calibration rescales each model's intervals by how its earlier
forecasts of the same series actually missed.

For a fold with cutoff c, the calibration set is the forecast steps of the
same series and model from the few folds just before it (backtest.py picks
them). Only steps at or before c count, so it uses only readings the model
could have seen at c. Each
step's score is its error in units of the model's own half-interval, on the
side the reading fell:

    s = (y - point) / (upper - point)   when y >= point
    s = (point - y) / (point - lower)   when y < point

The scale for level L is the conformal quantile of the scores, the
ceil((n + 1) L)-th smallest of n, and the calibrated bounds are
point +- scale * (bound - point). Scores are taken per lead band, the leads
up to the shortest horizon, then up to each longer one, because errors grow
with the lead time faster than some models' intervals do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from iot_telemetry.forecast.base import LEVELS, forecast_frame

# Fewer scores than this in a band leave its intervals as the model gave them.
MIN_POINTS = 10


@dataclass(frozen=True)
class BandScale:
    """The calibration of one lead band.

    Attributes:
        first_lead, last_lead: grid steps after the cutoff the band covers.
        scales: level -> factor applied to the model's half-intervals; 1.0
            when the band had fewer than MIN_POINTS scores.
        n_points: scores behind the factors.
    """

    first_lead: int
    last_lead: int
    scales: dict[int, float]
    n_points: int

    @property
    def calibrated(self) -> bool:
        return self.n_points >= MIN_POINTS

    def as_dict(self, step: pd.Timedelta) -> dict:
        """Return a JSON-ready description, leads in hours."""
        hours = step / pd.Timedelta(hours=1)
        return {
            "first_lead_hours": round(self.first_lead * hours, 4),
            "last_lead_hours": round(self.last_lead * hours, 4),
            "n_points": self.n_points,
            "calibrated": self.calibrated,
            **{f"scale_{level}": round(self.scales[level], 6) for level in LEVELS},
        }


def band_edges(window_steps: list[int]) -> list[tuple[int, int]]:
    """Return (first, last) lead of each band from the windows' lengths in steps."""
    edges, first = [], 1
    for last in sorted(set(window_steps)):
        if last >= first:
            edges.append((first, last))
            first = last + 1
    return edges


def interval_scores(history: pd.DataFrame, level: int) -> np.ndarray:
    """Return each observed step's error in units of its half-interval at `level`.

    Steps whose half-interval on the reading's side is zero score 0 when the
    reading equals the point forecast and are left out otherwise, since no
    factor can widen a zero-width bound.
    """
    y = history["actual"].to_numpy(dtype="float64")
    point = history["point"].to_numpy(dtype="float64")
    lower = history[f"lower_{level}"].to_numpy(dtype="float64")
    upper = history[f"upper_{level}"].to_numpy(dtype="float64")
    error = y - point
    half = np.where(error >= 0, upper - point, point - lower)
    keep = np.isfinite(error) & ((half > 0) | (error == 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(error == 0, 0.0, np.abs(error) / half)
    return scores[keep]


def conformal_quantile(scores: np.ndarray, level: int) -> float:
    """Return the ceil((n + 1) level / 100)-th smallest score (the largest if past n)."""
    ordered = np.sort(scores)
    rank = math.ceil((len(ordered) + 1) * level / 100)
    return float(ordered[min(rank, len(ordered)) - 1])


def fit_scales(history: pd.DataFrame, cutoff: pd.Timestamp | None,
               edges: list[tuple[int, int]]) -> list[BandScale]:
    """Compute each band's scales from earlier forecast steps.

    Args:
        history: forecast steps of earlier folds (columns lead_steps, time,
            actual, point and the bounds); steps after `cutoff` and steps
            without a reading are ignored.
        cutoff: the fold being calibrated; None uses every step.
        edges: lead bands from `band_edges`.
    """
    usable = history[history["actual"].notna()]
    if cutoff is not None:
        usable = usable[usable["time"] <= cutoff]
    bands = []
    for first, last in edges:
        band = usable[usable["lead_steps"].between(first, last)]
        per_level = {level: interval_scores(band, level) for level in LEVELS}
        n_points = min(len(scores) for scores in per_level.values())
        if n_points >= MIN_POINTS:
            scales = {level: conformal_quantile(per_level[level], level) for level in LEVELS}
        else:
            scales = dict.fromkeys(LEVELS, 1.0)
        bands.append(BandScale(first, last, scales, n_points))
    return bands


def apply_scales(forecast: pd.DataFrame, bands: list[BandScale]) -> pd.DataFrame:
    """Return `forecast` with each band's bounds moved to point +- scale * half-width.

    Leads past the last band keep the last band's scales. Row i of the frame
    is lead i + 1.
    """
    lead = np.arange(1, len(forecast) + 1)
    point = forecast["point"].to_numpy(dtype="float64")
    factor = {level: np.ones(len(forecast)) for level in LEVELS}
    for number, band in enumerate(bands):
        last = np.inf if number == len(bands) - 1 else band.last_lead
        rows = (lead >= band.first_lead) & (lead <= last)
        for level in LEVELS:
            factor[level][rows] = band.scales[level]
    bounds = {}
    for level in LEVELS:
        for side in ("lower", "upper"):
            name = f"{side}_{level}"
            bounds[name] = point + factor[level] * (forecast[name].to_numpy() - point)
    return forecast_frame(forecast.index, point, bounds)
