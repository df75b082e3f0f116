"""An agent message whose `id` is a list or an object is the node's agent sending a malformed message, not our bug.

The reader looked the id up among its requests and streams: an unhashable id raised TypeError there, and the session
ended as `the agent session failed (TypeError: unhashable type: 'list')`, worded as a bug of factoryctl's (fuzzing,
session 23: `{"id":[]}`). It is said as other malformed agent output is: the agent sent it, quoted, with the agent's
hint; a waiting request wakes at once. Real processes speak the protocol here.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from factoryctl.errors import NodeError
from factoryctl.transport.session import AgentSession

#: Says hello, then answers its first request with `line` (the malformed message), then waits to be killed.
AGENT = """
import json, sys
print(json.dumps({"type": "hello", "protocol": 1, "agent_version": "9", "backend": "sim"}), flush=True)
sys.stdin.readline()
print(sys.argv[1], flush=True)
sys.stdin.read()
"""
#: Long enough that a request left waiting fails the test by its kind (`timeout`), never hangs it.
REQUEST_TIMEOUT_S = 30.0


@pytest.fixture(params=['{"id":[]}', '{"id": {"a": 1}, "ok": true, "result": {}}', '{"type": "sample", "id": [1]}'])
def session(request: pytest.FixtureRequest) -> Iterator[AgentSession]:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", AGENT, request.param], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    session = AgentSession("n1", proc.stdin, proc.stdout, on_close=proc.kill)
    try:
        session.wait_hello(10)
        yield session
    finally:
        proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def test_a_list_or_object_id_is_the_agent_sending_a_malformed_message(session: AgentSession) -> None:
    with pytest.raises(NodeError) as caught:
        session.request("sample", timeout=REQUEST_TIMEOUT_S)

    error = caught.value
    assert error is session.failure
    assert (error.node, error.kind) == ("n1", "agent"), error.message
    assert error.message.startswith("the agent sent a malformed message (its id is not a number): '{"), error.message
    assert "TypeError" not in error.message
    assert "session failed" not in error.message
    assert error.hint is not None
    assert "nodes check n1" in error.hint
