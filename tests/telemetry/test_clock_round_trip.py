"""A controller reading samples late is not a node behind: a round trip (`clock`) bounds the offset from above.

An overloaded controller (load 100-215 on 2 cores, 200 local agents) read every sample of its nodes more than 5 s
late for whole windows and reported 94 healthy nodes "behind", since samples alone only bound a node's offset from
below. A link whose samples look behind now asks its agent for its time; a node is behind only while that upper bound
says so too. A node whose clock is set back while it streams is still found: the ask is repeated whenever samples
look behind, never kept from a stream's start (the bound tried in session 13 went stale so).
"""

from __future__ import annotations

from pathlib import Path

from clocks import Clocks, sample, writer_for
from fakefleet import FakeFleet, Sink, make_config, wait_for

from factoryctl.store.sqlite import Store
from factoryctl.telemetry.links import Backoff, NodeLink
from factoryctl.telemetry.node_clock import CLOCK_CHECK_EVERY_S, CLOCK_OFF_S, CLOCK_REPORT_AFTER_S, NodeClock


def test_late_samples_are_not_a_clock_behind_once_a_round_trip_says_the_node_is_in_step() -> None:
    clock = NodeClock(-8.0, 0.0, 0.0)
    for k in range(60):
        clock.measure(-8.0, float(k))  # every sample 8 s late
    assert clock.off  # samples alone: behind (what the overloaded controller reported)
    clock.bounded(0.05)  # its agent's time, less when it was asked
    clock.measure(-8.0, 60.0)
    assert not clock.off
    clock.bounded(-29.0)  # then its clock really is set back: the next round trip says so
    for k in range(61, 80):
        clock.measure(-37.0, float(k))
    assert clock.off
    assert clock.best < -CLOCK_OFF_S


def _run_writer(writer_clock: Clocks, store: Store, late_s: float, bound: float | None) -> list[str]:
    writer = writer_for(store, writer_clock, ["n1"])
    writer.link_connected("n1")
    for k in range(int(CLOCK_REPORT_AFTER_S) * 3):
        writer.offer(sample("n1", writer_clock.wall - late_s))
        if bound is not None and k % int(CLOCK_CHECK_EVERY_S) == 1:  # the link asks about every 10 s
            writer.clock_bounded("n1", writer_clock.wall + bound, writer_clock.wall)
        writer.flush()
        writer_clock.tick(1.0)
    return [e.message for e in store.events(0) if e.kind == "clock_skew"]


def test_an_overloaded_controller_reports_no_skew_when_its_nodes_answer_in_step(
    store: Store, clocks: Clocks, tmp_path: Path
) -> None:
    assert _run_writer(clocks, store, late_s=8.0, bound=0.02) == []
    # the same late samples without a round trip (an agent without `clock`): judged on its samples alone
    said = _run_writer(Clocks(), Store(tmp_path / "other.db"), late_s=8.0, bound=None)
    assert len(said) == 1
    assert said[0].startswith("n1's clock is 8 s behind")


def test_a_node_behind_is_still_found_with_round_trips(store: Store, clocks: Clocks) -> None:
    said = _run_writer(clocks, store, late_s=300.0, bound=-299.9)
    assert len(said) == 1
    assert said[0].startswith("n1's clock is 300 s behind")


def _link(tmp_path: Path, *agent_args: str) -> tuple[NodeLink, FakeFleet, Sink]:
    config = make_config(tmp_path, nodes="n1", interval=0.2)
    fleet, sink = FakeFleet(), Sink()
    fleet.args["n1"] = list(agent_args)
    link = NodeLink(config.nodes["n1"], 0.2, fleet.connector(config), sink, Backoff(base_s=60.0))
    return link, fleet, sink


def test_a_link_whose_samples_look_behind_asks_its_agent_once_per_while(tmp_path: Path) -> None:
    ops = tmp_path / "ops.log"
    link, fleet, sink = _link(tmp_path, "--sample-age", "8", "--ops-log", str(ops))
    link.start()
    try:
        wait_for(lambda: len(sink.samples) >= 10)
        wait_for(lambda: bool(sink.clock_bounds))
    finally:
        link.stop()
        link.join(10)
        fleet.stop_all()
    ((node, bound),) = sink.clock_bounds  # asked once in 2 s, not once per late sample
    assert node == "n1"
    assert -0.5 < bound < 0.5  # in step: its samples were only late
    assert ops.read_text().split().count("clock") == 1


def test_a_link_asks_a_node_really_behind_and_hears_so(tmp_path: Path) -> None:
    link, fleet, sink = _link(tmp_path, "--clock-offset", "-300")
    link.start()
    try:
        wait_for(lambda: bool(sink.clock_bounds))
    finally:
        link.stop()
        link.join(10)
        fleet.stop_all()
    assert -300.5 < sink.clock_bounds[0][1] < -299.5


def test_an_agent_without_clock_is_asked_once_and_its_samples_still_flow(tmp_path: Path) -> None:
    ops = tmp_path / "ops.log"
    link, fleet, sink = _link(tmp_path, "--clock-offset", "-300", "--no-clock", "--ops-log", str(ops))
    link.start()
    try:
        wait_for(lambda: "clock" in ops.read_text() if ops.exists() else False)
        count = len(sink.samples)
        wait_for(lambda: len(sink.samples) >= count + 5)
    finally:
        link.stop()
        link.join(10)
        fleet.stop_all()
    assert sink.clock_bounds == []
    assert sink.errors == []
    assert ops.read_text().split().count("clock") == 1


def test_links_in_step_never_ask(tmp_path: Path) -> None:
    ops = tmp_path / "ops.log"
    link, fleet, sink = _link(tmp_path, "--ops-log", str(ops))
    link.start()
    try:
        wait_for(lambda: len(sink.samples) >= 5)
    finally:
        link.stop()
        link.join(10)
        fleet.stop_all()
    assert "clock" not in ops.read_text().split()
