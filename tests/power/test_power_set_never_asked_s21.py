"""Ctrl-C on `power set` ends at once for a node never asked, and still waits for one whose request is on its way.

A node whose session was still opening (its agent not started, no limit request sent) kept an interrupted command
5 s (SETTLE_S), said as `waiting up to 5 s for slow to answer: its limits may be changing`, then as `its limits may
have changed`: none could have, as it was never asked. Once the interrupt comes no node is asked any more, and only
those asked are waited for. Real agents on the simulated driver (local transport) and a real SIGINT; the fan-out's
settle with real threads.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

from reaping import reaped
from test_power_set_interrupted import slow_factory
from waiting import wait_for

from factoryctl.config import NodeSpec
from factoryctl.power.limit_progress import LimitProgress
from factoryctl.power.limits import NOT_ASKED, _settled
from factoryctl.transport.fanout import FanOut, Pending


def test_ctrl_c_does_not_wait_for_a_node_still_connecting(cli, tmp_path) -> None:
    factory = slow_factory(tmp_path)  # `fast` answers at once, `slow` never starts its agent: never asked
    argv = [sys.executable, "-m", "factoryctl", "--config", str(factory), "power", "set", "all", "--watts", "333"]
    proc = subprocess.Popen([*argv, "--clamp", "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(proc):
        wait_for(lambda: cli("--config", str(factory), "gpus", "fast", "-o", "json").json()["items"][0]["power_limit_w"]
                 == 333, timeout=60, what="fast at 333 W")  # fmt: skip
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "waiting up to" not in err
    assert json.loads(out)["errors"] == [{"node": "slow", "error": "interrupted", "message": NOT_ASKED}]
    assert "factoryctl: interrupted; 2 GPU limit(s) changed and recorded." in err.splitlines()
    audit = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    assert [(e["node"], e["outcome"]) for e in audit] == [("fast", "confirmed"), ("fast", "confirmed")]  # slow's: gone


def test_the_settle_waits_for_the_nodes_asked_only() -> None:
    """`connecting` runs but was never asked: said never started, not waited for; `asked` is waited for and named."""
    release, started = threading.Event(), threading.Semaphore(0)

    def work(node: NodeSpec) -> None:
        started.release()
        release.wait(30)

    pool = FanOut([NodeSpec(name="connecting", host="c"), NodeSpec(name="asked", host="a")], work, fanout=2)
    threading.Thread(target=lambda: pool.run(), daemon=True).start()
    for _ in range(2):
        assert started.acquire(timeout=30)
    notes: list[str] = []
    try:
        settled = _settled(pool, 0.2, KeyboardInterrupt(), LimitProgress(note=notes.append), {}, "asked".__eq__)
    finally:
        release.set()
    assert [(node.name, outcome) for node, outcome in settled] == [
        ("connecting", Pending.NOT_STARTED),
        ("asked", Pending.RUNNING),
    ]
    assert notes == [
        "waiting up to 0.2 s for asked to answer: its limits may be changing; Ctrl-C again stops the wait."
    ]
