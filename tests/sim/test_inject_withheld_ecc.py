"""An ECC error is refused on a node whose simulated board withholds ECC: nothing could ever report it.

`sim inject ws/0 --ecc` on a node with `unsupported: [ecc_uncorrected]` printed `ws: injected ecc into GPU 0` and
exited 0, though its counters answer NOT_SUPPORTED and it delivers no ECC events.
"""

from __future__ import annotations

import json

import pytest

from factoryctl.sim.state import state_path

FACTORY = """name: lab
state_dir: {state}
nodes:
  ws: {{transport: local, sim: {{profile: a100-sxm4-80gb, unsupported: [ecc_uncorrected]}}, gpus: 2}}
  n1: {{transport: local, sim: h100-sxm, gpus: 2}}
"""


@pytest.mark.parametrize("withheld", ["ecc_uncorrected", "nvmlDeviceGetTotalEccErrors"])
def test_the_driver_refuses_an_ecc_error_it_could_not_report(make_node, tmp_path, withheld) -> None:
    node = make_node(unsupported=[withheld])
    with pytest.raises(ValueError, match=r"no ECC reporting.*nothing was injected\. Remove ecc_uncorrected"):
        node.inject("ecc", [0])
    data = json.loads(state_path(tmp_path / "state", "default", "n1").read_text())
    assert data["events"] == []
    assert data["gpus"][0]["ecc_volatile"] == 0
    assert node.inject("xid", [0], 31)["fault"] == "xid"  # other faults still go in
    assert make_node("n2").inject("ecc", [0])["fault"] == "ecc"


def test_sim_inject_ecc_on_such_a_node_exits_2_saying_why(cli, tmp_path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY.format(state=tmp_path / "state"))
    refused = cli("-c", str(config), "sim", "inject", "ws/0", "--ecc")
    assert refused.exit_code == 2, refused
    assert "injected" not in refused.stdout
    assert "ws: this node's simulated GPUs have no ECC reporting" in refused.stderr
    assert "Remove ecc_uncorrected from the node's `sim: unsupported:`" in refused.stderr
    done = cli("-c", str(config), "sim", "inject", "n1/0", "--ecc")
    assert (done.exit_code, done.stdout) == (0, "n1: injected ecc into GPU 0\n")
