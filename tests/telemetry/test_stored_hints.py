"""The hint a command gives for a failure it read from the controller's store, not from asking the node.

A node the controller judged down for silence said "raise --timeout", the hint of a node asked directly that did not
answer in time; `--timeout` does not reach an answer read from the store (black-box review, session 11).
"""

from __future__ import annotations

from factoryctl.cli.listing import ERROR_HINTS
from factoryctl.model.inventory import NodeSpec
from factoryctl.telemetry.latest import stored_hint
from factoryctl.transport.hints import REFUSED_HINT


def test_a_node_down_for_silence_in_the_store_points_at_the_node_and_the_controller_not_at_timeout() -> None:
    hint = stored_hint(NodeSpec("b1", "10.0.0.7"), "timeout", "3 samples missed.")
    assert hint is not None
    assert "--timeout" not in hint
    assert "`factoryctl nodes check b1`" in hint
    assert "`factoryctl controller status`" in hint
    assert "--timeout" in ERROR_HINTS["timeout"]  # a node asked directly still gets that advice


def test_other_stored_failures_get_the_hint_of_the_one_table() -> None:
    hint = stored_hint(NodeSpec("b1", "10.0.0.7"), "refused", "b1: 10.0.0.7:22 refused the connection")
    assert hint == REFUSED_HINT  # the hint tcp_socket gives the same failure (tests/ssh/test_one_hint_per_failure.py)
