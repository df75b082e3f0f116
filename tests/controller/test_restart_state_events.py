"""A controller logs no `node_up` or `node_down` for a node it finds as the store has it (a sweep's, or its own).

docs/cron.md pages on events (`events --kind node_down`): every controller start, or restart, logged each node's
state again (`node_down n2` once by the cron sweep, then again right after each `controller_start`), so the page
fired at every restart. A node found in another state, or down for another reason, is still a change and logged.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.store.sqlite import Store

pytestmark = pytest.mark.slow

REFUSED = "{host: 127.0.0.1, port: 1}"  # nothing listens on port 1: refused at once
SIM = "{transport: local, sim: h100-sxm, gpus: 2}"


def write_factory(tmp_path: Path, n2: str) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n1: {SIM}\n  n2: {n2}\ncontroller:\n  interval_s: 0.5\n"
    )
    return path


def run_controller_until_judged(path: Path, n2_state: str) -> None:
    """Run the controller until it has judged n1 up and n2 `n2_state` (not merely "not reached yet"), then stop it."""
    controller = Controller(load_config(path))
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()

    def judged() -> bool:
        if controller.collector is None:
            return False
        states = controller.collector.writer.states()  # empty until the writer is given its nodes
        n1, n2 = states.get("n1"), states.get("n2")
        return n1 is not None and n2 is not None and n1.state == "up" and n2.state == n2_state and n2.error != "agent"

    try:
        wait_for(judged, what="n1 up and n2 judged")
    finally:
        controller.request_stop()
        runner.join(30)
    assert not runner.is_alive()


def events(cli: Any, path: Path) -> list[tuple[str, str | None]]:
    result = cli("--config", str(path), "events", "--since", "1h", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return [(e["kind"], e["node"]) for e in result.json()["items"] if e["kind"].startswith("node_")]


def stored_states(path: Path) -> dict[str, tuple[str, float, str | None]]:
    store = Store(path.parent / "state" / "factory.db", readonly=True)
    try:
        return {state.node: (state.state, state.since, state.error) for state, _ in store.latest()}
    finally:
        store.close()


def test_a_restarted_controller_logs_no_state_the_sweep_or_it_logged(cli: Any, tmp_path: Path) -> None:
    path = write_factory(tmp_path, REFUSED)
    assert cli("--config", str(path), "-q", "telemetry", "collect").exit_code == 4  # n2 refused
    logged = [("node_down", "n2"), ("node_up", "n1")]
    assert sorted(events(cli, path)) == logged
    since = stored_states(path)
    for _ in range(2):  # the first controller after the sweep, then a restart
        run_controller_until_judged(path, "down")
        assert sorted(events(cli, path)) == logged
    assert stored_states(path) == since  # up and down since the sweep saw them, not since a restart
    assert cli("--config", str(path), "-q", "telemetry", "collect").exit_code == 4  # a sweep after: the same
    assert sorted(events(cli, path)) == logged


def test_a_node_found_otherwise_after_a_restart_is_logged(cli: Any, tmp_path: Path) -> None:
    path = write_factory(tmp_path, REFUSED)
    run_controller_until_judged(path, "down")
    assert sorted(events(cli, path)) == [("node_down", "n2"), ("node_up", "n1")]
    write_factory(tmp_path, SIM)  # n2 is reachable now: up, which the store did not hold
    run_controller_until_judged(path, "up")
    assert sorted(events(cli, path)) == [("node_down", "n2"), ("node_up", "n1"), ("node_up", "n2")]
