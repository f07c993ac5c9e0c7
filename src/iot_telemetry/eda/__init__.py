"""Exploratory analysis of the readings table, the logic of notebooks/01-eda.ipynb.

Every function takes a readings table (see iot_telemetry.data.columns) and
returns a pandas object the notebook shows, plots or writes as metrics.
"""
