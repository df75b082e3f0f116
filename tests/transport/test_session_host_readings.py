"""The agent session builds a sample's host with the model's checks (a real process speaking the protocol).

`_to_sample` took each host value that was a finite number as it came: the review's agent's `"cpu_pct": 1e308`,
`"load_1m": -5` and `"memory_used_mib": 1e300` reached the store and the dashboard. A streamed sample and the reply
to a `sample` request are built the same way, so both are checked here; a GPU process pid of 2**70 is left out.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from factoryctl.errors import NodeError
from factoryctl.model.telemetry import HostSample, NodeSample
from factoryctl.transport.session import AgentSession

#: The start of every agent here: it says hello and has `send`.
HELLO = """
import json, sys
def send(message):
    print(json.dumps(message), flush=True)
send({"type": "hello", "protocol": 1, "agent_version": "9", "backend": "nvml"})
"""

#: An agent whose every sample carries the review's host values and a process with pid 2**70 beside a real one.
HOSTILE_AGENT = """
host = {"cpu_pct": 1e308, "load_1m": -5, "memory_used_mib": 1e300, "memory_total_mib": 1024}
procs = [{"pid": 2**70, "used_memory_mib": 100, "name": "big"}, {"pid": 4321, "used_memory_mib": 12, "name": "ok"}]
result = {"time": 5.0, "backend": "nvml", "gpus": [{"index": 0, "power_w": 300, "processes": procs}], "host": host}
stream = json.loads(sys.stdin.readline())
send({"id": stream["id"], "ok": True, "result": {"streaming": True}})
send({"id": stream["id"], "type": "sample", "result": result})
request = json.loads(sys.stdin.readline())
send({"id": request["id"], "ok": True, "result": result})
sys.stdin.read()  # until close() ends our stdin
"""

#: An agent whose sample's host is a string.
TEXT_HOST_AGENT = """
request = json.loads(sys.stdin.readline())
send({"id": request["id"], "ok": True, "result": {"time": 5.0, "host": "big"}})
sys.stdin.read()
"""


@contextlib.contextmanager
def agent_session(script: str) -> Iterator[AgentSession]:
    """A session with `HELLO + script` run as the agent, its hello received; the process gone afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", textwrap.dedent(HELLO + script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        session = AgentSession("n1", proc.stdin, proc.stdout, on_close=proc.kill)
        session.wait_hello(10)
        yield session
        session.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def test_a_sample_with_readings_no_host_can_show_keeps_only_the_real_ones() -> None:
    with agent_session(HOSTILE_AGENT) as session:
        streamed: queue.Queue[NodeSample] = queue.Queue()
        session.stream(1.0, streamed.put, timeout=10)
        samples = [streamed.get(timeout=10), session.sample(timeout=10)]
        assert session.failure is None
    for sample in samples:
        assert sample.host == HostSample(memory_total_mib=1024)
        assert [(p.pid, p.name) for p in sample.gpus[0].processes] == [(4321, "ok")]
        assert sample.gpus[0].power_w == 300


def test_a_host_that_is_not_an_object_fails_the_session_saying_so() -> None:
    with agent_session(TEXT_HOST_AGENT) as session, pytest.raises(NodeError) as caught:
        session.sample(timeout=10)
    assert caught.value.kind == "agent"
    assert caught.value.message == "the agent sent a malformed sample (its host is not an object: 'big')."
