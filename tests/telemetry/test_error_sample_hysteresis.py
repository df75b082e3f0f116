"""An agent's failed sample is no outage of its own; a failure before a reconnect is not why the node is silent after.

An agent failing one poll in two (an nvidia-smi that times out now and then) made its node `degraded` at every error
sample and `up` at the next good one: 20 events in 20 s and a warning every other second. Now a failed sample from a
node up with a recent good sample changes nothing but the reason kept: if no good sample follows, silence degrades
the node and takes it down, with that reason. A node never seen up is down with the reason at once, and a broken link
still degrades its node at once. A link that broke and was made again, and whose new stream stays silent, goes down as
"3 samples missed", not with the reason of the connection it replaced. The writers here run on a clock the test moves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fakefleet import FakeFleet, make_config, wait_for

from factoryctl.errors import NodeError
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.links import Backoff, NodeLink
from factoryctl.telemetry.writer import StoreWriter

TIMED_OUT = NodeError("n1", "driver", "n1: nvidia-smi failed: timed out")
LOST = NodeError("n1", "refused", "n1: connection lost while reading")


class Clock:
    """The writer's wall clock, moved by hand (a clock given alone is step-free to the writer)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def writer_on(store: Store, clock: Clock) -> StoreWriter:
    writer = StoreWriter(store, 1.0, clock=clock)
    writer.set_nodes(["n1"])
    return writer


def good(clock: Clock) -> NodeSample:
    return NodeSample("n1", clock.now, gpus=(GpuSample("n1", 0, power_w=300.0),))


def said(store: Store) -> list[tuple[str, str]]:
    return [(e.kind, e.message) for e in store.events(0) if e.kind.startswith("node_")]


def at(clock: Clock, writer: StoreWriter, seconds: float, then: Callable[[], None] | None = None) -> None:
    """Move the clock `seconds` on, do `then`, and let the writer judge and write."""
    clock.now += seconds
    if then is not None:
        then()
    writer.flush()


def test_good_and_failed_samples_in_turn_keep_the_node_up_and_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, clock = Store(tmp_path / "factory.db"), Clock()
    writer = writer_on(store, clock)
    with caplog.at_level(logging.DEBUG, logger="factoryctl.telemetry"):
        for i in range(20):
            if i % 2 == 0:
                at(clock, writer, 1.0, lambda: writer.offer(good(clock)))
            else:
                at(clock, writer, 1.0, lambda: writer.sample_failed("n1", TIMED_OUT))
    assert said(store) == [("node_up", "n1 is up")]  # was node_degraded and node_up, 20 events in 20 s
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r.getMessage() for r in caplog.records if "timed out" in r.getMessage()] == [
        "n1: nvidia-smi failed: timed out"
    ] * 10
    state = writer.states()["n1"]
    assert (state.state, state.error, state.message) == ("up", None, None)
    store.close()


def test_a_failed_sample_then_silence_degrades_and_takes_down_with_the_agents_reason(tmp_path: Path) -> None:
    store, clock = Store(tmp_path / "factory.db"), Clock()
    writer = writer_on(store, clock)
    at(clock, writer, 0.0, lambda: writer.offer(good(clock)))
    at(clock, writer, 0.2, lambda: writer.sample_failed("n1", TIMED_OUT))
    assert writer.states()["n1"].state == "up"  # one failed poll: not an outage
    at(clock, writer, 1.2)  # 1.4 s of silence: no sample missed yet
    assert writer.states()["n1"].state == "up"
    at(clock, writer, 0.2)  # 1.6 s: one sample missed
    degraded = writer.states()["n1"]
    assert (degraded.state, degraded.error, degraded.message) == ("degraded", "driver", TIMED_OUT.message)
    at(clock, writer, 2.0)  # 3.6 s: three missed
    down = writer.states()["n1"]
    assert (down.state, down.error, down.message) == ("down", "driver", TIMED_OUT.message)  # not "3 samples missed"
    at(clock, writer, 1.0, lambda: writer.offer(good(clock)))
    assert writer.states()["n1"].state == "up"
    assert said(store) == [
        ("node_up", "n1 is up"),
        ("node_degraded", "n1 is degraded: nvidia-smi failed: timed out"),
        ("node_down", "n1 is down: nvidia-smi failed: timed out"),
        ("node_up", "n1 is up"),
    ]
    store.close()


def test_a_node_never_seen_up_is_down_with_the_reason_at_once(tmp_path: Path) -> None:
    store, clock = Store(tmp_path / "factory.db"), Clock()
    writer = writer_on(store, clock)
    at(clock, writer, 0.1, lambda: writer.sample_failed("n1", TIMED_OUT))
    state = writer.states()["n1"]
    assert (state.state, state.error, state.message) == ("down", "driver", TIMED_OUT.message)
    assert said(store) == [("node_down", "n1 is down: nvidia-smi failed: timed out")]  # never a fake up
    store.close()


def test_a_broken_link_still_degrades_the_node_at_once(tmp_path: Path) -> None:
    store, clock = Store(tmp_path / "factory.db"), Clock()
    writer = writer_on(store, clock)
    at(clock, writer, 0.0, lambda: writer.offer(good(clock)))
    at(clock, writer, 0.2, lambda: writer.link_failed("n1", LOST))
    state = writer.states()["n1"]
    assert (state.state, state.error, state.message) == ("degraded", "refused", LOST.message)
    store.close()


@pytest.mark.parametrize("how", ["reconnect", "reload"])
def test_silence_after_the_link_is_made_again_is_not_the_old_failure(tmp_path: Path, how: str) -> None:
    store, clock = Store(tmp_path / "factory.db"), Clock()
    writer = writer_on(store, clock)
    at(clock, writer, 0.0, lambda: writer.offer(good(clock)))
    at(clock, writer, 0.2, lambda: writer.link_failed("n1", LOST))
    assert writer.states()["n1"].state == "degraded"
    if how == "reconnect":
        writer.link_connected("n1")
    else:
        writer.awaiting_stream(["n1"])  # a reload re-streams it: held until it streams, fails or 60 s pass
    at(clock, writer, 61.0)
    down = writer.states()["n1"]
    assert down.state == "down"
    assert (down.error, down.message) == ("timeout", "60 samples missed.")  # was LOST's, from before the link


def test_a_link_tells_the_writer_when_it_is_made_again(tmp_path: Path, fleet: FakeFleet) -> None:
    """A real link: its agent killed, it reconnects to a silent one; the writer's clock stands still meanwhile."""
    store, clock = Store(tmp_path / "factory.db"), Clock()
    writer = writer_on(store, clock)
    config = make_config(tmp_path, nodes="n1", interval=1.0)
    link = NodeLink(config.nodes["n1"], 1.0, fleet.connector(config), writer, Backoff(0.05, 0.1), stall_s=600)
    link.start()
    try:
        wait_for(lambda: writer.states()["n1"].state == "up", 30.0)
        fleet.args["n1"] = ["--stall-after", "1"]  # the next agent streams nothing
        fleet.kill("n1")
        wait_for(lambda: link.connects == 2, 30.0)
        broken = writer.states()["n1"]
        assert (broken.state, broken.error) == ("degraded", "agent"), broken
        at(clock, writer, 5.0)
    finally:
        link.stop()
        link.join(30.0)
    down = writer.states()["n1"]
    assert (down.state, down.error, down.message) == ("down", "timeout", "4 samples missed."), down
    store.close()
