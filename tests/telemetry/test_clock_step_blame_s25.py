"""A step of the controller's own wall clock is not blamed on its nodes (session 25, "clocksteps").

The controller's clock stepped an hour ahead (a hardware clock kept in local time) while its nodes kept the right
time: it logged its own step, then 31 s later `n1's clock is 3600 s behind the controller's; ... (check NTP on the
node).` and a `clock_skew` event per node (`gpu[01-40] (40) clocks are 3600 s behind`), sending the operator to the
nodes for the controller's step, and again when NTP set it right. A node whose own clock is off is still reported.
"""

from __future__ import annotations

import logging

import pytest
from clocks import T0, Clocks, sample, writer_for

from factoryctl.store.sqlite import Store
from factoryctl.telemetry.node_clock import CLOCK_REPORT_AFTER_S
from factoryctl.telemetry.writer import StoreWriter


def run(writer: StoreWriter, clocks: Clocks, offsets: dict[str, float], seconds: float) -> None:
    """`seconds` of samples, each node's at the right time (the monotonic clock's) plus its own offset."""
    right = T0 - Clocks().mono  # the wall clock's right reading less the monotonic one
    for _ in range(int(seconds)):
        for node, off in offsets.items():
            writer.offer(sample(node, clocks.mono + right + off))
        writer.flush()
        clocks.tick(1.0)


def test_the_controller_stepping_ahead_and_back_blames_no_node(
    store: Store, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(store, clocks, ["n1", "n2", "n3"])
    nodes = {"n1": 0.0, "n2": 0.0, "n3": 0.0}
    with caplog.at_level(logging.INFO, logger="factoryctl.telemetry"):
        run(writer, clocks, nodes, 5)
        clocks.wall += 3600.0  # the controller's clock alone, an hour ahead
        run(writer, clocks, nodes, CLOCK_REPORT_AFTER_S + 15)
        clocks.wall -= 3600.0  # NTP sets it right
        run(writer, clocks, nodes, CLOCK_REPORT_AFTER_S + 15)
    said = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert [line.split(";")[0] for line in said] == [
        "the controller's wall clock stepped ahead by 3600 s (NTP or the RTC)",
        "the controller's wall clock stepped back by 3600 s (NTP or the RTC)",
    ]
    assert [e.kind for e in store.events(0) if e.kind.startswith("clock")] == ["clock_step", "clock_step"]


def test_a_node_off_by_itself_after_a_controller_step_is_still_reported(
    store: Store, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(store, clocks, ["ok", "late"])
    with caplog.at_level(logging.INFO, logger="factoryctl.telemetry"):
        run(writer, clocks, {"ok": 0.0, "late": 0.0}, 5)
        clocks.wall += 3600.0
        run(writer, clocks, {"ok": 0.0, "late": -300.0}, CLOCK_REPORT_AFTER_S + 15)  # and late's own 5 minutes
    said = [r.getMessage().split(";")[0] for r in caplog.records if "'s clock" in r.getMessage()]
    assert said == ["late's clock is 3900 s behind the controller's"]
    assert [e.node for e in store.events(0) if e.kind == "clock_skew"] == ["late"]
