"""An ECC error is refused on a node whose simulated board withholds ECC: nothing could ever report it.

`sim inject ws/0 --ecc` on a node with `unsupported: [ecc_uncorrected]` printed `ws: injected ecc into GPU 0` and
exited 0, though its counters answer NOT_SUPPORTED and it delivers no ECC events. The refusal then put its fix in the
error's sentence (`...; nothing was injected. Remove ecc_uncorrected from ...`) with no `hint:` line; it is a sentence
and a hint now, said before any node is asked. Also here: what `sim inject --reset` and `--reboot` say they did
(`injected reset into all GPUs` did not read as faults cleared and limits back to default).
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
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "factoryctl: ws: this node's simulated GPUs have no ECC reporting (its sim config lists ecc_uncorrected as "
        "unsupported), so an ECC error would never be seen; nothing was injected.",
        "hint: remove ecc_uncorrected from ws's `sim: unsupported:` in factory.yaml to inject ECC errors there.",
    ]
    done = cli("-c", str(config), "sim", "inject", "n1/0", "--ecc")
    assert (done.exit_code, done.stdout) == (0, "n1: injected ecc into GPU 0\n")


def test_an_ecc_error_for_several_nodes_is_refused_before_any_node_takes_it(cli, tmp_path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY.format(state=tmp_path / "state"))
    refused = cli("-c", str(config), "sim", "inject", "all", "--ecc")
    assert refused.exit_code == 2, refused
    assert refused.stderr.startswith("factoryctl: ws: this node's simulated GPUs have no ECC reporting"), refused
    gpus = cli("-c", str(config), "gpus", "n1", "-o", "json").json()["items"]
    assert [gpu["ecc_uncorrected"] for gpu in gpus] == [0, 0]  # n1 could take it, but nothing was injected


def test_reset_and_reboot_say_what_they_did(cli, tmp_path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY.format(state=tmp_path / "state"))
    assert cli("-c", str(config), "power", "set", "n1", "--watts", "500").exit_code == 0
    assert cli("-c", str(config), "sim", "inject", "n1/1", "--lost").exit_code == 0
    reset = cli("-c", str(config), "sim", "inject", "n1", "--reset")
    assert (reset.exit_code, reset.stdout) == (
        0,
        "n1: reset all GPUs: faults cleared, power limits back to default, energy counters from 0\n",
    ), reset.stderr
    data = json.loads(state_path(tmp_path / "state" / "sim", "lab", "n1").read_text())
    assert [(gpu["lost"], gpu["limit_w"]) for gpu in data["gpus"]] == [(False, None), (False, None)]
    one = cli("-c", str(config), "sim", "inject", "ws/0", "--reset")
    assert one.stdout == "ws: reset GPU 0: faults cleared, power limit back to default, energy counter from 0\n"
    reboot = cli("-c", str(config), "sim", "inject", "all", "--reboot")
    assert reboot.stdout == (
        "n1,ws (2): rebooted all GPUs: faults cleared, power limits back to default, energy counters from 0, "
        "GPUs cold\n"
    )
