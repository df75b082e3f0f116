"""The controller's stop cuts its power loop's run short: a node hung mid-change is not waited out.

A run whose node did not answer its change (here: its agent waits for the node's limits lock, which another change
holds) kept the controller's stop waiting for the node's timeout, up to the 20 s the stop gives the loops. Now a stop
(`signal_stop`, as `controller run` does on SIGTERM) cancels the run: the node is left unanswered (its limits may
have changed), its request stays whole in the audit log, and its agent is ended, so it can neither set a limit after
the controller is gone nor keep the lock. Real agents on the simulated driver (local transport); the test holds the
simulated node's lock as another change would, and reads the process table (the node is this machine).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_controller_power_loop import HOUR, _fleet
from waiting import wait_for

from factoryctl.agent.limits_lock import LimitsLock
from factoryctl.config import load_config
from factoryctl.power.limits import UNANSWERED
from factoryctl.power.policy_loop import PowerLoop
from factoryctl.sim.storage import limits_lock_path

#: The factory's name (test_controller_power_loop's): with the state dir, in every agent's command line.
NAME = "pl"


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    """h01, two H100s at 700 W, and a tiers policy that plans 560 W (the price is 150 since an hour ago)."""
    return _fleet(tmp_path, int(time.time()) // HOUR * HOUR - HOUR, "5m")


def _agents(state: Path) -> list[psutil.Process]:
    """This test's agents (those of its state dir) still running, zombies left out."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        line = process.info["cmdline"] or []
        ours = "--factory" in line and any(arg.startswith(str(state)) for arg in line)
        if ours and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def _waiting_on(state: Path, lock: Path) -> bool:
    """Whether one of this test's agents has the node's lock file open (it polls for the lock)."""
    for agent in _agents(state):
        try:
            if any(Path(f.path) == lock for f in agent.open_files()):
                return True
        except psutil.Error:  # it ended meanwhile
            continue
    return False


@pytest.fixture
def state(factory: Path) -> Iterator[Path]:
    """The factory's state dir; agents a failing test left running are killed on the way out (the fix ends them)."""
    yield factory.parent / "state"
    for agent in _agents(factory.parent / "state"):
        agent.kill()


def test_a_stop_cuts_the_run_short_and_ends_the_agent_of_a_node_hung_mid_change(
    cli: Any, factory: Path, state: Path
) -> None:
    assert cli("--config", str(factory), "gpus", "h01").exit_code == 0  # the simulated node's state made
    lock_path = limits_lock_path(state / "sim", NAME, "h01")
    loop = PowerLoop(load_config(factory), 300.0)
    with LimitsLock(lock_path, private=False).held(timeout_s=5):
        loop.start()
        wait_for(lambda: _waiting_on(state, lock_path), timeout=60, what="the agent waiting for h01's limits lock")
        loop.signal_stop()
        loop.join(60.0)
        assert not loop.running
        run = loop.last
        assert run is not None
        assert run.failure is None
        assert [(error.node, error.kind, error.message) for error in run.errors] == [
            ("h01", "interrupted", UNANSWERED)
        ]  # cut short: the node's answer (the lock still held: 14 s on) was not waited for
        assert run.changes == []
        wait_for(lambda: not _agents(state), timeout=10, what="the unanswered agent ended")
    gpus = cli("--config", str(factory), "gpus", "h01", "-o", "json")
    assert [gpu["power_limit_w"] for gpu in json.loads(gpus.stdout)["items"]] == [700.0, 700.0]
    audit = json.loads(cli("--config", str(factory), "audit", "-o", "json").stdout)["items"]
    assert [(e["node"], e["before_w"], e["requested_w"], e["after_w"], e["outcome"]) for e in audit] == [
        ("h01", None, 560.0, None, "unknown")
    ]  # the request, whole: one entry for the node's GPUs, its outcome unknown (the stop came before an answer)
