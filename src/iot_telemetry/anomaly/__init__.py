"""Fault injection, anomaly detectors, evaluation and model selection."""
