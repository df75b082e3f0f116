"""Passes and cancels against rank processes that left their group (`setsid`) or outlive SIGKILL (state D).

Real agents on the simulated driver over the local transport, a real SQLite store, real rank processes: a cancel
kills a worker that daemonised itself; a preempted gang's grace lasts while such a worker saves its checkpoint; a
gang placed on GPUs where a killed rank is stuck in state D (a hung FUSE mount) does not start beside it, and says
why. Each test waits on states and files, never on time; every process it starts is killed after it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rank_escapes import DAEMON, EscapedProcesses, hung_mount
from waiting import wait_for

from factoryctl.agent.ranks import start_ticks
from factoryctl.config import FactoryConfig, load_config
from factoryctl.jobs.cancel import cancel_jobs
from factoryctl.jobs.silent import SILENT_HOLD_S
from factoryctl.jobs.tick import run_tick
from factoryctl.model.jobs import Job, JobSpec, JobState
from factoryctl.store.sqlite import Store

#: A launcher that leaves a daemonised worker (argv: its pid file, a file that lets it save, where it saves, how
#: many seconds saving takes) and dies on SIGTERM at once; the worker, told by SIGTERM, saves once let, then ends.
SAVING_WORKER = """
import os, pathlib, signal, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        def save(*_):
            while not os.path.exists(sys.argv[2]):
                time.sleep(0.05)
            time.sleep(float(sys.argv[4]))
            pathlib.Path(sys.argv[3]).write_text('saved')
            os._exit(0)
        signal.signal(signal.SIGTERM, save)
        open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))
        os.replace(sys.argv[1] + '.tmp', sys.argv[1])
        time.sleep(300)
    os._exit(0)
os.wait()
time.sleep(300)
"""


@pytest.fixture
def fleet(tmp_path: Path, cli: Any) -> Iterator[tuple[FactoryConfig, Store]]:
    """One simulated node of two GPUs, preemption on with a 30 s grace, seen once by a telemetry sweep."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: je\nstate_dir: {tmp_path / 'state'}\nnodes:\n  a1: {{transport: local, sim: {{profile: h100-sxm, gpus: 2}}}}\n"
        "scheduler: {preemption: true, preemption_grace: 30s}\n"
    )
    swept = cli("--config", str(path), "telemetry", "collect", "--once")
    assert swept.exit_code == 0, swept.stderr
    config = load_config(path)
    store = Store(config.store_path)
    yield config, store
    cancel_jobs(config, store, [j for j in store.jobs() if not j.state.terminal], "ana", grace_s=0.2)
    store.close()


@pytest.fixture
def escaped() -> Iterator[EscapedProcesses]:
    found = EscapedProcesses()
    yield found
    found.kill_all()


def _running(config: FactoryConfig, store: Store, job_id: str, gpus: int, *command: str, priority: int = 0) -> Job:
    store.add_job(Job(job_id, JobSpec(gpus, name=job_id, user="ana", command=command, priority=priority), time.time()))
    run_tick(config, store)
    return _get(store, job_id)


def _get(store: Store, job_id: str) -> Job:
    job = store.job(job_id)
    assert job is not None
    return job


def test_a_cancel_kills_a_worker_that_left_its_ranks_process_group(
    fleet: tuple[FactoryConfig, Store], tmp_path: Path, escaped: EscapedProcesses
) -> None:
    config, store = fleet
    job = _running(config, store, "d1", 2, sys.executable, "-c", DAEMON, str(tmp_path / "worker"), "300")
    assert job.state is JobState.RUNNING
    worker = escaped.pid_in(tmp_path / "worker")
    [cancelled] = cancel_jobs(config, store, [job], "ana", grace_s=5).cancelled
    assert cancelled.state is JobState.CANCELLED
    wait_for(lambda: start_ticks(worker) is None, what="the daemonised worker killed by the cancel")


