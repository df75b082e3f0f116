"""A controller that falls behind is still the controller: the dashboard reads its store and says it is late.

At 200 nodes a controller stopped for a few seconds (SIGSTOP, or a stall under load) made every open dashboard start
its own collector (a second SSH session and agent per node) and say "the controller stopped". Only a free lock may
start the dashboard's collector. The lock is held by a real, separate process here (the kernel's flock, as the
controller holds it) and the store is real SQLite, written as the controller writes it, its writes then stopped.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from factory_data import node

from factoryctl.config import FactoryConfig
from factoryctl.demo import demo_config
from factoryctl.live.services_auto import AutoServices
from factoryctl.live.services_store import StoreServices
from factoryctl.store import open_store
from factoryctl.store.rows import NodeState

HOLD_LOCK = (
    "import pathlib, sys\n"
    "from factoryctl.store.lock import ControllerLock\n"
    "lock = ControllerLock(pathlib.Path(sys.argv[1]))\n"
    "lock.acquire()\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture
def config(tmp_path: Path) -> FactoryConfig:
    return demo_config(tmp_path / "state")


class LockHolder:
    """A live process holding the controller's lock until `release` ends it (the kernel then drops the lock)."""

    def __init__(self, config: FactoryConfig) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(config.state_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "held\n"
        self.pid = self.proc.pid

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def holder(config: FactoryConfig) -> Iterator[LockHolder]:
    lock_holder = LockHolder(config)
    try:
        yield lock_holder
    finally:
        lock_holder.release()


def controller_wrote(config: FactoryConfig, age_s: float) -> None:
    """demo01 and demo02 sampled, judged up and stored `age_s` ago, as a controller that stopped then left them."""
    at = time.time() - age_s
    store = open_store(config.store_path)
    try:
        samples = [dataclasses.replace(node(i), time=at) for i in (1, 2)]
        states = [NodeState(f"demo0{i}", "up", at - 600, at) for i in (1, 2)]
        store.write(samples, states=states, stored_at=at)
    finally:
        store.close()


def source_notes(services: AutoServices) -> list[str]:
    return [e.message for e in services.snapshot().events if e.kind == "source"]


def test_a_late_controller_keeps_the_dashboard_on_its_store_until_its_lock_is_free(
    config: FactoryConfig, holder: LockHolder
) -> None:
    """Its last write a minute old (stopped, hung): no collector starts, the rows go stale, the panel names it."""
    controller_wrote(config, age_s=60)
    services = AutoServices(config, "demo[01-02]", check_every_s=0.0)
    try:
        for _ in range(3):  # every snapshot re-checks (check_every_s=0): still the store, never the nodes
            snap = services.snapshot()
            assert services.source == "store"
        demo01 = snap.node("demo01")
        assert demo01 is not None
        assert (demo01.state, demo01.error) == ("stale", None)  # the controller stopped, not the node
        assert "the controller is late: it stored no sample from it for 60 s" in (demo01.message or "")
        late = [e.message for e in snap.events if e.kind == "source"]
        assert len(late) == 1
        assert f"the controller (pid {holder.pid}) is late" in late[0]
        assert "nothing stored for 60 s" in late[0]
        holder.release()  # it exited, or was killed: the lock is free
        notes = source_notes(services)
        assert services.source == "agents"
        assert any("no controller holds the store's lock" in n for n in notes)
        assert not any("is late" in n for n in notes)
    finally:
        services.close()


def test_a_controller_whose_writes_stop_then_resume_is_late_then_not(config: FactoryConfig, holder: LockHolder) -> None:
    controller_wrote(config, age_s=0)
    services = AutoServices(config, "demo[01-02]", check_every_s=0.0)
    try:
        assert services.source == "store"
        assert source_notes(services) == []
        controller_wrote(config, age_s=20)  # its newest write is now 20 s old: it stopped writing
        assert any(f"(pid {holder.pid}) is late" in n for n in source_notes(services))
        assert services.source == "store"
        controller_wrote(config, age_s=0)
        notes = source_notes(services)
        assert services.source == "store"
        assert not any("is late" in n for n in notes)
        assert any(f"the controller (pid {holder.pid}) writes its store again" in n for n in notes)
    finally:
        services.close()


def test_a_controller_starting_while_the_dashboard_collects_takes_over_once_it_writes(config: FactoryConfig) -> None:
    """The hand-over stays prompt (at its first write), and one hung from its start stops the dashboard's collector."""
    services = AutoServices(config, "demo01", check_every_s=0.0)
    holder = None
    try:
        assert services.source == "agents"
        holder = LockHolder(config)
        services.snapshot()
        assert services.source == "agents"  # nothing stored yet: the collector keeps going meanwhile
        controller_wrote(config, age_s=0)
        notes = source_notes(services)
        assert services.source == "store"
        assert any(f"a controller is running (pid {holder.pid})" in n for n in notes)
    finally:
        services.close()
        if holder is not None:
            holder.release()


def test_a_controller_hung_from_its_start_is_read_after_the_grace(config: FactoryConfig) -> None:
    services = AutoServices(config, "demo01", check_every_s=0.0, startup_grace_s=0.0)
    holder = None
    try:
        assert services.source == "agents"
        holder = LockHolder(config)
        notes = source_notes(services)
        assert services.source == "store"
        assert any(f"the controller (pid {holder.pid}) is late" in n and "no sample stored yet" in n for n in notes)
    finally:
        services.close()
        if holder is not None:
            holder.release()


def test_rows_the_controller_has_not_refreshed_are_not_shown_live(config: FactoryConfig) -> None:
    """A row a minute old was shown `up`, its values as if live; `nodes list` calls it down (`stale_for`)."""
    controller_wrote(config, age_s=60)
    services = StoreServices(config, "demo[01-02]")
    try:
        demo01 = services.snapshot().node("demo01")
    finally:
        services.close()
    assert demo01 is not None
    assert (demo01.state, demo01.error) == ("down", "timeout")
    assert demo01.message == "the controller has stored no sample from it for 60 s."


def test_a_fresh_row_is_shown_as_the_controller_judged_it(config: FactoryConfig) -> None:
    controller_wrote(config, age_s=0)
    services = StoreServices(config, "demo[01-02]")
    try:
        demo01 = services.snapshot().node("demo01")
    finally:
        services.close()
    assert demo01 is not None
    assert demo01.state == "up"
    assert len(demo01.gpus) == 8


def test_a_dashboard_opened_before_a_starting_controller_wrote_collects_until_it_does(
    config: FactoryConfig, holder: LockHolder
) -> None:
    """Its lock taken, no store yet: nothing to read, so the dashboard collects, and reads the store once written."""
    services = AutoServices(config, "demo01", check_every_s=0.0)
    try:
        assert services.source == "agents"
        controller_wrote(config, age_s=0)
        services.snapshot()
        assert services.source == "store"
    finally:
        services.close()
