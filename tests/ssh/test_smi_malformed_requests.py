"""The nvidia-smi bridge refuses a malformed request as the agent does, and goes on serving.

The bridge stands in for the agent on a node without Python (docs/agent-protocol.md). A `set_power_limit` without
`watts` ended its thread with `KeyError: 'watts'`, a stream under the string id "a" with `int("a")`: neither got a
reply, nor did any request after them, and the session said only that the agent exited. Here each malformed request
is sent to the real agent (simulated driver) and to the bridge (over a real sshd, nvidia-smi the simulated driver's
shim), and the bridge must answer it exactly as the agent does, then still answer a `clock`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import Wire, agent_answers, answers_with_clock, bare_bridge
from sshd_fixture import sshd_factory  # noqa: F401

pytestmark = pytest.mark.sshd

#: Request lines the agent refuses; the bridge answered none of the first ones, and nothing after them.
MALFORMED = [
    json.dumps({"id": 1, "op": "set_power_limit", "gpus": [0]}),
    json.dumps({"id": 2, "op": "set_power_limit", "gpus": [0], "watts": "300"}),
    json.dumps({"id": 3, "op": "set_power_limit", "gpus": [0], "watts": True}),
    json.dumps({"id": 4, "op": "set_power_limit", "gpus": 0, "watts": 300}),
    json.dumps({"id": 5, "op": "set_power_limit", "gpus": [[0]], "watts": 300}),
    json.dumps({"id": 6, "op": "reset_power_limit", "gpus": [True]}),
    json.dumps({"id": 7, "op": "stream", "interval_s": "x"}),
    json.dumps({"id": 8, "op": "stream", "interval_s": 0}),
    json.dumps({"id": 9, "op": "stream", "interval_s": 1, "slow_interval_s": -1}),
    json.dumps({"id": 10, "op": "stop", "stream": "no such stream"}),
    json.dumps({"id": [11], "op": "clock"}),
    json.dumps({"id": 12, "op": 5}),
    json.dumps([1, 2]),
    '{"id": NaN, "op": "clock"}',
    "not json",
]


@pytest.fixture
def wire(sshd_factory: Any, tmp_path: Path) -> Iterator[Wire]:  # noqa: F811
    """A bridge to a 2-GPU simulated node without Python, spoken to line by line, its hello read."""
    with bare_bridge(sshd_factory(), tmp_path) as bridge_wire:
        yield bridge_wire


def test_the_bridge_refuses_malformed_requests_as_the_agent_does_and_serves_on(wire: Wire, tmp_path: Path) -> None:
    expected = agent_answers(tmp_path, MALFORMED)
    assert expected[0]["error"] == {"kind": "usage", "message": "watts must be a number"}  # the agent's, as documented

    assert answers_with_clock(wire.send_line, wire.read, MALFORMED) == expected


def _reply(wire: Wire) -> dict[str, Any]:
    """The next line that is no stream sample."""
    answer = wire.read()
    while answer.get("type") == "sample":
        answer = wire.read()
    return answer


def test_a_stream_under_a_string_id_is_served_and_stopped_by_it(wire: Wire) -> None:
    assert wire.ask(id="a", op="stream", interval_s=1) == {"id": "a", "ok": True, "result": {"streaming": True}}
    sample = wire.read()
    assert (sample["id"], sample["type"], sample["result"]["backend"]) == ("a", "sample", "smi")
    wire.send(id="a", op="stream", interval_s=1)
    assert _reply(wire)["error"] == {"kind": "usage", "message": "stream a is already running"}
    wire.send(id=2, op="stop", stream="a")
    assert _reply(wire) == {"id": 2, "ok": True, "result": {"stopped": True}}
    wire.send(id=3, op="clock")
    assert _reply(wire)["id"] == 3
