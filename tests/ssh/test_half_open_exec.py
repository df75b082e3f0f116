"""A command on a link that went down (packets vanish, nothing is closed) ends as a lost connection, not at --timeout.

Only agent sessions were watched for liveness: `exec -t 300` of a 10 s command whose node's link went half-open
waited all 300 s, then said the command "did not finish within 300 s and may still be running" (exit 124), with the
hint to raise --timeout (network review, session 23). The liveness watch (ssh_watch.py) now runs from a connection's
first command: a check left unanswered closes the connection, and exec says `connection lost while the command ran`,
the link named as having stopped answering (exit 4). A shorter outage is ridden out. A real sshd behind a relay that
goes silent, keeping both sockets open (a link that went down); paramiko is not mocked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from relays import Relay, SilencingRelay, relayed_node, silencing_node
from sshd_fixture import PATIENT, SshdServer, sshd  # noqa: F401 - the session's sshd fixture
from waiting import wait_for

from factoryctl.errors import ExitCode
from factoryctl.transport.base import CommandCut
from factoryctl.transport.hints import SILENT_LINK, SILENT_LINK_HINT
from factoryctl.transport.ssh_node import SshTransport

#: Far beyond any test's own wait: a command that ends is not ended by this timeout.
HUGE_TIMEOUT_S = 600
#: How long a test waits for what should end in seconds (its own timeout, never the behaviour's measure).
TEST_WAIT_S = 120


class PausingRelay(Relay):
    """Holds every byte while `flowing` is clear and passes it on once set: an outage TCP rides out, delivered late."""

    def __init__(self, upstream: int) -> None:
        super().__init__(upstream)
        self.flowing = threading.Event()
        self.flowing.set()

    def forward(self, data: bytes, from_client: bool) -> bool:
        self.flowing.wait(TEST_WAIT_S)
        return True


@pytest.fixture
def silencing(sshd: SshdServer, tmp_path: Path) -> Iterator[tuple[SilencingRelay, Any]]:  # noqa: F811
    with silencing_node(sshd, tmp_path) as relayed:
        yield relayed


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A node command that prints `start` and sleeps 600 s, and the file its pid appears in (it is killed after)."""
    pid = tmp_path / "node-command.pid"
    yield f"echo $$ > {pid}.tmp && mv {pid}.tmp {pid}; echo start; exec sleep 600", pid
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pid.read_text()), signal.SIGKILL)  # left on the node by the dead link, as a real one would be


#: Checked every second, a check unanswered for 2 s (ssh.connect_timeout_s, above the keepalive) is a dead link.
QUICK = replace(PATIENT, keepalive_s=1, connect_timeout_s=2, channel_timeout_s=HUGE_TIMEOUT_S)


def run_in_thread(transport: SshTransport, argv: list[str], seen: threading.Event) -> dict[str, Any]:
    """Run `argv` on a thread (`seen` set at its first output); the dict gets its `result` or `error` when it ends."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = transport.run(argv, HUGE_TIMEOUT_S, on_output=lambda *_: seen.set())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    outcome["thread"] = thread
    thread.start()
    return outcome


def test_a_command_on_a_link_gone_silent_is_a_lost_connection_not_a_timeout(silencing, sleeper):
    relay, node = silencing
    transport = SshTransport.open(node, "lab", QUICK)
    started = threading.Event()
    try:
        outcome = run_in_thread(transport, ["sh", "-c", sleeper[0]], started)
        assert started.wait(TEST_WAIT_S)
        relay.silent.set()  # the link goes down under the running command
        outcome["thread"].join(TEST_WAIT_S)
        assert not outcome["thread"].is_alive(), "exec still waited on a dead link (its --timeout is 600 s)"
    finally:
        transport.close()
    error = outcome.get("error")
    assert isinstance(error, CommandCut), outcome  # a NodeError carrying the output that came
    assert (error.kind, error.exit_code) == ("refused", ExitCode.CONNECTION)
    assert error.message == f"connection lost while the command ran: {SILENT_LINK} (no answer within 2 s)"
    assert error.hint == SILENT_LINK_HINT
    assert error.stdout == b"start\n"  # what came before the link went down is kept


def test_a_short_outage_under_a_command_is_ridden_out(sshd: SshdServer, tmp_path: Path):  # noqa: F811
    """Held for longer than a check's interval but less than its bound, the link recovers and the command ends well."""
    relay = PausingRelay(sshd.port)
    options = replace(PATIENT, keepalive_s=1, connect_timeout_s=30, channel_timeout_s=HUGE_TIMEOUT_S)
    with relayed_node(relay, sshd, tmp_path, "n1") as node:
        transport = SshTransport.open(node, "lab", options)
        started = threading.Event()
        try:
            outcome = run_in_thread(transport, ["sh", "-c", "echo start; sleep 2; echo done"], started)
            assert started.wait(TEST_WAIT_S)
            relay.flowing.clear()
            watched = transport.connection._watched
            wait_for(lambda: watched is not None and watched.unanswered_for() >= 1.5, TEST_WAIT_S, "a check held")
            relay.flowing.set()
            outcome["thread"].join(TEST_WAIT_S)
            assert not outcome["thread"].is_alive()
        finally:
            relay.flowing.set()
            transport.close()
    assert "error" not in outcome, outcome
    assert (outcome["result"].exit_code, outcome["result"].stdout) == (0, b"start\ndone\n")


def test_exec_says_a_link_gone_silent_as_a_lost_connection_exit_4(
    silencing,
    sleeper,
    tmp_path: Path,
    sshd: SshdServer,  # noqa: F811 - the session's sshd fixture
):
    """The CLI as a user runs it, `-t 600`, the link down at once: found by factory.yaml's `ssh.keepalive_s`.

    A check every second, unanswered for 2 s (`ssh.connect_timeout_s`), not the defaults' 15 s and 15 s, which made
    this test wait 30 s: that the defaults are 15 s and the bound derives from them is checked without waiting
    (test_keepalive_setting_s24.py), and that a silent link's bound follows the options, here.
    """
    relay, node = silencing
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nssh: {{user: {sshd.user}, identity_file: {sshd.user_key}, known_hosts: {node.known_hosts}, "
        f"connect_timeout_s: 2, keepalive_s: 1}}\nnodes:\n  n1: {{host: 127.0.0.1, port: {node.port}}}\n"
    )
    env = dict(os.environ, FACTORYCTL_CONFIG=str(config), PYTHONDONTWRITEBYTECODE="1")
    argv = [sys.executable, "-m", "factoryctl", "exec", "n1", "-t", str(HUGE_TIMEOUT_S), "--", "sh", "-c"]
    command, started = sleeper  # exec's own output is written once it ends: the command's pid file says it runs
    argv.append(command)
    pipes: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with subprocess.Popen(argv, env=env, text=True, **pipes) as proc:
        try:
            wait_for(started.exists, TEST_WAIT_S, "the command's start")
            relay.silent.set()
            out, err = proc.communicate(timeout=TEST_WAIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == ExitCode.CONNECTION, err
    assert f"n1: connection lost while the command ran: {SILENT_LINK}" in err
    assert "(no answer within 2 s)" in err  # the bound of ssh.keepalive_s 1 and connect_timeout_s 2, not 15 s
    assert "did not finish within" not in err
    assert "ping it" in err  # the silent link's hint (SILENT_LINK_HINT), not sshd's or --timeout's
    assert "start" in out  # what came before the link went down is shown
