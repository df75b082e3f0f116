"""The agent session's reader thread never dies quietly (real processes speaking the protocol badly).

A malformed sample fails the session with a reason, so a waiting request wakes at once and the link, which watches
`session.failure`, reconnects. An exception from the caller's `on_sample` is the caller's bug, not the agent's: it is
logged and counted, and the reader goes on delivering samples and replies.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest

from factoryctl.errors import NodeError
from factoryctl.model.telemetry import NodeSample
from factoryctl.transport.session import AgentSession

HELLO = """
import json, sys, time
print(json.dumps({"type": "hello", "protocol": 1, "agent_version": "9", "backend": "sim"}), flush=True)
stream = json.loads(sys.stdin.readline())
print(json.dumps({"id": stream["id"], "ok": True, "result": {"streaming": True}}), flush=True)

def sample(result):
    print(json.dumps({"id": stream["id"], "type": "sample", "result": result}), flush=True)

"""
#: Long enough that a request waiting for a reply would fail a test by its timeout kind, not hang it.
REQUEST_TIMEOUT_S = 30.0


@pytest.fixture
def start() -> Iterator[Callable[[str], AgentSession]]:
    started: list[subprocess.Popen[bytes]] = []

    def run(script: str) -> AgentSession:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-c", HELLO + textwrap.dedent(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started.append(proc)
        assert proc.stdin is not None
        assert proc.stdout is not None
        session = AgentSession("n1", proc.stdin, proc.stdout, on_close=proc.kill)
        session.wait_hello(10)
        return session

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@pytest.mark.parametrize(
    "result",
    [
        '{"time": 1.0, "gpus": [1]}',
        '{"time": 1.0, "gpus": [{"power_w": 3.0}]}',
        '{"time": "noon", "gpus": []}',
        '{"time": 1.0, "gpus": 7}',
        '{"time": 1.0, "host": "big"}',
        "[1, 2]",
    ],
)
def test_a_malformed_sample_fails_the_session_and_wakes_the_waiting_request(
    start: Callable[[str], AgentSession], result: str
) -> None:
    session = start(
        f"""
        request = json.loads(sys.stdin.readline())  # the `sample` request below: never answered
        sample({result})
        sys.stdin.read()  # until close() ends our stdin
        """
    )
    session.stream(1.0, lambda _: None, timeout=10)
    with pytest.raises(NodeError) as caught:
        session.sample(timeout=REQUEST_TIMEOUT_S)
    assert caught.value.kind == "agent"  # not "timeout": the failure woke it
    assert caught.value.node == "n1"
    assert caught.value.message.startswith("the agent sent a malformed sample ("), caught.value.message
    assert session.failure is caught.value
    session.close()


def test_a_malformed_reply_to_one_sample_is_an_agent_error(start: Callable[[str], AgentSession]) -> None:
    session = start(
        """
        request = json.loads(sys.stdin.readline())
        print(json.dumps({"id": request["id"], "ok": True, "result": {"time": 1.0, "gpus": ["x"]}}), flush=True)
        sys.stdin.read()  # until close() ends our stdin
        """
    )
    session.stream(1.0, lambda _: None, timeout=10)
    with pytest.raises(NodeError) as caught:
        session.sample(timeout=REQUEST_TIMEOUT_S)
    assert caught.value.kind == "agent"
    assert "malformed sample" in caught.value.message
    session.close()


def test_an_exception_from_on_sample_does_not_stop_the_reader(
    start: Callable[[str], AgentSession], caplog: pytest.LogCaptureFixture
) -> None:
    session = start(
        """
        request = json.loads(sys.stdin.readline())  # the `sample` request below
        for t in (1.0, 2.0, 3.0):
            sample({"time": t, "gpus": [{"index": 0, "power_w": 100.0 + t}]})
        print(json.dumps({"id": request["id"], "ok": True, "result": {"time": 4.0, "gpus": []}}), flush=True)
        bye = json.loads(sys.stdin.readline())  # close() asks the agent to exit
        print(json.dumps({"id": bye["id"], "ok": True, "result": {"bye": True}}), flush=True)
        """
    )
    seen: list[NodeSample] = []

    def on_sample(sample: NodeSample) -> None:
        if sample.time < 3.0:
            raise RuntimeError(f"bug in the caller at {sample.time}")
        seen.append(sample)

    session.stream(1.0, on_sample, timeout=10)
    with caplog.at_level(logging.WARNING, logger="factoryctl.transport"):
        reply = session.sample(timeout=REQUEST_TIMEOUT_S)  # answered after the samples: they were all handled
    assert reply.time == 4.0
    assert [s.time for s in seen] == [3.0]
    assert session.failure is None
    assert session.callback_errors == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "factoryctl.transport"]
    assert warnings == ["n1: handling a sample failed (RuntimeError: bug in the caller at 1.0); the session goes on"]
    session.close()
