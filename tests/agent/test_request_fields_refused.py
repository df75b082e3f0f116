"""Request fields the protocol does not allow are refused, and the agent keeps serving.

An id of `1e400` (or -1e400) was read as Infinity, accepted, and the reply echoing it could not be written: the agent
ended with a traceback and exit 1, every later request unanswered. `true` was echoed as an id though an id is a number
or a string; a request without `op` was told `unknown op None`; and `"clamp": "no"` was taken as true and changed the
limit (docs/agent-protocol.md, Wire format and Operations).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from factoryctl.agent.protocol import RequestError, bool_field, encode, op_field, read_request


@pytest.mark.parametrize("line", ['{"id": 1e400, "op": "clock"}', '{"id": -1e400, "op": "clock"}'])
def test_a_number_past_a_doubles_range_is_refused_as_infinity_is(line: str) -> None:
    with pytest.raises(RequestError) as refused:
        read_request(line)
    assert (refused.value.kind, refused.value.message) == ("agent", "the request is not valid JSON")


def test_a_boolean_id_is_refused_and_tiny_or_plain_numbers_are_read() -> None:
    with pytest.raises(RequestError, match="a request's id must be a number or a string"):
        read_request('{"id": true, "op": "clock"}')
    assert read_request('{"id": 1e-400, "op": "clock", "watts": 2.5}') == {"id": 0.0, "op": "clock", "watts": 2.5}


def test_a_missing_or_unknown_op_is_said_in_the_protocols_words() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"id": 1}, "the request has no op"),
        ({"id": 1, "op": None}, "the request has no op"),
        ({"id": 1, "op": 5}, "a request's op must be a string"),
        ({"id": 1, "op": "nope"}, 'unknown op "nope"'),
    ]
    for request, message in cases:
        with pytest.raises(RequestError) as refused:
            op_field(request)
        assert (refused.value.kind, refused.value.message) == ("usage", message)
    assert op_field({"op": "clock"}) == "clock"


def test_only_true_and_false_are_booleans() -> None:
    assert bool_field({}, "clamp", False) is False
    assert bool_field({"clamp": True}, "clamp", False) is True
    values: list[Any] = ["no", "false", 0, 1, None, []]
    for value in values:
        with pytest.raises(RequestError, match="clamp must be true or false"):
            bool_field({"clamp": value}, "clamp", False)


def test_a_line_is_never_written_with_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode({"id": 1, "ok": True, "result": {"time": float("inf")}})


def _refused(agent: Any, line: str) -> dict[str, Any]:
    agent.send_line(line)
    reply: dict[str, Any] = agent.read()
    return reply


def test_the_agent_refuses_each_and_serves_on(start_agent: Any) -> None:
    agent = start_agent()
    for line, expected_id in [('{"id": 1e400, "op": "clock"}', None), ('{"id": -1e400, "op": "clock"}', None)]:
        reply = _refused(agent, line)
        assert (reply["id"], reply["error"]) == (
            expected_id,
            {"kind": "agent", "message": "the request is not valid JSON"},
        )
    reply = _refused(agent, '{"id": true, "op": "clock"}')
    assert (reply["id"], reply["error"]["message"]) == (None, "a request's id must be a number or a string")
    assert _refused(agent, '{"id": 3}') == {
        "id": 3,
        "ok": False,
        "error": {"kind": "usage", "message": "the request has no op"},
    }
    assert agent.request("clock")["ok"] is True
    assert agent.proc.poll() is None


def test_clamp_no_is_refused_and_changes_nothing(start_agent: Any) -> None:
    agent = start_agent()
    limit = agent.request("sample")["result"]["gpus"][0]["power_limit_w"]
    request = {"id": 7, "op": "set_power_limit", "gpus": [0], "watts": 1, "clamp": "no"}  # clamped, a change
    reply = _refused(agent, json.dumps(request))
    assert reply == {"id": 7, "ok": False, "error": {"kind": "usage", "message": "clamp must be true or false"}}
    assert agent.request("sample")["result"]["gpus"][0]["power_limit_w"] == limit
