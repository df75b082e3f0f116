"""The agent's "needs root" answer, against a simulated node whose setters need root (as real NVML's do).

In process (the driver sees a non-root euid through `_effective_uid`, whoever runs the tests), and through the real
zipapp's `--setters-need-root`, whose answer depends on who runs it: refused unless root. The refusal is checked by
a user who is not root whoever runs the tests (as root: the zipapp runs as nobody, tests/nonroot.py).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nonroot import needs_non_root, non_root_directory

from factoryctl.agent.nvml import NvmlSession
from factoryctl.agent.server import AgentServer
from factoryctl.sim import nvml


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An agent over a 2-GPU simulated node whose setters need root, run by a user who is not root."""
    monkeypatch.setattr(nvml, "_effective_uid", lambda: 1000)
    nvml.configure("n1", state_dir=str(tmp_path / "state"), profile="h100-sxm", gpus=2, setters_need_root=True)
    yield AgentServer("n1", "sim", NvmlSession(nvml), io.StringIO())
    nvml.configure(node="unused")


def ask(server: AgentServer, op: str, **args: Any) -> dict[str, Any]:
    out = server.out
    assert isinstance(out, io.StringIO)
    out.seek(0)
    out.truncate()
    server.handle(json.dumps({"id": 1, "op": op, **args}))
    reply: dict[str, Any] = json.loads(out.getvalue())
    return reply


@pytest.mark.parametrize(("op", "args"), [("set_power_limit", {"watts": 300}), ("reset_power_limit", {})])
def test_a_refused_set_is_a_driver_error_that_says_root_is_needed(server: AgentServer, op: str, args: Any) -> None:
    reply = ask(server, op, gpus=None, **args)
    assert reply["ok"] is False
    assert reply["error"] == {
        "kind": "driver",
        "message": "setting a power limit needs root (GPU 0: insufficient permissions)",
        "reason": "needs_root",
    }
    assert reply["result"] == {"gpus": []}  # no GPU was changed before the refusal
    assert [nvml.sim_node().enforced_limit_w(i) for i in (0, 1)] == [700.0, 700.0]


@needs_non_root
def test_the_zipapp_takes_setters_need_root_from_its_argv(start_agent: Any) -> None:
    with non_root_directory() as state:
        agent = start_agent("--setters-need-root", "--gpus", "2", state_dir=state, non_root=True)
        reply = agent.request("set_power_limit", gpus=[0], watts=300)
        limit = agent.request("sample")["result"]["gpus"][0]["power_limit_w"]
        agent.close()  # before its state directory goes
    assert reply["ok"] is False, reply
    assert reply["error"] == {
        "kind": "driver",
        "message": "setting a power limit needs root (GPU 0: insufficient permissions)",
        "reason": "needs_root",
    }
    assert limit == 700.0


@pytest.mark.skipif(os.geteuid() != 0, reason="root's answer: the tests do not run as root")
def test_root_sets_with_setters_need_root(start_agent: Any) -> None:
    reply = start_agent("--setters-need-root", "--gpus", "2").request("set_power_limit", gpus=[0], watts=300)
    assert reply["ok"] is True, reply
    assert reply["result"]["gpus"][0]["enforced_w"] == 300.0


def test_without_it_the_zipapp_sets_for_anyone(start_agent: Any) -> None:
    reply = start_agent("--gpus", "2").request("set_power_limit", gpus=[0], watts=300)
    assert reply["ok"] is True, reply
