"""The header's energy per hour averages only the time with data: no 0 kW for a refresh before any node answered.

Three seconds in, with 22.6 kW drawn, it read 15.0 kWh/h (an empty first refresh averaged in as 0 kW), and for a
second after a controller handed back it read `energy 0.0 kWh/h`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from factory_data import fixed_snapshot, node
from pilot_helpers import plain
from test_store_services import write_history

from factoryctl.demo import demo_config
from factoryctl.live.grid import GridPrice
from factoryctl.live.history import RecentHistory
from factoryctl.live.services_base import assemble_snapshot
from factoryctl.model.telemetry import NodeSample
from factoryctl.tui.renderables.factory_summary import FactorySummaryRenderable
from factoryctl.tui.view import summarize


def test_refreshes_before_any_node_answered_count_for_nothing(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "state")
    specs = config.resolve_target(None)
    history = RecentHistory(config.interval_s)
    grid = GridPrice(config)
    t0 = time.time()
    connecting = tuple(NodeSample(node=s.name, time=t0, state="connecting") for s in specs)
    snap = assemble_snapshot(config, specs, t0, connecting, frozenset(), (), history, grid)
    summary = summarize(snap)
    assert summary.energy_per_hour_kwh is None
    assert "energy n/a" in plain(FactorySummaryRenderable(summary, "demo"), width=120)
    up = tuple(dataclasses.replace(node(i + 1), node=s.name, time=t0 + 1) for i, s in enumerate(specs))
    drawn_kw = sum(n.power_w or 0.0 for n in up) / 1000
    for second in (1, 2):
        snap = assemble_snapshot(config, specs, t0 + second, up, frozenset(), (), history, grid)
    assert summarize(snap).energy_per_hour_kwh is not None
    assert abs(summarize(snap).energy_per_hour_kwh - drawn_kw) < 0.01


def test_the_header_says_n_a_rather_than_zero_without_history() -> None:
    summary = summarize(fixed_snapshot(power_history_w=()))
    assert "energy n/a" in plain(FactorySummaryRenderable(summary, "demo"), width=120)
    assert "0.0 kWh/h" not in plain(FactorySummaryRenderable(summary, "demo"), width=120)


def test_a_controller_handing_back_keeps_the_hours_energy(tmp_path: Path) -> None:
    from factoryctl.live.services_auto import AutoServices
    from factoryctl.store.lock import ControllerLock

    config = demo_config(tmp_path / "state")
    write_history(config, minutes=5)  # what a controller wrote
    lock = ControllerLock(config.state_dir)
    lock.acquire()
    services = AutoServices(config, "demo[01-02]", check_every_s=0.0)
    try:
        assert services.source == "store"
        before = summarize(services.snapshot()).energy_per_hour_kwh
        assert before is not None
        assert before > 0
        lock.release()
        after = services.snapshot()  # the embedded collector's first refresh: every node still connecting
        assert services.source == "agents"
        assert summarize(after).energy_per_hour_kwh is not None
        assert summarize(after).energy_per_hour_kwh > 0
    finally:
        lock.release()
        services.close()
