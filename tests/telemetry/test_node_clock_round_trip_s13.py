"""A node's clock is judged by its stream's round trip, not by how late its samples arrive; skew lines fold.

A controller under load 200 read its samples a minute late and logged 94 nodes on its own clock as "53 s behind",
one line each. Late is not behind: a stream's first sample is taken after it was asked for, so the node's offset is
at most that sample's time less when it was asked for (`NodeClock.ceiling`); a node is behind only when that is.
"""

from __future__ import annotations

import logging

import pytest

from factoryctl.telemetry.node_clock import CLOCK_OFF_S, CLOCK_REPORT_AFTER_S, NodeClock
from factoryctl.telemetry.state_log import StateLog

DELAY_S = 60.0  # how late every sample is read (the controller's backlog)


def run(clock: NodeClock, offset: float, seconds: int, start: float = 0.0) -> None:
    """A sample a second, each `offset` s off by the time it is read."""
    for k in range(seconds):
        clock.measure(offset, start + k)


def test_samples_read_a_minute_late_are_not_a_clock_behind() -> None:
    # asked for at 0, its first sample (taken at once, on the same clock) read a minute later
    clock = NodeClock(-DELAY_S, DELAY_S, DELAY_S)
    clock.measure(-DELAY_S, DELAY_S, requested_at=0.0)
    run(clock, -DELAY_S, int(CLOCK_REPORT_AFTER_S) * 3, start=DELAY_S + 1)
    assert not clock.off
    assert clock.changed_at is None  # nothing to report
    assert clock.restamped(1000.0, 1000.0 + DELAY_S) is None  # its samples keep their own time


def test_a_node_really_behind_is_still_found_and_restamped() -> None:
    clock = NodeClock(-300.0, 0.5, 0.5)
    clock.measure(-300.0, 0.5, requested_at=0.0)  # the round trip says at most 299.5 s behind
    run(clock, -300.0, int(CLOCK_REPORT_AFTER_S) + 5, start=1.0)
    assert clock.off
    assert clock.restamped(700.0, 1000.0) == pytest.approx(1000.0)
    assert clock.due(1.0 + CLOCK_REPORT_AFTER_S + 4)


def test_a_node_behind_whose_samples_are_late_too_is_behind_by_both() -> None:
    """The round trip bounds it at 300 s behind: found; its samples are stamped when they arrive."""
    clock = NodeClock(-300.0 - DELAY_S, DELAY_S, DELAY_S)
    clock.measure(-300.0 - DELAY_S, DELAY_S, requested_at=0.0)
    run(clock, -300.0 - DELAY_S, 10, start=DELAY_S + 1)
    assert clock.off


def test_a_clock_set_ahead_after_the_request_is_believed() -> None:
    """The bound from the request is stale once a sample shows the node further ahead than it allowed."""
    clock = NodeClock(-300.0, 0.5, 0.5)
    clock.measure(-300.0, 0.5, requested_at=0.0)
    run(clock, -300.0, 5, start=1.0)
    assert clock.off
    run(clock, 3600.0, 5, start=6.0)
    assert clock.off
    assert clock.best == 3600.0
    assert clock.ceiling == 3600.0
    run(clock, 0.0, 40, start=11.0)  # and set right: in step once a window has passed
    assert not clock.off


def test_without_a_request_the_least_delayed_sample_is_all_there_is() -> None:
    """A sink not told of stream requests (the writer's own tests) keeps the window's estimate."""
    clock = NodeClock(-300.0, 0.0, 0.0)
    run(clock, -300.0, 5)
    assert clock.off
    assert clock.ceiling is None


def test_a_controller_step_moves_the_bound_too() -> None:
    clock = NodeClock(-DELAY_S, DELAY_S, DELAY_S)
    clock.measure(-DELAY_S, DELAY_S, requested_at=0.0)
    clock.controller_stepped(-3600.0)  # our clock set an hour back: the node is an hour ahead of it now
    assert clock.ceiling == pytest.approx(3600.0)
    clock.measure(3600.0 - DELAY_S, DELAY_S + 1)
    assert clock.off
    assert clock.best > CLOCK_OFF_S


def test_clock_lines_of_a_tick_fold_by_direction(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.clock_log")
    states = StateLog(log)
    for k, offset in enumerate((-53.2, -8.0, -82.0), start=1):
        states.clock(f"n{k:03d}", offset)
    states.clock("n010", 120.0)
    states.clock("n020", None)
    states.clock("n021", None)
    with caplog.at_level(logging.INFO, logger="test.clock_log"):
        states.write(states.take())
    assert [r.getMessage() for r in caplog.records] == [
        "n[001-003] (3) clocks are 8-82 s behind the controller's; their samples are stamped with the controller's "
        "time until they agree again (check NTP on the nodes).",
        "n010's clock is 120 s ahead of the controller's; its samples are stamped with the controller's time until "
        "it agrees again (check NTP on the node).",
        "n[020-021] (2) clocks agree with the controller's again; their samples keep their own time.",
    ]
