"""A real controller, stopped with SIGSTOP while a dashboard reads its store, then let go on, then terminated.

At 200 nodes, 6 s into such a stop the dashboard had opened its own 200 SSH sessions (233 threads, then 806, two
agents per node) and said "the controller stopped". It must stay on the store, say the controller is late, and
collect by itself only once the controller has exited; meanwhile its rows age to `stale`, never `down` (a review saw
`64 down · 64 unhealthy` under a stopped controller).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_for

from factoryctl.config import FactoryConfig, load_config
from factoryctl.live.services_auto import AutoServices
from factoryctl.live.services_store import controller_is_live

pytestmark = pytest.mark.slow


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], FactoryConfig]]:
    """A real controller of two simulated local nodes at a 0.5 s interval; its log goes to `controller.log`."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"state_dir: {tmp_path / 'state'}\nnodes:\n  n[1-2]: {{transport: local, sim: h100-sxm, gpus: 1}}\n"
        "controller:\n  interval_s: 0.5\n"
    )
    with (tmp_path / "controller.log").open("wb") as err:
        argv = [sys.executable, "-c", "from factoryctl.cli.app import main; main()", "--config", str(path)]
        proc = subprocess.Popen([*argv, "controller", "run"], stderr=err)
    try:
        yield proc, load_config(path)
    finally:
        proc.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)


class Watcher:
    """A dashboard's services, each snapshot re-checking the source (check_every_s=0), every source seen recorded."""

    def __init__(self, config: FactoryConfig) -> None:
        self.services = AutoServices(config, check_every_s=0.0)
        self.sources = [self.services.source]
        self.states: list[set[str]] = []  # each snapshot's node states
        self.aged_down = 0  # rows shown down for their age alone ("has stored no sample from it")

    def notes(self) -> list[str]:
        snapshot = self.services.snapshot()
        self.sources.append(self.services.source)
        self.states.append({n.state for n in snapshot.nodes})
        self.aged_down += sum(n.state == "down" and "stored no sample" in (n.message or "") for n in snapshot.nodes)
        return [e.message for e in snapshot.events if e.kind == "source"]

    def node_states(self) -> set[str]:
        """The node states of a new snapshot."""
        self.notes()
        return self.states[-1]

    def says(self, text: str) -> bool:
        return any(text in note for note in self.notes())


def test_a_stopped_controller_is_late_not_replaced(controller: tuple[subprocess.Popen[bytes], FactoryConfig]) -> None:
    proc, config = controller
    wait_for(lambda: controller_is_live(config), 60, "a live controller", 0.2)
    watcher = Watcher(config)
    try:
        assert watcher.sources == ["store"]
        proc.send_signal(signal.SIGSTOP)
        late = f"the controller (pid {proc.pid}) is late"
        wait_for(lambda: watcher.says(late) or "agents" in watcher.sources, 60)
        assert set(watcher.sources) == {"store"}  # never a collector of its own while the controller holds its lock
        # every row aged past 6.75 s (3.5 intervals and the 5 s a node's clock may be behind): stale (one the controller judged down before it stopped, under load, stays down)
        wait_for(lambda: "stale" in watcher.node_states() and not {"up", "degraded"} & watcher.states[-1], 60)
        assert watcher.aged_down == 0  # the controller stopped, not the nodes
        proc.send_signal(signal.SIGCONT)
        wait_for(lambda: watcher.says(f"the controller (pid {proc.pid}) writes its store again"), 60)
        assert set(watcher.sources) == {"store"}
        proc.terminate()
        proc.wait(30)
        wait_for(lambda: watcher.says("no controller holds the store's lock"), 60)
        assert watcher.services.source == "agents"
    finally:
        watcher.services.close()
