"""Request lines the agent cannot answer in kind get an `agent` error and the agent keeps serving.

docs/agent-protocol.md, Wire format item 4: a line that is not a JSON object gets `{"id": null, "ok": false,
"error": {"kind": "agent", ...}}`. A line nested deeper than the parser's stack, or one whose id no reply could echo
(NaN, a deeply nested list), used to end the agent with a traceback.
"""

from __future__ import annotations

import json


def _refused(agent, line: str) -> dict:
    agent.send_line(line)
    reply = agent.read()
    assert (reply["id"], reply["ok"], reply["error"]["kind"]) == (None, False, "agent"), reply
    return reply


def test_a_deeply_nested_line_is_refused_and_the_agent_keeps_serving(start_agent):
    agent = start_agent()
    reply = _refused(agent, "[" * 100_000)
    assert reply["error"]["message"] == "the request is nested too deeply"
    _refused(agent, '{"id": 1, "op": "sample", "gpus": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert agent.request("sample")["ok"] is True
    assert agent.proc.poll() is None


def test_an_id_no_reply_could_echo_is_refused(start_agent):
    agent = start_agent()
    assert _refused(agent, '{"id": NaN, "op": "sample"}')["error"]["message"] == "the request is not valid JSON"
    _refused(agent, '{"id": Infinity, "op": "stream"}')
    nested_id = "[" * 900 + "]" * 900
    reply = _refused(agent, '{"id": ' + nested_id + ', "op": "sample"}')
    assert reply["error"]["message"] == "a request's id must be a number or a string"
    _refused(agent, json.dumps({"id": {"a": 1}, "op": "stream"}))
    assert agent.request("sample")["ok"] is True
    assert agent.proc.poll() is None
