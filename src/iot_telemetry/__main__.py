"""Allow `python -m iot_telemetry`."""

from iot_telemetry.cli import main

raise SystemExit(main())
