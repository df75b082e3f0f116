"""`power set` then `gpus` shows the new limit while a controller runs, not the stored sample's old one.

A script setting a limit and reading it back got the previous value 2 times of 3: `gpus` served the controller's
last stored sample, taken before the change. A node with a confirmed change its stored sample does not show is read
from its driver instead. A real store under a held controller lock, a simulated node reached by the local transport.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from factoryctl.config import load_config
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.lock import ControllerLock
from factoryctl.store.rows import UNKNOWN, AuditEntry, NodeState
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.latest import read_live


def _stored(node: str, t: float, limit_w: float) -> NodeSample:
    """A sample of `node` at `t` whose GPU 0 is capped at `limit_w`."""
    gpu = GpuSample(node, 0, uuid=f"GPU-{node}", name="H100", power_w=100.0, power_limit_w=limit_w)
    return NodeSample(node, t, gpus=(gpu,))


@pytest.fixture
def live_store(tmp_path: Path) -> Iterator[Path]:
    """factory.yaml of a1 (a simulated H100, limit 700 W) whose sample a live controller has just stored."""
    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: st\nstate_dir: {state}\ncontroller: {{interval_s: 1}}\n"
        "nodes:\n  a1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    )
    lock = ControllerLock(state)
    lock.acquire()
    try:
        store = Store(state / "factory.db")
        now = time.time()
        store.write([_stored("a1", now, 700.0)], states=[NodeState("a1", "up", now - 3600, now)])
        store.close()
        yield config
    finally:
        lock.release()


def test_gpus_after_power_set_shows_the_new_limit(live_store: Path, cli: Callable[..., Any]) -> None:
    assert cli("--config", str(live_store), "gpus", "a1/0", "-o", "json").json()["items"][0]["power_limit_w"] == 700
    assert cli("--config", str(live_store), "-q", "power", "set", "a1/0", "--watts", "500").exit_code == 0
    result = cli("--config", str(live_store), "gpus", "a1/0", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["items"][0]["power_limit_w"] == 500
    nodes = cli("--config", str(live_store), "nodes", "a1", "-o", "json")
    assert nodes.json()["items"][0]["power_limit_w"] == 500


def _change(t: float, after_w: float, outcome: str = "confirmed") -> AuditEntry:
    return AuditEntry(t, "a1", 0, "set", 700.0, after_w, outcome=outcome)


def test_only_a_change_the_stored_sample_does_not_show_is_read_from_the_node(live_store: Path) -> None:
    config = load_config(live_store)
    store = Store(config.store_path)
    now = time.time()
    store.add_audit([_change(now - 60, 400.0)])  # long before the stored sample: it shows what is
    store.add_audit([replace(_change(now, 0.0, UNKNOWN), after_w=None, before_w=None)])  # not answered: not known
    unknown: list[Any] = []
    assert read_live(config, unknown=unknown) is not None
    assert unknown == []
    store.add_audit([_change(now, 700.0)])  # the stored sample shows its limit
    assert read_live(config, unknown=unknown) is not None
    assert unknown == []
    store.add_audit([_change(now + 0.001, 500.0)])
    store.close()
    live = read_live(config, unknown=unknown)
    assert live is not None
    assert [spec.name for spec in unknown] == ["a1"]
    assert live.samples == []
    assert [s.state for s in (read_live(config) or live).samples] == ["up"]  # metrics serve: the store alone
