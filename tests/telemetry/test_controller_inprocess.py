"""The Controller object in-process with fake agents: reload keeps the store where it is, stop is clean."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from fakefleet import FakeFleet, wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.store.lock import controller_is_running
from factoryctl.store.sqlite import Store


def test_reload_adds_nodes_and_stops_cleanly(tmp_path: Path, fleet: FakeFleet) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"state_dir: {tmp_path / 'a'}\nnodes: {{n1: {{transport: local}}}}\ncontroller: {{interval_s: 0.2}}\n"
    )
    controller = Controller(load_config(path), connector=fleet.connector)
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: controller_is_running(tmp_path / "a") and "n1" in fleet.procs)
        path.write_text(
            f"state_dir: {tmp_path / 'a'}\nnodes:\n  n[1-2]: {{transport: local}}\ncontroller: {{interval_s: 0.2}}\n"
        )
        controller.request_reload()
        wait_for(lambda: "n2" in fleet.procs)  # a changed state_dir is refused instead: test_failure_controller_faults
    finally:
        controller.request_stop()
        runner.join(20)
    assert not runner.is_alive()
    assert not controller_is_running(tmp_path / "a")
    store = Store(tmp_path / "a" / "factory.db", readonly=True)
    events = store.events(0)
    kinds = [e.kind for e in events]
    assert kinds[0] == "controller_start"
    assert events[0].message.endswith("started with 1 node")  # not "1 nodes"
    assert "config_reloaded" in kinds
    assert kinds[-1] == "controller_stop"
    assert not (tmp_path / "b").exists()


def test_the_figures_are_stored_before_the_links_start(
    tmp_path: Path, fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting 2,000 links took seconds (minutes under load), and `controller status` meanwhile said the
    controller "writes another file (was the store deleted or replaced?)" for want of its figures."""
    import json

    from factoryctl.store.rows import STATS_KEY
    from factoryctl.telemetry.collector import Collector

    path = tmp_path / "factory.yaml"
    path.write_text(f"state_dir: {tmp_path}\nnodes: {{n1: {{transport: local}}}}\ncontroller: {{interval_s: 0.2}}\n")
    seen: list[object] = []
    start = Collector.start

    def start_and_look(self: Collector) -> None:
        probe = Store(tmp_path / "factory.db", readonly=True)
        seen.append(probe.get_meta(STATS_KEY))
        probe.close()
        start(self)

    monkeypatch.setattr(Collector, "start", start_and_look)
    controller = Controller(load_config(path), connector=fleet.connector)
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: bool(seen))
    finally:
        controller.request_stop()
        runner.join(20)
    assert seen[0] is not None
    assert json.loads(str(seen[0]))["pid"] == os.getpid()


def test_a_reload_keeps_the_nodes_when_the_file_has_none_or_was_a_pipe(tmp_path: Path, fleet: FakeFleet) -> None:
    """SIGHUP re-read `--config <(sops -d ...)` as an empty file and dropped every node; an emptied factory.yaml
    (a file being written) did the same."""
    path = tmp_path / "factory.yaml"
    text = f"state_dir: {tmp_path}\nnodes: {{n1: {{transport: local}}}}\n"
    path.write_text(text)
    controller = Controller(load_config(path), connector=fleet.connector)
    path.write_text(f"state_dir: {tmp_path}\nnodes: {{}}\n")
    assert controller.reload() is False
    assert list(controller.config.nodes) == ["n1"]
    pipe = tmp_path / "pipe.yaml"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_text, args=(text,))
    writer.start()
    piped = Controller(load_config(pipe), connector=fleet.connector)
    writer.join(10)
    assert list(piped.config.nodes) == ["n1"]
    assert piped.reload() is False  # without the check: read again, it blocks for a writer (or is empty)
    assert list(piped.config.nodes) == ["n1"]
