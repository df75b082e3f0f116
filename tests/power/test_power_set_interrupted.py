"""`power set` interrupted while nodes change their limits, or facing a store that cannot record the change.

Every limit that changed is in the audit log and on stdout, whatever stopped the command: Ctrl-C (130), SIGTERM
(143), SIGHUP (129: a closed terminal). A store that cannot take the audit entry (read-only, held by another writer) refuses before any node changes.
Real agents on the simulated driver (local transport); one node's Python is slow to start, so the interrupt comes
while it has not answered and the other node has already changed.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from reaping import reaped
from waiting import wait_for

from factoryctl.store import connection, lock_wait


def slow_factory(tmp_path: Path, gpus: int = 2) -> Path:
    """Node `fast`, and node `slow` whose agent never starts (its python sleeps 20 s), `gpus` GPUs each."""
    slow = tmp_path / "slowpy"
    slow.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "import time; time.sleep(20)"\n')
    slow.chmod(0o755)
    path = tmp_path / "factory.yaml"
    path.write_text(
        "name: lab\nnodes:\n"
        f"  fast: {{transport: local, sim: {{profile: h100-sxm, gpus: {gpus}, seed: 3}}}}\n"
        f"  slow: {{transport: local, python: {slow}, sim: {{profile: h100-sxm, gpus: {gpus}}}}}\n"
    )
    return path


def shorten_the_store_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A locked store is refused after 0.5 s instead of 10 (`cli` runs in this process): what is refused is the same."""
    monkeypatch.setattr(lock_wait, "BUSY_TIMEOUT_S", 0.5)
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.5)  # the wait its message names


def _limits(cli, factory: Path, node: str) -> list[float]:
    return [g["power_limit_w"] for g in cli("--config", str(factory), "gpus", node, "-o", "json").json()["items"]]


def _audited(cli, factory: Path) -> list[tuple[str, int, float]]:
    entries = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    return [(e["node"], e["gpu"], e["after_w"]) for e in entries]


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_an_interrupt_records_and_shows_what_changed(cli, tmp_path, sig, status):
    factory = slow_factory(tmp_path)
    argv = [sys.executable, "-m", "factoryctl", "--config", str(factory), "power", "set", "all", "--watts", "333"]
    proc = subprocess.Popen([*argv, "--clamp", "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        wait_for(lambda: _limits(cli, factory, "fast") == [333, 333], timeout=60)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    doc = json.loads(out)
    assert [(i["node"], i["gpu"], i["enforced_w"]) for i in doc["items"]] == [("fast", 0, 333.0), ("fast", 1, 333.0)]
    assert [(e["node"], e["error"]) for e in doc["errors"]] == [("slow", "interrupted")]
    word = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}[sig]
    assert f"{word}; 2 GPU limit(s) changed and recorded." in err
    assert _audited(cli, factory) == [("fast", 0, 333.0), ("fast", 1, 333.0)]


def test_a_store_held_by_another_writer_refuses_before_any_change(cli, tmp_path, monkeypatch):
    shorten_the_store_lock_wait(monkeypatch)
    factory = tmp_path / "factory.yaml"
    state = tmp_path / "state"
    factory.write_text(
        f"name: lab\nstate_dir: {state}\nnodes:\n  n1: {{transport: local, sim: {{profile: h100-sxm, gpus: 2, seed: 3}}}}\n"
    )
    assert cli("--config", str(factory), "telemetry", "collect", "--once").exit_code == 0  # the store exists
    store = state / "factory.db"
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = cli("--config", str(factory), "power", "set", "n1", "--watts", "400")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert "stayed locked by another writer" in result.stderr
    assert "were changed" not in result.stderr
    assert _limits(cli, factory, "n1") == [700, 700]
    assert _audited(cli, factory) == []
