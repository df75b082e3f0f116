"""The agent, the nvidia-smi bridge and the client speak one protocol, defined once in factoryctl.agent.protocol.

The protocol version was written out in the agent and again in the client, the op names were bare strings on every
side, and the bridge built its error replies by hand: nothing tied them together. Here: the version is assigned in one
module only, the agent serves exactly the protocol's ops (as the doc lists them), the real zipapp's hello is accepted
by the client, and an error the agent refuses with reaches the client's hint logic with its kind and reason intact
(the message worded so that no hint could be read from it).
"""

from __future__ import annotations

import ast
import io
import json
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import Wire
from sshd_fixture import sshd_factory  # noqa: F401

import factoryctl
from factoryctl.agent.nvml import NvmlSession
from factoryctl.agent.protocol import (
    DRIVER_FAILED,
    GPU_LOST,
    LOCK_BUSY,
    LOCK_UNUSABLE,
    NEEDS_ROOT,
    NO_DRIVER,
    OPS,
    PROTOCOL_VERSION,
    REASONS,
    UNSUPPORTED,
    RequestError,
    WireSample,
    error_object,
)
from factoryctl.agent.server import AgentServer
from factoryctl.errors import NodeError, UsageError
from factoryctl.sim import nvml
from factoryctl.sim.state import SimNode
from factoryctl.transport.bundle import bundle_members
from factoryctl.transport.session import AgentSession, PartlyDone
from factoryctl.transport.smi import SmiBridge
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

#: Worded so that the client's fallback (reading a reason from an old agent's wording) finds nothing in it.
NEUTRAL = "the board declined the request"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "agent-protocol.md"


