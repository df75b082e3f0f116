"""The daemon as a real process with real (simulated-GPU) agents: lock, signals, reload, SIGKILL, a killed agent."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli_process import CLI_ARGV
from store_rows import NODE_SAMPLES_SQL, count_while_created, event_kinds, value
from waiting import wait_for

from factoryctl.config import parse_config
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.latest import read_live

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, nodes: str = "n[1-2]", interval: float = 0.5, broken: bool = False) -> Path:
    path = tmp_path / "factory.yaml"
    text = (
        f"name: ctl\nstate_dir: {tmp_path / 'state'}\nnodes:\n  {nodes}: {{transport: local, sim: h100-sxm, gpus: 2}}\n"
        f"controller:\n  interval_s: {interval}\n"
    )
    path.write_text(text + ("nodes: [oops\n" if broken else ""))
    return path


def store_file(tmp_path: Path) -> Path:
    """The store of the controller `write_config` sets up in `tmp_path`."""
    return tmp_path / "state" / "factory.db"


def rows(tmp_path: Path, node: str) -> int:
    return count_while_created(store_file(tmp_path), NODE_SAMPLES_SQL, node)


def agents_of(tmp_path: Path) -> list[psutil.Process]:
    marker = str(tmp_path / "state")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(marker in part for part in cmdline) and "--node" in cmdline:
            found.append(proc)
    return found


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def launch(config: Path) -> subprocess.Popen[bytes]:
        argv = [*CLI_ARGV, "--config", str(config), "controller", "run"]
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
        procs.append(proc)
        return proc

    yield launch
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    for agent in agents_of(tmp_path):
        agent.kill()


def test_lock_reload_and_clean_stop(tmp_path: Path, start: Any, cli: Any) -> None:
    config = write_config(tmp_path)
    proc = start(config)
    wait_for(lambda: rows(tmp_path, "n1") >= 4 and rows(tmp_path, "n2") >= 4)

    second = cli("--config", str(config), "controller", "run")
    assert second.exit_code == 1
    assert "another controller" in second.stderr
    assert f"pid {proc.pid}" in second.stderr
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the refused start restored Ctrl-C

    live = read_live(parse_config(config.read_text(), config))
    assert live is not None
    assert [s.state for s in live.samples] == ["up", "up"]

    write_config(tmp_path, broken=True)
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config_rejected" in event_kinds(store_file(tmp_path)))
    assert proc.poll() is None
    write_config(tmp_path, nodes="n[1-3]")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: rows(tmp_path, "n3") >= 4)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    stderr = proc.stderr.read().decode()
    assert "reload refused, keeping the previous configuration" in stderr
    assert "malformed YAML" in stderr
    assert event_kinds(store_file(tmp_path))[-1] == "controller_stop"
    wait_for(lambda: not agents_of(tmp_path), timeout=10)


def test_sigkill_mid_write_leaves_a_sound_store_without_duplicates(tmp_path: Path, start: Any) -> None:
    config = write_config(tmp_path, nodes="n[1-3]", interval=0.2)
    for round_ in range(3):
        proc = start(config)
        before = rows(tmp_path, "n1")
        wait_for(lambda before=before: rows(tmp_path, "n1") >= before + 8)
        time.sleep(0.05 * round_)
        proc.kill()
        proc.wait(10)
        store = Store(store_file(tmp_path))
        assert store.integrity_check() == "ok"
        store.close()
    dupes = value(
        store_file(tmp_path),
        "SELECT COUNT(*) FROM (SELECT node_id, gpu, t_ms FROM sample GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)",
    )
    assert dupes == 0
    # agents of a killed controller see their stdin close and exit on their own
    wait_for(lambda: not agents_of(tmp_path), timeout=15)


def test_killed_agent_is_restarted(tmp_path: Path, start: Any) -> None:
    config = write_config(tmp_path, nodes="n1", interval=0.3)
    proc = start(config)
    wait_for(lambda: rows(tmp_path, "n1") >= 4)
    (agent,) = agents_of(tmp_path)
    agent.kill()
    wait_for(lambda: event_kinds(store_file(tmp_path)).count("node_up") == 2)
    kinds = event_kinds(store_file(tmp_path))
    assert "node_degraded" in kinds
    assert len(agents_of(tmp_path)) == 1
    before = rows(tmp_path, "n1")
    wait_for(lambda: rows(tmp_path, "n1") > before + 4)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


def test_deleted_store_stops_the_controller_and_follow_moves_to_the_new_store(
    tmp_path: Path, start: Any, cli: Any
) -> None:
    config = write_config(tmp_path)
    proc = start(config)
    wait_for(lambda: rows(tmp_path, "n1") >= 2)
    argv = [*CLI_ARGV, "--config", str(config)]
    follow = subprocess.Popen([*argv, "events", "--follow", "-o", "json"], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(follow.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        assert cli("--config", str(config), "nodes", "drain", "n1", "--reason", "test").exit_code == 0
        wait_for(lambda: any('"drain"' in line for line in lines))
        for path in (tmp_path / "state").glob("factory.db*"):
            path.unlink()  # rm state/factory.db*
        assert proc.wait(15) == 1  # noticed within seconds, exits for systemd to restart it
        stderr = proc.stderr.read().decode()
        assert "ERROR factoryctl.controller: the store" in stderr
        assert "was deleted while the controller ran" in stderr
        assert "drains must be redone" in stderr
        start(config)
        wait_for(lambda: sum('"controller_start"' in line for line in lines) == 2)  # follow reattached
        store = Store(store_file(tmp_path), readonly=True)
        assert store.drained_nodes() == {}  # a fresh store: the drain is to be redone, as the log said
        store.close()
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(10) == 130
        follow.stdout.close()
