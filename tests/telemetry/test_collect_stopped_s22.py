"""`telemetry collect` stopped (SIGTERM from cron's `timeout`, Ctrl-C) stores the nodes that had answered.

A sweep with one node whose sshd never sent its banner, under `timeout 2`, stored nothing at all: the nodes that had
answered in its first second were lost with the stop, where docs/telemetry.md says they are stored. Now they are
written before the command ends, which it does as any stopped command (143, 130). Real agents on the simulated driver
(local transport) and a real signal sent to a `python -m factoryctl` whose second node is still being read; with
`--fanout 1` that node starts only once the first has answered.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reaping import reaped
from waiting import wait_for

from factoryctl.store.sqlite import Store


def _factory_with_a_node_read_forever(tmp_path: Path) -> tuple[Path, Path]:
    """Nodes `fast` and `slow`; slow's python says it started (the file returned), then never answers."""
    started = tmp_path / "slow-started"
    slow = tmp_path / "slowpy"
    slow.write_text(f'#!/bin/sh\ntouch "{started}"\nexec "{sys.executable}" -c "import time; time.sleep(60)"\n')
    slow.chmod(0o755)
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  fast: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
        f"  slow: {{transport: local, python: {slow}, sim: {{profile: h100-sxm, gpus: 2}}}}\n"
    )
    return path, started


@pytest.mark.parametrize(
    ("sig", "status", "word"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_a_stopped_sweep_stores_the_nodes_that_answered(tmp_path: Path, sig: int, status: int, word: str) -> None:
    factory, started = _factory_with_a_node_read_forever(tmp_path)
    argv = [sys.executable, "-m", "factoryctl", "--config", str(factory), "telemetry", "collect", "--fanout", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        wait_for(started.exists, timeout=60, what="slow's agent started (after fast answered: --fanout 1)")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        latest = {state.node: (state.state, sample) for state, sample in store.latest()}
    finally:
        store.close()
    assert set(latest) == {"fast"}  # slow never answered: neither up nor down
    state, sample = latest["fast"]
    assert state == "up"
    assert sample is not None
    assert [gpu.index for gpu in sample.gpus] == [0, 1]
    assert f"factoryctl: {word}" in err.splitlines()
    assert "stored 2 GPU samples from 1 of 2 nodes" in err
