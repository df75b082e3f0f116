"""`power set` over a real sshd whose node hangs the agent's cache check: the timeout says it was the agent's start.

The check is a command over SSH (`agent_cache._login_probe`), and its timeout used to be worded as exec's ("command
did not finish within 15 s and may still be running on the node"). The node's `sh` (first on sshd's PATH) hangs
that check only; everything else runs as usual.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SshdServer

#: `sh` for the node's commands: sleeps through the agent's cache check (it starts `id -u || exit 1`).
_HANGING_SH = """#!/bin/sh
case "$*" in *"id -u || exit 1"*) sleep 30 ;; esac
exec /bin/sh "$@"
"""


@pytest.fixture
def hanging_check(sshd_factory: Callable[..., SshdServer], tmp_path: Path) -> str:
    server = sshd_factory()
    shell = server.bin_dir / "sh"
    shell.write_text(_HANGING_SH)
    shell.chmod(0o755)
    known_hosts = server.write_known_hosts(tmp_path / "kh")
    nodes = "  n1: {host: 127.0.0.1, sim: l40s, gpus: 1}\n"
    return server.write_factory(tmp_path / "factory.yaml", known_hosts, nodes)


@pytest.mark.parametrize(
    "args",
    [["--clamp"], []],  # without --clamp the range is checked first, by the same agent's sample
)
def test_a_hung_agent_start_is_named_as_such_and_changed_nothing(cli: Any, hanging_check: str, args: list[str]) -> None:
    r = cli("--config", hanging_check, "power", "set", "n1", "--watts", "250", *args, "--timeout", "3", "-o", "json")
    assert r.exit_code == 124, r.stderr
    [error] = json.loads(r.stdout)["errors"]
    assert error["error"] == "timeout"
    assert error["message"] == (
        "a command checking or uploading the agent did not finish within 3 s; no limit was changed"
    )
    assert "may still be running" not in r.stderr
    assert "hint: find what hangs with `factoryctl nodes check n1`" in r.stderr
