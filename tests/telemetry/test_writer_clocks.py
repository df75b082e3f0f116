"""The store writer when clocks misbehave: the controller's wall clock steps, or a node's clock is off.

Both clocks are injected (`clock=` the wall clock, `monotonic=`), the store is a real SQLite file. A +1 day step made
every node `down` ("86399 samples missed"); a node 5 minutes behind had every sample dropped from the buffer as too
old while it stayed `up` with its figures frozen, and nothing said why.
"""

from __future__ import annotations

import logging

import pytest
from clocks import T0, Clocks, sample, writer_for

from factoryctl.store.sqlite import Store
from factoryctl.telemetry.node_clock import CLOCK_REPORT_AFTER_S


def test_a_forward_step_of_the_wall_clock_takes_no_node_down(
    store: Store, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(store, clocks, ["n1", "n2"])
    for _ in range(3):
        for node in ("n1", "n2"):
            writer.offer(sample(node, clocks.wall))
        writer.flush()
        clocks.tick(1.0)
    before = clocks.wall
    with caplog.at_level(logging.WARNING, logger="factoryctl.telemetry"):
        clocks.wall += 86400  # NTP: a day ahead, in no time
        writer.flush()
        clocks.tick(0.25)
        writer.flush()
    assert {s.state for s in writer.states().values()} == {"up"}
    kinds = [e.kind for e in store.events(0)]
    assert "node_down" not in kinds
    assert "node_degraded" not in kinds
    assert kinds.count("clock_step") == 1
    assert [r.getMessage() for r in caplog.records] == [
        "the controller's wall clock stepped ahead by 86400 s (NTP or the RTC); node states, rollups and retention "
        "allow for it."
    ]
    assert writer.clock_steps() == [(before, 86400.0)]  # for retention (tests/store/test_store_clock_steps.py)
    writer.offer(sample("n1", before))  # sent before the node's clock stepped too, read after ours did
    for _ in range(int(CLOCK_REPORT_AFTER_S) + 10):  # then the nodes' clocks agree with ours again
        for node in ("n1", "n2"):
            writer.offer(sample(node, clocks.wall))
        writer.flush()
        clocks.tick(1.0)
    assert "clock_skew" not in [e.kind for e in store.events(0)]
    assert {s.state for s in writer.states().values()} == {"up"}


def test_a_step_back_cancels_the_step_ahead_it_undoes(store: Store, clocks: Clocks) -> None:
    writer = writer_for(store, clocks, ["n1"])
    writer.flush()
    clocks.wall += 86400
    writer.flush()
    clocks.wall -= 86400
    writer.flush()
    assert writer.clock_steps() == []
    assert writer.states()["n1"].state == "down"  # never heard: still down, not judged on a stepped clock


def test_a_node_whose_clock_is_behind_is_stored_on_the_controller_clock_and_reported_once(
    store: Store, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(store, clocks, ["ok", "late"])
    with caplog.at_level(logging.INFO, logger="factoryctl.telemetry"):
        for _ in range(int(CLOCK_REPORT_AFTER_S) + 10):
            writer.offer(sample("ok", clocks.wall - 0.01))
            writer.offer(sample("late", clocks.wall - 300.0))  # five minutes behind
            writer.flush()
            clocks.tick(1.0)
    assert writer.counters["dropped"] == 2  # the first 2 s: its offset is not trusted yet (a backlog?)
    latest = {state.node: (state, smp) for state, smp in store.latest()}
    state, newest = latest["late"]
    assert state.state == "up"
    assert newest is not None
    assert abs(newest.time - (clocks.wall - 1.0)) < 1.0  # on the controller's clock, not 300 s back
    stored = store.export(["late"], T0 - 1000, clocks.wall + 1)
    assert len(list(stored)) == int(CLOCK_REPORT_AFTER_S) + 10 - 2
    said = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert said == [
        "late's clock is 300 s behind the controller's; its samples are stamped with the controller's time until it "
        "agrees again (check NTP on the node)."
    ]
    skew = [e for e in store.events(0) if e.kind == "clock_skew"]
    assert [(e.node, e.severity) for e in skew] == [("late", "warning")]


def test_a_backlog_of_late_samples_is_not_a_clock_off(store: Store, clocks: Clocks) -> None:
    """A controller stopped for a minute reads a minute of samples at once: late, not stamped by a wrong clock."""
    writer = writer_for(store, clocks, ["n1"])
    writer.offer(sample("n1", clocks.wall))
    writer.flush()
    sent = clocks.wall
    clocks.tick(60.0)
    for k in range(1, 61):
        writer.offer(sample("n1", sent + k))
    writer.flush()
    times = [row["time"] for row in store.export(["n1"], T0 - 1, clocks.wall + 1)]
    assert times == [sent + k for k in range(61)]


def test_a_node_clock_set_again_is_reported_again_and_in_step_once_it_agrees(
    store: Store, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(store, clocks, ["n1"])
    with caplog.at_level(logging.INFO, logger="factoryctl.telemetry"):
        for off in (-300.0, 3600.0, 0.0):  # behind, then set an hour ahead, then right
            for _ in range(int(CLOCK_REPORT_AFTER_S) + 15):
                writer.offer(sample("n1", clocks.wall + off))
                writer.flush()
                clocks.tick(1.0)
    said = [r.getMessage().split(";")[0] for r in caplog.records if "clock" in r.getMessage()]
    assert said == [
        "n1's clock is 300 s behind the controller's",
        "n1's clock is 3600 s ahead of the controller's",
        "n1's clock agrees with the controller's again",
    ]
    assert [e.severity for e in store.events(0) if e.kind == "clock_skew"] == ["warning", "warning", "info"]
    assert writer.counters["dropped"] == 2  # its first 2 s; none when its clock was set right again


def test_the_clock_event_kinds_can_be_asked_for(cli) -> None:
    """`events --kind clock_skew` is taken (the kinds the writer records are the kinds --kind offers)."""
    from factoryctl.cli.events import EVENT_KINDS

    assert {"clock_step", "clock_skew"} <= set(EVENT_KINDS)
    result = cli("events", "--kind", "clock_skw")
    assert result.exit_code == 2
    assert "clock_skew" in result.stderr