def version_definitions(package: Path) -> list[str]:
    """The modules of `package` (a factoryctl source tree) that assign PROTOCOL_VERSION."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            if any(isinstance(target, ast.Name) and target.id == "PROTOCOL_VERSION" for target in targets):
                found.append(path.relative_to(package).as_posix())
    return found


def test_the_protocol_version_is_assigned_in_one_module_only() -> None:
    assert version_definitions(Path(factoryctl.__file__).resolve().parent) == ["agent/protocol.py"]


def test_the_agent_serves_exactly_the_ops_of_the_protocol_and_of_its_doc() -> None:
    served = {name[len("op_") :] for name in dir(AgentServer) if name.startswith("op_")}
    operations = DOCS.read_text().split("| op | arguments | result |", 1)[1].split("\n\n", 1)[0]  # the ops' table
    documented = set(re.findall(r"^\| `(\w+)` \|", operations, re.MULTILINE))
    assert served == set(OPS) == documented


def test_every_reason_is_documented_and_reasons_are_distinct() -> None:
    protocol = DOCS.read_text()
    assert [r for r in REASONS if f"| `{r}` |" not in protocol] == []
    assert len(set(REASONS)) == len(REASONS)


def test_the_zipapp_ships_the_protocol_and_its_hello_is_the_clients_version(start_agent: Any) -> None:
    assert "factoryctl/agent/protocol.py" in [name for name, _ in bundle_members()]
    hello = start_agent().hello
    assert (hello["type"], hello["protocol"]) == ("hello", PROTOCOL_VERSION)


def test_the_wire_shapes_of_errors_are_the_documented_ones() -> None:
    assert RequestError("usage", "no GPU 9").reply(3) == {
        "id": 3,
        "ok": False,
        "error": error_object("usage", "no GPU 9"),
    }
    assert error_object("agent", "bad line") == {"kind": "agent", "message": "bad line"}  # no `reason` key at all
    done = {"gpus": [{"index": 0, "before_w": 700.0, "enforced_w": 300.0, "clamped": False}]}
    assert json.loads(json.dumps(RequestError("driver", NEUTRAL, done, GPU_LOST).reply("r1"))) == {
        "id": "r1",
        "ok": False,
        "error": {"kind": "driver", "message": NEUTRAL, "reason": "gpu_lost"},
        "result": done,
    }


class RefusingServer(AgentServer):
    """The real agent over the simulated driver, except that power sets and samples fail with `refusal`."""

    refusal = RequestError("agent", "unset")

    def sample(self, slow_max_age: float | None = None) -> WireSample:
        raise self.refusal

    def op_set_power_limit(self, req: dict[str, Any]) -> dict[str, Any]:
        raise self.refusal


@pytest.fixture
def refusing(tmp_path: Path) -> Iterator[Callable[[RequestError], AgentSession]]:
    """`refusing(error)`: a client session to an in-process agent (node gpu07, backend nvml) that refuses with it."""
    nvml.configure("gpu07", state_dir=str(tmp_path / "state"), profile="h100-sxm", gpus=2)
    sessions: list[AgentSession] = []

    def start(refusal: RequestError) -> AgentSession:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        server = RefusingServer("gpu07", "nvml", NvmlSession(nvml), io.TextIOWrapper(os.fdopen(reply_w, "wb")))
        server.refusal = refusal

        def serve() -> None:
            with os.fdopen(request_r) as requests, server.out:
                server.serve(requests)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        session = AgentSession("gpu07", os.fdopen(request_w, "wb"), os.fdopen(reply_r, "rb"), on_close=thread.join)
        session.wait_hello(30)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close(timeout=30)
    nvml.configure(node="unused")


#: (kind, reason) -> what the client's hint then says; the last reason is one a newer agent might add.
HINTS = [
    ("driver", NEEDS_ROOT, "connect as root"),
    ("driver", LOCK_BUSY, "longer --timeout"),
    ("driver", LOCK_UNUSABLE, "lock file cannot be used"),
    ("driver", GPU_LOST, "a lost GPU answers nothing"),
    ("unsupported", UNSUPPORTED, "null_reasons"),
    ("driver", NO_DRIVER, "check the NVIDIA driver on the node."),
    ("driver", DRIVER_FAILED, "check the NVIDIA driver on the node."),
    ("driver", "reason_of_a_newer_agent", "check the NVIDIA driver on the node."),
]


def test_every_reason_has_a_round_trip_case() -> None:
    assert set(REASONS) <= {reason for _, reason, _ in HINTS}


@pytest.mark.parametrize(("kind", "reason", "hint"), HINTS)
def test_a_refusal_reaches_the_client_with_its_kind_and_reason(
    refusing: Callable[[RequestError], AgentSession], kind: Any, reason: str, hint: str
) -> None:
    with pytest.raises(NodeError) as caught:
        refusing(RequestError(kind, NEUTRAL, reason=reason)).set_power_limit(300.0, timeout=30)
    assert type(caught.value) is NodeError
    assert (caught.value.kind, caught.value.message) == ("driver", NEUTRAL)
    assert hint in (caught.value.hint or "")


def test_a_usage_refusal_is_a_usage_error_naming_the_node(refusing: Callable[[RequestError], AgentSession]) -> None:
    with pytest.raises(UsageError) as caught:
        refusing(RequestError("usage", "900 W is outside the range")).set_power_limit(900.0, timeout=30)
    assert caught.value.message == "gpu07: 900 W is outside the range"


def test_an_agent_error_names_the_op(refusing: Callable[[RequestError], AgentSession]) -> None:
    with pytest.raises(NodeError) as caught:
        refusing(RequestError("agent", NEUTRAL)).set_power_limit(300.0, timeout=30)
    assert (caught.value.kind, caught.value.message) == ("agent", f"`set_power_limit` failed: {NEUTRAL}")


def test_a_refusal_part_way_carries_what_was_done(refusing: Callable[[RequestError], AgentSession]) -> None:
    done = {"gpus": [{"index": 0, "before_w": 700.0, "enforced_w": 300.0, "clamped": False}]}
    with pytest.raises(PartlyDone) as caught:
        refusing(RequestError("driver", NEUTRAL, done, GPU_LOST)).set_power_limit(300.0, timeout=30)
    assert caught.value.result == done
    assert "a lost GPU answers nothing" in (caught.value.hint or "")


def test_a_streamed_sample_that_failed_reaches_on_error_with_its_reason(
    refusing: Callable[[RequestError], AgentSession],
) -> None:
    failed: queue.Queue[NodeError] = queue.Queue()
    delivered: list[Any] = []
    session = refusing(RequestError("driver", NEUTRAL, reason=NEEDS_ROOT))
    session.stream(1.0, delivered.append, 30, on_error=failed.put)
    error = failed.get(timeout=30)
    assert (error.kind, error.message) == ("driver", NEUTRAL)
    assert "connect as root" in (error.hint or "")
    assert delivered == []


#: nvidia-smi on the bridge's node: the simulated driver's shim.
SHIM = """#!{python} -B
import sys
from factoryctl.sim import smi
sys.exit(smi.main(["--node", "bare", "--factory", "lab", "--state-dir", {state!r}, *sys.argv[1:]]))
"""
#: The ops a node without Python cannot serve: the bridge refuses them as `usage` (docs/agent-protocol.md).
NOT_BRIDGED = {"inject", "launch", "ranks", "kill", "logs"}


def bridge_answers(wire: Wire) -> dict[str, dict[str, Any]]:
    """The bridge's reply to each op of the protocol (`shutdown` last), asked with the arguments a session sends."""
    ops = [op for op in OPS if op != "shutdown"] + ["shutdown"]
    ids = {op: number for number, op in enumerate(ops, start=1)}
    args: dict[str, dict[str, Any]] = {
        "stream": {"interval_s": 1.0},
        "stop": {"stream": ids["stream"]},
        "set_power_limit": {"gpus": [0], "watts": 300.0, "clamp": False, "lock_timeout_s": 5.0},
        "reset_power_limit": {"gpus": [0], "lock_timeout_s": 5.0},
    }
    answers = {}
    for op in ops:
        wire.send(id=ids[op], op=op, **args.get(op, {}))
        answer = wire.read()
        while answer.get("type") == "sample":  # the stream's, until it stops
            answer = wire.read()
        assert answer["id"] == ids[op], answer
        answers[op] = answer
    return answers


@pytest.mark.sshd
def test_the_bridge_says_the_clients_version_and_answers_every_op_it_can(
    sshd_factory: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = sshd_factory()
    state = str(tmp_path / "sim")
    SimNode(state, "bare", "lab", profile="h100-sxm", gpus=2)
    script = server.bin_dir / "nvidia-smi"
    script.write_text(SHIM.format(python=sys.executable, state=state))
    script.chmod(0o755)
    pool = SshPool(SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30))
    try:
        wire = Wire(SmiBridge("bare", pool.connect(server.node("bare", server.write_known_hosts(tmp_path / "kh"))), 30))
        hello = wire.read()
        assert (hello["type"], hello["protocol"]) == ("hello", PROTOCOL_VERSION)
        answers = bridge_answers(wire)
        wire.close()
    finally:
        pool.close()
    assert {op for op, answer in answers.items() if answer["ok"] is not True} == NOT_BRIDGED
    for op in NOT_BRIDGED:
        error = answers[op]["error"]
        assert (error["kind"], error["message"]) == (
            "usage",
            f"`{op}` is not available through nvidia-smi (no Python on the node)",
        )
    assert answers["set_power_limit"]["result"] == {
        "gpus": [{"index": 0, "before_w": 700.0, "enforced_w": 300.0, "clamped": False}]
    }
    assert answers["shutdown"]["result"] == {"bye": True}
