"""A closed session's late word does not restart the next session's stream.

A link sleeps on one wake event, which every session it had sets when it fails. Under load a closed session's reader
reported its end after the link had connected again; the link took the wake for a new interval, stopped its healthy
stream and asked for it again, and an agent as loaded did not answer `stop` in 10 s: the link broke, and held the
controller's stop as long. Here the old session says it failed once the link streams on the new one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakefleet import FakeFleet, Sink, make_config, wait_for

from factoryctl.telemetry.links import Backoff, NodeLink


def test_a_late_failure_of_the_previous_session_restarts_no_stream(tmp_path: Path) -> None:
    config = make_config(tmp_path, nodes="n1", interval=0.2)
    fleet, sink = FakeFleet(), Sink()
    link = NodeLink(config.nodes["n1"], 0.2, fleet.connector(config), sink, Backoff(base_s=0.2))
    link.start()
    try:
        wait_for(lambda: link.session is not None)
        old = link.session
        assert old is not None
        fleet.kill("n1")
        wait_for(lambda: link.connects == 2 and link.session not in (None, old), 20.0)
        new = link.session
        assert new is not None
        asked: list[str] = []
        request = new.request

        def noting(op: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
            asked.append(op)
            return request(op, timeout=timeout, **args)

        new.request = noting  # type: ignore[method-assign]
        old._fail("the agent exited")  # its reader, late (the agent is long gone)
        count = len(sink.samples)
        wait_for(lambda: len(sink.samples) >= count + 5)
        assert asked == []  # no `stop`: the stream it has is at the interval it wants
        assert link.connects == 2
    finally:
        link.stop()
        link.join(10)
        fleet.stop_all()
