"""`controller status` counts the nodes up as they come up, not at the next 10-second figures.

The figures it reads were written at start (no node up yet) and then every 10 s: for that long after a start
`controller status` said `nodes: 0 up of 1` while samples were already stored, and a node's fall went as long unsaid.
The controller now writes them again as soon as the count of nodes up changes.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fakefleet import FakeFleet, wait_for

from factoryctl import controller as controller_module
from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.store.rows import STATS_KEY
from factoryctl.store.sqlite import Store, StoreError


def stored_up(state_dir: Path) -> int | None:
    if not (state_dir / "factory.db").exists():
        return None
    try:
        store = Store(state_dir / "factory.db", readonly=True)
    except StoreError:  # the controller is still creating it (schema 0 until its first transaction ends)
        return None
    try:
        figures = store.get_meta(STATS_KEY)
    finally:
        store.close()
    return None if figures is None else int(json.loads(figures)["up"])


def test_the_figures_count_a_node_up_before_their_next_period(
    tmp_path: Path, fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller_module, "STATS_EVERY_S", 3600.0)  # the period alone would never show it
    path = tmp_path / "factory.yaml"
    path.write_text(f"state_dir: {tmp_path}\nnodes:\n  n[1-2]: {{transport: local}}\ncontroller: {{interval_s: 0.2}}\n")
    controller = Controller(load_config(path), connector=fleet.connector)
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: stored_up(tmp_path) == 2)
    finally:
        controller.request_stop()
        runner.join(20)
    assert not runner.is_alive()
