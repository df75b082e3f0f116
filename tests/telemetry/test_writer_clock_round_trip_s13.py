"""The store writer takes a node's stream request for the round trip that bounds its clock; skew lines fold.

An overloaded controller read every sample a minute late and called 94 nodes on its own clock "53 s behind", one log
line each. Here samples are offered 8 s late (more than `CLOCK_OFF_S`) after the link said it connected (its stream
asked for next): nothing is reported and they keep their time; a node really behind still is.
"""

from __future__ import annotations

import logging

import pytest
from clocks import T0, Clocks, sample, writer_for

from factoryctl.store.sqlite import Store
from factoryctl.telemetry.node_clock import CLOCK_REPORT_AFTER_S

LATE_S = 8.0


def test_samples_read_late_are_not_a_clock_behind(
    store: Store, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(store, clocks, ["n1"])
    writer.link_connected("n1")  # its stream is asked for now; every sample is read 8 s after it is taken
    clocks.tick(LATE_S)
    with caplog.at_level(logging.INFO, logger="factoryctl.telemetry"):
        for _ in range(int(CLOCK_REPORT_AFTER_S) * 3):
            writer.offer(sample("n1", clocks.wall - LATE_S))
            writer.flush()
            clocks.tick(1.0)
    assert [r.getMessage() for r in caplog.records if "clock" in r.getMessage()] == []
    assert [e for e in store.events(0) if e.kind == "clock_skew"] == []
    times = [row["time"] for row in store.export(["n1"], T0 - 100, clocks.wall + 1)]
    assert times == [T0 + k for k in range(int(CLOCK_REPORT_AFTER_S) * 3)]  # their own times


def test_nodes_really_behind_are_found_and_their_lines_folded(
    store: Store, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    nodes = {"n1": -300.0, "n2": -310.0, "n3": -320.0}
    writer = writer_for(store, clocks, list(nodes))
    for node in nodes:
        writer.link_connected(node)
    with caplog.at_level(logging.INFO, logger="factoryctl.telemetry"):
        for _ in range(int(CLOCK_REPORT_AFTER_S) + 10):
            clocks.tick(0.01)
            for node, off in nodes.items():
                writer.offer(sample(node, clocks.wall - 0.01 + off))
            writer.flush()
            clocks.tick(0.99)
    said = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert said == [
        "n[1-3] (3) clocks are 300-320 s behind the controller's; their samples are stamped with the controller's "
        "time until they agree again (check NTP on the nodes)."
    ]
    skew = [e for e in store.events(0) if e.kind == "clock_skew"]
    assert [(e.node, e.severity) for e in skew] == [("n1", "warning"), ("n2", "warning"), ("n3", "warning")]
    assert skew[0].message.startswith("n1's clock is 300 s behind the controller's; its samples are stamped")
    latest = {state.node: smp for state, smp in store.latest()}
    for node in nodes:
        newest = latest[node]
        assert newest is not None
        assert abs(newest.time - (clocks.wall - 1.0)) < 1.0
