"""A node the live controller no longer watches is not shown `up` from its last stored row forever.

Removed from the controller's factory.yaml and reloaded, while another factory.yaml sharing the state_dir still
lists it, its row kept saying `up`: `nodes` and `gpus` showed it up with an ever older LAST SEEN, because the store
as a whole was live. Its row is judged by its age as the controller judges silence; `nodes`/`gpus` then poll it, and
`metrics serve` (which reads the store alone) reports it down. A real store under a held controller lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clocks import sample

from factoryctl.config import load_config
from factoryctl.store.lock import ControllerLock
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.latest import read_live


@pytest.fixture
def live_store(tmp_path: Path) -> Iterator[Path]:
    """factory.yaml of a1 (fresh) and gone (unreachable: refused), whose rows say up; gone's last sample is 60 s old."""
    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: st\nstate_dir: {state}\ncontroller: {{interval_s: 1}}\nnodes:\n  a1: {{transport: local}}\n"
        "  gone: {host: 127.0.0.1, port: 1, user: nobody}\n"
    )
    lock = ControllerLock(state)
    lock.acquire()  # a live controller: it holds the lock and has just stored a1's sample
    try:
        store = Store(state / "factory.db")
        now = time.time()
        store.write([sample("gone", now - 60)], states=[NodeState("gone", "up", now - 3600, now - 60)])
        store.write([sample("a1", now)], states=[NodeState("a1", "up", now - 3600, now)])
        store.close()
        yield config
    finally:
        lock.release()


def test_a_stale_row_is_down_for_readers_of_the_store_alone(live_store: Path) -> None:
    live = read_live(load_config(live_store))
    assert live is not None
    states = {s.node: (s.state, s.message) for s in live.samples}
    assert states["a1"] == ("up", None)
    assert states["gone"] == ("down", "the controller has stored no sample from it for 60 s (does it watch it?).")
    assert [e.kind for e in live.errors] == ["timeout"]


def test_a_stale_row_is_polled_by_nodes_and_gpus(live_store: Path, cli: Callable[..., Any]) -> None:
    unknown: list[Any] = []
    live = read_live(load_config(live_store), unknown=unknown)
    assert live is not None
    assert [s.node for s in live.samples] == ["a1"]
    assert [spec.name for spec in unknown] == ["gone"]
    result = cli("--config", str(live_store), "nodes", "-o", "json")
    items = {item["node"]: item for item in result.json()["items"]}
    assert items["a1"]["state"] == "up"
    assert items["gone"]["state"] == "down"  # polled: it refuses the connection
    assert "refused" in (items["gone"]["error"] or "") + (items["gone"].get("message") or "")
    result = cli("--config", str(live_store), "gpus", "-o", "json")
    assert "gone" not in {item["node"] for item in result.json()["items"]}  # no GPU read from its old row


def test_a_row_within_the_nodes_clock_allowance_is_still_up(live_store: Path) -> None:
    config = load_config(live_store)
    live = read_live(config, now=time.time() - 60 + 8.0)  # 8 s old: 3.5 intervals and 5 s for its clock
    assert live is not None
    assert {s.node: s.state for s in live.samples}["gone"] == "up"
