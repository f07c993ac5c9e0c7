"""Command-line argument types shared by the subcommands."""

from __future__ import annotations

import pytest

from iot_telemetry.cli import main


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["serve", "--port", "99999"], "invalid port 99999: expected 0 to 65535"),
        (["serve", "--port", "-1"], "invalid port -1"),
        (["stream", "broker", "--port", "abc"], "invalid port 'abc': expected an integer"),
    ],
)
def test_port_out_of_range_usage_error(capsys, argv, fragment):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert fragment in capsys.readouterr().err
