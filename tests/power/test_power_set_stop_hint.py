"""`power set` stopped mid-way says so with a hint, as every error does (Ctrl-C: 130, SIGTERM: 143).

Real agents on the simulated driver; one node's Python never starts, so the signal comes while it has not answered.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from reaping import reaped
from test_power_set_interrupted import slow_factory
from waiting import wait_for


@pytest.mark.parametrize(
    ("sig", "status", "hint"),
    [
        (signal.SIGINT, 130, "hint: Ctrl-C stopped it (exit 130); run the command again for a complete result."),
        (signal.SIGTERM, 143, "hint: SIGTERM stopped it (exit 143: `timeout`, systemd or kill); run the command"),
    ],
)
def test_a_stopped_power_set_gives_a_hint(cli, tmp_path, sig, status, hint):
    factory = slow_factory(tmp_path, gpus=1)
    argv = [
        sys.executable,
        "-m",
        "factoryctl",
        "--config",
        str(factory),
        "power",
        "set",
        "all",
        "--watts",
        "333",
        "--clamp",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def fast_changed() -> bool:
        items = cli("--config", str(factory), "gpus", "fast", "-o", "json").json()["items"]
        return [g["power_limit_w"] for g in items] == [333]

    with reaped(proc):
        wait_for(fast_changed, timeout=60)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    lines = err.splitlines()
    word = "terminated" if sig == signal.SIGTERM else "interrupted"
    stopped = lines.index(f"factoryctl: {word}; 1 GPU limit(s) changed and recorded.")
    assert lines[stopped + 1].startswith(hint)
