"""Per-device characterization, the logic of notebooks/02-characterize.ipynb.

Its output, device_profiles.json, describes each device (stable or variable,
levels, light and motion behaviour, day and night) for later stages.
"""
