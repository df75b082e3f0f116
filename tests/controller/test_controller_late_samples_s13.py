"""Samples that arrive late are not a node's clock behind: the controller judges by its stream's round trip.

Under load 200 a controller read its samples up to a minute late and logged 94 nodes on its own clock as behind
theirs ("n199's clock is 53 s behind the controller's"), and stamped their samples with its own time. Here a node is
a real local link to a stand-in agent (its `python:`) that sends every sample 6 s after it took it, on the
controller's own clock, for longer than a skew takes to be reported: nothing is, and its samples keep their times.
"""

from __future__ import annotations

import stat
import sys
import threading
import time
from pathlib import Path

import pytest
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.node_clock import CLOCK_REPORT_AFTER_S, CLOCK_TRUST_S

pytestmark = pytest.mark.slow

LATE_S = 6.0  # more than CLOCK_OFF_S, less than a link's 10 s of silence

SLOW_AGENT = f"""
import json, os, sys, threading, time
taken_log = open(sys.argv[1], "a")
node = sys.argv[sys.argv.index("--node") + 1]
lock = threading.Lock()
def send(message):
    with lock:
        sys.stdout.write(json.dumps(message) + "\\n")
        sys.stdout.flush()
GPU = {{"index": 0, "uuid": "GPU-slow-0", "name": "Slow H100", "power_w": 100.0, "utilization_pct": 50.0}}
send({{"type": "hello", "agent_version": "slow", "protocol": 1, "backend": "sim", "node": node, "gpus": 1,
      "pid": os.getpid()}})
def stream(rid, interval):
    taken = []
    def later():
        while True:
            if taken and taken[0] + {LATE_S} <= time.time():
                send({{"id": rid, "type": "sample", "result": {{"time": taken.pop(0), "backend": "sim", "gpus": [GPU]}}}})
            else:
                time.sleep(0.05)
    threading.Thread(target=later, daemon=True).start()
    while True:
        taken.append(time.time())
        taken_log.write(repr(taken[-1]) + "\\n")
        taken_log.flush()
        time.sleep(interval)
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "stream":
        send({{"id": request["id"], "ok": True, "result": {{"streaming": True}}}})
        threading.Thread(target=stream, args=(request["id"], request["interval_s"]), daemon=True).start()
    else:
        send({{"id": request["id"], "ok": True, "result": {{}}}})
        if request["op"] == "shutdown":
            break
"""


def slow_python(tmp_path: Path) -> Path:
    agent = tmp_path / "slow_agent.py"
    agent.write_text(SLOW_AGENT)
    wrapper = tmp_path / "python-slow"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {agent} {tmp_path / "taken"} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def test_samples_read_late_are_neither_reported_as_skew_nor_restamped(tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: late\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  slow: {{transport: local, python: {slow_python(tmp_path)}}}\n"
        "controller:\n  interval_s: 0.5\n"
    )
    controller = Controller(load_config(path))
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: controller.collector is not None and controller.collector.writer.counters["samples"] > 0, 60)
        time.sleep(CLOCK_TRUST_S + CLOCK_REPORT_AFTER_S + 5)  # what a skew takes to be reported, and more
    finally:
        controller.request_stop()
        runner.join(30)
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        assert [e.message for e in store.events(0) if e.kind == "clock_skew"] == []
        stored = [row["time"] for row in store.export(["slow"], 0, time.time() + 60)]
        taken = {round(float(line) * 1000) for line in (tmp_path / "taken").read_text().split()}  # the store's ms
        assert len(stored) > 20
        assert [t for t in stored if round(t * 1000) not in taken] == []  # their own times, not when they arrived
    finally:
        store.close()
