"""The dashboard's snapshot says which job holds each GPU, read from the store's running jobs by the live services.

`factoryctl gpus -o wide` has a JOB column (jobs/holders.py); the dashboard's snapshot had nothing of the kind, so its
node screen could not say it. Real SQLite store (`Store.add_job`, as `jobs submit` and a pass write it), the
dashboard's own `StoreServices` and `PolledServices` on the simulated demo factory.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from factoryctl.config import FactoryConfig
from factoryctl.demo import demo_config
from factoryctl.live.jobs_feed import HOLDERS_EVERY_S, JOBS_SHOWN, JobsFeed
from factoryctl.live.services import NO_JOB_STORE, GpuJob
from factoryctl.live.services_polled import PolledServices
from factoryctl.live.services_store import StoreServices
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank
from factoryctl.store import open_store


def running(job_id: str, at: float, ranks: dict[str, tuple[int, ...]]) -> Job:
    """A RUNNING job whose ranks hold `ranks` (node: GPU indexes), as a pass records a launched gang."""
    spec = JobSpec(sum(len(g) for g in ranks.values()), name=f"train-{job_id}", user="ana", command=("python", "t.py"))
    return Job(job_id, spec, at, JobState.RUNNING).evolve(
        started_at=at + 1,
        allocation=tuple(GpuAllocation(node, len(gpus)) for node, gpus in ranks.items()),
        ranks=tuple(Rank(i, node, pid=100 + i, gpus=gpus) for i, (node, gpus) in enumerate(ranks.items())),
    )


def submit(config: FactoryConfig, jobs: list[Job]) -> None:
    """Store `jobs` as `jobs submit` and a scheduling pass write them."""
    with contextlib.closing(open_store(config.store_path)) as store:
        for one in jobs:
            store.add_job(one)


def test_a_snapshot_names_the_job_holding_each_gpu_and_none_for_a_free_one(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    now = time.time()
    waiting = Job("w1", JobSpec(8, name="queued", user="bo", command=("true",)), now)
    submit(config, [running("j1", now - 60, {"demo01": (0, 1, 2, 3), "demo02": (4, 5)}), waiting])
    services = StoreServices(config)
    try:
        snap = services.snapshot()
    finally:
        services.close()
    assert snap.gpu_job("demo01", 0) == GpuJob("j1")
    assert snap.gpu_job("demo02", 5) == GpuJob("j1")
    assert snap.gpu_job("demo01", 4) == GpuJob(None)  # free: known, not unknown
    assert snap.gpu_job("demo03", 0) == GpuJob(None)
    assert snap.gpu_job("demo02", 0).unknown_why is None


def test_every_running_job_is_read_not_only_those_the_jobs_panel_holds(tmp_path: Path) -> None:
    """The panel's read holds the first `JOBS_SHOWN` running jobs; the GPUs of the later ones are held all the same."""
    config = demo_config(tmp_path / "state")
    now = time.time()
    count = JOBS_SHOWN + 10  # 60 one-GPU jobs over the demo's 8 nodes x 8 GPUs, submitted in order
    submit(config, [running(f"j{i:03d}", now - 600 + i, {f"demo{i // 8 + 1:02d}": (i % 8,)}) for i in range(count)])
    services = StoreServices(config)
    try:
        snap = services.snapshot()
    finally:
        services.close()
    assert snap.jobs_running == count
    last = count - 1
    assert snap.gpu_job(f"demo{last // 8 + 1:02d}", last % 8) == GpuJob(f"j{last:03d}")
    assert snap.gpu_job("demo01", 0) == GpuJob("j000")
    assert snap.gpu_job("demo08", 7) == GpuJob(None)  # GPU 63: none of the 60 holds it


def test_a_job_that_ends_frees_its_gpus_in_the_next_snapshot(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    now = time.time()
    submit(config, [running("j1", now - 60, {"demo01": (0, 1)})])
    services = StoreServices(config)
    try:
        before = services.snapshot()
        with contextlib.closing(open_store(config.store_path)) as store:  # the job's ranks exited 0: a pass ends it
            ended = store.find_job("j1").evolve(state=JobState.SUCCEEDED, ended_at=time.time())
            assert store.update_job(ended, JobState.RUNNING)
        after = services.snapshot()
    finally:
        services.close()
    assert before.gpu_job("demo01", 1) == GpuJob("j1")
    assert after.gpu_job("demo01", 1) == GpuJob(None)


def test_a_job_table_that_cannot_be_read_leaves_the_holders_unknown_not_free(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    submit(config, [running("j1", time.time() - 60, {"demo01": (0,)})])
    with sqlite3.connect(config.store_path) as db:  # a damaged store: its job table is gone
        db.execute("ALTER TABLE job RENAME TO job_lost")
    services = StoreServices(config)
    try:
        snap = services.snapshot()
    finally:
        services.close()
    assert snap.jobs is None
    assert snap.gpu_jobs is None
    assert snap.gpu_job("demo01", 0) == GpuJob(None, NO_JOB_STORE)
    assert snap.gpu_job("demo01", 1) == GpuJob(None, NO_JOB_STORE)  # not "free" either


def test_the_embedded_collector_reads_them_too_and_without_a_store_they_are_unknown(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    submit(config, [running("j1", time.time() - 60, {"demo01": (2,)})])
    services = PolledServices(config, "demo01")  # no controller: the dashboard's own collector
    try:
        snap = services.snapshot()
    finally:
        services.close()
    assert snap.gpu_job("demo01", 2) == GpuJob("j1")
    assert snap.gpu_job("demo01", 3) == GpuJob(None)
    without = PolledServices(config, "demo01", use_store=False)
    try:
        assert without.snapshot().gpu_job("demo01", 2) == GpuJob(None, NO_JOB_STORE)
    finally:
        without.close()


def test_past_the_panels_jobs_the_holders_are_read_again_on_their_own_cadence(tmp_path: Path) -> None:
    """With more jobs running than the panel reads, a job ending shows at once; one replacing another within 5 s."""
    config = demo_config(tmp_path / "state")
    now = time.time()
    count = JOBS_SHOWN + 10
    submit(config, [running(f"j{i:03d}", now - 600 + i, {f"demo{i // 8 + 1:02d}": (i % 8,)}) for i in range(count)])
    feed = JobsFeed()
    with contextlib.closing(open_store(config.store_path)) as store:
        assert feed.read(store, now).holders.job_id("demo08", 3) == "j059"
        ended = store.find_job("j059").evolve(state=JobState.SUCCEEDED, ended_at=now)
        assert store.update_job(ended, JobState.RUNNING)
        store.add_job(running("k1", now, {"demo08": (3,)}))  # a pass fills the GPU it freed: as many run as before
        assert feed.read(store, now + HOLDERS_EVERY_S).holders.job_id("demo08", 3) == "k1"
        gone = store.find_job("j058").evolve(state=JobState.FAILED, ended_at=now)
        assert store.update_job(gone, JobState.RUNNING)  # one fewer runs: read again at the next refresh
        assert feed.read(store, now + HOLDERS_EVERY_S + 1).holders.job_id("demo08", 2) is None
