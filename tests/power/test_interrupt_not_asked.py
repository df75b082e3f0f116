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


def test_a_node_that_answered_is_its_answer_while_its_session_still_closes() -> None:
    """Its close can outlast the wait (SSH, an agent that will not exit): it answered, so it is not `interrupted`."""
    import threading

    from factoryctl.power.limit_progress import LimitProgress
    from factoryctl.power.limits import LimitChange, _settled
    from factoryctl.transport.fanout import FanOut

    answered = ([LimitChange("a", 0, 700.0, 333.0, False)], None)
    answers: dict = {}
    closed, started = threading.Event(), threading.Semaphore(0)

    def work(node: NodeSpec):
        if node.name == "a":
            answers["a"] = answered  # as `_change` keeps it, before its session's close
        started.release()
        closed.wait(30)  # a's session closing, b still changing
        return answered

    pool = FanOut([NodeSpec(name="a", host="a"), NodeSpec(name="b", host="b")], work, fanout=2)
    threading.Thread(target=lambda: pool.run(), daemon=True).start()
    for _ in range(2):
        assert started.acquire(timeout=30)
    notes: list[str] = []
    try:
        outcomes = _settled(pool, 0.2, KeyboardInterrupt(), LimitProgress(note=notes.append), answers)
    finally:
        closed.set()
    assert [(node.name, outcome) for node, outcome in outcomes] == [("a", answered), ("b", Pending.RUNNING)]
    assert notes == ["waiting up to 0.2 s for b to answer: its limits may be changing; Ctrl-C again stops the wait."]
