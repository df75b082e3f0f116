"""SSH faults under the collection loop, against a real sshd: sshd killed and restarted, a stalled agent, a node that
accepts TCP and never answers."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest
from silent_listener import silent_listener
from sshd_fixture import SshdServer
from store_rows import NODE_SAMPLES_SQL, value
from waiting import wait_for

from factoryctl.config import FactoryConfig, parse_config
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.collector import Collector

pytestmark = [pytest.mark.sshd, pytest.mark.slow]


def ssh_config(tmp_path: Path, server: SshdServer, extra_nodes: str = "") -> FactoryConfig:
    known = server.write_known_hosts(tmp_path / "known_hosts")
    text = (
        f"name: sshf\nstate_dir: {tmp_path / 'state'}\n"
        f"ssh: {{user: {server.user}, identity_file: {server.user_key}, known_hosts: {known}, connect_timeout_s: 2}}\n"
        f"nodes:\n  n1: {{host: 127.0.0.1, port: {server.port}, sim: h100-sxm, gpus: 2}}\n{extra_nodes}"
        "controller:\n  interval_s: 0.3\n"
    )
    return parse_config(text, tmp_path / "factory.yaml")


@pytest.fixture
def remote_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "remote-cache"
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(cache))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return cache


def remote_agents(cache: Path) -> list[psutil.Process]:
    """The agents started from `cache` (they run as `python3 ./factoryctl-agent-*.pyz` inside it)."""
    found = []
    where = str(cache.resolve())
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = proc.info["cmdline"] or []
        started_there = proc.info["cwd"] == where or any(where in part for part in cmdline)
        if started_there and "--node" in cmdline and any("factoryctl-agent-" in part for part in cmdline):
            found.append(proc)
    return found


def _gone(proc: psutil.Process) -> bool:
    """Ended (a zombie until its parent reaps it counts)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def rows(store: Store, node: str) -> int:
    return int(value(store.path, NODE_SAMPLES_SQL, node))


def test_sshd_killed_mid_stream_and_restarted(tmp_path: Path, sshd_factory: Any, remote_cache: Path) -> None:
    server = sshd_factory()
    config = ssh_config(tmp_path, server)
    store = Store(config.store_path)
    collector = Collector(config, store)
    collector.start()
    try:
        wait_for(lambda: rows(store, "n1") >= 6)
        server.kill()
        wait_for(lambda: collector.writer.states()["n1"].state != "up")
        before = rows(store, "n1")
        server.restart()
        wait_for(lambda: collector.writer.states()["n1"].state == "up")
        wait_for(lambda: rows(store, "n1") >= before + 6)
    finally:
        collector.stop()
        server.stop()
    kinds = [e.kind for e in store.events(0)]
    assert kinds[0] == "node_up"
    assert kinds[-1] == "node_up"
    assert {"node_degraded", "node_down"} & set(kinds)
    assert store.integrity_check() == "ok"


def test_stalled_agent_and_silent_listener(tmp_path: Path, sshd_factory: Any, remote_cache: Path) -> None:
    server = sshd_factory()
    listener = contextlib.ExitStack()
    port = listener.enter_context(silent_listener())
    silent = f"  mute: {{host: 127.0.0.1, port: {port}, sim: h100-sxm, gpus: 2}}\n"
    config = ssh_config(tmp_path, server, silent)
    store = Store(config.store_path)
    collector = Collector(config, store, stall_s=1.5)
    collector.start()
    stopped: list[psutil.Process] = []
    try:
        wait_for(lambda: rows(store, "n1") >= 4)
        mute = collector.writer.states()["mute"]
        assert mute.state == "down"
        wait_for(lambda: collector.writer.states()["mute"].error in ("banner", "timeout"))
        (agent,) = remote_agents(remote_cache)
        os.kill(agent.pid, signal.SIGSTOP)  # the node stops answering while its TCP connection stays up
        stopped.append(agent)
        wait_for(lambda: collector.writer.states()["n1"].state == "down")
        wait_for(lambda: collector.writer.states()["n1"].state == "up")  # a fresh agent on a fresh channel
        wait_for(lambda: _gone(agent))  # the stopped one was killed, not left stopped on the node for good
    finally:
        for agent in stopped:
            with contextlib.suppress(psutil.NoSuchProcess):
                agent.kill()
        collector.stop()
        listener.close()
        server.stop()
    kinds = [e.kind for e in store.events(0, node=["n1"])]
    assert kinds[0] == "node_up"
    assert kinds[-1] == "node_up"
    assert kinds.index("node_degraded") < kinds.index("node_down")  # (a loaded machine may add a flap or two)
