"""Stopping the collector is bounded overall, however its agents behave.

A controller under load 200 took 58 s to stop after Ctrl-C: links waiting on agents that did not answer `stop` in
10 s were waited for 10 s in all, then a tenth of a second each. Here the nodes are local links to a stand-in agent
(run through the node's `python:`) that streams but never answers `stop` or `shutdown` and ignores EOF and every
signal but KILL; an interval change makes every link ask it to `stop` its stream, and the collector is stopped while
they wait for the answer.
"""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest
from fakefleet import wait_for

from factoryctl.config import FactoryConfig, parse_config
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.collector import Collector

pytestmark = pytest.mark.slow

NODES = 8
STOP_TIMEOUT_S = 10.0  # how long a link waits for the answer to `stop` (`NodeLink.stream_timeout_s`)

DEAF_AGENT = """
import json, os, signal, sys, threading, time
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
marks = sys.argv[1]
node = sys.argv[sys.argv.index("--node") + 1]
open(os.path.join(marks, "started-" + str(os.getpid())), "w").close()
lock = threading.Lock()
def send(message):
    with lock:
        sys.stdout.write(json.dumps(message) + "\\n")
        sys.stdout.flush()
send({"type": "hello", "agent_version": "deaf", "protocol": 1, "backend": "sim", "node": node, "gpus": 0,
      "pid": os.getpid()})
def stream(rid, interval):
    while True:
        send({"id": rid, "type": "sample", "result": {"time": time.time(), "backend": "sim", "gpus": []}})
        time.sleep(interval)
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "stream":
        send({"id": request["id"], "ok": True, "result": {"streaming": True}})
        threading.Thread(target=stream, args=(request["id"], request["interval_s"]), daemon=True).start()
    elif request["op"] in ("stop", "shutdown"):  # never answered
        with open(os.path.join(marks, request["op"] + "-" + node), "w") as mark:
            mark.write(str(os.getpid()))
while True:  # EOF changes nothing either
    time.sleep(60)
"""


def deaf_fleet(tmp_path: Path, interval: float, python: str = "python-deaf") -> FactoryConfig:
    """NODES local nodes streaming every `interval` s from deaf agents (run by `python`, a wrapper of that name)."""
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    agent = tmp_path / "deaf_agent.py"
    agent.write_text(DEAF_AGENT)
    wrapper = tmp_path / python
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {agent} {marks} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    text = (
        f"name: deaf\nnodes:\n  n[1-{NODES}]: {{transport: local, python: {wrapper}}}\n"
        f"controller:\n  interval_s: {interval}\n"
    )
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    return parse_config(text, path, state_dir=tmp_path / "state")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("reconnect", [False, True], ids=["stopped-while-waiting", "retired-by-a-reload-then-stopped"])
def test_stopping_does_not_wait_for_agents_that_never_answer_stop(tmp_path: Path, reconnect: bool) -> None:
    """Also when a reload retired the waiting links just before: the stop used to wait for its swap first."""
    config = deaf_fleet(tmp_path, 0.5)
    store = Store(config.store_path)
    collector = Collector(config, store)
    collector.start()
    marks = tmp_path / "marks"
    try:
        wait_for(lambda: sum(link.connects for link in collector.links.values()) == NODES, 60)
        collector.apply(deaf_fleet(tmp_path, 0.25))  # every link asks its agent to `stop` its stream
        wait_for(lambda: len(list(marks.glob("stop-*"))) == NODES, 60)
        asked = max(path.stat().st_mtime for path in marks.glob("stop-*"))
        if reconnect:  # every node's entry changed: its waiting link is retired, a reload thread waits for it
            collector.apply(deaf_fleet(tmp_path, 0.25, python="python-deaf-too"))
    finally:
        collector.stop()
    stopped = time.time()
    # before the links' own wait for `stop` ran out: what they were asked, not their agents, ended them
    assert stopped < asked + STOP_TIMEOUT_S, f"stop returned {stopped - asked:.1f} s after the last `stop` was sent"
    pids = [int(path.name.removeprefix("started-")) for path in marks.glob("started-*")]
    assert len(pids) >= NODES
    wait_for(lambda: not any(alive(pid) for pid in pids), 30)  # and every agent it started was ended
    store.close()
