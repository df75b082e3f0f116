"""A folded line of several nodes speaks of them in the plural (soak, session 23).

The events panel read `3 nodes down: its address refused the connection (s[1-3])`.
"""

from __future__ import annotations

from factoryctl.live.event_folding import fold_state_events
from factoryctl.live.services import DashboardEvent


def _down(at: float, node: str, port: int, why: str) -> DashboardEvent:
    message = f"{node} is down: {why.format(address=f'127.0.0.1:{port}', node=node)}"
    return DashboardEvent(at, node, "node_down", message, "error")


def test_refused_nodes_read_their_addresses() -> None:
    events = [_down(i * 0.1, f"s{i}", 2200 + i, "{address} refused the connection") for i in range(1, 4)]
    (line,) = fold_state_events(events)
    assert line.message == "3 nodes down: their addresses refused the connection (s[1-3])"


def test_an_address_inside_the_sentence_and_the_node_s_own_name_are_plural_too() -> None:
    events = [_down(i * 0.1, f"s{i}", 2200 + i, "no answer from {address} within 5 s") for i in range(1, 4)]
    events += [_down(1 + i * 0.1, f"t{i}", 2300 + i, "the agent on {node} exited") for i in range(1, 4)]
    assert [e.message for e in fold_state_events(events)] == [
        "3 nodes down: no answer from their addresses within 5 s (s[1-3])",
        "3 nodes down: the agent on each node exited (t[1-3])",
    ]


def test_a_node_alone_keeps_its_own_words() -> None:
    events = [_down(0.0, "s1", 2201, "{address} refused the connection")]
    assert [e.message for e in fold_state_events(events)] == ["s1 is down: 127.0.0.1:2201 refused the connection"]
