"""Every `--timeout` is checked once, where the option is defined: a finite number of seconds from 0.1 to a day.

A huge value used to reach the transport and overflow the platform's time_t when turned into a deadline, so the node
was reported down; the value is a usage error (exit 2) before any node is contacted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

FACTORY = "name: lab\nnodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"

COMMANDS = [
    ["nodes", "list", "n1", "--timeout"],
    ["gpus", "n1", "--timeout"],
    ["sim", "inject", "n1/0", "--ecc", "--timeout"],
    ["power", "set", "n1", "--watts", "300", "--timeout"],
    ["nodes", "trust", "n1", "--timeout"],
    ["exec", "n1", "-t"],
]


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY)
    return path


@pytest.mark.parametrize("value", ["1e10", "inf", "nan", "0", "-5", "86400.5"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_out_of_range_timeouts_are_usage_errors_naming_the_range(cli, factory, command, value):
    extra = ["--", "true"] if command[0] == "exec" else []
    result = cli("--config", str(factory), *command, value, *extra)
    assert result.exit_code == 2, result.stderr
    assert "--timeout must be from 0.1 to 86400 seconds (1 day)" in result.stderr
    assert "OverflowError" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_day_is_accepted(cli, factory):
    result = cli("--config", str(factory), "nodes", "list", "n1", "--timeout", "86400", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["items"][0]["state"] == "up"
