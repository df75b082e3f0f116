"""A node down for its silence says the real cause once a failure tells it, even one of the same kind.

A network review cut a node's link: the controller logged `na: no answer from 10.23.1.2:22 within 5 s
(ssh.connect_timeout_s)` on every reconnect, yet `nodes list` and `events` kept `na: 3 samples missed.` with the
"no recent sample reached the controller" hint for as long as the link stayed down. The judge recorded a new reason
only when its kind changed, and silence and a connect timeout are both `timeout`. Now a reason that is silence's alone
is replaced (recorded, with its event) by the first failure that says why; the same kind failing again another way
is still no change, so a node failing on every reconnect logs one event, not one per attempt.
"""

from __future__ import annotations

import time
from pathlib import Path

from factoryctl.errors import NodeError
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.health import NodeHealth
from factoryctl.telemetry.writer import StoreWriter

NO_ANSWER = "n1: no answer from 10.0.0.2:22 within 5 s (ssh.connect_timeout_s)"
NO_HELLO = "n1: the agent did not say hello within 15 s"


def _silent_down() -> NodeHealth:
    health = NodeHealth("n1", 1.0)
    health.seen(10.0)
    health.tick(11.6)
    down = health.tick(13.6)
    assert down is not None
    assert (down.state, down.error, down.message) == ("down", "timeout", "3 samples missed.")
    return health


def test_a_failure_replaces_the_silence_reason_of_a_down_node_once() -> None:
    health = _silent_down()
    change = health.failed(15.0, "timeout", NO_ANSWER)
    assert change is not None  # was None: same kind (`timeout`), so "3 samples missed." stayed
    assert (change.state, change.error, change.message, change.since) == ("down", "timeout", NO_ANSWER, 15.0)
    assert health.failed(20.0, "timeout", NO_ANSWER) is None  # the same failure again: nothing
    assert health.failed(25.0, "timeout", NO_HELLO) is None  # the same kind another way: no event per attempt
    assert (health.state, health.message) == ("down", NO_HELLO)  # kept in memory, as before


def test_a_failure_replaces_the_silence_reason_of_a_degraded_node() -> None:
    health = NodeHealth("n1", 1.0)
    health.seen(10.0)
    degraded = health.tick(11.6)
    assert degraded is not None
    assert degraded.message == "1 sample missed."
    change = health.failed(11.8, "timeout", NO_ANSWER)
    assert change is not None
    assert (change.state, change.message) == ("degraded", NO_ANSWER)
    down = health.tick(13.6)
    assert down is not None
    assert (down.state, down.message) == ("down", NO_ANSWER)


def test_a_restarted_judge_replaces_a_stored_silence_reason_but_keeps_a_stored_failure() -> None:
    silent = NodeState("n1", "down", 5.0, 1.0, "timeout", "3 samples missed.")
    change = NodeHealth("n1", 1.0, stored=silent).failed(30.0, "timeout", NO_ANSWER)
    assert change is not None
    assert (change.message, change.since) == (NO_ANSWER, 30.0)
    failing = NodeState("n1", "down", 5.0, 1.0, "timeout", NO_HELLO)
    health = NodeHealth("n1", 1.0, stored=failing)
    assert health.failed(30.0, "timeout", NO_ANSWER) is None  # same state, same kind: no change, as documented
    assert health.since == 5.0


def test_the_store_and_the_events_say_the_real_cause(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    now = [time.time()]
    writer = StoreWriter(store, 1.0, clock=lambda: now[0])
    writer.set_nodes(["n1"])
    writer.offer(NodeSample("n1", now[0], gpus=(GpuSample("n1", 0, power_w=300.0),)))
    writer.flush()
    now[0] += 4.0
    writer.flush()  # down for its silence
    for _ in range(3):  # every reconnect fails the same way
        now[0] += 2.0
        writer.link_failed("n1", NodeError("n1", "timeout", NO_ANSWER))
        writer.flush()
    now[0] += 2.0
    writer.link_failed("n1", NodeError("n1", "timeout", NO_HELLO))
    writer.flush()
    (state,) = [s for s, _ in store.latest() if s.node == "n1"]
    assert (state.state, state.error, state.message) == ("down", "timeout", NO_ANSWER)
    said = [(e.kind, e.message) for e in store.events(0) if e.kind.startswith("node_")]
    assert said == [
        ("node_up", "n1 is up"),
        ("node_down", "n1 is down: 3 samples missed."),
        ("node_down", "n1 is down: no answer from 10.0.0.2:22 within 5 s (ssh.connect_timeout_s)"),
    ]
    store.close()
