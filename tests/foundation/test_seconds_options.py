"""Every option in seconds (`--interval`, `--min-interval`, demo's `--duration`) takes `--timeout`'s one check.

`gpus --watch --interval inf` overflowed the sleep ("unexpected error: OverflowError", exit 1) and
`demo --headless --duration inf` never ended; a value outside the option's range is a usage error (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import pytest

FACTORY = "name: lab\nnodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"

#: (command up to the option, the option's range as the error names it)
COMMANDS = [
    (["gpus", "n1", "--watch", "--interval"], "--interval must be from 0.1 to 86400 seconds"),
    (["nodes", "list", "n1", "--watch", "--interval"], "--interval must be from 0.1 to 86400 seconds"),
    (["metrics", "serve", "--port", "0", "--min-interval"], "--min-interval must be from 0 to 86400 seconds"),
    (["demo", "--headless", "--duration"], "--duration must be from 0 to 86400 seconds"),
    (["demo", "--headless", "--duration", "1", "--interval"], "--interval must be from 0.1 to 86400 seconds"),
]


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "1e10"])
@pytest.mark.parametrize(
    ("command", "sentence"), COMMANDS, ids=lambda c: " ".join(c[:2]) if isinstance(c, list) else ""
)
def test_out_of_range_seconds_are_usage_errors_naming_the_range(cli, tmp_path: Path, command, sentence, value):
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    result = cli("--config", str(config), *command, value)
    assert result.exit_code == 2, result.stderr
    assert sentence in result.stderr
    assert "hint: give the time in seconds" in result.stderr
    assert "OverflowError" not in result.stderr


def test_a_watch_interval_below_a_tenth_of_a_second_is_refused(cli, tmp_path: Path):
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    result = cli("--config", str(config), "gpus", "n1", "-w", "--interval", "0.01")
    assert result.exit_code == 2
    assert "--interval must be from 0.1 to 86400 seconds (1 day), not 0.01." in result.stderr
