"""`power set` stopped (Ctrl-C, SIGTERM, SIGHUP) after every node answered, or before any was asked.

A reviewer saw a Ctrl-C that came while the command closed its store, every node's change made and audited
`confirmed`, said as `interrupted; no power limit was changed.` with `items: []`, and SIGTERM there end with only
`factoryctl: terminated` and an empty stdout. Before the change step, SIGTERM and SIGHUP printed no JSON and no
sentence where Ctrl-C printed both: cron under `timeout` and systemd stop with SIGTERM. Real agents on the simulated
driver (local transport), and real signals: sent to this process by the store's close (the in-process CLI), or to a
`python -m factoryctl` whose slow node is still being read.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reaping import reaped
from waiting import wait_for

from factoryctl.store.sqlite import Store

#: (signal, exit status, the word the stop is said with).
STOPS = [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated"), (signal.SIGHUP, 129, "hung up")]
STOP_IDS = ["SIGINT", "SIGTERM", "SIGHUP"]


def _fleet(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  n[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
    )
    return path


def _audited(cli, factory: Path) -> list[tuple[str, int, float]]:
    entries = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    return sorted((e["node"], e["gpu"], e["after_w"]) for e in entries)


@pytest.mark.parametrize(("sig", "status", "word"), STOPS, ids=STOP_IDS)
def test_a_stop_while_the_store_closes_lists_every_change(cli, tmp_path, monkeypatch, sig, status, word):
    factory = _fleet(tmp_path)
    closing = Store.close

    def close_stopped(store: Store) -> None:  # the signal comes as the command closes its store: all have answered
        monkeypatch.setattr(Store, "close", closing)
        signal.raise_signal(sig)
        closing(store)

    monkeypatch.setattr(Store, "close", close_stopped)
    result = cli("--config", str(factory), "power", "set", "all", "--watts", "333", "-o", "json")
    monkeypatch.setattr(Store, "close", closing)
    assert result.exit_code == status, result.stderr
    changed = [(i["node"], i["gpu"], i["enforced_w"]) for i in result.json()["items"]]
    assert changed == [("n1", 0, 333.0), ("n1", 1, 333.0), ("n2", 0, 333.0), ("n2", 1, 333.0)]
    assert f"factoryctl: {word}; 4 GPU limit(s) changed and recorded." in result.stderr.splitlines()
    assert "no power limit was changed" not in result.stderr
    assert _audited(cli, factory) == [("n1", 0, 333.0), ("n1", 1, 333.0), ("n2", 0, 333.0), ("n2", 1, 333.0)]


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


@pytest.mark.parametrize(("sig", "status", "word"), STOPS, ids=STOP_IDS)
def test_a_stop_before_the_change_says_so_in_json_and_on_stderr(cli, tmp_path, sig, status, word):
    """Every stop prints the listing and the sentence Ctrl-C prints, with its own exit status and word."""
    factory, started = _factory_with_a_node_read_forever(tmp_path)
    argv = [sys.executable, "-m", "factoryctl", "--config", str(factory), "power", "set", "all", "--watts", "333"]
    proc = subprocess.Popen([*argv, "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        wait_for(started.exists, timeout=60, what="slow's agent started (the range check reads it)")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert json.loads(out) == {"schema_version": 1, "items": [], "errors": []}
    assert f"factoryctl: {word}; no power limit was changed." in err.splitlines()
    assert _audited(cli, factory) == []
