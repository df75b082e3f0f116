"""An agent that hangs, before its hello or after it, leaves nothing of its own running on the node.

Its kill used the pid of the hello, and the `signal` request that OpenSSH refuses for root (these tests run sshd as
root, as GPU nodes are usually reached): a `python:` that hung before its hello was left running after every
command (`nodes check`, `gpus`, `power set` ended with exit 124 and one more orphan, parent pid 1, on the node),
and what an agent that did say hello had started in its process group outlived it. The agent's command line now
names its login shell's pid, which becomes the agent's and leads its process group and session, before the
interpreter runs (`ssh_node._launch_line`); the kill reaches that group and session. The checks read the process
table (the node is this machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from process_groups import running_in_group
from sshd_fixture import SshdServer
from stand_in_agent import stand_in_zipapp
from test_exec_timeout_kill import alive
from waiting import wait_for

from factoryctl.errors import NodeError
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_node import SshTransport, _ChannelLines, _launch_line

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)

#: A node's `python:` that answers the `-c` version probes, but as the agent starts a child in its process group,
#: writes `PID CHILD` to `{pids}` (filled in by `hanging_python`), then hangs without a hello.
_HANGS_BEFORE_HELLO = """#!/bin/sh
if [ "$1" = "-c" ]; then exec python3 "$@"; fi
sleep 600 &
echo "$$ $!" > {pids}.tmp && mv {pids}.tmp {pids}
exec sleep 600
"""

#: A stand-in agent that starts a child in its process group, writes `PID CHILD` to PIDS_FILE, says hello, then
#: reads nothing and never exits.
_HANGS_AFTER_HELLO = """
import json, os, subprocess, sys, time
child = subprocess.Popen(["sleep", "600"])
with open(PIDS_FILE + ".tmp", "w") as out:
    out.write(f"{os.getpid()} {child.pid}")
os.rename(PIDS_FILE + ".tmp", PIDS_FILE)
sys.stdout.write(json.dumps({"type": "hello", "agent_version": "0.0.0", "protocol": 1, "backend": "sim",
                             "node": "n1", "pid": os.getpid(), "gpus": 0}) + "\\n")
sys.stdout.flush()
time.sleep(600)
"""


def hanging_python(directory: Path) -> tuple[Path, Path]:
    """(the hanging `python:` script, the file it writes its pids to)."""
    pids = directory / "agent.pids"
    script = directory / "hanging-python"
    script.write_text(_HANGS_BEFORE_HELLO.format(pids=pids))
    script.chmod(0o755)
    return script, pids


def started(pids: Path, leftovers: list[int]) -> tuple[int, int]:
    """(the agent's pid, its child's), once the agent wrote them; both go to `leftovers`, killed at the test's end."""
    wait_for(pids.exists, what="the agent's pids written")
    agent, child = (int(word) for word in pids.read_text().split())
    leftovers += [agent, child]
    return agent, child


def assert_gone(*processes: int) -> None:
    """None of `processes` runs 5 s from now (the kill is bounded by 2 s, after up to 2 s waiting for an exit)."""
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in processes):
        left = [pid for pid in processes if alive(pid)]
        assert time.monotonic() < deadline, f"still running on the node: {left}"
        time.sleep(0.05)


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Whatever a failing test left running is killed on the way out (the fix under test does it)."""
    processes: list[int] = []
    yield processes
    for pid in processes:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_an_agent_that_hangs_before_its_hello_is_killed_with_what_it_started(
    ssh_node: Callable[..., Any], tmp_path: Path, leftovers: list[int]
) -> None:
    script, pids = hanging_python(tmp_path)
    transport = SshTransport.open(ssh_node("n1", python=str(script)), "lab", OPTIONS)
    try:
        with pytest.raises(NodeError) as failed:
            transport.start_agent(2, zipapp=stand_in_zipapp(tmp_path, "pass\n"))
        assert failed.value.kind == "timeout"
        assert failed.value.message == "the agent did not say hello within 2 s."
        assert_gone(*started(pids, leftovers))
    finally:
        transport.close()


@pytest.mark.parametrize(
    "command",
    [["nodes", "check", "n1"], ["gpus", "n1"], ["power", "set", "n1", "--watts", "500"]],
    ids=["nodes-check", "gpus", "power-set"],
)
def test_no_command_leaves_an_agent_that_never_said_hello_on_the_node(
    cli: Any, sshd_factory: Callable[..., SshdServer], tmp_path: Path, command: list[str], leftovers: list[int]
) -> None:
    server = sshd_factory()
    script, pids = hanging_python(tmp_path)
    nodes = f"  n1: {{host: 127.0.0.1, python: {script}}}\n"
    config = server.write_factory(tmp_path / "factory.yaml", server.write_known_hosts(tmp_path / "kh"), nodes)
    r = cli("--config", config, *command, "--timeout", "2")
    assert r.exit_code == 124, r.stderr
    assert "the agent did not say hello within 2 s" in r.stderr
    assert_gone(*started(pids, leftovers))


def test_what_an_agent_that_said_hello_started_ends_with_it(
    ssh_node: Callable[..., Any], tmp_path: Path, leftovers: list[int]
) -> None:
    pids = tmp_path / "agent.pids"
    transport = SshTransport.open(ssh_node("n1"), "lab", OPTIONS)
    try:
        source = _HANGS_AFTER_HELLO.replace("PIDS_FILE", repr(str(pids)))
        session = transport.start_agent(30, zipapp=stand_in_zipapp(tmp_path, source))
        agent, child = started(pids, leftovers)
        assert session.hello_info["pid"] == agent  # the login shell's pid became the agent's ...
        assert sorted(running_in_group(agent)) == sorted([agent, child])  # ... and leads its child's group
        session.close(timeout=1)  # `shutdown` goes unanswered: killed
        assert_gone(agent, child)
    finally:
        transport.close()


def test_the_marker_line_names_the_launch_pid_after_what_the_login_shell_printed() -> None:
    chunks = iter([b"Welcome\nno newline factoryctl-agent-ab:4242\r\n", b'{"type": "hello"}\n', b""])
    lines = _ChannelLines(lambda _: next(chunks), after=b"factoryctl-agent-ab")
    assert list(lines) == [b'{"type": "hello"}\n']
    assert lines.launched == 4242


def test_a_marker_line_without_a_pid_still_starts_the_agents_output() -> None:
    chunks = iter([b"factoryctl-agent-ab\n", b"hello\n", b""])
    lines = _ChannelLines(lambda _: next(chunks), after=b"factoryctl-agent-ab")
    assert list(lines) == [b"hello\n"]
    assert lines.launched is None


def test_the_launch_line_prints_the_marker_and_the_login_shells_pid_first() -> None:
    assert _launch_line("factoryctl-agent-ab", "exec x") == """sh -c 'echo "$0:$PPID"' factoryctl-agent-ab; exec x"""


@pytest.mark.parametrize("shell", ["sh", "bash", "zsh", "fish"])
def test_the_pid_printed_is_the_one_the_started_command_runs_as_in_every_login_shell(shell: str) -> None:
    """sshd runs `$SHELL -c LINE` as a session leader; the command `exec`ed at the end must be that very process."""
    assert shutil.which(shell) is not None, f"no {shell} here (scripts/test installs it)"
    line = _launch_line("factoryctl-agent-ab", "exec sh -c 'echo $$'")
    done = subprocess.run([shell, "-c", line], capture_output=True, text=True, timeout=30, start_new_session=True)
    marker, pid = done.stdout.split()
    assert marker == f"factoryctl-agent-ab:{pid}"
