"""`power set` stopped while a node's agent waits for its limits lock: the agent ends with the command, not after it.

The agent of a node whose change had not answered when the stop's wait ran out kept waiting for the node's limits
lock (held by another change) after factoryctl exited, re-parented to init, and set the limit seconds later: the
command had said `no power limit was changed`. A local agent leads its own session, so nothing ended it (an SSH
agent was already killed on the way out: transport/node_leftovers.py). Now every agent still open is killed before
the command exits, and the closing line says a node may have changed instead of "no power limit was changed".
Real agents on the simulated driver, over the local transport and over a real sshd; the test holds the node's lock as
another change would, and reads the process table (the node is this machine).
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli_process import CLI_ARGV
from reaping import reaped
from sshd_fixture import SshdServer, sshd_factory  # noqa: F401 - the fixture
from waiting import wait_for

from factoryctl.agent.limits_lock import LimitsLock
from factoryctl.sim.storage import limits_lock_path

#: The factory's name: it is in every agent's command line, so the test finds its own agents among the machine's.
NAME = "stops22lab"
#: The per-node line and the closing line of a stop that left the node unanswered.
UNANSWERED = "factoryctl: n1: interrupted before this node answered: its limits may have changed"
CLOSING = "no power limit change was confirmed; the limits of 1 node(s) may have changed."


def _agents() -> list[psutil.Process]:
    """This test's agents of node n1 (those of factory NAME), running or not yet reaped."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = process.info["cmdline"] or []
        if "--factory" in line and NAME in line and "--node" in line and "n1" in line:
            found.append(process)
    return found


def _waiting_on(lock: Path) -> psutil.Process | None:
    """The agent that has the node's lock file open (it polls for the lock), if one has."""
    for agent in _agents():
        try:
            if any(Path(f.path) == lock for f in agent.open_files()):
                return agent
        except psutil.Error:  # it ended meanwhile
            continue
    return None


def _ended(pid: int) -> bool:
    """Whether `pid` no longer runs (gone, or a zombie its parent has yet to reap)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def killed_at_the_end() -> Iterator[list[int]]:
    """Agents a failing test left running are killed on the way out (the fix under test does it)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not _ended(pid):
            psutil.Process(pid).kill()


def _stopped_while_waiting(factory: Path, lock: Path, stop: signal.Signals, pids: list[int]) -> tuple[int, Any, str]:
    """`power set n1 --watts 333` stopped by `stop` once its agent waits for the held `lock`.

    Ctrl-C is sent again once the command says it waits, which ends the wait at once; SIGTERM waits it out (5 s).
    (exit status, the JSON output, stderr), once the command exited; the agent's pid goes to `pids`.
    """
    argv = [*CLI_ARGV, "--config", str(factory), "power", "set", "n1", "--watts", "333", "-o", "json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        wait_for(lambda: _waiting_on(lock) is not None, timeout=60, what="the agent waiting for the limits lock")
        agent = _waiting_on(lock)
        assert agent is not None
        pids.append(agent.pid)
        proc.send_signal(stop)
        assert proc.stderr is not None
        said = []
        if stop == signal.SIGINT:
            while "waiting up to" not in (line := proc.stderr.readline()):
                assert line, "".join(said)
                said.append(line)
            said.append(line)
            proc.send_signal(signal.SIGINT)  # stops the wait for the node
        out, err = proc.communicate(timeout=60)
    return proc.returncode, json.loads(out), "".join(said) + err


def _limits(factory: Path) -> list[float]:
    argv = [*CLI_ARGV, "--config", str(factory), "gpus", "n1", "-o", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [gpu["power_limit_w"] for gpu in json.loads(out)["items"]]


def _check_stopped(factory: Path, lock: Path, stop: signal.Signals, pids: list[int]) -> None:
    """Stop a set waiting on the node's lock; its agent is ended before the exit, and the limit never changes."""
    before = _limits(factory)
    holder = LimitsLock(lock, private=False)
    with holder.held(timeout_s=5):
        status, doc, err = _stopped_while_waiting(factory, lock, stop, pids)
        [agent] = pids
        assert _ended(agent), f"the agent {agent} still runs after factoryctl exited"
    assert status == 128 + stop, err
    assert doc["items"] == []
    assert [(e["node"], e["error"]) for e in doc["errors"]] == [("n1", "interrupted")]
    assert UNANSWERED in err
    word = "interrupted" if stop == signal.SIGINT else "terminated"
    assert f"factoryctl: {word}; {CLOSING}" in err
    assert "no power limit was changed" not in err
    assert _limits(factory) == before  # the lock is free now: an agent left running would have set 333 W


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=lambda stop: stop.name)
def test_a_stopped_set_ends_its_local_agent_waiting_for_the_lock(
    tmp_path: Path, stop: signal.Signals, killed_at_the_end: list[int]
) -> None:
    state = tmp_path / "state"
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: {NAME}\nstate_dir: {state}\nnodes:\n  n1: {{transport: local, sim: {{profile: l40s, gpus: 1}}}}\n"
    )
    _limits(factory)  # the simulated node's state (and the lock's directory) exists from now on
    _check_stopped(factory, limits_lock_path(state / "sim", NAME, "n1"), stop, killed_at_the_end)


def test_a_stopped_set_ends_its_ssh_agent_waiting_for_the_lock(
    sshd_factory: Callable[..., SshdServer],  # noqa: F811 - the fixture, as a parameter
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    killed_at_the_end: list[int],
) -> None:
    cache = tmp_path / "remote-cache"
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(cache))  # the agent's cache "on the node", and its sim state
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    server = sshd_factory()
    nodes = "  n1: {host: 127.0.0.1, sim: l40s, gpus: 1}\n"
    factory = Path(server.write_factory(tmp_path / "factory.yaml", server.write_known_hosts(tmp_path / "kh"), nodes))
    factory.write_text(factory.read_text().replace("name: lab\n", f"name: {NAME}\n", 1))
    _limits(factory)
    _check_stopped(factory, limits_lock_path(cache / "sim", NAME, "n1"), signal.SIGINT, killed_at_the_end)


def test_a_set_whose_agent_never_answers_does_not_say_no_limit_was_changed(
    tmp_path: Path, killed_at_the_end: list[int]
) -> None:
    """The node's agent is stopped (SIGSTOP) once asked: the request times out, and its line says it may have changed.

    The closing line under it said `no power limit was changed`.
    """
    state = tmp_path / "state"
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: {NAME}\nstate_dir: {state}\nnodes:\n  n1: {{transport: local, sim: {{profile: l40s, gpus: 1}}}}\n"
    )
    _limits(factory)
    lock = limits_lock_path(state / "sim", NAME, "n1")
    argv = [*CLI_ARGV, "--config", str(factory), "power", "set", "n1", "--watts", "333", "--timeout", "4", "-o", "json"]
    with LimitsLock(lock, private=False).held(timeout_s=5):
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with reaped(proc):
            wait_for(lambda: _waiting_on(lock) is not None, timeout=60, what="the agent waiting for the limits lock")
            agent = _waiting_on(lock)
            assert agent is not None
            killed_at_the_end.append(agent.pid)
            agent.suspend()  # asked, and never answering (within the 3 s it may wait for the lock)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 124, err
    [error] = json.loads(out)["errors"]
    assert error["message"] == "the agent did not answer the change within 4 s: the limit may have changed"
    assert f"factoryctl: n1: {error['message']}" in err.splitlines()
    assert f"factoryctl: {CLOSING}" in err.splitlines()
    assert "no power limit was changed" not in err
    assert _ended(agent.pid)  # the session's close killed it
