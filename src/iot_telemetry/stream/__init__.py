"""MQTT broker configuration, replay, lossless ingest and live scoring."""
