"""The simulated job rank: a real process whose GPUs carry its load and whose progress slows under a cap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from factoryctl.sim.state import SimNode

_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def reap_ranks() -> Iterator[None]:
    """Every rank a test started is gone, and its pipes closed, before the next test (a pass or a failure)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)  # reads what is left and closes the pipes


def _rank(state: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "factoryctl.sim.rank", "--node", "n1", "--state-dir", str(state), *args]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    _STARTED.append(proc)
    return proc


def _wait_registered(node: SimNode, pid: int, gpu: int) -> None:
    deadline = time.monotonic() + 15
    while pid not in [p.pid for p in node.reading(gpu).processes]:
        assert time.monotonic() < deadline, "the rank never registered"
        time.sleep(0.05)


def test_a_rank_loads_its_gpus_while_it_runs_and_finishes(tmp_path: Path):
    node = SimNode(tmp_path, "n1", profile="h100-sxm", gpus=4, workload="idle")
    proc = _rank(tmp_path, "--gpus", "1,2", "--work-s", "1.0", "--tick-s", "0.1")
    _wait_registered(node, proc.pid, 1)
    time.sleep(0.06)
    busy = node.reading(2)
    assert busy.utilization_pct == 100
    assert busy.power_w > 500
    assert node.reading(0).utilization_pct == 0
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "100% done" in out
    time.sleep(0.06)
    assert node.reading(1).processes == ()
    assert node.reading(1).utilization_pct == 0


def test_a_capped_rank_works_slower_and_sigterm_ends_it(tmp_path: Path):
    node = SimNode(tmp_path, "n1", profile="h100-sxm", gpus=2, workload="idle")
    node.set_power_limit(0, 200)
    proc = _rank(tmp_path, "--gpus", "0", "--work-s", "100", "--tick-s", "0.1", env={"CUDA_VISIBLE_DEVICES": "1"})
    _wait_registered(node, proc.pid, 0)
    assert proc.stdout is not None
    proc.stdout.readline()  # banner
    rate = float(proc.stdout.readline().rsplit(" ", 1)[-1])
    assert 0.05 < rate < 0.4  # 200 W of ~670 W demanded
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    time.sleep(0.06)
    assert node.reading(0).processes == ()


def test_a_lost_gpu_fails_the_rank(tmp_path: Path):
    node = SimNode(tmp_path, "n1", profile="h100-sxm", gpus=2, workload="idle")
    proc = _rank(tmp_path, "--work-s", "100", "--tick-s", "0.05")
    _wait_registered(node, proc.pid, 1)
    node.inject("lost", gpus=[1])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "GPU 1 fell off the bus" in err


def test_a_rank_resumes_from_its_checkpoint(tmp_path: Path):
    SimNode(tmp_path, "n1", profile="h100-sxm", gpus=1, workload="idle")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "sim-rank.json").write_text(json.dumps({"done_s": 5.0}))
    proc = _rank(tmp_path, "--work-s", "5", env={"FACTORY_CHECKPOINT_DIR": str(ckpt)})
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "5.0/5 s done" in out
