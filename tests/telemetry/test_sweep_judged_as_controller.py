"""A cron sweep judges a node against the store by the controller's rule: state, and for a node not up the kind of
reason.

The controller starts each node from its stored state (`NodeHealth.stored`): a node still down but failing another
way (refused before, a timeout now) is news, a `node_down` saying the new reason. The sweep (`telemetry collect`
without a controller) compared the state only, so the same node after a controller logged nothing and the store kept
the old reason's `since`. Both now judge through one function (telemetry/restart.py `judge_against_stored`), and one
read of the store gives the writer both the samples and the states it starts from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clocks import T0, Clocks, writer_for

from factoryctl.cli.telemetry import sweep_changes
from factoryctl.errors import NodeError
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.poll import down_sample

STORED_AT = T0 - 86400
REFUSED = NodeError("n1", "refused", "10.0.0.9:22 refused the connection")
TIMEOUT = NodeError("n1", "timeout", "10.0.0.9:22 did not answer within 10 s")
STORED_DOWN = NodeState("n1", "down", STORED_AT, None, "refused", REFUSED.message)
STORED_UP = NodeState("n1", "up", STORED_AT, STORED_AT)


def swept(stored: NodeState | None, now: NodeSample) -> tuple[NodeState, list[str]]:
    """The state a sweep stores for n1 and the node events it logs."""
    rows = [(stored, None)] if stored is not None else []
    reached = [now] if now.state == "up" else []
    _, states, events = sweep_changes(rows, [now], reached, 1.0)
    return states[0], [e.kind for e in events if e.kind.startswith("node_")]


def controller_events(tmp_path: Path, stored: NodeState | None, failure: NodeError | None) -> list[str]:
    """The node events a controller starting on a store holding `stored` logs for n1's first sample or failure."""
    store = Store(tmp_path / "factory.db")
    if stored is not None:
        store.write(states=[stored])
    clocks = Clocks()
    writer = writer_for(store, clocks, ["n1"])
    if failure is None:
        writer.offer(NodeSample("n1", clocks.wall))
    else:
        writer.link_failed("n1", failure)
    writer.flush()
    kinds = [e.kind for e in store.events(0) if e.kind.startswith("node_")]
    store.close()
    return kinds


def test_a_node_still_down_for_another_reason_is_an_event_with_the_new_reason() -> None:
    state, events = swept(STORED_DOWN, down_sample("n1", TIMEOUT))
    assert events == ["node_down"]
    assert (state.state, state.error, state.message) == ("down", "timeout", TIMEOUT.message)
    assert state.since > STORED_AT  # dated from the new reason, not the old one


def test_a_node_down_for_the_same_reason_is_no_event_and_keeps_its_since() -> None:
    state, events = swept(STORED_DOWN, down_sample("n1", REFUSED))
    assert events == []
    assert (state.state, state.error, state.since) == ("down", "refused", STORED_AT)


@pytest.mark.parametrize(
    ("stored", "failure"),
    [
        (STORED_DOWN, TIMEOUT),
        (STORED_DOWN, REFUSED),
        (STORED_DOWN, None),
        (STORED_UP, None),
        (STORED_UP, REFUSED),
        (None, REFUSED),
        (None, None),
    ],
    ids=["down-other-kind", "down-same-kind", "down-then-up", "up-still-up", "up-then-down", "new-down", "new-up"],
)
def test_the_sweep_logs_what_a_controller_would(tmp_path: Path, stored: Any, failure: NodeError | None) -> None:
    now = NodeSample("n1", T0) if failure is None else down_sample("n1", failure)
    _, events = swept(stored, now)
    assert events == controller_events(tmp_path, stored, failure)


def test_the_writer_reads_the_store_once_for_samples_and_states(tmp_path: Path, monkeypatch: Any) -> None:
    store = Store(tmp_path / "factory.db")
    store.write([NodeSample("n1", STORED_AT)], [True], [STORED_UP])
    reads: list[int] = []
    latest = store.latest

    def counted() -> Any:
        reads.append(1)
        return latest()

    monkeypatch.setattr(store, "latest", counted)
    clocks = Clocks()
    writer = writer_for(store, clocks, ["n1"])
    assert len(reads) == 1
    writer.offer(NodeSample("n1", clocks.wall))
    writer.flush()
    assert [e.kind for e in store.events(0)] == []  # up as stored: that one read gave the states too
    assert writer.states()["n1"].since == STORED_AT
    store.close()
