"""`power set` stopped mid-way says so with a hint, as every error does (Ctrl-C: 130, SIGTERM: 143).

Real agents on the simulated driver; one node's Python never starts, so the signal comes while it has not answered.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reaping import reaped
from waiting import wait_for


def _factory(tmp_path: Path) -> Path:
    slow = tmp_path / "slowpy"
    slow.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import time; time.sleep(20)"\n')
    slow.chmod(0o755)
    path = tmp_path / "factory.yaml"
    path.write_text(
        "name: lab\nnodes:\n"
        "  fast: {transport: local, sim: {profile: h100-sxm, gpus: 1, seed: 3}}\n"
        f"  slow: {{transport: local, python: {slow}, sim: {{profile: h100-sxm, gpus: 1}}}}\n"
    )
    return path


@pytest.mark.parametrize(
    ("sig", "status", "hint"),
    [
        (signal.SIGINT, 130, "hint: Ctrl-C stopped it (exit 130); run the command again for a complete result."),
        (signal.SIGTERM, 143, "hint: SIGTERM stopped it (exit 143: `timeout`, systemd or kill); run the command"),
    ],
)
def test_a_stopped_power_set_gives_a_hint(cli, tmp_path, sig, status, hint):
    factory = _factory(tmp_path)
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
    stopped = lines.index("factoryctl: interrupted; 1 GPU limit(s) changed and recorded.")
    assert lines[stopped + 1].startswith(hint)
