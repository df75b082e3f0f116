"""`controller run` makes scheduling passes on its own thread: a queued gang runs and ends with no `sched tick`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.model.jobs import Job, JobSpec, JobState
from factoryctl.store.sqlite import Store


@contextmanager
def _controller(path: Path, logs: list[str]) -> Iterator[tuple[subprocess.Popen[str], Store]]:
    """`controller run` on `path` and its store once it exists; stopped with SIGTERM (its log appended to `logs`)."""
    config = load_config(path)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "factoryctl", "--config", str(path), "controller", "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(config.store_path.exists, what="the store")
        store = Store(config.store_path)
        try:
            yield daemon, store
        finally:
            store.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        logs.append(daemon.communicate(timeout=30)[1])
    assert daemon.returncode == 0, logs[-1]


def _runs_to_its_end(store: Store, job_id: str, nodes: int) -> Job:
    """A gang of one GPU on each of `nodes` nodes queued, waited for until it succeeded."""
    command = (sys.executable, "-c", "print('done')")
    store.add_job(Job(job_id, JobSpec(nodes, name="pair", user="ana", command=command), time.time()))
    wait_for(lambda: store.job(job_id).state is JobState.SUCCEEDED, what=f"{job_id} succeeded")  # type: ignore[union-attr]
    job = store.job(job_id)
    assert job is not None
    return job


def test_the_controller_runs_a_queued_gang_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: cp\nstate_dir: {tmp_path / 'state'}\ncontroller: {{interval_s: 1}}\nscheduler: {{interval: 1s}}\n"
        "nodes:\n  n[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    )
    logs: list[str] = []
    with _controller(path, logs) as (_, store):
        wait_for(lambda: sum(s.state == "up" for s, _ in store.latest()) == 2, what="both nodes up")
        assert _runs_to_its_end(store, "c1", 2).placement.render() == "n1:1 n2:1"
    assert "job c1 (pair) running: running on n[1-2]" in logs[0]
    assert "job c1 (pair) succeeded: every rank exited 0" in logs[0]


def test_a_node_a_reload_adds_gets_jobs_from_the_controllers_passes(tmp_path: Path) -> None:
    """The passes kept the configuration the controller started with: a node SIGHUP added never got a job."""
    path = tmp_path / "factory.yaml"
    head = f"name: cr\nstate_dir: {tmp_path / 'state'}\ncontroller: {{interval_s: 1}}\nscheduler: {{interval: 1s}}\n"
    path.write_text(head + "nodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n")
    with _controller(path, []) as (daemon, store):
        wait_for(lambda: [s.state for s, _ in store.latest()] == ["up"], what="n1 up")
        path.write_text(head + "nodes:\n  n[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n")
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: sum(s.state == "up" for s, _ in store.latest()) == 2, what="n2 up")
        assert _runs_to_its_end(store, "r1", 2).placement.render() == "n1:1 n2:1"
