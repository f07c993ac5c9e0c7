"""Sentences of the EDA report that depend on which inputs exist.

Each function returns Markdown text built from computed tables, so the
report's wording stays true when the data or the input changes.
"""

from __future__ import annotations

import pandas as pd

from iot_telemetry.eda.coverage import GAP_SECONDS
from iot_telemetry.eda.glitches import MIN_DEVIATION, N_MADS, WINDOW

# Air temperatures plausible indoors, in degC, for the verdict in units_sentence.
ROOM_RANGE_C = (10.0, 35.0)
# Relative deviation up to which the MQ-2 identity counts as exact: float64
# rounding through log10, exp and a 17-digit decimal is a few 1e-15.
ROUNDING_TOLERANCE = 1e-12


def units_sentence(units: pd.DataFrame, month: str) -> str:
    """Summarise the Celsius-versus-Fahrenheit evidence of `units.unit_evidence`.

    The verdicts ("indoor temperatures", "below freezing", "summer air") are
    stated only when the numbers support them.
    """
    low_c, high_c = units["temp_low"].min(), units["temp_high"].max()
    low_f, high_f = units["as_f_low_c"].min(), units["as_f_high_c"].max()
    text = f"Read as degC, the bulk (1-99 %) of `temp` spans {low_c:.1f} to {high_c:.1f} degC"
    text += " across devices: plausible indoor temperatures. " if ROOM_RANGE_C[0] <= low_c and (
        high_c <= ROOM_RANGE_C[1]) else " across devices. "
    text += f"Read as degF, it would be {low_f:.1f} to {high_f:.1f} degC"
    if high_f < 0:
        text += f", below freezing indoors in {month}"
    text += (
        f", at a median relative humidity of {units['humidity_median'].min():.0f}-"
        f"{units['humidity_median'].max():.0f} %. At the median readings the air would hold "
        f"{units['abs_humidity_if_c_g_m3'].min():.1f}-"
        f"{units['abs_humidity_if_c_g_m3'].max():.1f} g/m3 of water vapour (dew points "
        f"{units['dew_point_if_c'].min():.1f} to {units['dew_point_if_c'].max():.1f} degC) "
        f"under degC, against {units['abs_humidity_if_f_g_m3'].min():.1f}-"
        f"{units['abs_humidity_if_f_g_m3'].max():.1f} g/m3 (dew points "
        f"{units['dew_point_if_f'].min():.1f} to {units['dew_point_if_f'].max():.1f} degC) "
        "under degF"
    )
    if units["dew_point_if_f"].max() < 0 < units["dew_point_if_c"].min():
        text += ": summer air under degC, winter air under degF"
    return text + ". The readings table stores `temp` as degC."


def glitch_sentence(counts: pd.DataFrame, found: pd.DataFrame, readings: int) -> str:
    """Summarise `glitches.count_glitches` and the flagged rows, out of `readings` in all."""
    rule = (
        f"With a window of {WINDOW} readings, floors of {MIN_DEVIATION['temp']:g} degC "
        f"and {MIN_DEVIATION['humidity']:g} % RH and {N_MADS:g} scaled MADs, the rule "
    )
    total = int(counts["readings"].sum())
    if total == 0:
        return rule + f"flags none of the {readings:,} readings."
    parts = [
        f"{device}: {row.readings} ({row.temp} in temp, {row.humidity} in humidity)"
        for device, row in counts.iterrows()
    ]
    largest = found.loc[found["deviation"].abs().idxmax()]
    return (
        rule + f"flags {total} of {readings:,} readings ({total / readings:.3%}): "
        f"{'; '.join(parts)}. The largest is {largest['sensor']} {largest['value']:.1f} "
        f"on {largest['device']}, {abs(largest['deviation']):.1f} away from the median "
        f"{largest['baseline']:.1f} of its window."
    )


