"""Preemption carried out by real passes (`run_tick`) on a simulated fleet: SIGTERM, grace, SIGKILL, requeue.

Real agents on the simulated driver over the local transport, a real SQLite store, and ranks that are real processes.
A low-priority gang fills both nodes; a high-priority job is submitted. Each test waits on states and files, never on
time: a grace is passed by giving the pass a later `now`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import free_port
from waiting import wait_for

from factoryctl.config import FactoryConfig, load_config
from factoryctl.jobs.cancel import cancel_jobs
from factoryctl.jobs.leftovers import PassNotes
from factoryctl.jobs.logs import cursors_for, labelled, read_more
from factoryctl.jobs.preempting import begin_stops
from factoryctl.jobs.tick import run_tick
from factoryctl.model.jobs import Job, JobSpec, JobState
from factoryctl.scheduler.decide import PreemptDecision
from factoryctl.sim.rank_registry import pid_alive
from factoryctl.store.sqlite import Store

PY = sys.executable
#: Resumes from its checkpoint when it finds one; else runs until SIGTERM, which it answers with a checkpoint.
CHECKPOINTS = """
import os, pathlib, signal, sys, time
e = os.environ
ck = pathlib.Path(e['FACTORY_CHECKPOINT_DIR'], 'step' + e['RANK'])
if ck.exists():
    print('resumed step', ck.read_text(), 'restart', e['FACTORY_RESTART_COUNT'])
    sys.exit(0)
def stop(*_):
    ck.write_text('7')
    print('saved step 7', flush=True)
    sys.exit(0)  # saved: a clean exit, requeued all the same
