"""One excuse per silence: a controller that keeps pausing (swapping, a starved CPU) must still find its dead nodes.

Each stall of the controller counted a node's silence afresh from its end, so with a 1.5 s pause every 1 to 3 s a node
dead for minutes stayed `up` or `degraded` and its link was never rebuilt. A node not heard from since a stall excused
it is now judged on its real silence, by the writer and by its link alike; a single stall still excuses every node
(test_stall_watch_rule.py, test_controller_stall.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clocks import Clocks, sample, writer_for

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.links import Backoff, NodeLink
from factoryctl.telemetry.stall_watch import StallWatch

SILENT_FROM = 3.0  # n2 sends nothing after this


def _states_under_pauses(store: Store, period_s: int, pause_s: float) -> dict[str, dict[str, float]]:
    """n1 and n2 (1 s interval) sampled every 0.25 s, n2 silent from `SILENT_FROM`, the controller pausing `pause_s`
    every `period_s`: when (scenario seconds) each node was first seen in each state."""
    clocks = Clocks()
    watch = StallWatch(1.0, monotonic=lambda: clocks.mono)
    writer = writer_for(store, clocks, ["n1", "n2"])
    writer._stall_watch = watch  # writer_for makes it without one
    started = clocks.mono
    seen: dict[str, dict[str, float]] = {"n1": {}, "n2": {}}

    def note() -> None:
        for node, health in writer.states().items():
            seen[node].setdefault(health.state, clocks.mono - started)

    for second in range(40):
        for _ in range(4):
            writer.offer(sample("n1", clocks.wall))
            if clocks.mono - started < SILENT_FROM:
                writer.offer(sample("n2", clocks.wall))
            writer.flush()
            note()
            clocks.tick(0.25)
            watch.beat()
        if second % period_s == period_s - 1:
            clocks.tick(pause_s)  # no thread runs, the heartbeat neither
            writer.offer(sample("n1", clocks.wall))  # n1's sample waited in the pipe
            writer.flush()
            note()
            clocks.tick(0.01)
            watch.beat()
    return seen


@pytest.mark.parametrize(("period_s", "pause_s"), [(3, 1.5), (1, 1.5)])
def test_a_dead_node_goes_down_however_often_the_controller_pauses(
    tmp_path: Path, period_s: int, pause_s: float
) -> None:
    seen = _states_under_pauses(Store(tmp_path / "factory.db"), period_s, pause_s)
    # Down 3.5 s after its silence, once excused by the first stall after it, judged at most a pause late.
    assert seen["n2"].get("down", float("inf")) <= SILENT_FROM + 3.5 + period_s + 2 * pause_s + 0.5
    assert "down" not in seen["n1"]  # the node that keeps sending is excused at every stall


class _Sink:
    def offer(self, sample: NodeSample) -> None:
        pass

    def link_failed(self, node: str, error: NodeError) -> None:
        pass

    def sample_failed(self, node: str, error: NodeError) -> None:
        pass

    def link_connected(self, node: str) -> None:
        pass

    def samples_missed(self, node: str, count: int) -> None:
        pass


def _refuse(node: NodeSpec) -> tuple[object, object]:
    raise AssertionError("the link is not started")


def test_a_link_excuses_its_node_once_per_silence() -> None:
    clock = [time.monotonic()]  # the heartbeat's clock, moved by hand from the links' real one
    watch = StallWatch(1.0, monotonic=lambda: clock[0])
    link = NodeLink(NodeSpec("n1", "127.0.0.1"), 1.0, _refuse, _Sink(), Backoff(), stall_watch=watch)  # type: ignore[arg-type]
    link._silence.heard_at = heard = clock[0]
    clock[0] += 12.0  # a stall: the node is heard from its end
    assert link._heard() == heard + 12.0
    clock[0] += 0.25
    watch.beat()
    clock[0] += 12.0  # another stall, the node silent since the first: its real silence counts
    assert link._heard() == heard + 12.0
    clock[0] += 0.25
    watch.beat()
    link._on_sample(sample("n1", time.time()))  # heard again: the next stall excuses it again
    clock[0] += 0.25
    watch.beat()
    clock[0] += 12.0
    assert link._heard() == clock[0]
