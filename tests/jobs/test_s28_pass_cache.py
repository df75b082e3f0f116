"""A long-lived store connection keeps the jobs it parsed, and still sees every record another process rewrites.

The controller's jobs loop keeps one store connection for all its passes, and the connection keeps each job it
parsed with its record's text (`store.jobs.ParsedJobs`), so a pass that changes nothing parses nothing again. These
tests rewrite a record between two passes from other processes (`nodes drain`, then cron's `sched tick`) and between
two reads from another connection, and check that the next pass and read see it; and that a pass that changes
nothing writes nothing.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from cli_process import run_cli_text
from sshd_fixture import free_port

from factoryctl.config import FactoryConfig, load_config
from factoryctl.jobs.tick import LIVE_STATES, run_tick
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store


def _factory(tmp_path: Path) -> tuple[FactoryConfig, Store]:
    """One 8-GPU node the store knows as up (nothing listens at its port: it is never reached), a RUNNING job
    holding its GPUs (without ranks: no node is asked), and an 8-GPU job waiting for them; the connection that
    serves the passes, as the jobs loop's does."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: s28\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n1: {{host: 127.0.0.1, port: {free_port()}, gpus: 8}}\n"
    )
    config = load_config(path)
    now = time.time()
    store = Store(config.store_path)
    sample = NodeSample("n1", now, agent_version="test", backend="sim")
    store.write([sample], states=[NodeState("n1", "up", now - 60, now)], stored_at=now)
    holder = JobSpec(8, name="holder", command=("true",))
    store.add_job(
        Job("holder1", holder, now - 100, JobState.RUNNING, started_at=now - 50, allocation=(GpuAllocation("n1", 8),))
    )
    store.add_job(Job("waiter1", JobSpec(8, name="waiter", command=("true",)), now - 10))
    return config, store


def _factoryctl(config: FactoryConfig, *args: str) -> None:
    """`factoryctl ARGS` on this factory, in a process of its own."""
    done = run_cli_text("--config", str(config.path), "-q", *args)
    assert done.returncode == 0, done.stderr


def test_a_reason_another_process_rewrote_is_seen_by_the_next_pass(tmp_path: Path) -> None:
    config, store = _factory(tmp_path)
    run_tick(config, store)
    [waiting] = [job for job in store.jobs(states=LIVE_STATES) if job.id == "waiter1"]  # its record as written
    assert waiting.reason == "waiting for 1 node with 8 free GPUs (0 now)"
    _factoryctl(config, "nodes", "drain", "n1", "-r", "maintenance")
    _factoryctl(config, "sched", "tick")  # cron's pass: the same state, another reason
    fresh = Store(config.store_path)
    assert store.jobs(states=LIVE_STATES) == fresh.jobs(states=LIVE_STATES)
    [rewritten] = [job for job in store.jobs(states=LIVE_STATES) if job.id == "waiter1"]
    assert rewritten.state is JobState.PENDING
    assert rewritten.reason.startswith("waiting for nodes that are down, drained or unhealthy")
    assert run_tick(config, store).changes == ()  # the reason it would write is there already
    fresh.close()
    store.close()


def test_an_unchanged_record_is_not_parsed_again_and_a_rewritten_one_is(tmp_path: Path) -> None:
    config, store = _factory(tmp_path)
    holder, waiter = store.jobs()
    other = Store(config.store_path)  # another writer: `jobs cancel`, cron's `sched tick`
    assert other.update_job(waiter.evolve(reason="told by another writer"), JobState.PENDING)
    again = store.jobs()
    assert again[0] is holder  # the same text: the job parsed before
    assert (again[1].id, again[1].reason) == ("waiter1", "told by another writer")
    assert store.jobs(states=(JobState.RUNNING,), limit=1) == [holder]
    other.close()
    store.close()


def test_a_pass_that_changes_nothing_writes_nothing(tmp_path: Path) -> None:
    config, store = _factory(tmp_path)
    run_tick(config, store)
    watcher = sqlite3.connect(config.store_path)
    before = watcher.execute("PRAGMA data_version").fetchone()
    report = run_tick(config, store)
    assert (report.changes, report.waiting) == ((), 1)
    assert watcher.execute("PRAGMA data_version").fetchone() == before  # no commit: no write lock taken either
    watcher.close()
    store.close()
