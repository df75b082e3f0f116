"""An agent waiting for its node's limits lock gives the change up when its client goes away.

A `power apply` killed (SIGKILL, a cron timeout) while its agent waits for another change's limits lock left that
agent running: once the lock was free it set the limits, and nobody recorded the change (the audit entry stayed the
request, later `abandoned`). The agent now watches whether anybody still reads its answers while it waits (its
stdout's reader closed, as when its client dies or its SSH session ends) and changes nothing. A real agent on the
simulated driver; the waits are on the agent's open files, never on time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from waiting import wait_for

from factoryctl.agent.limits_lock import LimitsLock
from factoryctl.sim.storage import limits_lock_path


def _holds_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (the agent opens the lock file before it waits on it)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fds / fd) == str(path) for fd in os.listdir(fds))
    except FileNotFoundError:  # it ended, or a descriptor closed while read
        return False


def test_a_change_waiting_for_the_lock_is_given_up_when_its_client_is_gone(start_agent: Any) -> None:
    agent = start_agent(node="shared")
    argv = agent.proc.args
    path = limits_lock_path(Path(argv[argv.index("--state-dir") + 1]), "default", "shared")
    before = agent.request("sample")["result"]["gpus"][0]["power_limit_w"]
    assert before != 250
    with LimitsLock(path, private=False).held(timeout_s=5):
        agent.send_line('{"id": 7, "op": "set_power_limit", "gpus": [0], "watts": 250, "lock_timeout_s": 60}')
        wait_for(lambda: _holds_open(agent.proc.pid, path), what="the agent waiting for the limits lock")
        agent.proc.stdout.close()  # the client is gone: nobody reads the agent's answers (its stdin stays open)
        wait_for(lambda: not _holds_open(agent.proc.pid, path), what="the agent giving its wait up")
    # the lock is free now: an agent still waiting would take it and set 250 W
    agent.proc.stdin.close()
    assert agent.proc.wait(timeout=30) == 0
    fresh = start_agent(node="shared", state_dir=Path(argv[argv.index("--state-dir") + 1]))
    assert fresh.request("sample")["result"]["gpus"][0]["power_limit_w"] == before
