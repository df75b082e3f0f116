"""A local agent's output is read under the limits it has over SSH, and a second hello fails its session at once.

`transport: local` iterated the agent's pipes with no limit: an agent sending output without a newline grew this
process to 3 GB (stdout) or 2.4 GB (stderr) in 15 s, where over SSH the session fails past 16 MiB and a stderr line
is cut to 4 KiB (transport/agent_lines.py, one rule for both). A hello sent again in the middle of a session blocked
the session's reader thread for good: every reply after it was lost and the node was reported timed out.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.agent_lines import MAX_LINE_BYTES, MAX_STDERR_LINE
from factoryctl.transport.local import LocalTransport

#: A stand-in agent, run as the node's `python:` (the agent's arguments are ignored). `flood` answers with one line of
#: MAX_LINE_BYTES + 1 MiB, `hello` says hello twice more before its answer, `die` leaves a long stderr line and exits.
STAND_IN = """
import json, sys
out = sys.stdout.buffer
def send(m):
    out.write(json.dumps(m).encode() + b"\\n"); out.flush()
hello = {"type": "hello", "agent_version": "0.0.0", "protocol": 1, "backend": "sim", "gpus": 1}
send(hello)
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "flood":
        for _ in range(LIMIT_MIB + 1):
            out.write(b"x" * (1 << 20))
        out.write(b"\\n"); out.flush()
    elif req["op"] == "hello":
        send(hello); send(hello)
        send({"id": req["id"], "ok": True, "result": {}})
    elif req["op"] == "die":
        sys.stderr.buffer.write(b"E" * (1 << 20)); sys.stderr.flush()
        sys.exit(3)
    elif req["op"] == "shutdown":
        send({"id": req["id"], "ok": True, "result": {}}); break
    else:
        send({"id": req["id"], "ok": True, "result": {}})
"""


@pytest.fixture
def transport(tmp_path: Path) -> Iterator[LocalTransport]:
    python = tmp_path / "stand-in-agent"
    code = textwrap.dedent(STAND_IN).replace("LIMIT_MIB", str(MAX_LINE_BYTES >> 20))
    python.write_text(f"#!{sys.executable}\n{code}")
    python.chmod(0o755)
    node = NodeSpec(name="n1", host="localhost", transport="local", python=str(python))
    local = LocalTransport(node, "lab", tmp_path / "state")
    yield local
    local.close()


def _failure(transport: LocalTransport, op: str) -> NodeError:
    """The error of `op` on a fresh session (which must fail, its reader thread ended)."""
    session = transport.start_agent(30)
    with pytest.raises(NodeError) as caught:
        session.request(op, timeout=30)  # type: ignore[arg-type]  # the stand-in's own ops
    assert session.failure is caught.value  # what the link watches to reconnect
    session._reader.join(5)
    assert not session._reader.is_alive()
    session.close()
    return caught.value


def test_a_stdout_line_over_the_limit_fails_the_session_as_over_ssh(transport: LocalTransport) -> None:
    failed = _failure(transport, "flood")
    assert (failed.kind, failed.node) == ("agent", "n1")
    assert failed.message == "the agent's output broke off (the agent sent a line over 16 MiB).", failed.message
    again = transport.start_agent(30)  # the node is usable again: a new session
    assert again.request("sample", timeout=30) == {}
    again.close()


def test_a_long_stderr_line_is_cut_as_over_ssh(transport: LocalTransport) -> None:
    failed = _failure(transport, "die")
    assert failed.kind == "agent"
    words = failed.message.partition("; its last words: ")[2]
    assert words == "E" * MAX_STDERR_LINE + ".", f"{failed.message[:120]}... ({len(failed.message)} characters)"


def test_a_second_hello_fails_the_session_at_once(transport: LocalTransport) -> None:
    failed = _failure(transport, "hello")
    assert (failed.kind, failed.node) == ("agent", "n1")
    assert failed.message == "the agent said hello a second time, in the middle of its session.", failed.message
    assert failed.hint == "run `factoryctl nodes check n1` to diagnose the agent."
