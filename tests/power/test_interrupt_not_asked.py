"""An interrupted `power set` with more nodes than --fanout: the nodes never asked are said unchanged.

The regression review saw `n[005-006] (2): interrupted before this node answered: its limits may have changed` for
nodes `-f 1` had not reached, still at 700 W. A node the fan-out never started is not asked, so nothing changed.
"""

from __future__ import annotations

from factoryctl.config import NodeSpec
from factoryctl.power.limits import NOT_ASKED, UNANSWERED, _gathered
from factoryctl.transport.fanout import Pending


def test_a_node_never_started_is_not_asked_and_one_running_may_have_changed() -> None:
    errors: list = []
    changes = _gathered(
        [(NodeSpec(name="a", host="a"), Pending.RUNNING), (NodeSpec(name="b", host="b"), Pending.NOT_STARTED)], errors
    )
    assert changes == []
    assert [(e.node, e.kind, e.message) for e in errors] == [
        ("a", "interrupted", UNANSWERED),
        ("b", "interrupted", NOT_ASKED),
    ]
