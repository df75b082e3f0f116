"""A rank's processes found wherever they went (`setsid`), and those that outlive SIGKILL reported and kept off GPUs.

Through the real agent zipapp on the simulated driver: a worker that leaves the rank's process group by starting a
session of its own is still signalled by `kill` and still counts in `group_running`; a process held in state D (a
hung FUSE mount, as a hung NFS server holds one) outlives its SIGKILL, is listed in `survivors`, and no other
launch starts on its GPUs until it is gone. Every process a test starts is killed after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rank_escapes import DAEMON, EscapedProcesses, hung_mount
from waiting import wait_for

from factoryctl.agent.ranks import is_process, start_ticks


@pytest.fixture
def escaped(tmp_path: Path) -> Iterator[EscapedProcesses]:
    """The workers the test found, and after it every rank's group and wrapper under its directory, SIGKILLed."""
    found = EscapedProcesses()
    yield found
    found.kill_all()
    for record_path in (tmp_path / "state").rglob("record.json"):
        record = json.loads(record_path.read_text())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record["pgid"], signal.SIGKILL)
        if is_process(record["wrapper_pid"], record["wrapper_start_ticks"]):
            os.kill(record["wrapper_pid"], signal.SIGKILL)


def launch(agent: Any, job: str, argv: list[str], gpus: list[int] | None = None) -> dict[str, Any]:
    """The reply to launching rank 0 of `job`."""
    return agent.request("launch", job=job, rank=0, argv=argv, env={}, gpus=gpus or [], cwd=None)


def start_daemon(agent: Any, tmp_path: Path, escaped: EscapedProcesses, command_s: str) -> int:
    """Launch rank 0 of `j1`, whose command leaves a worker in a session of its own and sleeps `command_s`; its pid."""
    assert launch(agent, "j1", [sys.executable, "-c", DAEMON, str(tmp_path / "worker"), command_s])["ok"]
    return escaped.pid_in(tmp_path / "worker")


def rank_of(agent: Any, job: str) -> dict[str, Any]:
    reply = agent.request("ranks", jobs=[job])
    assert reply["ok"], reply
    [entry] = reply["result"]["ranks"]
    return dict(entry)


def test_a_worker_in_a_session_of_its_own_is_killed_with_its_rank(
    start_agent: Any, tmp_path: Path, escaped: EscapedProcesses
) -> None:
    agent = start_agent()
    worker = start_daemon(agent, tmp_path, escaped, "300")
    assert os.getsid(worker) != os.getsid(rank_of(agent, "j1")["pid"])  # it left the rank's session and group
    assert agent.request("kill", job="j1", signal="TERM")["result"] == {"signalled": [0]}
    wait_for(lambda: start_ticks(worker) is None, what="the worker ending with its rank")
    wait_for(lambda: not rank_of(agent, "j1")["group_running"], what="the rank ended")


def test_a_worker_left_by_a_launcher_that_ended_holds_group_running_until_it_is_killed(
    start_agent: Any, tmp_path: Path, escaped: EscapedProcesses
) -> None:
    """The preemption grace lasts while `group_running`: a launcher's daemonised worker saving its checkpoint counts."""
    agent = start_agent()
    worker = start_daemon(agent, tmp_path, escaped, "0")
    wait_for(lambda: not rank_of(agent, "j1")["running"], what="the launcher ending")
    entry = rank_of(agent, "j1")
    assert (entry["exit_code"], entry["group_running"]) == (0, True)
    assert agent.request("kill", job="j1", signal="KILL")["result"] == {"signalled": [0]}
    wait_for(lambda: start_ticks(worker) is None, what="the worker killed")
    entry = rank_of(agent, "j1")
    assert (entry["group_running"], entry["survivors"]) == (False, [])
    assert agent.request("kill", job="j1", signal="KILL")["result"] == {"signalled": []}


def test_a_rank_whose_request_names_another_ranks_mark_is_not_killed_with_that_rank(
    start_agent: Any, tmp_path: Path, escaped: EscapedProcesses
) -> None:
    """The mark is the agent's own: one a request's `env` sets is replaced, so no rank claims another's processes."""
    agent = start_agent()
    worker = start_daemon(agent, tmp_path, escaped, "0")
    (record_path,) = (tmp_path / "state").rglob("j1/rank-0/record.json")
    mark = json.loads(record_path.read_text())["mark"]
    forged = agent.request(
        "launch", job="j2", rank=0, argv=["sleep", "300"], env={"FACTORYCTL_RANK_MARK": mark}, gpus=[], cwd=None
    )
    assert forged["ok"], forged
    assert agent.request("kill", job="j1", signal="KILL")["result"] == {"signalled": [0]}
    wait_for(lambda: not rank_of(agent, "j1")["group_running"], what="j1's processes gone")
    assert start_ticks(worker) is None
    assert start_ticks(forged["result"]["pid"]) is not None  # j2's command, not j1's: it runs on


def test_a_process_stuck_in_state_d_outlives_its_sigkill_is_reported_and_keeps_other_launches_off_its_gpus(
    start_agent: Any, tmp_path: Path, escaped: EscapedProcesses
) -> None:
    agent = start_agent()
    with hung_mount(tmp_path / "hung") as mount:
        stuck = launch(agent, "j1.1", ["stat", str(tmp_path / "hung")], gpus=[1, 2])
        assert stuck["ok"], stuck
        mount.hold()  # its stat reached the file system, which never answers
        assert agent.request("kill", job="j1.1", signal="KILL")["result"] == {"signalled": [0]}
        pid = stuck["result"]["pid"]
        stuck_in_d = [{"pid": pid, "state": "D"}]
        wait_for(lambda: rank_of(agent, "j1.1")["survivors"] == stuck_in_d, what="stat stuck in state D")
        entry = rank_of(agent, "j1.1")
        assert (entry["running"], entry["group_running"], entry["exit_code"]) == (True, True, None)
        assert isinstance(entry["killed_at"], float)
        refused = launch(agent, "j2.1", ["true"], gpus=[0, 2])
        assert refused["ok"] is False
        assert refused["error"]["kind"] == "agent"
        message = refused["error"]["message"]
        assert message.startswith("cannot start the rank: GPU 2 still runs processes of launch j1.1 rank 0, "), message
        assert f"after their SIGKILL: pid {pid} (state D); a process in state D " in message
        assert not list((tmp_path / "state").rglob("j2.1/rank-0"))  # nothing of it started (the mount is not read)
        assert launch(agent, "j3.1", ["true"], gpus=[0, 3])["ok"]  # the other GPUs are free
        assert launch(agent, "j1.1", ["true"], gpus=[1, 2])["result"]["already"] is True  # its own launch: itself
    wait_for(lambda: not rank_of(agent, "j1.1")["group_running"], what="the stuck process ending once its I/O failed")
    entry = rank_of(agent, "j1.1")
    assert (entry["exit_code"], entry["survivors"]) == (128 + signal.SIGKILL, [])
    assert launch(agent, "j2.1", ["true"], gpus=[0, 2])["ok"]