def truth_sentence(truth_match: pd.DataFrame | None, note: str) -> str:
    """Compare flagged and injected glitches, or state why there is no ground truth."""
    if truth_match is None:
        return f"No ground-truth comparison: {note}."
    totals = truth_match[["injected", "flagged", "matched"]].sum()
    injected, flagged, matched = (int(totals[name]) for name in ("injected", "flagged",
                                                                 "matched"))
    return (
        f"Against the twin's ground truth, the rule finds {matched} of the {injected} "
        f"injected glitches and raises {flagged - matched} false alarms "
        f"({flagged} flagged in all)."
    )


def quality_sentence(summary: dict | None, truth: pd.DataFrame | None,
                     reasons: pd.DataFrame, gaps: pd.DataFrame) -> str:
    """Summarise duplicates, quarantined rows and gaps."""
    if summary is not None:
        duplicates, quarantined = summary["duplicates"], summary["quarantined"]
        text = (
            f"Ingest read {summary['read']:,} rows and kept {summary['kept']:,}: "
            f"{duplicates:,} exact {'duplicate' if duplicates == 1 else 'duplicates'} "
            f"dropped and {quarantined:,} {'row' if quarantined == 1 else 'rows'} quarantined"
        )
        if len(reasons):
            listed = ", ".join(f"{count} {reason}" for reason, count in reasons["all"].items())
            text += f" ({listed})"
        text += "."
    elif truth is not None:
        injected = int((truth["kind"] == "duplicate").sum())
        rows = "row" if injected == 1 else "rows"
        text = (
            f"The in-memory sample has no ingest summary; the twin injected {injected} "
            f"duplicate {rows}, which the sample dropped as ingest would."
        )
    else:
        text = "There is no ingest summary for these readings."
    if gaps.empty:
        return text + f" No device went more than {GAP_SECONDS:g} s without a reading."
    longest = gaps.iloc[0]
    intervals = "interval exceeds" if len(gaps) == 1 else "intervals exceed"
    return text + (
        f" {len(gaps)} {intervals} {GAP_SECONDS:g} s; the longest is "
        f"{longest['duration_s'] / 60:.1f} min on {longest['device']} from "
        f"{longest['start']:%Y-%m-%d %H:%M} UTC."
    )


def ks_sentence(ks: pd.DataFrame | None, note: str) -> str:
    """Summarise the twin-vs-real KS table, or state why it was skipped."""
    if ks is None:
        return f"Section skipped: {note}."
    worst = ks.loc[ks["ks_statistic"].idxmax()]
    best = ks.loc[ks["ks_statistic"].idxmin()]
    small_p = int((ks["p_value"] < 0.01).sum())
    return (
        f"The KS distance ranges from {best['ks_statistic']:.2f} ({best['device']} "
        f"{best['sensor']}) to {worst['ks_statistic']:.2f} ({worst['device']} "
        f"{worst['sensor']}), median {ks['ks_statistic'].median():.2f}, with "
        f"{int(ks['n_twin'].min()):,}-{int(ks['n_twin'].max()):,} twin and "
        f"{int(ks['n_real'].min()):,}-{int(ks['n_real'].max()):,} real readings per "
        f"device. {small_p} of the {len(ks)} p-values are below 0.01: with samples this "
        "large even a small distance is significant, so the distance is the information."
    )


def identity_sentence(identity: pd.DataFrame, correlations: pd.DataFrame) -> str:
    """Summarise the MQ-2 identity check, drawing the conclusion only when it is exact."""
    gas_rho = correlations.loc[(slice(None), "co"), ["lpg", "smoke"]].min().min()
    deviation = identity["max_rel_dev"].max()
    text = (
        f"Within every device, the rank correlation of co with lpg and with smoke is at "
        f"least {gas_rho:.4f}. Predicting lpg and smoke from co through ln r reproduces "
        f"them to a maximum relative deviation of {deviation:.1e} over "
        f"{int(identity['readings'].sum()):,} readings"
    )
    if deviation <= ROUNDING_TOLERANCE:
        return text + (
            ", that is, to floating-point rounding: lpg and smoke are functions of co, so a "
            'model gains nothing from them once it has co, and their "ppm" values are not '
            "physical concentrations."
        )
    worst = identity["max_rel_dev"].idxmax()
    return text + f", largest on {worst}: the identity does not hold exactly in this input."
