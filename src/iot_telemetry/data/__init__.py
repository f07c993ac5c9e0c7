"""Readers, validation, quarantine and the synthetic twin of the Kaggle file."""
