"""Faults met by a running controller, found by failure injection, each with what it must say and record.

- a node that stays down but fails another way (its sshd back with a new host key) gets an event at that time,
  not at the time it went down;
- a reload that moves `state_dir` is refused (the controller keeps its store and lock), never "no node changes";
- a store made read-only under the controller is logged as the CLI says it ("read-only for this user"), not as
  "disk I/O error", and the daemon's log never advises to "rerun with --debug".
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from clocks import sample
from fakefleet import FakeFleet, wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.errors import FactoryError
from factoryctl.store.lock import controller_is_running
from factoryctl.store.sqlite import Store, StoreError
from factoryctl.telemetry.health import NodeHealth, state_event
from factoryctl.telemetry.writer import StoreWriter, daemon_hint

CHATTR = shutil.which("chattr")


def test_a_new_reason_while_down_is_stamped_when_it_appeared() -> None:
    health = NodeHealth("a1", 1.0)
    health.seen(100.0)
    health.failed(100.2, "refused", "a1: 127.0.0.1:22 refused the connection")
    down = health.tick(104.0)
    assert down is not None
    assert down.state == "down"
    change = health.failed(110.0, "host_key", "HOST KEY CHANGED for [127.0.0.1]:22: now ssh-ed25519 SHA256:x")
    assert change is not None
    event = state_event(change)
    assert event.kind == "node_down"
    assert event.time == 110.0  # was 104.0, the time of the "3 samples missed" event
    assert health.failed(111.0, "host_key", "HOST KEY CHANGED again") is None  # the same failure again: nothing


def test_a_reload_that_moves_state_dir_is_refused_and_keeps_the_store(
    tmp_path: Path, fleet: FakeFleet, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "factory.yaml"
    body = "nodes:\n  n1: {transport: local}\ncontroller: {interval_s: 0.2}\n"
    path.write_text(f"state_dir: {tmp_path / 'a'}\n{body}")
    controller = Controller(load_config(path), connector=fleet.connector)
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: controller_is_running(tmp_path / "a") and "n1" in fleet.procs)
        path.write_text(f"state_dir: {tmp_path / 'b'}\n{body}")
        with caplog.at_level(logging.INFO, logger="factoryctl.controller"):
            controller.request_reload()  # what SIGHUP does
            wait_for(lambda: any("reload" in r.getMessage() for r in caplog.records))
    finally:
        controller.request_stop()
        runner.join(20)
    assert controller.config.state_dir == tmp_path / "a"
    said = [r.getMessage() for r in caplog.records if "reload" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith("reload refused, keeping the previous configuration: state_dir changed to ")
    assert f"restart the controller to move its store (it keeps {tmp_path / 'a' / 'factory.db'})" in said[0]
    store = Store(tmp_path / "a" / "factory.db", readonly=True)
    try:
        kinds = [e.kind for e in store.events(0)]
    finally:
        store.close()
    assert "config_rejected" in kinds
    assert "config_reloaded" not in kinds  # it said "reloaded ...: no node changes" and kept the old store
    assert not (tmp_path / "b").exists()


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """Files nobody may write, root included (`chattr +i`), until the block ends."""
    assert CHATTR is not None
    subprocess.run([CHATTR, "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run([CHATTR, "-i", *map(str, paths)], check=True)


@pytest.mark.skipif(CHATTR is None or os.geteuid() != 0, reason="making a file unwritable for root needs chattr")
def test_a_store_made_read_only_under_the_writer_is_logged_as_the_cli_says_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "factory.db"
    store = Store(path)
    clock = [1_700_000_000.0]
    writer = StoreWriter(store, 1.0, clock=lambda: clock[0])
    writer.set_nodes(["n1"])
    writer.offer(sample("n1", clock[0]))
    assert writer.flush() == 1
    clock[0] += 1
    writer.offer(sample("n1", clock[0]))
    # the -shm stays writable: SQLite maps it, and a mapping that cannot be written kills the process (SIGBUS)
    with immutable(path, path.with_name(path.name + "-wal")), caplog.at_level(logging.ERROR, "factoryctl.telemetry"):
        assert writer.flush() == 0
    store.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert f"the store at {path} is read-only for this user, so the samples were not saved." in lines[0]
    assert "disk I/O error" not in lines[0]
    assert "--debug" not in lines[0]


def test_the_daemon_log_never_says_rerun_with_debug() -> None:
    generic = StoreError(
        "the store at /s/factory.db failed (samples): disk I/O error.", "rerun with --debug for details."
    )
    assert daemon_hint(generic) == ""
    full = StoreError("the store at /s/factory.db is full.", "free disk space.")
    assert daemon_hint(full) == " hint: free disk space."


def test_a_writer_that_gets_no_thread_says_so_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of threads, the writer's start named neither the cause nor the limit ("cannot join thread ...")."""
    start = threading.Thread.start

    def refuse_the_writer(thread: threading.Thread) -> None:
        if thread.name == "store-writer":
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", refuse_the_writer)
    writer = StoreWriter(Store(tmp_path / "factory.db"), 1.0)
    with pytest.raises(FactoryError, match="no thread left") as caught:
        writer.start()
    assert caught.value.hint is not None
    assert "TasksMax" in caught.value.hint
    writer.stop()  # nothing to join: no second error hiding the first
