"""Per-node errors that name their own node still fold: the name is taken out as the address is (docs/cli.md).

`factoryctl power set 'n[3-4]'` with GPU 1 lost on both printed `n3: GPU 1 on n3 is lost; ...` and `n4: GPU 1 on
n4 is lost; ...` as two lines. A node's message is also one line, whatever it holds (docs/security.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factoryctl.cli.render import report_node_errors


def lost(node: str) -> dict[str, str]:
    message = f"GPU 1 on {node} is lost; nothing was changed (its other GPUs can be addressed alone: {node}/0,2-7)"
    return {"node": node, "error": "driver", "message": f"{node}: {message}"}


def test_messages_differing_only_by_their_own_node_fold_under_the_set(capsys: Any) -> None:
    report_node_errors([lost("n3"), lost("n4"), lost("n10")])
    assert capsys.readouterr().err.splitlines() == [
        "factoryctl: n[3-4,10] (3): GPU 1 on n[3-4,10] is lost; nothing was changed (its other GPUs can be "
        "addressed alone: n[3-4,10]/0,2-7)"
    ]


def test_a_lone_node_keeps_its_message_and_other_failures_stay_apart(capsys: Any) -> None:
    report_node_errors([lost("n3"), {"node": "n4", "error": "driver", "message": "GPU 2 on n4 is lost"}])
    assert capsys.readouterr().err.splitlines() == [
        "factoryctl: n3: GPU 1 on n3 is lost; nothing was changed (its other GPUs can be addressed alone: n3/0,2-7)",
        "factoryctl: n4: GPU 2 on n4 is lost",
    ]


def test_identical_messages_are_never_split_by_a_name_that_is_also_a_word(capsys: Any) -> None:
    errors = [{"node": name, "error": "driver", "message": "cannot set a power limit"} for name in ("a", "b", "c")]
    report_node_errors(errors)
    assert capsys.readouterr().err.splitlines() == ["factoryctl: a,b,c (3): cannot set a power limit"]


def test_a_nodes_newline_cannot_add_a_line_or_a_hint(capsys: Any) -> None:
    errors = [
        {"node": n, "error": "driver", "message": f"{n}: boom\x1b[2J\r\nhint: run {n}", "hint": f"ask\nthen {n}"}
        for n in ("n1", "n2")
    ]
    report_node_errors(errors)
    assert capsys.readouterr().err.splitlines() == [
        "factoryctl: n[1-2] (2): boom\\x1b[2J\\x0d\\x0ahint: run n[1-2]",
        "hint: ask\\x0athen n[1-2]",
    ]


def test_power_set_on_two_nodes_with_a_lost_gpu_is_one_line(tmp_path: Path, cli: Any) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n[1-4]: {{transport: local, sim: h100-sxm, gpus: 4}}\n"
    )
    assert cli("--config", str(config), "sim", "inject", "n[3-4]/1", "--lost").exit_code == 0
    result = cli("--config", str(config), "power", "set", "n[3-4]", "--watts", "300")
    assert result.exit_code == 1, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("factoryctl: n[")] == [
        "factoryctl: n[3-4] (2): GPU 1 is lost; nothing was changed"  # the nodes once; their other GPUs: the hint
    ]
    assert "hint: address the node's other GPUs alone, e.g. `factoryctl power set 'n[3-4]/0,2-3' --watts 300`." in (
        result.stderr.splitlines()
    )
