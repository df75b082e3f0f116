"""An agent that sends a line without end fails its session with one sentence, over a real sshd.

Before, the controller assembled such a line in quadratic time and without a limit (35 s of CPU for 64 MiB, memory
growing for as long as the node kept sending). Now the session fails past `MAX_LINE_BYTES` with a `NodeError` of kind
`agent`, as on any other agent error, so the node's link reconnects.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from stand_in_agent import stand_in_zipapp

from factoryctl.errors import NodeError
from factoryctl.transport.agent_lines import MAX_LINE_BYTES
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_node import SshTransport

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)

#: A stand-in agent: `flood` answers with one line of MAX_LINE_BYTES + 1 MiB (then a newline), `sample` normally.
FLOODING_AGENT = """
import json, sys
out = sys.stdout.buffer
def send(m):
    out.write(json.dumps(m).encode() + b"\\n"); out.flush()
send({"type": "hello", "agent_version": "0.0.0", "protocol": 1, "backend": "sim", "gpus": 1})
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "flood":
        for _ in range(LIMIT_MIB + 1):
            out.write(b"x" * (1 << 20))
        out.write(b"\\n"); out.flush()
    elif req["op"] == "shutdown":
        send({"id": req["id"], "ok": True, "result": {}}); break
    else:
        send({"id": req["id"], "ok": True, "result": {"time": 1.0, "backend": "sim", "gpus": [], "host": {}}})
"""


@pytest.fixture
def flooding_zipapp(tmp_path: Path) -> Path:
    code = textwrap.dedent(FLOODING_AGENT).replace("LIMIT_MIB", str(MAX_LINE_BYTES >> 20))
    return stand_in_zipapp(tmp_path, code, digest="f100df100df100d0")


def test_a_line_over_the_limit_fails_the_session_in_one_sentence(ssh_node, flooding_zipapp):
    transport = SshTransport.open(ssh_node("n1"), "lab", OPTIONS)
    try:
        session = transport.start_agent(60, zipapp=flooding_zipapp)
        with pytest.raises(NodeError) as caught:
            session.request("flood", timeout=120)
        assert session.failure is caught.value  # what the link watches to reconnect
        session.close()
        again = transport.start_agent(60, zipapp=flooding_zipapp)  # the node is usable again: a new session
        assert again.request("sample", timeout=60)["backend"] == "sim"
        again.close()
    finally:
        transport.close()
    assert caught.value.kind == "agent"
    assert caught.value.node == "n1"
    assert caught.value.message == "the agent's output broke off (the agent sent a line over 16 MiB).", (
        caught.value.message
    )