signal.signal(signal.SIGTERM, stop)
pathlib.Path(e['READY'] + e['RANK']).touch()
time.sleep(60)
"""
#: Runs on through SIGTERM: only SIGKILL ends it.
IGNORES = """
import os, pathlib, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(os.environ['READY'] + os.environ['RANK']).touch()
time.sleep(60)
"""
QUICK = "print('high')"

Fleet = Callable[[bool], tuple[FactoryConfig, Store]]


@pytest.fixture
def fleet(tmp_path: Path, cli: Any) -> Iterator[Fleet]:
    """Two simulated nodes of two GPUs each, preemption on or off with a 30 s grace, seen once by a telemetry sweep."""
    stores: list[Store] = []

    def make(preemption: bool) -> tuple[FactoryConfig, Store]:
        path = tmp_path / "factory.yaml"
        path.write_text(
            f"name: jp\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
            "  a[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 2}}\n"
            f"scheduler: {{preemption: {str(preemption).lower()}, preemption_grace: 30s}}\n"
        )
        swept = cli("--config", str(path), "telemetry", "collect", "--once")
        assert swept.exit_code == 0, swept.stderr
        config = load_config(path)
        stores.append(Store(config.store_path))
        return config, stores[-1]

    yield make
    for store in stores:
        store.close()


def _running_victim(config: FactoryConfig, store: Store, tmp_path: Path, code: str) -> Job:
    """A low-priority gang on all four GPUs, its ranks ready (their SIGTERM handler set), and `hi` submitted."""
    ready = str(tmp_path / "ready")
    store.add_job(_job("lo", 4, code, 0, env=(("READY", ready),)))
    run_tick(config, store)
    wait_for(lambda: all(os.path.exists(f"{ready}{r}") for r in (0, 1)), what="lo's ranks ready")
    store.add_job(_job("hi", 4, QUICK, 10))
    lo = store.job("lo")
    assert lo is not None
    assert lo.state is JobState.RUNNING
    return lo


def _job(job_id: str, gpus: int, code: str, priority: int, **spec: Any) -> Job:
    return Job(job_id, JobSpec(gpus, name=job_id, user="ana", command=(PY, "-c", code), priority=priority, **spec),
               time.time())  # fmt: skip


def _get(store: Store, job_id: str) -> Job:
    job = store.job(job_id)
    assert job is not None
    return job


def _alive(pid: int | None) -> bool:
    return pid is not None and pid_alive(pid)


def test_a_victim_checkpoints_on_sigterm_is_requeued_and_resumes_after_the_high_priority_job(
    fleet: Fleet, tmp_path: Path, cli: Any
) -> None:
    config, store = fleet(True)
    _running_victim(config, store, tmp_path, CHECKPOINTS)
    now = time.time()
    report = run_tick(config, store, now=now)
    lo = _get(store, "lo")
    assert lo.state is JobState.RUNNING
    assert lo.stopping is not None
    assert (lo.stopping.for_job, lo.stopping.requested_at, lo.stopping.grace_s) == ("hi", now, 30.0)
    assert lo.reason == "stopping: preempted for job hi (priority 10); SIGTERM sent, SIGKILL after its 30s grace"
    assert any(c.after.id == "lo" and c.event == "job_preempting" for c in report.changes)
    assert _get(store, "hi").state is JobState.PENDING

    def requeued() -> bool:
        run_tick(config, store, now=now + 1)  # within the grace: requeued because its ranks ended, not killed
        return _get(store, "lo").state is JobState.PENDING

    wait_for(requeued, what="lo requeued", poll_s=0.2)
    lo = _get(store, "lo")
    assert lo.reason.startswith("preempted for job hi; ")
    logs = cli("--config", str(config.path), "jobs", "logs", "lo")  # what its stopped run printed in its grace
    assert logs.exit_code == 0, logs.stderr
    assert sorted(logs.stdout.splitlines()) == ["0: saved step 7", "1: saved step 7"]
    assert f"factoryctl: job lo is PENDING again ({lo.reason}): its last run's output." in logs.stderr
    assert (lo.restarts, lo.stopping) == (0, None)
    assert _get(store, "hi").state in (JobState.RUNNING, JobState.SUCCEEDED)  # started in the pass that requeued lo
    events = [(e.kind, e.message) for e in store.events(0.0) if e.kind in ("job_preempting", "job_preempted")]
    assert events == [
        ("job_preempting", "job lo (lo) stopping: preempted for job hi (priority 10); SIGTERM sent, SIGKILL after its"
         " 30s grace"),
        ("job_preempted", "job lo (lo) preempted for job hi; requeued: its ranks ended after its SIGTERM"),
    ]  # fmt: skip

    def resumed() -> bool:
        run_tick(config, store, now=time.time() + 2)
        return _get(store, "lo").state.terminal

    wait_for(resumed, what="lo ended", poll_s=0.2)
    lo = _get(store, "lo")
    assert lo.state is JobState.SUCCEEDED
    cursors = cursors_for(lo)
    read_more(config, lo, cursors)
    assert sorted(labelled(cursors)) == ["0: resumed step 7 restart 0", "1: resumed step 7 restart 0"]


def test_a_victim_ignoring_sigterm_is_killed_at_the_end_of_its_grace_and_one_can_be_cancelled(
    fleet: Fleet, tmp_path: Path
) -> None:
    config, store = fleet(True)
    ready = str(tmp_path / "ready")
    for job_id, node in (("lo", "a1"), ("lo2", "a2")):  # both stopped for hi, which needs all four GPUs
        store.add_job(_job(job_id, 2, IGNORES, 0, nodes=(node,), env=(("READY", f"{ready}-{job_id}-"),)))
    run_tick(config, store)
    wait_for(lambda: all(os.path.exists(f"{ready}-{j}-0") for j in ("lo", "lo2")), what="the ranks ready")
    store.add_job(_job("hi", 4, QUICK, 10))
    now = time.time()
    run_tick(config, store, now=now)
    lo, lo2 = _get(store, "lo"), _get(store, "lo2")
    assert lo.stopping is not None
    assert lo2.stopping is not None
    [cancelled] = cancel_jobs(config, store, [lo2], "ana", grace_s=0.2).cancelled  # a stopping job still cancels
    assert (cancelled.state, cancelled.stopping) == (JobState.CANCELLED, None)
    run_tick(config, store, now=now + 29)  # lo's grace not over: it runs on, and hi waits
    assert _get(store, "lo").stopping is not None
    assert _get(store, "hi").state is JobState.PENDING
    assert store.scheduler_memory()[1] == "hi"  # its claim kept from pass to pass: first on the GPUs once free
    assert _alive(lo.ranks[0].pid)
    report = run_tick(config, store, now=now + 30)
    [requeued] = [c.after for c in report.changes if c.event == "job_preempted"]
    assert (requeued.id, requeued.state) == ("lo", JobState.PENDING)
    assert requeued.reason == "preempted for job hi; requeued: killed after its 30s grace"
    assert _get(store, "lo").reason.startswith("preempted for job hi; waiting for ")  # the scheduler's, after it
    hi = next(c.after for c in report.changes if c.after.id == "hi")
    assert hi.state is JobState.RUNNING
    assert hi.placement.render() == "a1:2 a2:2"
    wait_for(lambda: not any(_alive(r.pid) for r in (*lo.ranks, *lo2.ranks)), what="the ranks killed")


def test_without_preemption_nothing_is_stopped(fleet: Fleet, tmp_path: Path) -> None:
    config, store = fleet(False)
    _running_victim(config, store, tmp_path, IGNORES)
    run_tick(config, store)
    lo, hi = _get(store, "lo"), _get(store, "hi")
    assert (lo.state, lo.stopping) == (JobState.RUNNING, None)
    assert hi.state is JobState.PENDING
    cancel_jobs(config, store, [lo, hi], "ana", grace_s=0.2)


def test_a_sigterm_its_nodes_did_not_take_is_sent_once_they_answer_and_the_job_checkpoints(
    fleet: Fleet, tmp_path: Path
) -> None:
    """The TERM was sent once: a node silent then (or a pass killed before it) left the job to its SIGKILL, unsaved."""
    config, store = fleet(True)
    lo = _running_victim(config, store, tmp_path, CHECKPOINTS)
    cut = tmp_path / "cut.yaml"  # the same nodes, unreachable: nothing listens on that port
    cut.write_text(
        f"name: jp\nstate_dir: {tmp_path / 'state'}\nssh: {{connect_timeout_s: 5}}\n"
        f"nodes:\n  a[1-2]: {{host: 127.0.0.1, port: {free_port()}}}\n"
    )
    now = time.time()
    notes = PassNotes()
    begin_stops(load_config(cut), store, [lo], [PreemptDecision("lo", "hi", 30.0, "for hi")], now, notes)
    assert sorted(node for node, _ in notes.unsignalled) == ["a1", "a2"]

    def requeued() -> bool:
        run_tick(config, store, now=now + 1)  # the nodes answer: the owed TERM is sent, the ranks save and end
        return _get(store, "lo").state is JobState.PENDING

    wait_for(requeued, what="lo requeued after its owed SIGTERM", poll_s=0.2)
    [requeue] = [e.message for e in store.events(0.0) if e.kind == "job_preempted"]
    assert requeue == "job lo (lo) preempted for job hi; requeued: its ranks ended after its SIGTERM"
