"""A node whose agent reports host readings no host can show, and a GPU process pid no kernel gives, end to end.

The review's agent said `host: {"cpu_pct": 1e308, "load_1m": -5, "memory_used_mib": 1e300}` and listed a GPU
process with pid 2**70: the controller stored each as it came, `gpus -o json` printed the pid (past what a JSON
reader's float or SQLite's integer holds), and the dashboard's node summary showed `host CPU 1000...000%` (309
digits) with `load -5.0`. The real agent runs on a `transport: local` node whose `python` rewrites its replies.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from factory_yaml import write_factory
from fakefleet import wait_for
from test_hostile_node_values import rewriting_python

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.model.telemetry import HostSample, NodeSample
from factoryctl.store.sqlite import Store, StoreError
from factoryctl.tui.widgets.node_summary import node_summary_text

#: Every sample's host gets the review's values (its total is kept real); its first GPU a process with pid 2**70.
HOSTILE_HOST = (
    "    message = json.loads(line)\n"
    "    result = message.get('result')\n"
    "    if isinstance(result, dict) and 'gpus' in result:\n"
    "        result['host'] = {'cpu_pct': 1e308, 'load_1m': -5, 'memory_used_mib': 1e300, 'memory_total_mib': 1024}\n"
    "        result['gpus'][0]['processes'] = [{'pid': 2**70, 'name': 'big'}, {'pid': 4321, 'name': 'ok'}]\n"
    "        line = (json.dumps(message) + '\\n').encode()\n"
)


def _latest(database: Path, node: str) -> NodeSample | None:
    """The node's latest stored sample (None while the controller has not stored one)."""
    try:
        store = Store(database, readonly=True)
    except StoreError:
        return None
    try:
        return {state.node: sample for state, sample in store.latest()}.get(node)
    finally:
        store.close()


def test_the_controller_stores_only_the_host_readings_a_host_can_show(tmp_path: Path) -> None:
    evil = rewriting_python(tmp_path, HOSTILE_HOST)
    path = write_factory(
        tmp_path, f"l1: {{transport: local, sim: h100-sxm, gpus: 1, python: {evil}}}", controller_interval_s=1
    )
    controller = Controller(load_config(path))
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    database = tmp_path / "state" / "factory.db"
    try:
        wait_for(lambda: _latest(database, "l1") is not None, timeout=30)
    finally:
        controller.request_stop()
        runner.join(30)
    assert not runner.is_alive()
    stored = _latest(database, "l1")
    assert stored is not None
    assert stored.host == HostSample(memory_total_mib=1024)
    assert [p.pid for p in stored.gpus[0].processes] == [4321]
    summary = node_summary_text(stored, "l1", None, False).plain
    assert "host CPU" not in summary  # no CPU share to show: before, 309 digits of it and `load -5.0`
    assert "1 GPUs  power" in summary


def test_gpus_lists_only_the_process_whose_pid_is_a_pid(tmp_path: Path, cli: Any) -> None:
    evil = rewriting_python(tmp_path, HOSTILE_HOST)
    path = write_factory(tmp_path, f"l1: {{transport: local, sim: h100-sxm, gpus: 1, python: {evil}}}")
    result = cli("--config", str(path), "gpus", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (gpu,) = result.json()["items"]
    assert gpu["processes"] == [{"pid": 4321, "used_memory_mib": None, "name": "ok"}]
    assert gpu["power_w"] > 0
