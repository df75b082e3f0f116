"""A node that is fine is never `degraded` at a controller's start: its stream's second sample may come 1.5 intervals on.

An agent takes a stream's first sample at once and the next at the first wall-clock multiple of the interval at least
half an interval later (agent/schedule.py `next_due`): up to one and a half intervals after the first. The judge
called a node `degraded` after one and a half intervals of silence, so a stream started just past half an interval
had no room left for delay: under load, a node logged `degraded: 1 sample missed` and `up` again within a second,
about 6 s after a controller (re)start, and a `node_degraded` event stayed in the store. Seen in a reviewer's store
(interval 1 s): g10's first sample stamped at :53.581, its second at :55.005 (on the grid), delivered 0.22 s late;
degraded at :55.138, up at :55.226. The samples here follow the agent's own schedule; no load, no threads.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from factoryctl.agent.schedule import next_due
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.health import NodeHealth
from factoryctl.telemetry.writer import StoreWriter

T0 = 1_800_000_000.0  # on every interval's grid: a phase added to it is the phase on the grid
TICK_S = 0.05  # how often the tests judge silence (the writer judges at every flush)


def first_two_samples(start: float, interval_s: float) -> tuple[float, float]:
    """When an agent whose stream starts at `start` takes its first two samples (its clocks agree with ours)."""
    taken = start + 0.01  # reading the driver
    return start, next_due(start, taken, taken, interval_s)


def judged(health: NodeHealth, start: float, end: float) -> list[tuple[str, str | None]]:
    """The changes (state, message) its judge makes while time passes from `start` to `end` with no sample."""
    changes = []
    for step in range(1, int((end - start) / TICK_S) + 1):
        change = health.tick(start + step * TICK_S)
        if change is not None:
            changes.append((change.state, change.message))
    return changes


def degraded_between_first_two(interval_s: float, phase: float) -> list[tuple[str, str | None]]:
    """The changes to a node whose stream starts at `phase` of an interval, its second sample 0.4 intervals late."""
    first, second = first_two_samples(T0 + 7 * interval_s + phase * interval_s, interval_s)
    late = 0.4 * max(interval_s, 0.5)  # less than the half interval of grace every sample has
    health = NodeHealth("n1", interval_s)
    health.connected()  # its first link: the controller just started
    health.seen(first)
    changes = judged(health, first, second + late)
    change = health.seen(second + late)
    return changes + ([(change.state, change.message)] if change is not None else [])


@pytest.mark.parametrize("interval_s", [0.2, 1.0, 2.0])
def test_a_node_on_schedule_is_never_degraded_between_its_first_two_samples(interval_s: float) -> None:
    """Whatever the phase of the stream's start on the grid (was: every start past half an interval, here)."""
    flapped = {
        phase: changes
        for phase in (p / 50 for p in range(50))
        if (changes := degraded_between_first_two(interval_s, phase))
    }
    assert flapped == {}


@pytest.mark.parametrize("interval_s", [1.0, 2.0])
def test_a_node_whose_second_sample_never_comes_is_degraded_then_down(interval_s: float) -> None:
    """At most one and a half intervals after the first sample the second is due: missed half an interval after."""
    health = NodeHealth("n1", interval_s)
    health.connected()
    health.seen(T0)
    changes = judged(health, T0, T0 + 4.1 * interval_s)
    assert changes == [("degraded", "1 sample missed."), ("down", "3 samples missed.")]
    assert health.state == "down"


def test_only_the_second_sample_is_given_the_alignment() -> None:
    """Once on the grid, samples are an interval apart: the usual half interval of grace, as before."""
    health = NodeHealth("n1", 1.0)
    health.connected()
    health.seen(T0 + 0.6)
    health.seen(T0 + 2.0)  # on the grid: the next is due at T0 + 3.0
    assert judged(health, T0 + 2.0, T0 + 3.45) == []
    assert judged(health, T0 + 3.45, T0 + 3.6) == [("degraded", "1 sample missed.")]


class Clock:
    """The writer's wall clock, moved by hand (a clock given alone is step-free to the writer)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def node_events(store: Store) -> list[tuple[str, str]]:
    return [(e.kind, e.message) for e in store.events(0) if e.kind.startswith("node_")]


def run_until(writer: StoreWriter, clock: Clock, until: float, sample: NodeSample | None = None) -> None:
    """Flush every `TICK_S` until `until`, then hand over `sample` (arriving then) and flush."""
    while clock.now + TICK_S < until:
        clock.now += TICK_S
        writer.flush()
    clock.now = until
    if sample is not None:
        writer.offer(sample)
    writer.flush()


def gpu_sample(at: float) -> NodeSample:
    return NodeSample("n1", at, gpus=(GpuSample("n1", 0, power_w=300.0),))


def test_a_restarted_controller_records_no_degraded_node_between_its_first_two_samples(tmp_path: Path) -> None:
    """The reviewer's g10 (interval 1 s), restarted from its stored `up`: no `node_degraded`, no `node_up` event."""
    base = float(int(time.time()))  # the writer trims samples older than its buffer: near now, on the grid
    store = Store(tmp_path / "factory.db")
    clock = Clock(base)
    before = StoreWriter(store, 1.0, clock=clock)  # the controller killed later
    before.set_nodes(["n1"])
    before.link_connected("n1")
    for second in range(1, 4):
        run_until(before, clock, base + second + 0.02, gpu_sample(base + second))
    assert node_events(store) == [("node_up", "n1 is up")]
    clock.now = base + 50.0  # `kill -9`, started again
    after = StoreWriter(store, 1.0, clock=clock)
    after.set_nodes(["n1"])
    after.flush()
    run_until(after, clock, base + 53.4)
    after.link_connected("n1")
    run_until(after, clock, base + 53.63, gpu_sample(base + 53.581))  # taken at once
    run_until(after, clock, base + 55.226, gpu_sample(base + 55.005))  # on the grid, delivered 0.22 s late
    run_until(after, clock, base + 56.03, gpu_sample(base + 56.0))
    assert node_events(store) == [("node_up", "n1 is up")]
    assert after.states()["n1"].state == "up"
    store.close()


def test_a_reconnected_node_gets_the_same_allowance_for_its_new_streams_second_sample() -> None:
    """A rebuilt link starts a new agent's stream: its second sample is on the grid again, up to 1.5 intervals on."""
    health = NodeHealth("n1", 1.0)
    health.connected()
    health.seen(T0)
    health.seen(T0 + 1.0)
    health.failed(T0 + 1.2, "refused", "refused the connection")
    health.connected()
    health.seen(T0 + 5.0)  # the new stream's first sample
    assert health.tick(T0 + 6.9) is None  # its second is due by 6.5 at the latest, plus the usual half interval
    change = health.tick(T0 + 7.1)
    assert change is not None
    assert change.state == "degraded"
