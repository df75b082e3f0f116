"""Every `driver` and `unsupported` error of the agent says its `reason`, which the client picks its hint by.

The client used to read the cause from the message's wording ("needs root", "another change of its power limits"),
so rewording a message silently changed the hint. These tests run the real agent zipapp (and, for the root check, the
agent in process with a non-root euid seen by the simulated driver) and read each error's `reason`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factoryctl.agent.limits_lock import LimitsLock
from factoryctl.agent.nvml import NvmlSession
from factoryctl.agent.protocol import REASONS
from factoryctl.agent.server import AgentServer
from factoryctl.sim import nvml
from factoryctl.sim.storage import limits_lock_path


def _state_dir(agent: Any) -> Path:
    argv = agent.proc.args
    return Path(argv[argv.index("--state-dir") + 1])


def _refused(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"] is False, reply
    error: dict[str, Any] = reply["error"]
    return error


@pytest.fixture
def non_root_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentServer]:
    """The agent over a simulated node whose setters need root, as a user who is not root."""
    monkeypatch.setattr(nvml, "_effective_uid", lambda: 1000)
    nvml.configure("n1", state_dir=str(tmp_path / "state"), profile="h100-sxm", gpus=2, setters_need_root=True)
    yield AgentServer("n1", "sim", NvmlSession(nvml), io.StringIO())
    nvml.configure(node="unused")


def test_a_refusal_to_a_user_who_is_not_root_says_needs_root(non_root_server: AgentServer) -> None:
    non_root_server.handle(json.dumps({"id": 1, "op": "set_power_limit", "watts": 300}))
    out = non_root_server.out
    assert isinstance(out, io.StringIO)
    error = _refused(json.loads(out.getvalue()))
    assert (error["kind"], error["reason"]) == ("driver", "needs_root")


@pytest.mark.parametrize("withheld", ["power_limit_w", "power_limit_min_w"])
def test_a_gpu_without_a_settable_limit_or_its_range_says_unsupported(start_agent: Any, withheld: str) -> None:
    agent = start_agent("--unsupported", withheld, "--gpus", "2")
    error = _refused(agent.request("set_power_limit", gpus=[0], watts=300))
    assert (error["kind"], error["reason"]) == ("unsupported", "unsupported")


def test_a_lost_gpu_says_gpu_lost(start_agent: Any) -> None:
    agent = start_agent("--gpus", "2")
    assert agent.request("inject", fault="lost", gpus=[1])["ok"]
    for op, args in (("set_power_limit", {"watts": 300}), ("reset_power_limit", {})):
        error = _refused(agent.request(op, gpus=[1], **args))
        assert (error["kind"], error["reason"]) == ("driver", "gpu_lost")


def test_a_lock_held_for_the_whole_wait_says_lock_busy(start_agent: Any) -> None:
    agent = start_agent(node="busy")
    with LimitsLock(limits_lock_path(_state_dir(agent), "default", "busy"), private=False).held(timeout_s=5):
        error = _refused(agent.request("set_power_limit", gpus=[0], watts=300, lock_timeout_s=0.2))
    assert (error["kind"], error["reason"]) == ("driver", "lock_busy")


def test_a_lock_file_that_cannot_be_used_says_lock_unusable(start_agent: Any, tmp_path: Path) -> None:
    agent = start_agent(node="linked")
    assert agent.request("set_power_limit", gpus=[0], watts=300)["ok"]
    lock_file = limits_lock_path(_state_dir(agent), "default", "linked")
    lock_file.unlink()
    lock_file.symlink_to(tmp_path / "elsewhere")
    error = _refused(agent.request("set_power_limit", gpus=[0], watts=250))
    assert (error["kind"], error["reason"]) == ("driver", "lock_unusable")


def test_a_driver_that_is_not_available_says_no_driver_in_the_hello_replies_and_samples(
    start_agent: Any, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "state-file"
    not_a_directory.write_text("")
    agent = start_agent("--state-dir", str(not_a_directory))
    assert (agent.hello["gpus"], agent.hello["error"]["reason"]) == (None, "no_driver")
    for op, args in (("sample", {}), ("set_power_limit", {"watts": 300})):
        error = _refused(agent.request(op, **args))
        assert (error["kind"], error["reason"]) == ("driver", "no_driver")


def test_usage_and_agent_errors_carry_no_reason(start_agent: Any) -> None:
    agent = start_agent("--gpus", "2")
    usage = _refused(agent.request("set_power_limit", gpus=[5], watts=300))
    assert usage["kind"] == "usage"
    assert "reason" not in usage
    agent.send_line("[1, 2]")
    not_an_object = _refused(agent.read())
    assert not_an_object["kind"] == "agent"
    assert "reason" not in not_an_object


def test_every_reason_is_documented() -> None:
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "agent-protocol.md").read_text()
    assert [r for r in REASONS if f"`{r}`" not in protocol] == []
