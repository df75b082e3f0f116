"""A stray launch whose command ended while its daemonised worker lives on is swept, and its worker killed.

The worker left the rank's group (`setsid`) and carries its mark: it holds the rank's GPUs as a running command
would, so the sweep (`leftovers.sweep_strays`, through the node's real agent on the simulated driver) must take the
launch for a stray though its command ended. A launch an active job holds is left alone. Every process a test
starts is killed after it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rank_escapes import DAEMON, EscapedProcesses
from waiting import wait_for

from factoryctl.config import FactoryConfig, load_config
from factoryctl.jobs.leftovers import PassNotes, sweep_strays
from factoryctl.sim.rank_registry import pid_alive


@pytest.fixture
def escaped() -> Iterator[EscapedProcesses]:
    found = EscapedProcesses()
    yield found
    found.kill_all()


@pytest.fixture
def config(tmp_path: Path) -> FactoryConfig:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: st\nstate_dir: {tmp_path / 'state'}\nnodes:\n  a1: {{transport: local, sim: {{profile: h100-sxm, gpus: 2}}}}\n"
    )
    return load_config(path)


def _left_worker(config: FactoryConfig, tmp_path: Path, escaped: EscapedProcesses) -> int:
    """Launch `zz.1` on a1, whose command leaves a worker in a session of its own and ends; the worker's pid."""
    from factoryctl.telemetry.poll import agent_session

    argv = [sys.executable, "-c", DAEMON, str(tmp_path / "worker"), "0"]
    with agent_session(config.nodes["a1"], config, 15.0) as session:
        session.launch_rank("zz.1", 0, argv, {}, [0, 1], None)
        worker = escaped.pid_in(tmp_path / "worker")
        wait_for(lambda: session.ranks(["zz.1"])[0]["exit_code"] == 0, what="the stray's command ending")
    return worker


def test_a_stray_whose_worker_outlived_its_command_is_killed(
    config: FactoryConfig, tmp_path: Path, escaped: EscapedProcesses
) -> None:
    from factoryctl.telemetry.poll import agent_session

    worker = _left_worker(config, tmp_path, escaped)
    notes = PassNotes()
    with agent_session(config.nodes["a1"], config, 15.0) as session:
        sweep_strays(session, "a1", notes)
    assert notes.strays == [("a1", "zz.1")]  # was []: its command had ended, and its worker kept GPUs 0 and 1
    wait_for(lambda: not pid_alive(worker), what="the stray's worker killed")


def test_an_active_jobs_launch_with_a_worker_left_is_no_stray(
    config: FactoryConfig, tmp_path: Path, escaped: EscapedProcesses
) -> None:
    from factoryctl.telemetry.poll import agent_session

    worker = _left_worker(config, tmp_path, escaped)
    notes = PassNotes(active_launches=frozenset({"zz.1"}))
    with agent_session(config.nodes["a1"], config, 15.0) as session:
        sweep_strays(session, "a1", notes)
        [rank] = session.ranks(None, running=True)  # still told of: its worker lives
    assert notes.strays == []
    assert (rank["job"], rank["running"], rank["group_running"]) == ("zz.1", False, True)
    assert pid_alive(worker)
