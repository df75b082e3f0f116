"""A power set the nvidia-smi fallback fails part-way still tells which GPUs it changed, against a real sshd.

The bridge sets each GPU with its own `nvidia-smi -i N -pl W`. When one failed after others were set, its error reply
carried no `result`, so `power set` audited nothing of the GPUs already changed; and a query failing after the sets
lost the whole list. Now the error reply lists them (`before_w` from the first query, `enforced_w` read again, null
when that read fails), as the agent's does (docs/agent-protocol.md).

The node's nvidia-smi is the simulated driver's shim, wrapped so that what happens on a node during a set happens
at a known moment: GPU 2 falls off the bus just after GPU 1 is set, or the driver's tools go away (an upgrade).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import Wire
from stand_in_agent import stand_in_zipapp

from factoryctl.power.limits import partly_changed
from factoryctl.sim import smi as shim
from factoryctl.sim.state import SimNode
from factoryctl.transport.session import PartlyDone
from factoryctl.transport.smi import SmiBridge
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_node import SshTransport
from factoryctl.transport.ssh_pool import SshPool

pytestmark = pytest.mark.sshd

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)
GPUS = 4
#: nvidia-smi on the node: the shim, then, once GPU `after`'s limit is set, `then` (Python, `node` the SimNode).
WRAPPER = """#!{python} -B
import os, sys
from factoryctl.sim import smi
from factoryctl.sim.state import SimNode
args = sys.argv[1:]
code = smi.main(["--node", "bare", "--factory", "lab", "--state-dir", {state!r}, *args])
if code == 0 and "-pl" in args and args[args.index("-i") + 1] == "{after}":
    node = SimNode({state!r}, "bare", "lab")
    {then}
sys.exit(code)
"""
LOSE_GPU_2 = 'node.inject("lost", [2])'
GPU_2_LOST = (
    "nvidia-smi failed: Unable to determine the device handle for GPU 00000000:38:00.0: GPU is lost. Reboot the "
    "system to recover this GPU"
)
TOOLS_GONE = "os.rename(os.path.abspath(__file__), os.path.abspath(__file__) + '.away')"


@pytest.fixture
def node(sshd_factory: Any, tmp_path: Path) -> Any:
    """`node(after, then, **fields)`: the NodeSpec of a 4-GPU node whose nvidia-smi runs `then` after GPU `after`'s set."""

    def make(after: int, then: str, **fields: Any) -> Any:
        server = sshd_factory()  # its own PATH: its own nvidia-smi
        state = str(tmp_path / "sim")
        SimNode(state, "bare", "lab", profile="h100-sxm", gpus=GPUS)
        script = server.bin_dir / "nvidia-smi"
        script.write_text(WRAPPER.format(python=sys.executable, state=state, after=after, then=then))
        script.chmod(0o755)
        return server.node("bare", server.write_known_hosts(tmp_path / f"kh-{server.port}"), **fields)

    return make


@pytest.fixture
def wire(node: Any) -> Iterator[Any]:
    """`wire(after, then)`: a Wire to the bridge of such a node, its hello read."""
    pools: list[SshPool] = []
    wires: list[Wire] = []

    def make(after: int, then: str) -> Wire:
        spec = node(after, then)
        pool = SshPool(OPTIONS)
        pools.append(pool)
        speaker = Wire(SmiBridge("bare", pool.connect(spec), timeout=30))
        wires.append(speaker)
        assert speaker.read()["type"] == "hello"
        return speaker

    yield make
    for speaker in wires:
        speaker.close()
    for pool in pools:
        pool.close()


def test_the_shim_refuses_a_set_on_a_lost_gpu_as_nvidia_smi_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    SimNode(tmp_path / "sim", "n1", profile="h100-sxm", gpus=3).inject("lost", [2])
    code = shim.main(["--node", "n1", "--state-dir", str(tmp_path / "sim"), "-i", "2", "-pl", "300"])
    assert code == 15  # nvidia-smi's "GPU is lost"
    assert f"nvidia-smi failed: {capsys.readouterr().err.strip()}" == GPU_2_LOST


def limits(tmp_path: Path) -> list[float]:
    sim = SimNode(tmp_path / "sim", "bare", "lab")
    return [sim.enforced_limit_w(i) for i in range(GPUS)]


def test_a_set_failing_part_way_lists_the_gpus_already_set(wire: Any, tmp_path: Path) -> None:
    reply = wire(1, LOSE_GPU_2).ask(id=4, op="set_power_limit", watts=300, gpus=None)
    assert reply["ok"] is False
    assert reply["error"]["kind"] == "driver"
    assert reply["error"]["message"] == GPU_2_LOST  # as nvidia-smi says it, not the shim's traceback
    assert reply["result"] == {
        "gpus": [
            {"index": 0, "before_w": 700.0, "enforced_w": 300.0, "clamped": False},
            {"index": 1, "before_w": 700.0, "enforced_w": 300.0, "clamped": False},
        ]
    }
    assert limits(tmp_path) == [300.0, 300.0, 700.0, 700.0]  # GPU 3 was never asked


def test_a_failing_query_after_the_sets_keeps_their_list(wire: Any, tmp_path: Path) -> None:
    """nvidia-smi gone after GPU 1's set: GPU 2's set fails, and so does the query for what GPUs 0 and 1 enforce."""
    reply = wire(1, TOOLS_GONE).ask(id=5, op="set_power_limit", watts=450, gpus=[0, 1, 2])
    assert reply["ok"] is False
    assert "not found" in reply["error"]["message"]
    assert reply["result"] == {
        "gpus": [
            {"index": 0, "before_w": 700.0, "enforced_w": None, "clamped": False},
            {"index": 1, "before_w": 700.0, "enforced_w": None, "clamped": False},
        ]
    }
    assert limits(tmp_path) == [450.0, 450.0, 700.0, 700.0]


def test_a_set_done_whole_whose_last_query_fails_is_still_answered(wire: Any, tmp_path: Path) -> None:
    reply = wire(3, TOOLS_GONE).ask(id=6, op="set_power_limit", watts=900, gpus=None, clamp=True)
    assert reply["ok"] is True, reply
    assert reply["result"] == {
        "gpus": [{"index": i, "before_w": 700.0, "enforced_w": None, "clamped": True} for i in range(GPUS)]
    }
    assert limits(tmp_path) == [700.0] * GPUS  # clamped to the 700 W maximum


def test_power_set_audits_the_gpus_changed_before_the_failure(node: Any, tmp_path: Path) -> None:
    """The controller's side: the session raises `PartlyDone`, and `power set` keeps the changes for its audit."""
    spec = node(1, LOSE_GPU_2, python="/nonexistent/python3")  # no Python: the nvidia-smi fallback
    transport = SshTransport.open(spec, "lab", OPTIONS)
    try:
        session = transport.start_agent(60, zipapp=stand_in_zipapp(tmp_path, "raise SystemExit(3)"))
        assert session.hello_info["backend"] == "smi"
        with pytest.raises(PartlyDone) as caught:
            session.set_power_limit(300, timeout=60)
        session.close()
    finally:
        transport.close()
    changes, error = partly_changed(caught.value)
    assert [(c.gpu, c.before_w, c.enforced_w, c.clamped) for c in changes] == [
        (0, 700.0, 300.0, False),
        (1, 700.0, 300.0, False),
    ]
    assert error.kind == "driver"
    assert error.message.endswith("; GPUs 0 and 1 had already changed.")
    assert "lost GPU" in (error.hint or "")
