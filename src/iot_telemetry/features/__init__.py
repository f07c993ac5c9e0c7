"""Per-device features shared by training, batch scoring and serving."""
