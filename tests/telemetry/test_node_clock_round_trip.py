"""Skew lines fold, as state lines do; and a clock set back while its node streams is still found.

A controller logged 94 nodes "N s behind" one line each; the clock lines of a tick now fold by direction. The round
trip bound that was to tell a late sample from a node behind (a stream's first sample) went stale once the node's
clock was set back mid-stream, and such a node was never found again while its link lived: its samples were dropped
or mis-stamped. It was taken out; the least delayed sample of a window is what judges (docs/controller.md, Clocks).
"""

from __future__ import annotations

import logging

import pytest

from factoryctl.telemetry.node_clock import CLOCK_OFF_S, NodeClock
from factoryctl.telemetry.state_log import StateLog


def test_a_clock_set_back_while_its_node_streams_is_found() -> None:
    clock = NodeClock(0.0, 0.0, 0.0)
    for k in range(40):  # in step, a sample every half second
        clock.measure(0.05, k / 2)
    assert not clock.off
    for k in range(40, 200):  # set back 30 s at t=20
        clock.measure(-30.0 + 0.05, k / 2)
    assert clock.off
    assert clock.best < -CLOCK_OFF_S
    assert clock.restamped(1000.0, 1030.0) is not None


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
