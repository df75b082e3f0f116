"""The dashboard's own collector and the controller judge a node with one state machine, so they never disagree.

`nodes list` reads the states the controller stored; `dash` with no controller judges the nodes itself. The dashboard
re-implemented the controller's rule and had drifted from it: a broken link made a node `down` at once there while
the controller has it `degraded` (docs/controller.md, "Node states"), and a silent node was "no sample for 2 s" there
and "1 sample missed." in the store. Here one history (a sample, a broken link, a link made again, silence, agent
error samples) is fed to a real `StoreWriter` over a real store and to a `PolledServices` node, both on one clock the
test moves, and after every step the state and reason the store holds are the ones the dashboard shows, and the
dashboard's events say what the controller's say.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.errors import NodeError
from factoryctl.live.services_polled import PolledServices
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.writer import StoreWriter

LOST = NodeError("n1", "refused", "n1: connection lost while reading")
TIMED_OUT = NodeError("n1", "driver", "n1: nvidia-smi failed: timed out")


class Clock:
    """One clock for both judges, moved by hand: the writer's wall clock and the dashboard's monotonic one."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class BothJudges:
    """The controller's writer and the dashboard's node n1, told the same thing at the same time."""

    def __init__(self, tmp_path: Path, clock: Clock) -> None:
        self.clock = clock
        self.store = Store(tmp_path / "factory.db")
        self.writer = StoreWriter(self.store, 1.0, clock=clock, monotonic=clock)
        self.writer.set_nodes(["n1"])
        yaml = "name: t\ncontroller: {interval_s: 1.0}\nnodes:\n  n1: {transport: local, sim: h100-sxm}\n"
        config = parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state")
        self.services = PolledServices(config, use_store=False)  # threads never started: judged here, on `clock`
        self.services.monotonic = clock
        self.node = self.services._nodes["n1"]

    def sample(self) -> None:
        sample = NodeSample("n1", self.clock.now, gpus=(GpuSample("n1", 0, power_w=300.0),))
        self.writer.offer(sample)
        self.node.offer(sample)

    def link_failed(self) -> None:
        self.writer.link_failed("n1", LOST)
        self.node.link_failed("n1", LOST)

    def link_connected(self) -> None:
        self.writer.link_connected("n1")
        self.node.link_connected("n1")

    def sample_failed(self) -> None:
        self.writer.sample_failed("n1", TIMED_OUT)
        self.node.sample_failed("n1", TIMED_OUT)

    def both_say(self) -> tuple[tuple[str, str | None, str | None], tuple[str, str | None, str | None]]:
        """(state, error, message) as `nodes list` reads it from the store, and as the dashboard shows it."""
        self.writer.flush()
        [(stored, _)] = self.store.latest()
        shown = self.node.judge()
        return (stored.state, stored.error, stored.message), (shown.state, shown.error, shown.message)

    def events(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The node state events (kind, message) the controller stored, and those the dashboard announced."""
        stored = [(e.kind, e.message) for e in self.store.events(0) if e.kind.startswith("node_")]
        shown = [(e.kind, e.message) for e in self.services._events if e.kind.startswith("node_")]
        return stored, shown


@pytest.fixture
def judges(tmp_path: Path) -> Iterator[BothJudges]:
    both = BothJudges(tmp_path, Clock())
    yield both
    both.services.close()
    both.writer.stop()
    both.store.close()


def steps(both: BothJudges) -> list[tuple[float, Callable[[], None] | None, str]]:
    """(seconds on, what happens then, the state both must show after it)."""
    return [
        (0.0, both.sample, "up"),
        (0.5, both.link_failed, "degraded"),  # a broken link degrades at once, with its reason (was down there)
        (0.2, both.link_connected, "degraded"),
        (1.0, None, "degraded"),
        (2.0, None, "down"),  # 4 s silent: "3 samples missed", the old link's reason no longer says why
        (1.0, both.sample, "up"),
        (0.3, both.sample_failed, "up"),  # one failed poll after a good sample is no outage
        (1.3, None, "up"),  # a new link's stream: its second sample may come 1.5 intervals after its first
        (0.5, None, "degraded"),  # silence judges it, with the agent's reason
        (2.0, None, "down"),
        (0.5, both.sample, "up"),
        (1.6, None, "degraded"),  # "1 sample missed."
        (2.0, None, "down"),  # "3 samples missed."
        (0.5, both.link_failed, "down"),  # a down node failing another way says why
        (0.5, both.sample, "up"),
    ]


def test_the_store_and_the_dashboard_show_the_same_state_and_reason_at_every_step(judges: BothJudges) -> None:
    for number, (seconds, then, state) in enumerate(steps(judges)):
        judges.clock.now += seconds
        if then is not None:
            then()
        stored, shown = judges.both_say()
        assert (number, shown) == (number, stored)
        assert (number, stored[0]) == (number, state)


def test_the_dashboard_announces_what_the_controller_records(judges: BothJudges) -> None:
    for seconds, then, _ in steps(judges):
        judges.clock.now += seconds
        if then is not None:
            then()
        judges.both_say()
    stored, shown = judges.events()
    assert stored[0] == ("node_up", "n1 is up")  # the first answer: stored, but no news on the dashboard
    assert shown == stored[1:]
    assert ("node_degraded", "n1 is degraded: 1 sample missed.") in shown
    assert ("node_degraded", "n1 is degraded: connection lost while reading") in shown
