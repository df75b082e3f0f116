"""The nvidia-smi bridge bounds its streams and reads `stop`'s `stream` as the agent does (agent/protocol.py).

`stop` with a list as its `stream` ran `[1] in self._streams` (a TypeError, answered as a bug, `agent` kind) where
the agent says it is no stream id (`usage`); and the bridge started a thread running nvidia-smi for every `stream`
asked, without the agent's MAX_STREAMS. Real sshd; nvidia-smi is the simulated driver's shim.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import Wire, agent_answers, answers_with_clock, bare_bridge
from sshd_fixture import sshd_factory  # noqa: F401

from factoryctl.agent.protocol import MAX_STREAMS

pytestmark = pytest.mark.sshd

#: `stop` requests whose `stream` no request id could be.
NO_STREAM_IDS = [
    json.dumps({"id": 1, "op": "stop", "stream": [1]}),
    json.dumps({"id": 2, "op": "stop", "stream": {"a": 1}}),
    json.dumps({"id": 3, "op": "stop", "stream": True}),
]


@pytest.fixture
def wire(sshd_factory: Any, tmp_path: Path) -> Iterator[Wire]:  # noqa: F811
    with bare_bridge(sshd_factory(), tmp_path) as bridge_wire:
        yield bridge_wire


def _reply(wire: Wire) -> dict[str, Any]:
    """The next line that is no stream sample."""
    answer = wire.read()
    while answer.get("type") == "sample":
        answer = wire.read()
    return answer


def test_a_stop_of_no_stream_id_is_refused_as_the_agent_refuses_it(wire: Wire, tmp_path: Path) -> None:
    expected = agent_answers(tmp_path, NO_STREAM_IDS)
    assert expected[0]["error"]["kind"] == "usage"
    assert answers_with_clock(wire.send_line, wire.read, NO_STREAM_IDS) == expected


def test_the_bridge_serves_no_more_streams_than_the_agent(wire: Wire) -> None:
    for rid in range(MAX_STREAMS):
        wire.send(id=rid, op="stream", interval_s=3600)
        assert _reply(wire) == {"id": rid, "ok": True, "result": {"streaming": True}}
    wire.send(id="one more", op="stream", interval_s=3600)
    assert _reply(wire)["error"] == {
        "kind": "usage",
        "message": f"this agent already runs {MAX_STREAMS} streams, the most it serves: stop one first",
    }
    wire.send(id="stop 0", op="stop", stream=0)
    assert _reply(wire) == {"id": "stop 0", "ok": True, "result": {"stopped": True}}
    wire.send(id="again", op="stream", interval_s=3600)
    assert _reply(wire) == {"id": "again", "ok": True, "result": {"streaming": True}}
    wire.send(id="all", op="stop")
    assert _reply(wire) == {"id": "all", "ok": True, "result": {"stopped": True}}
