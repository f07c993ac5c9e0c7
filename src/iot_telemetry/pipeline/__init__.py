"""Papermill notebook runner, params schema and the report index."""
