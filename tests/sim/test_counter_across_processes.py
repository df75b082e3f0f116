"""The energy counter never goes backwards for a reader, and follows from the committed history alone.

Two ways it did: a writer takes its checkpoint's time under the file lock but replaces the file a little later, and
a reader that meanwhile computed past that time from the old file (at the old, higher limit) reported more than the
new file's history then gave; and under thermal slowdown a checkpoint taken mid-second made the rest of that second
be decided by the mid-second temperature, so a process that continued from it disagreed with one that had not.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

import factoryctl.sim.state as state_module
from factoryctl.sim.state import SimNode


def loaded_node(tmp_path: Any, name: str, clock: Any) -> SimNode:
    """A node whose GPU 0 carries this process's full load (672 W uncapped), at the start of a second + 0.25."""
    node = SimNode(tmp_path / name, "n1", profile="h100-sxm", gpus=1, seed=4, workload="idle", clock=clock)
    node.register_process(os.getpid(), [0], load=1.0)
    return node


def test_a_reading_taken_while_a_change_is_being_written_does_not_outrun_it(tmp_path, clock, monkeypatch):
    reader = loaded_node(tmp_path, "s", clock)
    writer = SimNode(tmp_path / "s", "n1", clock=clock)
    reader.reading(0)
    written = threading.Event()
    slow_disk = state_module.write_json

    def write_slowly(path: Any, data: Any) -> Any:
        written.wait(5.0)  # the writer holds the lock, its checkpoint time already taken
        return slow_disk(path, data)

    monkeypatch.setattr(state_module, "write_json", write_slowly)
    setting = threading.Thread(target=writer.set_power_limit, args=(0, 200.0))
    setting.start()
    while not _locked(writer):  # the writer's checkpoint time taken, its file not yet written
        time.sleep(0.001)
    clock.advance(0.5)
    threading.Timer(0.2, written.set).start()
    during = reader.reading(0).energy_j  # before: 0.5 s at 672 W from the old file
    setting.join()
    monkeypatch.setattr(state_module, "write_json", slow_disk)
    clock.advance(0.1)
    after = reader.reading(0).energy_j
    assert after >= during
    assert reader.reading(0).limit_w == 200.0


def _locked(node: SimNode) -> bool:
    """Whether someone holds `node`'s file lock (the writer thread has taken its checkpoint time)."""
    import fcntl

    fd = os.open(node.lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_checkpoint_taken_mid_second_in_thermal_slowdown_changes_nothing(tmp_path, clock):
    checkpointed = loaded_node(tmp_path, "a", clock)
    untouched = loaded_node(tmp_path, "b", clock)
    for node in (checkpointed, untouched):
        node.inject("hot")
    for _ in range(400):  # through the climb to the slowdown temperature and minutes of hovering there
        clock.advance(1.0)
        checkpointed.heartbeat(os.getpid())  # a checkpoint at .25 of every second
        untouched.reading(0)
    a, b = checkpointed.reading(0), untouched.reading(0)
    assert a.reasons & 0x20  # in slowdown
    assert a.energy_j == pytest.approx(b.energy_j, rel=1e-12)  # the same seconds, summed in other pieces
    assert a.temperature_c == pytest.approx(b.temperature_c, rel=1e-12)


def test_a_reader_whose_state_dir_is_removed_keeps_answering(tmp_path, clock):
    import shutil

    node = loaded_node(tmp_path, "gone", clock)
    before = node.reading(0).energy_j
    shutil.rmtree(tmp_path / "gone")
    clock.advance(1.0)
    assert node.reading(0).energy_j > before  # from what it holds, as before: no endless re-reading


def test_a_rank_killed_mid_second_does_not_take_back_what_was_reported(tmp_path, clock):
    """A rank killed (no unregistering, nobody watching) is dropped by the next reader: the second it had already
    been reported in was recomputed without its load, taking back up to a second of it."""
    import signal
    import subprocess
    import sys

    reader = SimNode(tmp_path / "k", "n1", profile="h100-sxm", gpus=1, workload="idle", clock=clock)
    code = (
        "import os, sys, time\n"
        "from factoryctl.sim.state import SimNode\n"
        "node = SimNode(sys.argv[1], 'n1', clock=lambda: float(sys.argv[2]))\n"
        "node.register_process(os.getpid(), [0])\n"
        "print('registered', flush=True)\n"
        "time.sleep(60)\n"
    )
    rank = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "k"), repr(clock.now)], stdout=subprocess.PIPE)
    try:
        assert rank.stdout is not None
        assert rank.stdout.readline() == b"registered\n"
        clock.advance(0.5)
        loaded = reader.reading(0)
        assert loaded.power_w > 600
    finally:
        rank.send_signal(signal.SIGKILL)
        rank.wait()
    clock.advance(0.5)  # into the next second: the rank is seen gone
    after = reader.reading(0)
    assert after.power_w < 100
    assert after.energy_j >= loaded.energy_j
