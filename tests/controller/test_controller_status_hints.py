"""`controller status` names what it found wrong and gives the hint that fits it: a stopped process, a store it
cannot write, a full disk, nodes that are all down, a damaged store. "Restart it; a new store needs the drains
again" is only for a store deleted or replaced under it (test_controller_status.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from damaged_store import damage
from waiting import wait_for

from factoryctl.cli import controller as status_cli
from factoryctl.controller import STATS_KEY
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.lock import ControllerLock, lock_path
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store
from factoryctl.transport.host_limits import LOCAL

HOLD_LOCK = """
import sys, time
from pathlib import Path
from factoryctl.store.lock import ControllerLock
lock = ControllerLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local}}}}\ncontroller: {{interval_s: 1}}\n"
    )
    return path


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the controller lock, started a minute ago (as the lock file's time says)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "state")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "locked\n"
    old = time.time() - 60
    os.utime(lock_path(tmp_path / "state"), (old, old))
    yield proc
    proc.send_signal(signal.SIGCONT)
    proc.kill()
    proc.wait(10)
    proc.stdout.close()


def store_with(tmp_path: Path, pid: int, sample_age_s: float, figures_age_s: float, up: int = 1) -> None:
    store = Store(tmp_path / "state" / "factory.db")
    now = time.time()
    gpu = GpuSample(node="n1", index=0, uuid="GPU-0", power_w=300.0)
    store.write([NodeSample(node="n1", time=now - sample_age_s, gpus=(gpu,))], stored_at=now - sample_age_s)
    store.set_meta(STATS_KEY, json.dumps({"pid": pid, "nodes": 1, "up": up, "written_at": now - figures_age_s}))
    store.close()


def status(cli: Any, config: Path) -> Any:
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1, result.stdout
    assert "drains again" not in result.stderr
    return result


def test_a_stopped_controller_is_told_to_go_on(cli: Any, config: Path, tmp_path: Path, holder: Any) -> None:
    store_with(tmp_path, holder.pid, sample_age_s=30, figures_age_s=35)
    holder.send_signal(signal.SIGSTOP)
    wait_for(lambda: psutil.Process(holder.pid).status() == psutil.STATUS_STOPPED)
    result = status(cli, config)
    assert "has stored no sample since" in result.stderr
    assert "the process is stopped (SIGSTOP, or a debugger holds it)." in result.stderr
    assert f"hint: let it go on (`kill -CONT {holder.pid}`)" in result.stderr
    holder.send_signal(signal.SIGCONT)
    wait_for(lambda: psutil.Process(holder.pid).status() != psutil.STATUS_STOPPED)
    result = status(cli, config)  # running, but neither samples nor figures reach the store
    assert re.search(
        r"nor its own figures \(\d+ % of a core just now\): it cannot write the store, or is too", result.stderr
    )
    assert "a full disk, a store it may not write" in result.stderr  # the figure tells an overloaded one apart


def test_a_full_disk_is_named_with_its_hint(
    cli: Any, config: Path, tmp_path: Path, holder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_with(tmp_path, holder.pid, sample_age_s=30, figures_age_s=35)
    monkeypatch.setattr(status_cli, "DISK_FULL_BELOW_BYTES", 1 << 62)  # any disk is "full" below 4 EiB free
    result = status(cli, config)
    assert "the disk holding the store is full (" in result.stderr
    assert "hint: free disk space, or shorten controller.raw_retention" in result.stderr


def test_nodes_all_down_are_named_when_the_controller_still_writes(
    cli: Any, config: Path, tmp_path: Path, holder: Any
) -> None:
    store_with(tmp_path, holder.pid, sample_age_s=30, figures_age_s=2, up=0)
    result = status(cli, config)
    assert "none of its nodes is up." in result.stderr
    assert "hint: check the nodes (`factoryctl events --kind node_down`, `factoryctl nodes`)" in result.stderr


def test_a_damaged_store_is_told_to_be_moved_aside(cli: Any, config: Path, tmp_path: Path) -> None:
    store_with(tmp_path, os.getpid(), sample_age_s=1, figures_age_s=1)
    path = tmp_path / "state" / "factory.db"
    damage(path, "node_latest")
    result = status(cli, config)  # none runs (systemd restarting it): starting it again would not help
    assert "controller: not running" in result.stdout
    assert f"factoryctl: the store at {path} is damaged: database disk image is malformed." in result.stderr
    assert f"hint: move it aside (`mv {path} {path}.damaged`" in result.stderr
    lock = ControllerLock(tmp_path / "state")
    lock.acquire()
    try:
        result = status(cli, config)
        assert f"controller: running (pid {os.getpid()})" in result.stdout
        assert "is damaged" in result.stderr
        assert "hint: move it aside" in result.stderr
    finally:
        lock.release()


def test_controller_status_names_nodes_down_for_this_machines_limit(
    cli: Any, tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nnodes: {{'n[1-3]': {{transport: local}}}}\ncontroller: {{interval_s: 1}}\n"
    )
    now = time.time()
    starved = (
        "this machine has no file descriptor left for another connection (ulimit -n is 64): not a fault of the node"
    )
    store = Store(tmp_path / "state" / "factory.db")
    sample = NodeSample(node="n1", time=now, gpus=(GpuSample(node="n1", index=0, uuid="GPU-0", power_w=300.0),))
    states = [NodeState(name, "down", now, None, LOCAL, starved) for name in ("n2", "n3")]
    store.write([sample], states=states, stored_at=now)
    store.set_meta(STATS_KEY, json.dumps({"pid": holder.pid, "nodes": 3, "up": 1, "written_at": now}))
    store.close()
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1, result.stderr  # was 0, healthy, with 2 of 3 nodes down for a limit here
    assert (
        f"factoryctl: the controller (pid {holder.pid}) has 2 of its 3 nodes down for a limit of this machine: this"
        " machine has no file descriptor left for another connection (ulimit -n is 64).\n"
    ) in result.stderr
    assert "hint: raise the open-file limit (LimitNOFILE= in the controller's systemd unit, `ulimit -n`)." in (
        result.stderr
    )


def test_controller_status_says_why_no_node_is_up_when_this_machine_is_out_of_tasks(
    cli: Any, tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local}}}}\ncontroller: {{interval_s: 1}}\n"
    )
    now = time.time()
    starved = "this machine cannot start another thread or process: its task limit is reached (pids.max is 80), not a fault of the node"
    store = Store(tmp_path / "state" / "factory.db")
    sample = NodeSample(node="n1", time=now - 30, gpus=(GpuSample(node="n1", index=0, uuid="GPU-0", power_w=300.0),))
    store.write([sample], states=[NodeState("n1", "down", now - 20, None, LOCAL, starved)], stored_at=now - 30)
    store.set_meta(STATS_KEY, json.dumps({"pid": holder.pid, "nodes": 1, "up": 0, "written_at": now - 2}))
    store.close()
    result = cli("--config", str(config), "controller", "status")
    assert result.exit_code == 1, result.stderr
    assert (
        ": none of its nodes is up, 1 for a limit of this machine: this machine cannot start another thread or process:"
        " its task limit is reached (pids.max is 80).\nhint: raise the limit (TasksMax= in the controller's systemd unit,"
    ) in result.stderr
