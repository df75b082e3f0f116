"""A controller asked to stop while another process keeps its store locked stops within seconds.

SQLite waited 10 s in C for each write still to come (the flush, the figures, the stop event), and SIGTERM's handler
could not even run meanwhile: 39-68 s in all, past the documented unit's TimeoutStopSec=30, whose SIGKILL loses
them. A stop now cuts every lock wait short (`lock_wait.stop_waiting_for_locks`, 2 s for all of them together).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from fakefleet import FakeFleet, wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.store import lock_wait


def test_a_stop_with_the_store_locked_by_another_writer_ends_within_seconds(tmp_path: Path, fleet: FakeFleet) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(f"state_dir: {tmp_path}\nnodes: {{n1: {{transport: local}}}}\ncontroller: {{interval_s: 0.2}}\n")
    controller = Controller(load_config(path), connector=fleet.connector)
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    holder = None
    try:
        wait_for(lambda: (tmp_path / "factory.db").exists() and "n1" in fleet.procs)
        holder = sqlite3.connect(tmp_path / "factory.db", isolation_level=None, timeout=10)
        holder.execute("BEGIN EXCLUSIVE")  # another process's long write
        time.sleep(0.5)
        asked = time.monotonic()
        controller.request_stop()
        runner.join(30)
        took = time.monotonic() - asked
        cut_short_after = lock_wait._stop_deadline
        controller.request_stop()  # a late signal of a burst, once it has ended
        cut_short_late = lock_wait._stop_deadline
    finally:
        if holder is not None:
            holder.rollback()
            holder.close()
        controller.request_stop()
        runner.join(30)
        lock_wait.wait_for_locks_again()
    assert not runner.is_alive()
    assert took < 10, took  # each remaining write waited BUSY_TIMEOUT_S (10 s) before
    assert cut_short_after is None  # over with the controller: a later writer in this process waits as usual
    assert cut_short_late is None
