"""No sentence of the agent names its node: the client writes the node in front of every error it reports, once.

The agent's power-limit errors named the node themselves, so a user read it twice: `n1: setting a power limit on n1
needs root (...)`, `n1: GPU 2 on n1 does not support setting a power limit`, `n1: GPU 2 on n1 is lost; GPUs 0 and 1
had already changed.`. The real agent zipapp on the simulated driver answers each refusal here (in process where
the driver must see a user who is not root, or fail one GPU's set as the real one can: the simulated driver is the
only fake), on a node whose name is in none of its sentences.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_agent_needs_root import ask as ask_agent

from factoryctl.agent.nvml import NvmlSession
from factoryctl.agent.server import AgentServer
from factoryctl.sim import nvml

NODE = "n47"


def _error(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"] is False, reply
    error: dict[str, Any] = reply["error"]
    assert NODE not in error["message"]
    return error


@pytest.mark.parametrize(
    ("withheld", "said"),
    [
        ("power_limit_w", "GPU 1 does not support setting a power limit"),
        ("power_limit_min_w", "GPU 1 does not report its power limit range (not supported)"),
    ],
)
def test_a_gpu_without_the_capability_is_named_without_its_node(start_agent: Any, withheld: str, said: str) -> None:
    agent = start_agent("--unsupported", withheld, "--gpus", "2", node=NODE)
    assert _error(agent.request("set_power_limit", gpus=[1], watts=300))["message"] == said


def test_refusals_of_a_request_name_no_node(start_agent: Any) -> None:
    agent = start_agent("--gpus", "2", node=NODE)
    out_of_range = _error(agent.request("set_power_limit", gpus=[1], watts=900))
    assert out_of_range["message"] == "900 W is outside the power limit range of GPU 1 (200-700 W); nothing was changed"
    assert _error(agent.request("inject", fault="ecc", gpus=[5]))["message"] == "no GPU 5 (it has GPUs 0-1)"
    assert agent.request("inject", fault="lost", gpus=[0])["ok"]
    lost = _error(agent.request("reset_power_limit", gpus=None))
    assert (lost["message"], lost["other_gpus"]) == ("GPU 0 is lost; nothing was changed", [1])


def test_inject_on_a_real_node_names_no_node(start_agent: Any) -> None:
    agent = start_agent(node=NODE, sim=None)
    said = _error(agent.request("inject", fault="lost"))["message"]
    assert said == "not a simulated node; faults can only be injected in simulation"


@pytest.fixture
def ask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., dict[str, Any]]]:
    """`ask(op, **args)`: the reply of an agent in process over a 4-GPU simulated node, whose setters need root."""
    nvml.configure(NODE, state_dir=str(tmp_path / "state"), profile="h100-sxm", gpus=4, setters_need_root=True)
    server = AgentServer(NODE, "sim", NvmlSession(nvml), io.StringIO())

    yield functools.partial(ask_agent, server)
    nvml.configure(node="unused")


def test_a_refusal_to_a_user_who_is_not_root_names_no_node(
    ask: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nvml, "_effective_uid", lambda: 1000)
    said = _error(ask("set_power_limit", watts=300))["message"]
    assert said == "setting a power limit needs root (GPU 0: insufficient permissions)"


@pytest.mark.parametrize(
    ("code", "said", "reason"),
    [
        (nvml.NVML_ERROR_GPU_IS_LOST, "GPU 2 is lost", "gpu_lost"),
        (nvml.NVML_ERROR_UNKNOWN, "setting GPU 2's power limit failed: Unknown Error", "driver_failed"),
    ],
)
def test_a_set_that_fails_part_way_names_the_gpu_not_the_node(
    ask: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch, code: int, said: str, reason: str
) -> None:
    """GPU 2's set fails as the driver fails it (it fell off the bus during the call, or otherwise), after 0 and 1."""
    monkeypatch.setattr(nvml, "_effective_uid", lambda: 0)
    real_set = nvml.nvmlDeviceSetPowerManagementLimit

    def failing_set(handle: Any, limit: int) -> None:
        if nvml.nvmlDeviceGetIndex(handle) == 2:
            raise nvml.NVMLError(code)
        real_set(handle, limit)

    monkeypatch.setattr(nvml, "nvmlDeviceSetPowerManagementLimit", failing_set)
    reply = ask("set_power_limit", watts=300)
    assert (_error(reply)["message"], reply["error"]["reason"]) == (said, reason)
    assert [gpu["index"] for gpu in reply["result"]["gpus"]] == [0, 1]
