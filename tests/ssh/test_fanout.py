"""The bounded, interruptible fan-out (unit tests: no sshd)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from factoryctl.errors import ActionFailed, NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.fanout import fan_out

NODES = [NodeSpec(f"n{i:02d}", "h") for i in range(20)]


def test_order_bound_and_errors():
    running, peak, lock = [0], [0], threading.Lock()

    def work(node: NodeSpec) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        if node.name == "n03":
            raise ActionFailed("boom", "hint")
        if node.name == "n04":
            raise ValueError("odd")
        return node.name

    results = fan_out(NODES, work, fanout=4)
    assert [n.name for n, _ in results] == [n.name for n in NODES]
    assert results[0][1] == "n00"
    assert isinstance(results[3][1], NodeError)
    assert (results[3][1].kind, results[3][1].message) == ("agent", "boom")
    assert isinstance(results[4][1], NodeError)
    assert peak[0] <= 4


def test_ctrl_c_leaves_at_once():
    stuck = threading.Event()
    ctrl_c = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    ctrl_c.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            fan_out(NODES[:2], lambda node: stuck.wait(30), fanout=2)
        assert time.monotonic() - started < 5
    finally:
        ctrl_c.join()  # a SIGINT must never reach a later test
        stuck.set()  # the workers left behind end now, not in 30 s
