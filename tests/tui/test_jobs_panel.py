"""The jobs panel reads the store's jobs: running gangs, the queue, the jobs ended lately, and how many wait in all.

The panel said "no scheduler data" with jobs in the store: no data service filled `FactorySnapshot.jobs`. Real
SQLite store (`Store.add_job`, as `jobs submit` writes), the dashboard's own `StoreServices`, a real app under Pilot.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pilot_helpers import RecordingApp, first_snapshot, plain, wait_until

from factoryctl.config import FactoryConfig
from factoryctl.demo import demo_config
from factoryctl.live.jobs_feed import JOBS_SHOWN
from factoryctl.live.services import JobLine
from factoryctl.live.services_polled import PolledServices
from factoryctl.live.services_store import StoreServices
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState
from factoryctl.store import open_store
from factoryctl.tui.renderables.feed_lists import JobsRenderable
from factoryctl.tui.widgets.jobs_panel import JobsPanel


def job(job_id: str, at: float, state: JobState = JobState.PENDING, **fields: Any) -> Job:
    spec = JobSpec(8, name=f"train-{job_id}", user="ana", command=("python", "t.py"))
    return Job(job_id, spec, at, state).evolve(**fields)


def submit(config: FactoryConfig, jobs: list[Job]) -> None:
    store = open_store(config.store_path)
    try:
        for one in jobs:
            store.add_job(one)
    finally:
        store.close()


def a_queue(config: FactoryConfig, waiting: int) -> float:
    """One job running on demo01 and demo02, one failed a minute ago, one ended yesterday, `waiting` waiting."""
    now = time.time()
    running = job("r1", now - 900, JobState.RUNNING, started_at=now - 600, reason="")
    running = running.evolve(allocation=(GpuAllocation("demo01", 4), GpuAllocation("demo02", 4)))
    failed = job("f1", now - 300, JobState.FAILED, started_at=now - 200, ended_at=now - 60, reason="rank 0 exited 1")
    old = job("o1", now - 90_000, JobState.SUCCEEDED, started_at=now - 89_000, ended_at=now - 86_400)
    queue = [job(f"w{i:05d}", now - 500 + i / 100, reason="waiting for 8 GPUs") for i in range(waiting)]
    submit(config, [running, failed, old, *queue])
    return now


def test_a_snapshot_counts_every_waiting_job_and_holds_the_first_few(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    a_queue(config, 120)
    services = StoreServices(config)
    try:
        snap = services.snapshot()
    finally:
        services.close()
    assert snap.queue_length == 120
    assert snap.jobs_running == 1
    assert snap.jobs is not None
    states = [(j.id, j.state) for j in snap.jobs]
    assert states[0] == ("r1", "RUNNING")
    assert states[1:4] == [("w00000", "PENDING"), ("w00001", "PENDING"), ("w00002", "PENDING")]  # the oldest first
    assert states[-1] == ("f1", "FAILED")  # ended a minute ago: shown, after the queue
    assert "o1" not in [j.id for j in snap.jobs]  # ended a day ago: as `jobs list` without --all
    running = snap.jobs[0]
    assert (running.nodes, running.user, running.num_gpus) == (("demo01", "demo02"), "ana", 8)
    assert running.elapsed_s is not None
    assert 600 <= running.elapsed_s < 700


def test_a_store_with_no_job_says_no_jobs(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    open_store(config.store_path).close()
    services = StoreServices(config)
    try:
        snap = services.snapshot()
    finally:
        services.close()
    assert (snap.jobs, snap.queue_length, snap.jobs_running) == ((), 0, 0)
    assert plain(JobsRenderable(snap.jobs), width=80).strip() == "no jobs"


def test_the_renderable_says_how_many_more_wait_than_fit() -> None:
    lines = [
        JobLine("w1", "sweep", "PENDING", 8, user="bo", elapsed_s=42, reason="waiting for 8 GPUs"),
        JobLine("r1", "train", "RUNNING", 16, ("n01", "n02"), user="ana", elapsed_s=3723),
        JobLine("w2", "sweep2", "DEFERRED", 1, user="bo", elapsed_s=5),
    ]
    text = plain(JobsRenderable(lines, limit=3, running=1, waiting=9950), width=100).splitlines()
    assert len(text) == 3
    assert text[0].split() == ["RUNNING", "r1", "train", "ana", "16", "GPUs", "1:02:03", "on", "n[01-02]"]
    assert text[1].split()[:7] == ["PENDING", "w1", "sweep", "bo", "8", "GPUs", "0:42"]
    assert "(waiting for 8 GPUs)" in text[1]
    assert text[2].strip() == "… 9,949 more waiting"
    assert len(plain(JobsRenderable(lines, limit=10), width=100).splitlines()) == 3  # all fit: no "more" line
    assert "no scheduler data" in plain(JobsRenderable(None), width=100)


async def test_the_panel_shows_the_stores_jobs(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    a_queue(config, 3)
    services = StoreServices(config)
    app = RecordingApp(services)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await first_snapshot(pilot)
            panel = app.screen.query_one(JobsPanel)
            await wait_until(pilot, lambda: panel.jobs, what="the jobs panel filled")
            assert str(panel.border_title) == "jobs: 1 running, 3 waiting"
            text = plain(panel.render(), width=panel.size.width)
            assert "RUNNING   r1 train-r1 ana 8 GPUs" in text
            assert "on demo[01-02]" in text
            assert "PENDING   w00000 train-w00000 ana 8 GPUs" in text
            assert "FAILED    f1" in text
            assert "(rank 0 exited 1)" in text
            assert "no scheduler data" not in text
    finally:
        services.close()


def test_a_job_that_ends_shows_ended_in_the_next_snapshot(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    now = a_queue(config, 2)
    services = StoreServices(config)
    try:
        first = services.snapshot()
        store = open_store(config.store_path)
        try:
            waiting = store.find_job("w00001")
            cancelled = waiting.evolve(state=JobState.CANCELLED, ended_at=now, reason="cancelled by ana")
            assert store.update_job(cancelled, JobState.PENDING)
        finally:
            store.close()
        second = services.snapshot()  # within a second: the ended jobs are read again because the queue changed
    finally:
        services.close()
    assert ("w00001", "PENDING") in [(j.id, j.state) for j in first.jobs or ()]
    assert ("w00001", "CANCELLED") in [(j.id, j.state) for j in second.jobs or ()]
    assert (first.queue_length, second.queue_length) == (2, 1)


def test_the_embedded_collector_reads_the_stores_jobs_too(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    a_queue(config, 4)
    services = PolledServices(config, "demo01")  # no controller: the dashboard's own collector
    try:
        snap = services.snapshot()
    finally:
        services.close()
    assert (snap.jobs_running, snap.queue_length) == (1, 4)
    assert [j.id for j in snap.jobs or ()][:2] == ["r1", "w00000"]
    without = PolledServices(config, "demo01", use_store=False)
    try:
        assert without.snapshot().jobs is None  # no store: the panel says there is no scheduler data
    finally:
        without.close()


async def test_the_panel_counts_a_queue_longer_than_it_holds(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    a_queue(config, JOBS_SHOWN + 25)  # the snapshot holds the first JOBS_SHOWN waiting jobs, counts them all
    services = StoreServices(config)
    app = RecordingApp(services)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await first_snapshot(pilot)
            panel = app.screen.query_one(JobsPanel)
            await wait_until(pilot, lambda: panel.jobs, what="the jobs panel filled")
            assert str(panel.border_title) == f"jobs: 1 running, {JOBS_SHOWN + 25} waiting"
            lines = plain(panel.render(), width=panel.size.width).splitlines()
            assert len(lines) == panel.size.height
            waiting_shown = sum(1 for line in lines if line.startswith("PENDING"))
            assert lines[-1].strip() == f"… {JOBS_SHOWN + 25 - waiting_shown} more waiting"
    finally:
        services.close()
