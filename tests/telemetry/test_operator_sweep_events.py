"""A fault first seen by `telemetry collect --once` (cron, no controller) is an event, as the controller would log it.

The controller logs transitions between the stored newest sample and its new one, so a sweep that stored the fault
without logging it hid it for good: docs/cron.md's `events --kind gpu_lost` alert never fired.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory

from factoryctl.store.lock import ControllerLock


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    return write_factory(tmp_path, "n[1-2]: {transport: local, sim: h100-sxm, gpus: 2}", controller_interval_s=1)


def events(cli: Any, factory: Path, *args: str) -> list[tuple[str, str | None, int | None]]:
    result = cli("--config", str(factory), "events", "--since", "1h", "-o", "json", *args)
    assert result.exit_code == 0, result.stderr
    return sorted((i["kind"], i["node"], i["gpu"]) for i in result.json()["items"])


def sweep(cli: Any, factory: Path, target: str = "all") -> None:
    result = cli("--config", str(factory), "-q", "telemetry", "collect", "--once", target)
    assert result.exit_code == 0, result.stderr


def test_a_gpu_lost_in_a_cron_sweep_is_an_event(cli: Any, factory: Path) -> None:
    sweep(cli, factory)
    assert events(cli, factory) == [("node_up", "n1", None), ("node_up", "n2", None)]  # first seen, as a controller
    injected = cli("--config", str(factory), "sim", "inject", "n1/1", "--lost", "--timeout", "30")
    assert injected.exit_code == 0, injected.stderr
    sweep(cli, factory, "n1")
    assert events(cli, factory, "--kind", "gpu_lost") == [("gpu_lost", "n1", 1)]
    sweep(cli, factory)  # still lost, nodes still up: nothing new
    assert len(events(cli, factory)) == 3


def test_a_sweep_beside_a_live_controller_leaves_events_to_it(cli: Any, factory: Path, tmp_path: Path) -> None:
    lock = ControllerLock(tmp_path / "state")
    lock.acquire()
    try:
        sweep(cli, factory)
    finally:
        lock.release()
    assert events(cli, factory) == []


def test_a_fault_already_there_at_the_first_sweep_is_an_event_once(cli: Any, factory: Path) -> None:
    """A GPU lost, or with uncorrectable ECC errors, before the store ever saw its node pages too (it was compared
    with nothing and logged nothing), and only once: the next sweep compares it with the stored sample."""
    for target, fault in (("n1/1", "--lost"), ("n2/0", "--ecc")):
        injected = cli("--config", str(factory), "sim", "inject", target, fault, "--timeout", "30")
        assert injected.exit_code == 0, injected.stderr
    sweep(cli, factory)
    faults = [("ecc", "n2", 0), ("gpu_lost", "n1", 1)]
    assert events(cli, factory) == [*faults, ("node_up", "n1", None), ("node_up", "n2", None)]
    sweep(cli, factory)
    assert events(cli, factory) == [*faults, ("node_up", "n1", None), ("node_up", "n2", None)]
