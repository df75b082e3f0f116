"""A folded events line counts distinct nodes and never hides a node's later state change under an older line.

Folding is for a fleet-wide burst (a controller's start is one `64 nodes up (n[01-64])` line). It used to join any
alike event within 30 s of a group's first, across the node's own changes in between: n11-n13 killed twice read
`7 nodes degraded ... (n[10-13])`, and a node killed three times had `n04 is down` as its newest line while it was
up again. The events are worded by the controller's own `state_event`, as the panel gets them.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from factoryctl.live.event_folding import FOLDED_KINDS, fold_state_events
from factoryctl.live.services import DashboardEvent
from factoryctl.live.services_base import dashboard_event
from factoryctl.store.rows import NodeState
from factoryctl.telemetry.health import state_event

EXITED = "the agent exited."


def change(at: float, node: str, state: str, why: str | None = None) -> DashboardEvent:
    """The events panel's line for `node` turning `state` at `at`, as the dashboard and the controller word it."""
    return dashboard_event(state_event(NodeState(node, state, at, None, None, why)))


def said(events: tuple[DashboardEvent, ...]) -> list[tuple[float, str]]:
    return [(e.time, e.message) for e in events]


def test_three_nodes_killed_twice_read_as_two_outages_of_three_nodes() -> None:
    events = []
    for killed_at in (100.0, 104.0):
        events += [change(killed_at + i * 0.1, f"n1{i}", "degraded", EXITED) for i in (1, 2, 3)]
        events += [change(killed_at + 1 + i * 0.1, f"n1{i}", "up") for i in (1, 2, 3)]
    assert said(fold_state_events(events)) == [
        (100.1, "3 nodes degraded: the agent exited. (n[11-13])"),
        (101.1, "3 nodes up (n[11-13])"),
        (104.1, "3 nodes degraded: the agent exited. (n[11-13])"),
        (105.1, "3 nodes up (n[11-13])"),
    ]


def test_one_node_flapping_keeps_its_own_lines_and_the_newest_says_it_is_up() -> None:
    events = []
    for at in (100.0, 110.0, 120.0):
        events += [change(at, "n04", "degraded", EXITED), change(at + 1, "n04", "up")]
    events += [change(125.0, "n04", "down", EXITED), change(128.0, "n04", "up")]
    folded = fold_state_events(events)
    assert said(folded) == said(tuple(events))  # one node: nothing to fold
    assert folded[-1].message == "n04 is up"


def test_a_node_said_up_twice_at_a_controller_start_is_counted_once() -> None:
    events = [change(100.0 + i * 0.01, f"n{i:02d}", "up") for i in range(1, 65)]
    events += [change(100.9, "n05", "up"), change(101.0, "n17", "up")]  # the same news again
    (line,) = fold_state_events(events)
    assert line.message == "64 nodes up (n[01-64])"
    assert line.nodes == tuple(f"n{i:02d}" for i in range(1, 65))


def test_a_burst_that_lasted_says_how_long() -> None:
    events = [change(100.0 + i * 2, f"n{i}", "down", "3 samples missed.") for i in range(1, 5)]
    (line,) = fold_state_events(events)
    assert (line.time, line.message) == (102.0, "4 nodes down: 3 samples missed. (n[1-4]; over 6 s)")


def test_a_node_that_changed_since_a_group_opened_starts_a_line_of_its_own() -> None:
    events = [
        change(100.0, "a", "up"),  # opens the "up" group
        change(101.0, "x", "degraded", EXITED),
        change(102.0, "b", "up"),
        change(103.0, "x", "up"),  # x was degraded after the group opened: not folded back before it
        change(104.0, "c", "up"),
    ]
    folded = fold_state_events(events)
    assert said(folded) == [
        (100.0, "3 nodes up (a,b,c; over 4 s)"),
        (101.0, "x is degraded: the agent exited."),
        (103.0, "x is up"),
    ]


STATES = ("up", "degraded", "down")
REASONS = (EXITED, "3 samples missed.", "connection refused.")


@st.composite
def histories(draw: st.DrawFn) -> list[DashboardEvent]:
    """State events of a few nodes, oldest first, spaced from nothing to past the fold window."""
    count = draw(st.integers(min_value=1, max_value=40))
    at, events = 1000.0, []
    for _ in range(count):
        at += draw(st.sampled_from((0.0, 0.1, 1.0, 5.0, 29.0, 31.0)))
        node = draw(st.sampled_from(("n1", "n2", "n3", "n4", "n5")))
        state = draw(st.sampled_from(STATES))
        events.append(change(at, node, state, draw(st.sampled_from(REASONS))))
    return events


def named(line: DashboardEvent) -> set[str]:
    return set(line.nodes) | ({line.node} if line.node else set())


@settings(max_examples=400, deadline=None)
@given(histories())
def test_the_newest_line_naming_a_node_says_its_latest_state(events: list[DashboardEvent]) -> None:
    folded = fold_state_events(events)
    for node in {e.node for e in events if e.node}:
        latest = [e for e in events if e.node == node][-1]
        newest_line = [line for line in folded if line.kind in FOLDED_KINDS and node in named(line)][-1]
        assert newest_line.kind == latest.kind, (node, said(folded))
        assert newest_line.time <= latest.time
    for line in folded:
        if line.nodes:
            assert line.message.startswith(f"{len(set(line.nodes))} nodes "), line.message
            assert len(line.nodes) == len(set(line.nodes))
    assert sorted(e.time for e in folded) == [e.time for e in folded]
