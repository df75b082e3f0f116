"""The stall rule on clocks moved by hand: a heartbeat that wakes far later than due means the controller itself did
not run, and its nodes are judged from the stall's end, not for the stall (see test_controller_stall.py for a
real SIGSTOP)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clocks import Clocks, sample, writer_for

from factoryctl.store.sqlite import Store
from factoryctl.telemetry.stall_watch import StallWatch, late_for_stall_s


def test_a_late_wake_up_is_a_stall_and_a_busy_moment_is_not() -> None:
    clocks = Clocks()
    watch = StallWatch(1.0, monotonic=lambda: clocks.mono)
    clocks.tick(0.25 + 0.9)  # late by 0.9 s: a busy machine
    assert watch.beat() is None
    clocks.tick(12.0)
    assert watch.beat() == pytest.approx(12.0)
    assert late_for_stall_s(0.1) == 1.0
    assert late_for_stall_s(5.0) == 5.0


def test_silence_is_counted_from_the_stall_whoever_wakes_first() -> None:
    clocks = Clocks()
    watch = StallWatch(1.0, monotonic=lambda: clocks.mono)
    heard = clocks.mono
    clocks.tick(12.0)
    ended = clocks.mono
    assert watch.silence_from(heard) == ended  # the heartbeat has not run yet: stalled until now
    clocks.tick(0.1)
    assert watch.beat() == pytest.approx(12.1)  # the heartbeat logs the stall, which ended when it was first noticed
    clocks.tick(0.25)
    assert watch.silence_from(heard) == ended
    assert watch.silence_from(ended + 0.1) == ended + 0.1  # heard after the stall: its own silence
    for _ in range(20):  # the heartbeat on time again: a node silent since the stall is judged as usual
        clocks.tick(0.25)
        assert watch.beat() is None
    assert watch.silence_from(ended) == ended


def test_the_writer_judges_nodes_from_the_end_of_its_stall(tmp_path: Path) -> None:
    clocks = Clocks()
    store = Store(tmp_path / "factory.db")
    watch = StallWatch(1.0, monotonic=lambda: clocks.mono)
    writer = writer_for(store, clocks, ["n1", "n2"])
    writer._stall_watch = watch  # writer_for makes it without one

    def run_for(seconds: float) -> None:
        """Time passes with the heartbeat on time."""
        for _ in range(int(seconds / 0.25)):
            clocks.tick(0.25)
            watch.beat()

    for _ in range(3):
        for node in ("n1", "n2"):
            writer.offer(sample(node, clocks.wall))
        writer.flush()
        run_for(1.0)
    clocks.tick(12.0)  # stopped: the writer wakes before the heartbeat and the reader threads
    writer.flush()
    assert {s.state for s in writer.states().values()} == {"up"}
    writer.offer(sample("n1", clocks.wall))  # n1's waiting samples are read; n2 is really silent
    run_for(0.5)
    writer.flush()
    assert {n: s.state for n, s in writer.states().items()} == {"n1": "up", "n2": "up"}
    run_for(1.25)
    writer.flush()
    assert writer.states()["n2"].state == "degraded"  # silence after the stall is its own
    run_for(2.0)
    writer.flush()
    n2 = writer.states()["n2"]
    assert (n2.state, n2.message) == ("down", "3 samples missed.")
    store.close()
