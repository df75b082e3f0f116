"""Ctrl-C, SIGTERM or SIGHUP while an agent hangs (or nvidia-smi, on a node without Python) leaves nothing running.

Only `exec` interrupted what it ran on the nodes: the other commands abandoned their worker threads, and sshd
signals nothing to a command without a terminal when its connection closes, so `gpus`, `nodes check` and `power set`
stopped while a node's `python:` hung as the agent each left it (and what it started) running on the node, and a
hung nvidia-smi too. On its way out the CLI now kills every agent session still starting or open and every internal
command still running (transport/node_leftovers.py), by its launch pid's or known process group. The CLI runs in
its own process (the signals are real) against a real sshd; the checks read the process table (the node is this
machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from cli_process import CLI_ARGV
from sshd_fixture import SshdServer
from test_agent_hang_leaves_nothing import assert_gone, hanging_python, leftovers, started  # noqa: F401
from waiting import wait_for

from factoryctl.transport.node_leftovers import NodeLeftovers

#: What each stop exits with and says.
STOPS = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated"), signal.SIGHUP: (129, "hung up")}

COMMANDS = {
    "gpus": ["gpus", "n1"],
    "nodes-check": ["nodes", "check", "n1"],
    "power-set": ["power", "set", "n1", "--watts", "500"],
}


def stopped_cli(
    config: str,
    command: list[str],
    stop: signal.Signals,
    hangs: Callable[[], object],
    before_stop: Callable[[], object] = lambda: None,
) -> tuple[int, str, float]:
    """Run `factoryctl COMMAND --timeout 30`, send `stop` once `hangs()` is true (`before_stop()` first).

    (exit status, stderr, seconds from the stop to the exit).
    """
    proc = subprocess.Popen(
        [*CLI_ARGV, "--config", config, *command, "--timeout", "30"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(hangs, what="the node's work hanging")
        time.sleep(0.5)  # well into the wait for it
        before_stop()
        sent = time.monotonic()
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return proc.returncode, err.decode(errors="replace"), took


@pytest.mark.parametrize("stop", list(STOPS), ids=lambda stop: stop.name)
@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=list(COMMANDS))
def test_a_stopped_command_leaves_no_hanging_agent_on_the_node(
    sshd_factory: Callable[..., SshdServer],
    tmp_path: Path,
    command: list[str],
    stop: signal.Signals,
    leftovers: list[int],  # noqa: F811 - the fixture, as a parameter
) -> None:
    server = sshd_factory()
    script, pids = hanging_python(tmp_path)
    nodes = f"  n1: {{host: 127.0.0.1, python: {script}}}\n"
    config = server.write_factory(tmp_path / "factory.yaml", server.write_known_hosts(tmp_path / "kh"), nodes)
    begun = time.monotonic()
    status, err, _ = stopped_cli(config, command, stop, pids.exists)
    agent, child = started(pids, leftovers)
    code, words = STOPS[stop]
    assert status == code, err
    assert f"factoryctl: {words}" in err
    assert time.monotonic() - begun < 25  # never the 30 s of --timeout
    assert_gone(agent, child)


def test_a_stopped_command_leaves_no_hanging_nvidia_smi_on_a_node_without_python(
    sshd_factory: Callable[..., SshdServer],
    tmp_path: Path,
    leftovers: list[int],  # noqa: F811 - the fixture, as a parameter
) -> None:
    server = sshd_factory()
    pid_file = tmp_path / "smi.pid"
    smi = server.bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\nexec sleep 600\n")
    smi.chmod(0o755)
    nodes = "  n1: {host: 127.0.0.1, python: /nonexistent/python3}\n"
    config = server.write_factory(tmp_path / "factory.yaml", server.write_known_hosts(tmp_path / "kh"), nodes)
    status, err, _ = stopped_cli(config, ["gpus", "n1"], signal.SIGINT, pid_file.exists)
    hung = int(pid_file.read_text())
    leftovers.append(hung)
    assert status == 130, err
    assert "factoryctl: interrupted" in err
    assert_gone(hung)


def test_a_silent_connection_does_not_hold_up_the_exit(
    sshd_factory: Callable[..., SshdServer],
    tmp_path: Path,
    leftovers: list[int],  # noqa: F811 - the fixture, as a parameter
) -> None:
    """The node's sshd stopped (SIGSTOP) once the agent hangs: the kill cannot cross, and the exit waits ~2 s at most."""
    server = sshd_factory()
    assert server.process is not None
    script, pids = hanging_python(tmp_path)
    nodes = f"  n1: {{host: 127.0.0.1, python: {script}}}\n"
    config = server.write_factory(tmp_path / "factory.yaml", server.write_known_hosts(tmp_path / "kh"), nodes)
    master = psutil.Process(server.process.pid)
    frozen: list[psutil.Process] = []

    def freeze_sshd() -> None:
        for process in [master, *master.children(recursive=True)]:
            if process.name().startswith("sshd"):
                process.send_signal(signal.SIGSTOP)
                frozen.append(process)

    try:
        status, err, took = stopped_cli(config, ["gpus", "n1"], signal.SIGINT, pids.exists, freeze_sshd)
    finally:
        for process in frozen:
            os.kill(process.pid, signal.SIGCONT)
    started(pids, leftovers)  # killed by the fixture: nothing could reach them
    assert status == 130, err
    assert "factoryctl: interrupted" in err
    assert took < 6


def test_ending_leftovers_waits_for_none_past_its_bound() -> None:
    registry = NodeLeftovers()
    ended: list[str] = []
    registry.add(threading.Event().wait)  # a kill whose connection never answers
    registry.add(lambda: ended.append("quick"))
    gone = registry.add(lambda: ended.append("closed meanwhile"))
    registry.discard(gone)
    begun = time.monotonic()
    registry.end_all(within=0.5)
    assert time.monotonic() - begun < 1.5
    assert ended == ["quick"]
    registry.end_all(within=0.5)  # each is ended once
    assert ended == ["quick"]
