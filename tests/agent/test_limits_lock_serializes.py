"""Concurrent agents on one node change its power limits one at a time, so every audited before/after is true.

Each `power set` (a cron job, an operator, the dashboard's cap) starts its own agent; their read-set-read of a GPU's
limit used to interleave, so two changes reported the same `before_w`, or an `enforced_w` another agent had set.
These tests run real agent processes on one simulated node and check that the answers form one chain.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from factoryctl.agent.limits_lock import (
    LimitsLock,
    LimitsLockError,
    LimitsLockTimeout,
    home_lock_directory,
    real_node_lock_path,
)
from factoryctl.sim.storage import limits_lock_path

AGENTS = 8
SETS_PER_AGENT = 8


def _chain_breaks(first_w: float, answers: list[dict[str, Any]], wanted: list[float]) -> list[str]:
    """What keeps `answers` ({before_w, enforced_w}) from being one chain of changes starting at `first_w`.

    Each change's before is the previous change's after, in the order they held the node: so from `first_w` there
    is always exactly one answer whose `before_w` is the current limit, and every value set is enforced once.
    """
    problems: list[str] = []
    by_before: dict[float, list[dict[str, Any]]] = {}
    for answer in answers:
        by_before.setdefault(answer["before_w"], []).append(answer)
    shared = {before: len(group) for before, group in by_before.items() if len(group) > 1}
    if shared:
        problems.append(f"several changes report the same before_w: {shared}")
    afters = sorted(a["enforced_w"] for a in answers)
    if afters != sorted(wanted):
        problems.append(f"the afters are not the values set: {sorted(set(afters) - set(wanted))} were never asked")
    current, followed = first_w, 0
    while by_before.get(current) and not problems:
        current = by_before[current].pop()["enforced_w"]
        followed += 1
    if not problems and followed != len(answers):
        problems.append(f"the chain from {first_w:g} W stops after {followed} of {len(answers)} changes")
    return problems


def _race(start_agent: Any, agents: int, sets_per_agent: int) -> tuple[float, list[dict[str, Any]], list[float]]:
    """`agents` agents of one simulated node each set GPU 0 `sets_per_agent` times, all requests sent at once."""
    running = [start_agent(node="shared") for _ in range(agents)]
    first = running[0].request("set_power_limit", gpus=[0], watts=700)
    assert first["ok"], first
    wanted = [200.0 + 5 * k for k in range(agents * sets_per_agent)]  # every value distinct: a chain can be followed
    pending: list[tuple[Any, int]] = []
    for n in range(sets_per_agent):  # interleaved, so every agent has work queued from the start
        for a, agent in enumerate(running):
            request_id = 10_000 + n * agents + a
            watts = wanted[n * agents + a]
            agent.send_line(f'{{"id": {request_id}, "op": "set_power_limit", "gpus": [0], "watts": {watts}}}')
            pending.append((agent, request_id))
    replies = _replies(running, sets_per_agent)
    answers: list[dict[str, Any]] = []
    for agent, request_id in pending:
        reply = replies[agent].pop(0)
        assert reply.get("id") == request_id, reply
        assert reply["ok"], reply
        answers.extend(reply["result"]["gpus"])
    return 700.0, answers, wanted


def _replies(agents: list[Any], count: int, timeout_s: float = 120.0) -> dict[Any, list[dict[str, Any]]]:
    """The next `count` lines of each agent, read by a thread each (several lines come at once, past `select`)."""
    replies: dict[Any, list[dict[str, Any]]] = {agent: [] for agent in agents}

    def read(agent: Any) -> None:
        for _ in range(count):
            line = agent.proc.stdout.readline()
            if not line:
                return
            replies[agent].append(json.loads(line))

    threads = [threading.Thread(target=read, args=(agent,), daemon=True) for agent in agents]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert all(len(got) == count for got in replies.values()), "an agent did not answer every request in time"
    return replies


def test_concurrent_agents_setting_one_gpu_report_one_chain_of_changes(start_agent: Any) -> None:
    first_w, answers, wanted = _race(start_agent, AGENTS, SETS_PER_AGENT)
    assert _chain_breaks(first_w, answers, wanted) == []


def test_a_reset_waits_for_the_lock_and_a_set_gives_up_after_its_wait(start_agent: Any) -> None:
    setter, resetter = start_agent(node="shared"), start_agent(node="shared")
    assert setter.request("set_power_limit", gpus=[0], watts=300)["ok"]
    lock = LimitsLock(limits_lock_path(_state_dir(setter), "default", "shared"), private=False)
    with lock.held(timeout_s=5):
        resetter.send_line('{"id": 1, "op": "reset_power_limit", "gpus": [0]}')
        time.sleep(0.3)  # the reset is waiting for the lock, not done
        assert not _readable(resetter)
        setter.send_line('{"id": 2, "op": "set_power_limit", "gpus": [0], "watts": 300, "lock_timeout_s": 0.2}')
        refused = setter.read()
    reset = resetter.read()
    assert reset["ok"], reset
    assert reset["result"]["gpus"] == [{"index": 0, "before_w": 300.0, "enforced_w": 700.0, "clamped": False}]
    assert refused["ok"] is False, refused
    assert refused["error"]["kind"] == "driver"
    assert refused["error"]["message"].startswith("another change of its power limits was still running after 0.2 s")
    assert refused["error"]["message"].endswith("; nothing was changed: try again once it has ended.")
    assert "result" not in refused


def test_a_lock_held_too_long_refuses_within_the_wait_and_changes_nothing(start_agent: Any) -> None:
    agent = start_agent(node="shared")
    path = limits_lock_path(_state_dir(agent), "default", "shared")
    before = agent.request("sample")["result"]["gpus"][0]["power_limit_w"]
    with LimitsLock(path, private=False).held(timeout_s=5):
        started = time.monotonic()
        refused = agent.request("set_power_limit", gpus=[0], watts=250, lock_timeout_s=0.5)
        waited = time.monotonic() - started
    assert refused["ok"] is False, refused
    assert refused["error"]["kind"] == "driver"
    assert "was still running after 0.5 s" in refused["error"]["message"]
    assert 0.4 <= waited < 4.5  # its own 0.5 s, not the default 5 s (the rest is a loaded machine's slack)
    assert agent.request("sample")["result"]["gpus"][0]["power_limit_w"] == before
    assert agent.request("set_power_limit", gpus=[0], watts=250)["ok"]  # released: the next one goes through


def test_a_bad_lock_timeout_is_a_usage_error(start_agent: Any) -> None:
    agent = start_agent(node="shared")
    for bad in (-1, "soon", True, 1e9):
        reply = agent.request("set_power_limit", gpus=[0], watts=250, lock_timeout_s=bad)
        assert reply["ok"] is False, reply
        assert reply["error"]["kind"] == "usage"


def test_each_simulated_node_has_its_own_lock(tmp_path: Path) -> None:
    one, other = limits_lock_path(tmp_path, "f", "gpu01"), limits_lock_path(tmp_path, "f", "gpu02")
    assert one != other
    assert one.parent == tmp_path / "f"
    one.parent.mkdir()
    with LimitsLock(one, private=False).held(timeout_s=1), LimitsLock(other, private=False).held(timeout_s=0.2):
        pass  # the second node's lock is free while the first is held


def test_the_lock_file_is_never_opened_through_a_symbolic_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "gpu-limits.lock"
    link.symlink_to(target)
    with pytest.raises(LimitsLockError, match="symbolic link"), LimitsLock(link, private=False).held(timeout_s=1):
        pass
    assert not target.exists()


def test_a_shared_lock_file_must_be_private_to_this_user(tmp_path: Path) -> None:
    path = tmp_path / "gpu-limits.lock"
    with LimitsLock(path, private=True).held(timeout_s=1):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    with LimitsLock(path, private=True).held(timeout_s=1):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # made private again: nobody else may hold it


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_private_lock_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gpu-limits.lock"
    path.touch(mode=0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(LimitsLockError, match="belongs to uid 65534"), LimitsLock(path, private=True).held(1):
        pass


def test_a_private_lock_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "factoryctl-0"
    directory.mkdir()
    directory.chmod(0o777)
    lock = LimitsLock(directory / "gpu-limits.lock", private=True)
    with pytest.raises(LimitsLockError, match="writable by others"), lock.held(1):
        pass
    assert not (directory / "gpu-limits.lock").exists()


def test_a_real_node_locks_in_a_fixed_place_of_this_user() -> None:
    path = real_node_lock_path()
    in_home = home_lock_directory(os.geteuid()) / "gpu-limits.lock"
    assert path in (Path("/run/factoryctl-0/gpu-limits.lock"), in_home) if os.geteuid() == 0 else path == in_home


def test_the_lock_is_released_when_its_holder_dies(tmp_path: Path) -> None:
    """While another process holds the lock it is refused; once that process is killed, it is ours at once."""
    path = tmp_path / "gpu-limits.lock"
    holding = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: hold the lock, say so, and wait to be killed (never return)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(holding[1], b"held")
            time.sleep(600)
        finally:
            os._exit(1)
    try:
        os.close(holding[1])
        assert os.read(holding[0], 4) == b"held"
        with pytest.raises(LimitsLockTimeout), LimitsLock(path, private=False).held(timeout_s=0.2):
            pass
    finally:
        os.close(holding[0])
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    with LimitsLock(path, private=False).held(timeout_s=0.5):
        pass


def _state_dir(agent: Any) -> Path:
    argv = agent.proc.args
    return Path(argv[argv.index("--state-dir") + 1])


def _readable(agent: Any) -> bool:
    import select

    ready, _, _ = select.select([agent.proc.stdout], [], [], 0)
    return bool(ready)


def test_every_agent_of_a_node_finds_the_same_lock_from_its_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factoryctl.agent.main import _limits_lock, build_parser

    opened: list[Path] = []

    def record(self: LimitsLock, path: Path) -> int:
        opened.append(path)
        raise LimitsLockError("not opened in a test")  # the node's real lock is left alone

    monkeypatch.setattr(LimitsLock, "_open", record)
    real = _limits_lock(build_parser().parse_args(["--node", "gpu01"]))
    with pytest.raises(LimitsLockError), real.held(timeout_s=0):
        pass
    assert (opened, real.private) == ([real_node_lock_path()], True)
    argv = ["--node", "gpu01", "--factory", "f", "--sim", "h100-sxm", "--state-dir", str(tmp_path)]
    simulated = _limits_lock(build_parser().parse_args(argv))
    assert (simulated.path, simulated.private) == (limits_lock_path(tmp_path, "f", "gpu01"), False)
