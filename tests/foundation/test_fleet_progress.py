"""Asking a big fleet: `--fanout` for `nodes` and `gpus`, and a progress line while the nodes answer.

2,000 nodes with hundreds not answering took minutes with nothing on the screen until the end, 64 at a time.
"""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path

import pytest

from factoryctl.config import load_config
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.fanout import fan_out


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_fan_out_tells_how_many_nodes_are_done_while_it_waits() -> None:
    nodes = [NodeSpec(f"n{i}", f"n{i}") for i in range(6)]
    gates = {node.name: threading.Event() for node in nodes}
    heard: list[tuple[int, int]] = []

    def work(node: NodeSpec) -> str:
        gates[node.name].wait(30)
        return node.name

    def progress(done: int, total: int) -> None:
        heard.append((done, total))
        for name in list(gates)[: done + 1]:  # let one more node finish each time we are told
            gates[name].set()

    results = fan_out(nodes, work, fanout=2, progress=progress)
    assert [r for _, r in results] == [n.name for n in nodes]
    done = [d for d, _ in heard]
    assert done == sorted(done)
    assert heard[-1] == (6, 6)
    assert {total for _, total in heard} == {6}


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text("nodes:\n  s[1-3]: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n")
    return path


def test_a_slow_poll_shows_a_progress_line_on_a_terminal_then_wipes_it(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factoryctl.cli import progress
    from factoryctl.cli.listing import asked

    config = load_config(fleet)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress, "DELAY_S", 0.0)  # as if the poll were slow: no test waits on the clock
    result = asked(config, list(config.nodes.values()), 60, fanout=1, quiet=False)
    assert len(result.samples) == 3
    written = terminal.getvalue()
    assert "\rasking the nodes: " in written
    assert "of 3 nodes done" in written
    assert written.endswith("\r\x1b[K")  # wiped: the listing prints on a clean line
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    asked(config, list(config.nodes.values()), 60, fanout=1, quiet=True)
    assert quiet.getvalue() == ""


def test_nodes_and_gpus_take_a_fanout(cli, fleet: Path) -> None:
    one_at_a_time = cli("--config", str(fleet), "nodes", "--fanout", "1", "-o", "json")
    assert one_at_a_time.exit_code == 0, one_at_a_time.stderr
    assert [i["state"] for i in one_at_a_time.json()["items"]] == ["up", "up", "up"]
    assert cli("--config", str(fleet), "gpus", "--fanout", "2", "-o", "json").exit_code == 0
    refused = cli("--config", str(fleet), "gpus", "--fanout", "0")
    assert refused.exit_code == 2