def test_a_cancel_gives_a_daemonised_worker_its_grace_after_its_launcher_ended(
    fleet: tuple[FactoryConfig, Store], tmp_path: Path, escaped: EscapedProcesses
) -> None:
    """The 10 s between SIGTERM and SIGKILL last while any process of the rank runs, not only its command."""
    config, store = fleet
    let, saved = tmp_path / "let-save", tmp_path / "saved"
    let.touch()
    argv = (sys.executable, "-c", SAVING_WORKER, str(tmp_path / "worker"), str(let), str(saved), "2")
    job = _running(config, store, "c1", 2, *argv)
    escaped.pid_in(tmp_path / "worker")
    cancel_jobs(config, store, [job], "ana", grace_s=30)  # its launcher ends at once; its worker takes 2 s to save
    assert saved.read_text() == "saved"


def test_a_preempted_gangs_grace_lasts_while_its_daemonised_worker_saves(
    fleet: tuple[FactoryConfig, Store], tmp_path: Path, escaped: EscapedProcesses
) -> None:
    config, store = fleet
    let, saved = tmp_path / "let-save", tmp_path / "saved"
    argv = (sys.executable, "-c", SAVING_WORKER, str(tmp_path / "worker"), str(let), str(saved), "0")
    lo = _running(config, store, "lo", 2, *argv)
    escaped.pid_in(tmp_path / "worker")
    store.add_job(Job("hi", JobSpec(2, name="hi", user="ana", command=("true",), priority=10), time.time()))
    now = time.time()
    run_tick(config, store, now=now)  # lo is stopped for hi: SIGTERM; its launcher dies, its worker waits to save
    assert _get(store, "lo").stopping is not None
    wait_for(lambda: start_ticks(lo.ranks[0].pid or 0) is None, what="the launcher ending on its SIGTERM")
    run_tick(config, store, now=now + 1)
    assert (_get(store, "lo").state, _get(store, "hi").state) == (JobState.RUNNING, JobState.PENDING)  # in grace
    let.touch()
    wait_for(saved.exists, what="the worker saving on its SIGTERM")

    def requeued() -> bool:
        run_tick(config, store, now=now + 2)
        return _get(store, "lo").state is JobState.PENDING

    wait_for(requeued, what="lo requeued once its worker ended", poll_s=0.2)
    assert _get(store, "lo").reason.startswith("preempted for job hi; ")
    [event] = [e.message for e in store.events(0.0) if e.kind == "job_preempted"]
    assert event == "job lo (lo) preempted for job hi; requeued: its ranks ended after its SIGTERM"


def test_a_gang_is_not_started_on_gpus_where_a_killed_rank_is_stuck_in_state_d(
    fleet: tuple[FactoryConfig, Store], tmp_path: Path, cli: Any
) -> None:
    config, store = fleet
    with hung_mount(tmp_path / "hung") as mount:
        stuck = _running(config, store, "s1", 1, "stat", str(tmp_path / "hung"))
        mount.hold()
        cancel_jobs(config, store, [stuck], "ana", grace_s=0.5)  # TERM, then KILL: neither ends a process in D
        store.add_job(Job("g2", JobSpec(2, name="g2", user="ana", command=("true",)), time.time()))
        run_tick(config, store)
        g2 = _get(store, "g2")
        assert (g2.state, g2.restarts) == (JobState.PENDING, 0)
        assert g2.reason.startswith(
            "rank 0 could not start on a1: `launch` failed: cannot start the rank: GPU 0 still runs processes of launch s1."
        ), g2.reason
        assert f"after their SIGKILL: pid {stuck.ranks[0].pid} (state D); " in g2.reason
        shown = cli("--config", str(config.path), "jobs", "show", "g2")
        assert g2.reason in shown.stdout
    wait_for(lambda: start_ticks(stuck.ranks[0].pid or 0) is None, what="the stuck rank ending once its I/O failed")
    run_tick(config, store, now=time.time() + SILENT_HOLD_S)  # the node is placed on again after its hold
    assert _get(store, "g2").state in (JobState.RUNNING, JobState.SUCCEEDED)
