"""The agent session against real processes that misbehave: garbage, silence, death mid-stream, skew."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.session import AgentSession

_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def reap_agents() -> Iterator[None]:
    """Every agent a test started is gone, and its pipes closed, before the next test (a pass or a failure)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def session_for(script: str) -> tuple[AgentSession, subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", textwrap.dedent(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _STARTED.append(proc)
    assert proc.stdin is not None
    assert proc.stdout is not None
    return AgentSession("n1", proc.stdin, proc.stdout, on_close=proc.kill), proc


HELLO = (
    'import json, sys\nprint(json.dumps({"type": "hello", "protocol": 1, "agent_version": "9", "backend": "sim"}))\n'
)


def test_garbage_instead_of_hello_is_an_agent_error():
    session, proc = session_for("print('Welcome to node n1! Last login: yesterday')\nimport time; time.sleep(5)")
    with pytest.raises(NodeError) as caught:
        session.wait_hello(5)
    assert caught.value.kind == "agent"
    assert "garbage" in caught.value.message
    assert "Welcome to node" in caught.value.message
    assert caught.value.exit_code == ExitCode.FAILURE
    proc.kill()


def test_silent_agent_times_out_without_hanging():
    session, proc = session_for("import time; time.sleep(30)")
    with pytest.raises(NodeError) as caught:
        session.wait_hello(0.5)
    assert caught.value.kind == "timeout"
    assert caught.value.exit_code == ExitCode.TIMEOUT
    proc.kill()


def test_agent_dying_mid_request_fails_the_request():
    session, proc = session_for(HELLO + "sys.stdin.readline()\nsys.exit(3)\n")
    session.wait_hello(5)
    with pytest.raises(NodeError) as caught:
        session.sample(timeout=5)
    assert caught.value.kind == "agent"
    assert "exited" in caught.value.message
    proc.wait(5)


def test_agent_dying_mid_stream_is_noticed():
    script = HELLO + textwrap.dedent(
        """
        req = json.loads(sys.stdin.readline())
        print(json.dumps({"id": req["id"], "ok": True, "result": {"streaming": True}}))
        for t in range(2):
            print(json.dumps({"id": req["id"], "type": "sample", "result": {"time": t, "gpus": []}}))
        print("Traceback (most recent call last): boom")
        """
    )
    session, proc = session_for(script)
    session.wait_hello(5)
    seen = []
    session.stream(1.0, seen.append, timeout=5)
    proc.wait(5)
    with pytest.raises(NodeError) as caught:
        session.sample(timeout=5)
    assert [s.time for s in seen] == [0, 1]
    assert "garbage" in caught.value.message


def test_protocol_skew_is_refused_with_a_hint():
    session, proc = session_for(
        'import json\nprint(json.dumps({"type": "hello", "protocol": 99}))\nimport time; time.sleep(5)'
    )
    with pytest.raises(NodeError) as caught:
        session.wait_hello(5)
    assert "protocol 99" in caught.value.message
    assert caught.value.hint
    proc.kill()


def test_refused_request_is_a_usage_error():
    script = HELLO + textwrap.dedent(
        """
        req = json.loads(sys.stdin.readline())
        err = {"kind": "usage", "message": "900 W is outside 200-700 W"}
        print(json.dumps({"id": req["id"], "ok": False, "error": err}))
        sys.stdin.readline()
        """
    )
    session, proc = session_for(script)
    session.wait_hello(5)
    from factoryctl.errors import UsageError

    with pytest.raises(UsageError) as caught:
        session.set_power_limit(900)
    assert "200-700 W" in caught.value.message
    proc.kill()
