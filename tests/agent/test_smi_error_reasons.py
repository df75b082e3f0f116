"""The nvidia-smi fallback's errors carry the agent's `reason` too, read from nvidia-smi's exit code, not its words.

The bridge answers the agent protocol for a node without Python, and its errors reach the same hint logic, which read
nvidia-smi's text ("Insufficient Permissions"). Here the node's nvidia-smi (over a real sshd) is the simulated
driver's shim for queries, and for `-pl` fails with a chosen exit code and a message no hint knows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import Wire
from sshd_fixture import sshd_factory  # noqa: F401

from factoryctl.errors import NodeError
from factoryctl.sim.state import SimNode
from factoryctl.transport.hints import LostGpuError
from factoryctl.transport.smi import SmiBridge, no_such_gpu
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

pytestmark = pytest.mark.sshd

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)
#: nvidia-smi on the node: the shim, except that `-pl` fails with exit `code` and words no hint knows.
WRAPPER = """#!{python} -B
import sys
from factoryctl.sim import smi
args = sys.argv[1:]
if "-pl" in args:
    sys.stderr.write("the board declined the request\\n")
    sys.exit({code})
sys.exit(smi.main(["--node", "bare", "--factory", "lab", "--state-dir", {state!r}, *args]))
"""


@pytest.fixture
def bridge(sshd_factory: Any, tmp_path: Path) -> Iterator[Callable[..., SmiBridge]]:  # noqa: F811
    """`bridge(code, **sim)`: the bridge to a 2-GPU node whose `nvidia-smi -pl` exits `code` (SimNode options `sim`)."""
    pools: list[SshPool] = []

    def make(code: int, **sim: Any) -> SmiBridge:
        server = sshd_factory()
        state = str(tmp_path / f"sim-{code}")
        SimNode(state, "bare", "lab", profile="h100-sxm", gpus=2, **sim)
        script = server.bin_dir / "nvidia-smi"
        script.write_text(WRAPPER.format(python=sys.executable, state=state, code=code))
        script.chmod(0o755)
        spec = server.node("bare", server.write_known_hosts(tmp_path / f"kh-{server.port}"))
        pools.append(SshPool(OPTIONS))
        return SmiBridge("bare", pools[-1].connect(spec), timeout=30)

    yield make
    for pool in pools:
        pool.close()


@pytest.mark.parametrize(
    ("code", "reason"),
    [(4, "needs_root"), (3, "unsupported"), (15, "gpu_lost"), (9, "no_driver"), (1, "driver_failed")],
)
def test_a_failed_set_says_the_reason_of_nvidia_smis_exit_code(
    bridge: Callable[..., SmiBridge], code: int, reason: str
) -> None:
    wire = Wire(bridge(code))
    try:
        assert wire.read()["type"] == "hello"
        reply = wire.ask(id=3, op="set_power_limit", watts=300, gpus=[0])
    finally:
        wire.close()
    assert reply["ok"] is False, reply
    assert reply["error"] == {
        "kind": "driver",
        "message": "nvidia-smi failed: the board declined the request",
        "reason": reason,
    }


def test_a_gpu_without_its_limit_range_says_unsupported(bridge: Callable[..., SmiBridge]) -> None:
    wire = Wire(bridge(0, unsupported=["power_limit_min_w"]))
    try:
        assert wire.read()["type"] == "hello"
        reply = wire.ask(id=3, op="set_power_limit", watts=300, gpus=[0])
    finally:
        wire.close()
    assert reply["error"] == {
        "kind": "driver",
        "message": "GPU 0 does not report its power-limit range",
        "reason": "unsupported",
    }


def test_the_session_hints_by_the_exit_code_not_by_the_words(bridge: Callable[..., SmiBridge]) -> None:
    session = bridge(4).session()
    try:
        session.wait_hello(30)
        with pytest.raises(NodeError) as caught:
            session.set_power_limit(300.0, gpus=[0], timeout=30)
    finally:
        session.close()
    assert (caught.value.node, caught.value.message) == ("bare", "nvidia-smi failed: the board declined the request")
    assert caught.value.hint is not None
    assert "needs root on the node" in caught.value.hint


def _refusal(bridge: SmiBridge, **request: Any) -> dict[str, Any]:
    wire = Wire(bridge)
    try:
        assert wire.read()["type"] == "hello"
        reply = wire.ask(id=3, op="set_power_limit", watts=300, **request)
    finally:
        wire.close()
    assert reply["ok"] is False, reply
    error: dict[str, Any] = reply["error"]
    return error


def test_a_gpu_that_is_not_there_is_refused_without_naming_the_node(bridge: Callable[..., SmiBridge]) -> None:
    """The client writes the node in front (`bare: no GPU 5 ...`): it said `no GPU [5] on bare`."""
    assert _refusal(bridge(0), gpus=[5]) == {"kind": "usage", "message": "no GPU 5 (it has GPUs 0-1)"}


def test_a_lost_gpu_is_refused_as_the_agent_refuses_it(bridge: Callable[..., SmiBridge], tmp_path: Path) -> None:
    """It said the GPU `does not report its power-limit range` (`unsupported`): the hint blamed the board."""
    made = bridge(0)
    SimNode(str(tmp_path / "sim-0"), "bare", "lab").inject("lost", [1])
    assert _refusal(made, gpus=None) == {
        "kind": "driver",
        "message": "GPU 1 is lost; nothing was changed",
        "reason": "gpu_lost",
        "other_gpus": [0],
    }


def test_the_session_hints_the_lost_gpus_others_from_the_field(
    bridge: Callable[..., SmiBridge], tmp_path: Path
) -> None:
    made = bridge(0)
    SimNode(str(tmp_path / "sim-0"), "bare", "lab").inject("lost", [0])
    session = made.session()
    try:
        session.wait_hello(30)
        with pytest.raises(LostGpuError) as caught:
            session.set_power_limit(300.0, timeout=30)
    finally:
        session.close()
    assert (caught.value.node, caught.value.message, caught.value.others) == (
        "bare",
        "GPU 0 is lost; nothing was changed",
        "1",
    )


def test_the_refusal_lists_the_gpus_nvidia_smi_listed_as_they_are() -> None:
    """From their count it said `no GPU 2 (it has GPUs 0-2)` of GPUs 0, 1 and 3, and `0--1` of none."""
    assert no_such_gpu(2, [0, 1, 3]) == "no GPU 2 (it has GPUs 0-1,3)"
    assert no_such_gpu(0, []) == "no GPU 0 (it lists no GPU)"
    assert no_such_gpu(5, [0, 1]) == "no GPU 5 (it has GPUs 0-1)"
