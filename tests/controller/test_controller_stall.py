"""A controller that was itself stopped (SIGSTOP, a paused VM, swapping) does not take its nodes for silent.

Stopped for 12 s, it reported 5 of 6 healthy nodes `down` ("no sample for 12 s; reconnecting.") and rebuilt their
links within 20 ms of going on, although their samples were waiting in the pipes (one sample lost to each needless
reconnect); every event pages someone.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cli_process import CLI_ARGV
from store_rows import count_while_created, event_kinds
from waiting import wait_for

pytestmark = pytest.mark.slow

#: Past the 10 s of silence after which a link is rebuilt (telemetry.links.STALL_MIN_S at a 1 s interval).
STOPPED_S = 11.0
#: Judged this long after going on, a node taken for silent since the stop would be `degraded` (after 1.5 s).
JUDGED_AFTER_MS = 2000
UPS_SQL = "SELECT COUNT(*) FROM event WHERE kind = 'node_up'"
#: The nodes with a sample stored from `?` (ms) on: the tick that stored it judged them after that moment.
SAMPLED_FROM_SQL = "SELECT COUNT(DISTINCT node_id) FROM sample WHERE t_ms >= ?"


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A real controller of three simulated local nodes at a 1 s interval; its log goes to `controller.log`."""
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nnodes:\n  n[1-3]: {{transport: local, sim: h100-sxm, gpus: 1}}\n"
        "controller:\n  interval_s: 1\n"
    )
    log = tmp_path / "controller.log"
    with log.open("wb") as err:
        argv = [*CLI_ARGV, "--config", str(config)]
        proc = subprocess.Popen([*argv, "controller", "run"], stderr=err)
    try:
        yield proc, tmp_path
    finally:
        proc.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.terminate()
        proc.wait(20)


def test_a_stopped_controller_does_not_report_its_nodes_down(
    controller: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, tmp_path = controller
    state = tmp_path / "state"
    db = state / "factory.db"
    wait_for(lambda: count_while_created(db, UPS_SQL) == 3, what="three nodes up")
    time.sleep(2)  # streaming steadily

    proc.send_signal(signal.SIGSTOP)
    wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED)
    time.sleep(STOPPED_S)
    proc.send_signal(signal.SIGCONT)
    judged_from_ms = int(time.time() * 1000) + JUDGED_AFTER_MS  # a link judged for the stop is rebuilt at once
    wait_for(lambda: count_while_created(db, SAMPLED_FROM_SQL, judged_from_ms) == 3, what="every node judged since")

    kinds = event_kinds(db)
    assert kinds.count("node_up") == 3, kinds
    assert "node_down" not in kinds, kinds
    assert "node_degraded" not in kinds, kinds
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    log = (tmp_path / "controller.log").read_text()
    assert "no sample for" not in log
    assert "the controller was stalled for 1" in log  # 12 or 13 s
    assert "(paused, swapped or suspended); nodes given time to catch up" in log
    assert '"connects": 3' in log  # no link was rebuilt for it
