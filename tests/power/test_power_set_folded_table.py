"""`power set` / `reset` tables and `sim inject` fold nodes that did the same, as exec folds identical outputs.

One row per GPU was 1,601 lines of `700 -> 500, no` at 200 nodes (16,000 at 2,000), and `sim inject` a line per node.
`-o wide`, json and csv keep one row per GPU: scripts read them (docs/cli.md lists the json fields).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path


def fleet(tmp_path: Path, nodes: int = 3, gpus: int = 2) -> Path:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  n[1-{nodes}]: {{transport: local, sim: {{profile: h100-sxm, gpus: {gpus}}}}}\n"
    )
    return config


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_identical_changes_share_one_row_of_folded_nodes(cli, tmp_path: Path) -> None:
    config = fleet(tmp_path)
    changed = cli("--config", str(config), "power", "set", "all", "--watts", "500")
    assert changed.exit_code == 0, changed.stderr
    assert rows(changed.stdout) == [
        ["NODES", "GPUS", "BEFORE", "W", "ENFORCED", "W", "CLAMPED"],
        ["n[1-3]", "(3)", "0-1", "700", "500", "no"],
    ]
    reset = cli("--config", str(config), "power", "reset", "all")
    assert reset.exit_code == 0, reset.stderr
    assert rows(reset.stdout)[1:] == [["n[1-3]", "(3)", "0-1", "500", "700", "no"]]


def test_different_changes_get_their_own_rows_in_node_order(cli, tmp_path: Path) -> None:
    config = fleet(tmp_path)
    assert cli("--config", str(config), "power", "set", "n1/0", "--watts", "450").exit_code == 0
    changed = cli("--config", str(config), "power", "set", "all", "--watts", "500", "--no-header")
    assert changed.exit_code == 0, changed.stderr
    assert rows(changed.stdout) == [
        ["n1", "0", "450", "500", "no"],
        ["n1", "1", "700", "500", "no"],
        ["n[2-3]", "(2)", "0-1", "700", "500", "no"],
    ]
    clamped = cli("--config", str(config), "power", "set", "n[2-3]", "--watts", "5000", "--clamp", "--no-header")
    assert rows(clamped.stdout) == [["n[2-3]", "(2)", "0-1", "500", "700", "yes"]]


def test_wide_json_and_csv_keep_a_row_per_gpu(cli, tmp_path: Path) -> None:
    config = fleet(tmp_path)
    wide = cli("--config", str(config), "power", "set", "all", "--watts", "500", "-o", "wide")
    assert rows(wide.stdout)[0] == ["NODE", "GPU", "BEFORE", "W", "ENFORCED", "W", "CLAMPED"]
    assert rows(wide.stdout)[1:] == [[f"n{n}", str(g), "700", "500", "no"] for n in (1, 2, 3) for g in (0, 1)]
    listed = cli("--config", str(config), "power", "set", "all", "--watts", "450", "-o", "json").json()["items"]
    assert listed == [
        {"node": f"n{n}", "gpu": g, "before_w": 500.0, "enforced_w": 450.0, "clamped": False}
        for n in (1, 2, 3)
        for g in (0, 1)
    ]
    table = cli("--config", str(config), "power", "reset", "all", "-o", "csv")
    lines = list(csv.reader(io.StringIO(table.stdout)))
    assert lines[0] == ["node", "gpu", "before_w", "enforced_w", "clamped"]
    assert len(lines) == 1 + 6


def test_sim_inject_folds_the_nodes_that_took_the_fault(cli, tmp_path: Path) -> None:
    config = fleet(tmp_path)
    injected = cli("--config", str(config), "sim", "inject", "all", "--reset")
    assert injected.exit_code == 0, injected.stderr
    reset = "reset all GPUs: faults cleared, power limits back to default, energy counters from 0"
    assert injected.stdout == f"n[1-3] (3): {reset}\n"
    one = cli("--config", str(config), "sim", "inject", "n2/1", "--xid", "79")
    assert one.stdout == "n2: injected xid into GPU 1\n"
