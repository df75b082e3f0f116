"""The simulated job rank: a real process whose GPUs carry its load and whose progress slows under a cap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_for

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


def _registered(node: SimNode, pid: int, gpu: int) -> bool:
    return pid in [p.pid for p in node.reading(gpu).processes]


def _carries_rank(node: SimNode, pid: int, gpu: int) -> bool:
    """GPU `gpu` lists the rank and shows its full load."""
    reading = node.reading(gpu)
    return pid in [p.pid for p in reading.processes] and reading.utilization_pct == 100 and reading.power_w > 500


def _last_seen(state: Path, pid: int) -> float:
    """When rank `pid` last banked a heartbeat, per the node's state file (read as it is: no reader's checkpoint)."""
    data = json.loads((state / "default" / "n1.json").read_text())
    return max([float(p["seen"]) for p in data["processes"] if int(p["pid"]) == pid], default=0.0)


def _idle(node: SimNode, gpu: int) -> bool:
    reading = node.reading(gpu)
    return reading.processes == () and reading.utilization_pct == 0


def test_a_rank_loads_its_gpus_while_it_runs_and_finishes(tmp_path: Path):
    node = SimNode(tmp_path, "n1", profile="h100-sxm", gpus=4, workload="idle")
    proc = _rank(tmp_path, "--gpus", "1,2", "--work-s", "1.0", "--tick-s", "0.1")
    wait_for(lambda: _carries_rank(node, proc.pid, 1) and _carries_rank(node, proc.pid, 2))
    assert _idle(node, 0)  # not one of its GPUs
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "100% done" in out
    wait_for(lambda: _idle(node, 1))


def test_a_capped_rank_works_slower_and_sigterm_ends_it(tmp_path: Path):
    node = SimNode(tmp_path, "n1", profile="h100-sxm", gpus=2, workload="idle")
    node.set_power_limit(0, 200)
    proc = _rank(tmp_path, "--gpus", "0", "--work-s", "100", "--tick-s", "0.1", env={"CUDA_VISIBLE_DEVICES": "1"})
    wait_for(lambda: _registered(node, proc.pid, 0))
    assert proc.stdout is not None
    proc.stdout.readline()  # banner
    rate = float(proc.stdout.readline().rsplit(" ", 1)[-1])
    assert 0.05 < rate < 0.4  # 200 W of ~670 W demanded
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    wait_for(lambda: node.reading(0).processes == ())


def test_a_lost_gpu_fails_the_rank(tmp_path: Path):
    node = SimNode(tmp_path, "n1", profile="h100-sxm", gpus=2, workload="idle")
    proc = _rank(tmp_path, "--work-s", "100", "--tick-s", "0.05")
    wait_for(lambda: _registered(node, proc.pid, 1))
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


def test_a_rank_killed_with_sigkill_keeps_the_energy_it_used(tmp_path: Path):
    """A SIGKILLed rank cannot unregister, and its load counts only while its pid lives: without its heartbeat
    the seconds it ran since the last checkpoint would vanish from the energy counter of a later reader."""
    import time

    SimNode(tmp_path, "n1", profile="h100-sxm", gpus=1, workload="idle")
    before, started = SimNode(tmp_path, "n1").reading(0).energy_j, time.time()
    proc = _rank(tmp_path, "--work-s", "100", "--tick-s", "0.05", "--heartbeat-s", "0.2")
    assert proc.stdout is not None
    line = ""
    while not line.startswith("sim-rank: 2%"):  # >= 1.5 s of full-speed work done, so >= 1.5 s registered
        line = proc.stdout.readline()
        assert line, "the rank ended early"
    # Killed once it banked a heartbeat taken after that line: >= 1.5 s of its load is in the counters then. Killed
    # at the line, its last heartbeat could be a beat (0.2 s) and a tick stalled by a loaded machine older.
    reported = time.time()
    wait_for(lambda: _last_seen(tmp_path, proc.pid) >= reported, what="a heartbeat after the rank's 2 % line")
    proc.kill()
    proc.wait(timeout=15)
    later = SimNode(tmp_path, "n1")  # a fresh reader, as a one-shot `factoryctl gpus` would be
    after, elapsed = later.reading(0).energy_j, time.time() - started
    idle_w = later.profile.idle_w
    loaded_j = after - before - 1.02 * idle_w * elapsed  # the energy above idle
    assert loaded_j >= 0.9 * (later.profile.peak_w - idle_w) * 1.5  # banked >= 1.5 s loaded (0.9: power noise)
    assert later.reading(0).processes == ()  # the dead rank is dropped


def test_another_process_registered_as_a_rank_keeps_its_energy_when_it_ends_unread(tmp_path: Path):
    """A launcher registers a process it started; nobody reads the node while it runs and ends: the launcher's
    driver banks its energy when its pid goes, so a later reader sees the seconds it ran at full load."""
    import time

    launcher = SimNode(tmp_path, "n1", profile="h100-sxm", gpus=1, workload="idle")
    before, started = launcher.reading(0).energy_j, time.time()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"], text=True)
    _STARTED.append(proc)
    launcher.register_process(proc.pid, [0])
    proc.wait(timeout=30)
    state = tmp_path / "default" / "n1.json"
    wait_for(lambda: json.loads(state.read_text())["processes"] == [])  # the launcher banked it
    later = SimNode(tmp_path, "n1")
    after, elapsed = later.reading(0).energy_j, time.time() - started
    idle_w = later.profile.idle_w
    loaded_j = after - before - 1.02 * idle_w * elapsed
    assert loaded_j >= 0.9 * (later.profile.peak_w - idle_w) * 1.5  # it lived ~2 s after registering
