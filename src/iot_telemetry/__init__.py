"""IoT environmental telemetry: readers, models, serving and streaming."""

__version__ = "0.1.0"
