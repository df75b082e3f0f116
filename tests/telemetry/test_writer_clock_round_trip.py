"""The store writer's clock lines fold: an overloaded controller logged 94 nodes "N s behind", one line each."""

from __future__ import annotations

import logging

import pytest
from clocks import Clocks, sample, writer_for

from factoryctl.store.sqlite import Store
from factoryctl.telemetry.node_clock import CLOCK_REPORT_AFTER_S


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


def test_a_clock_set_back_while_its_node_streams_is_found_and_restamped(store: Store, clocks: Clocks) -> None:
    """Found while its link lives (a round-trip bound taken at the stream's start hid it until a reconnect)."""
    writer = writer_for(store, clocks, ["n1"])
    writer.link_connected("n1")
    offset = 0.0
    for k in range(int(CLOCK_REPORT_AFTER_S) * 4):
        if k == 20:
            offset = -30.0  # `date -s` on the node, 20 s into its stream
        clocks.tick(0.01)
        writer.offer(sample("n1", clocks.wall - 0.01 + offset))
        writer.flush()
        clocks.tick(0.99)
    skew = [e for e in store.events(0) if e.kind == "clock_skew"]
    assert [(e.node, e.severity) for e in skew] == [("n1", "warning")]
    assert skew[0].message.startswith("n1's clock is 30 s behind the controller's")
    latest = {state.node: smp for state, smp in store.latest()}
    newest = latest["n1"]
    assert newest is not None
    assert abs(newest.time - (clocks.wall - 1.0)) < 1.0  # re-stamped, not 30 s old
