"""Samples put on the controller's clock: each node's clock estimate, its XIDs' stamps, and the wall clock's steps.

The store and every reader go by the controller's wall clock, but a sample carries its node's time. A node whose
clock is off from ours by more than `CLOCK_OFF_S` (`node_clock`) has its samples re-stamped on our clock, and the
XIDs they list moved with them once, the first time each is listed (`XidStamps`), so an XID is neither stored a day
off its sample nor new again with every estimate. A node whose clock goes off (or is set right) is said once, by
the `on_skew` callback, instead of its samples aging out of the write buffer unseen.

Our own wall clock can step too (NTP, the RTC): it is read through `WallClock`, which tells a step and keeps the
forward ones for retention; every node's offset estimate moves by the step, so none looks a step off after it.
The writer moves its own bookkeeping (node health, log timers, latencies) when it reads a step.

Not locked: the writer calls it under its own lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from factoryctl.model.telemetry import NodeSample
from factoryctl.store.rows import ClockStep
from factoryctl.telemetry.health import XidStamps
from factoryctl.telemetry.node_clock import NodeClock
from factoryctl.telemetry.wall_clock import WallClock

#: Told once per node whose clock went off (or was set right): the node, its clock estimate, our time now.
SkewReport = Callable[[str, NodeClock, float], None]


class ClockCorrection:
    """Every node's clock against ours, and ours against itself: what moves a sample onto the controller's clock."""

    def __init__(
        self,
        clock: Callable[[], float],
        monotonic: Callable[[], float] | None,
        steps: list[ClockStep],
        on_skew: SkewReport,
    ) -> None:
        """Read our wall `clock`, its steps told by `monotonic` (`WallClock`); `steps` are those still in force."""
        self.wall = WallClock(clock, monotonic, steps)
        self._on_skew = on_skew
        self._node_clocks: dict[str, NodeClock] = {}
        self._xid_stamps: dict[str, XidStamps] = {}  # each node's XIDs as put on our clock (moved with its samples)

    def on_our_clock(self, sample: NodeSample, now: float) -> NodeSample:
        """`sample`, its time and its XIDs moved onto our clock (read as `now`) when its node's is off; else itself."""
        mono = self.wall.monotonic()
        node = sample.node
        clock = self._node_clocks.get(node)
        if clock is None:
            clock = self._node_clocks[node] = NodeClock(sample.time - now, mono, mono)
        clock.measure(sample.time - now, mono)
        if clock.due(mono):
            self._on_skew(node, clock, now)
        restamped = clock.restamped(sample.time, now)
        try:
            moved = sample if restamped is None else dataclasses.replace(sample, time=restamped)
        except ValueError:  # a time no clock can show: the store refuses it as it would have the node's own
            return sample
        stamps = self._xid_stamps.get(node)
        if stamps is None:
            stamps = self._xid_stamps[node] = XidStamps()
        return stamps.restamp(moved, moved.time - sample.time)

    def bounded(self, node: str, offset_ceiling: float) -> None:
        """A round trip showed `node`'s offset from our clock is at most `offset_ceiling` (`NodeClock.bounded`)."""
        clock = self._node_clocks.get(node)
        if clock is not None:
            clock.bounded(offset_ceiling)

    def controller_stepped(self, step: float) -> None:
        """Our wall clock jumped `step` seconds (told by `wall.read`): every node's offset moved by it."""
        for clock in self._node_clocks.values():
            clock.controller_stepped(step)

    def forget(self, node: str) -> None:
        """`node` is no longer watched: its clock and XID stamps go (a node added again starts afresh)."""
        self._node_clocks.pop(node, None)
        self._xid_stamps.pop(node, None)
